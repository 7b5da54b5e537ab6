"""No secret reaches any output: camera passwords (in the source URL) and the MQTT password, as
written by people (raw `@`, `/`, `:`, spaces, %-escapes, any script) or percent-encoded, are
grepped for in everything the real commands print, log, write and publish: `check` and config
errors, `replay` (refusals, and a full run with its report, events and MQTT messages), `run` logs
(text and kv), the health file, `detector status` (text and --json), MQTT health and status,
`listen`, and the zone editor's /api/config."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from conftest import ROOT, asset
from mqtt_broker import Collector, Mosquitto, free_port, needs_mosquitto
from rtsp_server import RtspServer
from test_rtsp_source import needs_gst, vtest_clip

from detector.errors import redact_url
from detector.logs import KvFormatter, RedactingFormatter

SECRETS = ("p@ss/w rd", "a:b@c", "%40x", "hunter2", "pässwörd✓", "密码")
CAMERA_PASSWORD = "".join(SECRETS)  # every nasty part in one password
MQTT_USER, MQTT_PASSWORD = "detector", "mq-p@ss/w rd:a:b@c%40x-hunter2-ключ"
# the secrets as written, percent-encoded, and as JSON escapes them
NEEDLES = sorted(
    {form for s in (*SECRETS, CAMERA_PASSWORD, MQTT_PASSWORD) for form in (s, quote(s, safe=""), json.dumps(s)[1:-1])}
)
VAN_ZONE = [[0.82, 0.06], [0.97, 0.06], [0.97, 0.20], [0.82, 0.20]]


def assert_clean(text: str, where: str) -> None:
    for needle in NEEDLES:
        assert needle not in text, f"{needle!r} in {where}:\n{text[:3000]}"


def detector(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "detector", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert_clean(result.stdout + result.stderr, f"`detector {' '.join(args[:1])}` output")
    return result


def camera_url(port: int, encoded: bool = False) -> str:
    password = quote(CAMERA_PASSWORD, safe="") if encoded else CAMERA_PASSWORD
    return f"rtsp://admin:{password}@127.0.0.1:{port}/cam"


def write_config(path: Path, cameras: list[dict], mqtt: dict | None = None) -> Path:
    config = {
        "site": "secret-test",
        "model": {"path": str(asset("models/yolov8n_320.onnx")), "threads": 1},
        "detect": {"fps": 2},
        "violations": {"illegal_parking": {"dwell_s": 3, "grace_s": 5, "clear_s": 5, "cooldown_s": 60}},
        "storage_dir": str(path.parent / "storage"),
        "supervisor": {"heartbeat_timeout_s": 10, "restart_min_s": 0.5, "restart_max_s": 1, "stop_timeout_s": 10},
        "cameras": cameras,
    }
    if mqtt is not None:
        config["mqtt"] = mqtt
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def camera(camera_id: str, source: str) -> dict:
    zones = [{"id": "kerb", "polygon": VAN_ZONE, "violations": ["illegal_parking"]}]
    return {"id": camera_id, "source": source, "open_timeout_s": 1, "read_timeout_s": 1, "reconnect_max_s": 0.5, "zones": zones}


@pytest.fixture(name="broker")
def secret_broker(tmp_path):
    """mosquitto with passwords: the tests' collector (USER) and the detector, whose password is nasty."""
    broker = Mosquitto(tmp_path / "broker", "password")
    subprocess.run(["mosquitto_passwd", "-b", str(broker.folder / "passwd"), MQTT_USER, MQTT_PASSWORD], check=True)
    yield broker.start()
    broker.stop()


def mqtt_section(broker: Mosquitto) -> dict:
    return {
        "host": broker.host,
        "port": broker.port,
        "topic_prefix": "city",
        "username": MQTT_USER,
        "password": "${SECRET_MQTT_PASSWORD}",
        "keepalive_s": 5,
        "health_interval_s": 1,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 0.5,
    }


MQTT_ENV = {"SECRET_MQTT_PASSWORD": MQTT_PASSWORD}


def messages_text(collector: Collector) -> str:
    """Every message as received, and JSON payloads decoded (JSON escapes non-ASCII)."""
    parts = []
    for topic, payload, _ in collector.messages:
        text = payload.decode("utf-8", "replace")
        parts += [topic, text]
        try:
            parts.append(json.dumps(json.loads(text), ensure_ascii=False))
        except ValueError:
            pass
    return "\n".join(parts)


# --- redact_url itself -------------------------------------------------------------------------

SHAPES = {
    "url": ("{url}", "rtsp://***@cam-7.example:554/Streaming/101"),
    "log line": ("worker: {url}: cannot open stream: 401; retrying", "rtsp://***@cam-7.example:554/Streaming/101: cannot"),
    "repr": ("cameras.a.source: {url!r}: bad", "rtsp://***@cam-7.example:554/Streaming/101"),
    "pathlib": ("video file not found: {path}", "rtsp:/***@cam-7.example:554/Streaming/101"),
    "ffmpeg": ("[Errno 5] Input/output error: '{url}'", "'rtsp://***@cam-7.example:554/Streaming/101'"),
    "two urls": ("{url} and http://u:{password}@10.0.0.2/x", "rtsp://***@10.0.0.2/x"),  # more hidden, never less
    "multi-line": ("Traceback:\n  x = open({url!r})\nOSError: {url}", "OSError: rtsp://***@cam-7.example:554/Streaming/101"),
}


@pytest.mark.parametrize("password", [*SECRETS, CAMERA_PASSWORD, quote(CAMERA_PASSWORD, safe="")])
@pytest.mark.parametrize("shape, expected", SHAPES.values(), ids=SHAPES.keys())
def test_redact_url_hides_every_password_and_keeps_the_host(password, shape, expected):
    url = f"rtsp://admin:{password}@cam-7.example:554/Streaming/101"
    text = shape.format(url=url, path=Path(url), password=password)
    redacted = redact_url(text)
    assert_clean(redacted, "redact_url")
    assert expected in redacted
    assert redact_url(redacted) == redacted


@pytest.mark.parametrize(
    "text",
    ["rtsp://cam-7:554/live", "sample_videos/clips/vtest.avi", "C:/clips/a.mp4", "mail ops@example.com", "http://[::1]:8080/x"],
)
def test_redact_url_leaves_text_without_credentials_alone(text):
    assert redact_url(text) == text


@pytest.mark.parametrize("formatter", [RedactingFormatter(), KvFormatter("cam")], ids=["text", "kv"])
def test_log_formatters_redact_messages_and_tracebacks(formatter):
    url = camera_url(554)
    try:
        raise OSError(5, "Input/output error", url)
    except OSError:
        record = logging_record(f"{url}: cannot open stream", exc_info=sys.exc_info())
    line = formatter.format(record)
    assert_clean(line, "log line")
    assert "rtsp://***@127.0.0.1:554/cam: cannot open stream" in line
    assert "Input/output error: 'rtsp://***@127.0.0.1:554/cam'" in line.replace("\\'", "'")


def logging_record(message: str, exc_info) -> logging.LogRecord:
    return logging.LogRecord("detector.capture", logging.WARNING, __file__, 1, message, (), exc_info)


def test_the_published_config_digest_does_not_depend_on_passwords(tmp_path):
    """Alerts carry config_sha256: with a password inside, guesses could be tested against it offline."""
    from detector.config import config_digest, load_config

    def digest(password: str, host: str = "127.0.0.1") -> str:
        url = f"rtsp://admin:{password}@{host}:554/cam"
        mqtt = {"host": "broker", "username": MQTT_USER, "password": password}
        return config_digest(load_config(write_config(tmp_path / "site.yaml", [camera("cam", url)], mqtt)))

    assert digest(CAMERA_PASSWORD) == digest("hunter2") == digest(MQTT_PASSWORD)
    assert digest("hunter2") != digest("hunter2", host="10.0.0.9")  # the rest of the config still counts


# --- check, config errors, replay refusals -----------------------------------------------------


def test_check_shows_live_sources_without_credentials(tmp_path):
    cameras = [camera("raw", camera_url(554)), camera("encoded", camera_url(554, encoded=True))]
    mqtt = {"host": "127.0.0.1", "username": MQTT_USER, "password": "${SECRET_MQTT_PASSWORD}"}
    result = detector("check", str(write_config(tmp_path / "site.yaml", cameras, mqtt)), env=MQTT_ENV)
    assert result.returncode == 0, result.stderr
    assert "camera raw: rtsp://***@127.0.0.1:554/cam (live sources" in result.stdout
    assert "camera encoded: rtsp://***@127.0.0.1:554/cam (live sources" in result.stdout
    assert "warning: an @ comes after a / ? or #" in result.stdout  # the raw `/`: FFmpeg would cut the host there


def test_config_errors_name_the_key_but_not_the_password(tmp_path):
    url = camera_url(554)
    cameras = [url, {"id": "b", "source": {"url": url}}, {"id": "c", "source": url, "sourse": url}]
    mqtt = {"host": f"mqtt://{MQTT_USER}:{MQTT_PASSWORD}@broker", "password": MQTT_PASSWORD, "keepalive_s": 100000}
    result = detector("check", str(write_config(tmp_path / "site.yaml", cameras, mqtt)))
    assert result.returncode == 2
    for line in [
        "cameras[0]: 'rtsp://***@127.0.0.1:554/cam': Input should be a valid dictionary",
        "cameras.b.source: Input should be a valid string",
        "cameras.c.sourse: unknown key",
        "mqtt.host: 'mqtt://***@broker': a host name only",
        "mqtt.keepalive_s: 100000: Input should be less than or equal to 65535",
    ]:
        assert line in result.stderr, result.stderr
    no_user = write_config(tmp_path / "no-user.yaml", [camera("a", url)], {"host": "h", "password": MQTT_PASSWORD})
    alone = detector("check", str(no_user))
    assert "mqtt: password given without username" in alone.stderr


def test_a_mistyped_url_is_still_redacted_as_a_missing_file(tmp_path):
    single_slash = camera_url(554).replace("rtsp://", "rtsp:/")  # as Path() writes a URL
    result = detector("check", str(write_config(tmp_path / "site.yaml", [camera("a", single_slash)])))
    assert result.returncode == 2
    assert "cameras.a.source: rtsp:/***@127.0.0.1:554/cam: file not found" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["replay", "CONFIG", "--camera", "live", "--out", "OUT"],
        ["replay", "CONFIG", "--camera", "live", "--source", "URL"],
        ["explain", "CONFIG", "--camera", "live", "--zone", "kerb", "--to", "5", "--source", "URL"],
        ["tune", "CONFIG", "--camera", "live", "--gt", "GT", "--set", "dwell_s=5", "--source", "URL"],
        ["zones", "CONFIG", "--camera", "live", "--no-browser", "--source", "URL"],
    ],
    ids=["replay-a-live-camera", "replay-source", "explain-source", "tune-source", "zones-source"],
)
def test_a_live_url_where_a_recording_is_needed_is_refused_without_credentials(tmp_path, command):
    config = write_config(tmp_path / "site.yaml", [camera("live", camera_url(554))])
    values = {"CONFIG": str(config), "OUT": str(tmp_path / "out"), "URL": camera_url(554), "GT": str(tmp_path / "gt.yaml")}
    result = detector(*[values.get(arg, arg) for arg in command])
    assert result.returncode in (2, 3)
    assert "rtsp://***@127.0.0.1:554/cam is a live stream" in result.stderr, result.stderr


def test_zone_editor_on_an_unreachable_camera_fails_without_credentials(tmp_path):
    config = write_config(tmp_path / "site.yaml", [camera("live", camera_url(free_port()))])
    result = detector("zones", str(config), "--camera", "live", "--no-browser", "--port", "0")
    assert result.returncode == 3
    assert "detector: error: rtsp://***@127.0.0.1:" in result.stderr


# --- replay, run, status, listen, MQTT ---------------------------------------------------------


@needs_mosquitto
def test_replay_report_events_and_mqtt_messages_hold_no_secret(tmp_path, broker):
    config = write_config(tmp_path / "site.yaml", [camera("cam", camera_url(554))], mqtt_section(broker))
    collector = Collector(broker)
    out = tmp_path / "out"
    clip = vtest_clip(seconds=12)
    args = ["replay", str(config), "--camera", "cam", "--source", str(clip), "--out", str(out), "--report"]
    result = detector(*args, env=MQTT_ENV)
    assert result.returncode == 0, result.stderr
    events = (out / "events.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["event"] for line in events.splitlines()][:1] == ["start"]
    assert collector.wait(lambda c: c.alerts() and c.on("/status")), "the alert did not reach the broker"
    collector.close()
    report = (out / "report.html").read_text(encoding="utf-8")
    assert clip.name in report
    decoded_events = "\n".join(json.dumps(json.loads(line), ensure_ascii=False) for line in events.splitlines())
    for text, where in [(events, "events.jsonl"), (decoded_events, "events"), (report, "report.html")]:
        assert_clean(text, where)
    assert_clean(messages_text(collector), "MQTT messages")


@needs_mosquitto
@pytest.mark.parametrize("log_format", ["text", "kv"])
def test_run_logs_health_status_and_mqtt_hold_no_secret(tmp_path, broker, log_format):
    config = write_config(tmp_path / "site.yaml", [camera("cam", camera_url(free_port()))], mqtt_section(broker))
    collector = Collector(broker)
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log_file:
        run = subprocess.Popen(
            [sys.executable, "-m", "detector", "-v", "--log-format", log_format, "run", str(config)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **MQTT_ENV},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    health_file = tmp_path / "storage" / "health" / "cam.json"
    try:
        reported = collector.wait(
            lambda c: any(json.loads(m[1]).get("last_error") for m in c.on("/cam/health")) and health_file.is_file(), 60
        )
        assert reported, log_path.read_text()
        status = detector("status", str(config), env=MQTT_ENV)
        status_json = detector("status", str(config), "--json", env=MQTT_ENV)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(30)
        collector.close()
    log = log_path.read_text(encoding="utf-8")
    assert "Traceback" not in log
    assert "cam: cannot open stream" in log  # the outage was logged (by camera id)
    health = health_file.read_text(encoding="utf-8")
    last_error = json.loads(status_json.stdout)["cam"]["last_error"]
    assert last_error and last_error in status.stdout
    assert [m[1] for m in collector.on("/cam/status")][:1] == [b"online"]
    for text, where in [
        (log, f"run log ({log_format})"),
        (health, "health file"),
        (json.dumps(json.loads(health), ensure_ascii=False), "health"),
        (messages_text(collector), "MQTT messages"),
    ]:
        assert_clean(text, where)


@needs_mosquitto
def test_listen_with_the_password_from_the_environment_or_wrong(tmp_path, broker):
    common = ["listen", "--host", broker.host, "--port", str(broker.port), "--username", MQTT_USER, "--password-env", "P"]
    right = detector(*common, "--timeout", "1", env={"P": MQTT_PASSWORD})
    assert right.returncode == 0 and f"listening on {broker.host}:{broker.port}" in right.stderr
    wrong = detector(*common, "--timeout", "1", env={"P": MQTT_PASSWORD[::-1]})
    assert wrong.returncode == 5
    assert f"mqtt broker {broker.host}:{broker.port} refused the connection" in wrong.stderr
    config = write_config(tmp_path / "site.yaml", [camera("cam", camera_url(554))], mqtt_section(broker))
    from_config = detector("listen", "--config", str(config), "--timeout", "1", env=MQTT_ENV)
    assert from_config.returncode == 0, from_config.stderr


# --- the zone editor on a live camera ---------------------------------------------------------


@needs_gst
def test_zone_editor_api_config_shows_the_live_source_without_credentials(tmp_path):
    from detector.operator.zone_editor import ZoneEditor, make_server

    server = RtspServer(vtest_clip(seconds=12)).start()  # no auth: FFmpeg sends none, the URL still has them
    try:
        config = write_config(tmp_path / "site.yaml", [camera("live", camera_url(server.port, encoded=True))])
        editor = ZoneEditor(config, "live")
        http = make_server(editor, 0)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{http.server_address[1]}/api/config", timeout=10).read().decode()
        finally:
            http.shutdown()
            http.server_close()
        bad_zone = {"id": "x", "polygon": [[0, 0], [0.5, 0], [0, 0.5]], "violations": ["no_such_type"]}
        status, refused = editor.save([bad_zone], json.loads(body)["version"])
    finally:
        server.stop()
    assert json.loads(body)["source"] == f"rtsp://***@127.0.0.1:{server.port}/cam"
    assert status == 422 and refused["errors"]
    assert_clean(body, "/api/config")
    assert_clean(json.dumps(refused, ensure_ascii=False), "the refused save")
