"""One camera's live loop, run by a worker process of `detector run` (detector/supervisor.py).

    source (LiveSource: reader thread, latest frame only, reconnects) -> CameraPipeline (the same
    one replay uses) -> sinks: AlertChannel (outbox + MQTT) first, events.jsonl, open-alert state,
    log lines; every heartbeat: health file (the supervisor's liveness signal) and MQTT health.

Open alerts survive a restart: `OpenAlerts` keeps `{storage_dir}/state/{camera}.json` up to date
at each start/update/end, and the next worker restores them (Debouncer.restore +
AlertFactory.restore), so an object already alerted is not alerted again under a new id, and
ends under its old id when it has gone.
"""

import bisect
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detector.alerts import EvidenceWriter, JsonlSink
from detector.backoff import Backoff
from detector.capture.rtsp_source import LiveSource
from detector.config import AppConfig, config_digest
from detector.detect import open_model
from detector.health import HealthMeter, health_path
from detector.mqtt.channel import AlertChannel
from detector.replay import model_threshold
from detector.rules.debounce import Candidate
from detector.worker import CameraPipeline

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0


class OpenAlerts:
    """A Sink: the camera's open alerts in a small JSON file, replaced atomically at each event."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.alerts: dict[str, dict] = {a["key"]: a for a in self.load()}

    def load(self) -> list[dict]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("%s unreadable (%s): open alerts not restored", self.path, exc)
            return []
        return list(data.get("open", []))

    def emit(self, payload: dict) -> None:
        key = f"{payload['zone']}/{payload['type']}"
        if payload["event"] == "end":
            self.alerts.pop(key, None)
        else:
            self.alerts[key] = {
                "key": key,
                "zone": payload["zone"],
                "type": payload["type"],
                "id": payload["id"],
                "seq": payload["seq"],
                "first_seen_at": payload["first_seen_at"],
                "objects": payload["objects"],
            }
        self._write()

    def _write(self) -> None:
        partial = self.path.with_suffix(".tmp")
        with open(partial, "w", encoding="utf-8") as f:
            json.dump({"open": list(self.alerts.values())}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, self.path)

    def close(self) -> None:
        pass


class LogSink:
    """Each alert event as one log line (`event=alert_start id=... zone=...`)."""

    def emit(self, payload: dict) -> None:
        log.info(
            "%s %s %s/%s id %s seq %d",
            payload["event"].upper(),
            payload["type"],
            payload["camera"],
            payload["zone"],
            payload["id"],
            payload["seq"],
            extra={
                "kv": {
                    "event": f"alert_{payload['event']}",
                    "type": payload["type"],
                    "zone": payload["zone"],
                    "id": payload["id"],
                    "seq": payload["seq"],
                }
            },
        )

    def close(self) -> None:
        pass


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


def restore_open_alerts(pipeline: CameraPipeline, saved: list[dict], ts: float = 0.0) -> int:
    """Put alerts that were open in an earlier process back as ACTIVE; returns how many."""
    restored = 0
    for alert in saved:
        rule = next((r for r in pipeline.engine.rules if r.zone.id == alert["zone"] and r.violation.value == alert["type"]), None)
        if rule is None:
            log.warning("open alert %s: zone %s / %s no longer configured; dropped", alert["id"], alert["zone"], alert["type"])
            continue
        objects = tuple(Candidate(o.get("track_id", -1), ts, tuple(o["box"]), o["label"], o["score"]) for o in alert["objects"])
        rule.debouncer.restore(ts, objects)
        pipeline.alerts.restore(alert["zone"], alert["type"], alert["id"], alert["seq"], alert["first_seen_at"])
        log.info(
            "restored open alert %s (%s/%s, seq %d)",
            alert["id"],
            alert["zone"],
            alert["type"],
            alert["seq"],
            extra={"kv": {"event": "alert_restored", "id": alert["id"], "zone": alert["zone"], "seq": alert["seq"]}},
        )
        restored += 1
    return restored


def run_camera(config: AppConfig, camera_id: str, stop: threading.Event, slots_dir: Path | None = None) -> None:
    """Until `stop` is set. Stream faults are handled inside the source; errors a user can cause
    (model, storage) raise DetectorError before the loop starts."""
    camera = config.camera(camera_id)
    storage = Path(config.storage_dir)
    detector = open_model(config.model, model_threshold(config), config.detect.nms_iou)
    slots = None
    if slots_dir is not None:
        from detector.budget import GatedDetector, InferenceSlots

        slots = InferenceSlots(slots_dir)
        detector = GatedDetector(detector, slots)
    channel = AlertChannel.open(config, camera.id, evidence_root=storage)
    open_alerts = OpenAlerts(storage / "state" / f"{camera.id}.json")
    sinks = [channel, JsonlSink(storage / "events" / f"{camera.id}.jsonl", append=True), open_alerts, LogSink()]
    wall = StreamWall()
    pipeline = CameraPipeline(
        config, camera, detector, sinks=sinks, wall_of=wall, evidence=EvidenceWriter(storage), config_sha256=config_digest(config)
    )
    restore_open_alerts(pipeline, list(open_alerts.alerts.values()))
    source = LiveSource(
        camera.source,
        config.detect.fps,
        name=camera.id,
        transport=camera.transport,
        open_timeout_s=camera.open_timeout_s,
        read_timeout_s=camera.read_timeout_s,
        keyframes_only=camera.keyframes_only,
        backoff=Backoff(camera.reconnect_min_s, camera.reconnect_max_s),
    )
    meter = HealthMeter(health_path(storage, camera.id), camera.id, source)
    if channel.publisher is not None:
        base_health = channel.health
        channel.publisher.health = lambda: {**base_health(), **meter.for_mqtt()}
    meter.report("starting")
    source.start()
    log.info("camera %s started", camera.id, extra={"kv": {"event": "worker_started", "pid": os.getpid()}})
    next_beat = time.monotonic() + HEARTBEAT_S
    try:
        while not stop.is_set():
            frame = source.next_frame(timeout=min(0.5, HEARTBEAT_S))
            if frame is not None:
                wall.record(frame.ts, frame.gap_before_s)
                waited = slots.waited_s if slots else 0.0
                result = pipeline.process(frame)
                wait_ms = ((slots.waited_s if slots else 0.0) - waited) * 1000
                meter.frame(result.inference_ms - wait_ms, wait_ms)
                channel.observe(pipeline.zone_states(), frame.ts, result.inference_ms - wait_ms, source.reconnects)
            if time.monotonic() >= next_beat:
                meter.open_alerts = len(open_alerts.alerts)
                meter.report()
                next_beat = time.monotonic() + HEARTBEAT_S
    finally:
        source.stop()
        for sink in sinks:
            sink.close()
        meter.report("stopped")
        if slots is not None:
            slots.close()
        problem = channel.problem()
        if problem:
            log.warning("%s", problem, extra={"kv": {"event": "outbox_left"}})
        log.info("camera %s stopped", camera.id, extra={"kv": {"event": "worker_stopped"}})
