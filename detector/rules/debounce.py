"""The violation state machine of one (camera, zone, violation type). See docs/violations.md.

    IDLE ──candidate settles──▶ PENDING ──a candidate stationary for dwell_s──▶ ACTIVE (start)
      ▲                           │                                              │  │
      └──no candidate for grace_s─┘            update every update_s while seen ─┘  │
      ▲                                                                              │
      └──────────── no candidate for clear_s (end; its objects cool down) ──────────┘

Pure: driven only by `update(ts, candidates, enforced)` with stream time in seconds. Stream
gaps are cut out of stream time by the source, so timers pause over them by construction.

Identity comes from the tracker (detector/track/stationary.py): a candidate that `replaces`
another object (a different car on the spot of one that left) is a newcomer: it does not continue
an open alert it is not part of, inherit a dwell record or fall under a cooldown; the alert ends
after clear_s and the newcomer starts its own after its own dwell.
A `hidden` candidate (a stationary object behind a bus, or one in a region the model did not look
at this frame) keeps its dwell record and an open alert alive, but only a visible one can start an
alert: evidence shows what it accuses.
"""

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from detector.config.schema import ViolationSettings
from detector.zones.geometry import box_iou

SAME_PLACE_IOU = 0.5  # a candidate this much on top of a remembered one is the same object


class State(StrEnum):
    IDLE = "idle"
    PENDING = "pending"
    ACTIVE = "active"


@dataclass(frozen=True)
class Candidate:
    """One object that currently satisfies the zone's rule. `box` is normalised [x1, y1, x2, y2]."""

    track_id: int
    settled_since: float
    box: tuple[float, float, float, float]
    label: str
    score: float
    replaces: int = 0  # the tracker saw it take the place of this (differently-looking) track id: a newcomer
    hidden: bool = False  # not seen this frame: hidden behind another object on its place, or not looked at


@dataclass(frozen=True)
class Transition:
    event: str  # "start" | "update" | "end"
    ts: float
    first_seen_s: float
    objects: tuple[Candidate, ...]
    reason: str = ""


@dataclass
class _Pending:
    first_seen: float
    last_seen: float
    candidate: Candidate


@dataclass
class _Cooldown:
    box: tuple[float, float, float, float]
    until: float


@dataclass
class Debouncer:
    settings: ViolationSettings
    state: State = State.IDLE
    first_seen_s: float = 0.0
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _cooldowns: list[_Cooldown] = field(default_factory=list)
    _last_seen: float = 0.0
    _last_emit: float = 0.0
    _objects: tuple[Candidate, ...] = ()

    def update(self, ts: float, candidates: list[Candidate], enforced: bool = True) -> list[Transition]:
        """Feed one sampled frame; returns the events it causes (usually none)."""
        if not enforced:
            return self._leave_schedule(ts)
        self._cooldowns = [c for c in self._cooldowns if c.until > ts]
        candidates = [c for c in candidates if not self._cooling_down(c)]
        self._remember(ts, candidates)
        if self.state is State.ACTIVE:  # a newcomer on another object's place is not this alert's
            alerted = {o.track_id for o in self._objects}
            candidates = [c for c in candidates if c.track_id in alerted or not c.replaces]
        visible = tuple(c for c in candidates if not c.hidden)
        if candidates:
            self._last_seen = ts
            self._objects = visible or self._objects
        if self.state is State.ACTIVE:
            return self._while_active(ts, visible or candidates)
        self.state = State.PENDING if self._pending else State.IDLE
        ready = [p for p in self._pending.values() if ts - p.first_seen >= self.settings.dwell_s - 1e-9]
        if not ready or not visible:
            return []
        self.state = State.ACTIVE
        self.first_seen_s = min(p.first_seen for p in ready)
        self._last_emit = ts
        return [Transition("start", ts, self.first_seen_s, visible)]

    def restore(self, ts: float, objects: tuple[Candidate, ...]) -> None:
        """Resume an alert that was ACTIVE in an earlier process (a worker restart, docs/edge.md).

        The new process's stream time starts again at 0, so the alert is active from `ts` on: if its
        objects are still there it stays open (no second `start`); if they have gone it ends after
        clear_s of stream time, under the same id (AlertFactory.restore).
        """
        self.state = State.ACTIVE
        self.first_seen_s = ts
        self._last_seen = self._last_emit = ts
        self._objects = tuple(objects)
        self._pending.clear()

    @property
    def pending_since(self) -> float | None:
        """Earliest settle time among pending candidates (for timers on screen)."""
        return min((p.first_seen for p in self._pending.values()), default=None)

    def _remember(self, ts: float, candidates: list[Candidate]) -> None:
        """Per-object dwell records; occlusions and misses shorter than grace_s keep them.

        A candidate under a new track id on top of a record that is not seen now is the same
        object re-identified (the tracker lost it): it inherits the record and its dwell, unless
        the tracker saw it replace that object. A hidden candidate only keeps its own record.
        """
        seen = {c.track_id for c in candidates}
        for candidate in candidates:
            record = self._pending.get(candidate.track_id) or self._inherit(candidate, seen)
            if record is None and candidate.hidden:
                continue
            if record is None:
                record = _Pending(first_seen=candidate.settled_since, last_seen=ts, candidate=candidate)
            record.last_seen, record.candidate = ts, candidate
            self._pending[candidate.track_id] = record
        self._pending = {k: p for k, p in self._pending.items() if ts - p.last_seen <= self.settings.grace_s + 1e-9}

    def _inherit(self, candidate: Candidate, seen: set[int]) -> _Pending | None:
        for track_id, record in list(self._pending.items()):
            if track_id not in seen and not candidate.replaces and _same_place(candidate.box, record.candidate.box):
                return self._pending.pop(track_id)
        return None

    def _while_active(self, ts: float, candidates: list[Candidate]) -> list[Transition]:
        if candidates:
            if self.settings.update_s and ts - self._last_emit >= self.settings.update_s - 1e-9:
                self._last_emit = ts
                return [Transition("update", ts, self.first_seen_s, tuple(candidates))]
            return []
        if ts - self._last_seen >= self.settings.clear_s - 1e-9:
            return [self._end(ts, "cleared")]
        return []

    def _end(self, ts: float, reason: str) -> Transition:
        self._cooldowns += [_Cooldown(c.box, ts + self.settings.cooldown_s) for c in self._objects]
        self._pending.clear()
        self.state = State.IDLE
        return Transition("end", ts, self.first_seen_s, self._objects, reason)

    def _leave_schedule(self, ts: float) -> list[Transition]:
        """Outside its schedule a zone raises nothing: an open alert ends, pending ones drop."""
        events = [self._end(ts, "schedule")] if self.state is State.ACTIVE else []
        self._pending.clear()
        self.state = State.IDLE
        return events

    def _cooling_down(self, candidate: Candidate) -> bool:
        return not candidate.replaces and any(_same_place(candidate.box, c.box) for c in self._cooldowns)


def _same_place(a: tuple, b: tuple) -> bool:
    return float(box_iou(np.array([a]), np.array([b]))[0, 0]) >= SAME_PLACE_IOU
