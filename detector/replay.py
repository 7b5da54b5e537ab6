"""`detector replay`: one camera over a recorded clip, as fast as it goes."""

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from detector.alerts import Alert, ConsoleSink, EvidenceWriter, JsonlSink
from detector.annotate import Annotator
from detector.capture import open_source
from detector.config import AppConfig
from detector.health import HealthMeter
from detector.mqtt.channel import AlertChannel
from detector.worker import CameraPipeline, FrameResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplaySummary:
    frames: int
    alerts: list[Alert]
    stream_s: float
    wall_s: float
    events_path: Path
    video_path: Path | None
    publish_problem: str | None = None  # alerts left in the outbox with a broker configured (docs/mqtt.md)


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
    on_frame: Callable[[FrameResult], None] | None = None,
) -> ReplaySummary:
    camera = config.camera(camera_id)
    clip = open_source(source or camera.source, config.detect.fps)
    out_dir = Path(out_dir)
    origin = start_at or datetime.now(UTC)
    events_path = out_dir / "events.jsonl"
    # With a broker, the outbox first: an alert is durable before anything else sees it
    # (docs/mqtt.md). Without one, a replay keeps its alerts to its own folder: alerts of tuning
    # runs must not wait in the outbox for the day a broker is configured.
    # Its health goes to the broker only: the health files belong to a running `detector run`.
    meter = HealthMeter(camera.id, source=clip) if config.mqtt else None
    channel = AlertChannel.open(config, camera.id, evidence_root=out_dir, quiet=True, meter=meter) if config.mqtt else None
    sinks = ([channel] if channel else []) + [JsonlSink(events_path)] + ([] if quiet else [ConsoleSink()])
    pipeline = CameraPipeline.build(
        config, camera, sinks=sinks, wall_of=lambda ts: origin + timedelta(seconds=ts), evidence=EvidenceWriter(out_dir)
    )
    video_path = out_dir / f"{camera.id}.annotated.mp4" if annotate else None
    annotator = Annotator(video_path, config.detect.fps) if annotate else None
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=round(clip.duration_s or 0, 1) or None, unit="s", desc=camera.id, disable=not show, leave=False)
    alerts: list[Alert] = []
    frames, last_ts, started = 0, 0.0, time.perf_counter()
    try:
        for frame in clip.frames():
            result = pipeline.process(frame)
            alerts += result.alerts
            if channel is not None:
                channel.observe(result.zone_states())
                meter.frame(frame.ts, result.inference_ms, open_alerts=len(result.open_alerts))
            if annotator is not None:
                annotator.write(result)
            if on_frame is not None:  # e.g. the report's timeline recorder (detector/operator)
                on_frame(result)
            bar.update(round(frame.ts - last_ts, 3))
            frames, last_ts = frames + 1, frame.ts
    finally:
        bar.close()
        pipeline.close()
        if annotator is not None:
            annotator.close()
    if clip.stats.decode_errors:
        log.warning("%s: %d packets could not be decoded and were skipped", clip.name, clip.stats.decode_errors)
    wall_s = time.perf_counter() - started
    problem = channel.problem() if channel is not None else None
    return ReplaySummary(frames, alerts, last_ts, wall_s, events_path, video_path, problem)
