"""The violation types: one class each, and the registry that lists them.

A type declares its roles (with COCO fallbacks), its default timings and its candidate test:
which tracked objects of one frame satisfy the rule before debouncing. Everything else is
derived from the registry: the config's `violations` and `roles` sections and the type names it
accepts, scoring, the static-new-object detector, explain and the report. Adding a type is one
class here and one entry in RULE_TYPES (docs/violations.md has the reasoning of each rule).

Every rule requires its objects to be stationary, in the zone and scoring at least the type's
min_score (the engine passes `in_zone` already and-ed with the score test).
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from detector.detections import Detections
from detector.rules.roles import Role, RoleMap
from detector.zones.geometry import Anchor, anchor_points, box_containment, box_size

VENDOR_REACH = 1.5  # an item within this many person-heights of a still person is their stall
ATTENDED_MARGIN = 0.5  # a person box grown by this fraction covers what they carry

VEHICLE = Role("vehicle", ("car", "truck", "bus"), "Cars, vans, trucks and buses")
NONMOTOR = Role(
    "nonmotor",
    ("bicycle", "motorcycle"),
    "Bicycles, e-bikes, scooters and motorcycles (COCO models label e-bikes and scooters `motorcycle`)",
)
PERSON = Role(
    "person", ("person",), "People: a still one beside vending items is a vendor; one holding an item makes it not litter"
)
VENDOR = Role("vendor", (), "Classes that are a stall, cart or vendor by themselves (a model trained on them)")
VENDING_ITEM = Role(
    "vending_item",
    ("umbrella", "dining table", "chair", "bench", "banana", "apple", "orange", "broccoli", "carrot"),
    "Goods and furniture of a stall: vending when a still person is beside them",
)
GARBAGE = Role(
    "garbage",
    ("bottle", "cup", "handbag", "backpack", "suitcase"),
    "Litter classes; the static-new-object detector's boxes always play this role too",
    static_objects=True,
)


@dataclass(frozen=True)
class Timing:
    """Default timings of a type, in seconds of stream time (docs/violations.md)."""

    dwell_s: float
    grace_s: float
    clear_s: float
    cooldown_s: float


class ViolationRule:
    """One violation type. Subclasses set the class attributes and `candidates`."""

    type: ClassVar[str]
    summary: ClassVar[str]
    roles: ClassVar[tuple[Role, ...]]  # objects of these roles can be (part of) a candidate
    context_roles: ClassVar[tuple[Role, ...]] = ()  # read by the rule, never candidates themselves
    defaults: ClassVar[Timing]

    @classmethod
    def uses_static_objects(cls) -> bool:
        return any(role.static_objects for role in cls.roles)

    @classmethod
    def ways(cls) -> tuple[tuple[Role, ...], ...]:
        """Sets of roles, any one of which, all played, lets the rule see a candidate (for
        `detector check`: a model with no class for any set never raises this type)."""
        return tuple((role,) for role in cls.roles)

    @staticmethod
    def candidates(tracks: Detections, in_zone: np.ndarray, roles: RoleMap) -> np.ndarray:
        """(n,) bool over `tracks`: the objects that make a candidate of this type."""
        raise NotImplementedError


class IllegalParking(ViolationRule):
    type = "illegal_parking"
    summary = "A vehicle stopped in a no-parking zone longer than allowed"
    roles = (VEHICLE,)
    defaults = Timing(dwell_s=60, grace_s=10, clear_s=20, cooldown_s=300)  # i-LIDS parked vehicle: 60 s

    @staticmethod
    def candidates(tracks: Detections, in_zone: np.ndarray, roles: RoleMap) -> np.ndarray:
        return in_zone & tracks.data["stationary"] & roles.has(VEHICLE.name, tracks.class_id)


class NonmotorParking(ViolationRule):
    """Two-wheelers left on a pavement or in a no-parking zone. Motorcycles are here, not under
    illegal_parking: COCO's `motorcycle` is mostly e-bikes and scooters in a city street, which
    are cleared like bicycles (docs/violations.md)."""

    type = "nonmotor_parking"
    summary = "A bicycle, e-bike or motorcycle left in a no-parking zone"
    roles = (NONMOTOR,)
    defaults = Timing(dwell_s=120, grace_s=20, clear_s=30, cooldown_s=600)

    @staticmethod
    def candidates(tracks: Detections, in_zone: np.ndarray, roles: RoleMap) -> np.ndarray:
        return in_zone & tracks.data["stationary"] & roles.has(NONMOTOR.name, tracks.class_id)


class StreetVending(ViolationRule):
    type = "street_vending"
    summary = "A stall, cart or vendor set up where vending is banned"
    roles = (PERSON, VENDOR, VENDING_ITEM)
    defaults = Timing(dwell_s=180, grace_s=30, clear_s=60, cooldown_s=600)

    @classmethod
    def ways(cls) -> tuple[tuple[Role, ...], ...]:
        return ((VENDOR,), (PERSON, VENDING_ITEM))

    @staticmethod
    def candidates(tracks: Detections, in_zone: np.ndarray, roles: RoleMap) -> np.ndarray:
        """A stationary stall/cart class, or (COCO fallback) a stationary person in the zone with
        a stationary vending item (umbrella, table, produce, ...) next to them: both count."""
        still = tracks.data["stationary"]
        vendors = in_zone & still & roles.has(VENDOR.name, tracks.class_id)
        people = np.flatnonzero(in_zone & still & roles.has(PERSON.name, tracks.class_id))
        items = np.flatnonzero(still & roles.has(VENDING_ITEM.name, tracks.class_id))
        if len(people) and len(items):
            feet = anchor_points(tracks.xyxy[people], Anchor.BOTTOM_CENTER)
            item_centres = anchor_points(tracks.xyxy[items], Anchor.CENTER)
            heights = tracks.xyxy[people, 3] - tracks.xyxy[people, 1]
            distance = np.linalg.norm(feet[:, None, :] - item_centres[None, :, :], axis=2)
            near = distance <= VENDOR_REACH * heights[:, None]
            vendors[people[near.any(axis=1)]] = True
            vendors[items[near.any(axis=0)]] = True
        return vendors


class StrayGarbage(ViolationRule):
    type = "stray_garbage"
    summary = "Litter, bags or dumped waste left on the street"
    roles = (GARBAGE,)
    context_roles = (PERSON,)
    defaults = Timing(dwell_s=120, grace_s=30, clear_s=60, cooldown_s=1800)

    @staticmethod
    def candidates(tracks: Detections, in_zone: np.ndarray, roles: RoleMap) -> np.ndarray:
        """A stationary small object (garbage classes or a static new object) that nobody holds:
        its box is not inside a person's box grown by a margin."""
        litter = in_zone & tracks.data["stationary"] & roles.has(GARBAGE.name, tracks.class_id)
        people = tracks.xyxy[roles.has(PERSON.name, tracks.class_id)]
        if litter.any() and len(people):
            margin = (ATTENDED_MARGIN * box_size(people))[:, None] * np.array([-1, -1, 1, 1])
            attended = (box_containment(tracks.xyxy[litter], people + margin) >= 0.5).any(axis=1)
            litter[np.flatnonzero(litter)[attended]] = False
        return litter


RULE_TYPES: tuple[type[ViolationRule], ...] = (IllegalParking, StreetVending, StrayGarbage, NonmotorParking)
RULES: dict[str, type[ViolationRule]] = {rule.type: rule for rule in RULE_TYPES}
# Every role some type reads, once, in declaration order (the config's `roles` section).
ROLES: tuple[Role, ...] = tuple({r.name: r for rule in RULE_TYPES for r in (*rule.roles, *rule.context_roles)}.values())
