"""Motion detector for motion gating (issue 11): which parts of the frame changed since the scene
was last learnt, so the model runs only on the crops that motion touches.

After Frigate's "improved" motion detector (frigate/motion/improved_motion.py), on a small grey
image (the frame's shared 320-px-wide thumbnail, grey: a few work pixels for a person far off;
under a millisecond):

- contrast stretch: the grey levels between the 4th and 96th percentile, each averaged over the
  last HISTORY frames, are stretched to 0..255. A night scene or fog uses a few grey levels; without
  it a person there changes the image by less than `threshold` and is missed. The average keeps one
  frame's content (a bus filling the view) from re-scaling the whole image;
- blur, then the absolute difference with a running average of the past frames (ALPHA): pixels
  that differ by more than `threshold` moved; dilated, so the parts of one object join;
- boxes: the outer contours of that mask whose area is at least `min_area` of the image, in frame px.

Frames come at 1-2 per second, so the average follows fast (ALPHA = 0.2): something that arrives and
stops differs by 0.8**k of its contrast k frames later: moving for a few frames, then scene.
Missing motion costs a late detection and extra motion only CPU, so the dilation grows each box.

When most of the frame changes at once (lightning, the IR cut filter, an exposure jump, a knock),
nothing can be told apart: the frame says `everywhere`, and the average and the contrast history
are learnt again from it (Frigate's "calibrating"). The same after the first frame, `reset()` or a
new frame size: there is nothing to compare with yet.
"""

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from detector.capture.thumbnail import thumbnail
from detector.config.schema import MotionConfig

HISTORY = 20  # frames the contrast-stretch percentiles are averaged over
LOW_PERCENTILE, HIGH_PERCENTILE = 4, 96
MIN_SPREAD = 8  # a flatter image (black, covered) is not stretched: it would be all noise
ALPHA = 0.2  # weight of a new frame in the running average (1-2 frames per second)
BLUR = (5, 5)
DILATE = np.ones((3, 3), np.uint8)
DILATE_ITERATIONS = 1  # joins an object's parts; two would make every rain streak's speck a box
EVERYWHERE_FRACTION = 0.5  # more of the frame changed than this: the whole scene changed


@dataclass(frozen=True)
class Motion:
    """One frame's motion. `boxes`: (k, 4) float32 xyxy in frame pixels of the moving areas,
    (0, 4) when none; the whole frame when `everywhere`. `everywhere`: the whole scene changed
    or the detector is (re)learning, every region counts as moving. `fraction`: the share of the
    frame that changed, 0..1 (1 when there was nothing to compare with)."""

    boxes: np.ndarray
    everywhere: bool
    fraction: float


NO_BOXES = np.zeros((0, 4), np.float32)


class MotionDetector:
    """Per camera, stateful; `update` once per sampled frame (BGR uint8, any size), in order."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self._average: np.ndarray | None = None  # float32 work image of the learnt scene
        self._frame_shape: tuple[int, int] | None = None
        self._contrast: deque[tuple[float, float]] = deque(maxlen=HISTORY)

    def reset(self) -> None:
        """Forget the scene (a view that came back, a new stream): the next frame is learnt."""
        self._average = None
        self._frame_shape = None
        self._contrast.clear()

    def update(self, image: np.ndarray) -> Motion:
        height, width = image.shape[:2]
        grey = _work_image(image)
        if self._frame_shape != (height, width):
            self.reset()
            self._frame_shape = (height, width)
        self._contrast.append(_percentiles(grey))
        work = self._prepare(grey)
        if self._average is None:
            return self._learn(work, 1.0)
        difference = cv2.absdiff(work, self._average)
        changed = cv2.threshold(difference, self.config.threshold, 255, cv2.THRESH_BINARY)[1].astype(np.uint8)
        fraction = cv2.countNonZero(changed) / changed.size
        if fraction > EVERYWHERE_FRACTION:
            self._contrast.clear()
            self._contrast.append(_percentiles(grey))  # the old light no longer applies
            return self._learn(self._prepare(grey), fraction)
        cv2.accumulateWeighted(work, self._average, ALPHA)
        return Motion(self._boxes(changed, width / grey.shape[1], height / grey.shape[0]), False, fraction)

    def _prepare(self, grey: np.ndarray) -> np.ndarray:
        """The stretched, blurred float32 work image."""
        low, high = np.mean(self._contrast, axis=0)
        if high - low >= MIN_SPREAD:
            gain = 255.0 / (high - low)
            grey = cv2.convertScaleAbs(grey, alpha=gain, beta=-low * gain)  # saturates: clipped to 0..255
        return cv2.GaussianBlur(grey, BLUR, 0).astype(np.float32)

    def _learn(self, work: np.ndarray, fraction: float) -> Motion:
        self._average = work
        height, width = self._frame_shape
        return Motion(np.array([[0, 0, width, height]], np.float32), True, fraction)

    def _boxes(self, changed: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
        mask = cv2.dilate(changed, DILATE, iterations=DILATE_ITERATIONS)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_area = self.config.min_area * mask.size
        rects = [cv2.boundingRect(c) for c in contours if cv2.contourArea(c) >= min_area]
        if not rects:
            return NO_BOXES
        x, y, w, h = np.array(rects, np.float32).T
        height, width = self._frame_shape
        boxes = np.stack([x * scale_x, y * scale_y, (x + w) * scale_x, (y + h) * scale_y], axis=1)
        return np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)


def _work_image(image: np.ndarray) -> np.ndarray:
    """The frame's shared thumbnail (detector/capture/thumbnail.py, 320 px wide), grey."""
    return cv2.cvtColor(thumbnail(image), cv2.COLOR_BGR2GRAY)


def _percentiles(grey: np.ndarray) -> tuple[float, float]:
    """The 4th and 96th percentile grey levels, from the histogram (np.percentile sorts: slower)."""
    cumulative = np.cumsum(cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel())
    low, high = np.searchsorted(cumulative, [grey.size * LOW_PERCENTILE / 100, grey.size * HIGH_PERCENTILE / 100])
    return float(low), float(high)
