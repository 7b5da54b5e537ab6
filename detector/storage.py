"""One camera's writes to `storage_dir`: which failed, why, and how full the disk is.

A full or read-only disk must not blind a camera: every write site (health file, outbox, evidence
JPEGs, events.jsonl, the open-alert state file, the annotated video) catches its own failure,
degrades (skips the file, keeps the alert in memory, ...) and reports it here. This is where the
cause is named: one warning when storage goes bad, one line when it is writable again, and the
health fields `storage`, `storage_path`, `storage_failures` and `disk_free_bytes` (docs/mqtt.md).

A kind's fault clears when a write of that kind succeeds again, or, for a full or read-only
disk, when the failed write's file system has room (RECOVERED_FREE_BYTES) and is writable
again: a kind that writes rarely (evidence: at alert starts) must not keep the camera "full"
after space returned.
"""

import errno
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OK, DISK_FULL, READ_ONLY, ERROR = "ok", "disk_full", "read_only", "error"
RECOVERED_FREE_BYTES = 1 << 20  # free space that counts as "room again" for a disk_full fault

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_SQLITE_STATES = {sqlite3.SQLITE_FULL: DISK_FULL, sqlite3.SQLITE_READONLY: READ_ONLY}
# what each kind loses while it cannot write (the warning says it once)
CONSEQUENCE = {
    "health": "the health file is rewritten in place or goes stale",
    "outbox": "alerts the outbox cannot take wait in memory (not durable); acknowledged ones are not sent again",
    "evidence": "evidence JPEGs are skipped (`snapshot: null`, `snapshot_error`)",
    "events": "events.jsonl lines are skipped",
    "state": "the open-alert state file goes stale",
    "video": "the annotated video stops",
}


HEALTH_FIELDS = ("storage", "storage_path", "storage_failures", "disk_free_bytes", "disk_used_bytes", "retention_deleted")


@dataclass(frozen=True)
class Fault:
    state: str  # disk_full | read_only | error
    kind: str  # which write: health | outbox | evidence | events | state | video
    path: str
    reason: str  # the operating system's (or SQLite's) words
    since: float  # time.monotonic()


def fault_state(exc: BaseException, path: Path | None = None) -> str | None:
    """disk_full | read_only | error for what a write raised; None when it is no storage fault
    (a bug: the caller re-raises it). SQLite reports a read-only file system as an I/O error,
    so an `error` is checked against the file system once more."""
    if isinstance(exc, sqlite3.Error):
        state = _SQLITE_STATES.get(getattr(exc, "sqlite_errorcode", 0) & 0xFF, ERROR)
    elif isinstance(exc, OSError):
        state = DISK_FULL if exc.errno in _FULL_ERRNOS else READ_ONLY if exc.errno == errno.EROFS else ERROR
    else:
        return None
    if state == ERROR and path is not None:
        state = _file_system_state(path) or ERROR
    return state


def _file_system_state(path: Path) -> str | None:
    try:
        fs = os.statvfs(_existing(path))
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return READ_ONLY
    return DISK_FULL if fs.f_bavail == 0 else None


def _existing(path: Path) -> Path:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on `path`'s file system (root's reserve excluded)."""
    try:
        fs = os.statvfs(_existing(path))
    except OSError:
        return None
    return fs.f_bavail * fs.f_frsize


class Storage:
    """Thread-safe: the frame loop, the publisher and the retention thread all report here."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.usage: dict[str, int] | None = None  # bytes per kind, set by each retention sweep
        self.deleted = 0  # files deleted by retention since start
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}  # kind -> the fault of its last write
        self._failures: Counter[str] = Counter()  # failed writes per kind, since start
        self._logged: Fault | None = None  # the fault the last warning named

    def failed(self, kind: str, path: Path, exc: BaseException) -> str | None:
        """Record a write that failed; returns its state (disk_full | read_only | error), or
        None when `exc` is no storage fault: re-raise it then."""
        state = fault_state(exc, path)
        if state is None:
            return None
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        with self._lock:
            self._failures[kind] += 1
            if kind not in self._faults or self._faults[kind].state != state:
                self._faults[kind] = Fault(state, kind, str(path), reason, time.monotonic())
            self._announce()
        return state

    def succeeded(self, kind: str) -> None:
        if kind in self._faults:  # unlocked read: the common case (no fault) costs nothing
            with self._lock:
                self._faults.pop(kind, None)
                self._announce()

    def probe(self) -> None:
        """Clear full / read-only faults once the file system of the failed write has room and
        takes writes again (every heartbeat; a statvfs per fault, only while there are faults)."""
        if not self._faults:
            return
        with self._lock:
            for kind, fault in list(self._faults.items()):
                if fault.state == READ_ONLY and _file_system_state(Path(fault.path)) != READ_ONLY:
                    del self._faults[kind]
                elif fault.state == DISK_FULL and (free_bytes(Path(fault.path)) or 0) >= RECOVERED_FREE_BYTES:
                    del self._faults[kind]
            self._announce()

    def health(self) -> dict:
        """The health meter's storage fields (docs/mqtt.md)."""
        with self._lock:
            fault = self._current()
            failures = dict(sorted(self._failures.items()))
        return {
            "storage": fault.state if fault else OK,
            "storage_path": fault.path if fault else None,
            "storage_failures": failures,
            "disk_free_bytes": free_bytes(self.root),
            "disk_used_bytes": self.usage,
            "retention_deleted": self.deleted,
        }

    def _current(self) -> Fault | None:
        """The latest fault not cleared; None when storage is fine."""
        return max(self._faults.values(), key=lambda f: f.since, default=None)

    def _announce(self) -> None:
        """The log names each new cause once, and says when storage is fine again."""
        fault = self._current()
        before = self._logged
        if fault is not None and (before is None or before.state != fault.state):
            degraded = "; ".join(CONSEQUENCE[k] for k in sorted(self._faults) if k in CONSEQUENCE)
            log.warning(
                "storage %s: %s (%s, writing %s); the camera goes on detecting and publishing: %s",
                self.root,
                fault.state.replace("_", " "),
                fault.reason,
                fault.path,
                degraded,
                extra={"kv": {"event": "storage_fault", "state": fault.state, "path": fault.path, "reason": fault.reason}},
            )
            self._logged = fault
        elif fault is None and before is not None:
            lost = ", ".join(f"{n} {kind}" for kind, n in sorted(self._failures.items()))
            log.info(
                "storage %s: writable again after %.0f s (failed writes since start: %s)",
                self.root,
                time.monotonic() - before.since,
                lost,
                extra={"kv": {"event": "storage_restored", "failed_writes": lost}},
            )
            self._logged = None
