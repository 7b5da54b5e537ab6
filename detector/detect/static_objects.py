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

A cloud, dusk, an auto-exposure jump or a building's shadow changes the light, not the scene:
the short-term model follows it within seconds and would differ from the long-term one almost
everywhere. So the long-term model is *relit* before the comparison: multiplied by the local
gain short/long, taken as the median over a window much larger than any object (a median
keeps a shadow's edge sharp and ignores a bag or a person, which fill under half the window).
A bag dropped during the cloud is no gain of its surroundings and is still found. What the
gain cannot explain and still covers a large part of the frame at once (a camera knocked or
switched to infrared) is a change of scene: nothing is reported and both models are learnt
again, as Frigate recalibrates its motion background.

Fog, an exposure jump or the IR switch wash out what was always there (the litter on the lawn, a
kerb stone): it looks gone, a ghost, and is healed out of the long-term model; when the view
clears it would look new. So the detector keeps snapshots of its long-term model (one every
SNAPSHOT_S, and the one from before each scene change; the last SCENES_KEPT): a blob whose patch
of the frame is found in a snapshot by normalised cross-correlation (gain, offset and a knock's
few pixels do not change it), with about the contrast it has now, was there before: passed over,
and learnt back. A bag dropped during the fog is in no snapshot and is reported.

A camera knocked by a few pixels (below a moved view, detector/view.py) shifts every edge of the
scene: each would be a new object. The frame's shift against the short-term model is the knock:
measured by phase correlation (under half a millisecond here, blind to gain and offset), and
both models are moved onto the new view at once.

Every blob passed over is kept with its reason on `last` (`StaticObjectReport`) for explain.

Hand-written on OpenCV primitives (accumulateWeighted, medianBlur, connected components)
because OpenCV's MOG2/KNN subtractors expose a single background and cannot be asked "new and
static".
"""

import math
from dataclasses import dataclass, replace
from enum import StrEnum

import cv2
import numpy as np

from detector.capture.thumbnail import WIDTH, thumbnail
from detector.config.schema import StaticObjectsConfig
from detector.detections import Detections

WARMUP_S = 10.0  # the long-term model is the plain mean of the frames of this first stretch
OCCUPIED_S = 3.0  # a model detection masks its area for this long (covers a few missed frames)
OCCUPIED_OVERLAP = 0.3  # a blob this much inside recently occupied area is the model's object
# Lighting gain: the median over a window of GAIN_WINDOW px of a GAIN_SCALE-times smaller image
# (41 px there = 82 px here, a quarter of the width: a blob of max_area fills under half of it)
GAIN_SCALE = 2
GAIN_WINDOW = 41
GAIN_STEPS = 100  # the gain is quantised to 1 % steps (medianBlur takes 8-bit images)
GAIN_DARK = 8.0  # added to both sides of the ratio: near-black pixels carry no gain
SCENE_CHANGE_FRACTION = 0.25  # more of the frame than this unexplained by lighting: a new scene
SCENES_KEPT = 5  # snapshots of the long-term model: five minutes of the scene's past, at least
SNAPSHOT_S = 60.0
KNOWN_MATCH = 0.7  # correlation of a blob's patch with a kept scene at or above this: seen before
KNOWN_SEARCH = 3  # work pixels the patch is searched either way (a knock between the two)
KNOWN_CONTRAST = 0.5  # and its contrast there within this factor of the frame's
# Registration: the frame shifted against the short-term model by at least REGISTER_PX work
# pixels (5 frame pixels at 768 wide), found with a phase-correlation peak of at least
# REGISTER_RESPONSE (the same view with people moving scores 0.3-1, noise under 0.05)
REGISTER_PX = 2
REGISTER_RESPONSE = 0.15


class Rejection(StrEnum):
    """Why a blob of the background difference was not reported."""

    LIGHTING = "lighting"  # explained by a change of the light (cloud, exposure, shadow)
    SCENE_CHANGE = "scene change"  # a large part of the frame changed at once
    TOO_LARGE = "too large"  # over static_objects.max_area
    OCCUPIED = "occupied"  # where the model saw an object in the last OCCUPIED_S
    GHOST = "ghost"  # something that left, not arrived
    KNOWN = "known"  # in a snapshot of the scene's past (washed out by fog, exposure, IR): not new


@dataclass(frozen=True)
class RejectedBlob:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    reason: Rejection


@dataclass(frozen=True)
class StaticObjectReport:
    """One frame of the detector, for explain: the light and the blobs passed over."""

    brightness: float  # the scene's light against the long-term background (median gain; 1 = same)
    changed: float  # fraction of the frame where the short-term and relit long-term backgrounds differ
    moving: float  # fraction of the frame that differs from the (relit) short-term background
    rejected: tuple[RejectedBlob, ...] = ()

    def counts(self) -> dict[Rejection, int]:
        counts: dict[Rejection, int] = {}
        for blob in self.rejected:
            counts[blob.reason] = counts.get(blob.reason, 0) + 1
        return counts


class StaticObjectDetector:
    """`update(image, ts, model_detections) -> Detections` of static new objects (frame pixels);
    `last`: the report of the latest frame (None before the first compared frame)."""

    def __init__(self, config: StaticObjectsConfig, class_id: int) -> None:
        self.config = config
        self.class_id = class_id
        self.last: StaticObjectReport | None = None
        self._long: np.ndarray | None = None
        self._short: np.ndarray | None = None
        self._occupied_at: np.ndarray | None = None
        self._last_ts = 0.0
        self._frames = 0
        self._first_ts = 0.0
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self._window: np.ndarray | None = None  # phase correlation's Hanning window
        self._scenes: list[np.ndarray] = []  # snapshots of the long-term model, oldest first
        self._snapshot_ts = -math.inf

    def update(self, image: np.ndarray, ts: float, model_detections: Detections) -> Detections:
        height, width = image.shape[:2]
        scale = WIDTH / width  # the thumbnail's
        grey = self._prepare(image)
        if self._long is None or self._long.shape != grey.shape:
            self._occupied_at = np.full(grey.shape, -np.inf, np.float32)
            self._reset(grey, ts)
            return Detections.empty()
        self._register(grey)
        self._learn(grey, ts)
        if ts - self._snapshot_ts >= SNAPSHOT_S and ts - self._first_ts > WARMUP_S:
            self._keep_scene(ts)
        self._mark_occupied(model_detections.xyxy * scale, ts)
        return self._blobs(grey, ts, scale)

    @staticmethod
    def _prepare(image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(thumbnail(image), cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (5, 5), 0).astype(np.float32)

    def _reset(self, grey: np.ndarray, ts: float) -> None:
        self._long, self._short = grey.copy(), grey.copy()
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

    def _register(self, grey: np.ndarray) -> None:
        """Move both models onto the frame's view when it shifted by whole pixels (a knock); the
        strip a shift uncovers is taken from the frame. Whole pixels: no interpolation blurs the
        models, and the sway of a pole (a pixel or so here) never triggers it."""
        height, width = grey.shape
        if self._window is None or self._window.shape != grey.shape:
            self._window = cv2.createHanningWindow((width, height), cv2.CV_32F)
        # windowed copies: OpenCV 5.0's phaseCorrelate writes its window into the arrays it is given
        (dx, dy), response = cv2.phaseCorrelate(self._short * self._window, grey * self._window)
        dx, dy = round(dx), round(dy)
        if response < REGISTER_RESPONSE or max(abs(dx), abs(dy)) < REGISTER_PX:
            return
        shift = np.float32([[1, 0, dx], [0, 1, dy]])

        def moved(model: np.ndarray) -> np.ndarray:
            out = grey.copy()
            return cv2.warpAffine(model, shift, (width, height), out, cv2.INTER_NEAREST, cv2.BORDER_TRANSPARENT)

        self._long, self._short = moved(self._long), moved(self._short)
        self._scenes = [moved(scene) for scene in self._scenes]

    def _mark_occupied(self, boxes: np.ndarray, ts: float) -> None:
        for x1, y1, x2, y2 in np.round(boxes).astype(int):
            self._occupied_at[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = ts

    def _blobs(self, grey: np.ndarray, ts: float, scale: float) -> Detections:
        threshold = self.config.threshold
        gain = _lighting_gain(self._short, self._long)
        relit = self._long * gain
        # the frame against the short-term model lit as the frame is: a cloud still coming over
        # is no motion (one gain for the frame: the short-term model follows local light soon)
        settled = np.abs(grey - self._short * _global_gain(grey, self._short)) < threshold
        changed = np.abs(self._short - relit) > threshold
        frame_area = grey.size
        report = StaticObjectReport(float(np.median(gain)), float(changed.mean()), 1 - float(settled.mean()))
        if max(report.changed, report.moving) > SCENE_CHANGE_FRACTION:
            # the frame itself jumps first (a knock, a flash); once the short-term model has
            # followed, re-learn both models: the old long-term one shows another scene
            rejected = [(box, Rejection.SCENE_CHANGE) for box, _, _ in self._components(changed, frame_area)]
            if report.changed > SCENE_CHANGE_FRACTION:
                self._keep_scene(ts)
                self._reset(grey, ts)
            return self._result(report, rejected, [], scale)
        # blobs only the unlit comparison sees: what the light explains, reported as such
        unlit = (np.abs(self._short - self._long) > threshold) & settled & ~changed
        rejected = [(box, Rejection.LIGHTING) for box, _, _ in self._components(unlit, frame_area)]
        recent = (ts - self._occupied_at) <= OCCUPIED_S
        found = []
        for box, blob, area in self._components(changed & settled, frame_area):
            x, y, x2, y2 = box
            w, h = x2 - x, y2 - y
            if area > self.config.max_area:
                rejected.append((box, Rejection.TOO_LARGE))
            elif recent[y : y + h, x : x + w][blob].mean() >= OCCUPIED_OVERLAP:
                rejected.append((box, Rejection.OCCUPIED))
            elif self._is_ghost(grey, relit, blob, x, y):
                self._heal(blob, x, y, gain)
                rejected.append((box, Rejection.GHOST))
            elif self._was_there(grey, box):
                self._heal(blob, x, y, gain)
                rejected.append((box, Rejection.KNOWN))
            else:
                found.append((box, area * frame_area / (w * h)))  # fill ratio: compact blobs are more object-like
        return self._result(report, rejected, found, scale)

    def _keep_scene(self, ts: float) -> None:
        self._scenes = [*self._scenes, self._long.copy()][-SCENES_KEPT:]
        self._snapshot_ts = ts

    def _heal(self, blob: np.ndarray, x: int, y: int, gain: np.ndarray) -> None:
        """Learn the blob's area of the short-term model into the long-term one at once."""
        h, w = blob.shape
        window = np.s_[y : y + h, x : x + w]
        self._long[window][blob] = (self._short[window] / gain[window])[blob]

    def _was_there(self, grey: np.ndarray, box: tuple[int, int, int, int]) -> bool:
        """The blob's patch of the frame (its box and a margin) is found in a kept scene."""
        if not self._scenes:
            return False
        x1, y1, x2, y2 = box
        margin = max(2, (x2 - x1 + y2 - y1) // 8)
        height, width = grey.shape
        top, left = max(y1 - margin, KNOWN_SEARCH), max(x1 - margin, KNOWN_SEARCH)
        bottom, right = min(y2 + margin, height - KNOWN_SEARCH), min(x2 + margin, width - KNOWN_SEARCH)
        patch = grey[top:bottom, left:right]
        if patch.size == 0 or patch.std() < 1.0:  # flat: nothing to recognise
            return False
        h, w = patch.shape
        for scene in self._scenes:
            area = scene[top - KNOWN_SEARCH : bottom + KNOWN_SEARCH, left - KNOWN_SEARCH : right + KNOWN_SEARCH]
            _, match, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(area, patch, cv2.TM_CCOEFF_NORMED))
            # as strong there as now: a faint trace (a bag half-learnt in the warm-up) is not it
            contrast = area[y : y + h, x : x + w].std() / patch.std()
            if match >= KNOWN_MATCH and KNOWN_CONTRAST <= contrast <= 1 / KNOWN_CONTRAST:
                return True
        return False

    def _components(self, mask: np.ndarray, frame_area: int):
        """(x1, y1, x2, y2), the blob's mask in that box, its area as a fraction of the frame: each
        blob of `mask` after a morphological clean-up, from min_area up."""
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, self._kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel)
        if not cv2.countNonZero(mask):  # the usual case; labelling an empty mask costs as much as a full one
            return
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for label in range(1, count):
            x, y, w, h, area = stats[label]
            if area / frame_area >= self.config.min_area:
                yield (x, y, x + w, y + h), labels[y : y + h, x : x + w] == label, area / frame_area

    def _result(self, report: StaticObjectReport, rejected: list, found: list, scale: float) -> Detections:
        self.last = replace(
            report,
            rejected=tuple(RejectedBlob(tuple(float(v) / scale for v in box), reason) for box, reason in rejected),
        )
        if not found:
            return Detections.empty()
        return Detections(
            xyxy=np.array([box for box, _ in found], np.float32) / scale,
            confidence=np.array([score for _, score in found], np.float32),
            class_id=np.full(len(found), self.class_id, np.int32),
        )

    def _is_ghost(self, grey: np.ndarray, relit: np.ndarray, blob: np.ndarray, x: int, y: int) -> bool:
        """Edges on the blob's outline: stronger in the (relit) long-term background than in the
        frame means something left rather than arrived."""
        outline = cv2.morphologyEx(blob.astype(np.uint8), cv2.MORPH_GRADIENT, self._kernel).astype(bool)
        h, w = blob.shape
        return _edge_strength(relit, outline, x, y, w, h) > _edge_strength(grey, outline, x, y, w, h)


def _lighting_gain(lit: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-pixel gain of the light, lit / reference: the median ratio over a GAIN_WINDOW window
    (edge-preserving, and blind to anything filling under half of it), same shape as the input."""
    size = (lit.shape[1] // GAIN_SCALE, lit.shape[0] // GAIN_SCALE)
    small_lit = cv2.resize(lit, size, interpolation=cv2.INTER_AREA)
    small_reference = cv2.resize(reference, size, interpolation=cv2.INTER_AREA)
    ratio = (small_lit + GAIN_DARK) / (small_reference + GAIN_DARK)
    steps = np.clip(ratio * GAIN_STEPS, 0, 255).astype(np.uint8)
    median = cv2.medianBlur(steps, GAIN_WINDOW).astype(np.float32) / GAIN_STEPS
    return cv2.resize(median, (lit.shape[1], lit.shape[0]), interpolation=cv2.INTER_LINEAR)


def _global_gain(lit: np.ndarray, reference: np.ndarray) -> float:
    """The median of lit / reference, on a GAIN_SCALE-times smaller image."""
    size = (lit.shape[1] // GAIN_SCALE, lit.shape[0] // GAIN_SCALE)
    small_lit = cv2.resize(lit, size, interpolation=cv2.INTER_AREA)
    small_reference = cv2.resize(reference, size, interpolation=cv2.INTER_AREA)
    return float(np.median((small_lit + GAIN_DARK) / (small_reference + GAIN_DARK)))


def _edge_strength(image: np.ndarray, outline: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    # a one-pixel margin so the Sobel kernel sees the blob's surroundings
    top, left = max(y - 1, 0), max(x - 1, 0)
    patch = image[top : y + h + 1, left : x + w + 1]
    magnitude = np.hypot(cv2.Sobel(patch, cv2.CV_32F, 1, 0), cv2.Sobel(patch, cv2.CV_32F, 0, 1))
    inner = magnitude[y - top : y - top + h, x - left : x - left + w]
    return float(inner[outline].mean()) if outline.any() else 0.0
