"""The health meter (one dict from every stage) and the one definition of a worker that is down
(`detector status` and the supervisor's hang check)."""

import json
import os
import subprocess
import sys

import pytest

from detector.capture import SourceStats
from detector.health import Delivery, HealthMeter, worker_down

NOW = 1_800_000_000.0
TIMEOUT_S = 30.0


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


ALIVE, DEAD = os.getpid(), _dead_pid()


@pytest.mark.parametrize(
    ("health", "down"),
    [
        (None, "no report"),
        ({"pid": ALIVE, "state": "running", "heartbeat_at": NOW - 1}, None),
        ({"pid": ALIVE, "state": "starting", "heartbeat_at": NOW - TIMEOUT_S}, None),  # at the limit: still up
        ({"pid": ALIVE, "state": "running", "heartbeat_at": NOW - TIMEOUT_S - 12}, "silent 42 s"),  # hung
        ({"pid": ALIVE, "state": "stopped", "heartbeat_at": NOW - 2}, None),  # stopping: its exit comes next
        ({"pid": ALIVE, "state": "stopped", "heartbeat_at": NOW - 60}, "silent 60 s"),  # stuck after stopping
        ({"pid": DEAD, "state": "stopped", "heartbeat_at": NOW - 600}, "stopped"),
        ({"pid": DEAD, "state": "running", "heartbeat_at": NOW - 1}, "dead"),  # killed: no heartbeat missed yet
        ({"pid": DEAD, "state": "running", "heartbeat_at": NOW - 600}, "dead"),
    ],
    ids=["no-report", "fresh", "at-limit", "stale", "stopping", "stuck-stopping", "stopped", "killed-fresh", "killed-stale"],
)
def test_worker_down(health, down):
    assert worker_down(health, NOW, TIMEOUT_S) == down


class _Source:
    def __init__(self, stats: SourceStats) -> None:
        self.stats = stats


def test_meter_reports_every_stage_under_one_set_of_names(tmp_path):
    meter = HealthMeter("cam-01", path=tmp_path / "health" / "cam-01.json")
    meter.delivery = lambda: Delivery(outbox_depth=3, outbox_dropped=1, mqtt_reconnects=2, delivered=17)
    bare = meter.snapshot()  # before the source is open: its fields are null
    assert bare["stream"] is bare["fps_in"] is bare["stream_reconnects"] is bare["last_error"] is None
    meter.source = _Source(
        SourceStats(state="reconnecting", size=(640, 360), decoded=50, dropped=4, decode_errors=2, reconnects=5, last_error="x")
    )
    for ts, inference_ms, wait_ms in ((0.5, 40.0, 10.0), (1.0, 50.0, 0.0), (1.5, 60.0, 5.0)):
        meter.frame(ts, inference_ms, wait_ms, open_alerts=2)
    written = meter.report()
    assert written == json.loads((tmp_path / "health" / "cam-01.json").read_text())
    assert set(written) == set(bare)
    picked = {k: written[k] for k in ("state", "frames_out", "stream_time_s", "inference_ms", "inference_wait_ms", "open_alerts")}
    assert picked == {
        "state": "running",
        "frames_out": 3,
        "stream_time_s": 1.5,
        "inference_ms": 50.0,
        "inference_wait_ms": 5.0,
        "open_alerts": 2,
    }
    picked = {k: written[k] for k in ("stream", "size", "frames_in", "stream_reconnects", "decode_errors", "dropped_frames")}
    assert picked == {
        "stream": "reconnecting",
        "size": "640x360",
        "frames_in": 50,
        "stream_reconnects": 5,
        "decode_errors": 2,
        "dropped_frames": 4,
    }
    assert (written["outbox_depth"], written["outbox_dropped"], written["mqtt_reconnects"], written["delivered"]) == (3, 1, 2, 17)
    assert written["pid"] == os.getpid() and written["fps_out"] > 0 and written["frame_age_s"] is None
    assert meter.report("stopped")["state"] == "stopped"
