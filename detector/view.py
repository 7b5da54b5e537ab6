"""Is the camera still looking at the scene its zones were drawn on? A moved or blocked view.

`ViewMonitor.update(image, ts) -> ViewState` runs first on every frame, on a small grey image
(WORK_WIDTH px wide, well under a millisecond). It compares the frame with a *reference* of the
view: the first frame with contrast, then a slow running average (`adapt_s`) of the frames that
match it, so lighting drift over the day and a knock of a few pixels are re-registered into it.

- **view_blocked** (covered, turned to a wall, defocused, sprayed): the grey level's standard
  deviation is below `min_contrast`, or the sharpness (std of the Laplacian over the grey std:
  it does not change with gain or offset, so a cloud or an exposure jump keeps it) falls below
  `min_sharpness` times the reference's.
- **view_changed** (a PTZ at another preset, a camera turned or knocked away): the centre of the
  reference, searched in the frame by normalised cross-correlation of their edges and texture
  (cv2.matchTemplate; gain and offset do not change it, so lighting is not a moved view), is not
  found (best match below `min_match`) or is found shifted by more than `max_shift` of the width.
  The sway of a pole (a few pixels back and forth) stays far below it. Phase correlation was
  tried first: on a compressed, low-texture street its peak is too weak to tell views apart.

A state holds until the frames have said otherwise for `hold_s` (hysteresis: a bus filling the
view for a second does not pause the camera). With `resume: operator` a paused view stays paused
when the frames match again (`back`) until `confirm()`: an operator says the view is back, or that
the new view is the right one (`accept_new_view`: it becomes the reference). While not ok, the pipeline neither runs the model
nor judges (detector/worker.py); `JudgedClock` cuts the paused stretch out of the time the tracker
and rules run on, as StreamClock cuts a stream gap, so no dwell, grace or clear timer passes.
"""

import math
from dataclasses import dataclass, replace
from enum import StrEnum

import cv2
import numpy as np

from detector.capture.thumbnail import thumbnail
from detector.config.schema import ViewConfig

WORK_WIDTH = 160  # enough for a shift of a few % of the width and for the blur measure; cheap
SEARCH_MARGIN = 0.15  # the reference's centre is searched this far (fraction of the size) either way


class ViewStatus(StrEnum):
    OK = "ok"
    CHANGED = "view_changed"
    BLOCKED = "view_blocked"


@dataclass(frozen=True)
class ViewMeasure:
    """One frame's figures against the reference (what the thresholds are compared with)."""

    contrast: float  # std of the grey levels, 0..255
    sharpness: float  # std(Laplacian) / std(grey), as a fraction of the reference's
    match: float  # best normalised cross-correlation with the reference's centre (1: the same)
    shift: float  # the view's shift, as a fraction of the width


@dataclass(frozen=True)
class ViewState:
    status: ViewStatus
    since_s: float  # stream time the frames began to say so (the state holds hold_s later)
    reason: str = ""  # why the view is not ok, from the frame that began it
    measure: ViewMeasure | None = None  # the frame's figures (None: a state not from a frame)
    awaiting_operator: bool = False  # paused until an operator confirms (resume: operator)
    back: bool = False  # awaiting an operator, and the frames match the reference again

    @property
    def paused(self) -> bool:
        return self.status is not ViewStatus.OK


OK_FROM_START = ViewState(ViewStatus.OK, 0.0)


class ViewMonitor:
    """Per camera, stateful; `update` once per sampled frame, in stream-time order."""

    def __init__(self, config: ViewConfig) -> None:
        self.config = config
        self.state = OK_FROM_START  # what the pipeline is told
        self._seen = OK_FROM_START  # what the frames say (they differ only while awaiting an operator)
        self._reference: np.ndarray | None = None
        self._reference_sharpness = 0.0
        self._suspect: ViewState | None = None  # a different status the frames began to report
        self._last_ts = 0.0

    def update(self, image: np.ndarray, ts: float) -> ViewState:
        grey = _small_grey(image)
        if self._reference is None and grey.std() >= self.config.min_contrast:
            self._learn(grey)  # the first frame with contrast is the reference
        measure = self._measure(grey)
        status, reason = self._classify(measure)
        if status is ViewStatus.OK:
            self._adapt(grey, measure, ts)
        self._last_ts = ts
        self._hold(status, reason, ts)
        self.state = self._reported()
        return replace(self.state, measure=measure)

    def confirm(self, accept_new_view: bool = False) -> bool:
        """An operator's word; True if the view resumes. Plain: the view is back (refused while
        the frames still differ from the reference); `accept_new_view`: the view as it is now is
        the right one, the next frame with contrast becomes the reference."""
        if accept_new_view:
            self._reference = None
            self._seen = ViewState(ViewStatus.OK, self._last_ts)
        elif self._seen.paused:
            return False
        self._suspect = None
        self.state = self._seen
        return True

    def _learn(self, grey: np.ndarray) -> None:
        self._reference = grey
        self._reference_sharpness = _sharpness(grey)

    def _measure(self, grey: np.ndarray) -> ViewMeasure:
        contrast = float(grey.std())
        if self._reference is None:  # blocked from the start: nothing to compare with yet
            return ViewMeasure(contrast, 1.0, 1.0, 0.0)
        match, shift = _locate(self._reference, grey)
        sharpness = _sharpness(grey) / max(self._reference_sharpness, 1e-6)
        return ViewMeasure(contrast, sharpness, match, shift)

    def _classify(self, m: ViewMeasure) -> tuple[ViewStatus, str]:
        c = self.config
        if m.contrast < c.min_contrast:
            return ViewStatus.BLOCKED, f"no contrast (grey std {m.contrast:.1f} < {c.min_contrast:g}): covered or dark"
        if m.sharpness < c.min_sharpness:
            return ViewStatus.BLOCKED, f"blurred (sharpness {m.sharpness:.2f} of the reference < {c.min_sharpness:g})"
        if m.match < c.min_match:
            return ViewStatus.CHANGED, f"another view (match {m.match:.2f} < {c.min_match:g})"
        if m.shift > c.max_shift:
            return ViewStatus.CHANGED, f"moved by {m.shift:.0%} of the width (> {c.max_shift:.0%})"
        return ViewStatus.OK, ""

    def _adapt(self, grey: np.ndarray, m: ViewMeasure, ts: float) -> None:
        """Follow slow lighting drift and re-register a small knock (frames that match only)."""
        rate = 1 - math.exp(-max(ts - self._last_ts, 0.0) / self.config.adapt_s)
        cv2.accumulateWeighted(grey, self._reference, rate)
        self._reference_sharpness *= 1 + rate * (m.sharpness - 1)

    def _hold(self, status: ViewStatus, reason: str, ts: float) -> None:
        if status is self._seen.status:
            self._suspect = None
            return
        if self._suspect is None or self._suspect.status is not status:
            self._suspect = ViewState(status, ts, reason)
        if ts - self._suspect.since_s >= self.config.hold_s - 1e-9:
            self._seen, self._suspect = self._suspect, None

    def _reported(self) -> ViewState:
        """The frames' state, except that with `resume: operator` a paused view stays paused."""
        if self.config.resume == "auto":
            return self._seen
        if self.state.paused and not self._seen.paused:
            return replace(self.state, back=True)
        return replace(self._seen, awaiting_operator=self._seen.paused)


def _small_grey(image: np.ndarray) -> np.ndarray:
    """The frame's shared thumbnail (detector/capture/thumbnail.py) halved again, grey."""
    small = thumbnail(image)
    height = max(1, round(small.shape[0] * WORK_WIDTH / small.shape[1]))
    return cv2.cvtColor(cv2.resize(small, (WORK_WIDTH, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY).astype(
        np.float32
    )


def _sharpness(grey: np.ndarray) -> float:
    """Edge energy per unit of contrast: blur lowers it, a change of gain or offset does not."""
    return float(cv2.Laplacian(grey, cv2.CV_32F).std() / max(grey.std(), 1e-6))


def _structure(grey: np.ndarray) -> np.ndarray:
    """Band-pass (difference of Gaussians): the scene's edges and texture, without the broad
    shading that makes any two views of a street correlate, nor pixel noise."""
    return cv2.GaussianBlur(grey, (0, 0), 1) - cv2.GaussianBlur(grey, (0, 0), 3)


def _locate(reference: np.ndarray, grey: np.ndarray) -> tuple[float, float]:
    """(match, shift): where the reference's centre is found in the frame, by normalised
    cross-correlation of their structure (gain and offset do not change it), searched up to
    SEARCH_MARGIN of the size either way; the shift as a fraction of the width."""
    height, width = reference.shape
    my, mx = round(height * SEARCH_MARGIN), round(width * SEARCH_MARGIN)
    centre = _structure(reference)[my : height - my, mx : width - mx]
    scores = cv2.matchTemplate(_structure(grey), centre, cv2.TM_CCOEFF_NORMED)
    _, match, _, (x, y) = cv2.minMaxLoc(scores)
    return float(match), math.hypot(x - mx, y - my) / width


class JudgedClock:
    """Stream time with the paused stretches cut out: the time the tracker and the rules run on.

    A paused stretch is cut like a stream gap: the first frame judged after it comes one frame
    step after the last judged frame. `stream_of` maps judged times (dwell starts, alert times,
    settle times) back to stream time for payloads and views.
    """

    def __init__(self) -> None:
        self._last_ts: float | None = None
        self._last_judged = 0.0
        self._paused_s = 0.0
        self._cut_at: list[float] = []  # judged time just before each cut
        self._offset: list[float] = [0.0]  # stream - judged after each cut (0 before the first)

    def advance(self, ts: float, paused: bool) -> float | None:
        """The frame's judged time, or None while paused."""
        step = 0.0 if self._last_ts is None else ts - self._last_ts
        self._last_ts = ts
        if paused:
            self._paused_s += step
            return None
        if self._paused_s != self._offset[-1]:
            self._cut_at.append(self._last_judged)
            self._offset.append(self._paused_s)
        self._last_judged = ts - self._paused_s
        return self._last_judged

    def stream_of(self, judged):
        """Judged time(s), a float or an array -> stream time(s)."""
        if not self._cut_at:
            return judged
        offset = np.asarray(self._offset)[np.searchsorted(self._cut_at, judged, side="left")]
        return judged + (float(offset) if np.ndim(offset) == 0 else offset)
