"""A corrupt alert outbox, as a table of real damage done to a real file: each is found at open,
moved aside with a timestamp, its readable rows saved into a new outbox, one warning line; the
CLI, a `detector worker` and a `detector replay` go on and deliver what was saved (issue 9)."""

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import asset, make_alert, require
from mqtt_broker import Collector, broker_fixture, needs_mosquitto  # noqa: F401

from detector.health import read_health
from detector.mqtt.outbox import Outbox, outbox_path

ROOT = Path(__file__).resolve().parent.parent
ROWS = 120  # alerts; plus a snapshot every 20 (a few KB each: overflow pages)
pytestmark = pytest.mark.timeout(120)


def fill(path: Path, rows: int = ROWS, camera: str = "cam-01", checkpoint: bool = True) -> dict[int, bytes]:
    """A real outbox as a worker leaves it; {outbox id: body}. checkpoint=False leaves the last
    commits in the WAL (the box is still running, or lost power)."""
    box = Outbox(path, 10_000)
    kept = {}
    for i in range(rows):
        alert = make_alert(id=f"0192f0c2-7a1b-7c3d-8e4f-{camera[-2:]}{i:010d}", seq=1, camera=camera, site="s1")
        kept[box.put("alert", f"city/s1/{camera}/alert", alert.id, 1, "start", alert.to_bytes())] = alert.to_bytes()
        if i % 20 == 0:
            jpeg = random.Random(i).randbytes(3000)
            kept[box.put("snapshot", f"city/s1/{camera}/snapshot", alert.id, 1, "snapshot", jpeg)] = jpeg
    if checkpoint:
        box._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        box.close()
    return kept


def truncated_mid_page(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2 + 1000)


def garbage_pages(path: Path) -> None:
    with open(path, "r+b") as f:  # two leaf pages in the middle (4 KiB pages; 1-3: schema, root, sequence)
        f.seek(8 * 4096)
        f.write(random.Random(7).randbytes(2 * 4096))


def zero_length(path: Path) -> None:
    os.truncate(path, 0)


def not_sqlite(path: Path) -> None:
    path.write_bytes(b"ffmpeg version 6.1 Copyright (c) 2000-2023 the FFmpeg developers\n" * 100)


def other_schema(path: Path) -> None:
    path.unlink()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE outbox (message TEXT, sent INTEGER)")
    db.execute("INSERT INTO outbox VALUES ('hello', 0)")
    db.commit()
    db.close()


def other_tables(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE settings (key TEXT, value TEXT)")
    db.commit()
    db.close()


def foreign_wal(path: Path) -> None:
    """The WAL of another camera's outbox, left beside this one (files copied around by hand):
    its pages land on this file's, and quick_check finds the mix."""
    other = Outbox(path.parent.parent / "elsewhere" / "cam-99.sqlite3")
    for i in range(200):  # larger rows than this file's: its pages do not line up with them
        alert = make_alert(id=f"0192f0c2-7a1b-7c3d-8e4f-99{i:010d}", camera="cam-99", zone="kerb-" + "x" * 300)
        other.put("alert", "city/s1/cam-99/alert", alert.id, 1, "start", alert.to_bytes())
        if i == 100:
            other._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(f"{other.path}-wal", f"{path}-wal")  # while it is open: its last 99 commits are in it


# name -> (damage, moved aside, which rows are saved: "all", "none", "some" or "mixed")
VARIANTS = {
    "truncated-mid-page": (truncated_mid_page, True, "some"),
    "garbage-pages": (garbage_pages, True, "some"),
    "zero-length": (zero_length, False, "none"),  # what SQLite makes of an empty file: a new outbox
    "not-sqlite": (not_sqlite, True, "none"),
    "other-schema": (other_schema, True, "none"),
    "other-tables": (other_tables, True, "all"),
    "foreign-wal": (foreign_wal, True, "mixed"),  # rows of either file, as the mixed pages give them
}


def write_config(tmp_path: Path, mqtt: dict | None = None, source: str = "x.mp4") -> Path:
    data = {
        "site": "s1",
        "model": {"path": str(ROOT / "models" / "yolov8n_320.onnx"), "threads": 1},
        "detect": {"fps": 2},
        "storage_dir": str(tmp_path / "store"),
        "cameras": [{"id": "cam-01", "source": source}],
    }
    if mqtt is not None:
        data["mqtt"] = mqtt
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def detector(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detector", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("variant", VARIANTS)
def test_corrupt_outbox_is_moved_aside_and_its_readable_rows_saved(tmp_path, variant):
    damage, moved, expected = VARIANTS[variant]
    config = write_config(tmp_path)
    path = outbox_path(tmp_path / "store", "cam-01")
    path.parent.mkdir(parents=True)
    written = fill(path)
    damage(path)

    listed = detector("outbox", str(config))
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    lines = listed.stdout.strip().splitlines()
    saved = int(lines[-1].split()[0])  # "N waiting in ..."
    assert len(lines) == saved + 1
    asides = sorted(p.name for p in path.parent.glob("cam-01.sqlite3.corrupt-*"))
    warnings = [line for line in listed.stderr.splitlines() if "was corrupt" in line]
    if moved:
        [warning] = warnings  # one line: the file, why, where it went, how many rows were saved
        [aside] = [name for name in asides if not name.endswith(("-wal", "-shm"))]
        assert aside[len("cam-01.sqlite3.corrupt-") :].endswith("Z") and len(aside) == len("cam-01.sqlite3.corrupt-") + 16
        assert str(path) in warning and aside in warning and f"{saved} entries saved" in warning
        if variant == "foreign-wal":
            assert f"{aside}-wal" in asides  # the WAL went with it, not left to be replayed into the new file
    else:
        assert warnings == [] and asides == []
    assert {"all": saved == len(written), "none": saved == 0, "some": 0 < saved < len(written), "mixed": saved > 0}[expected]

    box = Outbox(path)  # the new outbox: sound, holds what was saved, in order, and takes more
    entries = box.pending(0, 10_000)
    assert [e.id for e in entries] == sorted(e.id for e in entries) and len(entries) == saved
    if expected != "mixed":
        assert all(written[e.id] == e.body for e in entries)
    if moved and expected != "mixed":  # the ids of a single file tell what was lost
        lost = int(warning.split(", ")[-1].split()[0])
        assert saved + lost == (0 if expected == "none" else len(written))
    alert = make_alert(id="0192f0c2-7a1b-7c3d-8e4f-ffffffffffff", camera="cam-01", site="s1")
    box.put("alert", "city/s1/cam-01/alert", alert.id, 1, "start", alert.to_bytes())
    assert box.count() == saved + 1
    box.close()
    again = detector("outbox", str(config))  # nothing corrupt any more: no second warning
    assert again.returncode == 0 and "was corrupt" not in again.stderr
    assert again.stdout.strip().splitlines()[-1].startswith(f"{saved + 1} waiting")


def test_an_outbox_that_cannot_be_moved_aside_is_a_clear_error(tmp_path):
    """Damage that cannot be dealt with (the folder is read-only): one line, exit 5, no traceback."""
    config = write_config(tmp_path)
    path = outbox_path(tmp_path / "store", "cam-01")
    path.parent.mkdir(parents=True)
    not_sqlite(path)
    subprocess.run(["mount", "--bind", "-o", "ro", str(path.parent), str(path.parent)], capture_output=True)
    try:
        require(os.statvfs(path.parent).f_flag & os.ST_RDONLY, "a read-only bind mount needs root")
        result = detector("outbox", str(config))
    finally:
        subprocess.run(["umount", str(path.parent)], capture_output=True)
    assert result.returncode == 5 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"detector: error: alert outbox {path} is corrupt (file is not a database)")
    assert line.endswith("cannot be moved aside: Read-only file system")


@needs_mosquitto
def test_worker_and_replay_go_on_over_a_corrupt_outbox_and_deliver_what_was_saved(tmp_path, broker):
    """Before: the worker exited 5 at every start ("cannot open the alert outbox"), restarted
    forever; replay likewise. Now both go on, and the rows saved reach the broker, `delayed`."""
    clip = asset("sample_videos/clips/vtest.avi")
    config = write_config(tmp_path, broker.mqtt_section(drain_timeout_s=5), source=str(clip))
    path = outbox_path(tmp_path / "store", "cam-01")
    path.parent.mkdir(parents=True)
    collector = Collector(broker)

    written = fill(path)
    garbage_pages(path)
    log = open(tmp_path / "worker.log", "w+")
    worker = subprocess.Popen(
        [sys.executable, "-m", "detector", "worker", str(config), "--camera", "cam-01"], cwd=ROOT, stdout=log, stderr=log
    )
    try:
        running = lambda: (h := read_health(tmp_path / "store", "cam-01")) and h["pid"] == worker.pid and h["frames_out"]  # noqa: E731
        assert collector.wait(lambda c: running() and Outbox(path).count() == 0, timeout=40), "the saved rows did not go"
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
    log.seek(0)
    output = log.read()
    assert code == 0 and "Traceback" not in output, output
    [warning] = [line for line in output.splitlines() if "was corrupt" in line]
    saved = int(warning.split(" entries saved")[0].split()[-1])
    alerts, snapshots = collector.alerts(), collector.on("/snapshot")
    assert len({a["id"] for a in alerts}) + len(snapshots) == saved  # every row saved was delivered
    originals = {json.loads(body)["id"]: json.loads(body) for body in written.values() if body.startswith(b"{")}
    assert all(a["delayed"] and a | {"delayed": False} == originals[a["id"]] for a in alerts)  # as queued, flagged

    # replay: the same damage again, a short run of the clip; exits 0 after sending what was saved
    for p in path.parent.iterdir():
        p.unlink()
    fill(path)
    truncated_mid_page(path)
    before = len(collector.alerts())
    replay = detector("replay", str(config), "--camera", "cam-01", "--out", str(tmp_path / "out"), "--no-progress", timeout=120)
    assert replay.returncode == 0 and "Traceback" not in replay.stderr, replay.stderr
    assert replay.stderr.count("was corrupt") == 1
    saved = int(replay.stderr.split(" entries saved")[0].split()[-1])
    assert saved > 0 and Outbox(path).count() == 0  # sent and acknowledged before the replay ended
    assert collector.wait(lambda c: len(c.alerts()) + len(c.on("/snapshot")) - before - len(snapshots) == saved, timeout=10)
    collector.close()
