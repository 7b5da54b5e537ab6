"""Which tracked objects are candidates of each violation type (before debouncing).

Every rule takes the tracked detections of one frame and a mask of those in the zone, and
returns a mask of candidates. All require the object to be stationary and to score at least
the type's min_score (see docs/violations.md for the reasoning).
"""

import numpy as np

from detector.config.schema import Anchor, ViolationType
from detector.detections import Detections
from detector.rules.roles import RoleMap
from detector.zones.geometry import anchor_points, box_containment, box_size

VENDOR_REACH = 1.5  # an item within this many person-heights of a still person is their stall
ATTENDED_MARGIN = 0.5  # a person box grown by this fraction covers what they carry


def parking_candidates(tracks: Detections, in_zone: np.ndarray, roles: RoleMap) -> np.ndarray:
    """A stationary vehicle in the zone."""
    return in_zone & tracks.data["stationary"] & roles.has("vehicle", tracks.class_id)


def vending_candidates(tracks: Detections, in_zone: np.ndarray, roles: RoleMap) -> np.ndarray:
    """A stationary stall/cart class, or (COCO fallback) a stationary person in the zone with a
    stationary vending item (umbrella, table, produce, ...) next to them: both are candidates."""
    still = tracks.data["stationary"]
    vendors = in_zone & still & roles.has("vendor", tracks.class_id)
    people = np.flatnonzero(in_zone & still & roles.has("person", tracks.class_id))
    items = np.flatnonzero(still & roles.has("vending_item", tracks.class_id))
    if len(people) and len(items):
        feet = anchor_points(tracks.xyxy[people], Anchor.BOTTOM_CENTER)
        item_centres = anchor_points(tracks.xyxy[items], Anchor.CENTER)
        heights = tracks.xyxy[people, 3] - tracks.xyxy[people, 1]
        distance = np.linalg.norm(feet[:, None, :] - item_centres[None, :, :], axis=2)
        near = distance <= VENDOR_REACH * heights[:, None]
        vendors[people[near.any(axis=1)]] = True
        vendors[items[near.any(axis=0)]] = True
    return vendors


def garbage_candidates(tracks: Detections, in_zone: np.ndarray, roles: RoleMap) -> np.ndarray:
    """A stationary small object (garbage classes or a static new object) that nobody holds:
    its box is not inside a person's box grown by a margin."""
    litter = in_zone & tracks.data["stationary"] & roles.has("garbage", tracks.class_id)
    people = tracks.xyxy[roles.has("person", tracks.class_id)]
    if litter.any() and len(people):
        margin = (ATTENDED_MARGIN * box_size(people))[:, None] * np.array([-1, -1, 1, 1])
        attended = (box_containment(tracks.xyxy[litter], people + margin) >= 0.5).any(axis=1)
        litter[np.flatnonzero(litter)[attended]] = False
    return litter


RULES = {
    ViolationType.ILLEGAL_PARKING: parking_candidates,
    ViolationType.STREET_VENDING: vending_candidates,
    ViolationType.STRAY_GARBAGE: garbage_candidates,
}
