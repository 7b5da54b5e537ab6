"""One camera's live loop, run by a worker process of `detector run` (detector/supervisor.py).

    source (LiveSource: reader thread, latest frame only, reconnects) -> CameraPipeline (the same
    one replay uses) -> sinks: AlertChannel (outbox + MQTT) first, events.jsonl, open-alert state,
    log lines; every heartbeat: health file (the supervisor's liveness signal) and MQTT health.

Open alerts survive a restart: the pipeline's `OpenAlerts` keeps `{storage_dir}/state/{camera}.json`
up to date at each start/update/end, and the next worker restores them in one place
(CameraPipeline.restore_open_alerts), so an object already alerted is not alerted again under a
new id, and ends under its old id when it has gone.
"""

import bisect
import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detector.alerts import EvidenceWriter, JsonlSink, LogSink, OpenAlerts
from detector.backoff import Backoff
from detector.budget import GatedDetector, InferenceSlots
from detector.capture import open_source
from detector.config import AppConfig
from detector.health import HealthMeter, health_path
from detector.mqtt.channel import AlertChannel
from detector.worker import CameraPipeline

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0


class StreamWall:
    """Stream time -> wall clock. Stream time skips outages, so each gap starts a new anchor."""

    def __init__(self) -> None:
        self._ts: list[float] = []
        self._wall: list[datetime] = []

    def record(self, ts: float, gap_before_s: float) -> None:
        if not self._ts or gap_before_s:
            self._ts.append(ts)
            self._wall.append(datetime.now(UTC))
            del self._ts[:-1000], self._wall[:-1000]

    def __call__(self, ts: float) -> datetime:
        if not self._ts:
            return datetime.now(UTC)
        i = max(0, bisect.bisect_right(self._ts, ts) - 1)
        return self._wall[i] + timedelta(seconds=ts - self._ts[i])


def run_camera(config: AppConfig, camera_id: str, stop: threading.Event, slots_dir: Path | None = None) -> None:
    """Until `stop` is set. Stream faults are handled inside the source; errors a user can cause
    (model, storage) raise DetectorError before the loop starts."""
    camera = config.camera(camera_id)
    storage = Path(config.storage_dir)
    slots = InferenceSlots(slots_dir) if slots_dir is not None else None
    meter = HealthMeter(camera.id, path=health_path(storage, camera.id))
    channel = AlertChannel.open(config, camera.id, evidence_root=storage, meter=meter)
    wall = StreamWall()
    pipeline = CameraPipeline.build(
        config,
        camera,
        sinks=[channel, JsonlSink(storage / "events" / f"{camera.id}.jsonl", append=True), LogSink()],
        wall_of=wall,
        evidence=EvidenceWriter(storage),
        open_alerts=OpenAlerts(storage / "state" / f"{camera.id}.json"),
        gate=(lambda detector: GatedDetector(detector, slots)) if slots else None,
    )
    pipeline.restore_open_alerts()
    source = open_source(
        camera.source,
        config.detect.fps,
        live=True,
        name=camera.id,
        transport=camera.transport,
        open_timeout_s=camera.open_timeout_s,
        read_timeout_s=camera.read_timeout_s,
        keyframes_only=camera.keyframes_only,
        backoff=Backoff(camera.reconnect_min_s, camera.reconnect_max_s),
    )
    meter.source = source
    meter.report("starting")  # after the model loaded: from here the supervisor expects beats
    log.info("camera %s started", camera.id, extra={"kv": {"event": "worker_started", "pid": os.getpid()}})
    next_beat = time.monotonic() + HEARTBEAT_S
    try:
        for frame in source.frames(timeout_s=min(0.5, HEARTBEAT_S)):  # None: a heartbeat tick
            if stop.is_set():
                break
            if frame is not None:
                wall.record(frame.ts, frame.gap_before_s)
                waited = slots.waited_s if slots else 0.0
                result = pipeline.process(frame)
                wait_ms = ((slots.waited_s if slots else 0.0) - waited) * 1000
                meter.frame(frame.ts, result.inference_ms - wait_ms, wait_ms, open_alerts=len(result.open_alerts))
                channel.observe(result.zone_states())
            if time.monotonic() >= next_beat:
                meter.report()
                next_beat = time.monotonic() + HEARTBEAT_S
    finally:
        source.close()
        pipeline.close()
        meter.report("stopped")
        if slots is not None:
            slots.close()
        problem = channel.problem()
        if problem:
            log.warning("%s", problem, extra={"kv": {"event": "outbox_left"}})
        log.info("camera %s stopped", camera.id, extra={"kv": {"event": "worker_stopped"}})
