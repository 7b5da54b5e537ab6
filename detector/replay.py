"""`detector replay`: one camera over a recorded clip, as fast as it goes."""

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from detector.alerts import ConsoleSink, EvidenceWriter, JsonlSink
from detector.annotate import Annotator
from detector.capture import FileSource
from detector.config import AppConfig, config_digest
from detector.detect import open_model
from detector.mqtt.channel import AlertChannel
from detector.worker import CameraPipeline, FrameResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplaySummary:
    frames: int
    alerts: list[dict]
    stream_s: float
    wall_s: float
    events_path: Path
    video_path: Path | None
    publish_problem: str | None = None  # alerts left in the outbox with a broker configured (docs/mqtt.md)


def model_threshold(config: AppConfig) -> float:
    """The model keeps everything any zone or type could use; rules apply their own min_score."""
    scores = [config.detect.min_score]
    for camera in config.cameras:
        for zone in camera.zones:
            scores += [zone.settings_for(v, config.violations, config.detect).min_score for v in zone.violations]
    return min(scores)


def replay(
    config: AppConfig,
    camera_id: str,
    *,
    out_dir: Path,
    source: Path | None = None,
    annotate: bool = False,
    start_at: datetime | None = None,
    progress: bool | None = None,
    quiet: bool = False,
    on_frame: Callable[[FrameResult, CameraPipeline], None] | None = None,
) -> ReplaySummary:
    camera = config.camera(camera_id)
    clip = FileSource(source or camera.source)
    detector = open_model(config.model, model_threshold(config), config.detect.nms_iou)
    out_dir = Path(out_dir)
    origin = start_at or datetime.now(UTC)
    events_path = out_dir / "events.jsonl"
    # With a broker, the outbox first: an alert is durable before anything else sees it
    # (docs/mqtt.md). Without one, a replay keeps its alerts to its own folder: alerts of tuning
    # runs must not wait in the outbox for the day a broker is configured.
    channel = AlertChannel.open(config, camera.id, evidence_root=out_dir, quiet=True) if config.mqtt else None
    sinks = ([channel] if channel else []) + [JsonlSink(events_path)] + ([] if quiet else [ConsoleSink()])
    pipeline = CameraPipeline(
        config,
        camera,
        detector,
        sinks=sinks,
        wall_of=lambda ts: origin + timedelta(seconds=ts),
        evidence=EvidenceWriter(out_dir),
        config_sha256=config_digest(config),
    )
    video_path = out_dir / f"{camera.id}.annotated.mp4" if annotate else None
    annotator = Annotator(video_path, config.detect.fps, pipeline.engine, pipeline.roles) if annotate else None
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=round(clip.duration_s or 0, 1) or None, unit="s", desc=camera.id, disable=not show, leave=False)
    alerts: list[dict] = []
    frames, last_ts, started = 0, 0.0, time.perf_counter()
    try:
        for frame in clip.frames(config.detect.fps):
            result = pipeline.process(frame)
            alerts += result.alerts
            if channel is not None:
                channel.observe(pipeline.zone_states(), frame.ts, result.inference_ms)
            if annotator is not None:
                annotator.write(result)
            if on_frame is not None:  # e.g. the report's timeline recorder (detector/operator)
                on_frame(result, pipeline)
            bar.update(round(frame.ts - last_ts, 3))
            frames, last_ts = frames + 1, frame.ts
    finally:
        bar.close()
        for sink in sinks:
            sink.close()
        if annotator is not None:
            annotator.close()
    if clip.decode_errors:
        log.warning("%s: %d packets could not be decoded and were skipped", clip.path.name, clip.decode_errors)
    wall_s = time.perf_counter() - started
    problem = channel.problem() if channel is not None else None
    return ReplaySummary(frames, alerts, last_ts, wall_s, events_path, video_path, problem)
