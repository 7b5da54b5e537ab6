"""Pure geometry on pixel boxes, in numpy only (the config imports it through the rule registry,
and the supervisor reads the config: no OpenCV here)."""

from enum import StrEnum

import numpy as np


class Anchor(StrEnum):
    """The point of a box tested against a zone polygon (or the box's overlap with it)."""

    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"
    OVERLAP = "overlap"


def anchor_points(xyxy: np.ndarray, anchor: Anchor) -> np.ndarray:
    """(n, 4) boxes -> (n, 2) points tested against a zone.

    BOTTOM_CENTER is the ground contact point of an upright object (a vehicle's wheels, a
    person's feet): a car whose roof overlaps a kerbside zone is not parked in it.
    """
    x = (xyxy[:, 0] + xyxy[:, 2]) / 2
    if anchor is Anchor.BOTTOM_CENTER:
        y = xyxy[:, 3]
    else:
        y = (xyxy[:, 1] + xyxy[:, 3]) / 2
    return np.stack([x, y], axis=1).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4), (m, 4) -> (n, m) intersection over union."""
    inter = _intersection(a, b)
    area_a = _area(a)[:, None]
    area_b = _area(b)[None, :]
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_containment(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """(n, 4), (m, 4) -> (n, m) fraction of each inner box's area that lies in each outer box."""
    inter = _intersection(inner, outer)
    area = _area(inner)[:, None]
    return np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    size = np.clip(bottom_right - top_left, 0, None)
    return (size[..., 0] * size[..., 1]).astype(np.float64)


def _area(boxes: np.ndarray) -> np.ndarray:
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).astype(np.float64)


def box_size(xyxy: np.ndarray) -> np.ndarray:
    """(n, 4) -> (n,) geometric mean of width and height: the scale drift is measured against."""
    return np.sqrt(np.clip(_area(xyxy), 1e-6, None))


def box_centres(xyxy: np.ndarray) -> np.ndarray:
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2], axis=1)
