"""Tables for detector/detect/layouts.py: letterbox geometry, layout detection, the two
decoders on tiny hand-built output tensors, confidence filtering and per-class NMS."""

import math

import numpy as np
import pytest

from detector.detect.layouts import (
    PAD_VALUE,
    Layout,
    Letterbox,
    decode_ultralytics,
    decode_yolox,
    detect_layout,
    letterbox,
    non_max_suppression,
    to_blob,
    yolox_grid,
)
from detector.detect.onnx_backend import OnnxDetector

# ---------------------------------------------------------------- letterbox


def frame(height: int, width: int) -> np.ndarray:
    """A frame with no pixel equal to the pad value, so padding is easy to find."""
    return np.full((height, width, 3), 7, np.uint8)


# (frame h, w), input (h, w), centred -> expected scale, pad_x, pad_y, resized (w, h)
LETTERBOX_CASES = [
    # vtest.avi 768x576 into YOLOv8 640: 640x480, 80 rows above and below
    ((576, 768), (640, 640), True, 640 / 768, 0, 80, (640, 480)),
    # ... into YOLOX 416 at the top-left: 416x312, no offset, padding below only
    ((576, 768), (416, 416), False, 416 / 768, 0, 0, (416, 312)),
    # portrait frame: padding left and right when centred
    ((400, 200), (64, 64), True, 64 / 400, 16, 0, (32, 64)),
    # odd padding rounds as Ultralytics' LetterBox: top = round(dh - 0.1), bottom = the rest
    ((45, 100), (64, 64), True, 0.64, 0, 17, (64, 29)),
    # upscaling a small frame
    ((24, 32), (64, 64), True, 2.0, 0, 8, (64, 48)),
    ((24, 32), (64, 64), False, 2.0, 0, 0, (64, 48)),
    # the frame already has the input size: no resize, no padding
    ((64, 64), (64, 64), True, 1.0, 0, 0, (64, 64)),
    ((64, 64), (64, 64), False, 1.0, 0, 0, (64, 64)),
    # non-square input (height, width)
    ((100, 100), (32, 64), True, 0.32, 16, 0, (32, 32)),
    # top-left mode truncates the resized size as YOLOX's preproc does
    ((30, 70), (64, 64), False, 64 / 70, 0, 0, (64, 27)),
]


@pytest.mark.parametrize("shape, size, centred, scale, pad_x, pad_y, resized", LETTERBOX_CASES)
def test_letterbox_geometry(shape, size, centred, scale, pad_x, pad_y, resized):
    canvas, box = letterbox(frame(*shape), size, centred=centred)
    assert canvas.shape == (size[0], size[1], 3)
    assert canvas.dtype == np.uint8
    assert box.scale == pytest.approx(scale)
    assert (box.pad_x, box.pad_y) == (pad_x, pad_y)
    new_w, new_h = resized
    image_area = np.zeros(canvas.shape[:2], bool)
    image_area[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = True
    assert (canvas[image_area] == 7).all(), "the resized frame sits at (pad_x, pad_y)"
    assert (canvas[~image_area] == PAD_VALUE).all(), "everything else is grey 114"


def test_letterbox_keeps_the_frame_untouched():
    image = frame(576, 768)
    before = image.copy()
    letterbox(image, (640, 640), centred=True)
    assert (image == before).all()


@pytest.mark.parametrize(
    "shape, size, centred",
    [((576, 768), (640, 640), True), ((576, 768), (416, 416), False), ((400, 200), (64, 64), True),
     ((45, 100), (64, 64), True), ((24, 32), (64, 64), False), ((100, 100), (32, 64), True)],
)
def test_to_frame_inverts_the_letterbox(shape, size, centred):
    _, box = letterbox(frame(*shape), size, centred=centred)
    rng = np.random.default_rng(0)
    height, width = shape
    xy1 = rng.uniform(0, [width / 2, height / 2], size=(20, 2))
    xyxy = np.concatenate([xy1, xy1 + rng.uniform(1, [width / 2, height / 2], size=(20, 2))], axis=1).astype(np.float32)
    in_input = xyxy * box.scale + np.array([box.pad_x, box.pad_y] * 2, np.float32)
    back = box.to_frame(in_input)
    np.testing.assert_allclose(back, xyxy, rtol=1e-5, atol=1e-3)


def test_to_frame_known_values():
    box = Letterbox(scale=0.5, pad_x=10, pad_y=20)
    np.testing.assert_allclose(box.to_frame(np.array([[10, 20, 60, 70]], np.float32)), [[0, 0, 100, 100]])
    assert box.to_frame(np.zeros((0, 4), np.float32)).shape == (0, 4)


def test_letterbox_of_a_pixel_lands_where_to_frame_says():
    """A bright pixel in the frame must appear in the canvas at frame * scale + pad."""
    image = frame(576, 768)
    image[300:310, 500:510] = 255
    canvas, box = letterbox(image, (640, 640), centred=True)
    ys, xs = np.nonzero(canvas[:, :, 0] > 130)  # half-way between 7 and 255: edges blend
    found = box.to_frame(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32))[0]
    np.testing.assert_allclose(found, [500, 300, 510, 310], atol=1.5)


# ---------------------------------------------------------------- to_blob


def test_to_blob_ultralytics_is_rgb_0_1_nchw():
    canvas = np.zeros((2, 3, 3), np.uint8)
    canvas[..., 0], canvas[..., 1], canvas[..., 2] = 10, 20, 255  # B, G, R
    blob = to_blob(canvas, Layout.ULTRALYTICS)
    assert blob.shape == (1, 3, 2, 3) and blob.dtype == np.float32
    np.testing.assert_allclose(blob[0, :, 0, 0], [1.0, 20 / 255, 10 / 255], rtol=1e-6)


def test_to_blob_yolox_is_bgr_0_255_nchw():
    canvas = np.zeros((2, 3, 3), np.uint8)
    canvas[..., 0], canvas[..., 1], canvas[..., 2] = 10, 20, 255
    blob = to_blob(canvas, Layout.YOLOX)
    assert blob.shape == (1, 3, 2, 3) and blob.dtype == np.float32
    np.testing.assert_allclose(blob[0, :, 1, 2], [10, 20, 255])


# ---------------------------------------------------------------- detect_layout


@pytest.mark.parametrize(
    "shape, class_count, layout, classes",
    [
        ([1, 84, 8400], None, Layout.ULTRALYTICS, 80),   # yolov8n 640
        ([1, 84, 2100], 80, Layout.ULTRALYTICS, 80),     # yolov8n 320, names in metadata
        ([1, 7, 8400], 3, Layout.ULTRALYTICS, 3),        # a custom 3-class model
        ([1, 3549, 85], None, Layout.YOLOX, 80),         # yolox-nano 416
        ([1, 8400, 85], 80, Layout.YOLOX, 80),           # yolox 640
        ([1, 3549, 8], None, Layout.YOLOX, 3),
        (["batch", 84, 8400], None, Layout.ULTRALYTICS, 80),  # a dynamic batch is fine
    ],
)
def test_detect_layout(shape, class_count, layout, classes):
    assert detect_layout(shape, class_count) == (layout, classes)


@pytest.mark.parametrize(
    "shape, class_count",
    [
        ([1, 84, "anchors"], None),  # dynamic anchor count
        ([1, "channels", 8400], None),
        ([84, 8400], None),          # not [1, a, b]
        ([1, 1, 84, 8400], None),
        ([1, 4, 8400], None),        # boxes and no classes
        ([1, 8400, 5], None),        # YOLOX boxes + objectness and no classes
        ([1, 84, 8400], 3),          # names say 3 classes, the output has 80
        ([1, 3549, 85], 20),
    ],
)
def test_detect_layout_rejects(shape, class_count):
    with pytest.raises(ValueError):
        detect_layout(shape, class_count)


# ---------------------------------------------------------------- decode_ultralytics


def ultralytics_output(rows: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """[(cx, cy, w, h, class scores)] -> [1, 4+nc, N]."""
    return np.array([[*box, *scores] for *box, scores in rows], np.float32).T[None]


def test_decode_ultralytics_boxes_scores_classes():
    output = ultralytics_output([
        (50, 40, 20, 10, [0.10, 0.90, 0.20]),   # class 1, box 40..60 x 35..45
        (10, 10, 4, 8, [0.05, 0.10, 0.02]),     # below threshold
        (100, 200, 30, 60, [0.60, 0.10, 0.55]),  # class 0
    ])
    assert output.shape == (1, 7, 3)
    xyxy, score, class_id = decode_ultralytics(output, 0.25)
    np.testing.assert_allclose(xyxy, [[40, 35, 60, 45], [85, 170, 115, 230]])
    np.testing.assert_allclose(score, [0.90, 0.60])
    assert class_id.tolist() == [1, 0]
    assert (xyxy.dtype, score.dtype, class_id.dtype) == (np.float32, np.float32, np.int32)


@pytest.mark.parametrize("min_score, kept", [(0.0, 3), (0.3, 3), (0.31, 2), (0.5, 2), (0.50001, 1), (0.8, 1), (0.81, 0)])
def test_decode_ultralytics_filters_by_best_class_score(min_score, kept):
    output = ultralytics_output([
        (50, 50, 10, 10, [0.8, 0.1]),
        (60, 60, 10, 10, [0.2, 0.5]),  # exactly 0.5 is kept at min_score 0.5
        (70, 70, 10, 10, [0.3, 0.1]),
    ])
    xyxy, score, class_id = decode_ultralytics(output, min_score)
    assert len(xyxy) == len(score) == len(class_id) == kept
    assert (score >= min_score).all()


def test_decode_ultralytics_nothing_above_threshold():
    output = ultralytics_output([(50, 50, 10, 10, [0.1, 0.1])])
    xyxy, score, class_id = decode_ultralytics(output, 0.5)
    assert xyxy.shape == (0, 4) and score.shape == (0,) and class_id.shape == (0,)


# ---------------------------------------------------------------- decode_yolox


def test_yolox_grid_order_and_strides():
    grid, strides = yolox_grid((64, 32))  # (height, width)
    # stride 8: 8 rows x 4 cols, then stride 16: 4 x 2, then stride 32: 2 x 1; row-major, (x, y)
    assert grid.shape == (32 + 8 + 2, 2) and strides.shape == (42, 1)
    assert grid[:5].tolist() == [[0, 0], [1, 0], [2, 0], [3, 0], [0, 1]]
    assert grid[31].tolist() == [3, 7]
    assert grid[32].tolist() == [0, 0] and grid[-1].tolist() == [0, 1]
    assert strides[:32].ravel().tolist() == [8] * 32
    assert strides[32:40].ravel().tolist() == [16] * 8
    assert strides[40:].ravel().tolist() == [32] * 2


def yolox_output(anchors: int, classes: int, rows: dict[int, tuple]) -> np.ndarray:
    """{anchor index: (x, y, log w, log h, objectness, class scores)} -> [1, N, 5+nc]."""
    output = np.zeros((1, anchors, 5 + classes), np.float32)
    for index, (x, y, lw, lh, obj, scores) in rows.items():
        output[0, index] = [x, y, lw, lh, obj, *scores]
    return output


def test_decode_yolox_boxes_scores_classes():
    grid, strides = yolox_grid((64, 64))  # 64 + 16 + 4 anchors
    assert len(grid) == 84
    output = yolox_output(84, 3, {
        # stride 8, cell (x=2, y=3) -> index 3*8+2: centre (20, 28), size 32x16
        26: (0.5, 0.5, math.log(4), math.log(2), 0.9, [0.1, 0.8, 0.2]),
        # stride 16, cell (x=1, y=2) -> index 64 + 2*4+1: centre (16, 32), size 16x48
        73: (0.0, 0.0, 0.0, math.log(3), 0.5, [0.9, 0.1, 0.1]),
        # stride 32: confident class, low objectness -> 0.2*0.9 = 0.18, filtered out
        80: (0.5, 0.5, 0.0, 0.0, 0.2, [0.9, 0.0, 0.0]),
    })
    xyxy, score, class_id = decode_yolox(output, grid, strides, 0.25)
    np.testing.assert_allclose(xyxy, [[4, 20, 36, 36], [8, 8, 24, 56]], atol=1e-4)
    np.testing.assert_allclose(score, [0.72, 0.45], rtol=1e-6)
    assert class_id.tolist() == [1, 0]
    assert (xyxy.dtype, score.dtype, class_id.dtype) == (np.float32, np.float32, np.int32)


@pytest.mark.parametrize("min_score, kept", [(0.0, 84), (0.1, 3), (0.17, 3), (0.19, 2), (0.44, 2), (0.46, 1), (0.71, 1), (0.73, 0)])
def test_decode_yolox_filters_by_objectness_times_class(min_score, kept):
    grid, strides = yolox_grid((64, 64))
    output = yolox_output(84, 3, {
        26: (0, 0, 0, 0, 0.9, [0.1, 0.8, 0.2]),   # 0.72
        73: (0, 0, 0, 0, 0.5, [0.9, 0.1, 0.1]),   # 0.45
        80: (0, 0, 0, 0, 0.2, [0.9, 0.0, 0.0]),   # 0.18
    })
    _, score, _ = decode_yolox(output, grid, strides, min_score)
    assert len(score) == kept


def test_decode_yolox_rejects_a_grid_that_does_not_fit():
    grid, strides = yolox_grid((64, 64))
    with pytest.raises(ValueError, match="anchors"):
        decode_yolox(np.zeros((1, 100, 8), np.float32), grid, strides, 0.25)


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
        xyxy([0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [1, 0, 11, 10]), [0.9, 0.8, 0.7, 0.95], [0, 0, 1, 1], 0.5,
        [3, 0], id="two classes each keep one",
    ),
]


@pytest.mark.parametrize("boxes, scores, classes, iou, kept", NMS_CASES)
def test_non_max_suppression_per_class(boxes, scores, classes, iou, kept):
    result = non_max_suppression(boxes, np.array(scores, np.float32), np.array(classes, np.int32), iou)
    assert result.dtype == np.int64
    assert result.tolist() == kept


# ---------------------------------------------------------------- the postprocess path


def bare_detector(layout: Layout, min_score: float, nms_iou: float, input_hw=(64, 64)) -> OnnxDetector:
    """An OnnxDetector without a session: only what postprocess() reads."""
    detector = OnnxDetector.__new__(OnnxDetector)
    detector.layout, detector.min_score, detector.nms_iou, detector.input_hw = layout, min_score, nms_iou, input_hw
    if layout is Layout.YOLOX:
        detector._grid, detector._strides = yolox_grid(input_hw)
    return detector


def test_confidence_filter_runs_before_nms(monkeypatch):
    """A box under min_score must not suppress (or survive) anything: it is gone before NMS."""
    from detector.detect import onnx_backend

    seen = []

    def recording_nms(boxes, scores, classes, iou):
        seen.append(scores.tolist())
        return non_max_suppression(boxes, scores, classes, iou)

    monkeypatch.setattr(onnx_backend, "non_max_suppression", recording_nms)
    output = ultralytics_output([
        (20, 20, 10, 10, [0.30]),   # under min_score 0.4, overlaps the next one completely
        (20, 20, 10, 10, [0.50]),
        (21, 20, 10, 10, [0.35]),   # under min_score
        (50, 50, 10, 10, [0.45]),
    ])
    detector = bare_detector(Layout.ULTRALYTICS, min_score=0.4, nms_iou=0.5)
    box = Letterbox(scale=1.0, pad_x=0, pad_y=0)
    detections = detector.postprocess(output, box, (64, 64, 3))
    np.testing.assert_allclose(seen, [[0.50, 0.45]])  # NMS only ever saw the two boxes >= 0.4
    np.testing.assert_allclose(detections.confidence, [0.50, 0.45])
    np.testing.assert_allclose(detections.xyxy, [[15, 15, 25, 25], [45, 45, 55, 55]])


def test_postprocess_maps_to_frame_and_clips():
    """Input pixels -> frame pixels through the letterbox, clipped to the frame."""
    output = ultralytics_output([
        (32, 32, 16, 16, [0.9, 0.0]),   # input 24..40 -> frame (x - 0) / 0.5, (y - 16) / 0.5
        (60, 20, 20, 8, [0.0, 0.8]),    # runs past the right edge of the frame
    ])
    detector = bare_detector(Layout.ULTRALYTICS, min_score=0.25, nms_iou=0.5)
    box = Letterbox(scale=0.5, pad_x=0, pad_y=16)  # a 128x64 frame centred in 64x64
    detections = detector.postprocess(output, box, (64, 128, 3))
    np.testing.assert_allclose(detections.xyxy, [[48, 16, 80, 48], [100, 0, 128, 16]])
    assert detections.class_id.tolist() == [0, 1]
    assert detections.xyxy.dtype == np.float32


def test_postprocess_yolox_end_to_end():
    output = yolox_output(84, 2, {
        26: (0.5, 0.5, math.log(4), math.log(2), 0.9, [0.0, 0.8]),  # (4, 20, 36, 36) in input pixels
        27: (0.5, 0.5, math.log(4), math.log(2), 0.9, [0.0, 0.7]),  # the same box shifted 8 px: IoU 0.6
    })
    detector = bare_detector(Layout.YOLOX, min_score=0.25, nms_iou=0.5)
    box = Letterbox(scale=0.5, pad_x=0, pad_y=0)
    detections = detector.postprocess(output, box, (128, 128, 3))
    np.testing.assert_allclose(detections.xyxy, [[8, 40, 72, 72]], atol=1e-3)
    np.testing.assert_allclose(detections.confidence, [0.72], rtol=1e-6)
    assert detections.class_id.tolist() == [1]
