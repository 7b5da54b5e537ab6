"""Publisher + outbox against a real mosquitto: topics and schema, retained state, last will,
broker outage, worker SIGKILL, refused credentials, TLS, `detector listen` (issue 3)."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from mqtt_broker import (  # noqa: F401 - the *_fixture imports register the fixtures
    PASSWORD,
    Collector,
    broker_fixture,
    make_certs,
    needs_mosquitto,
    password_broker_fixture,
    tls_broker_fixture,
)

from detector.mqtt.listen import Printer
from detector.mqtt.outbox import Outbox, outbox_path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "alert.schema.json").read_text())
BASE = "city/s1/cam-01"
pytestmark = [needs_mosquitto, pytest.mark.timeout(180)]


def write_config(tmp_path: Path, mqtt: dict | None, **extra) -> Path:
    data = {
        "site": "s1",
        "model": {"path": "models/yolov8n.onnx"},
        "storage_dir": str(tmp_path / "store"),
        "cameras": [{"id": "cam-01", "source": "x.mp4"}],
        **extra,
    }
    if mqtt is not None:
        data["mqtt"] = mqtt
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def emitter(config: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "mqtt_emitter.py"), str(config), "--camera", "cam-01", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def queued(stdout: str) -> list[tuple[str, int]]:
    return [(line.split()[1], int(line.split()[2])) for line in stdout.splitlines() if line.startswith("QUEUED")]


def keys(alerts: list[dict]) -> list[tuple[str, int]]:
    return [(a["id"], a["seq"]) for a in alerts]


def first_arrivals(alerts: list[dict]) -> list[tuple[str, int]]:
    seen, order = set(), []
    for key in keys(alerts):
        if key not in seen:
            seen.add(key)
            order.append(key)
    return order


def assert_duplicates_identical(alerts: list[dict]) -> int:
    """A duplicate is the same event again: same (id, seq), same content but `delayed`."""
    by_key: dict = {}
    duplicates = 0
    for a in alerts:
        body = {k: v for k, v in a.items() if k != "delayed"}
        key = (a["id"], a["seq"])
        if key in by_key:
            duplicates += 1
            assert by_key[key] == body
        by_key[key] = body
    return duplicates


def outbox_depth(tmp_path: Path) -> int:
    return Outbox(outbox_path(tmp_path / "store", "cam-01")).count()


def test_topics_schema_status_zone_state_and_health(tmp_path, broker):
    collector = Collector(broker)
    proc = emitter(write_config(tmp_path, broker.mqtt_section()), "--count", "12", "--interval", "0.02", "--hold", "1.5")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    produced = queued(out)
    assert len(produced) == 12
    assert collector.wait(lambda c: c.on("/status")[-1:] and c.on("/status")[-1][1] == b"offline")
    alerts = collector.alerts()
    assert keys(alerts) == produced  # all, once each, in order
    for alert in alerts:
        jsonschema.validate(alert, SCHEMA)
        assert alert["delayed"] is False and alert["site"] == "s1" and alert["camera"] == "cam-01"
    assert {m[0] for m in collector.on("/alert")} == {f"{BASE}/alert"}
    assert not any(m[2] for m in collector.messages)  # live delivery: nothing flagged retained
    assert [m[1] for m in collector.on("/status")] == [b"online", b"offline"]
    health = [json.loads(m[1]) for m in collector.on("/health")]
    assert health and health[0]["schema"] == "detector.health/1" and (health[0]["site"], health[0]["camera"]) == ("s1", "cam-01")
    assert health[0]["inference_ms"] == 12.5 and health[0]["inference_wait_ms"] == 0.0 and health[0]["state"] == "running"
    assert health[0]["fps_out"] > 0 and health[0]["fps"] == health[0]["fps_out"]  # the deprecated alias
    assert health[0]["stream"] is None and health[0]["reconnects"] is None  # no source in the emitter
    assert health[-1]["mqtt_reconnects"] == 0 and health[-1]["delivered"] == 12 and health[-1]["outbox_depth"] == 0
    # the health file: the same meter, the same fields (the MQTT envelope and aliases aside)
    written = json.loads((tmp_path / "store" / "health" / "cam-01.json").read_text())
    assert set(health[-1]) - {"schema", "site", "at", "fps", "reconnects"} == set(written)
    assert (written["state"], written["frames_out"], written["open_alerts"], written["delivered"]) == ("stopped", 12, 0, 12)
    assert (written["outbox_depth"], written["stream_time_s"], written["fps_in"]) == (0, 5.5, None)
    printed = io.StringIO()
    Printer("city", as_json=False, health=True, out=printed).message(*collector.on("/health")[-1])  # `listen --health`
    assert "HEALTH s1/cam-01: running, " in printed.getvalue() and "inference 12.5 ms (+0.0 waiting)" in printed.getvalue()
    assert "mqtt reconnects 0" in printed.getvalue() and "stream" not in printed.getvalue()
    states = [json.loads(m[1]) for m in collector.on(f"{BASE}/zone/kerb/state")]
    assert [s["states"]["illegal_parking"]["state"] for s in states][:2] == ["active", "idle"]
    assert states[0]["states"]["illegal_parking"]["alert_id"] == produced[0][0]
    collector.close()

    late = Collector(broker)  # a centre connecting later gets the retained state and status
    assert late.wait(lambda c: c.on("/state") and c.on("/status"), timeout=5)
    ((topic, body, retained),) = late.on("/state")
    assert retained and topic == f"{BASE}/zone/kerb/state"
    assert json.loads(body)["states"]["illegal_parking"] == {"state": "idle", "alert_id": None}
    assert late.on("/status") == [(f"{BASE}/status", b"offline", True)]
    assert late.alerts() == []  # alerts are not retained
    late.close()


def test_sigkill_of_the_publisher_sends_the_last_will(tmp_path, broker):
    collector = Collector(broker)
    proc = emitter(write_config(tmp_path, broker.mqtt_section()), "--count", "3", "--hold", "60")
    assert collector.wait(lambda c: len(c.alerts()) == 3)
    assert [m[1] for m in collector.on("/status")] == [b"online"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    assert collector.wait(lambda c: [m[1] for m in c.on("/status")] == [b"online", b"offline"], timeout=15)
    print(f"\nlast will: offline {time.monotonic() - killed:.2f} s after SIGKILL")
    late = Collector(broker)
    assert late.wait(lambda c: c.on("/status"), timeout=5)
    assert late.on("/status") == [(f"{BASE}/status", b"offline", True)]
    collector.close()
    late.close()


def test_broker_outage_mid_stream_loses_nothing_and_keeps_order(tmp_path, broker):
    collector = Collector(broker)
    proc = emitter(write_config(tmp_path, broker.mqtt_section()), "--count", "120", "--interval", "0.03", "--hold", "0.5")
    assert collector.wait(lambda c: len(c.alerts()) >= 25)
    broker.stop()  # while the emitter keeps producing
    down = time.monotonic()
    time.sleep(1.5)
    broker.start()
    up = time.monotonic()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    produced = queued(out)
    assert collector.wait(lambda c: set(keys(c.alerts())) >= set(produced), timeout=30)
    alerts = collector.alerts()
    duplicates = assert_duplicates_identical(alerts)
    assert first_arrivals(alerts) == produced  # every event, first arrivals in production order
    delayed = [a for a in alerts if a["delayed"]]
    assert delayed and all(a["delayed"] is False for a in alerts[:20])
    for alert in alerts:
        jsonschema.validate(alert, SCHEMA)
    assert outbox_depth(tmp_path) == 0
    health_reconnects = max(json.loads(m[1])["mqtt_reconnects"] for m in collector.on("/health"))
    assert health_reconnects >= 1
    print(
        f"\nbroker outage {up - down:.1f} s: produced {len(produced)}, received {len(alerts)} "
        f"({len(set(keys(alerts)))} distinct, {duplicates} duplicates, {len(delayed)} flagged delayed)"
    )
    collector.close()


@pytest.mark.parametrize("broker_up", [False, True], ids=["broker-down", "broker-up"])
def test_worker_sigkilled_mid_run_delivers_its_backlog_after_restart(tmp_path, broker, broker_up):
    config = write_config(tmp_path, broker.mqtt_section())
    collector = Collector(broker)
    if not broker_up:
        broker.stop()  # the worker runs and dies while the broker is down
    proc = emitter(config, "--count", "2000", "--interval", "0.001")
    produced: list[tuple[str, int]] = []
    while len(produced) < 150:
        line = proc.stdout.readline()
        if line.startswith("QUEUED"):
            produced.append((line.split()[1], int(line.split()[2])))
    proc.send_signal(signal.SIGKILL)  # mid-run: alerts in flight or waiting, no goodbye
    rest, _ = proc.communicate()
    produced += queued(rest)
    waiting = outbox_depth(tmp_path)
    time.sleep(0.5)  # what the broker had already accepted reaches the collector
    before = len(collector.alerts())
    if not broker_up:
        assert len(produced) <= waiting <= len(produced) + 1  # the one being written when killed may be in
        broker.start()
    restarted = emitter(config, "--count", "0")  # a fresh worker: no new alerts, drains the backlog
    out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    assert collector.wait(lambda c: set(keys(c.alerts())) >= set(produced), timeout=30)
    alerts = collector.alerts()
    assert first_arrivals(alerts)[: len(produced)] == produced  # all, first arrivals in order
    assert len(set(keys(alerts))) <= len(produced) + 1
    duplicates = assert_duplicates_identical(alerts)
    assert all(a["delayed"] is True for a in alerts[before:])  # what the restarted worker sent
    assert outbox_depth(tmp_path) == 0
    print(
        f"\nSIGKILL, broker {'up' if broker_up else 'down'}: {len(produced)} produced, {before} received before the kill, "
        f"{waiting} left in the outbox, {len(alerts)} received in all ({duplicates} duplicates)"
    )
    collector.close()


def test_refused_credentials_one_clear_line_and_nothing_lost(tmp_path, password_broker):
    config = write_config(tmp_path, password_broker.mqtt_section(drain_timeout_s=3))
    proc = emitter(config, "--count", "5", "--interval", "0.01", env={"TEST_MQTT_PASSWORD": "wrong-Pa55"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 5
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"mqtt broker 127.0.0.1:{password_broker.port} refused the connection: not authorized" in lines[0]
    assert "5 alerts wait in the outbox" in lines[0]
    assert "wrong-Pa55" not in out + err and PASSWORD not in out + err
    assert outbox_depth(tmp_path) == 5

    collector = Collector(password_broker)
    drain = subprocess.run(
        [sys.executable, "-m", "detector", "outbox", str(config), "--drain"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TEST_MQTT_PASSWORD": PASSWORD},
    )
    assert drain.returncode == 0, drain.stderr
    assert "cam-01: sent 5 of 5" in drain.stdout
    assert collector.wait(lambda c: len(c.alerts()) == 5)
    assert keys(collector.alerts()) == queued(out)
    assert all(a["delayed"] for a in collector.alerts())
    assert collector.on("/status") == []  # a drain does not speak for the camera
    collector.close()


def test_tls_with_a_test_ca_and_client_certificate(tmp_path, tls_broker):
    collector = Collector(tls_broker)
    proc = emitter(write_config(tmp_path, tls_broker.mqtt_section()), "--count", "4", "--hold", "0.3")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert collector.wait(lambda c: len(c.alerts()) == 4)
    assert keys(collector.alerts()) == queued(out)
    collector.close()

    other_ca = make_certs(tmp_path / "other")["ca"]  # a server this CA did not sign: refused, kept
    section = tls_broker.mqtt_section(drain_timeout_s=2)
    section["tls"]["ca"] = str(other_ca)
    bad = write_config(tmp_path / "bad", section) if (tmp_path / "bad").mkdir() is None else None
    proc = emitter(bad, "--count", "2")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 5
    assert len(err.strip().splitlines()) == 1 and "TLS certificate verification failed" in err, err
    assert Outbox(outbox_path(tmp_path / "bad" / "store", "cam-01")).count() == 2


def test_listen_prints_alerts_and_state_readably_and_as_json(tmp_path, password_broker):
    config = write_config(tmp_path, password_broker.mqtt_section())
    common = [
        sys.executable,
        "-m",
        "detector",
        "listen",
        "--port",
        str(password_broker.port),
        "--host",
        "127.0.0.1",
        "--prefix",
        "city",
        "--username",
        "camera",
        "--password-env",
        "TEST_MQTT_PASSWORD",
        "--timeout",
        "30",
    ]
    env = {**os.environ, "TEST_MQTT_PASSWORD": PASSWORD}
    readable = subprocess.Popen(
        [*common, "--count", "5"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    raw = subprocess.Popen(
        [*common, "--count", "5", "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    time.sleep(1.5)  # both subscribed
    proc = emitter(config, "--count", "5", "--interval", "0.05", "--hold", "0.5")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    text, text_err = readable.communicate(timeout=30)
    assert readable.returncode == 0, text_err
    lines = text.splitlines()
    alert_lines = [line for line in lines if line.split()[1] in ("START", "UPDATE", "END")]
    assert all("illegal_parking" in line and "cam-01/kerb" in line for line in alert_lines)
    assert [line.split()[1] for line in alert_lines] == ["START", "UPDATE", "UPDATE", "UPDATE", "END"]
    assert any("STATUS s1/cam-01: online" in line for line in lines)
    assert any("ZONE   s1/cam-01/kerb: illegal_parking=active (id" in line for line in lines)
    assert PASSWORD not in text + text_err
    messages = [json.loads(line) for line in raw.communicate(timeout=30)[0].splitlines()]
    alerts = [m["payload"] for m in messages if m["topic"] == f"{BASE}/alert"]
    assert keys(alerts) == queued(out)
    for alert in alerts:
        jsonschema.validate(alert, SCHEMA)

    wrong = subprocess.run(
        [*common[:-2], "--timeout", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TEST_MQTT_PASSWORD": "nope"},
    )
    assert wrong.returncode == 5
    assert (
        wrong.stderr.strip()
        == f"detector: error: mqtt broker 127.0.0.1:{password_broker.port} refused the connection: not authorized"
    )
