"""`detector capacity`: real short runs on the demo config (vtest.avi, a GOP-1 s clip encoded here
from vtest frames, a live RTSP camera) whose tables must add up, the lever discovery by table, and
the refusals (one line, non-zero exit)."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, asset
from rtsp_server import RtspServer, gst_available, make_h264_clip

from detector.budget import usable_cores
from detector.capacity.plan import (
    AS_CONFIGURED,
    FRAME_SHAPED,
    INT8,
    KEYFRAMES,
    CameraFigures,
    Figure,
    ModelOption,
    cameras_per_box,
    levers,
    model_options,
)
from detector.capture.keyframes import DecodeChoice
from detector.config.schema import ModelConfig
from detector.errors import ModelError

DEMO = "configs/demo.yaml"
VTEST = "sample_videos/clips/vtest.avi"
BOTH = f"{INT8} + {FRAME_SHAPED}"
pytestmark = pytest.mark.timeout(180)


def detector(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=170
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> str:
    """The demo config with the fixed-size model (the default is its dynamic-shape export), so
    that the model levers (INT8, input shaped to the frame) are found beside it."""
    config = yaml.safe_load((ROOT / DEMO).read_text())
    config["model"]["path"] = "models/yolov8n.onnx"
    path = tmp_path_factory.mktemp("config") / "demo.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def measured(demo: str, *args: str) -> dict:
    result = detector("capacity", demo, "--seconds", "4", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_adds_up(report: dict) -> None:
    """Every row: CPU = decode + detect of its camera, cameras = floor(target x cores / CPU)."""
    (camera,) = report["cameras"]
    cores = report["box"]["cores"]
    assert cores == usable_cores()
    for row in report["levers"]:
        lever = row["lever"].removesuffix(KEYFRAMES).removesuffix(" + ") or AS_CONFIGURED
        decode = "keyframes" if row["decode"] == KEYFRAMES else "full"
        expected = camera["decode"][decode]["median"] + camera["detect"][lever]["median"]
        assert row["cpu_per_camera"]["median"] == pytest.approx(expected, abs=2e-4)
        assert row["cpu_per_camera"]["low"] <= row["cpu_per_camera"]["median"] <= row["cpu_per_camera"]["high"]
        assert row["cameras_per_box"] == math.floor(report["target_load"] * cores / row["cpu_per_camera"]["median"])
        assert 50 < row["memory_mb"] < 2000


def test_demo_config_on_vtest_adds_up_and_says_what_it_skipped(demo):
    report = measured(demo)
    assert set(report) == {"box", "fps", "model_threads", "target_load", "repeats", "cameras", "levers", "skipped", "memory"}
    assert (report["fps"], report["model_threads"], report["target_load"], report["repeats"]) == (2, 1, 0.75, 3)
    assert report["box"]["cpu"] and report["box"]["load_before"] >= 0
    (camera,) = report["cameras"]
    assert (camera["id"], camera["clip"], camera["size"], camera["nominal_fps"], camera["stream_s"]) == (
        "vtest",
        VTEST,
        [768, 576],
        10,
        4,
    )
    assert 0.02 < camera["detect"][AS_CONFIGURED]["median"] < 1.5  # yolov8n 640 at 2 fps: 30 to 750 ms a frame
    assert camera["detect"][AS_CONFIGURED]["input_hw"] == [640, 640]
    assert camera["detect"][FRAME_SHAPED]["input_hw"] == [480, 640]  # models/yolov8n_dynamic.onnx, shaped to 768x576
    # vtest.avi's keyframes are ~0.6 s apart or more: too far for 2 detections a second
    assert camera["auto_decode"]["mode"] == "full"
    # the INT8 levers where models/ holds them (made by `detector quantize`, not fetched)
    int8 = {
        lever: (ROOT / "models" / name).is_file()
        for lever, name in ((INT8, "yolov8n_int8.onnx"), (BOTH, "yolov8n_dynamic_int8.onnx"))
    }
    assert [row["lever"] for row in report["levers"]] == [
        lever for lever in (AS_CONFIGURED, INT8, FRAME_SHAPED, BOTH) if int8.get(lever, True)
    ]
    skipped = {s["lever"]: s["why"] for s in report["skipped"]}
    if not int8[INT8]:
        assert skipped[INT8].startswith("no models/yolov8n_int8.onnx (make it with `detector quantize models/yolov8n.onnx")
    assert skipped[KEYFRAMES] == f"camera vtest: {camera['auto_decode']['reason']}"
    assert_adds_up(report)


@pytest.fixture(scope="module")
def gop_1s_clip(tmp_path_factory) -> Path:
    """vtest frames as H.264, 25 fps, a keyframe every second."""
    return make_h264_clip(asset(VTEST), tmp_path_factory.mktemp("clip") / "vtest-gop1s.mp4", fps=25, gop=25, seconds=5)


def test_keyframe_decoding_of_a_gop_1s_clip_is_cheaper_and_adds_rows(demo, gop_1s_clip):
    result = detector("capacity", demo, "--clip", str(gop_1s_clip), "--seconds", "4", "--fps", "1", "--target-load", "0.5")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"camera vtest: {gop_1s_clip}, 768x576 at 25 fps, 4 s of stream x 3" in text
    decode = {m: float(v) for m, v in re.findall(r"decode (every frame|keyframes only) +([\d.]+) \(", text)}
    assert decode["keyframes only"] < 0.75 * decode["every frame"]
    assert "decode: auto at 1 fps: keyframes (a keyframe at least every 1 s" in text
    rows = re.findall(
        r"^  (\S.*?) {2,}(\S+\.onnx) +(every frame|keyframes only) +([\d.]+) \([\d.]+-[\d.]+\) +(\d+) +\d+ MB$", text, re.M
    )
    assert [(name, decoding) for name, _, decoding, _, _ in rows] == [
        (AS_CONFIGURED, "every frame"),
        (KEYFRAMES, "keyframes only"),
        (FRAME_SHAPED, "every frame"),
        (f"{FRAME_SHAPED} + {KEYFRAMES}", "keyframes only"),
    ]
    for _, _, _, cpu, cameras in rows:  # printed to 3 decimals: the floor of either end of its rounding
        assert (
            math.floor(0.5 * usable_cores() / (float(cpu) + 5e-4)) <= int(cameras) <= 0.5 * usable_cores() / (float(cpu) - 5e-4)
        )
    cpu = {(name, decoding): float(value) for name, _, decoding, value, _ in rows}
    assert cpu[(KEYFRAMES, "keyframes only")] < cpu[(AS_CONFIGURED, "every frame")]


@pytest.mark.skipif(not os.environ.get("CI") and not gst_available(), reason="gst-rtsp-server is not installed")
def test_a_live_camera_is_recorded_then_measured(tmp_path, gop_1s_clip):
    server = RtspServer(gop_1s_clip).start()
    try:
        config = yaml.safe_load((ROOT / DEMO).read_text())
        config["cameras"][0]["source"] = server.url
        (tmp_path / "live.yaml").write_text(yaml.safe_dump(config))
        result = detector("capacity", str(tmp_path / "live.yaml"), "--seconds", "3", "--json")
    finally:
        server.kill()
    assert result.returncode == 0, result.stderr
    (camera,) = json.loads(result.stdout)["cameras"]
    assert (camera["clip"], camera["size"]) == (f"{server.url} (recorded)", [768, 576])
    assert 2.5 < camera["stream_s"] <= 3
    assert 0 < camera["decode"]["keyframes"]["median"] < camera["decode"]["full"]["median"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--camera", "nope"], 2, "no camera 'nope' in the config (cameras: vtest)"),
        (["--clip", "no/such.mp4"], 3, "video file not found: no/such.mp4"),
        (["--clip", "configs/demo.yaml"], 3, "configs/demo.yaml: cannot open video"),
        (["--int8", "configs/demo.yaml"], 4, "configs/demo.yaml: not a loadable ONNX model"),
        (["--dynamic", "models/yolov8n_320.onnx"], 4, "its input has a fixed size: not a dynamic-shape model"),
        (["--seconds", "0"], 2, "'0' is not a number of seconds from 0 to 600"),
        (["--target-load", "1.5"], 2, "'1.5' is not a share of the cores from 0 to 1"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(demo, args, code, message):
    result = detector("capacity", demo, "--seconds", "1", *args)
    assert result.returncode == code
    error = result.stderr.strip().splitlines()[-1]
    assert message in error and "Traceback" not in result.stderr


def test_a_broken_configured_model_is_refused(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    config = yaml.safe_load((ROOT / DEMO).read_text())
    config["model"]["path"] = str(tmp_path / "broken.onnx")
    config["cameras"][0]["source"] = str(ROOT / VTEST)
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(config))
    result = detector("capacity", str(tmp_path / "broken.yaml"), "--seconds", "1")
    assert result.returncode == 4
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"detector: error: {tmp_path}/broken.onnx: not a loadable ONNX model")


@pytest.mark.parametrize(
    "cpu, cores, target, cameras",
    [
        (0.25, 2, 0.75, 6),  # exactly 6: no float rounding down to 5
        (0.086, 2, 0.75, 17),
        (0.5, 2, 1.0, 4),
        (2.0, 2, 0.75, 0),  # one camera would need more than the box
        (0.1, 16, 0.75, 120),
    ],
)
def test_cameras_per_box(cpu, cores, target, cameras):
    assert cameras_per_box(cpu, cores, target) == cameras


def camera(name: str, auto: str, full: float, keyframes: float, detect: dict[str, float]) -> CameraFigures:
    return CameraFigures(
        name,
        f"{name}.mp4",
        (1280, 720),
        25.0,
        20.0,
        {"full": Figure(full, full, full), "keyframes": Figure(keyframes, keyframes, keyframes)},
        DecodeChoice(auto, 1.0, f"{name}'s reason"),
        {lever: Figure(value, value - 0.01, value + 0.02) for lever, value in detect.items()},
        dict.fromkeys(detect),
    )


MODEL = ModelConfig(path=Path("m.onnx"))
INT8_MODEL = ModelConfig(path=Path("m_int8.onnx"))


@pytest.mark.parametrize(
    "cameras, rows, skipped",
    [
        (  # one camera whose GOP allows keyframes: every model with both decodings
            [camera("a", "keyframes", 0.06, 0.02, {AS_CONFIGURED: 0.2, INT8: 0.1})],
            [
                (AS_CONFIGURED, "every frame", 0.26, 5),
                (KEYFRAMES, "keyframes only", 0.22, 6),
                (INT8, "every frame", 0.16, 9),
                (f"{INT8} + {KEYFRAMES}", "keyframes only", 0.12, 12),
            ],
            [],
        ),
        (  # none allows keyframes: no keyframe rows, and each camera's reason
            [
                camera("a", "full", 0.06, 0.02, {AS_CONFIGURED: 0.2, INT8: 0.1}),
                camera("b", "full", 0.04, 0.01, {AS_CONFIGURED: 0.3, INT8: 0.2}),
            ],
            [(AS_CONFIGURED, "every frame", 0.30, 5), (INT8, "every frame", 0.20, 7)],
            [(KEYFRAMES, "camera a: a's reason; camera b: b's reason")],
        ),
        (  # one of two: keyframes where auto would choose them, full decoding for the other
            [
                camera("a", "keyframes", 0.06, 0.02, {AS_CONFIGURED: 0.2, INT8: 0.1}),
                camera("b", "full", 0.04, 0.01, {AS_CONFIGURED: 0.3, INT8: 0.2}),
            ],
            [
                (AS_CONFIGURED, "every frame", 0.30, 5),
                (KEYFRAMES, "keyframes only on 1 of 2 cameras", 0.28, 5),
                (INT8, "every frame", 0.20, 7),
                (f"{INT8} + {KEYFRAMES}", "keyframes only on 1 of 2 cameras", 0.18, 8),
            ],
            [],
        ),
    ],
)
def test_levers_sum_decode_and_detect_per_camera(cameras, rows, skipped):
    options = [ModelOption(AS_CONFIGURED, MODEL), ModelOption(INT8, INT8_MODEL)]
    found, found_skipped = levers(options, cameras, {AS_CONFIGURED: 220.0, INT8: 180.0}, cores=2, target_load=0.75)
    assert [(r.name, r.decode, round(r.cpu.median, 4), r.cameras) for r in found] == rows
    assert [(s.lever, s.why) for s in found_skipped] == skipped
    assert all(
        r.cpu.low == pytest.approx(r.cpu.median - 0.01) and r.cpu.high == pytest.approx(r.cpu.median + 0.02) for r in found
    )
    assert [r.memory_mb for r in found] == [220.0 if r.model == MODEL.path else 180.0 for r in found]


def models_in(folder: Path, *names: str) -> Path:
    for name, source in (n.split("=") for n in names):
        shutil.copy(asset(f"models/{source}"), folder / name)
    return folder


@pytest.mark.parametrize(
    "files, configured, levers_found, skipped",
    [
        (["m.onnx=yolov8n_320.onnx"], "m.onnx", [AS_CONFIGURED], [INT8, FRAME_SHAPED]),
        (
            ["m.onnx=yolov8n_320.onnx", "m_dynamic.onnx=yolov8n_dynamic.onnx"],
            "m.onnx",
            [AS_CONFIGURED, FRAME_SHAPED],
            [INT8, BOTH],
        ),
        (
            ["m.onnx=yolov8n_320.onnx", "m_int8.onnx=yolov8n_320.onnx", "m_dynamic.onnx=yolov8n_dynamic.onnx"]
            + ["m_dynamic_int8.onnx=yolov8n_dynamic.onnx"],
            "m.onnx",
            [AS_CONFIGURED, INT8, FRAME_SHAPED, BOTH],
            [],
        ),
        (["d.onnx=yolov8n_dynamic.onnx"], "d.onnx", [AS_CONFIGURED], [INT8, FRAME_SHAPED]),  # it has it already
        (["m_int8.onnx=yolov8n_320.onnx"], "m_int8.onnx", [AS_CONFIGURED], [INT8, FRAME_SHAPED]),  # INT8 already
    ],
)
def test_model_levers_are_those_whose_files_exist(tmp_path, files, configured, levers_found, skipped):
    folder = models_in(tmp_path, *files)
    options, found_skipped = model_options(ModelConfig(path=folder / configured), int8=None, dynamic=None)
    assert [o.lever for o in options] == levers_found
    assert [s.lever for s in found_skipped] == skipped
    assert all(o.model.fit_frame for o in options if o.lever.endswith(FRAME_SHAPED))


def test_a_dynamic_model_configured_square_gets_the_frame_shaped_lever(tmp_path):
    folder = models_in(tmp_path, "d.onnx=yolov8n_dynamic.onnx")
    options, _ = model_options(ModelConfig(path=folder / "d.onnx", fit_frame=False), int8=None, dynamic=None)
    assert [(o.lever, o.model.path.name, o.model.fit_frame) for o in options] == [
        (AS_CONFIGURED, "d.onnx", False),
        (FRAME_SHAPED, "d.onnx", True),
    ]


def test_a_given_model_must_open(tmp_path):
    folder = models_in(tmp_path, "m.onnx=yolov8n_320.onnx")
    with pytest.raises(ModelError, match="model file not found"):
        model_options(ModelConfig(path=folder / "m.onnx"), int8=folder / "missing.onnx", dynamic=None)
