"""Retention (issue 9): what a sweep deletes by age and by size, as a table of files on disk
with real ages (mtime), a real outbox holding some alerts; and the events file's rotation."""

import json
import os
import time
from pathlib import Path

import pytest
from conftest import make_alert

from detector.alerts import JsonlSink
from detector.alerts.sinks import events_parts
from detector.config.schema import RetentionConfig
from detector.mqtt.outbox import Outbox
from detector.retention import CameraFiles, Retention
from detector.storage import Storage

DAY = 86400.0
NOW = time.time()
CAMERA = "cam"
OLD_PART = "events/cam.20250101T000000Z.jsonl"

# row: (settings, {file: (age s, KiB)}, open alert ids, alert ids in the outbox, files deleted)
CASES = {
    "older than max_age_days": (
        {"max_age_days": 30},
        {
            "evidence/cam/old.jpg": (40 * DAY, 10),
            "evidence/cam/recent.jpg": (10 * DAY, 10),
            "evidence/cam/open.jpg": (40 * DAY, 10),
            "evidence/cam/unsent.jpg": (40 * DAY, 10),
            OLD_PART: (40 * DAY, 10),
            "events/cam.jsonl": (40 * DAY, 10),  # the current file: only its rotated parts go
        },
        {"open"},
        {"unsent"},
        ["evidence/cam/old.jpg", OLD_PART],
    ),
    "over max_total_mb: the oldest first": (
        {"max_total_mb": 1},
        {
            "evidence/cam/a.jpg": (4 * DAY, 400),
            "evidence/cam/b.jpg": (3 * DAY, 400),
            "evidence/cam/c.jpg": (2 * DAY, 400),
            "evidence/cam/d.jpg": (1 * DAY, 400),
        },
        {"a"},  # the oldest, but open: kept; b and c go, then 800 KiB fit
        set(),
        ["evidence/cam/b.jpg", "evidence/cam/c.jpg"],
    ),
    "events parts count toward the size": (
        {"max_total_mb": 1},
        {OLD_PART: (5 * DAY, 300), "evidence/cam/a.jpg": (4 * DAY, 400), "events/cam.jsonl": (1 * DAY, 600)},
        set(),
        set(),
        [OLD_PART],
    ),
    "nothing younger than a minute": ({"max_total_mb": 0.001}, {"evidence/cam/new.jpg": (30, 10)}, set(), set(), []),
    "other cameras' files untouched": (
        {"max_age_days": 1},
        {
            "evidence/cam.2/x.jpg": (40 * DAY, 10),
            "events/cam.2.20250101T000000Z.jsonl": (40 * DAY, 10),
            "events/cam.2.jsonl": (40 * DAY, 1),
        },
        set(),
        set(),
        [],
    ),
}


def make_files(root: Path, files: dict[str, tuple[float, float]]) -> None:
    for name, (age_s, kib) in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(int(kib * 1024)))
        os.utime(path, (NOW - age_s, NOW - age_s))


@pytest.mark.parametrize("name", CASES)
def test_retention_sweep(tmp_path, name):
    settings, files, open_ids, unsent, deleted = CASES[name]
    make_files(tmp_path, files)
    camera = CameraFiles(tmp_path, CAMERA)
    outbox = Outbox(camera.outbox)
    for alert_id in unsent:
        outbox.put("alert", "t", alert_id, 1, "start", b"{}")
    storage = Storage(tmp_path)
    retention = Retention(camera, RetentionConfig(**settings), storage, outbox.alert_ids)
    retention.open_ids = frozenset(open_ids)
    gone = retention.sweep(NOW)
    outbox.close()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in gone) == sorted(deleted)
    assert sorted(n for n in files if not (tmp_path / n).exists()) == sorted(deleted)
    kept = [n for n in files if n not in deleted and n.startswith(("evidence/cam/", "events/cam.jsonl", "events/cam.2025"))]
    used = storage.health()["disk_used_bytes"]
    assert used["evidence"] + used["events"] == sum(int(files[n][1] * 1024) for n in kept)
    assert used["outbox"] > 0 and storage.health()["retention_deleted"] == len(deleted)


def test_nothing_is_deleted_while_the_outbox_cannot_be_read(tmp_path):
    """Any JPEG might belong to an alert waiting there."""
    make_files(tmp_path, {"evidence/cam/old.jpg": (400 * DAY, 10)})
    retention = Retention(CameraFiles(tmp_path, CAMERA), RetentionConfig(max_age_days=1), Storage(tmp_path), lambda: None)
    assert retention.sweep(NOW) == [] and (tmp_path / "evidence/cam/old.jpg").exists()


def test_events_rotate_by_size_and_keep_every_line_in_order(tmp_path):
    path = tmp_path / "events" / "cam.jsonl"
    sink = JsonlSink(path, append=True, storage=Storage(tmp_path), rotate_bytes=1500)
    for seq in range(1, 8):
        sink.emit(make_alert(seq=seq))
        time.sleep(1.0 if seq == 3 else 0)  # two rotations in one second get distinct names too
    sink.close()
    parts = events_parts(path)
    assert len(parts) >= 2 and all(p.stat().st_size <= 1500 for p in [*parts, path])
    seqs = [
        json.loads(line)["seq"]
        for p in sorted([*parts], key=lambda p: p.stat().st_mtime) + [path]
        for line in p.read_text().splitlines()
    ]
    assert seqs == list(range(1, 8))


def test_events_rotate_when_the_day_of_their_last_line_has_passed(tmp_path):
    path = tmp_path / "events" / "cam.jsonl"
    path.parent.mkdir()
    path.write_bytes(make_alert(seq=1).to_bytes() + b"\n")
    yesterday = time.time() - DAY
    os.utime(path, (yesterday, yesterday))
    sink = JsonlSink(path, append=True, rotate_bytes=1 << 20)  # a restarted worker, the next day
    sink.emit(make_alert(seq=2))
    sink.close()
    [part] = events_parts(path)
    assert part.name == f"cam.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(yesterday))}.jsonl"
    assert [json.loads(line)["seq"] for line in part.read_text().splitlines()] == [1]
    assert [json.loads(line)["seq"] for line in path.read_text().splitlines()] == [2]


def test_events_parts_are_matched_exactly(tmp_path):
    """Camera ids may hold dots: camera `cam`'s parts are not camera `cam.2`'s files."""
    names = ["cam.jsonl", "cam.20260101T000000Z.jsonl", "cam.20260101T000000Z-2.jsonl", "cam.2.jsonl",
             "cam.2.20260101T000000Z.jsonl", "cam.x.jsonl"]  # fmt: skip
    for name in names:
        (tmp_path / name).touch()
    assert [p.name for p in events_parts(tmp_path / "cam.jsonl")] == [
        "cam.20260101T000000Z-2.jsonl",
        "cam.20260101T000000Z.jsonl",
    ]
