"""MQTT settings that a broker would accept and then fail on (or silently drop) are config
errors naming the key; connection failures are one line that says what is wrong."""

import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT
from mqtt_broker import broker_fixture, needs_mosquitto, tls_broker_fixture  # noqa: F401

from detector.config import load_config
from detector.errors import ConfigError
from detector.mqtt.connection import Endpoint, describe_error

LONGEST_PREFIX = 65535 - len("/s/c/zone/z/state") - 3 * 63  # site, camera and zone ids of 64 characters


def load_with(tmp_path, mqtt: dict | None = None, camera_id: str = "cam", zone_id: str = "kerb", site: str = "site"):
    config = {
        "site": site,
        "model": {"path": "models/yolov8n.onnx"},
        "mqtt": {"host": "localhost", **(mqtt or {})},
        "cameras": [
            {
                "id": camera_id,
                "source": "clip.mp4",
                "zones": [{"id": zone_id, "polygon": [[0, 0], [1, 0], [1, 1]], "violations": ["illegal_parking"]}],
            }
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return load_config(path)


BAD = {
    "$SYS": ({"topic_prefix": "$SYS"}, "mqtt.topic_prefix: '$SYS': the topic prefix must not start with $ (brokers keep"),
    "wildcard +": ({"topic_prefix": "city/+"}, "mqtt.topic_prefix: 'city/+': the topic prefix must not contain the wildcards"),
    "wildcard #": ({"topic_prefix": "#"}, "mqtt.topic_prefix: '#': the topic prefix must not contain the wildcards"),
    "NUL": ({"topic_prefix": "ci\x00ty"}, "the topic prefix must not contain control characters"),
    "control": ({"topic_prefix": "ci\x01ty"}, "the topic prefix must not contain control characters"),
    "non-character": ({"topic_prefix": "city\ufffe"}, "must not contain control characters or Unicode non-characters"),
    "empty": ({"topic_prefix": ""}, "mqtt.topic_prefix: '': the topic prefix must not be empty"),
    "empty level": ({"topic_prefix": "city//north"}, "the topic prefix must not have an empty level"),
    "leading /": ({"topic_prefix": "/city"}, "the topic prefix must not have an empty level"),
    "trailing /": ({"topic_prefix": "city/"}, "the topic prefix must not have an empty level"),
    "70,000 characters": ({"topic_prefix": "a" * 70_000}, "the topic prefix is 70000 bytes in UTF-8; an MQTT topic has at most"),
    "one byte too long": ({"topic_prefix": "a" * (LONGEST_PREFIX + 1)}, f"which leaves {LONGEST_PREFIX} for the prefix"),
    "too long in UTF-8": ({"topic_prefix": "é" * (LONGEST_PREFIX // 2 + 1)}, f"is {LONGEST_PREFIX + 1} bytes in UTF-8"),
    "keepalive": ({"keepalive_s": 100_000}, "mqtt.keepalive_s: 100000: Input should be less than or equal to 65535"),
    "empty host": ({"host": ""}, "mqtt.host: '': give the broker's host name or IP address"),
    "blank host": ({"host": "  "}, "mqtt.host: '  ': give the broker's host name or IP address"),
    "URL as host": ({"host": "mqtt://broker:1883"}, "mqtt.host: 'mqtt://broker:1883': a host name only"),
}


@pytest.mark.parametrize("mqtt, message", BAD.values(), ids=BAD.keys())
def test_mqtt_settings_a_broker_would_fail_on_are_config_errors(tmp_path, mqtt, message):
    with pytest.raises(ConfigError) as error:
        load_with(tmp_path, mqtt)
    assert message in str(error.value)
    assert all(len(line) < 300 for line in str(error.value).splitlines())  # a 70,000-character value is cut


@pytest.mark.parametrize(
    "where, message",
    [
        ({"site": "$SYS"}, "site: '$SYS': String should match pattern"),
        ({"camera_id": "cam+1"}, "cameras.cam+1.id: 'cam+1': String should match pattern"),
        ({"zone_id": "kerb/north"}, "cameras.cam.zones.kerb/north.id: 'kerb/north': String should match pattern"),
        ({"camera_id": "c" * 65}, "String should have at most 64 characters"),
    ],
    ids=["site", "camera", "zone", "long id"],
)
def test_ids_that_form_topic_levels_are_checked_too(tmp_path, where, message):
    with pytest.raises(ConfigError) as error:
        load_with(tmp_path, **where)
    assert message in str(error.value)


def test_the_longest_prefix_and_unicode_prefixes_are_accepted(tmp_path):
    assert load_with(tmp_path, {"topic_prefix": "a" * LONGEST_PREFIX}).mqtt.topic_prefix == "a" * LONGEST_PREFIX
    assert load_with(tmp_path, {"topic_prefix": "städte/$nord/zürich"}).mqtt.topic_prefix == "städte/$nord/zürich"


def detector(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "detector", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in result.stderr
    return result


@needs_mosquitto
def test_tls_to_a_plain_port_says_so(broker):
    result = detector("listen", "--host", broker.host, "--port", str(broker.port), "--tls", "--tls-insecure", "--timeout", "3")
    assert result.returncode == 5
    assert result.stderr == (
        f"detector: error: mqtt broker {broker.host}:{broker.port}: TLS handshake failed: the broker did not answer TLS "
        "(a plain MQTT port? TLS is usually 8883)\n"
    )


@needs_mosquitto
def test_plain_mqtt_to_a_tls_port_hints_at_tls(tls_broker):
    result = detector("listen", "--host", tls_broker.host, "--port", str(tls_broker.port), "--timeout", "3")
    assert result.returncode == 5
    assert result.stderr == (
        f"detector: error: mqtt broker {tls_broker.host}:{tls_broker.port} closed the connection before accepting it "
        "(a TLS port? then configure mqtt.tls)\n"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prefix", "$SYS"], "detector: error: --prefix: the topic prefix must not start with $"),
        (["--prefix", "city/#"], "detector: error: --prefix: the topic prefix must not contain the wildcards"),
        (["--port", "70000"], "detector: error: --port 70000: a port is 1..65535"),
    ],
)
def test_listen_checks_its_prefix_and_port(args, message):
    result = detector("listen", *args, "--timeout", "1")
    assert result.returncode == 2
    assert result.stderr.startswith(message)


def test_an_unexpected_client_error_keeps_its_words():
    endpoint = Endpoint("broker.example", 1883, username="u", password="hunter2")
    message = describe_error(endpoint, ValueError("Invalid host for rtsp://u:hunter2@x/y."))
    assert message == "mqtt broker broker.example:1883: ValueError: Invalid host for rtsp://***@x/y"
