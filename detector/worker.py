"""One camera's pipeline: frame -> model -> static objects -> tracker -> rules -> alerts -> sinks."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from detector.alerts import AlertFactory, EvidenceWriter, Provenance, Sink
from detector.capture import Frame
from detector.config import AppConfig, CameraConfig, ViolationType
from detector.detect import Detector
from detector.detect.static_objects import StaticObjectDetector
from detector.detections import Detections
from detector.rules import RoleMap, ViolationEngine
from detector.track import StationaryTracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    tracks: Detections
    alerts: list[dict]
    inference_ms: float


def uses_static_objects(config: AppConfig, camera: CameraConfig) -> bool:
    """The static-new-object detector runs for cameras with a stray_garbage zone (when enabled)."""
    return config.static_objects.enabled and any(ViolationType.STRAY_GARBAGE in z.violations for z in camera.zones)


class CameraPipeline:
    """Stateful per camera; `process(frame)` runs every stage and emits alerts to the sinks."""

    def __init__(
        self,
        config: AppConfig,
        camera: CameraConfig,
        detector: Detector,
        *,
        sinks: list[Sink],
        wall_of: Callable[[float], datetime],
        evidence: EvidenceWriter | None,
        config_sha256: str,
    ) -> None:
        self.camera = camera
        self.detector = detector
        self.sinks = sinks
        self.roles = RoleMap.build(detector.names, config.roles)
        for name in self.roles.unknown:
            log.warning("camera %s: %s is not a class of model %s; ignored", camera.id, name, detector.path.name)
        self.engine = ViolationEngine(camera.zones, config.violations, config.detect, self.roles, config.timezone)
        self.tracker = StationaryTracker(
            settle_s=config.track.settle_s,
            tolerance=config.track.tolerance,
            match_iou=config.track.match_iou,
            memory_s=self.engine.memory_s,
        )
        self.static_objects = (
            StaticObjectDetector(config.static_objects, self.roles.static_object_id)
            if uses_static_objects(config, camera)
            else None
        )
        provenance = Provenance(config.site, camera.id, detector.path.name, detector.digest, config_sha256)
        self.alerts = AlertFactory(provenance, wall_of, evidence)
        self.gap_s = 0.0

    def process(self, frame: Frame) -> FrameResult:
        detections, inference_ms = self.detect(frame)
        return self.track_and_judge(detections, frame, inference_ms)

    def detect(self, frame: Frame) -> tuple[Detections, float]:
        """Stage 1, the expensive one: model detections plus static new objects, and the model's ms.

        Its output depends only on the frames, the model and its threshold, so `detector tune`
        caches it (detector/operator/cache.py) and replays only stage 2 per combination.
        """
        started = time.perf_counter()
        detections = self.detector.detect(frame.image)
        inference_ms = (time.perf_counter() - started) * 1000
        if self.static_objects is not None:
            found = self.static_objects.update(frame.image, frame.ts, detections)
            detections = Detections.merge([detections, found])
        return detections, inference_ms

    def track_and_judge(self, detections: Detections, frame: Frame, inference_ms: float = 0.0) -> FrameResult:
        """Stage 2: tracker -> rules -> debouncers -> alerts to the sinks. Cheap; stateful."""
        tracks = self.tracker.update(detections, frame.ts)
        height, width = frame.image.shape[:2]
        self.gap_s += frame.gap_before_s
        payloads = []
        for event in self.engine.update(tracks, frame.ts, self.alerts.wall_of(frame.ts), width, height):
            polygon = next(r.zone for r in self.engine.rules if r.zone.id == event.zone_id).polygon_px(width, height)
            payload = self.alerts.build(event, frame.image, polygon, {"gap_s": round(self.gap_s, 3)})
            for sink in self.sinks:
                sink.emit(payload)
            payloads.append(payload)
        return FrameResult(frame, tracks, payloads, inference_ms)

    def zone_states(self) -> dict[str, dict[str, dict]]:
        """{zone: {violation type: {"state": idle | pending | active, "alert_id": id or None}}}."""
        states: dict[str, dict[str, dict]] = {}
        for rule in self.engine.rules:
            alert_id = self.alerts.open_alert_id(rule.zone.id, rule.violation.value)
            states.setdefault(rule.zone.id, {})[rule.violation.value] = {
                "state": rule.debouncer.state.value,
                "alert_id": alert_id,
            }
        return states
