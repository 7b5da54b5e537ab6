"""Bad input through the real command line: one clear message, a non-zero exit, no traceback,
and alerts already produced stay written."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, asset

DEMO = (ROOT / "configs/demo.yaml").read_text()
assert "storage_dir" not in DEMO


def detector(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def config_with(tmp_path: Path, old: str, new: str) -> Path:
    assert old in DEMO
    path = tmp_path / "config.yaml"
    path.write_text(DEMO.replace(old, new) + f"storage_dir: {tmp_path / 'storage'}\n")
    return path


def assert_clean_failure(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "detector: error:" in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken")
    (folder / "garbage.mp4").write_bytes(os.urandom(20000))
    (folder / "empty.avi").write_bytes(b"")
    model = asset("models/yolov8n.onnx").read_bytes()
    (folder / "truncated.onnx").write_bytes(model[: len(model) // 3])
    (folder / "text.onnx").write_text("this is not a model\n")
    shutil.copy(asset("sample_videos/stills/fruits.jpg"), folder / "photo.onnx")
    return folder


CASES = {
    "missing config": (lambda t, b: ["check", str(t / "nope.yaml")], ["config file not found"]),
    "unknown key": (
        lambda t, b: ["check", str(config_with(t, "site: demo-campus", "site: demo-campus\nsitee: x"))],
        ["sitee: unknown key"],
    ),
    "missing video": (
        lambda t, b: ["replay", str(config_with(t, "sample_videos/clips/vtest.avi", "nope.avi")), "--camera", "vtest"],
        ["cameras.vtest.source: nope.avi: file not found"],
    ),
    "corrupt video": (
        lambda t, b: ["replay", "configs/demo.yaml", "--camera", "vtest", "--source", str(b / "garbage.mp4"), "--out", str(t)],
        ["garbage.mp4: cannot open video"],
    ),
    "empty video": (
        lambda t, b: ["replay", "configs/demo.yaml", "--camera", "vtest", "--source", str(b / "empty.avi"), "--out", str(t)],
        ["empty.avi"],
    ),
    "truncated model": (
        lambda t, b: ["check", str(config_with(t, "models/yolov8n.onnx", str(b / "truncated.onnx")))],
        ["truncated.onnx: not a loadable ONNX model"],
    ),
    "text as model": (
        lambda t, b: ["check", str(config_with(t, "models/yolov8n.onnx", str(b / "text.onnx")))],
        ["text.onnx: not a loadable ONNX model"],
    ),
    "photo as model": (
        lambda t, b: ["check", str(config_with(t, "models/yolov8n.onnx", str(b / "photo.onnx")))],
        ["photo.onnx: not a loadable ONNX model"],
    ),
    "zone editor on an impossible port": (
        lambda t, b: ["zones", "configs/demo.yaml", "--camera", "vtest", "--port", "99999", "--no-browser"],
        ["--port 99999"],
    ),
    "explain an unknown zone": (
        lambda t, b: ["explain", "configs/demo.yaml", "--camera", "vtest", "--zone", "nope", "--to", "5"],
        ["camera vtest has no zone 'nope' (zones: van-no-parking, crossing)"],
    ),
    "tune without ground truth": (
        lambda t, b: ["tune", "configs/demo.yaml", "--camera", "vtest", "--gt", str(t / "none.gt.yaml"), "--set", "dwell_s=5"],
        ["ground truth file not found"],
    ),
    "listen to a broker that is not there": (
        lambda t, b: ["listen", "--port", "1", "--timeout", "5"],
        ["mqtt broker localhost:1 unreachable"],
    ),
    "run a missing config": (lambda t, b: ["run", str(t / "none.yaml")], ["config file not found"]),
    "unknown camera": (lambda t, b: ["replay", "configs/demo.yaml", "--camera", "cam-99"], ["no camera 'cam-99'"]),
    "missing events file": (
        lambda t, b: ["score", str(t / "none.jsonl"), "sample_videos/ground_truth/vtest.gt.yaml"],
        ["none.jsonl"],
    ),
}


@pytest.mark.parametrize("make_args, fragments", CASES.values(), ids=CASES.keys())
def test_clean_failure(tmp_path, broken_files, make_args, fragments):
    assert_clean_failure(detector(*make_args(tmp_path, broken_files)), *fragments)


def test_check_passes_on_the_demo():
    result = detector("check", "configs/demo.yaml")
    assert result.returncode == 0, result.stderr
    assert "config ok: site demo-campus, 1 cameras, 2 zones" in result.stdout
    assert "camera vtest: sample_videos/clips/vtest.avi 768x576 @ 10.0 fps, 79.5 s" in result.stdout


def test_secrets_in_a_source_url_are_redacted(tmp_path):
    path = config_with(tmp_path, "sample_videos/clips/vtest.avi", "rtsp://admin:hunter2@192.0.2.1/stream1")
    result = detector("check", str(path))
    assert "hunter2" not in result.stdout + result.stderr
    assert "rtsp://***@192.0.2.1/stream1" in result.stdout


def test_video_truncated_mid_stream_keeps_the_alerts_already_made(tmp_path):
    clip = asset("sample_videos/clips/vtest.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip[: int(len(clip) * 0.6)])  # ~48 s of 79.5: past the 30 s alert
    config = config_with(tmp_path, "site: demo-campus", "site: demo-campus")
    result = detector("replay", str(config), "--camera", "vtest", "--source", str(cut), "--out", str(tmp_path / "out"))
    assert "Traceback" not in result.stderr
    events = [json.loads(line) for line in (tmp_path / "out/events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["zone"]) for e in events] == [("start", "van-no-parking")]
