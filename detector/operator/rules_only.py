"""Rules-only replay: the real pipeline's track-and-judge stage over cached detections.

A fresh `CameraPipeline` per call (fresh tracker, engine, debouncers), fed frame by frame with
the cached view state and detect stage's output through `CameraPipeline.track_and_judge` — the
very code `process()` runs live (a paused view included), so a sweep's numbers are the replay's.
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from detector.alerts import Alert, EvidenceWriter, Sink
from detector.config import AppConfig, CameraConfig
from detector.errors import ConfigError
from detector.operator.cache import DetectionCache
from detector.worker import CameraPipeline, FrameResult


def replay_rules(
    config: AppConfig,
    camera: CameraConfig,
    cache: DetectionCache,
    *,
    origin: datetime,
    sinks: list[Sink] | None = None,
    evidence: EvidenceWriter | None = None,
    on_frame: Callable[[FrameResult], None] | None = None,
    until_s: float | None = None,
) -> list[Alert]:
    """Alert payloads of `camera` under `config` over the cached clip (up to `until_s`)."""
    threshold = config.model_threshold
    if threshold < cache.model_threshold - 1e-9:
        raise ConfigError(
            f"cached detections were made at model threshold {cache.model_threshold:g}; "
            f"this config needs {threshold:g} (rebuild the cache with the lower threshold)"
        )
    pipeline = CameraPipeline.build(
        config,
        camera,
        detector=cache.model(),
        sinks=sinks or (),
        wall_of=lambda ts: origin + timedelta(seconds=ts),
        evidence=evidence,
    )
    static_id = cache.static_object_id
    alerts: list[Alert] = []
    for frame, look, view in cache.frames():
        if until_s is not None and frame.ts > until_s + 1e-9:
            break
        pipeline.view = view  # what `watch` said live: paused frames are not judged
        # what the model would have returned at this config's threshold (see cache.py)
        detections = look.detections
        keep = (detections.confidence >= threshold) | (detections.class_id == static_id)
        result = pipeline.track_and_judge(replace(look, detections=detections[keep]), frame)
        alerts += result.alerts
        if on_frame is not None:
            on_frame(result)
    return alerts
