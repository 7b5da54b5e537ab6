"""`detector replay`: one camera over a recorded clip, as fast as it goes.

The summary it returns names the stretches the camera's view was paused (moved or blocked,
detector/view.py): the timers stood still there, so a dwell across one took longer on the clock.
"""

import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from detector.alerts import Alert, ConsoleSink, EvidenceWriter, JsonlSink
from detector.annotate import Annotator
from detector.capture import open_source
from detector.config import AppConfig
from detector.health import HealthMeter
from detector.mqtt.channel import AlertChannel
from detector.view import ViewState
from detector.worker import CameraPipeline, FrameResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PausedStretch:
    """Stream time the view was paused: neither the model nor the rules ran, the timers stood still."""

    status: str  # view_changed | view_blocked
    from_s: float  # the first paused frame (the frames began to say so `view.hold_s` earlier)
    to_s: float | None  # the first frame judged again; None: still paused when the clip ended
    reason: str  # from the frame that began it, e.g. "another view (match 0.24 < 0.3)"
    awaiting_operator: bool = False  # `view.resume: operator`: only an operator's confirmation ends it

    def describe(self) -> str:
        """One line: "view paused 15.5-36.5 s: view_changed: another view (match 0.24 < 0.3)"."""
        span = f"{self.from_s:.1f}-{self.to_s:.1f} s" if self.to_s is not None else f"from {self.from_s:.1f} s to the end"
        waiting = " (waiting for an operator)" if self.awaiting_operator else ""
        return f"view paused {span}: {self.status}: {self.reason}{waiting}"


def paused_stretches(views: Iterable[tuple[float, ViewState]]) -> list[PausedStretch]:
    """The paused stretches of a replay from each frame's (stream time, view state), in order.
    A change of status without an ok frame between (covered, then turned away) starts another."""
    stretches: list[PausedStretch] = []
    current: PausedStretch | None = None
    for ts, view in views:
        if current is not None and view.status != current.status:
            stretches.append(replace(current, to_s=ts))
            current = None
        if current is None and view.paused:
            current = PausedStretch(view.status.value, ts, None, view.reason)
        if current is not None and view.awaiting_operator:
            current = replace(current, awaiting_operator=True)
    return stretches + ([current] if current is not None else [])


@dataclass(frozen=True)
class ReplaySummary:
    frames: int
    alerts: list[Alert]
    stream_s: float
    wall_s: float
    events_path: Path
    video_path: Path | None
    publish_problem: str | None = None  # alerts left in the outbox with a broker configured (docs/mqtt.md)
    paused: list[PausedStretch] = field(default_factory=list)  # the view's pauses, in stream order


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
    views: list[tuple[float, ViewState]] = []
    frames, last_ts, started = 0, 0.0, time.perf_counter()
    try:
        for frame in clip.frames():
            result = pipeline.process(frame)
            alerts += result.alerts
            views.append((frame.ts, result.view))
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
    return ReplaySummary(frames, alerts, last_ts, wall_s, events_path, video_path, problem, paused_stretches(views))
