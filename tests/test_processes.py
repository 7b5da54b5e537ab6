"""The processes of `detector run` under faults (issue 9): a worker whose supervisor died while it
started, a file that opens but never decodes, a broken model or config (fail fast, exit code for
systemd), and a storm of SIGHUPs. A worker killed mid-alert is in test_supervisor_rtsp.py."""

import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import asset, start_run, wait_for
from rtsp_server import make_h264_clip

from detector.backoff import Backoff
from detector.capture import open_source
from detector.capture.rtsp_source import NO_FRAMES
from detector.config import load_config
from detector.health import HealthMeter, health_path, read_health, status_lines

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(90)


def write_config(path: Path, store: Path, cameras: dict[str, str], model: Path | None = None, **camera_extra) -> Path:
    """cameras: id -> source (files are played live, like a camera)."""
    config = {
        "site": "proc-test",
        "model": {"path": str(model or asset("models/yolov8n_320.onnx")), "threads": 1},
        "detect": {"fps": 1},
        "storage_dir": str(store),
        "supervisor": {"heartbeat_timeout_s": 10, "restart_min_s": 0.2, "restart_max_s": 1, "stop_timeout_s": 10},
        "cameras": [{"id": cid, "source": source, **camera_extra.get(cid, {})} for cid, source in cameras.items()],
    }
    partial = path.with_suffix(".partial")
    partial.write_text(yaml.safe_dump(config))
    os.replace(partial, path)  # a reload never reads half a file
    return path


def process_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, Z, ...), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def gone(pid: int) -> bool:
    return process_state(pid) in (None, "Z")  # an orphan's zombie waits for whoever adopted it


def workers_of(store: Path) -> list[int]:
    """Live `detector worker` processes of the supervisor using `store` (they read the config it
    accepted, `store/run/config.yaml`), whoever their parent."""
    config = store / "run" / "config.yaml"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and not gone(int(entry.name)):
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"worker" in args and str(config).encode() in args:
                found.append(int(entry.name))
    return found


def wait_stable(read, hold_s: float, timeout: float, what: str):
    """read()'s value once it has stayed the same (and truthy) for hold_s."""
    deadline, value, since = time.monotonic() + timeout, None, 0.0
    while time.monotonic() < deadline:
        now, current = time.monotonic(), read()
        if not current or current != value:
            value, since = current, now
        elif now - since >= hold_s:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of the direct children of `pid`."""
    tasks = Path(f"/proc/{pid}/task")
    kids = " ".join((t / "children").read_text() for t in tasks.iterdir()).split()
    return [(int(k), process_state(int(k))) for k in kids]


# --- (a) the supervisor dies while its worker starts ---

# when the stand-in supervisor (a shell) dies: at once (before the worker could arm anything),
# while it loads the model, or once it runs
PARENT_DIES = {"before-start": None, "while-loading": 0.15, "while-running": "running"}


@pytest.mark.parametrize("when", PARENT_DIES)
def test_a_worker_never_outlives_the_supervisor_that_started_it(tmp_path, when):
    config = write_config(tmp_path / "site.yaml", tmp_path / "store", {"cam": str(asset("sample_videos/clips/vtest.avi"))})
    log = tmp_path / "worker.log"
    worker = [sys.executable, "-m", "detector", "worker", str(config), "--camera", "cam"]
    # the shell is the supervisor: it starts the worker with its own pid, as Supervisor._start does
    script = '"$@" --parent $$ >"$LOG" 2>&1 & echo $!; ' + ("exit 0" if PARENT_DIES[when] is None else "sleep 60")
    shell = subprocess.Popen(
        ["sh", "-c", script, "sh", *worker], cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "LOG": str(log)}
    )
    pid = int(shell.stdout.readline())
    if PARENT_DIES[when] == "running":
        wait_for(lambda: (h := read_health(tmp_path / "store", "cam")) and h["pid"] == pid and h["frames_out"], 30, "frames")
    elif PARENT_DIES[when] is not None:
        time.sleep(PARENT_DIES[when])
    shell.kill()
    shell.wait()
    # before: a worker orphaned before it armed PR_SET_PDEATHSIG (after its heavy imports) ran on
    # for good, adopted by init, its camera read twice once the supervisor was restarted
    wait_for(lambda: gone(pid), 15, f"the orphaned worker {pid} to exit")
    output = log.read_text()
    assert "Traceback" not in output, output
    if when == "before-start":
        assert (
            output.strip().splitlines()[-1]
            == f"detector: error: the supervisor (pid {shell.pid}) that started this worker is gone"
        )
    if when == "while-running":
        assert read_health(tmp_path / "store", "cam")["state"] == "stopped"  # SIGTERM: a clean stop


# --- (b) a file that opens but has no decodable frame ---


def no_frames_clip(tmp_path: Path) -> tuple[Path, Path]:
    """(a good 1 s clip, the same with its media data overwritten: the index is fine, no frame decodes)."""
    good = make_h264_clip(asset("sample_videos/clips/vtest.avi"), tmp_path / "good.mp4", width=192, height=144, seconds=1.0)
    data = bytearray(good.read_bytes())
    start = data.index(b"mdat") + 4
    end = data.index(b"moov") - 4 if data.index(b"moov") > start else len(data)
    data[start:end] = os.urandom(end - start)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data)
    return good, broken


def test_a_file_without_decodable_frames_backs_off_says_so_once_and_recovers(tmp_path, caplog):
    good, broken = no_frames_clip(tmp_path)
    played = tmp_path / "camera.mp4"
    shutil.copy(broken, played)
    caplog.set_level(logging.DEBUG, logger="detector.capture.rtsp_source")
    config = load_config(write_config(tmp_path / "site.yaml", tmp_path / "store", {"cam": str(played)}))
    source = open_source(played, 2.0, live=True, name="cam", backoff=Backoff(0.2, 1.0))
    meter = HealthMeter("cam", path=health_path(config.storage_dir, "cam"), source=source)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    for frame in source.frames(timeout_s=0.2):  # heartbeats only (None), as the frame loop sees them
        assert frame is None
        if time.monotonic() - started > 4:
            break
    used = resource.getrusage(resource.RUSAGE_SELF)
    cores = (used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime) / (time.monotonic() - started)
    # before: reopened and redecoded at once, forever: ~0.75 cores and nothing logged
    assert cores < 0.2, f"{cores:.2f} cores while there is nothing to decode"
    assert source.stats.state == "no_frames" and source.stats.last_error == NO_FRAMES and source.stats.decoded == 0
    lost = [r for r in caplog.records if getattr(r, "kv", {}).get("event") == "stream_lost"]
    assert len(lost) == 1 and NO_FRAMES in lost[0].getMessage()  # once per outage, retries at debug
    assert sum("still down" in r.getMessage() for r in caplog.records) >= 2  # it did retry
    health = meter.report()
    assert (health["stream"], health["last_error"], health["frames_in"]) == ("no_frames", NO_FRAMES, 0)
    [line] = [line for line in status_lines(config) if line.startswith("cam ")]
    assert "no_frames" in line and NO_FRAMES in line

    shutil.copy(good, played)  # the file is fixed: frames again, and it says so
    deadline = time.monotonic() + 10
    for frame in source.frames(timeout_s=0.5):
        if frame is not None or time.monotonic() > deadline:
            break
    source.close()
    assert frame is not None and source.stats.state == "connected"
    assert any(getattr(r, "kv", {}).get("event") == "stream_restored" for r in caplog.records)


# --- (c) errors a restart cannot fix: fail fast, and say so to systemd ---


def broken_model(tmp_path: Path) -> Path:
    model = tmp_path / "truncated.onnx"
    model.write_bytes(asset("models/yolov8n_320.onnx").read_bytes()[:5000])
    return model


def test_a_broken_model_stops_the_supervisor_with_exit_4(tmp_path):
    clip = str(asset("sample_videos/clips/vtest.avi"))
    config = write_config(
        tmp_path / "site.yaml", tmp_path / "store", {"cam-a": clip, "cam-b": clip}, model=broken_model(tmp_path)
    )
    log = tmp_path / "run.log"
    # before: each worker exited 4, was restarted with backoff for ever; SIGTERM then gave exit 0
    code = start_run(config, log).wait(60)
    output = log.read_text()
    assert code == 4 and "Traceback" not in output, output
    assert output.count("event=worker_failed") == 1 and "event=worker_restarted" not in output
    last = output.strip().splitlines()[-1]
    assert last.startswith("detector: error: camera cam-") and "cannot start" in last and "not a loadable ONNX model" in last
    assert workers_of(tmp_path / "store") == []
    status = subprocess.run([sys.executable, "-m", "detector", "status", str(config)], cwd=ROOT, capture_output=True, text=True)
    failed = [line for line in status.stdout.splitlines()[1:] if " failed " in line and "not a loadable ONNX model" in line]
    assert len(failed) >= 1  # the one that failed first; the other failed too, or was stopped


def test_a_config_edited_without_a_reload_does_not_reach_a_restarted_worker(tmp_path):
    """The file edited on disk (no SIGHUP) so that cam-a is gone from it: the killed cam-a worker
    comes back on the config the supervisor accepted, and nothing stops."""
    clip = str(asset("sample_videos/clips/vtest.avi"))
    store = tmp_path / "store"
    config = write_config(tmp_path / "site.yaml", store, {"cam-a": clip, "cam-b": clip})
    log = tmp_path / "run.log"
    proc = start_run(config, log)
    try:
        healths = lambda: [read_health(store, c) for c in ("cam-a", "cam-b")]  # noqa: E731
        wait_for(lambda: all(h and h["state"] == "running" for h in healths()), 40, "both workers running")
        killed = healths()[0]["pid"]
        write_config(config, store, {"cam-b": clip})  # cam-a removed, no SIGHUP
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: (h := read_health(store, "cam-a")) and h["pid"] != killed and h["state"] == "running", 40, "cam-a back")
        assert proc.poll() is None and sorted(workers_of(store)) == sorted(h["pid"] for h in healths())
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    output = log.read_text()
    assert code == 0 and "Traceback" not in output and "event=worker_failed" not in output, output
    assert workers_of(store) == []


# --- SIGHUP storm ---


def test_a_storm_of_sighups_leaves_the_right_workers_and_no_zombies(tmp_path):
    clip = str(asset("sample_videos/clips/vtest.avi"))
    store = tmp_path / "store"
    config = write_config(tmp_path / "site.yaml", store, {"steady": clip, "edited": clip})
    proc = start_run(config, tmp_path / "run.log")
    try:
        wait_for(
            lambda: all((h := read_health(store, c)) and h["state"] == "running" for c in ("steady", "edited")), 40, "workers"
        )
        steady = read_health(store, "steady")["pid"]
        for i in range(20):  # 20 in 2 s; the config alternates, a camera comes and goes
            cameras = {"steady": clip, "edited": clip} | ({"extra": clip} if i % 4 == 1 else {})
            write_config(config, store, cameras, edited={"read_timeout_s": 2 + i % 3})
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.1)
        write_config(config, store, {"steady": clip, "edited": clip}, edited={"read_timeout_s": 9})
        last_hup = time.time()
        proc.send_signal(signal.SIGHUP)

        def workers() -> frozenset[int] | None:
            """The worker pids once there is one running worker per camera, each the supervisor's child."""
            kids = children(proc.pid)
            healths = [read_health(store, c) for c in ("steady", "edited")]
            pids = {h["pid"] for h in healths if h and h["state"] == "running"}
            return frozenset(pids) if {pid for pid, _ in kids} == pids and len(pids) == 2 else None

        kids = wait_stable(workers, 2.0, 40, "one running worker per camera of the last config, for 2 s")
        assert all(state != "Z" for _, state in children(proc.pid))  # every retired worker reaped
        assert read_health(store, "edited")["started_at"] > last_hup  # the last config's worker
        assert proc.poll() is None and read_health(store, "steady")["pid"] == steady  # never restarted: unchanged
        assert set(workers_of(store)) == kids  # no orphan of a retired worker
        extra = read_health(store, "extra")
        assert extra is None or extra["state"] == "stopped" or gone(extra["pid"])
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    output = (tmp_path / "run.log").read_text()
    assert code == 0 and "Traceback" not in output, output
    assert "event=reloaded" in output and "event=reload_failed" not in output
    assert workers_of(store) == []


# --- liveness without the disk ---


def test_a_health_file_that_cannot_be_written_is_not_a_hang(tmp_path):
    """The health folder turns read-only under a running worker: the file goes stale, but the
    supervisor's liveness signal is the heartbeat pipe, so the worker is not killed."""
    from test_disk_full import SmallDisk

    clip = str(asset("sample_videos/clips/vtest.avi"))
    store = tmp_path / "store"
    config = write_config(tmp_path / "site.yaml", store, {"cam": clip})
    settings = yaml.safe_load(config.read_text())
    settings["supervisor"]["heartbeat_timeout_s"] = 3
    config.write_text(yaml.safe_dump(settings))
    disk = SmallDisk(store / "health", 1024)
    log = tmp_path / "run.log"
    proc = start_run(config, log)
    try:
        pid = wait_for(lambda: (h := read_health(store, "cam")) and h["state"] == "running" and h["pid"], 60, "the worker")
        disk.read_only(True)
        time.sleep(3 * 2 + 1)  # twice the heartbeat timeout
        stale = read_health(store, "cam")["heartbeat_at"]
        assert time.time() - stale > 3 and workers_of(store) == [pid] and proc.poll() is None
    finally:
        disk.read_only(False)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        disk.unmount()
    output = log.read_text()
    assert code == 0 and "event=worker_hung" not in output and "Traceback" not in output, output
