"""Zones x violation types of one camera: rule candidates fed to their debouncers."""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from detector.config.schedule import in_schedule
from detector.config.schema import DetectConfig, ViolationDefaults, ViolationSettings, ViolationType, ZoneConfig
from detector.detections import Detections
from detector.rules.debounce import Candidate, Debouncer, Transition
from detector.rules.roles import RoleMap
from detector.rules.violations import RULES
from detector.zones import Zone


@dataclass(frozen=True)
class ZoneEvent:
    zone_id: str
    violation: ViolationType
    transition: Transition


@dataclass
class ZoneRule:
    """One (zone, violation type) pair with its resolved settings and state machine."""

    zone: Zone
    violation: ViolationType
    settings: ViolationSettings
    debouncer: Debouncer
    candidates: np.ndarray  # indices into the last frame's tracks (for drawing and explain)


class ViolationEngine:
    """`update(tracks, ts, wall, width, height) -> list[ZoneEvent]` for one camera."""

    def __init__(
        self,
        zones: tuple[ZoneConfig, ...],
        defaults: ViolationDefaults,
        detect: DetectConfig,
        roles: RoleMap,
        timezone: str,
    ) -> None:
        self.roles = roles
        self.timezone = ZoneInfo(timezone)
        self.rules: list[ZoneRule] = []
        self._schedules = {z.id: z.schedule_windows for z in zones}
        for zone_config in zones:
            zone = Zone(zone_config)
            for violation in zone_config.violations:
                settings = zone_config.settings_for(violation, defaults, detect)
                self.rules.append(ZoneRule(zone, violation, settings, Debouncer(settings), np.zeros(0, np.int64)))

    @property
    def memory_s(self) -> float:
        """How long the tracker must remember an unseen object for these rules."""
        return max((max(r.settings.grace_s, r.settings.clear_s) for r in self.rules), default=10.0)

    def update(self, tracks: Detections, ts: float, wall: datetime, width: int, height: int) -> list[ZoneEvent]:
        local = wall.astimezone(self.timezone)
        scale = np.array([width, height, width, height], np.float32)
        events: list[ZoneEvent] = []
        in_zone_cache: dict[str, np.ndarray] = {}
        for rule in self.rules:
            if rule.zone.id not in in_zone_cache:
                in_zone_cache[rule.zone.id] = rule.zone.contains(tracks.xyxy, width, height)
            scored = tracks.confidence >= rule.settings.min_score
            mask = RULES[rule.violation](tracks, in_zone_cache[rule.zone.id] & scored, self.roles)
            rule.candidates = np.flatnonzero(mask)
            candidates = [
                Candidate(
                    track_id=int(tracks.tracker_id[i]),
                    settled_since=float(tracks.data["settled_since"][i]),
                    box=tuple(round(float(v), 4) for v in tracks.xyxy[i] / scale),
                    label=self.roles.labels[int(tracks.class_id[i])],
                    score=round(float(tracks.confidence[i]), 3),
                )
                for i in rule.candidates
            ]
            enforced = in_schedule(self._schedules[rule.zone.id], local)
            for transition in rule.debouncer.update(ts, candidates, enforced):
                events.append(ZoneEvent(rule.zone.id, rule.violation, transition))
        return events
