"""Durable local queue of alerts: written BEFORE publishing, removed only on the broker's PUBACK.

One SQLite file per camera (`{storage_dir}/outbox/{camera}.sqlite3`), so one worker process owns
one file and a later run (or `detector outbox CONFIG --drain`) sends what an earlier one left.

Durability: WAL journal with synchronous=FULL. In WAL mode NORMAL already survives a killed
process (SIGKILL), but not a power cut: the last commits may roll back. Edge boxes lose power,
and alerts are rare (an fsync of a few ms each is nothing next to a frame), so FULL it is.

Bound (`outbox.max_alerts`): when full, a new entry first evicts the oldest snapshot, else the
oldest `update` (a later update or the end supersedes it), else the oldest entry of any kind.
Every eviction is logged with the alert id; a warning is logged when the outbox passes 80 %.
"""

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from detector.errors import PublishError

log = logging.getLogger(__name__)

WARN_FRACTION = 0.8
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never reused, so order is queue order
    kind TEXT NOT NULL,                    -- 'alert' (JSON body) or 'snapshot' (JPEG body)
    topic TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,                   -- start | update | end | snapshot
    body BLOB NOT NULL,
    queued_at REAL NOT NULL                -- unix time
)
"""


@dataclass(frozen=True)
class Entry:
    id: int
    kind: str
    topic: str
    alert_id: str
    seq: int
    event: str
    body: bytes
    queued_at: float


def outbox_path(storage_dir: Path, camera_id: str) -> Path:
    return Path(storage_dir) / "outbox" / f"{camera_id}.sqlite3"


class Outbox:
    """Thread-safe (one connection behind a lock): the frame loop puts, the publisher removes."""

    def __init__(self, path: Path, max_alerts: int = 10000) -> None:
        self.path = Path(path)
        self.max_alerts = max_alerts
        self.dropped = 0
        self._warned = False
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise PublishError(f"cannot open the alert outbox {self.path}: {exc}") from None

    def put(self, kind: str, topic: str, alert_id: str, seq: int, event: str, body: bytes) -> int:
        """Append durably (committed and fsynced on return); evicts per the bound policy first."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                depth = self._count()
                while depth >= self.max_alerts:
                    self._evict_one()
                    depth -= 1
                cursor = self._db.execute(
                    "INSERT INTO outbox (kind, topic, alert_id, seq, event, body, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (kind, topic, alert_id, seq, event, body, time.time()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            depth += 1
        self._check_fill(depth)
        return cursor.lastrowid

    def pending(self, after_id: int = 0, limit: int = 100) -> list[Entry]:
        """Entries in queue order with id > after_id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, topic, alert_id, seq, event, body, queued_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [Entry(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]), r[7]) for r in rows]

    def remove(self, ids: list[int]) -> None:
        """Acknowledged by the broker: gone. One transaction (one fsync) for a batch of acks."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")
            depth = self._count()
        if depth < WARN_FRACTION * self.max_alerts * 0.9:
            self._warned = False

    def count(self) -> int:
        with self._lock:
            return self._count()

    def clear(self) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM outbox").rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def _evict_one(self) -> None:
        for condition in ("kind = 'snapshot'", "event = 'update'", "1 = 1"):
            row = self._db.execute(
                f"SELECT id, alert_id, seq, event FROM outbox WHERE {condition} ORDER BY id LIMIT 1"
            ).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
                self.dropped += 1
                log.warning(
                    "alert outbox %s is full (%d): dropped the oldest %s of alert %s (seq %d)",
                    self.path,
                    self.max_alerts,
                    row[3],
                    row[1],
                    row[2],
                )
                return

    def _check_fill(self, depth: int) -> None:
        if not self._warned and depth >= WARN_FRACTION * self.max_alerts:
            self._warned = True
            log.warning(
                "alert outbox %s is %d%% full (%d of %d): is the broker reachable?",
                self.path,
                round(100 * depth / self.max_alerts),
                depth,
                self.max_alerts,
            )
