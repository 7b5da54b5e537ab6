"""Tables for detector/detect/layouts.py: which codec applies to which model (metadata, then
output shape), each codec's input blob and decoder on hand-built output arrays, per-class NMS,
and the whole post-processing path to frame pixels (in square and frame-shaped inputs)."""

import math
import re

import numpy as np
import pytest

from detector.detect import layouts
from detector.detect.layouts import (
    LAYOUTS,
    EndToEndCodec,
    UltralyticsCodec,
    UltralyticsRawCodec,
    YoloxCodec,
    anchor_grid,
    choose_codec,
)
from detector.detect.letterbox import Letterbox, frame_shaped_input
from detector.detect.nms import non_max_suppression
from detector.errors import ModelError

# ---------------------------------------------------------------- which codec applies

# The metadata of models/yolov8n.onnx (Ultralytics 8.4 export), less names and dates.
YOLOV8 = {"task": "detect", "end2end": "False", "args": "{'batch': 1, 'dynamic': False, 'nms': False}", "imgsz": "[640, 640]"}
YOLOV10 = {"task": "detect", "end2end": "True", "imgsz": "[640, 640]"}
NMS_EXPORT = {"task": "detect", "end2end": "False", "args": "{'batch': 1, 'nms': True}"}
RAW_HEAD = YOLOV8 | {"detector_layout": "ultralytics-raw"}  # `detector quantize` cut the head's decoding off

# metadata -> the codecs that claim it
CLAIMS_CASES = [
    pytest.param(YOLOV8, ["ultralytics"], id="ultralytics export"),
    pytest.param({"task": "detect", "args": "{'nms': None}"}, ["ultralytics"], id="nms left unset"),
    pytest.param({"task": "detect"}, ["ultralytics"], id="older export without end2end"),
    pytest.param({"task": "detect", "args": "not a literal"}, ["ultralytics"], id="unreadable args"),
    pytest.param(YOLOV10, ["end2end"], id="end2end model (YOLOv10, YOLO26)"),
    pytest.param(NMS_EXPORT, ["end2end"], id="exported with nms=True"),
    pytest.param(RAW_HEAD, ["ultralytics-raw"], id="head cut before its decoding"),
    pytest.param({}, [], id="no metadata (YOLOX)"),
    pytest.param({"producer": "pytorch"}, [], id="unrelated metadata"),
]


@pytest.mark.parametrize("metadata, claimed", CLAIMS_CASES)
def test_codecs_claim_models_by_metadata(metadata, claimed):
    assert [codec.name for codec in LAYOUTS if codec.claims(metadata)] == claimed


# output shape, input (h, w) -> the codecs that fit, in registry order (a raw head's shape fits
# an Ultralytics output of over 64 channels: only its metadata chooses it)
FITS_CASES = [
    pytest.param([1, 84, 8400], (640, 640), ["ultralytics", "ultralytics-raw"], id="yolov8n 640"),
    pytest.param([1, 84, 2100], (320, 320), ["ultralytics", "ultralytics-raw"], id="yolov8n 320"),
    pytest.param(["batch", 84, 8400], (640, 640), ["ultralytics", "ultralytics-raw"], id="dynamic batch"),
    pytest.param([1, 144, 3360], (256, 640), ["ultralytics", "ultralytics-raw"], id="raw head, 256x640"),
    pytest.param([1, 144, 3360], (640, 256), ["ultralytics", "ultralytics-raw"], id="raw head, 640x256"),
    pytest.param([1, 144, 3361], (256, 640), ["ultralytics"], id="raw head: anchors of another input"),
    pytest.param([1, 64, 3360], (256, 640), ["ultralytics"], id="raw head: bins and no classes"),
    pytest.param([1, 7, 8400], (640, 640), ["ultralytics"], id="3-class ultralytics"),
    pytest.param([1, 3549, 85], (416, 416), ["yolox"], id="yolox-nano 416"),
    pytest.param([1, 8400, 85], (640, 640), ["yolox"], id="yolox 640"),
    pytest.param([1, 3549, 6], (416, 416), ["yolox", "end2end"], id="1-class yolox: both fit, yolox first"),
    pytest.param([1, 300, 6], (640, 640), ["end2end"], id="end-to-end, 300 boxes"),
    pytest.param([1, 3549, 85], (640, 640), [], id="yolox anchors of another input size"),
    pytest.param([1, 84, "anchors"], (640, 640), [], id="dynamic anchor count"),
    pytest.param([1, "channels", 8400], (640, 640), [], id="dynamic channels"),
    pytest.param([84, 8400], (640, 640), [], id="no batch axis"),
    pytest.param([1, 1, 84, 8400], (640, 640), [], id="four axes"),
    pytest.param([1, 4, 8400], (640, 640), [], id="boxes and no classes"),
    pytest.param([1, 8400, 5], (640, 640), [], id="yolox boxes and objectness, no classes"),
    pytest.param([1, 300, 7], (640, 640), [], id="end-to-end with an extra column"),
]


@pytest.mark.parametrize("shape, input_hw, fitting", FITS_CASES)
def test_codecs_fit_output_shapes(shape, input_hw, fitting):
    assert [codec.name for codec in LAYOUTS if codec.fits(shape, input_hw)] == fitting


# metadata, output shape, input (h, w) -> chosen codec, class count it implies
CHOOSE_CASES = [
    pytest.param(YOLOV8, [1, 84, 8400], (640, 640), UltralyticsCodec, 80, id="yolov8n"),
    pytest.param(YOLOV8, [1, 84, 2100], (320, 320), UltralyticsCodec, 80, id="yolov8n 320"),
    pytest.param({}, [1, 7, 8400], (640, 640), UltralyticsCodec, 3, id="ultralytics by shape"),
    pytest.param({}, [1, 3549, 85], (416, 416), YoloxCodec, 80, id="yolox-nano"),
    pytest.param({}, [1, 3549, 6], (416, 416), YoloxCodec, 1, id="1-class yolox"),
    pytest.param({}, [1, 300, 6], (640, 640), EndToEndCodec, None, id="end-to-end by shape"),
    pytest.param(YOLOV10, [1, 300, 6], (640, 640), EndToEndCodec, None, id="end-to-end by metadata"),
    pytest.param(NMS_EXPORT, [1, 300, 6], (640, 640), EndToEndCodec, None, id="nms=True export"),
    # YOLOv10 exported before Ultralytics wrote `end2end`: claimed as ultralytics, the shape says no
    pytest.param({"task": "detect"}, [1, 300, 6], (640, 640), EndToEndCodec, None, id="shape overrules metadata"),
    # metadata first: a 1-class end-to-end model whose box count happens to be YOLOX's anchor count
    pytest.param(YOLOV10, [1, 3549, 6], (416, 416), EndToEndCodec, None, id="metadata before shape"),
    pytest.param(RAW_HEAD, [1, 144, 2100], (320, 320), UltralyticsRawCodec, 80, id="raw head"),
    pytest.param(RAW_HEAD, [1, 67, 3360], (256, 640), UltralyticsRawCodec, 3, id="3-class raw head"),
    pytest.param(YOLOV8, [1, 144, 2100], (320, 320), UltralyticsCodec, 140, id="raw shape, no raw metadata"),
]


@pytest.mark.parametrize("metadata, shape, input_hw, codec, classes", CHOOSE_CASES)
def test_choose_codec(metadata, shape, input_hw, codec, classes):
    chosen = choose_codec(metadata, shape, input_hw)
    assert chosen is codec
    assert chosen.class_count(shape) == classes


@pytest.mark.parametrize(
    "metadata, shape, message",
    [
        ({}, [1, 84, "anchors"], "output [1, 84, 'anchors'] fits none of the supported layouts"),
        ({}, [1, 3000, 85], "output [1, 3000, 85] fits none of the supported layouts"),
        ({}, [1, 4, 8400], "fits none of the supported layouts"),
        ({}, [84, 8400], "fits none of the supported layouts"),
        (YOLOV8, [1, 8400, 5], "fits none of the supported layouts"),
        (RAW_HEAD, [1, 144, 3000], "fits none of the supported layouts"),
        ({"task": "segment"}, [1, 116, 8400], "an Ultralytics 'segment' model: only detection models are supported"),
        ({"task": "pose"}, [1, 56, 8400], "'pose' model"),
    ],
)
def test_choose_codec_rejects_unknown_models(metadata, shape, message):
    with pytest.raises(ModelError, match=re.escape(message)) as raised:
        choose_codec(metadata, shape, (416, 416))
    if "fits none" in message:  # the message lists every supported layout
        assert all(codec.summary in str(raised.value) for codec in LAYOUTS)


# ---------------------------------------------------------------- input blobs


def bgr_canvas() -> np.ndarray:
    canvas = np.zeros((2, 3, 3), np.uint8)
    canvas[..., 0], canvas[..., 1], canvas[..., 2] = 10, 20, 255  # B, G, R
    return canvas


# codec -> channel values of a (B=10, G=20, R=255) pixel in the blob
@pytest.mark.parametrize(
    "codec, channels",
    [
        (UltralyticsCodec, [1.0, 20 / 255, 10 / 255]),  # RGB 0..1
        (EndToEndCodec, [1.0, 20 / 255, 10 / 255]),
        (UltralyticsRawCodec, [1.0, 20 / 255, 10 / 255]),
        (YoloxCodec, [10, 20, 255]),  # BGR 0..255
    ],
)
def test_to_blob_channel_order_and_scale(codec, channels):
    blob = codec((64, 64)).to_blob([bgr_canvas(), bgr_canvas()])
    assert blob.shape == (2, 3, 2, 3) and blob.dtype == np.float32
    np.testing.assert_allclose(blob[1, :, 1, 2], channels, rtol=1e-6)


# codec, frame sizes (h, w) -> each frame's (scale, pad_x, pad_y) in a 64x64 input
@pytest.mark.parametrize(
    "codec, sizes, expected",
    [
        (UltralyticsCodec, [(32, 64), (64, 32), (64, 64)], [(1.0, 0, 16), (1.0, 16, 0), (1.0, 0, 0)]),
        (YoloxCodec, [(32, 64), (128, 64)], [(1.0, 0, 0), (0.5, 0, 0)]),
        (EndToEndCodec, [(16, 128)], [(0.5, 0, 28)]),
    ],
)
def test_preprocess_letterboxes_each_frame_of_a_batch(codec, sizes, expected):
    frames = [np.full((h, w, 3), 7, np.uint8) for h, w in sizes]
    blob, boxes = codec((64, 64)).preprocess(frames)
    assert blob.shape == (len(frames), 3, 64, 64)
    assert [(b.scale, b.pad_x, b.pad_y) for b in boxes] == expected


# ---------------------------------------------------------------- Ultralytics decoding


def ultralytics_output(rows: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """[(cx, cy, w, h, class scores)] -> one frame's [4+nc, N]."""
    return np.array([[*box, *scores] for *box, scores in rows], np.float32).T


def test_decode_ultralytics_boxes_scores_classes():
    output = ultralytics_output(
        [
            (50, 40, 20, 10, [0.10, 0.90, 0.20]),  # class 1, box 40..60 x 35..45
            (10, 10, 4, 8, [0.05, 0.10, 0.02]),  # below threshold
            (100, 200, 30, 60, [0.60, 0.10, 0.55]),  # class 0
        ]
    )
    assert output.shape == (7, 3)
    xyxy, score, class_id = UltralyticsCodec((640, 640)).decode(output, 0.25)
    np.testing.assert_allclose(xyxy, [[40, 35, 60, 45], [85, 170, 115, 230]])
    np.testing.assert_allclose(score, [0.90, 0.60])
    assert class_id.tolist() == [1, 0]
    assert (xyxy.dtype, score.dtype, class_id.dtype) == (np.float32, np.float32, np.int32)


@pytest.mark.parametrize("min_score, kept", [(0.0, 3), (0.3, 3), (0.31, 2), (0.5, 2), (0.50001, 1), (0.8, 1), (0.81, 0)])
def test_decode_ultralytics_filters_by_best_class_score(min_score, kept):
    output = ultralytics_output(
        [
            (50, 50, 10, 10, [0.8, 0.1]),
            (60, 60, 10, 10, [0.2, 0.5]),  # exactly 0.5 is kept at min_score 0.5
            (70, 70, 10, 10, [0.3, 0.1]),
        ]
    )
    xyxy, score, class_id = UltralyticsCodec((640, 640)).decode(output, min_score)
    assert len(xyxy) == len(score) == len(class_id) == kept
    assert (score >= min_score).all()


def test_decode_ultralytics_nothing_above_threshold():
    output = ultralytics_output([(50, 50, 10, 10, [0.1, 0.1])])
    xyxy, score, class_id = UltralyticsCodec((640, 640)).decode(output, 0.5)
    assert xyxy.shape == (0, 4) and score.shape == (0,) and class_id.shape == (0,)


# ---------------------------------------------------------------- raw Ultralytics head decoding


def raw_output(input_hw: tuple[int, int], rows: dict[int, tuple[list[float], list[float]]]) -> np.ndarray:
    """{anchor index: (left, top, right, bottom distances in stride units, class logits)} -> one
    frame's [64+nc, N], each distance as two equal bins around it (exact at whole and half units)."""
    anchors = len(anchor_grid(input_hw)[0])
    classes = len(next(iter(rows.values()))[1])
    output = np.full((64 + classes, anchors), -20.0, np.float32)  # no class anywhere else
    output[:64] = 0.0
    for index, (sides, logits) in rows.items():
        bins = np.full((4, 16), -50.0, np.float32)
        for side, distance in enumerate(sides):
            bins[side, [int(np.floor(distance)), int(np.ceil(distance))]] = 10.0
        output[:64, index] = bins.ravel()
        output[64:, index] = logits
    return output


def test_decode_raw_head_boxes_scores_classes():
    input_hw = (64, 64)  # anchors: 8x8 at stride 8, 4x4 at 16, 2x2 at 32
    output = raw_output(
        input_hw,
        {
            10: ([2, 1, 3, 4], [-3.0, 2.0]),  # stride 8, cell (2, 1): centre (20, 12); class 1
            64 + 4: ([1, 1, 1.5, 1], [0.0, -1.0]),  # stride 16, cell (0, 1): centre (8, 24); class 0 at 0.5
            80 + 3: ([1, 1, 1, 1], [-4.0, -5.0]),  # stride 32: below any useful threshold
        },
    )
    xyxy, score, class_id = UltralyticsRawCodec(input_hw).decode(output, 0.25)
    np.testing.assert_allclose(xyxy, [[4, 4, 44, 44], [-8, 8, 32, 40]], atol=1e-4)
    np.testing.assert_allclose(score, [1 / (1 + math.exp(-2.0)), 0.5], rtol=1e-6)
    assert class_id.tolist() == [1, 0]
    assert (xyxy.dtype, score.dtype, class_id.dtype) == (np.float32, np.float32, np.int32)


@pytest.mark.parametrize("min_score, kept", [(0.0, 3), (0.01, 3), (0.02, 2), (0.5, 2), (0.51, 1), (0.88, 1), (0.89, 0), (1.0, 0)])
def test_decode_raw_head_filters_by_best_class_score(min_score, kept):
    output = raw_output(
        (64, 64), {0: ([1, 1, 1, 1], [2.0, -1.0]), 1: ([1, 1, 1, 1], [-3.0, 0.0]), 2: ([1, 1, 1, 1], [-4.0, -9.0])}
    )
    output[64:, 3:] = -60.0  # the empty anchors score under any threshold but 0
    xyxy, score, class_id = UltralyticsRawCodec((64, 64)).decode(output, min_score)
    assert len(xyxy) == len(score) == len(class_id) == kept + (len(output[0]) - 3 if min_score == 0 else 0)
    assert (score >= min_score).all()


# ---------------------------------------------------------------- YOLOX decoding


def test_anchor_grid_order_and_strides():
    grid, strides = anchor_grid((64, 32))  # (height, width)
    # stride 8: 8 rows x 4 cols, then stride 16: 4 x 2, then stride 32: 2 x 1; row-major, (x, y)
    assert grid.shape == (32 + 8 + 2, 2) and strides.shape == (42, 1)
    assert grid[:5].tolist() == [[0, 0], [1, 0], [2, 0], [3, 0], [0, 1]]
    assert grid[31].tolist() == [3, 7]
    assert grid[32].tolist() == [0, 0] and grid[-1].tolist() == [0, 1]
    assert strides[:32].ravel().tolist() == [8] * 32
    assert strides[32:40].ravel().tolist() == [16] * 8
    assert strides[40:].ravel().tolist() == [32] * 2


def yolox_output(anchors: int, classes: int, rows: dict[int, tuple]) -> np.ndarray:
    """{anchor index: (x, y, log w, log h, objectness, class scores)} -> one frame's [N, 5+nc]."""
    output = np.zeros((anchors, 5 + classes), np.float32)
    for index, (x, y, lw, lh, obj, scores) in rows.items():
        output[index] = [x, y, lw, lh, obj, *scores]
    return output


def test_decode_yolox_boxes_scores_classes():
    assert len(anchor_grid((64, 64))[0]) == 84  # 64 + 16 + 4 anchors
    output = yolox_output(
        84,
        3,
        {
            # stride 8, cell (x=2, y=3) -> index 3*8+2: centre (20, 28), size 32x16
            26: (0.5, 0.5, math.log(4), math.log(2), 0.9, [0.1, 0.8, 0.2]),
            # stride 16, cell (x=1, y=2) -> index 64 + 2*4+1: centre (16, 32), size 16x48
            73: (0.0, 0.0, 0.0, math.log(3), 0.5, [0.9, 0.1, 0.1]),
            # stride 32: confident class, low objectness -> 0.2*0.9 = 0.18, filtered out
            80: (0.5, 0.5, 0.0, 0.0, 0.2, [0.9, 0.0, 0.0]),
        },
    )
    xyxy, score, class_id = YoloxCodec((64, 64)).decode(output, 0.25)
    np.testing.assert_allclose(xyxy, [[4, 20, 36, 36], [8, 8, 24, 56]], atol=1e-4)
    np.testing.assert_allclose(score, [0.72, 0.45], rtol=1e-6)
    assert class_id.tolist() == [1, 0]
    assert (xyxy.dtype, score.dtype, class_id.dtype) == (np.float32, np.float32, np.int32)


@pytest.mark.parametrize(
    "min_score, kept", [(0.0, 84), (0.1, 3), (0.17, 3), (0.19, 2), (0.44, 2), (0.46, 1), (0.71, 1), (0.73, 0)]
)
def test_decode_yolox_filters_by_objectness_times_class(min_score, kept):
    output = yolox_output(
        84,
        3,
        {
            26: (0, 0, 0, 0, 0.9, [0.1, 0.8, 0.2]),  # 0.72
            73: (0, 0, 0, 0, 0.5, [0.9, 0.1, 0.1]),  # 0.45
            80: (0, 0, 0, 0, 0.2, [0.9, 0.0, 0.0]),  # 0.18
        },
    )
    _, score, _ = YoloxCodec((64, 64)).decode(output, min_score)
    assert len(score) == kept


# ---------------------------------------------------------------- end-to-end decoding


def end2end_output(rows: list[tuple[float, float, float, float, float, int]], size: int = 8) -> np.ndarray:
    """[(x1, y1, x2, y2, score, class)] -> one frame's [size, 6], zero-padded as exports pad it."""
    output = np.zeros((size, 6), np.float32)
    output[: len(rows)] = rows
    return output


def test_decode_end2end_boxes_scores_classes():
    output = end2end_output(
        [
            (40, 35, 60, 45, 0.90, 1),
            (41, 35, 61, 45, 0.80, 1),  # overlaps the first: the graph already chose to keep both
            (10, 10, 14, 18, 0.10, 0),  # below threshold
            (85, 170, 115, 230, 0.60, 79),
        ]
    )
    xyxy, score, class_id = EndToEndCodec((640, 640)).decode(output, 0.25)
    np.testing.assert_allclose(xyxy, [[40, 35, 60, 45], [41, 35, 61, 45], [85, 170, 115, 230]])
    np.testing.assert_allclose(score, [0.90, 0.80, 0.60])
    assert class_id.tolist() == [1, 1, 79]
    assert (xyxy.dtype, score.dtype, class_id.dtype) == (np.float32, np.float32, np.int32)


@pytest.mark.parametrize("min_score, kept", [(0.0, 3), (0.1, 3), (0.11, 2), (0.5, 2), (0.51, 1), (0.9, 1), (0.91, 0)])
def test_decode_end2end_filters_by_score_and_drops_padding(min_score, kept):
    output = end2end_output([(0, 0, 5, 5, 0.9, 0), (0, 0, 5, 5, 0.5, 2), (0, 0, 5, 5, 0.1, 3)], size=300)
    _, score, _ = EndToEndCodec((640, 640)).decode(output, min_score)
    assert len(score) == kept  # the 297 zero rows never come out, even at min_score 0


# ---------------------------------------------------------------- NMS


def xyxy(*boxes) -> np.ndarray:
    return np.array(boxes, np.float32).reshape(-1, 4)


# boxes, scores, classes, iou threshold -> kept indices (best score first)
NMS_CASES = [
    pytest.param(xyxy(), [], [], 0.5, [], id="empty"),
    pytest.param(xyxy([0, 0, 10, 10]), [0.5], [0], 0.5, [0], id="single"),
    pytest.param(xyxy([0, 0, 10, 10], [1, 1, 11, 11]), [0.6, 0.9], [0, 0], 0.5, [1], id="same class overlap: best wins"),
    pytest.param(xyxy([0, 0, 10, 10], [1, 1, 11, 11]), [0.6, 0.9], [0, 2], 0.5, [1, 0], id="other class: both kept"),
    pytest.param(xyxy([0, 0, 10, 10], [20, 20, 30, 30]), [0.6, 0.9], [0, 0], 0.5, [1, 0], id="disjoint: both kept"),
    # IoU of these two is 50 / 150 = 1/3
    pytest.param(xyxy([0, 0, 10, 10], [0, 5, 10, 15]), [0.9, 0.8], [0, 0], 0.5, [0, 1], id="iou 1/3 under 0.5"),
    pytest.param(xyxy([0, 0, 10, 10], [0, 5, 10, 15]), [0.9, 0.8], [0, 0], 0.3, [0], id="iou 1/3 over 0.3"),
    # sub-pixel boxes: IoU 0.14 / 0.18 = 0.78 must count as overlap (boxes are not rounded to ints)
    pytest.param(xyxy([0, 0, 0.4, 0.4], [0.05, 0, 0.45, 0.4]), [0.9, 0.8], [0, 0], 0.5, [0], id="sub-pixel boxes"),
    # a chain: 0 suppresses 1, 1 would have suppressed 2, but 1 is gone so 2 stays
    pytest.param(xyxy([0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]), [0.9, 0.8, 0.7], [0, 0, 0], 0.5, [0, 2], id="chain"),
    pytest.param(
        xyxy([0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [1, 0, 11, 10]),
        [0.9, 0.8, 0.7, 0.95],
        [0, 0, 1, 1],
        0.5,
        [3, 0],
        id="two classes each keep one",
    ),
]


@pytest.mark.parametrize("boxes, scores, classes, iou, kept", NMS_CASES)
def test_non_max_suppression_per_class(boxes, scores, classes, iou, kept):
    result = non_max_suppression(boxes, np.array(scores, np.float32), np.array(classes, np.int32), iou)
    assert result.dtype == np.int64
    assert result.tolist() == kept


# ---------------------------------------------------------------- the whole post-processing path


def test_confidence_filter_runs_before_nms(monkeypatch):
    """A box under min_score must not suppress (or survive) anything: it is gone before NMS."""
    seen = []

    def recording_nms(boxes, scores, classes, iou):
        seen.append(scores.tolist())
        return non_max_suppression(boxes, scores, classes, iou)

    monkeypatch.setattr(layouts, "non_max_suppression", recording_nms)
    output = ultralytics_output(
        [
            (20, 20, 10, 10, [0.30]),  # under min_score 0.4, overlaps the next one completely
            (20, 20, 10, 10, [0.50]),
            (21, 20, 10, 10, [0.35]),  # under min_score
            (50, 50, 10, 10, [0.45]),
        ]
    )
    box = Letterbox(scale=1.0, pad_x=0, pad_y=0)
    detections = UltralyticsCodec((64, 64)).postprocess(output, box, (64, 64, 3), min_score=0.4, nms_iou=0.5)
    np.testing.assert_allclose(seen, [[0.50, 0.45]])  # NMS only ever saw the two boxes >= 0.4
    np.testing.assert_allclose(detections.confidence, [0.50, 0.45])
    np.testing.assert_allclose(detections.xyxy, [[15, 15, 25, 25], [45, 45, 55, 55]])


def test_postprocess_maps_to_frame_and_clips():
    """Input pixels -> frame pixels through the letterbox, clipped to the frame."""
    output = ultralytics_output(
        [
            (32, 32, 16, 16, [0.9, 0.0]),  # input 24..40 -> frame (x - 0) / 0.5, (y - 16) / 0.5
            (60, 20, 20, 8, [0.0, 0.8]),  # runs past the right edge of the frame
        ]
    )
    box = Letterbox(scale=0.5, pad_x=0, pad_y=16)  # a 128x64 frame centred in 64x64
    detections = UltralyticsCodec((64, 64)).postprocess(output, box, (64, 128, 3), min_score=0.25, nms_iou=0.5)
    np.testing.assert_allclose(detections.xyxy, [[48, 16, 80, 48], [100, 0, 128, 16]])
    assert detections.class_id.tolist() == [0, 1]
    assert detections.xyxy.dtype == np.float32


def test_postprocess_yolox_suppresses_overlaps():
    output = yolox_output(
        84,
        2,
        {
            26: (0.5, 0.5, math.log(4), math.log(2), 0.9, [0.0, 0.8]),  # (4, 20, 36, 36) in input pixels
            27: (0.5, 0.5, math.log(4), math.log(2), 0.9, [0.0, 0.7]),  # the same box shifted 8 px: IoU 0.6
        },
    )
    box = Letterbox(scale=0.5, pad_x=0, pad_y=0)
    detections = YoloxCodec((64, 64)).postprocess(output, box, (128, 128, 3), min_score=0.25, nms_iou=0.5)
    np.testing.assert_allclose(detections.xyxy, [[8, 40, 72, 72]], atol=1e-3)
    np.testing.assert_allclose(detections.confidence, [0.72], rtol=1e-6)
    assert detections.class_id.tolist() == [1]


def test_postprocess_end2end_batch_keeps_each_frames_letterbox_and_skips_nms():
    """A [2, N, 6] output of two frames of different sizes: each maps back through its own
    letterbox; overlapping boxes of one class both stay (the graph did NMS)."""
    frames = [np.zeros((320, 640, 3), np.uint8), np.zeros((1280, 640, 3), np.uint8)]
    codec = EndToEndCodec((640, 640))
    _, boxes = codec.preprocess(frames)  # scale 1, pad_y 160; scale 0.5, pad_x 160
    outputs = np.stack(
        [
            end2end_output([(100, 200, 300, 400, 0.9, 2), (110, 200, 310, 400, 0.8, 2)]),
            end2end_output([(160, 0, 480, 640, 0.7, 0), (600, 600, 700, 700, 0.6, 5)]),
        ]
    )
    first, second = (codec.postprocess(o, b, f.shape, min_score=0.25, nms_iou=0.5) for o, b, f in zip(outputs, boxes, frames))
    np.testing.assert_allclose(first.xyxy, [[100, 40, 300, 240], [110, 40, 310, 240]])
    np.testing.assert_allclose(first.confidence, [0.9, 0.8])
    np.testing.assert_allclose(second.xyxy, [[0, 0, 640, 1280], [640, 1200, 640, 1280]])  # clipped to 640x1280
    assert second.class_id.tolist() == [0, 5]


# frame (h, w) -> boxes (x1, y1, x2, y2) in frame pixels, one of them touching the frame's corners
@pytest.mark.parametrize(
    "frame_hw",
    [(576, 768), (720, 1280), (1080, 1920), (240, 320), (1280, 720), (804, 1920), (481, 640), (1000, 1000)],
    ids=["4:3", "720p", "1080p", "320x240", "portrait", "2.39:1", "481x640", "square"],
)
def test_boxes_round_trip_through_a_frame_shaped_input(frame_hw):
    """Frame boxes placed in a frame-shaped input through the letterbox preprocess chose, decoded
    and mapped back, land where they started (to a thousandth of a pixel)."""
    height, width = frame_hw
    frame_boxes = np.array(
        [[0, 0, width, height], [0.1 * width, 0.2 * height, 0.3 * width, 0.9 * height], [width - 7, height - 5, width, height]],
        np.float32,
    )
    codec = UltralyticsCodec(frame_shaped_input(frame_hw, 640, 32))
    blob, (box,) = codec.preprocess([np.zeros((height, width, 3), np.uint8)])
    assert blob.shape[2:] == codec.input_hw
    in_input = frame_boxes * box.scale + np.array([box.pad_x, box.pad_y] * 2, np.float32)
    x1, y1, x2, y2 = in_input.T
    output = ultralytics_output(
        [((a + c) / 2, (b + d) / 2, c - a, d - b, [0.0, 0.9 - k / 10]) for k, (a, b, c, d) in enumerate(zip(x1, y1, x2, y2))]
    )
    detections = codec.postprocess(output, box, (height, width, 3), min_score=0.25, nms_iou=0.99)
    np.testing.assert_allclose(detections.xyxy, frame_boxes, atol=1e-3 * max(frame_hw) / 640)
