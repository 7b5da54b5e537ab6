"""The typed alert: payloads in and out, exactly as published, and what a bad one is told."""

import json

import jsonschema
import pytest
from conftest import ROOT, make_alert

from detector.alerts import Alert, AlertObject, Snapshot

SCHEMA = json.loads((ROOT / "docs/alert.schema.json").read_text())

ALERTS = {
    "start with snapshot": make_alert(snapshot=Snapshot("evidence/x.jpg", "a" * 64)),
    "update": make_alert(event="update", seq=2),
    "end with reason": make_alert(event="end", seq=3, reason="schedule", objects=()),
    "delayed": make_alert(delayed=True),
    "object without track id": make_alert(objects=(AlertObject("bag", 0.5, (0.0, 0.5, 0.1, 0.6)),)),
    "older payload without model, config and stream": make_alert(model=None, config_sha256=None, gap_s=None),
}


@pytest.mark.parametrize("alert", ALERTS.values(), ids=ALERTS.keys())
def test_round_trip_and_the_json_schema(alert):
    payload = alert.to_json()
    jsonschema.validate(payload, SCHEMA)
    assert Alert.from_json(payload) == alert
    assert Alert.from_bytes(alert.to_bytes()) == alert
    assert json.loads(alert.to_bytes()) == payload


def test_key_order_is_the_published_one():
    keys = list(make_alert(reason="cleared").to_json())
    assert keys == ["schema", "id", "seq", "event", "type", "site", "camera", "zone", "first_seen_s", "stream_time_s",
                    "first_seen_at", "at", "confidence", "objects", "snapshot", "model", "config_sha256", "stream",
                    "delayed", "reason"]  # fmt: skip


def test_unknown_fields_are_ignored():
    payload = {**make_alert().to_json(), "from_the_future": 1}
    assert Alert.from_json(payload) == make_alert()


GOOD = make_alert().to_json()
BAD = {
    "not an object": ([1], "expected a JSON object"),
    "other schema": ({**GOOD, "schema": "other/2"}, "schema must be 'detector.alert/1'"),
    "missing fields": ({k: v for k, v in GOOD.items() if k not in ("seq", "zone")}, "missing field(s) seq, zone"),
    "event": ({**GOOD, "event": "begin"}, "is not an event (start, update, end)"),
    "seq": ({**GOOD, "seq": "1"}, "seq must be an integer"),
    "time": ({**GOOD, "stream_time_s": True}, "stream_time_s must be a number"),
    "box": ({**GOOD, "objects": [{"label": "car", "score": 0.5, "box": [1, 2]}]}, "objects[0].box"),
    "delayed": ({**GOOD, "delayed": "no"}, "delayed must be true or false"),
}


@pytest.mark.parametrize("payload, message", BAD.values(), ids=BAD.keys())
def test_a_bad_payload_names_the_field(payload, message):
    with pytest.raises(ValueError) as info:
        Alert.from_json(payload)
    assert message in str(info.value)
