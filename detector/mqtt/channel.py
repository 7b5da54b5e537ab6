"""The alert Sink of a camera: outbox always, MQTT when the config has a broker.

    channel = AlertChannel.open(config, camera_id, evidence_root=out_dir)
    pipeline = CameraPipeline(..., sinks=[channel, JsonlSink(...), ConsoleSink()])
    for frame in source:
        result = pipeline.process(frame)
        channel.observe(pipeline.zone_states(), frame.ts, result.inference_ms)
    channel.close(); channel.problem()  # -> one line if alerts are left undelivered

`emit` only writes SQLite (durable, a few ms) and returns: no network on the frame loop.
"""

import json
import logging
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from detector.alerts.payload import iso_utc
from detector.config import AppConfig
from detector.mqtt.connection import Endpoint
from detector.mqtt.outbox import Outbox, outbox_path
from detector.mqtt.publisher import Publisher
from detector.mqtt.topics import HEALTH_SCHEMA, ZONE_STATE_SCHEMA, CameraTopics

log = logging.getLogger(__name__)


class AlertChannel:
    def __init__(
        self,
        topics: CameraTopics,
        outbox: Outbox,
        publisher: Publisher | None,
        *,
        snapshots: bool = False,
        evidence_root: Path | None = None,
        drain_timeout_s: float = 15.0,
    ) -> None:
        self.topics = topics
        self.outbox = outbox
        self.publisher = publisher
        self.snapshots = snapshots
        self.evidence_root = evidence_root
        self.drain_timeout_s = drain_timeout_s
        self.queued = 0
        self.left: int | None = None  # outbox depth at close()
        self._frames: deque[tuple[float, float]] = deque(maxlen=10000)  # (monotonic, inference ms) since the last health
        self._last_frame: tuple[float, float] | None = None  # (unix time, stream ts)
        self.stream_reconnects = 0
        if publisher is not None:
            publisher.health = self.health
            publisher.start()

    @classmethod
    def open(cls, config: AppConfig, camera_id: str, *, evidence_root: Path | None = None, quiet: bool = False) -> "AlertChannel":
        topics = CameraTopics(config.mqtt.topic_prefix if config.mqtt else "detector", config.site, camera_id)
        outbox = Outbox(outbox_path(config.storage_dir, camera_id), config.outbox.max_alerts)
        m = config.mqtt
        if m is None:
            return cls(topics, outbox, None)
        try:
            publisher = Publisher(
                Endpoint.from_config(m),
                topics,
                outbox,
                client_id=m.client_id,
                max_in_flight=m.max_in_flight,
                reconnect_min_s=m.reconnect_min_s,
                reconnect_max_s=m.reconnect_max_s,
                health_interval_s=m.health_interval_s,
                quiet=quiet,
            )
        except BaseException:
            outbox.close()
            raise
        return cls(
            topics, outbox, publisher, snapshots=m.snapshots, evidence_root=evidence_root, drain_timeout_s=m.drain_timeout_s
        )

    # --- Sink ---

    def emit(self, payload: dict) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        self.outbox.put("alert", self.topics.alert, payload["id"], payload["seq"], payload["event"], body)
        self.queued += 1
        if self.snapshots and payload["event"] == "start" and payload.get("snapshot") and self.evidence_root:
            self._queue_snapshot(payload)

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close(self.drain_timeout_s)
        self.left = self.outbox.count()
        self.outbox.close()

    # --- observations from the frame loop ---

    def observe(
        self, states: dict[str, dict[str, dict]], ts: float, inference_ms: float = 0.0, stream_reconnects: int | None = None
    ) -> None:
        """After each frame: zone states (`CameraPipeline.zone_states()`: retained topic, sent on
        change) and health figures."""
        if self.publisher is None:
            return
        self._frames.append((time.monotonic(), inference_ms))
        self._last_frame = (time.time(), ts)
        if stream_reconnects is not None:
            self.stream_reconnects = stream_reconnects
        for zone, types in states.items():
            self.publisher.set_zone_state(
                zone,
                {
                    "schema": ZONE_STATE_SCHEMA,
                    "site": self.topics.site,
                    "camera": self.topics.camera,
                    "zone": zone,
                    "states": dict(sorted(types.items())),
                },
            )

    def health(self) -> dict:
        """Runs on the publisher thread every health_interval_s."""
        frames, self._frames = list(self._frames), deque(maxlen=10000)
        span = frames[-1][0] - frames[0][0] if len(frames) > 1 else 0.0
        last = self._last_frame
        return {
            "schema": HEALTH_SCHEMA,
            "site": self.topics.site,
            "camera": self.topics.camera,
            "at": iso_utc(datetime.now(UTC)),
            "fps": round((len(frames) - 1) / span, 2) if span > 0 else 0.0,
            "frame_age_s": round(time.time() - last[0], 3) if last else None,
            "stream_time_s": round(last[1], 3) if last else None,
            "inference_ms": round(sum(f[1] for f in frames) / len(frames), 1) if frames else None,
            "stream_reconnects": self.stream_reconnects,
            "mqtt_reconnects": self.publisher.reconnects if self.publisher else 0,
            "outbox_depth": self.outbox.count(),
            "outbox_dropped": self.outbox.dropped,
            "delivered": self.publisher.delivered if self.publisher else 0,
        }

    def problem(self) -> str | None:
        """After close(): one line if a broker is configured and alerts were left in the outbox."""
        left = self.left
        if self.publisher is None or not left:
            return None
        cause = (
            self.publisher.last_error
            or f"mqtt broker {self.publisher.endpoint.name}: not all alerts acknowledged in {self.drain_timeout_s:g} s"
        )
        return f"{cause}; {left} alert{' waits' if left == 1 else 's wait'} in the outbox {self.outbox.path} (sent on the next run, or `detector outbox CONFIG --drain`)"

    def _queue_snapshot(self, payload: dict) -> None:
        path = self.evidence_root / payload["snapshot"]["path"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("snapshot of alert %s not published: %s", payload["id"], exc.strerror)
            return
        self.outbox.put("snapshot", self.topics.snapshot(payload["id"]), payload["id"], payload["seq"], "snapshot", data)
