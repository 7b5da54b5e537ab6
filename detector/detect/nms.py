"""Per-class non-maximum suppression for the layouts whose graph does not do it."""

import cv2
import numpy as np


def non_max_suppression(xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by per-class NMS (OpenCV's batched NMS), best score first."""
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), class_id.tolist(), 0.0, iou)
    return np.asarray(kept, np.int64).reshape(-1)
