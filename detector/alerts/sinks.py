"""Where alerts go. Every sink has `emit(alert)` and `close()`."""

import logging
import os
import re
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Protocol, TextIO

from detector.alerts.alert import Alert
from detector.storage import Storage

log = logging.getLogger("detector.alerts")


class Sink(Protocol):
    def emit(self, alert: Alert) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One payload per line, exactly as published; fsynced per alert so a crash right after an
    alert does not lose it (alerts are rare: the cost does not matter).

    A line the disk cannot take is never half written (the file is cut back to where it was);
    with a `storage` (`detector run`) it is skipped and reported there (the outbox, not this
    file, is what delivers), without one (a replay) the OSError goes up.
    With `rotate_bytes` (`detector run`) the file is rotated when the UTC day of its last line has
    passed, or before it would grow past rotate_bytes: renamed to a part
    `{stem}.{UTC time of its last line}.jsonl` (events_parts), which retention deletes in time.
    """

    def __init__(
        self, path: Path, append: bool = False, *, storage: Storage | None = None, rotate_bytes: int | None = None
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.storage = storage
        self.rotate_bytes = rotate_bytes
        # unbuffered: a buffered file keeps what a full disk refused and writes it again later
        self._fd = os.open(self.path, _FLAGS | (os.O_APPEND if append else os.O_TRUNC), 0o644)

    def emit(self, alert: Alert) -> None:
        line = alert.to_bytes() + b"\n"
        if self.rotate_bytes is not None:
            try:
                self._rotate_if_due(len(line))
            except OSError as exc:  # the line still goes to the current file; rotation tries again
                if self.storage is None:
                    raise
                self.storage.failed("events", self.path, exc)
        try:
            self._append(line)
        except OSError as exc:
            if self.storage is None or not self.storage.failed("events", self.path, exc):
                raise
            return
        if self.storage is not None:
            self.storage.succeeded("events")

    def close(self) -> None:
        os.close(self._fd)

    def _append(self, line: bytes) -> None:
        end = os.fstat(self._fd).st_size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError:
            with suppress(OSError):
                os.ftruncate(self._fd, end)  # no half line: the next one starts on a line of its own
            raise

    def _rotate_if_due(self, adding: int) -> None:
        current = os.fstat(self._fd)
        if current.st_size == 0:
            return
        if time.gmtime(current.st_mtime)[:3] == time.gmtime()[:3] and current.st_size + adding <= self.rotate_bytes:
            return
        if self.path.exists():  # else an earlier rotation renamed it, then could not open a new one
            os.rename(self.path, _part_name(self.path, current.st_mtime))
        fd = os.open(self.path, _FLAGS | os.O_APPEND, 0o644)
        os.close(self._fd)
        self._fd = fd


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
_PART_TIME = "%Y%m%dT%H%M%SZ"


def _part_name(path: Path, last_line_at: float) -> Path:
    stamp = time.strftime(_PART_TIME, time.gmtime(last_line_at))
    part, n = path.with_name(f"{path.stem}.{stamp}{path.suffix}"), 1
    while part.exists():
        n += 1
        part = path.with_name(f"{path.stem}.{stamp}-{n}{path.suffix}")
    return part


def events_parts(path: Path) -> list[Path]:
    """The rotated parts of the events file `path` (not `path` itself), oldest first. Matched
    exactly: camera ids may hold dots, so `cam.*` would also match camera `cam.2`'s files."""
    pattern = re.compile(rf"{re.escape(path.stem)}\.\d{{8}}T\d{{6}}Z(-\d+)?{re.escape(path.suffix)}")
    try:
        names = [entry.name for entry in os.scandir(path.parent) if pattern.fullmatch(entry.name)]
    except FileNotFoundError:
        return []
    return [path.parent / name for name in sorted(names)]


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
