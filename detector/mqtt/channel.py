"""The alert Sink of a camera: outbox always, MQTT when the config has a broker.

    meter = HealthMeter(camera_id)  # its snapshot is the MQTT health message; it reads delivery()
    channel = AlertChannel.open(config, camera_id, evidence_root=out_dir, meter=meter)
    pipeline = CameraPipeline.build(config, camera, sinks=[channel, JsonlSink(...), ConsoleSink()], ...)
    for frame in source:
        result = pipeline.process(frame)
        channel.observe(result.zone_states())
        meter.frame(frame.ts, result.inference_ms, open_alerts=len(result.open_alerts))
    channel.close(); channel.problem()  # -> one line if alerts are left undelivered

`emit` only writes SQLite (durable, a few ms) and returns: no network on the frame loop.
"""

import logging
from pathlib import Path

from detector.alerts import Alert, AlertEvent
from detector.config import AppConfig
from detector.health import Delivery, HealthMeter
from detector.mqtt.connection import Endpoint
from detector.mqtt.outbox import Outbox, outbox_path
from detector.mqtt.publisher import Publisher
from detector.mqtt.topics import ZONE_STATE_SCHEMA, CameraTopics

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
        meter: HealthMeter | None = None,
    ) -> None:
        """`meter`: the camera's health meter; it reads `delivery()` from here on (open() also
        gives the publisher its snapshot as the health message)."""
        self.topics = topics
        self.outbox = outbox
        self.publisher = publisher
        self.snapshots = snapshots
        self.evidence_root = evidence_root
        self.drain_timeout_s = drain_timeout_s
        self.left: int | None = None  # outbox depth at close()
        if meter is not None:
            meter.delivery = self.delivery
        if publisher is not None:
            publisher.start()

    @classmethod
    def open(
        cls,
        config: AppConfig,
        camera_id: str,
        *,
        evidence_root: Path | None = None,
        quiet: bool = False,
        meter: HealthMeter | None = None,
    ) -> "AlertChannel":
        """`meter`: the camera's health meter; its storage (if any) also hears the outbox's faults."""
        topics = CameraTopics(config.mqtt.topic_prefix if config.mqtt else "detector", config.site, camera_id)
        storage = meter.storage if meter is not None else None
        outbox = Outbox(outbox_path(config.storage_dir, camera_id), config.outbox.max_alerts, storage=storage)
        m = config.mqtt
        if m is None:
            return cls(topics, outbox, None, meter=meter)
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
                health=meter.snapshot if meter is not None else None,
                quiet=quiet,
            )
        except BaseException:
            outbox.close()
            raise
        return cls(
            topics,
            outbox,
            publisher,
            snapshots=m.snapshots,
            evidence_root=evidence_root,
            drain_timeout_s=m.drain_timeout_s,
            meter=meter,
        )

    # --- Sink ---

    def emit(self, alert: Alert) -> None:
        self.outbox.put("alert", self.topics.alert, alert.id, alert.seq, alert.event.value, alert.to_bytes())
        if self.snapshots and alert.event is AlertEvent.START and alert.snapshot and self.evidence_root:
            self._queue_snapshot(alert)

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close(self.drain_timeout_s)
        self.left = self.outbox.count()
        self.outbox.close()

    # --- observations from the frame loop ---

    def observe(self, states: dict[str, dict[str, dict]]) -> None:
        """After each frame: zone states (`FrameResult.zone_states()`), a retained topic sent on change."""
        if self.publisher is None:
            return
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

    def delivery(self) -> Delivery:
        """For the health meter, from any thread; after close() the depth it left."""
        publisher = self.publisher
        return Delivery(
            outbox_depth=self.outbox.count() if self.left is None else self.left,
            outbox_dropped=self.outbox.dropped,
            outbox_memory=self.outbox.in_memory,
            mqtt_reconnects=publisher.reconnects if publisher is not None else None,
            delivered=publisher.delivered if publisher is not None else None,
        )

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

    def _queue_snapshot(self, alert: Alert) -> None:
        path = self.evidence_root / alert.snapshot.path
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("snapshot of alert %s not published: %s", alert.id, exc.strerror)
            return
        self.outbox.put("snapshot", self.topics.snapshot(alert.id), alert.id, alert.seq, "snapshot", data)
