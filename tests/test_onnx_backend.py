"""The ONNX Runtime backend on the shared models: layout and class names read from the model,
a names file, execution providers, the detections it returns on a real frame, and batches."""

import logging

import av
import numpy as np
import pytest
from conftest import asset

from detector.detect.coco import COCO_NAMES
from detector.detect.layouts import UltralyticsCodec, YoloxCodec
from detector.detect.onnx_backend import OnnxDetector
from detector.errors import ModelError


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Frames 0, 200 and 400 of vtest.avi: walkers, the parked van and car."""
    wanted = (0, 200, 400)
    with av.open(str(asset("sample_videos/clips/vtest.avi"))) as container:
        decoded = zip(range(max(wanted) + 1), container.decode(video=0))
        return [frame.to_ndarray(format="bgr24") for index, frame in decoded if index in wanted]


@pytest.mark.parametrize(
    "model, codec, input_hw, batched",
    [
        ("models/yolov8n.onnx", UltralyticsCodec, (640, 640), False),
        ("models/yolov8n_320.onnx", UltralyticsCodec, (320, 320), False),
        # [batch, 3, height, width] -> [batch, 84, anchors]: layout from metadata, square 640 input
        ("models/yolov8n_dynamic.onnx", UltralyticsCodec, (640, 640), True),
        ("models/yolox_nano.onnx", YoloxCodec, (416, 416), False),
    ],
)
def test_layout_and_names_come_from_the_model(model, codec, input_hw, batched, frames):
    detector = OnnxDetector(asset(model), min_score=0.4, nms_iou=0.5)
    assert (type(detector.codec), detector.input_hw, detector.batched) == (codec, input_hw, batched)
    assert detector.names == list(COCO_NAMES)  # Ultralytics metadata, or COCO-80 for YOLOX
    found = detector.detect(frames[0])
    labels = [detector.names[c] for c in found.class_id]
    assert labels.count("person") >= 3 and {"car", "truck"} & set(labels)  # the walkers and the parked van
    assert (found.confidence >= 0.4).all()
    assert (found.xyxy[:, :2] >= 0).all() and (found.xyxy[:, 2] <= 768).all() and (found.xyxy[:, 3] <= 576).all()
    van = found.xyxy[[n in ("car", "truck") for n in labels]]
    assert any(abs(x1 - 652) < 8 and abs(y2 - 100) < 8 for x1, _, _, y2 in van)


def test_a_names_file_overrides_the_model(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("# my classes\n" + "\n".join(f"class-{i}" for i in range(80)) + "\n")
    detector = OnnxDetector(asset("models/yolox_nano.onnx"), min_score=0.4, nms_iou=0.5, names_file=names)
    assert detector.names[:2] == ["class-0", "class-1"] and len(detector.names) == 80


@pytest.mark.parametrize(
    "model, output",
    [
        ("models/yolov8n.onnx", "[1, 84, 8400]"),
        ("models/yolov8n_dynamic.onnx", "[1, 84, 8400]"),  # sizes from a trial run on a blank input
        ("models/yolox_nano.onnx", "[1, 3549, 85]"),
    ],
)
def test_a_names_file_that_does_not_fit_the_model(model, output, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("garbage\nstall\n")
    with pytest.raises(ModelError, match=rf"2 class names do not fit the \w+ output \{output[:-1]}\] of 80 classes"):
        OnnxDetector(asset(model), min_score=0.4, nms_iou=0.5, names_file=names)


def test_unavailable_providers_fall_back_or_fail_clearly(caplog):
    with caplog.at_level(logging.WARNING):
        detector = OnnxDetector(
            asset("models/yolox_nano.onnx"),
            min_score=0.4,
            nms_iou=0.5,
            providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
        )
    assert detector.session.get_providers() == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider is not available here" in caplog.text
    with pytest.raises(ModelError, match="none of the execution providers"):
        OnnxDetector(asset("models/yolox_nano.onnx"), min_score=0.4, nms_iou=0.5, providers=("NoSuchExecutionProvider",))


# ---------------------------------------------------------------- detect_batch


def mixed_sizes(frames: list[np.ndarray]) -> list[np.ndarray]:
    """A full frame, a crop and a half-size frame: three different letterboxes in one batch."""
    return [frames[0], frames[1][100:500, 50:700], np.ascontiguousarray(frames[2][::2, ::2])]


@pytest.mark.parametrize("batch_of", [list, mixed_sizes], ids=["three frames", "three frame sizes"])
def test_a_dynamic_batch_gives_the_detections_of_one_frame_at_a_time(batch_of, frames):
    """yolov8n_dynamic.onnx runs the list as one batch; yolov8n.onnx (the same weights, a fixed
    batch of 1) frame by frame: the same boxes, scores and classes."""
    batched = OnnxDetector(asset("models/yolov8n_dynamic.onnx"), min_score=0.25, nms_iou=0.5)
    single = OnnxDetector(asset("models/yolov8n.onnx"), min_score=0.25, nms_iou=0.5)
    images = batch_of(frames)
    together = batched.detect_batch(images)
    assert len(together) == len(images)
    for found, image in zip(together, images):
        alone = single.detect(image)
        assert len(found) == len(alone) >= 3
        assert found.class_id.tolist() == alone.class_id.tolist()
        np.testing.assert_allclose(found.xyxy, alone.xyxy, atol=1e-3)
        np.testing.assert_allclose(found.confidence, alone.confidence, atol=1e-3)


@pytest.mark.parametrize("model", ["models/yolov8n_320.onnx", "models/yolox_nano.onnx"])
def test_a_fixed_batch_of_one_runs_frame_by_frame(model, frames):
    detector = OnnxDetector(asset(model), min_score=0.25, nms_iou=0.5)
    images = mixed_sizes(frames)
    blob, _ = detector.codec.preprocess(images)
    with pytest.raises(Exception, match="index: 0 Got: 3 Expected: 1"):  # the model refuses a batch of 3
        detector.session.run(None, {detector.input_name: blob})
    for found, image in zip(detector.detect_batch(images), images, strict=True):
        alone = detector.detect(image)
        assert len(found) >= 3
        assert (found.xyxy.tobytes(), found.confidence.tobytes(), found.class_id.tobytes()) == (
            alone.xyxy.tobytes(),
            alone.confidence.tobytes(),
            alone.class_id.tobytes(),
        )


@pytest.mark.parametrize("model", ["models/yolov8n_dynamic.onnx", "models/yolox_nano.onnx"])
def test_an_empty_batch_gives_no_detections(model):
    assert OnnxDetector(asset(model), min_score=0.25, nms_iou=0.5).detect_batch([]) == []
