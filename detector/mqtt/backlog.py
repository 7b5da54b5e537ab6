"""`detector outbox CONFIG [--drain | --purge]`: what waits in the outboxes, and sending it."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from detector.alerts import Alert, format_alert, iso_utc
from detector.config import AppConfig
from detector.errors import PublishError
from detector.mqtt.connection import Endpoint
from detector.mqtt.outbox import Outbox
from detector.mqtt.publisher import Publisher
from detector.mqtt.topics import CameraTopics


def outbox_files(config: AppConfig) -> Iterator[tuple[str, Path]]:
    """(camera id, file) of every outbox under storage_dir, configured cameras or not."""
    folder = Path(config.storage_dir) / "outbox"
    for path in sorted(folder.glob("*.sqlite3")) if folder.is_dir() else ():
        yield path.stem, path


def describe(config: AppConfig) -> list[str]:
    """One line per waiting entry, then the count."""
    lines, total = [], 0
    for _, path in outbox_files(config):
        outbox = Outbox(path, config.outbox.max_alerts)
        try:
            for entry in outbox.pending(0, 1_000_000):
                queued = iso_utc(datetime.fromtimestamp(entry.queued_at, UTC))
                if entry.kind == "alert":
                    lines.append(f"{queued}  {format_alert(Alert.from_bytes(entry.body))}")
                else:
                    lines.append(f"{queued}  snapshot of alert {entry.alert_id}: {len(entry.body)} bytes")
                total += 1
        finally:
            outbox.close()
    where = Path(config.storage_dir) / "outbox"
    lines.append(f"{total} waiting in {where}" + ("" if config.mqtt else " (no mqtt section: nothing sends them)"))
    return lines


def drain(config: AppConfig, timeout_s: float | None = None) -> list[str]:
    """Send every outbox to the configured broker; raises PublishError if anything is left."""
    if config.mqtt is None:
        raise PublishError("cannot drain the outbox: the config has no mqtt section")
    m = config.mqtt
    timeout_s = m.drain_timeout_s if timeout_s is None else timeout_s
    lines, problems = [], []
    for camera, path in outbox_files(config):
        outbox = Outbox(path, config.outbox.max_alerts)
        before = outbox.count()
        if before == 0:
            outbox.close()
            continue
        # no status / last will: a running worker of this camera owns its `online` / `offline`
        publisher = Publisher(
            Endpoint.from_config(m),
            CameraTopics(m.topic_prefix, config.site, camera),
            outbox,
            announce_status=False,
            max_in_flight=m.max_in_flight,
            reconnect_min_s=m.reconnect_min_s,
            reconnect_max_s=m.reconnect_max_s,
            quiet=True,
        ).start()
        started = time.monotonic()
        publisher.close(timeout_s)
        left = outbox.count()
        outbox.close()
        lines.append(f"{camera}: sent {before - left} of {before} in {time.monotonic() - started:.1f} s")
        if left:
            problems.append(f"{camera}: {publisher.last_error or 'not all acknowledged in time'}, {left} left")
    if problems:
        raise PublishError("; ".join(problems))
    return lines or ["nothing waiting"]
