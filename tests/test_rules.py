"""Violation rules (candidates before debouncing) and role mapping, as tables."""

import numpy as np
import pytest

from detector.config.schema import RoleClasses, ViolationType
from detector.detections import Detections
from detector.rules.roles import STATIC_OBJECT_LABEL, RoleMap
from detector.rules.violations import RULES

COCO = ["person", "car", "truck", "umbrella", "orange", "bottle", "dog"]
ROLES = RoleMap.build(COCO, RoleClasses())


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
}


@pytest.mark.parametrize("violation, rows, expected", CASES.values(), ids=CASES.keys())
def test_candidates(violation, rows, expected):
    t = tracks(*rows)
    assert RULES[violation](t, np.ones(len(t), bool), ROLES).tolist() == expected


def test_outside_the_zone_is_never_a_candidate():
    t = tracks(("car", [0, 0, 50, 30], STILL))
    assert RULES[ViolationType.ILLEGAL_PARKING](t, np.zeros(1, bool), ROLES).tolist() == [False]


def test_custom_model_classes_map_to_roles():
    roles = RoleMap.build(
        ["trash_bag", "stall", "van"],
        RoleClasses(vehicle=("van",), vendor=("stall",), garbage=("trash_bag",), vending_item=(), person=()),
    )
    assert roles.unknown == ()
    assert roles.has("garbage", np.array([0, 3])).tolist() == [True, True]  # trash_bag and static_object
    assert roles.has("vendor", np.array([1])).tolist() == [True]
    assert roles.has("vehicle", np.array([2, 0])).tolist() == [True, False]


def test_names_the_model_lacks_are_reported():
    roles = RoleMap.build(["person", "car"], RoleClasses())
    assert "roles.vehicle: truck" in roles.unknown and "roles.person: person" not in roles.unknown
