"""What a stationary object looks like, to tell it from another object that takes its place.

A parked car that leaves and another that parks on the same spot give the same boxes; only the
pixels tell them apart. A signature per box is taken in the detect stage (where the frame is, so
the detection cache keeps it and a rules-only replay judges the same):

- **structure**: the box grown by MARGIN on each side, shrunk to OUTER x OUTER grey pixels.
  Compared by normalised cross-correlation (cv2.matchTemplate, TM_CCOEFF_NORMED) of one's centre
  searched in the other: gain and offset (a cloud, an exposure jump, night) leave it, a box that
  jittered by a tenth of its size is found at a shifted place, another object's shape does not
  correlate.
- **colour**: the box's mean chroma (Lab a*, b*): brightness-free, tells a white van from a red one
  of the same shape. NaN in a monochrome frame (an IR camera at night): a colour frame and a
  monochrome one are compared by structure only.

Objects of the same shape and colour (two white vans of one model) are not told apart: the check
errs on the side of "the same object", so a nuisance never restarts a dwell.
"""

import cv2
import numpy as np

OUTER = 16  # px of the grown box's thumbnail
MARGIN = 0.2  # of the box's size, on each side: room for the search
INNER = 10  # px of the centre searched in the other thumbnail (the box itself, about)
SAME_STRUCTURE = 0.6  # best correlation below this: another object (measured: tests/test_appearance.py)
SAME_COLOUR = 12.0  # distance of mean chroma (a*, b* on OpenCV's 8-bit Lab scale) above this: another
MONOCHROME = 2.0  # mean |B - G| + |G - R| of the frame below this: no colour (an IR camera)
SIZE = OUTER * OUTER + 2  # floats per signature: the thumbnail, then a*, b*


def signatures(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """(n, SIZE) float32: per box, its grown grey thumbnail (row-major) then its mean chroma."""
    out = np.zeros((len(xyxy), SIZE), np.float32)
    if not len(xyxy):
        return out
    sample = image[::8, ::8].astype(np.int16)
    monochrome = float(np.abs(np.diff(sample, axis=2)).mean()) * 2 < MONOCHROME
    boxes = np.asarray(xyxy, np.float32)
    margin = MARGIN * (boxes[:, 2:] - boxes[:, :2])
    grown = _crops(image, np.concatenate([boxes[:, :2] - margin, boxes[:, 2:] + margin], axis=1))
    for i, (x1, y1, x2, y2) in enumerate(grown):
        thumb = cv2.resize(image[y1:y2, x1:x2], (OUTER, OUTER), interpolation=cv2.INTER_AREA)
        out[i, :-2] = cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY).ravel()
    if monochrome:
        out[:, -2:] = np.nan
        return out
    for i, (x1, y1, x2, y2) in enumerate(_crops(image, boxes)):
        box = cv2.resize(image[y1:y2, x1:x2], (8, 8), interpolation=cv2.INTER_AREA)
        out[i, -2:] = cv2.cvtColor(box, cv2.COLOR_BGR2LAB).reshape(-1, 3)[:, 1:].astype(np.float32).mean(axis=0) - 128
    return out


def _crops(image: np.ndarray, boxes: np.ndarray) -> list[list[int]]:
    """Each box's pixel bounds in the frame, at least one pixel wide and high (all boxes at
    once: per box, NumPy's scalar calls cost more than the crop)."""
    height, width = image.shape[:2]
    left = np.clip(np.rint(boxes[:, 0]), 0, width - 1)
    top = np.clip(np.rint(boxes[:, 1]), 0, height - 1)
    right = np.clip(np.rint(boxes[:, 2]), left + 1, width)
    bottom = np.clip(np.rint(boxes[:, 3]), top + 1, height)
    return np.stack([left, top, right, bottom], axis=1).astype(int).tolist()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Best normalised cross-correlation of either's centre searched in the other (1: same)."""
    first, second = a[:-2].reshape(OUTER, OUTER), b[:-2].reshape(OUTER, OUTER)
    edge = (OUTER - INNER) // 2
    best = -1.0
    for template, image in ((first, second), (second, first)):
        centre = np.ascontiguousarray(template[edge : edge + INNER, edge : edge + INNER])
        if centre.std() < 1e-3:  # a flat patch (covered, saturated) correlates with nothing
            continue
        best = max(best, float(cv2.matchTemplate(image, centre, cv2.TM_CCOEFF_NORMED).max()))
    return best


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """NaN when either was taken in a monochrome frame."""
    return float(np.linalg.norm(a[-2:] - b[-2:]))


def same_object(a: np.ndarray, b: np.ndarray) -> bool:
    """Signatures of boxes at one place at two times: the same object (or cannot tell)?"""
    if correlation(a, b) < SAME_STRUCTURE:
        return False
    distance = colour_distance(a, b)
    return bool(np.isnan(distance) or distance <= SAME_COLOUR)
