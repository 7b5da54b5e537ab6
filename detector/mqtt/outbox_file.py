"""The outbox's SQLite file: its schema, the check at every open, and what is done with a corrupt one.

A file that is damaged (truncated, garbage pages, not SQLite) or holds something else (another
schema) is found at open by `PRAGMA quick_check` and a schema check, moved aside as
`{camera}.sqlite3.corrupt-{UTC time}` with its -wal/-shm, and its readable rows are saved, row
by row, into a new outbox at the same path (ids and queue times kept). One warning names the
file, where it went and how many rows were saved and lost; the camera goes on. Errors that moving
the file would not cure (permissions, a full disk, a lock) are raised as they are.

A WAL copied from another file cannot be told apart: SQLite applies it, and quick_check finds
what it broke, if anything (then the rows of the mix are saved, whichever file they came from).
"""

import logging
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from detector.alerts.alert import Alert
from detector.errors import PublishError

log = logging.getLogger(__name__)

SCHEMA = """
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
COLUMNS = ("id", "kind", "topic", "alert_id", "seq", "event", "body", "queued_at")

_SELECT_AFTER = f"SELECT {', '.join(COLUMNS)} FROM outbox WHERE id > ? ORDER BY id"
_DAMAGE = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


class _Corrupt(sqlite3.DatabaseError):
    """The file at an outbox's path is damaged or holds something else; the message says why."""


def open_outbox(path: Path) -> sqlite3.Connection:
    """A connection to the sound outbox at `path` (WAL, synchronous=FULL): created when missing,
    or in place of a corrupt file, which is moved aside and its readable rows saved first."""
    try:
        return _open_checked(path)
    except _Corrupt as corrupt:
        return _replace_corrupt(path, str(corrupt))


def _open_checked(path: Path) -> sqlite3.Connection:
    """The outbox at `path` (created when missing or empty), checked first: _Corrupt when the
    file is damaged or not an outbox. Other errors (permissions, a full disk, a lock held too
    long) raise as they are: moving the file aside would not help."""
    if path.exists():
        checker = _read_only(path)  # closing it writes nothing (a read-write one would checkpoint the WAL)
        try:
            problem = _problem(checker)
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _DAMAGE:
                raise
            problem = str(exc)
        finally:
            checker.close()
        if problem is not None:
            raise _Corrupt(problem)
    db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(SCHEMA)
    return db


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=10)


def _problem(db: sqlite3.Connection) -> str | None:
    """Why the open file is not a sound outbox, or None (an empty file is a new outbox)."""
    found = [row[0] for row in db.execute("PRAGMA quick_check(3)")]  # ["ok"], or the first 3 faults
    if found != ["ok"]:
        return "quick_check: " + " ".join(" ".join(found).replace("*** in database main ***", "").split())
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} - {"sqlite_sequence"}
    if tables - {"outbox"}:
        return f"not an alert outbox: tables {', '.join(sorted(tables))}"
    columns = tuple(row[1] for row in db.execute("PRAGMA table_info(outbox)"))
    if tables and columns != COLUMNS:
        return f"not an alert outbox: columns {', '.join(columns)}"
    return None


def _replace_corrupt(path: Path, problem: str) -> sqlite3.Connection:
    """Move the corrupt file aside, open a new outbox in its place and save into it every row
    that can still be read; one warning says so. The camera goes on either way."""
    try:
        aside = _move_aside(path)
    except OSError as exc:
        raise PublishError(f"alert outbox {path} is corrupt ({problem}) and cannot be moved aside: {exc.strerror}") from None
    db = _open_checked(path)
    saved, lost = _salvage(aside, db)
    log.warning(
        "alert outbox %s was corrupt (%s): moved aside to %s; %d entries saved into a new outbox, %d unreadable",
        path,
        problem,
        aside.name,
        saved,
        lost,
        extra={"kv": {"event": "outbox_corrupt", "path": str(path), "moved_to": aside.name, "saved": saved, "lost": lost}},
    )
    return db


def _move_aside(path: Path) -> Path:
    """To `{name}.corrupt-{UTC time}`; the WAL first: one left behind would be replayed into the
    new file."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside, n = path.with_name(f"{path.name}.corrupt-{stamp}"), 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in ("-wal", "-shm", ""):
        try:
            os.rename(f"{path}{suffix}", f"{aside}{suffix}")
        except FileNotFoundError:
            pass
    return aside


def _salvage(aside: Path, db: sqlite3.Connection) -> tuple[int, int]:
    """Copy every readable, well-formed row of the file moved aside into `db`, ids and queue
    times kept (so the order and the `delayed` flag stay right). Returns (rows saved, rows
    lost), the lost counted from the ids of unreadable stretches and the malformed rows.

    Row by row by hand: SQLite's own recovery (`.recover`) is in the sqlite3 shell only, not
    in Python's sqlite3 module."""
    rows, lost = [], 0
    source = _read_only(aside)
    try:
        # a truncated file is refused as a whole unless the schema is "writable": then the pages
        # past its end fail one by one and those before it read (nothing is written here)
        source.execute("PRAGMA writable_schema=ON")
        if set(COLUMNS) <= {row[1] for row in source.execute("PRAGMA table_info(outbox)")}:
            for row, skipped in _readable_rows(source):
                lost += skipped
                if row is None:
                    continue
                # a damaged tree can give ids out of order, or twice: the first of each is kept
                if _well_formed(row) and (not rows or row[0] > rows[-1][0]):
                    rows.append(row)
                else:
                    lost += 1
    except sqlite3.DatabaseError:
        pass  # not even the schema reads: nothing to save
    finally:
        source.close()
    db.execute("BEGIN IMMEDIATE")
    db.executemany(f"INSERT INTO outbox ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
    db.execute("COMMIT")
    return len(rows), lost


def _readable_rows(source: sqlite3.Connection) -> Iterator[tuple[tuple | None, int]]:
    """(row, ids skipped over just before it) in id order, stepping over unreadable pages; a
    last (None, n) for a stretch unreadable to the end."""
    after, skipped_from = 0, None
    while True:
        try:
            for row in source.execute(_SELECT_AFTER, (after,)):
                yield row, 0 if skipped_from is None else max(0, row[0] - skipped_from - 1)
                after, skipped_from = row[0], None
            break
        except sqlite3.DatabaseError:
            skipped_from = after if skipped_from is None else skipped_from
            resume = _readable_after(source, after)
            if resume is None:
                break
            after = resume
    if skipped_from is not None:
        try:
            last = source.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        except sqlite3.DatabaseError:
            last = None
        yield None, max(0, last[0] - skipped_from) if last else 0


def _readable_after(source: sqlite3.Connection, after: int) -> int | None:
    """The first id past `after` from which reading works again (None: nothing more reads):
    the step doubles until a read works, then a binary search goes back to the first that does."""

    def reads(from_id: int) -> bool:
        try:
            source.execute(_SELECT_AFTER + " LIMIT 1", (from_id,)).fetchall()
            return True
        except sqlite3.DatabaseError:
            return False

    step = 1
    while not reads(after + step):
        step *= 2
        if after + step >= 2**63:
            return None
    low, high = after + step // 2, after + step  # low does not read (or is `after`), high does
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reads(middle) else (middle, high)
    return high


def _well_formed(row: tuple) -> bool:
    """A row the publisher can send: the right types, and an alert body that parses."""
    _, kind, topic, alert_id, seq, event, body, queued_at = row
    texts = all(isinstance(v, str) for v in (topic, alert_id, event))
    if kind not in ("alert", "snapshot") or not texts or not isinstance(seq, int) or not isinstance(body, bytes):
        return False
    if not isinstance(queued_at, int | float):
        return False
    try:
        return kind != "alert" or Alert.from_bytes(body) is not None
    except ValueError:
        return False
