"""Retention: one camera's evidence JPEGs and old events files, by age and by total size.

A busy camera writes about 40 MB of evidence an hour; without this the disk fills in weeks.
Each sweep (a thread of the worker, every `retention.check_interval_s`; never the frame loop):

    1. files older than `max_age_days` go;
    2. then, while the camera's evidence and events files together are over `max_total_mb`,
       the oldest go;

never the evidence of an alert still open or with an entry still waiting in the outbox, never
the current events file (only its rotated parts, sinks.events_parts), and never a file younger
than MIN_AGE_S (its alert may not be in the outbox yet). Each sweep also measures what the
camera uses under storage_dir, per kind, for health's `disk_used_bytes`.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from detector.alerts.sinks import events_parts
from detector.config.schema import RetentionConfig
from detector.health import health_path
from detector.mqtt.outbox import outbox_path
from detector.storage import Storage

log = logging.getLogger(__name__)

MIN_AGE_S = 60.0


@dataclass(frozen=True)
class CameraFiles:
    """Where one camera's files live under storage_dir (docs/edge.md)."""

    storage_dir: Path
    camera: str

    @property
    def evidence_folder(self) -> str:
        """Relative to storage_dir, as the payload's snapshot.path is."""
        return f"evidence/{self.camera}"

    @property
    def events(self) -> Path:
        return self.storage_dir / "events" / f"{self.camera}.jsonl"

    @property
    def state(self) -> Path:
        return self.storage_dir / "state" / f"{self.camera}.json"

    @property
    def outbox(self) -> Path:
        return outbox_path(self.storage_dir, self.camera)

    @property
    def health(self) -> Path:
        return health_path(self.storage_dir, self.camera)


@dataclass(frozen=True)
class _File:
    path: Path
    size: int
    mtime: float
    alert_id: str | None  # evidence: the alert it shows


class Retention:
    """`waiting()`: ids of the alerts with entries in the outbox (None: unknown, so nothing is
    deleted); `open_ids`: the alerts open after the last frame, set by the frame loop."""

    def __init__(
        self, files: CameraFiles, settings: RetentionConfig, storage: Storage, waiting: Callable[[], set[str] | None]
    ) -> None:
        self.files = files
        self.settings = settings
        self.storage = storage
        self.waiting = waiting
        self.open_ids: frozenset[str] = frozenset()  # replaced whole (never mutated) by the frame loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"retention-{files.camera}", daemon=True)

    def start(self) -> "Retention":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def sweep(self, now: float | None = None) -> list[Path]:
        """One pass; returns the files deleted (oldest first). `now`: time.time()."""
        now = time.time() if now is None else now
        evidence = _files(self.files.storage_dir / self.files.evidence_folder, ".jpg")
        parts = [_stat(path, None) for path in events_parts(self.files.events)]
        parts = [part for part in parts if part is not None]
        current = _stat(self.files.events, None)
        usage = {
            "evidence": sum(f.size for f in evidence),
            "events": sum(f.size for f in parts) + (current.size if current else 0),
            "outbox": _size(*(Path(f"{self.files.outbox}{suffix}") for suffix in ("", "-wal", "-shm"))),
            "state": _size(self.files.state, self.files.health),
        }
        deleted = self._delete(evidence + parts, usage["evidence"] + usage["events"], now)
        for f in deleted:
            usage["evidence" if f.alert_id else "events"] -= f.size
        self.storage.usage = usage
        self.storage.deleted += len(deleted)
        return [f.path for f in deleted]

    def _delete(self, candidates: list[_File], total: int, now: float) -> list[_File]:
        keep = self.waiting()
        if keep is None:  # the outbox cannot be read: any JPEG might still be needed
            return []
        keep |= self.open_ids
        too_old = now - self.settings.max_age_days * 86400
        too_big = self.settings.max_total_mb * 1024 * 1024
        deleted = []
        for f in sorted(candidates, key=lambda f: f.mtime):
            if f.mtime >= too_old and total <= too_big:
                break  # the rest is younger and fits
            if f.alert_id in keep or now - f.mtime < MIN_AGE_S:
                continue
            try:
                f.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:  # read-only: the storage fault is reported by the writes
                log.debug("retention: cannot delete %s: %s", f.path, exc.strerror)
                continue
            deleted.append(f)
            total -= f.size
        if deleted:
            log.info(
                "retention: deleted %d files of camera %s (%.1f MB)",
                len(deleted),
                self.files.camera,
                sum(f.size for f in deleted) / 1e6,
                extra={"kv": {"event": "retention", "deleted": len(deleted)}},
            )
        return deleted

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - a bug here must not end retention for good
                log.exception("retention sweep of camera %s failed", self.files.camera)
            self._stop.wait(self.settings.check_interval_s)


def _files(folder: Path, suffix: str) -> list[_File]:
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    files = [_stat(Path(e.path), e.name[: -len(suffix)]) for e in entries if e.name.endswith(suffix) and e.is_file()]
    return [f for f in files if f is not None]


def _stat(path: Path, alert_id: str | None) -> _File | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return _File(path, info.st_size, info.st_mtime, alert_id)


def _size(*paths: Path) -> int:
    return sum(f.size for f in (_stat(p, None) for p in paths) if f is not None)
