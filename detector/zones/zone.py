"""A zone of one camera: its normalised polygon placed on frames of any resolution."""

import cv2
import numpy as np

from detector.config.schema import ZoneConfig
from detector.zones.geometry import Anchor, anchor_points


class Zone:
    """Tests detections against the polygon with the zone's anchor mode.

    The pixel polygon (and, for the overlap mode, an integral image of its mask) is computed
    per frame size, so a change of stream resolution only changes the cache.
    """

    def __init__(self, config: ZoneConfig) -> None:
        self.id = config.id
        self.anchor = config.anchor
        self.overlap_min = config.overlap_min
        self.normalised = np.array(config.polygon, np.float32)
        self.normalised.flags.writeable = False  # shared by every snapshot and event of the zone
        self._size: tuple[int, int] | None = None
        self._polygon_px = self.normalised
        self._integral: np.ndarray | None = None

    def polygon_px(self, width: int, height: int) -> np.ndarray:
        if self._size != (width, height):
            self._size = (width, height)
            self._polygon_px = self.normalised * np.array([width, height], np.float32)
            self._integral = None
        return self._polygon_px

    def contains(self, xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        """(n, 4) pixel boxes -> (n,) bool: the box counts as in the zone."""
        polygon = self.polygon_px(width, height)
        if len(xyxy) == 0:
            return np.zeros(0, bool)
        if self.anchor is Anchor.OVERLAP:
            return self._overlap(xyxy, width, height) >= self.overlap_min
        return points_in_polygon(anchor_points(xyxy, self.anchor), polygon)

    def _overlap(self, xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        """Fraction of each box's pixels inside the polygon, O(1) per box via an integral image."""
        if self._integral is None:
            mask = np.zeros((height, width), np.uint8)
            cv2.fillPoly(mask, [np.round(self._polygon_px).astype(np.int32)], 1)
            self._integral = cv2.integral(mask)
        boxes = np.round(xyxy).astype(np.int64)
        x1, x2 = np.clip(boxes[:, 0], 0, width), np.clip(boxes[:, 2], 0, width)
        y1, y2 = np.clip(boxes[:, 1], 0, height), np.clip(boxes[:, 3], 0, height)
        s = self._integral
        inside = s[y2, x2] - s[y1, x2] - s[y2, x1] + s[y1, x1]
        area = np.maximum((x2 - x1) * (y2 - y1), 1)
        return inside / area


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(n, 2) points, (k, 2) polygon -> (n,) bool; points on the boundary are inside."""
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0 for x, y in points], bool)
