"""Where alerts go. Every sink has `emit(alert)` and `close()`."""

import logging
import os
import sys
from pathlib import Path
from typing import Protocol, TextIO

from detector.alerts.alert import Alert

log = logging.getLogger("detector.alerts")


class Sink(Protocol):
    def emit(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One payload per line, exactly as published; flushed and fsynced per alert so a crash
    right after an alert does not lose it (alerts are rare: the cost does not matter)."""

    def __init__(self, path: Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab" if append else "wb")

    def emit(self, alert: Alert) -> None:
        self._file.write(alert.to_bytes() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class ConsoleSink:
    """One readable line per alert event."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream

    def emit(self, alert: Alert) -> None:
        print(format_alert(alert), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class LogSink:
    """Each alert event as one log line (`event=alert_start id=... zone=...` in kv format)."""

    def emit(self, alert: Alert) -> None:
        log.info(
            "%s %s %s/%s id %s seq %d",
            alert.event.upper(),
            alert.type,
            alert.camera,
            alert.zone,
            alert.id,
            alert.seq,
            extra={
                "kv": {"event": f"alert_{alert.event}", "type": alert.type, "zone": alert.zone, "id": alert.id, "seq": alert.seq}
            },
        )

    def close(self) -> None:
        pass


def format_alert(alert: Alert) -> str:
    """`  62.0s START  illegal_parking  cam-01/gate  truck 0.67, car 0.71  (id 0192…, seq 1)`."""
    objects = ", ".join(f"{o.label} {o.score:.2f}" for o in alert.objects[:4]) or "-"
    if len(alert.objects) > 4:
        objects += f" +{len(alert.objects) - 4}"
    extra = f"  [{alert.reason}]" if alert.reason else ""
    return (
        f"{alert.stream_time_s:8.1f}s {alert.event.upper():6} {alert.type:15} "
        f"{alert.camera}/{alert.zone}  {objects}  "
        f"(since {alert.first_seen_s:.1f}s, id {alert.id[:13]}, seq {alert.seq}){extra}"
    )
