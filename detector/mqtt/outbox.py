"""Durable local queue of alerts: written BEFORE publishing, removed only on the broker's PUBACK.

One SQLite file per camera (`{storage_dir}/outbox/{camera}.sqlite3`), so one worker process owns
one file and a later run (or `detector outbox CONFIG --drain`) sends what an earlier one left.

Durability: WAL journal with synchronous=FULL. In WAL mode NORMAL already survives a killed
process (SIGKILL), but not a power cut: the last commits may roll back. Edge boxes lose power,
and alerts are rare (an fsync of a few ms each is nothing next to a frame), so FULL it is.

Bound (`outbox.max_alerts`): when full, a new entry first evicts the oldest snapshot, else the
oldest `update` (a later update or the end supersedes it), else the oldest entry of any kind.
Every eviction is logged with the alert id; a warning is logged when the outbox passes 80 %.

The file itself (its schema, the check at open, what is done with a corrupt one): outbox_file.py.
"""

import logging
import sqlite3
import threading
import time
from contextlib import suppress
from dataclasses import astuple, dataclass
from pathlib import Path

from detector.errors import PublishError
from detector.mqtt.outbox_file import COLUMNS, open_outbox
from detector.storage import Storage

log = logging.getLogger(__name__)

WARN_FRACTION = 0.8
MEMORY_MAX = 1000  # entries held in memory while the file cannot take them (about 1 MB of alerts)
_INSERT = f"INSERT INTO outbox ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
# The bound's order of sacrifice, in SQL (the file) and in Python (entries held in memory).
_EVICTION = (
    ("kind = 'snapshot'", lambda entry: entry.kind == "snapshot"),
    ("event = 'update'", lambda entry: entry.event == "update"),
    ("1 = 1", lambda entry: True),
)


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
    """Thread-safe (one connection behind a lock): the frame loop puts, the publisher removes.

    After opening, a storage fault (disk full, read-only, I/O error) never raises out of it:
    an entry the file cannot take waits in memory (at most MEMORY_MAX, in queue order, under the
    id it will have in the file) and goes into the file with the next put that succeeds; the
    publisher sends it meanwhile. An acknowledged entry whose DELETE fails is remembered and
    deleted later, never sent again by this process. What is only in memory is lost if the
    process dies first: the storage warning and health's `outbox_memory` say so.
    """

    def __init__(self, path: Path, max_alerts: int = 10000, storage: Storage | None = None) -> None:
        self.path = Path(path)
        self.max_alerts = max_alerts
        self.storage = storage if storage is not None else Storage(self.path.parent)
        self.dropped = 0
        self._warned = False
        self._lock = threading.Lock()
        self._memory: list[Entry] = []  # entries the file could not take, oldest first
        self._acked: set[int] = set()  # acknowledged, DELETE failed: skipped by pending(), deleted later
        self._last_id: int | None = None  # the highest id given out (read from the file when first needed)
        self._depth = 0  # entries in the file at the last count that worked
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = open_outbox(self.path)  # a corrupt file is moved aside, its rows saved
        except (sqlite3.Error, OSError) as exc:
            raise PublishError(f"cannot open the alert outbox {self.path}: {exc}") from None

    def put(self, kind: str, topic: str, alert_id: str, seq: int, event: str, body: bytes) -> int:
        """Append durably (committed and fsynced on return), evicting per the bound policy first;
        if the file cannot take it, in memory (see the class). Returns its id either way."""
        values = (kind, topic, alert_id, seq, event, body, time.time())
        with self._lock:
            try:
                entry_id = self._commit(values)
            except sqlite3.Error as exc:
                self.storage.failed("outbox", self.path, exc)
                entry_id = self._hold(values)
            else:
                self.storage.succeeded("outbox")
            depth = self._depth + len(self._memory)
        self._check_fill(depth)
        return entry_id

    def pending(self, after_id: int = 0, limit: int = 100) -> list[Entry]:
        """Entries in queue order with id > after_id: the file's, then those held in memory
        (their ids are higher); never one already acknowledged."""
        with self._lock:
            try:
                rows = self._db.execute(
                    f"SELECT {', '.join(COLUMNS)} FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, limit + len(self._acked)),
                ).fetchall()
            except sqlite3.Error as exc:
                self.storage.failed("outbox", self.path, exc)
                rows = []
            stored = [Entry(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]), r[7]) for r in rows if r[0] not in self._acked]
            held = [entry for entry in self._memory if entry.id > after_id]
        return (stored + held)[:limit]

    def remove(self, ids: list[int]) -> None:
        """Acknowledged by the broker: gone. One transaction (one fsync) for a batch of acks, with
        any whose DELETE failed before; if it fails again they stay remembered (see the class)."""
        gone = set(ids)
        with self._lock:
            self._acked |= gone - {entry.id for entry in self._memory}
            self._memory = [entry for entry in self._memory if entry.id not in gone]
            if not self._acked:
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._delete_acked()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self.storage.failed("outbox", self.path, exc)
                return
            self._acked = set()
            self._depth = self._count()
            self.storage.succeeded("outbox")
            depth = self._depth + len(self._memory)
        if depth < WARN_FRACTION * self.max_alerts * 0.9:
            self._warned = False

    @property
    def undeleted(self) -> int:
        """Acknowledged entries still in the file (their DELETE failed): remove() retries them."""
        return len(self._acked)

    @property
    def in_memory(self) -> int:
        """Entries only in memory: the file could not take them (not durable)."""
        return len(self._memory)

    def count(self) -> int:
        """Entries waiting for the broker's acknowledgement, in the file and in memory."""
        with self._lock:
            try:
                self._depth = self._count() - len(self._acked)
            except sqlite3.Error:
                pass  # the last count that worked
            return self._depth + len(self._memory)

    def alert_ids(self) -> set[str] | None:
        """Ids of the alerts with an entry waiting (retention keeps their evidence); None when
        the file cannot be read (then nothing may be deleted)."""
        with self._lock:
            try:
                stored = {row[0] for row in self._db.execute("SELECT DISTINCT alert_id FROM outbox")}
            except sqlite3.Error:
                return None
            return stored | {entry.alert_id for entry in self._memory}

    def clear(self) -> int:
        with self._lock:
            held, self._memory, self._acked = len(self._memory), [], set()
            return self._db.execute("DELETE FROM outbox").rowcount + held

    def close(self) -> None:
        """A last try to put what waits in memory into the file; what cannot go is said lost."""
        with self._lock:
            if self._memory or self._acked:
                try:
                    self._commit(None)
                except sqlite3.Error as exc:
                    self._rollback()
                    if self._memory:
                        log.error(
                            "alert outbox %s could not take %d entries held in memory (%s): lost at exit, undelivered",
                            self.path,
                            len(self._memory),
                            exc,
                            extra={"kv": {"event": "outbox_memory_lost", "entries": len(self._memory)}},
                        )
            self._db.close()

    def _commit(self, values: tuple | None) -> int | None:
        """One transaction: deletes still owed, the entries held in memory (under their ids),
        then `values` (None: none). Returns the new entry's id."""
        evicted: list[tuple] = []  # said only once committed: a rolled-back eviction dropped nothing
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._delete_acked()
            depth = self._count()
            new_id = None
            for entry in self._memory:
                depth = self._make_room(depth, evicted)
                self._db.execute(_INSERT, astuple(entry))
            if values is not None:
                depth = self._make_room(depth, evicted)
                # after ids given out in memory (even ones acknowledged there): ids never go back
                next_id = None if self._last_id is None else self._last_id + 1  # None: AUTOINCREMENT's
                new_id = self._db.execute(_INSERT, (next_id, *values)).lastrowid
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        for event, alert_id, seq in evicted:
            self._dropped(event, alert_id, seq, f"({self.max_alerts})")
        self._last_id = max(self._last_id or 0, new_id or 0, *(entry.id for entry in self._memory))
        self._memory, self._acked = [], set()
        self._depth = self._count()
        return new_id

    def _hold(self, values: tuple) -> int:
        """Keep an entry the file could not take in memory, under the id it gets in the file."""
        if self._last_id is None:
            self._last_id = self._highest_id()
        bound = min(MEMORY_MAX, self.max_alerts)
        if len(self._memory) >= bound:
            victim = next(e for _, wanted in _EVICTION for e in self._memory if wanted(e))
            self._memory.remove(victim)
            self._dropped(victim.event, victim.alert_id, victim.seq, f"in memory ({bound})")
        self._last_id += 1
        self._memory.append(Entry(self._last_id, *values))
        return self._last_id

    def _highest_id(self) -> int:
        """AUTOINCREMENT keeps the highest id ever used in sqlite_sequence (a read: works on a full disk)."""
        try:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        except sqlite3.Error:
            row = None
        return row[0] if row else 0

    def _delete_acked(self) -> None:
        self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in self._acked])

    def _rollback(self) -> None:
        if self._db.in_transaction:  # SQLite rolls back by itself on a full disk
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def _make_room(self, depth: int, evicted: list[tuple]) -> int:
        """Evict per the bound until one more entry fits (each noted in `evicted` as (event,
        alert id, seq)); returns the depth after the next insert."""
        while depth >= self.max_alerts:
            for condition, _ in _EVICTION:
                row = self._db.execute(
                    f"SELECT id, event, alert_id, seq FROM outbox WHERE {condition} ORDER BY id LIMIT 1"
                ).fetchone()
                if row is not None:
                    self._db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
                    evicted.append(row[1:])
                    break
            depth -= 1
        return depth + 1

    def _dropped(self, event: str, alert_id: str, seq: int, where: str) -> None:
        self.dropped += 1
        log.warning(
            "alert outbox %s is full %s: dropped the oldest %s of alert %s (seq %d)", self.path, where, event, alert_id, seq
        )

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
