"""One small copy of each frame, shared by the stages that work on a small image: the view check
(detector/view.py), motion gating (detector/detect/motion.py) and the static-object detector
(detector/detect/static_objects.py). Shrinking reads the whole frame, the most expensive part of
each of them; done once per frame, not three times (about 1.5 ms a 720p frame here)."""

import cv2
import numpy as np

WIDTH = 320  # what the background models need; the view check and motion take it as it is or halved

_last: tuple[np.ndarray, np.ndarray] | None = None  # (the frame, its thumbnail): one frame at a time


def thumbnail(image: np.ndarray) -> np.ndarray:
    """`image` (BGR) shrunk to WIDTH px wide, aspect kept, by area averaging; read-only. The same
    frame object again gives the same copy (a stage after another pays nothing)."""
    global _last
    if _last is None or _last[0] is not image:
        height, width = image.shape[:2]
        small = image
        while small.shape[1] >= 2 * WIDTH:  # halving is INTER_AREA's fast path: 1280 -> 320 in 0.2 ms, not 0.7
            small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
        small = cv2.resize(small, (WIDTH, max(1, round(height * WIDTH / width))), interpolation=cv2.INTER_AREA)
        small.flags.writeable = False
        _last = (image, small)
    return _last[1]
