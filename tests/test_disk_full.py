"""A full or read-only disk at each write site of a live camera (issue 9).

The real worker loop (`detector.run.run_camera`: the model, a clip played live, the outbox, a real
mosquitto) with each write site of storage_dir on a small tmpfs of its own, filled up (or
remounted read-only) while alerts flow, then freed. The clip is vtest's first 6 s with the van
gone after 3.5 s, looped, so every 6 s brings a start (evidence), updates and an end. Each row:
the camera keeps detecting and publishing, every alert event produced is delivered, none twice,
health names the fault while it lasts and clears by itself, the log says so once each way, no
traceback. Then the outbox's memory fallback and the events file's whole lines on their own.
"""

import errno
import json
import logging
import os
import subprocess
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import require
from mqtt_broker import Collector, Mosquitto, needs_mosquitto
from test_rtsp_source import vtest_clip

from detector.alerts import JsonlSink
from detector.config import load_config
from detector.health import HealthMeter, health_path, read_health, status_lines
from detector.mqtt.outbox import Outbox, outbox_path
from detector.run import run_camera
from detector.storage import Storage

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "alert.schema.json").read_text())
VAN_ZONE = [[0.82, 0.06], [0.97, 0.06], [0.97, 0.20], [0.82, 0.20]]
VAN = (0.78, 0.0, 1.0, 0.3)
CAMERA = "cam"
# write site -> its folder under storage_dir (each one a tmpfs of its own)
SITES = {"health": "health", "outbox": "outbox", "evidence": f"evidence/{CAMERA}", "events": "events", "state": "state"}
pytestmark = [needs_mosquitto, pytest.mark.timeout(300)]


class SmallDisk:
    """A tmpfs of its own at `folder` (mounting needs root, as in CI; chmod does not stop root),
    to fill up and free, or remount read-only and writable again: real ENOSPC and EROFS."""

    def __init__(self, folder: Path, size_kb: int) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], check=True)
        self.filler = folder / "filler.bin"

    def fill(self) -> None:
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (65536, 512, 1):
                try:
                    while True:
                        f.write(bytes(chunk))
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC

    def free(self) -> None:
        self.filler.unlink()

    def read_only(self, on: bool) -> None:
        remount = ["mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.folder)]
        for _ in range(50):  # busy while a file is open for writing (a health file being replaced)
            if subprocess.run(remount, capture_output=True).returncode == 0:
                return
            time.sleep(0.02)
        pytest.fail(f"cannot remount {self.folder} {'read-only' if on else 'writable'}")

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.folder)], check=False)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, name: str, since: int = 0) -> list[logging.LogRecord]:
        return [r for r in self.records[since:] if getattr(r, "kv", {}).get("event") == name]


class LiveCamera:
    """One worker (a thread of this process) over the looping clip, for the whole module."""

    def __init__(self, folder: Path) -> None:
        self.broker = Mosquitto(folder / "broker").start()
        self.collector = Collector(self.broker)
        self.store = folder / "store"
        self.disks = {kind: SmallDisk(self.store / sub, 8192 if kind == "outbox" else 4096) for kind, sub in SITES.items()}
        config = {
            "site": "disk",
            "model": {"path": str(ROOT / "models" / "yolov8n_320.onnx"), "threads": 1},
            "detect": {"fps": 2, "min_score": 0.35},
            "track": {"settle_s": 0.5},
            "violations": {"illegal_parking": {"dwell_s": 1, "grace_s": 0.5, "clear_s": 1, "cooldown_s": 0, "update_s": 1}},
            "storage_dir": str(self.store),
            "mqtt": self.broker.mqtt_section(),
            "cameras": [
                {
                    "id": CAMERA,
                    "source": str(vtest_clip(seconds=6, blank=VAN, blank_from_s=3.5)),
                    "zones": [{"id": "kerb", "polygon": VAN_ZONE, "violations": ["illegal_parking"]}],
                }
            ],
        }
        (folder / "site.yaml").write_text(yaml.safe_dump(config))
        self.config = load_config(folder / "site.yaml")
        self.log = Records()
        logging.getLogger("detector").addHandler(self.log)
        logging.getLogger("detector").setLevel(logging.DEBUG)
        self.stop = threading.Event()
        self.crash: str | None = None  # the worker's traceback
        self.thread = threading.Thread(target=self._run, name="worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            run_camera(self.config, CAMERA, self.stop)
        except BaseException:  # noqa: BLE001 - the test reports it
            self.crash = traceback.format_exc()

    def produced(self, since: int = 0) -> list[tuple[str, int, str]]:
        """(id, seq, event) of every alert event the pipeline emitted (its log lines)."""
        alerts = [getattr(r, "kv", {}) for r in self.log.records[since:]]
        return [
            (kv["id"], kv["seq"], kv["event"].removeprefix("alert_")) for kv in alerts if kv.get("event", "").startswith("alert_")
        ]

    def delivered(self) -> list[tuple[str, int]]:
        return [(a["id"], a["seq"]) for a in self.collector.alerts()]

    def health(self, since: int = 0) -> list[dict]:
        return [json.loads(m[1]) for m in self.collector.messages[since:] if m[0].endswith("/health")]

    def wait(self, what: str, predicate, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.crash is None, f"the worker crashed:\n{self.crash}"
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.1)

    def stop_worker(self) -> None:
        self.stop.set()
        self.thread.join(60)

    def close(self) -> None:
        self.stop_worker()
        logging.getLogger("detector").removeHandler(self.log)
        self.collector.close()
        self.broker.stop()
        for disk in self.disks.values():
            disk.unmount()


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    live = LiveCamera(tmp_path_factory.mktemp("disk-full"))
    try:
        live.wait("the first start", lambda: any(e == "start" for _, _, e in live.produced()), 120)
        yield live
    finally:
        live.close()


# row: (write sites hit, "full" or "read-only", the health state expected while it lasts)
ROWS = {
    "health file": (["health"], "full", "disk_full"),
    "outbox": (["outbox"], "full", "disk_full"),
    # events written while the broker was away, acknowledged once the disk was full: their
    # DELETE fails, and they must not be sent again (the reported loop: 47 copies in 113 s)
    "outbox, acknowledged after it filled": (["outbox"], "full, broker away", "disk_full"),
    "evidence": (["evidence"], "full", "disk_full"),
    "events.jsonl": (["events"], "full", "disk_full"),
    "open-alert state": (["state"], "full", "disk_full"),
    "whole disk": (list(SITES), "full", "disk_full"),
    # a mount cannot become read-only while a file on it is open for writing (events, outbox)
    "read-only storage": (["health", "evidence", "state"], "read-only", "read_only"),
}


@pytest.mark.parametrize("row", ROWS)
def test_a_camera_keeps_detecting_and_publishing_on_a_full_or_read_only_disk(camera, row):
    sites, how, state = ROWS[row]
    logs, messages = len(camera.log.records), len(camera.collector.messages)
    before = camera.health(messages - 50)[-1]
    lines_before = _lines(camera.store / "events" / f"{CAMERA}.jsonl")
    if how == "full, broker away":
        camera.broker.stop()
        camera.wait("events queued in the outbox file", lambda: len(camera.produced(logs)) >= 2, 20)
    for kind in sites:
        camera.disks[kind].read_only(True) if how == "read-only" else camera.disks[kind].fill()
    if how == "full, broker away":
        camera.broker.start()

    def failed(health: dict, kind: str) -> int:
        return health["storage_failures"].get(kind, 0) - before["storage_failures"].get(kind, 0)

    try:
        # a whole cycle while it lasts: a start (its evidence), then an event after it
        camera.wait(
            "a start and a later event while the fault lasts",
            lambda: (events := [e for _, _, e in camera.produced(logs)]) and "start" in events[:-1],
            40,
        )
        camera.wait(f"health saying {state}", lambda: any(h["storage"] == state for h in camera.health(messages)), 10)
        # a file may still have room in its last page: the next lines or WAL frames do not
        camera.wait("a failed write at every site", lambda: all(failed(camera.health(messages)[-1], k) for k in sites), 20)
        if "health" in sites and how != "read-only":  # the health file still beats (rewritten in place)
            beat = read_health(camera.store, CAMERA)["heartbeat_at"]
            camera.wait("a heartbeat on a full disk", lambda: read_health(camera.store, CAMERA)["heartbeat_at"] > beat, 5)
        during = camera.health(messages)
    finally:
        for kind in sites:
            camera.disks[kind].read_only(False) if how == "read-only" else camera.disks[kind].free()
    freed_at, freed = time.time(), len(camera.collector.messages)
    camera.wait("health saying ok again", lambda: any(h["storage"] == "ok" for h in camera.health(freed)), 10)
    produced = camera.produced(logs)
    camera.wait("every event produced delivered", lambda: {(i, s) for i, s, _ in produced} <= set(camera.delivered()), 15)

    # nothing lost, nothing twice (one reconnect at most, when the broker was away: then a repeat
    # can only be an event whose acknowledgement that cut lost, flagged delayed)
    reconnects = 1 if how == "full, broker away" else 0
    mine = {(i, s) for i, s, _ in produced}
    repeats = [key for key, n in Counter(camera.delivered()).items() if n > 1 and key in mine]
    assert len(repeats) <= reconnects * 16 and all(
        a["delayed"] for a in camera.collector.alerts() if (a["id"], a["seq"]) in repeats
    )
    assert {h["mqtt_reconnects"] - before["mqtt_reconnects"] for h in camera.health(messages)} <= {0, reconnects}
    # health named the fault and the folder while it lasted, and counted the failed writes
    faulted = [h for h in during if h["storage"] == state]
    folders = tuple(str(camera.store / SITES[kind]) for kind in sites)
    assert faulted and all(h["storage_path"].startswith(folders) for h in faulted), faulted[-1:]
    after = camera.health(freed)[-1]
    assert after["disk_free_bytes"] > 0 and after["storage_path"] is None
    # the log named it once, and its end once; no traceback anywhere
    assert len(camera.log.events("storage_fault", logs)) == 1, [r.getMessage() for r in camera.log.events("storage_fault", logs)]
    assert len(camera.log.events("storage_restored", logs)) == 1
    assert not [r for r in camera.log.records[logs:] if r.exc_info], "a traceback was logged"
    assert camera.thread.is_alive() and camera.crash is None

    # what each write site gives up while it cannot write
    alerts = {(a["id"], a["seq"]): a for a in camera.collector.alerts()}
    starts = [alerts[(i, s)] for i, s, e in produced if e == "start"]
    for alert in starts:
        jsonschema.validate(alert, SCHEMA)
    if "evidence" in sites:  # the start went out without its JPEG, saying why
        assert (starts[0]["snapshot"], starts[0]["snapshot_error"]) == (None, state)
    else:
        assert starts[0]["snapshot"] is not None and "snapshot_error" not in starts[0]
    lines = _lines(camera.store / "events" / f"{CAMERA}.jsonl")  # whole lines only; the skipped ones counted
    assert len(lines) - len(lines_before) + failed(after, "events") >= len(produced) - 2  # 2: after `after`
    if "state" in sites:  # written again once the disk had room
        camera.wait(
            "the state file rewritten", lambda: (camera.store / "state" / f"{CAMERA}.json").stat().st_mtime >= freed_at, 10
        )


def test_after_the_faults_nothing_waits_and_nothing_came_twice(camera):
    camera.stop_worker()
    assert camera.crash is None and not camera.thread.is_alive()
    produced = {(i, s) for i, s, _ in camera.produced()}
    delivered = camera.delivered()
    assert produced == set(delivered)
    repeats = [a for a in camera.collector.alerts() if delivered.count((a["id"], a["seq"])) > 1]
    assert len(repeats) <= 2 * 16 and all(a["delayed"] for a in repeats[1::2])  # only across the broker's restart
    outbox = Outbox(outbox_path(camera.store, CAMERA))
    assert outbox.count() == 0  # every acknowledged entry deleted in the end, every held one sent
    outbox.close()
    health = read_health(camera.store, CAMERA)
    # reconnected once: the broker's restart (the publisher's own count; the collector's count of
    # `online` messages also depends on whether it resubscribed before or after the camera, since
    # the retained `online` comes again with a new subscription)
    assert health["state"] == "stopped" and health["mqtt_reconnects"] == 1, health


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- the outbox and the events file on their own ---


@pytest.fixture
def disk(tmp_path):
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    small = SmallDisk(tmp_path / "disk", 1024)
    yield small
    small.unmount()


def test_the_outbox_holds_what_a_full_disk_refuses_in_memory_under_its_file_ids(disk, caplog):
    storage = Storage(disk.folder)
    outbox = Outbox(disk.folder / "o.sqlite3", max_alerts=100, storage=storage)
    assert [outbox.put("alert", "t", f"a{i}", 1, "start", b"{}") for i in (1, 2)] == [1, 2]
    disk.fill()
    assert outbox.put("alert", "t", "a3", 1, "update", bytes(8192)) == 3  # the id it will have in the file
    assert (outbox.in_memory, outbox.count(), storage.health()["storage"]) == (1, 3, "disk_full")
    assert [e.id for e in outbox.pending()] == [1, 2, 3]
    outbox.remove([1, 3])  # acknowledged: 3 leaves memory; 1's DELETE fails: remembered, not sent again
    assert (outbox.undeleted, [e.id for e in outbox.pending()], outbox.count()) == (1, [2], 1)
    disk.free()
    assert outbox.put("alert", "t", "a4", 1, "start", b"{}") == 4
    outbox.remove([])  # nothing owed any more
    assert (outbox.in_memory, outbox.undeleted) == (0, 0)
    outbox.close()
    again = Outbox(disk.folder / "o.sqlite3")
    assert [(e.id, e.alert_id) for e in again.pending()] == [(2, "a2"), (4, "a4")]
    again.close()
    storage.probe()
    assert storage.health()["storage"] == "ok"
    assert [r.getMessage() for r in caplog.records if "storage" in r.getMessage()][0].startswith(
        f"storage {disk.folder}: disk full (database or disk is full, writing {disk.folder}/o.sqlite3)"
    )


def test_memory_is_bounded_and_says_what_it_dropped(disk, caplog):
    outbox = Outbox(disk.folder / "o.sqlite3", max_alerts=10, storage=Storage(disk.folder))
    outbox.put("alert", "t", "first", 1, "start", b"{}")
    disk.fill()
    for seq in range(1, 13):  # 8 KB each: more than any page the file already has can take
        outbox.put("alert", "t", "a", seq, "end" if seq == 1 else "update", bytes(8192))
    assert (outbox.in_memory, outbox.dropped) == (10, 2)  # the bound: updates go first, the end stays
    assert [(e.alert_id, e.seq) for e in outbox.pending()][:3] == [("first", 1), ("a", 1), ("a", 4)]
    assert "is full in memory (10): dropped the oldest update of alert a (seq 2)" in caplog.text
    with caplog.at_level(logging.ERROR):
        outbox.close()  # still full: what only memory held is lost, and said so
    assert "could not take 10 entries held in memory" in caplog.text


def test_a_line_the_disk_cuts_short_is_taken_back_whole(disk):
    from conftest import make_alert

    storage = Storage(disk.folder)
    sink = JsonlSink(disk.folder / "events.jsonl", append=True, storage=storage)
    sink.emit(make_alert(seq=1))
    disk.fill()
    long = make_alert(seq=2, zone="z" * 60, objects=make_alert().objects * 80)  # more than the page has left
    sink.emit(long)
    assert storage.health()["storage_failures"] == {"events": 1}
    disk.free()
    sink.emit(make_alert(seq=3))
    sink.close()
    assert [e["seq"] for e in _lines(disk.folder / "events.jsonl")] == [1, 3]


def test_the_health_file_beats_on_a_full_disk_and_status_names_the_fault(disk, tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": "s",
                "model": {"path": "m.onnx"},
                "storage_dir": str(disk.folder),
                "cameras": [{"id": CAMERA, "source": "x.mp4"}],
            }
        )
    )
    meter = HealthMeter(CAMERA, path=health_path(disk.folder, CAMERA), storage=Storage(disk.folder))
    meter.report()
    disk.fill()
    meter.frame(1.5, 40.0)
    meter.report()  # no room for a new file: rewritten in place (saying ok: the write failed after)
    meter.report()
    health = read_health(disk.folder, CAMERA)
    assert (health["frames_out"], health["storage"], health["storage_failures"]) == (1, "disk_full", {"health": 1})
    [_, line] = status_lines(load_config(config))
    assert " running " in line and line.endswith(f"storage disk_full: {health_path(disk.folder, CAMERA)}")


def test_an_unknown_error_is_no_storage_fault():
    """Only OSError and SQLite errors are storage faults; anything else is a bug and goes up."""
    storage = Storage(Path("."))
    assert storage.failed("events", Path("x"), ValueError("bug")) is None
    assert storage.failed("events", Path("x"), OSError(errno.ENOSPC, "No space left on device")) == "disk_full"
    assert storage.failed("events", Path("x"), OSError(errno.EROFS, "Read-only file system")) == "read_only"
