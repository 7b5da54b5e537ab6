"""`detector quantize` on the real models and vtest.avi: the head's decode nodes found in each
graph, its decoding cut off and done by the detector as the graph did it, box matching by table,
an INT8 model that passes the gate and replays like the float model, and the refusals (bad
arguments; a head quantised too, which finds nothing)."""

import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

import cv2
import numpy as np
import onnx
import pytest
from conftest import ROOT, asset

from detector.config import load_config
from detector.detect.onnx_backend import OnnxDetector
from detector.detect.quantize import (
    GateRefused,
    cut_before_decode,
    head_decode_nodes,
    match_boxes,
    quantize,
    read_frames,
    spread_frames,
)
from detector.detections import Detections
from detector.replay import replay

MODEL = "models/yolov8n_320.onnx"  # the quick one: a whole quantisation takes a few seconds
VTEST = "sample_videos/clips/vtest.avi"
START_AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def detector(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "model, ops",
    [
        # the DFL (Reshape, Transpose, Softmax, its Conv), the box arithmetic, the score Sigmoid, the Concats
        (
            "models/yolov8n_320.onnx",
            {"Add": 2, "Concat": 4, "Conv": 1, "Div": 1, "Mul": 1, "Reshape": 8, "Sigmoid": 1, "Slice": 2}
            | {"Softmax": 1, "Sub": 2, "Transpose": 1},
        ),
        # the same head, plus the anchor grid built from the feature maps' Shapes; still one Conv, one Sigmoid
        ("models/yolov8n_dynamic.onnx", {"Conv": 1, "Sigmoid": 1, "Softmax": 1, "Shape": 16}),
        # YOLOX: the objectness and class Sigmoids of three levels, their Concats; no Conv
        ("models/yolox_nano.onnx", {"Concat": 4, "Reshape": 3, "Sigmoid": 6, "Transpose": 1}),
    ],
)
def test_head_decode_nodes_are_everything_after_the_last_conv_of_each_branch(model, ops):
    graph = onnx.load(asset(model)).graph
    kept = set(head_decode_nodes(graph))
    found = Counter(node.op_type for node in graph.node if node.name in kept)
    assert {op: found[op] for op in ops} == ops
    output_producer = next(node for node in graph.node if graph.output[0].name in node.output)
    assert output_producer.name in kept
    softmax_outputs = {node.output[0] for node in graph.node if node.op_type == "Softmax"}
    assert all(n.input[0] in softmax_outputs for n in graph.node if n.name in kept and n.op_type == "Conv")  # the DFL's only


@pytest.mark.parametrize("model", ["models/yolov8n_320.onnx", "models/yolov8n_dynamic.onnx", "models/yolov8n.onnx"])
def test_a_head_cut_before_its_decoding_finds_what_the_whole_model_finds(model, tmp_path):
    """The same boxes, scores and classes from the cut graph (float, so nothing but the decoding
    differs) on vtest frames, as they are and at 720p; the metadata is kept and names the layout."""
    whole = onnx.load(asset(model))
    cut = cut_before_decode(whole)
    assert [o.name for o in cut.graph.output] == ["raw"] and "Softmax" not in {n.op_type for n in cut.graph.node}  # no DFL
    props = {p.key: p.value for p in cut.metadata_props}
    assert props == {p.key: p.value for p in whole.metadata_props} | {"detector_layout": "ultralytics-raw"}
    onnx.save(cut, tmp_path / "cut.onnx")
    reference = OnnxDetector(asset(model), min_score=0.25, nms_iou=0.5)
    candidate = OnnxDetector(tmp_path / "cut.onnx", min_score=0.25, nms_iou=0.5)
    assert candidate.layout.name == "ultralytics-raw" and candidate.names == reference.names
    frames = spread_frames(asset(VTEST), 4)
    boxes = 0
    for frame in frames + [cv2.resize(f, (1280, 720)) for f in frames]:
        expected, found = reference.detect(frame), candidate.detect(frame)
        assert found.class_id.tolist() == expected.class_id.tolist()
        np.testing.assert_allclose(found.xyxy, expected.xyxy, atol=1e-2)
        np.testing.assert_allclose(found.confidence, expected.confidence, atol=1e-5)
        boxes += len(found.xyxy)
    assert boxes >= 40


def test_a_head_without_ultralytics_decoding_is_not_cut():
    assert cut_before_decode(onnx.load(asset("models/yolox_nano.onnx"))) is None


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    array = np.array(rows, np.float32).reshape(-1, 6)
    return Detections(xyxy=array[:, :4], confidence=array[:, 4], class_id=array[:, 5].astype(np.int32))


@pytest.mark.parametrize(
    "reference, candidate, pairs",
    [
        (dets((0, 0, 10, 10, 0.9, 0)), dets((0, 0, 10, 10, 0.8, 0)), [(0, 0)]),
        (dets((0, 0, 10, 10, 0.9, 0)), dets((0, 0, 10, 10, 0.8, 1)), []),  # another class
        (dets((0, 0, 10, 10, 0.9, 0)), dets((5, 0, 15, 10, 0.8, 0)), []),  # IoU 1/3
        (dets((0, 0, 10, 10, 0.9, 0)), dets((2, 0, 12, 10, 0.8, 0)), [(0, 0)]),  # IoU 2/3
        (dets((0, 0, 10, 10, 0.9, 0)), dets(), []),
        (dets(), dets((0, 0, 10, 10, 0.8, 0)), []),
        # one candidate box, two reference boxes: the better overlap takes it, the other stays unmatched
        (dets((0, 0, 10, 10, 0.9, 0), (1, 0, 11, 10, 0.9, 0)), dets((1, 0, 11, 10, 0.5, 0)), [(1, 0)]),
        # two and two, crossed order
        (
            dets((0, 0, 10, 10, 0.9, 0), (50, 50, 60, 60, 0.9, 2)),
            dets((50, 50, 61, 60, 0.5, 2), (0, 0, 10, 11, 0.5, 0)),
            [(0, 1), (1, 0)],
        ),
    ],
)
def test_match_boxes(reference, candidate, pairs):
    assert sorted(match_boxes(reference, candidate)) == pairs


@pytest.mark.parametrize(
    "folders, calibration, held_back, expected",
    [
        # six images, four to calibrate and two held back among them
        ([6], 4, 2, [([0, 2, 3, 5], [1, 4])]),
        # ten images, three frames: spread over the folder
        ([10], 2, 1, [([1, 8], [5])]),
        # more frames asked than there are: each image once
        ([3], 8, 2, [([1], [0, 2])]),
        # two folders share the frames and the held-back ones
        ([4, 4], 4, 2, [([0, 3], [2]), ([0, 3], [2])]),
    ],
)
def test_frames_are_spread_over_each_source_and_held_back_among_them(tmp_path, folders, calibration, held_back, expected):
    sources = []
    for f, count in enumerate(folders):
        sources.append(tmp_path / f"camera-{f}")
        sources[-1].mkdir()
        for i in range(count):  # each image one grey level: its index
            cv2.imwrite(str(sources[-1] / f"{i:03d}.png"), np.full((8, 8, 3), i, np.uint8))
    samples = read_frames(sources, calibration, held_back)
    picked = [([int(i[0, 0, 0]) for i in s.calibration], [int(i[0, 0, 0]) for i in s.held_back]) for s in samples]
    assert picked == expected


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "yolov8n_320_int8.onnx"
    args = [str(asset(MODEL)), "--calib", str(asset(VTEST)), "--out", str(out), "--frames", "12", "--holdout", "8"]
    result = detector("quantize", *args, "--min-recall", "0.9")  # at 320, INT8 keeps ~94 %: 640 keeps ~99 %
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_the_int8_model_passes_the_gate_with_its_card_and_class_names(quantized):
    out, stdout = quantized
    matched, total = map(int, re.search(r"(\d+)/(\d+) boxes of the float model matched", stdout).groups())
    assert total >= 40 and matched / total >= 0.9
    model = onnx.load(out)
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["DequantizeLinear"] > 60 and out.stat().st_size < 0.4 * asset(MODEL).stat().st_size  # int8 weights
    assert [o.name for o in model.graph.output] == ["raw"] and "Softmax" not in ops  # decoded by the detector
    float_model = onnx.load(asset(MODEL))
    assert {p.key: p.value for p in float_model.metadata_props}.items() <= {p.key: p.value for p in model.metadata_props}.items()
    int8 = OnnxDetector(out, min_score=0.35, nms_iou=0.5)
    assert int8.names == OnnxDetector(asset(MODEL), min_score=0.35, nms_iou=0.5).names and int8.layout.name == "ultralytics-raw"
    card = out.with_suffix(".md").read_text()
    assert "The head stops before its decoding" in card
    source_digest = "9555ce64c643cbaee569518244fb24de3a1cd05eb57e8759e03ab2191c76e198"
    assert f"`{source_digest}`" in card and f"| `{VTEST}` | 12 | 8 |" in card.replace(str(ROOT) + "/", "")
    assert f"| 8 | {total} | {matched} | {matched / total:.3f} |" in card
    assert f"--out {out} --frames 12 --holdout 8 --min-recall 0.9" in card


def replay_demo(model, out_dir) -> tuple[list[tuple], list[Detections]]:
    """configs/demo.yaml over vtest with `model` as `model.path`: (alerts, each frame's tracks)."""
    demo = load_config(ROOT / "configs/demo.yaml")
    config = demo.model_copy(update={"model": demo.model.model_copy(update={"path": model}), "storage_dir": out_dir})
    tracks: list[Detections] = []
    summary = replay(
        config,
        "vtest",
        out_dir=out_dir,
        start_at=START_AT,
        quiet=True,
        progress=False,
        on_frame=lambda r: tracks.append(r.tracks),
    )
    return [(a.event, a.type, a.zone, a.stream_time_s) for a in summary.alerts], tracks


def test_the_int8_model_replays_like_the_float_model(quantized, tmp_path):
    """The same alert, and per frame the float model's boxes found."""
    float_alerts, float_tracks = replay_demo(asset(MODEL), tmp_path / "float")
    int8_alerts, int8_tracks = replay_demo(quantized[0], tmp_path / "int8")
    assert int8_alerts == float_alerts and len(float_alerts) == 1
    float_boxes = sum(len(t.xyxy) for t in float_tracks)
    matched = sum(len(match_boxes(f, q)) for f, q in zip(float_tracks, int8_tracks, strict=True))
    assert float_boxes > 1000 and matched / float_boxes >= 0.9


def test_the_gate_refuses_a_model_whose_head_is_quantised_too(tmp_path):
    """At 640 the shared output scale rounds every score to 0: nothing found, nothing written."""
    out = tmp_path / "head_int8.onnx"
    with pytest.raises(GateRefused, match=r"not written: 0/\d+ boxes of the float model matched \(recall 0.000\)"):
        quantize(
            asset("models/yolov8n.onnx"),
            [asset(VTEST)],
            out,
            frames=3,
            held_back=3,
            min_recall=0.5,
            command="",
            head_in_float=False,
        )
    assert list(tmp_path.iterdir()) == []  # nor the staged file


@pytest.mark.parametrize(
    "args, message",
    [
        ([MODEL, "--calib", VTEST, "--min-recall", "1.01"], "'1.01' is not a recall from 0 to 1"),
        ([MODEL, "--calib", VTEST, "--frames", "0"], "'0' is not a number of frames from 1 to 10000"),
        ([MODEL, "--calib", "rtsp://admin:secret@cam/stream"], "is a live stream; give a recording of it"),
        (["models/missing.onnx", "--calib", VTEST], "model file not found: models/missing.onnx"),
        ([MODEL, "--calib", "sample_videos/clips/missing.avi"], "video file not found: sample_videos/clips/missing.avi"),
        ([MODEL, "--calib", "configs"], "configs: no images (.jpg, .jpeg, .png, .bmp) in this folder"),
        ([MODEL, "--calib", VTEST, "--out", MODEL], "is the float model itself; give another --out"),
    ],
)
def test_bad_input_is_one_clear_line(args, message):
    result = detector("quantize", *args)
    assert result.returncode != 0 and "Traceback" not in result.stderr and "secret" not in result.stderr
    assert message in result.stderr


def test_a_model_below_the_minimum_recall_is_refused_in_one_line_and_not_written(tmp_path):
    out = tmp_path / "strict.onnx"
    result = detector(
        "quantize", MODEL, "--calib", VTEST, "--out", str(out), "--frames", "6", "--holdout", "4", "--min-recall", "1"
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("detector: error:")]
    assert len(errors) == 1 and re.search(r"not written: \d+/\d+ boxes .* below the minimum recall 1$", errors[0])
    assert list(tmp_path.iterdir()) == []


def test_an_int8_model_is_not_quantised_again(quantized, tmp_path):
    out = tmp_path / "again.onnx"
    result = detector("quantize", str(quantized[0]), "--calib", VTEST, "--out", str(out))
    assert result.returncode != 0 and "already quantised; give the float model" in result.stderr
    assert list(tmp_path.iterdir()) == []
