"""Ultralytics backend for `.pt` models (optional extra: `pip install detector[ultralytics]`)."""

import os
from pathlib import Path

import numpy as np

from detector.detect.base import Detector, file_digest
from detector.detections import Detections
from detector.errors import ModelError


class UltralyticsDetector(Detector):
    def __init__(self, path: Path, *, min_score: float, nms_iou: float, threads: int = 1) -> None:
        # Never reach for the hub, fonts or settings checks at run time.
        os.environ.setdefault("YOLO_OFFLINE", "1")
        try:
            import torch
            from ultralytics import YOLO
        except ImportError:
            raise ModelError(f"{path}: .pt models need the optional extra: pip install 'detector[ultralytics]'") from None
        if not Path(path).is_file():
            raise ModelError(f"model file not found: {path}")
        torch.set_num_threads(threads)
        try:
            self.model = YOLO(str(path), task="detect")
        except Exception as exc:  # torch.load and ultralytics raise many unrelated types
            raise ModelError(f"{path}: not a loadable Ultralytics model: {str(exc)[:200]}") from None
        self.path = Path(path)
        self.digest = file_digest(self.path)
        self.names = [self.model.names[i] for i in sorted(self.model.names)]
        self.min_score, self.nms_iou = min_score, nms_iou

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """The frames as one batch (Ultralytics batches a list), each letterboxed on its own."""
        if not images:
            return []
        # rect=False: letterbox to the square input as the ONNX export sees it. Ultralytics'
        # predict() defaults to rect=True for .pt models (a 768x576 frame becomes 640x480, not
        # 640x640), which shifts scores by up to ~0.07 and boxes by ~1 px against the same
        # weights in ONNX; with rect=False both backends give identical detections.
        results = self.model.predict(images, conf=self.min_score, iou=self.nms_iou, rect=False, verbose=False)
        return [_detections(result.boxes) for result in results]


def _detections(boxes) -> Detections:
    """Ultralytics `Boxes` (torch tensors, frame pixels) -> `Detections`."""
    return Detections(
        xyxy=boxes.xyxy.cpu().numpy().astype(np.float32),
        confidence=boxes.conf.cpu().numpy().astype(np.float32),
        class_id=boxes.cls.cpu().numpy().astype(np.int32),
    )
