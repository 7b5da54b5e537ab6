"""The real model on the real vtest.avi clip through `replay`: the parked van raises one
illegal_parking alert about dwell_s into the clip; the zone where people walk stays quiet."""

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from conftest import ROOT, asset

from detector.alerts import Alert
from detector.config import load_config
from detector.replay import replay

START_AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday morning
REQUIRED = {
    "schema",
    "id",
    "seq",
    "event",
    "type",
    "site",
    "camera",
    "zone",
    "first_seen_s",
    "stream_time_s",
    "first_seen_at",
    "at",
    "confidence",
    "objects",
    "snapshot",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    os.chdir(ROOT)
    asset("models/yolov8n.onnx"), asset("sample_videos/clips/vtest.avi")
    out = tmp_path_factory.mktemp("demo")
    config = load_config(ROOT / "configs/demo.yaml").model_copy(update={"storage_dir": out / "storage"})
    summary = replay(config, "vtest", out_dir=out, annotate=True, start_at=START_AT, quiet=True, progress=False)
    return config, summary, out


def test_one_parking_alert_for_the_van_about_dwell_into_the_clip(demo):
    config, summary, _ = demo
    dwell = config.violations.illegal_parking.dwell_s
    assert [(a.event, a.type, a.zone) for a in summary.alerts] == [("start", "illegal_parking", "van-no-parking")]
    start = summary.alerts[0]
    assert dwell <= start.stream_time_s <= dwell + config.track.settle_s + 2
    assert start.first_seen_s <= 1.0
    assert {o.label for o in start.objects} <= {"car", "truck"}
    x1, y1, x2, y2 = start.objects[0].box
    assert 0.82 <= (x1 + x2) / 2 <= 0.97 and y2 <= 0.2  # the van, top right


def test_payload_matches_the_contract(demo):
    _, summary, out = demo
    lines = (out / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [a.to_json() for a in summary.alerts]
    assert [Alert.from_bytes(line.encode()) for line in lines] == summary.alerts  # the value survives the round trip
    alert = summary.alerts[0].to_json()
    assert REQUIRED <= alert.keys()
    assert alert["schema"] == "detector.alert/1" and alert["seq"] == 1 and alert["site"] == "demo-campus"
    assert uuid.UUID(alert["id"]).version == 7
    assert alert["at"] == f"2026-11-23T09:00:{alert['stream_time_s']:06.3f}Z"
    assert 0.35 <= alert["confidence"] <= 1 and alert["delayed"] is False
    assert len(alert["model"]["sha256"]) == 64 and len(alert["config_sha256"]) == 64


def test_evidence_snapshot_is_written_with_its_hash(demo):
    _, summary, out = demo
    snapshot = summary.alerts[0].snapshot
    data = (out / snapshot.path).read_bytes()
    assert data[:2] == b"\xff\xd8" and hashlib.sha256(data).hexdigest() == snapshot.sha256


def test_annotated_video_has_one_frame_per_sampled_frame(demo):
    _, summary, _ = demo
    with av.open(str(summary.video_path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (768, 576)
    assert frames == summary.frames == 159


def test_yolox_layout_finds_the_same_van(tmp_path):
    os.chdir(ROOT)
    config = load_config(ROOT / "configs/demo.yaml")
    yolox = config.model.model_copy(update={"path": asset("models/yolox_nano.onnx")})
    config = config.model_copy(update={"model": yolox, "storage_dir": tmp_path / "storage"})
    summary = replay(config, "vtest", out_dir=tmp_path, quiet=True, progress=False)
    assert [(a.event, a.zone) for a in summary.alerts] == [("start", "van-no-parking")]
    assert 30 <= summary.alerts[0].stream_time_s <= 35


def test_alert_ids_are_unique_across_runs(demo, tmp_path):
    os.chdir(ROOT)
    config, first, _ = demo
    again = replay(config, "vtest", out_dir=tmp_path, source=Path("sample_videos/clips/vtest.avi"), quiet=True, progress=False)
    assert again.alerts[0].id != first.alerts[0].id
    assert again.alerts[0].stream_time_s == first.alerts[0].stream_time_s  # deterministic otherwise


def test_without_a_broker_replay_leaves_nothing_in_the_outbox(demo):
    """Tuning replays must not queue alerts for the day a broker is configured."""
    config, _, _ = demo
    assert config.mqtt is None and not (config.storage_dir / "outbox").exists()
