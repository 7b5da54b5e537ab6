"""The ONNX Runtime backend on the shared models: layout and class names read from the model,
a names file, execution providers, and the detections it returns on a real frame."""

import logging

import av
import numpy as np
import pytest
from conftest import asset

from detector.detect.coco import COCO_NAMES
from detector.detect.layouts import Layout
from detector.detect.onnx_backend import OnnxDetector
from detector.errors import ModelError


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    with av.open(str(asset("sample_videos/clips/vtest.avi"))) as container:
        return next(container.decode(video=0)).to_ndarray(format="bgr24")


@pytest.mark.parametrize(
    "model, layout, input_hw",
    [
        ("models/yolov8n.onnx", Layout.ULTRALYTICS, (640, 640)),
        ("models/yolov8n_320.onnx", Layout.ULTRALYTICS, (320, 320)),
        ("models/yolox_nano.onnx", Layout.YOLOX, (416, 416)),
    ],
)
def test_layout_and_names_come_from_the_model(model, layout, input_hw, frame):
    detector = OnnxDetector(asset(model), min_score=0.4, nms_iou=0.5)
    assert (detector.layout, detector.input_hw) == (layout, input_hw)
    assert detector.names == list(COCO_NAMES)  # Ultralytics metadata, or COCO-80 for YOLOX
    found = detector.detect(frame)
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


def test_a_names_file_that_does_not_fit_the_model(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("garbage\nstall\n")
    with pytest.raises(ModelError, match="does not fit"):
        OnnxDetector(asset("models/yolov8n.onnx"), min_score=0.4, nms_iou=0.5, names_file=names)


def test_unavailable_providers_fall_back_or_fail_clearly(caplog):
    with caplog.at_level(logging.WARNING):
        detector = OnnxDetector(
            asset("models/yolox_nano.onnx"), min_score=0.4, nms_iou=0.5, providers=("CUDAExecutionProvider", "CPUExecutionProvider")
        )
    assert detector.session.get_providers() == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider is not available here" in caplog.text
    with pytest.raises(ModelError, match="none of the execution providers"):
        OnnxDetector(asset("models/yolox_nano.onnx"), min_score=0.4, nms_iou=0.5, providers=("NoSuchExecutionProvider",))
