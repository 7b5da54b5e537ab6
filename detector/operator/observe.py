"""What each (zone, violation type) rule saw in one frame, read off the real pipeline's state.

The engine keeps only the final candidates of a rule (stationary, in the zone, scoring enough).
Operators also want to know what *almost* counted: objects of the type's classes that are in
the zone but still moving, or in the zone but scoring too low. This recomputes those masks from
the tracks and the rule's zone (cheap: a point-in-polygon test per object and rule), it never
changes the pipeline's decisions.
"""

from dataclasses import dataclass

import numpy as np

from detector.config.schema import ViolationType
from detector.detections import Detections
from detector.rules import RoleMap
from detector.rules.engine import ZoneRule

# Roles whose objects can make (part of) a candidate of each type; see docs/violations.md.
TYPE_ROLES = {
    ViolationType.ILLEGAL_PARKING: ("vehicle",),
    ViolationType.STREET_VENDING: ("vendor", "person", "vending_item"),
    ViolationType.STRAY_GARBAGE: ("garbage",),
}


@dataclass(frozen=True)
class ObjectView:
    """One tracked object of the rule's classes, as the rule saw it in this frame."""

    track_id: int
    label: str
    score: float
    in_zone: bool
    stationary: bool
    settled_since: float
    candidate: bool


@dataclass(frozen=True)
class RuleView:
    zone: str
    violation: str
    state: str  # idle | pending | active
    pending_since: float | None  # earliest settle time among pending objects (dwell timer)
    active_since: float | None  # first_seen_s of the open alert
    objects: tuple[ObjectView, ...]
    present: int  # objects of the type's classes in the zone scoring >= min_score, moving or not
    candidates: int  # the rule's candidates: those of them that are stationary too


def role_mask(violation: ViolationType, tracks: Detections, roles: RoleMap) -> np.ndarray:
    mask = np.zeros(len(tracks), bool)
    for role in TYPE_ROLES[violation]:
        mask |= roles.has(role, tracks.class_id)
    return mask


def view_rules(
    rules: list[ZoneRule], tracks: Detections, roles: RoleMap, width: int, height: int, *, with_objects: bool = True
) -> list[RuleView]:
    """One RuleView per rule for the frame whose tracks the engine has just judged.

    `with_objects=False` leaves `objects` empty (the report's recorder needs only the counts).
    """
    views = []
    in_zone_cache: dict[str, np.ndarray] = {}
    for rule in rules:
        if rule.zone.id not in in_zone_cache:
            in_zone_cache[rule.zone.id] = rule.zone.contains(tracks.xyxy, width, height)
        in_zone = in_zone_cache[rule.zone.id]
        relevant = role_mask(rule.violation, tracks, roles)
        scored = tracks.confidence >= rule.settings.min_score
        candidates = set(int(i) for i in rule.candidates)
        objects = tuple(
            ObjectView(
                track_id=int(tracks.tracker_id[i]),
                label=roles.labels[int(tracks.class_id[i])],
                score=round(float(tracks.confidence[i]), 3),
                in_zone=bool(in_zone[i]),
                stationary=bool(tracks.data["stationary"][i]),
                settled_since=float(tracks.data["settled_since"][i]),
                candidate=int(i) in candidates,
            )
            for i in (np.flatnonzero(relevant) if with_objects else ())
        )
        debouncer = rule.debouncer
        views.append(
            RuleView(
                zone=rule.zone.id,
                violation=rule.violation.value,
                state=debouncer.state.value,
                pending_since=debouncer.pending_since,
                active_since=debouncer.first_seen_s if debouncer.state.value == "active" else None,
                objects=objects,
                present=int((in_zone & relevant & scored).sum()),
                candidates=len(candidates),
            )
        )
    return views
