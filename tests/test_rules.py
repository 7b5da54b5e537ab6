"""Violation rules (candidates before debouncing) and role mapping, as tables."""

import numpy as np
import pytest

from detector.config.schema import RoleClasses, ViolationType
from detector.detections import Detections
from detector.rules.roles import STATIC_OBJECT_LABEL, RoleMap
from detector.rules.violations import ROLES as ALL_ROLES
from detector.rules.violations import RULE_TYPES, RULES


def role_map(names, roles: RoleClasses | None = None) -> RoleMap:
    return RoleMap.build(names, ALL_ROLES, (roles or RoleClasses()).model_dump())


COCO = ["person", "bicycle", "car", "motorcycle", "truck", "umbrella", "orange", "bottle", "dog"]
ROLES = role_map(COCO)


def tracks(*rows) -> Detections:
    """rows of (label, box, stationary)"""
    labels = ROLES.labels
    n = len(rows)
    return Detections(
        xyxy=np.array([r[1] for r in rows], np.float32).reshape(n, 4),
        confidence=np.full(n, 0.8, np.float32),
        class_id=np.array([labels.index(r[0]) for r in rows], np.int32),
        tracker_id=np.arange(1, n + 1),
        data={"stationary": np.array([r[2] for r in rows], bool), "settled_since": np.zeros(n)},
    )


PERSON = [100, 100, 130, 200]  # 100 px tall, feet at (115, 200)
STILL, MOVING = True, False

CASES = {
    "parked car": (ViolationType.ILLEGAL_PARKING, [("car", [0, 0, 50, 30], STILL)], [True]),
    "moving car": (ViolationType.ILLEGAL_PARKING, [("car", [0, 0, 50, 30], MOVING)], [False]),
    "still person is not parking": (ViolationType.ILLEGAL_PARKING, [("person", PERSON, STILL)], [False]),
    "vendor with produce beside": (
        ViolationType.STREET_VENDING,
        [("person", PERSON, STILL), ("orange", [140, 170, 180, 200], STILL)],
        [True, True],
    ),
    "still person alone": (ViolationType.STREET_VENDING, [("person", PERSON, STILL)], [False]),
    "produce alone": (ViolationType.STREET_VENDING, [("orange", [140, 170, 180, 200], STILL)], [False]),
    "walking past an umbrella": (
        ViolationType.STREET_VENDING,
        [("person", PERSON, MOVING), ("umbrella", [140, 120, 200, 200], STILL)],
        [False, False],
    ),
    "item far from the person": (
        ViolationType.STREET_VENDING,
        [("person", PERSON, STILL), ("orange", [400, 170, 440, 200], STILL)],
        [False, False],
    ),
    "left bottle": (ViolationType.STRAY_GARBAGE, [("bottle", [300, 300, 310, 330], STILL)], [True]),
    "bottle held by a standing person": (
        ViolationType.STRAY_GARBAGE,
        [("person", PERSON, STILL), ("bottle", [120, 140, 130, 170], STILL)],
        [False, False],
    ),
    "static new object": (ViolationType.STRAY_GARBAGE, [(STATIC_OBJECT_LABEL, [300, 300, 340, 320], STILL)], [True]),
    "a dog is not garbage": (ViolationType.STRAY_GARBAGE, [("dog", [300, 300, 340, 330], STILL)], [False]),
    "parked bicycle": (ViolationType.NONMOTOR_PARKING, [("bicycle", [0, 0, 50, 30], STILL)], [True]),
    "parked e-bike (COCO: motorcycle)": (ViolationType.NONMOTOR_PARKING, [("motorcycle", [0, 0, 50, 30], STILL)], [True]),
    "ridden bicycle": (ViolationType.NONMOTOR_PARKING, [("bicycle", [0, 0, 50, 30], MOVING)], [False]),
    "a parked car is not a two-wheeler": (ViolationType.NONMOTOR_PARKING, [("car", [0, 0, 50, 30], STILL)], [False]),
    "a motorcycle is not illegal_parking": (ViolationType.ILLEGAL_PARKING, [("motorcycle", [0, 0, 50, 30], STILL)], [False]),
}


@pytest.mark.parametrize("violation, rows, expected", CASES.values(), ids=CASES.keys())
def test_candidates(violation, rows, expected):
    t = tracks(*rows)
    assert RULES[violation].candidates(t, np.ones(len(t), bool), ROLES).tolist() == expected


def test_outside_the_zone_is_never_a_candidate():
    t = tracks(("car", [0, 0, 50, 30], STILL))
    for rule in RULE_TYPES:
        assert rule.candidates(t, np.zeros(1, bool), ROLES).tolist() == [False], rule.type


def test_custom_model_classes_map_to_roles():
    roles = role_map(
        ["trash_bag", "stall", "van"],
        RoleClasses(vehicle=("van",), vendor=("stall",), garbage=("trash_bag",), vending_item=(), person=(), nonmotor=()),
    )
    assert roles.unknown == ()
    assert roles.has("garbage", np.array([0, 3])).tolist() == [True, True]  # trash_bag and static_object
    assert roles.has("vendor", np.array([1])).tolist() == [True]
    assert roles.has("vehicle", np.array([2, 0])).tolist() == [True, False]


def test_names_the_model_lacks_are_reported():
    roles = role_map(["person", "car"])
    assert "roles.vehicle: truck" in roles.unknown and "roles.person: person" not in roles.unknown


def test_the_registry_is_the_one_list_of_types():
    """Config enum, defaults, roles and scoring all come from RULE_TYPES."""
    from detector.config.schema import DEFAULT_VIOLATIONS, ViolationDefaults
    from detector.scoring import VIOLATION_TYPES

    types = [rule.type for rule in RULE_TYPES]
    assert [t.value for t in ViolationType] == types == list(VIOLATION_TYPES) == list(ViolationDefaults.model_fields)
    assert DEFAULT_VIOLATIONS[ViolationType.NONMOTOR_PARKING].dwell_s == RULES["nonmotor_parking"].defaults.dwell_s
    assert set(RoleClasses.model_fields) == {role.name for rule in RULE_TYPES for role in (*rule.roles, *rule.context_roles)}
    assert [rule.type for rule in RULE_TYPES if rule.uses_static_objects()] == ["stray_garbage"]


def test_the_alert_schema_lists_every_type():
    import json

    from conftest import ROOT

    schema = json.loads((ROOT / "docs/alert.schema.json").read_text())
    assert schema["properties"]["type"]["enum"] == [rule.type for rule in RULE_TYPES]


# `detector check`: the zone types a model cannot raise. (model classes, role overrides, static
# objects on) -> the types warned about for a zone of all four types
TRAINED = ["vehicle", "person", "vendor", "vending_item", "garbage", "nonmotor"]  # `detector train`'s classes
BLIND_CASES = {
    "COCO model, defaults": (COCO, {}, True, []),
    "COCO model, no static objects: garbage still has its COCO classes": (COCO, {}, False, []),
    "no garbage classes and no static objects": (COCO, {"garbage": ()}, False, ["stray_garbage"]),
    "no garbage classes, static objects on": (COCO, {"garbage": ()}, True, []),
    "vending: the person + item fallback": (COCO, {"vendor": ()}, True, []),
    "vending: a vendor class alone": (["vendor"], {"vendor": ("vendor",)}, True, ["illegal_parking", "nonmotor_parking"]),
    "vending: persons without items": (COCO, {"vending_item": ()}, True, ["street_vending"]),
    "a model of other classes": (
        ["dog", "cat"],
        {},
        False,
        ["illegal_parking", "street_vending", "stray_garbage", "nonmotor_parking"],
    ),
    "trained on the roles, mapped": (TRAINED, {role: (role,) for role in TRAINED}, False, []),
    "trained on the roles, left on COCO names": (TRAINED, {}, True, ["illegal_parking", "street_vending", "nonmotor_parking"]),
}


@pytest.mark.parametrize("names, overrides, static_objects, blind", BLIND_CASES.values(), ids=BLIND_CASES.keys())
def test_check_names_the_zone_types_a_model_cannot_raise(names, overrides, static_objects, blind):
    from detector.cli.core import blind_zones
    from detector.config import load_config

    text = f"""
site: t
model: {{path: models/yolov8n.onnx}}
static_objects: {{enabled: {str(static_objects).lower()}}}
cameras:
  - id: c
    source: sample_videos/clips/vtest.avi
    zones:
      - id: z
        polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]
        violations: [illegal_parking, street_vending, stray_garbage, nonmotor_parking]
"""
    config = load_config("t.yaml", text=text)
    roles = role_map(names, RoleClasses(**overrides))
    warned = [line.split(": ")[1].split()[0] for line in blind_zones(config, roles)]
    assert warned == blind
