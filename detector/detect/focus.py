"""Where the model looks in each frame: regions over the zones, gated by motion (issue 11).

Regions (detector/detect/regions.py) put the model's pixels where the zones are. Motion gating
(detector/detect/motion.py) puts them where something changed, as an NVR does, but keyed to the
rules: the model looks at all of a region on the first frame, after the view came back, when the
whole scene changed, and whenever it has not for the region's re-check interval, min(motion.
recheck_s, half the shortest grace_s of its zones), so a stationary object is re-confirmed well
before its grace could run out, and an arrival or a departure the motion detector missed (night,
rain, low contrast) is still seen within that interval. In between it looks at a region when
motion touched it, and not at all otherwise.

What the model did not look at was *not looked at*, which is not *looked at and not seen*: the
tracker carries the objects it holds there at their last place (detector/track/stationary.py), the
rules keep their timers on them without letting them start an alert (detector/rules/debounce.py),
and the static-object detector takes the model's last boxes there for objects it knows.
"""

import time
from dataclasses import dataclass

import numpy as np

from detector.config import AppConfig, CameraConfig
from detector.detect.base import Detector
from detector.detect.motion import MotionDetector
from detector.detect.nms import non_max_suppression
from detector.detect.regions import Region, around, covered, cut_by_edge, on_grid, plan_regions, whole_frame, zone_boxes
from detector.detections import Detections
from detector.zones.geometry import Anchor, Coverage, box_iou


@dataclass(frozen=True)
class Look:
    """What the detect stage saw in one frame: the model's boxes (frame pixels), its time, the
    regions of the plan and those it ran on (`windows`), the frame's motion (None: gating off), and
    what the model last saw in the regions it skipped (where the static-object detector must not
    take a parked car for a new object)."""

    detections: Detections
    inference_ms: float = 0.0
    regions: tuple[Region, ...] = ()
    windows: tuple[Region, ...] = ()
    motion: float | None = None
    remembered: Detections = Detections.empty()

    @property
    def coverage(self) -> Coverage:
        """The regions the model ran on, and those it skipped."""
        return Coverage(_boxes(self.windows), _boxes([r for r in self.regions if r not in self.windows]))


def recheck_intervals(config: AppConfig, camera: CameraConfig) -> dict[str, float]:
    """{zone: re-check interval}: motion.recheck_s, at most half the zone's shortest grace_s."""
    return {
        zone.id: min(
            [config.motion.recheck_s]
            + [zone.settings_for(v, config.violations, config.detect).grace_s / 2 for v in zone.violations]
        )
        for zone in camera.zones
    }


def focus_settings(config: AppConfig, camera: CameraConfig) -> dict:
    """Everything the focus's choices depend on besides the frames and the model (a cache key)."""
    return {
        "regions": config.regions.model_dump(),
        "motion": config.motion.model_dump(),
        "zones": {zone.id: [list(p) for p in zone.polygon] for zone in camera.zones},
        "recheck_s": recheck_intervals(config, camera),
    }


class Focus:
    """Per camera, stateful: `look(image, ts) -> Look` once per judged frame; `reset()` when the
    view comes back (the motion background and the last looks are stale)."""

    def __init__(self, config: AppConfig, camera: CameraConfig, detector: Detector) -> None:
        self.detector = detector
        self.regions = config.regions
        self.motion = MotionDetector(config.motion) if config.motion.enabled else None
        self._polygons = {zone.id: np.array(zone.polygon, np.float32) for zone in camera.zones}
        self._grounded = frozenset(zone.id for zone in camera.zones if zone.anchor is Anchor.BOTTOM_CENTER)
        self._recheck_s = recheck_intervals(config, camera)
        self._default_recheck_s = config.motion.recheck_s
        self._plans: dict[tuple[int, int], tuple[Region, ...]] = {}
        self._fits: dict[tuple[int, int], tuple] = {}  # frame size -> (Letterbox, input hw) of a shaped input
        self._zone_boxes: dict[tuple[int, int], dict[str, np.ndarray]] = {}  # frame size -> {zone: pixel box}
        self._last_look: dict[Region, float] = {}
        self._last_seen: dict[Region, Detections] = {}  # the boxes of each region's last look

    def plan(self, frame_hw: tuple[int, int]) -> tuple[Region, ...]:
        """The regions of frames of `frame_hw` (height, width), planned once per size."""
        plan = self._plans.get(frame_hw)
        if plan is None:
            shaped = self.detector.shaped_input()
            size = np.array(frame_hw[::-1], np.float32)
            boxes = self._zone_boxes[frame_hw] = zone_boxes({zone: polygon * size for zone, polygon in self._polygons.items()})
            if shaped is None or not self.regions.enabled or not self._polygons:
                long_side = shaped[0] if shaped else max(frame_hw)
                plan = (whole_frame(frame_hw, long_side, tuple(self._polygons)),)
            else:
                plan = plan_regions(
                    boxes,
                    frame_hw,
                    long_side=shaped[0],
                    stride=shaped[1],
                    margin=self.regions.margin,
                    scale=self.regions.scale,
                )
                plan = tuple(self._on_grid(region, frame_hw) for region in plan)
            self._plans[frame_hw] = plan
        return plan

    def recheck_s(self, region: Region) -> float:
        return min((self._recheck_s[zone] for zone in region.zones), default=self._default_recheck_s)

    def look(self, image: np.ndarray, ts: float) -> Look:
        frame_hw = image.shape[:2]
        regions = self.plan(frame_hw)
        motion = self.motion.update(image) if self.motion is not None else None
        windows = [region for region in regions if self._due(region, motion, ts)]
        started = time.perf_counter()
        detections = self._detect(image, windows) if windows else Detections.empty()
        inference_ms = (time.perf_counter() - started) * 1000
        for region in windows:
            self._last_seen[region] = detections[_centres_in(detections, region)]
        unseen = [self._last_seen.get(region, Detections.empty()) for region in regions if region not in windows]
        fraction = None if motion is None else motion.fraction
        return Look(detections, inference_ms, regions, tuple(windows), fraction, Detections.merge(unseen))

    def reset(self) -> None:
        if self.motion is not None:
            self.motion.reset()
        self._last_look.clear()
        self._last_seen.clear()

    def _due(self, region: Region, motion, ts: float) -> bool:
        """Whether the model looks at `region` this frame: on the first frame, when the whole scene
        moved, with gating off, when motion touched it or its re-check is due. (Looking only at the
        part that moved was tried: the part's edge cut a parked bicycle beside a passer-by, and
        the bicycle, seen with less of its surroundings, fell below the score threshold.)"""
        last = self._last_look.get(region)
        due = motion is None or motion.everywhere or last is None or ts - last >= self.recheck_s(region) - 1e-9
        if not due and not (len(motion.boxes) and (box_iou(region.xyxy[None], motion.boxes) > 0).any()):
            return False
        self._last_look[region] = ts
        return True

    def _detect(self, image: np.ndarray, regions: list[Region]) -> Detections:
        """The model on `regions`. A box a region's inner edge cut is dropped where another region
        saw the object whole; else the model looks again around it, and keeps it only where that
        finds nothing whole there. Duplicates from overlapping regions go by NMS."""
        frame_hw = image.shape[:2]
        if len(regions) == 1 and regions[0].is_whole(frame_hw):
            return self.detector.detect(image)  # the frame as any backend sees it
        whole, partial = self._whole_and_cut(self.detector.detect_regions(image, regions), regions, frame_hw)
        partial = partial[~covered(partial.xyxy, partial.class_id, whole.xyxy, whole.class_id)]
        if len(partial):
            like = max(regions, key=lambda r: r.scale)  # a plan's regions are of one kind
            stride = self.detector.shaped_input()[1]  # regions other than the whole frame: a shaped input
            extra = [self._on_grid(region, frame_hw) for region in around(partial.xyxy, frame_hw, like, stride)]
            again, _ = self._whole_and_cut(self.detector.detect_regions(image, extra), extra, frame_hw)
            partial = partial[~covered(partial.xyxy, partial.class_id, again.xyxy, again.class_id)]
            whole = Detections.merge([whole, again])
        joined = Detections.merge([whole, partial])
        return joined[non_max_suppression(joined.xyxy, joined.confidence, joined.class_id, self.detector.nms_iou)]

    def _on_grid(self, region: Region, frame_hw: tuple[int, int]) -> Region:
        """A frame-scale region as the window of the frame's input it runs as (regions.on_grid)."""
        if frame_hw not in self._fits:
            self._fits[frame_hw] = self.detector.input_fit(frame_hw)
        box, input_hw = self._fits[frame_hw]
        return on_grid(region, box, input_hw, self.detector.shaped_input()[1], frame_hw)

    def _whole_and_cut(self, found: list[Detections], regions, frame_hw: tuple[int, int]) -> tuple[Detections, Detections]:
        """The boxes of every region, split into those of whole objects and those a region's inner
        edge cut where that matters: below a region of grounded zones a cut does not (regions.py),
        nor for a box that touches none of its region's zones' boxes (what the edge hides lies
        further away from them: the object is in none of them, whatever its anchor)."""
        cut = []
        for d, region in zip(found, regions):
            grounded = bool(region.zones) and set(region.zones) <= self._grounded
            matters = cut_by_edge(d.xyxy, region, frame_hw, below=not grounded)
            if region.zones and matters.any():
                zones = np.stack([self._zone_boxes[frame_hw][zone] for zone in region.zones])
                matters &= (box_iou(d.xyxy, zones) > 0).any(axis=1)
            cut.append(matters)
        return Detections.merge([d[~c] for d, c in zip(found, cut)]), Detections.merge([d[c] for d, c in zip(found, cut)])


def _boxes(regions) -> np.ndarray:
    return np.stack([region.xyxy for region in regions]) if regions else np.zeros((0, 4), np.float32)


def _centres_in(detections: Detections, region: Region) -> np.ndarray:
    centres = (detections.xyxy[:, :2] + detections.xyxy[:, 2:]) / 2
    return (centres >= region.xyxy[:2]).all(axis=1) & (centres < region.xyxy[2:]).all(axis=1)
