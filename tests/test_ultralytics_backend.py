"""The Ultralytics backend (.pt, optional extra) against the ONNX backend on the same weights.

Skipped unless `ultralytics` (and torch) are installed: pip install -e '.[ultralytics]'.
models/yolov8n.pt and models/yolov8n.onnx hold the same weights, so the two backends must give
the same detections on real frames: same classes, boxes within 2 px, scores within 0.01.
"""

import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("ultralytics") is not None:
    # offline, and settings.json in a temp dir rather than ~/.config (before ultralytics is imported)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))
pytest.importorskip("ultralytics")

from detector.capture import open_source  # noqa: E402
from detector.config.schema import ModelConfig  # noqa: E402
from detector.detect import open_model  # noqa: E402
from detector.errors import ModelError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PT = ROOT / "models" / "yolov8n.pt"
ONNX = ROOT / "models" / "yolov8n.onnx"
CLIP = ROOT / "sample_videos" / "clips" / "vtest.avi"

pytestmark = pytest.mark.skipif(
    not (PT.is_file() and ONNX.is_file() and CLIP.is_file()),
    reason="assets missing: run scripts/fetch_assets.py",
)

MIN_SCORE, NMS_IOU = 0.25, 0.5


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Five frames spread over vtest.avi (pedestrians, the parked van and car)."""
    return [frame.image for frame in open_source(CLIP, 0.0625).frames()][:5]


@pytest.fixture(scope="module")
def backends():
    pt = open_model(ModelConfig(path=PT), MIN_SCORE, NMS_IOU)
    onnx = open_model(ModelConfig(path=ONNX), MIN_SCORE, NMS_IOU)
    return pt, onnx


def test_opens_the_ultralytics_backend(backends):
    pt, onnx = backends
    assert type(pt).__name__ == "UltralyticsDetector"
    assert pt.path == PT and len(pt.digest) == 64
    assert pt.names == onnx.names
    assert pt.names[:3] == ["person", "bicycle", "car"]


def match(a, b) -> list[tuple[int, int]]:
    """Pairs (i in a, j in b) of the same class and the closest box, greedy by a's score."""
    pairs, used = [], set()
    for i in np.argsort(-a.confidence):
        distance = np.abs(b.xyxy - a.xyxy[i]).max(axis=1) if len(b.xyxy) else np.zeros(0)
        distance[b.class_id != a.class_id[i]] = np.inf
        distance[list(used)] = np.inf
        if len(distance) and np.isfinite(distance.min()):
            j = int(distance.argmin())
            used.add(j)
            pairs.append((int(i), j))
    return pairs


def test_same_detections_as_onnx(backends, frames):
    pt, onnx = backends
    total = 0
    for image in frames:
        a, b = onnx.detect(image), pt.detect(image)
        assert a.xyxy.dtype == b.xyxy.dtype == np.float32
        assert b.class_id.dtype == np.int32 and b.confidence.dtype == np.float32
        assert len(a.xyxy) == len(b.xyxy), "the same number of detections"
        pairs = match(a, b)
        assert len(pairs) == len(a.xyxy), "every detection has a partner of the same class"
        for i, j in pairs:
            np.testing.assert_allclose(b.xyxy[j], a.xyxy[i], atol=2.0)
            assert abs(float(b.confidence[j]) - float(a.confidence[i])) < 0.01
        total += len(a.xyxy)
    assert total >= 15, "vtest frames show several people and two vehicles"


def test_min_score_is_respected(backends, frames):
    pt, _ = backends
    strict = open_model(ModelConfig(path=PT), 0.6, NMS_IOU)
    loose = pt.detect(frames[0])
    kept = strict.detect(frames[0])
    assert (kept.confidence >= 0.6).all()
    assert len(kept.xyxy) == int((loose.confidence >= 0.6).sum())


def test_boxes_are_frame_pixels(backends, frames):
    pt, _ = backends
    height, width = frames[0].shape[:2]
    detections = pt.detect(frames[0])
    assert (detections.xyxy >= 0).all()
    assert (detections.xyxy[:, [0, 2]] <= width).all() and (detections.xyxy[:, [1, 3]] <= height).all()


def test_missing_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        open_model(ModelConfig(path=tmp_path / "absent.pt"), MIN_SCORE, NMS_IOU)


def test_not_a_checkpoint_is_a_model_error(tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"this is not a torch checkpoint")
    with pytest.raises(ModelError, match="not a loadable Ultralytics model"):
        open_model(ModelConfig(path=bogus), MIN_SCORE, NMS_IOU)


def test_detect_batch_is_detect_per_frame(backends, frames):
    """One batch of frames of different sizes gives what detect() gives frame by frame."""
    pt, _ = backends
    batch = [frames[0], frames[1][100:500, 50:700], frames[2][::2, ::2]]
    for together, image in zip(pt.detect_batch(batch), batch, strict=True):
        alone = pt.detect(image)
        assert together.class_id.tolist() == alone.class_id.tolist()
        np.testing.assert_allclose(together.xyxy, alone.xyxy, atol=1e-3)
        np.testing.assert_allclose(together.confidence, alone.confidence, atol=1e-3)
    assert pt.detect_batch([]) == []
