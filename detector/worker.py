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
        wants_garbage = any(ViolationType.STRAY_GARBAGE in z.violations for z in camera.zones)
        self.static_objects = (
            StaticObjectDetector(config.static_objects, self.roles.static_object_id)
            if config.static_objects.enabled and wants_garbage
            else None
        )
        provenance = Provenance(config.site, camera.id, detector.path.name, detector.digest, config_sha256)
        self.alerts = AlertFactory(provenance, wall_of, evidence)
        self.gap_s = 0.0

    def process(self, frame: Frame) -> FrameResult:
        started = time.perf_counter()
        detections = self.detector.detect(frame.image)
        inference_ms = (time.perf_counter() - started) * 1000
        if self.static_objects is not None:
            found = self.static_objects.update(frame.image, frame.ts, detections)
            detections = Detections.merge([detections, found])
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
