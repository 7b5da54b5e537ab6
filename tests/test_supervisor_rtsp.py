"""The real `detector run` (supervisor + one worker process per camera, model, RTSP, mosquitto)
through a day of faults: a broken camera next to a good one, a worker killed, a worker hung, the
camera server killed and restarted, the object leaving while the stream was down, a reload, a stop."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import start_run, wait_for
from mqtt_broker import Collector, broker_fixture, needs_mosquitto  # noqa: F401
from rtsp_server import PASSWORD, USER, RtspServer
from test_rtsp_source import needs_gst, vtest_clip

from detector.health import read_health

ROOT = Path(__file__).resolve().parent.parent
VAN_ZONE = [[0.82, 0.06], [0.97, 0.06], [0.97, 0.20], [0.82, 0.20]]
pytestmark = [needs_gst, needs_mosquitto, pytest.mark.timeout(240)]


def write_config(path: Path, store: Path, mqtt: dict | None, cameras: list[dict]) -> Path:
    model = ROOT / "models" / "yolov8n_320.onnx"
    if not model.is_file():
        pytest.fail("models/yolov8n_320.onnx is missing: run scripts/setup.sh")
    config = {
        "site": "edge-test",
        "model": {"path": str(model), "threads": 1},
        "detect": {"fps": 2, "min_score": 0.35},
        "violations": {"illegal_parking": {"dwell_s": 8, "grace_s": 10, "clear_s": 6, "cooldown_s": 300}},
        "storage_dir": str(store),
        "supervisor": {"heartbeat_timeout_s": 5, "restart_min_s": 0.5, "restart_max_s": 2, "stop_timeout_s": 20},
        "cameras": cameras,
    }
    if mqtt:
        config["mqtt"] = mqtt
    path.write_text(yaml.safe_dump(config))
    return path


def camera(camera_id: str, url: str) -> dict:
    zones = [{"id": "van-no-parking", "polygon": VAN_ZONE, "violations": ["illegal_parking"]}]
    return {"id": camera_id, "source": url, "read_timeout_s": 2, "reconnect_min_s": 0.2, "reconnect_max_s": 1, "zones": zones}


def health(collector: Collector, camera_id: str) -> list[dict]:
    return [json.loads(m[1]) for m in collector.on(f"/{camera_id}/health")]


def status(collector: Collector, camera_id: str) -> list[str]:
    return [m[1].decode() for m in collector.on(f"/{camera_id}/status")]


def test_run_survives_stream_and_worker_faults(tmp_path, broker, monkeypatch):
    monkeypatch.setenv("CAM_PASSWORD", PASSWORD)
    server = RtspServer(vtest_clip(), auth=True).start()
    good_url = f"rtsp://{USER}:${{CAM_PASSWORD}}@127.0.0.1:{server.port}/cam"
    bad_url = f"rtsp://{USER}:wrong-${{CAM_PASSWORD}}@127.0.0.1:{server.port}/cam"
    store = tmp_path / "store"
    config = write_config(
        tmp_path / "site.yaml", store, broker.mqtt_section(), [camera("vtest", good_url), camera("broken", bad_url)]
    )
    # the reference: the same clip and rules through `detector replay` (no broker)
    plain = write_config(tmp_path / "plain.yaml", tmp_path / "plain", None, [camera("vtest", str(vtest_clip()))])
    replayed = subprocess.run(
        [
            sys.executable,
            "-m",
            "detector",
            "replay",
            str(plain),
            "--camera",
            "vtest",
            "--out",
            str(tmp_path / "replay"),
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr
    [reference] = [json.loads(line) for line in (tmp_path / "replay" / "events.jsonl").read_text().splitlines()]

    collector = Collector(broker)
    log_path = tmp_path / "run.log"
    run = start_run(config, log_path)
    try:
        # 1. the live stream gives the replay's alert
        starts = wait_for(lambda: [a for a in collector.alerts() if a["event"] == "start"], 60, "the van's alert")
        [start] = starts
        assert (start["camera"], start["zone"], start["type"]) == ("vtest", "van-no-parking", "illegal_parking")
        assert abs(start["stream_time_s"] - reference["stream_time_s"]) <= 3.0, (start, reference)
        alert_id = start["id"]

        # 2. the broken camera: reported, retried, no effect on the other
        bad = wait_for(lambda: [h for h in health(collector, "broken") if h.get("last_error")], 10, "broken health")[-1]
        assert bad["stream"] != "connected" and bad["last_error"] == "authorization failed (wrong user or password)"
        assert status(collector, "broken")[-1] == "online"
        good = wait_for(lambda: [h for h in health(collector, "vtest") if h["fps_out"] and h["open_alerts"]], 10, "vtest health")[
            -1
        ]
        assert good["stream"] == "connected" and good["fps_in"] > 5 and 1.0 <= good["fps_out"] <= 3.0
        assert (good["fps"], good["reconnects"]) == (good["fps_out"], good["stream_reconnects"])  # deprecated aliases
        assert good["open_alerts"] == 1 and good["inference_ms"] > 0 and good["size"] == "768x576" and good["state"] == "running"
        # one meter: the message is the health file's dict plus the MQTT envelope and the aliases
        assert set(good) - {"schema", "site", "at", "fps", "reconnects"} == set(read_health(store, "vtest"))
        out = subprocess.run(
            [sys.executable, "-m", "detector", "status", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=30
        ).stdout
        lines = {line.split()[0]: line for line in out.splitlines()[1:]}
        assert "running" in lines["vtest"] and "connected" in lines["vtest"]
        assert "authorization failed" in lines["broken"] and " connected" not in lines["broken"]

        # 3. a worker killed, then one hung: restarted, the open alert restored (no second start)
        for fault in (signal.SIGKILL, signal.SIGSTOP):
            pid = read_health(store, "vtest")["pid"]
            os.kill(pid, fault)
            wait_for(
                lambda pid=pid: (h := read_health(store, "vtest")) and h["pid"] != pid and h["stream"] == "connected",
                30,
                f"vtest restarted after {fault.name}",
            )
        time.sleep(5)  # the van is seen again by the restored worker
        assert [a["event"] for a in collector.alerts()] == ["start"]

        # 4. the camera server dies for longer than clear_s: a gap, not an absence: no end
        server.kill()
        time.sleep(8)
        server.start()
        wait_for(
            lambda: (h := read_health(store, "vtest")) and h["stream_reconnects"] >= 1 and h["stream"] == "connected",
            20,
            "vtest reconnected",
        )
        time.sleep(7)
        assert [a["event"] for a in collector.alerts()] == ["start"]

        # 5. while the stream is down the van leaves: after the reconnect the alert ends, same id
        server.kill()
        server.start(vtest_clip(blank=(0.78, 0.0, 1.0, 0.3)))
        ends = wait_for(lambda: [a for a in collector.alerts() if a["event"] == "end"], 30, "the end of the alert")
        assert [(a["id"], a["seq"], a["event"]) for a in collector.alerts()] == [(alert_id, 1, "start"), (alert_id, 2, "end")]
        assert ends[0]["first_seen_at"] == start["first_seen_at"] and ends[0]["reason"] == "cleared"

        # 6. reload: the broken camera fixed; only its worker restarts
        vtest_pid, broken_pid = read_health(store, "vtest")["pid"], read_health(store, "broken")["pid"]
        write_config(config, store, broker.mqtt_section(), [camera("vtest", good_url), camera("broken", good_url)])
        run.send_signal(signal.SIGHUP)
        wait_for(
            lambda: (h := read_health(store, "broken")) and h["pid"] != broken_pid and h["stream"] == "connected",
            30,
            "the fixed camera",
        )
        assert read_health(store, "vtest")["pid"] == vtest_pid
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(40)
        server.kill()

    # 7. a clean stop: exit 0, offline published, health says stopped; no secret anywhere
    assert code == 0
    wait_for(
        lambda: status(collector, "vtest")[-1:] == ["offline"] and status(collector, "broken")[-1:] == ["offline"], 10, "offline"
    )
    assert read_health(store, "vtest")["state"] == "stopped"
    logs = log_path.read_text()
    events = [json.loads(line) for line in (store / "events" / "vtest.jsonl").read_text().splitlines()]
    assert [(e["id"], e["seq"], e["event"]) for e in events] == [(alert_id, 1, "start"), (alert_id, 2, "end")]
    for kv in (
        "event=stream_lost",
        'reason="authorization failed (wrong user or password)"',
        "event=worker_hung",
        "event=alert_restored",
        "event=reloaded",
        "signal SIGKILL",
    ):
        assert kv in logs, kv
    assert logs.count("camera=broken event=stream_lost") == 1  # once for the whole outage, not per retry
    texts = [logs, *(p.read_text() for p in (store / "health").glob("*.json"))]
    texts += [m[1].decode(errors="replace") for m in collector.messages]
    assert not any(PASSWORD in text for text in texts)
    collector.close()


def test_run_with_a_bad_config_says_why(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("site: x\nmodel: {path: models/yolov8n_320.onnx}\ninference: {max_concurrent: 0}\ncameras: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "detector", "run", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("detector: error:") and "max_concurrent" in result.stderr
