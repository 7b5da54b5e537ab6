"""One camera's live loop, run by a worker process of `detector run` (detector/supervisor.py).

    source (LiveSource: reader thread, latest frame only, reconnects) -> CameraPipeline (the same
    one replay uses) -> sinks: AlertChannel (outbox + MQTT) first, events.jsonl, open-alert state,
    log lines; every heartbeat: health file (the supervisor's liveness signal) and MQTT health,
    and an operator's confirmation of a paused view, if one is waiting (detector/view_confirm.py).

Open alerts survive a restart: the pipeline's `OpenAlerts` keeps `{storage_dir}/state/{camera}.json`
up to date at each start/update/end, and the next worker restores them in one place
(CameraPipeline.restore_open_alerts), so an object already alerted is not alerted again under a
new id, and ends under its old id when it has gone.

A full or read-only disk never stops the loop: every write reports to the camera's `Storage`
and degrades on its own (detector/storage.py); a retention thread keeps the camera's evidence and
events files within `retention` (detector/retention.py).
"""

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detector.alerts import EvidenceWriter, JsonlSink, LogSink, OpenAlerts
from detector.backoff import Backoff
from detector.budget import GatedDetector, InferenceSlots
from detector.capture import open_camera
from detector.config import AppConfig
from detector.health import HealthMeter
from detector.mqtt.channel import AlertChannel
from detector.retention import CameraFiles, Retention
from detector.storage import Storage
from detector.view_confirm import take_confirmation
from detector.worker import CameraPipeline

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0


class StreamWall:
    """Stream time -> wall clock (`at`, `first_seen_at`, schedules), docs/edge.md "Wall clock".

    Stream time skips outages, so each gap starts a new anchor. It also runs on the camera's
    clock: when the box's clock and the mapping disagree by more than MAX_SKEW_S (the clock was
    stepped, or the camera's clock drifted over weeks), every anchor moves by the difference, so
    moments already seen are expressed on the new clock too and durations stay true.
    """

    MAX_SKEW_S = 5.0  # more than a slow frame's lag; a clock step or drift beyond it is followed

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._ts: list[float] = []
        self._wall: list[datetime] = []

    def record(self, ts: float, gap_before_s: float) -> None:
        now = self._clock()
        if not self._ts or gap_before_s:
            self._ts.append(ts)
            self._wall.append(now)
            del self._ts[:-1000], self._wall[:-1000]
            return
        skew = now - self(ts)
        if abs(skew.total_seconds()) > self.MAX_SKEW_S:
            self._wall = [wall + skew for wall in self._wall]
            log.warning(
                "wall clock stepped by %+.1f s against stream time; `at` and schedules follow it",
                skew.total_seconds(),
                extra={"kv": {"event": "wall_clock_step", "step_s": round(skew.total_seconds(), 1)}},
            )

    def __call__(self, ts: float) -> datetime:
        if not self._ts:
            return self._clock()
        i = max(0, bisect.bisect_right(self._ts, ts) - 1)
        return self._wall[i] + timedelta(seconds=ts - self._ts[i])


def run_camera(
    config: AppConfig,
    camera_id: str,
    stop: threading.Event,
    slots_dir: Path | None = None,
    beat: Callable[[], None] | None = None,
) -> None:
    """Until `stop` is set. Stream faults are handled inside the source; errors a user can cause
    (model, storage) raise DetectorError before the loop starts. `beat`: called every heartbeat
    (the supervisor's liveness signal; the health file is for `detector status`)."""
    camera = config.camera(camera_id)
    files = CameraFiles(Path(config.storage_dir), camera.id)
    storage = Storage(files.storage_dir)  # every write below reports to it (a full disk)
    slots = InferenceSlots(slots_dir) if slots_dir is not None else None
    meter = HealthMeter(camera.id, path=files.health, storage=storage)
    channel = AlertChannel.open(config, camera.id, evidence_root=files.storage_dir, meter=meter)
    wall = StreamWall()
    events = JsonlSink(files.events, append=True, storage=storage, rotate_bytes=int(config.retention.events_file_mb * 2**20))
    pipeline = CameraPipeline.build(
        config,
        camera,
        sinks=[channel, events, LogSink()],
        wall_of=wall,
        evidence=EvidenceWriter(files.storage_dir, files.evidence_folder, storage),
        open_alerts=OpenAlerts(files.state, storage),
        gate=(lambda detector: GatedDetector(detector, slots)) if slots else None,
    )
    retention = Retention(files, config.retention, storage, channel.outbox.alert_ids)
    retention.open_ids = frozenset(alert.id for alert in pipeline.restore_open_alerts())
    retention.start()
    source = open_camera(camera, config.detect.fps, backoff=Backoff(camera.reconnect_min_s, camera.reconnect_max_s))
    meter.source = source
    beat = beat or (lambda: None)
    meter.report("starting")  # after the model loaded: from here the supervisor expects beats
    beat()
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
                meter.frame(frame.ts, result.inference_ms - wait_ms, wait_ms, len(result.open_alerts), result.view)
                channel.observe(result.zone_states())
                retention.open_ids = frozenset(result.open_alerts.values())
            if time.monotonic() >= next_beat:
                confirmation = take_confirmation(config.storage_dir, camera.id)
                if confirmation is not None:
                    pipeline.confirm_view(confirmation)
                meter.report()
                beat()
                next_beat = time.monotonic() + HEARTBEAT_S
    finally:
        source.close()
        retention.close()
        pipeline.close()
        meter.report("stopped")
        if slots is not None:
            slots.close()
        problem = channel.problem()
        if problem:
            log.warning("%s", problem, extra={"kv": {"event": "outbox_left"}})
        log.info("camera %s stopped", camera.id, extra={"kv": {"event": "worker_stopped"}})
