"""Class-agnostic static new object detector, for garbage the model has no class for.

Two running-average backgrounds of the scene at different speeds (Porikli's dual background):
the short-term one absorbs anything that has stopped within a few seconds, the long-term one
only after many minutes. Pixels where the two differ while the frame agrees with the short-term
one belong to something that arrived and then stayed still: a dropped bag, a dumped box.
Moving people and traffic differ from both and are ignored. Areas where the model saw an
object in the last seconds (a person standing, a parked car) are masked: the model reports them.

The long-term model starts as the mean of the first WARMUP_S of stream, so whatever is there
from the start is scene, not new. Something that *leaves* (a person who stood at the start, a
car driving off) also makes the two models differ: a "ghost". A new object has stronger edges
on its outline in the frame than in the long-term background; a ghost the opposite, and its
area of the long-term model is healed from the short-term one at once.

Hand-written on OpenCV primitives (accumulateWeighted, connected components) because
OpenCV's MOG2/KNN subtractors expose a single background and cannot be asked "new and static".
"""

import math

import cv2
import numpy as np

from detector.config.schema import StaticObjectsConfig
from detector.detections import Detections

WORK_WIDTH = 320  # background models run on a small grey image: cheap and less noisy
WARMUP_S = 10.0  # the long-term model is the plain mean of the frames of this first stretch
OCCUPIED_S = 3.0  # a model detection masks its area for this long (covers a few missed frames)
OCCUPIED_OVERLAP = 0.3  # a blob this much inside recently occupied area is the model's object


class StaticObjectDetector:
    """`update(image, ts, model_detections) -> Detections` of static new objects (frame pixels)."""

    def __init__(self, config: StaticObjectsConfig, class_id: int) -> None:
        self.config = config
        self.class_id = class_id
        self._long: np.ndarray | None = None
        self._short: np.ndarray | None = None
        self._occupied_at: np.ndarray | None = None
        self._last_ts = 0.0
        self._frames = 0
        self._first_ts = 0.0
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def update(self, image: np.ndarray, ts: float, model_detections: Detections) -> Detections:
        height, width = image.shape[:2]
        scale = WORK_WIDTH / width
        grey = self._prepare(image, scale)
        if self._long is None or self._long.shape != grey.shape:
            self._reset(grey, ts)
            return Detections.empty()
        self._learn(grey, ts)
        self._mark_occupied(model_detections.xyxy * scale, ts)
        return self._blobs(grey, ts, scale)

    @staticmethod
    def _prepare(image: np.ndarray, scale: float) -> np.ndarray:
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (5, 5), 0).astype(np.float32)

    def _reset(self, grey: np.ndarray, ts: float) -> None:
        self._long, self._short = grey.copy(), grey.copy()
        self._occupied_at = np.full(grey.shape, -np.inf, np.float32)
        self._frames, self._first_ts, self._last_ts = 1, ts, ts

    def _learn(self, grey: np.ndarray, ts: float) -> None:
        dt = max(ts - self._last_ts, 0.0)
        self._last_ts = ts
        self._frames += 1
        short_rate = 1 - math.exp(-dt / max(self.config.short_s, 1e-3))
        if ts - self._first_ts <= WARMUP_S:
            long_rate = 1 / self._frames
        else:
            long_rate = 1 - math.exp(-dt / max(self.config.long_s, 1e-3))
        cv2.accumulateWeighted(grey, self._short, short_rate)
        cv2.accumulateWeighted(grey, self._long, long_rate)

    def _mark_occupied(self, boxes: np.ndarray, ts: float) -> None:
        for x1, y1, x2, y2 in np.round(boxes).astype(int):
            self._occupied_at[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = ts

    def _blobs(self, grey: np.ndarray, ts: float, scale: float) -> Detections:
        threshold = self.config.threshold
        changed = np.abs(self._short - self._long) > threshold
        settled = np.abs(grey - self._short) < threshold
        mask = (changed & settled).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        frame_area = grey.shape[0] * grey.shape[1]
        recent = (ts - self._occupied_at) <= OCCUPIED_S
        boxes, scores = [], []
        for label in range(1, count):
            x, y, w, h, area = stats[label]
            if not (self.config.min_area <= area / frame_area <= self.config.max_area):
                continue
            blob = labels[y : y + h, x : x + w] == label
            if recent[y : y + h, x : x + w][blob].mean() >= OCCUPIED_OVERLAP:
                continue
            if self._is_ghost(grey, blob, x, y):
                region = self._long[y : y + h, x : x + w]
                region[blob] = self._short[y : y + h, x : x + w][blob]
                continue
            boxes.append([x, y, x + w, y + h])
            scores.append(area / (w * h))  # fill ratio: compact blobs are more object-like
        if not boxes:
            return Detections.empty()
        return Detections(
            xyxy=(np.array(boxes, np.float32) / scale),
            confidence=np.array(scores, np.float32),
            class_id=np.full(len(boxes), self.class_id, np.int32),
        )

    def _is_ghost(self, grey: np.ndarray, blob: np.ndarray, x: int, y: int) -> bool:
        """Edges on the blob's outline: stronger in the long-term background than in the frame
        means something left rather than arrived."""
        outline = cv2.morphologyEx(blob.astype(np.uint8), cv2.MORPH_GRADIENT, self._kernel).astype(bool)
        h, w = blob.shape
        return _edge_strength(self._long, outline, x, y, w, h) > _edge_strength(grey, outline, x, y, w, h)


def _edge_strength(image: np.ndarray, outline: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    # a one-pixel margin so the Sobel kernel sees the blob's surroundings
    top, left = max(y - 1, 0), max(x - 1, 0)
    patch = image[top : y + h + 1, left : x + w + 1]
    magnitude = np.hypot(cv2.Sobel(patch, cv2.CV_32F, 1, 0), cv2.Sobel(patch, cv2.CV_32F, 0, 1))
    inner = magnitude[y - top : y - top + h, x - left : x - left + w]
    return float(inner[outline].mean()) if outline.any() else 0.0
