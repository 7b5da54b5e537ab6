"""What each (zone, violation type) rule saw in one frame, read off the frame's rule snapshots.

The engine's snapshot (detector/rules/engine.py) carries, per rule, the masks of the frame's
objects of the type's roles, in the zone, scoring enough and the final candidates. Operators
also want to know what *almost* counted (in the zone but moving, or scoring too low): this turns
the masks into per-object views; it never changes the pipeline's decisions.
"""

from dataclasses import dataclass

import numpy as np

from detector.view import OK_FROM_START, ViewState
from detector.worker import FrameResult


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
    hidden: bool = False  # not seen: hidden behind another object on its place (the tracker)
    carried: bool = False  # not looked at: its region had no motion; carried at its last box (the tracker)
    replaces: int = 0  # the id of the differently-looking object whose place it took (0: none)


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
    view: ViewState = OK_FROM_START  # the camera's view (paused: the rule was not judged this frame)


def view_rules(result: FrameResult, *, with_objects: bool = True) -> list[RuleView]:
    """One RuleView per rule of the frame. `with_objects=False` leaves `objects` empty (the
    report's recorder needs only the counts)."""
    tracks = result.tracks
    seen = not result.view.paused  # paused: the rules are held as last judged, their masks not of this frame
    views = []
    for rule in result.rules:
        objects = tuple(
            ObjectView(
                track_id=int(tracks.tracker_id[i]),
                label=result.labels[int(tracks.class_id[i])],
                score=round(float(tracks.confidence[i]), 3),
                in_zone=bool(rule.in_zone[i]),
                stationary=bool(tracks.data["stationary"][i]),
                settled_since=float(tracks.data["settled_since"][i]),
                candidate=bool(rule.candidates[i]),
                hidden=bool(tracks.data["hidden"][i]) if "hidden" in tracks.data else False,
                carried=bool(tracks.data["carried"][i]) if "carried" in tracks.data else False,
                replaces=int(tracks.data["replaces"][i]) if "replaces" in tracks.data else 0,
            )
            for i in (np.flatnonzero(rule.relevant) if with_objects and seen else ())
        )
        views.append(
            RuleView(
                zone=rule.zone,
                violation=rule.violation.value,
                state=rule.state.value,
                pending_since=rule.pending_since,
                active_since=rule.active_since,
                objects=objects,
                present=int((rule.in_zone & rule.relevant & rule.scored).sum()) if seen else 0,
                candidates=int(rule.candidates.sum()) if seen else 0,
                view=result.view,
            )
        )
    return views
