"""The real `detector replay` (model and clip) publishing to a real mosquitto (issue 3)."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from mqtt_broker import PASSWORD, Collector, broker_fixture, needs_mosquitto, password_broker_fixture  # noqa: F401

from detector.mqtt.outbox import Outbox, outbox_path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "alert.schema.json").read_text())
pytestmark = [needs_mosquitto, pytest.mark.timeout(300)]


def demo_config(tmp_path: Path, mqtt: dict) -> Path:
    for relative in ("models/yolov8n.onnx", "sample_videos/clips/vtest.avi"):
        if not (ROOT / relative).is_file():
            pytest.fail(f"{relative} is missing: run scripts/setup.sh (it fetches models and clips)")
    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    data["mqtt"] = mqtt
    data["storage_dir"] = str(tmp_path / "store")
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def replay(config: Path, out: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "detector", "replay", str(config), "--camera", "vtest", "--out", str(out), "--no-progress"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_replay_alert_reaches_the_broker_across_an_outage(tmp_path, broker):
    """The broker goes down before the alert and comes back after it: it arrives, flagged delayed."""
    config = demo_config(tmp_path, broker.mqtt_section(snapshots=True))
    collector = Collector(broker)
    proc = replay(config, tmp_path / "out")
    assert collector.wait(lambda c: c.on("/status"), timeout=60)
    broker.stop()
    for line in proc.stdout:
        if "START" in line:  # the alert is in the outbox (and events.jsonl) now
            break
    broker.start()
    rest, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "1 alerts, 1 events" in rest
    assert collector.wait(lambda c: c.on("/status")[-1:] and c.on("/status")[-1][1] == b"offline", timeout=30)

    (alert,) = collector.alerts()
    jsonschema.validate(alert, SCHEMA)
    (written,) = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert alert == {**written, "delayed": True}  # the same payload as events.jsonl, flagged delayed
    assert (alert["event"], alert["type"], alert["camera"], alert["zone"]) == (
        "start",
        "illegal_parking",
        "vtest",
        "van-no-parking",
    )
    assert 25 <= alert["stream_time_s"] <= 40
    (snapshot,) = collector.on(f"/snapshot/{alert['id']}")
    assert snapshot[1][:2] == b"\xff\xd8" and hashlib.sha256(snapshot[1]).hexdigest() == alert["snapshot"]["sha256"]
    assert Outbox(outbox_path(tmp_path / "store", "vtest")).count() == 0
    health = [json.loads(m[1]) for m in collector.on("/health")]  # a replay reports health too (no health file)
    assert health and {(h["camera"], h["pid"], h["state"]) for h in health} == {("vtest", proc.pid, "running")}
    last = health[-1]
    assert last["frames_out"] > 0 and last["inference_ms"] > 0 and last["fps"] == last["fps_out"] > 0
    assert last["stream"] in ("connected", "ended") and last["size"] == "768x576" and last["frames_in"] >= last["frames_out"]
    assert not (tmp_path / "store" / "health").exists()
    collector.close()

    late = Collector(broker)
    assert late.wait(lambda c: len(c.on("/state")) == 2, timeout=5)
    states = {m[0].split("/")[-2]: json.loads(m[1]) for m in late.on("/state")}
    assert all(m[2] for m in late.on("/state"))  # retained
    assert states["van-no-parking"]["states"] == {"illegal_parking": {"state": "active", "alert_id": alert["id"]}}
    assert {s["state"] for s in states["crossing"]["states"].values()} == {"idle"}
    late.close()


def test_replay_with_refused_credentials_exits_nonzero_and_keeps_the_alert(tmp_path, password_broker):
    config = demo_config(tmp_path, password_broker.mqtt_section(drain_timeout_s=3))
    proc = replay(config, tmp_path / "out", env={"TEST_MQTT_PASSWORD": "not-the-Pa55word"})
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 5
    assert "1 alerts, 1 events" in out  # the replay itself ran and reported first
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith(
        f"detector: error: mqtt broker 127.0.0.1:{password_broker.port} refused the connection: not authorized; 1 alert waits"
    )
    assert "not-the-Pa55word" not in out + err
    listing = subprocess.run(
        [sys.executable, "-m", "detector", "outbox", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TEST_MQTT_PASSWORD": PASSWORD},
    )
    assert listing.returncode == 0
    lines = listing.stdout.strip().splitlines()
    assert len(lines) == 2 and "START  illegal_parking" in lines[0] and lines[1].startswith("1 waiting in")
