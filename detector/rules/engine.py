"""Zones x violation types of one camera: rule candidates fed to their debouncers.

`update` returns the frame's events and a frozen snapshot of every (zone, type) rule: what it
saw and where its state machine stands. Views (annotated video, explain, the report's timeline,
zone-state messages) read the snapshot, never the engine.
"""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from detector.config.schedule import in_schedule
from detector.config.schema import DetectConfig, ViolationDefaults, ViolationSettings, ViolationType, ZoneConfig
from detector.detections import Detections
from detector.rules.debounce import Candidate, Debouncer, State, Transition
from detector.rules.roles import RoleMap
from detector.rules.violations import RULES, ViolationRule
from detector.zones.zone import Zone


@dataclass(frozen=True)
class ZoneEvent:
    zone_id: str
    violation: ViolationType
    polygon: np.ndarray  # (k, 2) normalised: the zone as configured, for the evidence snapshot
    transition: Transition


@dataclass(frozen=True)
class RuleSnapshot:
    """One (zone, type) rule after a frame. Masks are (n,) bool over that frame's tracks."""

    zone: str
    violation: ViolationType
    settings: ViolationSettings
    polygon: np.ndarray  # (k, 2) normalised
    state: State
    pending_since: float | None  # earliest settle time among pending candidates (dwell timer)
    active_since: float | None  # first_seen_s of the open alert
    in_zone: np.ndarray
    relevant: np.ndarray  # objects of the type's roles (what could make a candidate)
    scored: np.ndarray  # confidence >= the rule's min_score
    candidates: np.ndarray  # the rule's candidates (stationary, in the zone, scoring enough)


@dataclass(frozen=True)
class Judgement:
    events: tuple[ZoneEvent, ...]
    rules: tuple[RuleSnapshot, ...]


@dataclass
class _ZoneRule:
    zone: Zone
    rule: type[ViolationRule]
    settings: ViolationSettings
    debouncer: Debouncer


class ViolationEngine:
    """`update(tracks, ts, wall, width, height) -> Judgement` for one camera."""

    def __init__(
        self,
        zones: tuple[ZoneConfig, ...],
        defaults: ViolationDefaults,
        detect: DetectConfig,
        roles: RoleMap,
        timezone: str,
    ) -> None:
        self._roles = roles
        self._timezone = ZoneInfo(timezone)
        self._schedules = {z.id: z.schedule_windows for z in zones}
        self._rules: list[_ZoneRule] = []
        for zone_config in zones:
            zone = Zone(zone_config)
            for violation in zone_config.violations:
                settings = zone_config.settings_for(violation, defaults, detect)
                self._rules.append(_ZoneRule(zone, RULES[violation], settings, Debouncer(settings)))

    @property
    def memory_s(self) -> float:
        """How long the tracker must remember an unseen object for these rules."""
        return max((max(r.settings.grace_s, r.settings.clear_s) for r in self._rules), default=10.0)

    @property
    def cooldown_s(self) -> float:
        """The longest cooldown of these rules (how long a place's last occupant matters)."""
        return max((r.settings.cooldown_s for r in self._rules), default=0.0)

    def update(self, tracks: Detections, ts: float, wall: datetime, width: int, height: int) -> Judgement:
        local = wall.astimezone(self._timezone)
        scale = np.array([width, height, width, height], np.float32)
        events: list[ZoneEvent] = []
        snapshots: list[RuleSnapshot] = []
        in_zone_of: dict[str, np.ndarray] = {}
        zeros = np.zeros(len(tracks), np.int64)  # tracks without identity data: nothing replaced or unseen
        for r in self._rules:
            if r.zone.id not in in_zone_of:
                in_zone_of[r.zone.id] = r.zone.contains(tracks.xyxy, width, height)
            in_zone = in_zone_of[r.zone.id]
            scored = tracks.confidence >= r.settings.min_score
            mask = r.rule.candidates(tracks, in_zone & scored, self._roles)
            replaces = tracks.data.get("replaces", zeros)
            # hidden behind another object, or carried where the model did not look: not seen now
            unseen = tracks.data.get("hidden", zeros).astype(bool) | tracks.data.get("carried", zeros).astype(bool)
            candidates = [
                Candidate(
                    track_id=int(tracks.tracker_id[i]),
                    settled_since=float(tracks.data["settled_since"][i]),
                    box=tuple(round(float(v), 4) for v in tracks.xyxy[i] / scale),
                    label=self._roles.labels[int(tracks.class_id[i])],
                    score=round(float(tracks.confidence[i]), 3),
                    replaces=int(replaces[i]),
                    hidden=bool(unseen[i]),
                )
                for i in np.flatnonzero(mask)
            ]
            violation = ViolationType(r.rule.type)
            enforced = in_schedule(self._schedules[r.zone.id], local)
            for transition in r.debouncer.update(ts, candidates, enforced):
                events.append(ZoneEvent(r.zone.id, violation, r.zone.normalised, transition))
            relevant = self._roles.has_any(r.rule.roles, tracks.class_id)
            snapshots.append(self._snapshot(r, violation, in_zone, relevant, scored, mask))
        return Judgement(tuple(events), tuple(snapshots))

    def restore(self, zone_id: str, violation: str, ts: float, objects: tuple[Candidate, ...]) -> bool:
        """Put an alert opened by an earlier process back as ACTIVE (Debouncer.restore); False
        when the config no longer has that (zone, type)."""
        for r in self._rules:
            if r.zone.id == zone_id and r.rule.type == violation:
                r.debouncer.restore(ts, objects)
                return True
        return False

    @staticmethod
    def _snapshot(r: _ZoneRule, violation, in_zone, relevant, scored, candidates) -> RuleSnapshot:
        d = r.debouncer
        return RuleSnapshot(
            zone=r.zone.id,
            violation=violation,
            settings=r.settings,
            polygon=r.zone.normalised,
            state=d.state,
            pending_since=d.pending_since,
            active_since=d.first_seen_s if d.state is State.ACTIVE else None,
            in_zone=in_zone,
            relevant=relevant,
            scored=scored,
            candidates=candidates,
        )
