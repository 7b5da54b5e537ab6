"""Regions: the crops of a frame the model runs on instead of the whole frame (issue 11).

Only the zones matter to the rules, and a kerb zone is a strip of the frame: a crop over each
zone's box (padded by `regions.margin` of the frame height, since a car parked in a zone reaches
out of it) costs a fraction of the whole frame. The plan is made once per frame size:

- each zone's padded box is a region; two regions are merged when one crop over both costs no
  more than the two (overlapping or near), so a frame gets few crops. The margin goes below a
  zone tested at the bottom centre of boxes too, though its objects reach up and sideways out of
  it: the model scores an object with what lies around it, and a bicycle at the bottom of a region
  without that margin fell below the score threshold;
- a crop is scaled like the whole frame would be (`scale: frame`: the same pixels per object,
  so the same detections), or up to 1:1 pixels (`scale: native`: small distant objects gain
  pixels) where that still costs less than the whole frame;
- the plan is used only when its crops cost clearly less than the whole frame; otherwise (zones
  all over the frame, a model with a fixed input size) the one region is the whole frame.

Cost is the model input's area (input pixels): a YOLO's compute is linear in it.

An object cut by a crop's inner edge (a car half out of the padded box) gives a partial box:
`cut_by_edge` finds them, and the detect stage looks again around each one (`around`), or drops
it where another crop saw the object whole. Below a region whose zones are all tested at the
bottom centre, a cut does not matter: the object's bottom, beyond the region, is in none of them.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from detector.detect.letterbox import Letterbox, frame_shaped_input
from detector.zones.geometry import box_containment

WORTH_IT = 0.85  # crops must cost less than this share of the whole frame: each run has overheads
EDGE_PX = 2.0  # a box this close to a crop's inner edge (in frame pixels) was cut by it
COVERED = 0.7  # a cut box this much inside a whole box of the same class is that object, seen whole


@dataclass(frozen=True)
class Region:
    """A part of the frame, [x1, x2) x [y1, y2) in frame pixels, whose long side comes to
    `long_side` input pixels; `zones`: the ids of the zones it covers.

    At the frame's scale it runs as a window of the whole frame's model input (grown to the
    stride's grid): the model sees the very pixels, on the very grid, that the whole frame would
    give it, so an object in it comes out as it would from the whole frame (a crop resized on its
    own lands on another grid, and a small object's score can move by 0.3). `native`: a crop of
    the frame scaled to `long_side` on its own (1:1 pixels or less).
    """

    x1: int
    y1: int
    x2: int
    y2: int
    long_side: int
    zones: tuple[str, ...] = ()
    native: bool = False

    @property
    def hw(self) -> tuple[int, int]:
        return self.y2 - self.y1, self.x2 - self.x1

    @property
    def xyxy(self) -> np.ndarray:
        return np.array([self.x1, self.y1, self.x2, self.y2], np.float32)

    @property
    def scale(self) -> float:
        return self.long_side / max(self.hw)

    def is_whole(self, frame_hw: tuple[int, int]) -> bool:
        return (self.x1, self.y1, self.x2, self.y2) == (0, 0, frame_hw[1], frame_hw[0])

    def cost(self, stride: int) -> int:
        height, width = frame_shaped_input(self.hw, self.long_side, stride)
        return height * width


def whole_frame(frame_hw: tuple[int, int], long_side: int, zones: tuple[str, ...] = ()) -> Region:
    return Region(0, 0, frame_hw[1], frame_hw[0], long_side, zones)


def plan_regions(
    zone_boxes: dict[str, np.ndarray],
    frame_hw: tuple[int, int],
    *,
    long_side: int,
    stride: int,
    margin: float,
    scale: str = "frame",
) -> tuple[Region, ...]:
    """The regions for frames of `frame_hw` (height, width), given each zone's pixel box
    [x1, y1, x2, y2]; the whole frame (at `long_side`, as a frame-shaped input) where crops would
    not cost clearly less."""
    whole = whole_frame(frame_hw, long_side, tuple(zone_boxes))
    budget = WORTH_IT * whole.cost(stride)
    pad = margin * frame_hw[0]
    rects = [(_padded(box, pad, frame_hw), (zone,)) for zone, box in zone_boxes.items()]
    sizing = _Sizing(long_side, stride, long_side / max(frame_hw))
    for native in (True, False) if scale == "native" else (False,):
        regions = _merged(
            [sizing.region(rect, zones, native) for rect, zones in rects if rect[2] > rect[0] and rect[3] > rect[1]], sizing
        )
        if regions and sum(r.cost(stride) for r in regions) < budget:
            return regions
    return (whole,)


def _padded(box: np.ndarray, pad: float, frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    height, width = frame_hw
    x1, y1, x2, y2 = (float(v) for v in box)
    fuzz = 1e-3  # normalised coordinates in float32: 0.3 x 720 is 216.00001, not a pixel more
    return (
        max(0, math.floor(x1 - pad + fuzz)),
        max(0, math.floor(y1 - pad + fuzz)),
        min(width, math.ceil(x2 + pad - fuzz)),
        min(height, math.ceil(y2 + pad - fuzz)),
    )


@dataclass(frozen=True)
class _Sizing:
    long_side: int  # the model's
    stride: int
    frame_scale: float  # the whole frame's input pixels per frame pixel

    def region(self, rect, zones: tuple[str, ...], native: bool) -> Region:
        """A region over `rect` at the frame's scale, or `native`: at 1:1 up to the model's long side."""
        x1, y1, x2, y2 = rect
        side = max(x2 - x1, y2 - y1)
        scale = min(1.0, self.long_side / side) if native else self.frame_scale
        native = native and scale > self.frame_scale * 1.01  # no gain in pixels: a window of the frame's input
        return Region(x1, y1, x2, y2, max(self.stride, min(self.long_side, round(side * scale))), zones, native)


def _merged(regions: list[Region], sizing: _Sizing) -> tuple[Region, ...]:
    """Greedy: merge the pair whose one region saves the most input pixels, until no merge saves any."""
    while len(regions) > 1:
        best = None
        for i, a in enumerate(regions):
            for j in range(i + 1, len(regions)):
                b = regions[j]
                rect = (min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))
                union = sizing.region(rect, a.zones + b.zones, a.native)
                saving = a.cost(sizing.stride) + b.cost(sizing.stride) - union.cost(sizing.stride)
                if saving >= 0 and (best is None or saving > best[0]):
                    best = (saving, i, j, union)
        if best is None:
            break
        _, i, j, union = best
        regions = [r for k, r in enumerate(regions) if k not in (i, j)] + [union]
    return tuple(sorted(regions, key=lambda r: (r.y1, r.x1)))


def cut_by_edge(xyxy: np.ndarray, region: Region, frame_hw: tuple[int, int], *, below: bool = True) -> np.ndarray:
    """(n, 4) frame-pixel boxes found in `region` -> (n,) bool: touching one of its inner edges
    (an edge that is not the frame's), so the object may reach beyond the crop; `below=False`:
    the bottom edge does not count."""
    height, width = frame_hw
    x1, y1, x2, y2 = xyxy.T
    cut = np.zeros(len(xyxy), bool)
    if region.x1 > 0:
        cut |= x1 <= region.x1 + EDGE_PX
    if region.y1 > 0:
        cut |= y1 <= region.y1 + EDGE_PX
    if region.x2 < width:
        cut |= x2 >= region.x2 - EDGE_PX
    if below and region.y2 < height:
        cut |= y2 >= region.y2 - EDGE_PX
    return cut


def covered(cut_xyxy: np.ndarray, cut_class: np.ndarray, whole_xyxy: np.ndarray, whole_class: np.ndarray) -> np.ndarray:
    """(n,) bool: each cut box lies mostly inside a box of the same class that was not cut."""
    if not len(cut_xyxy) or not len(whole_xyxy):
        return np.zeros(len(cut_xyxy), bool)
    inside = box_containment(cut_xyxy, whole_xyxy) >= COVERED
    return (inside & (cut_class[:, None] == whole_class[None, :])).any(axis=1)


def around(boxes: np.ndarray, frame_hw: tuple[int, int], like: Region, stride: int) -> tuple[Region, ...]:
    """Regions to look again at cut boxes: each box grown by its own size on every side (the
    object's unseen part lies beyond the cut), one region over those that overlap, at `like`'s
    scale and of its kind (a window of the frame's input, or a native crop)."""
    height, width = frame_hw
    rects: list[list[int]] = []
    for x1, y1, x2, y2 in boxes:
        w, h = x2 - x1, y2 - y1
        grown = [
            max(0, math.floor(x1 - w)),
            max(0, math.floor(y1 - h)),
            min(width, math.ceil(x2 + w)),
            min(height, math.ceil(y2 + h)),
        ]
        for other in [r for r in rects if _overlap(r, grown)]:
            rects.remove(other)
            grown = [min(grown[0], other[0]), min(grown[1], other[1]), max(grown[2], other[2]), max(grown[3], other[3])]
        rects.append(grown)
    return tuple(
        Region(*rect, long_side=max(stride, round(max(rect[2] - rect[0], rect[3] - rect[1]) * like.scale)), native=like.native)
        for rect in sorted(rects, key=lambda r: (r[1], r[0]))
    )


def _overlap(a: list[int], b: list[int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def zone_boxes(polygons: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{zone: (k, 2) pixel polygon} -> {zone: its bounding box [x1, y1, x2, y2]}."""
    return {zone: np.concatenate([polygon.min(axis=0), polygon.max(axis=0)]) for zone, polygon in polygons.items()}


def window(region: Region, box: Letterbox, input_hw: tuple[int, int], stride: int) -> tuple[int, int, int, int]:
    """The region's place in the whole frame's model input (`box`: how the frame fits it), grown
    to the stride's grid: (u1, v1, u2, v2) input pixels."""
    u1, v1 = (math.floor((v * box.scale + pad) / stride) * stride for v, pad in ((region.x1, box.pad_x), (region.y1, box.pad_y)))
    u2, v2 = (math.ceil((v * box.scale + pad) / stride) * stride for v, pad in ((region.x2, box.pad_x), (region.y2, box.pad_y)))
    height, width = input_hw
    return max(0, u1), max(0, v1), min(width, max(u2, u1 + stride)), min(height, max(v2, v1 + stride))


def on_grid(region: Region, box: Letterbox, input_hw: tuple[int, int], stride: int, frame_hw: tuple[int, int]) -> Region:
    """A frame-scale region as the window it runs as (`window`), in frame pixels: what the model
    sees of the frame, so that a box at its edge is a box the window cut. (Mapped back inward: the
    window of the result is the same window.)"""
    if region.native:
        return region
    u1, v1, u2, v2 = window(region, box, input_hw, stride)
    height, width = frame_hw
    x1, y1 = max(0, math.ceil((u1 - box.pad_x) / box.scale)), max(0, math.ceil((v1 - box.pad_y) / box.scale))
    x2, y2 = min(width, math.floor((u2 - box.pad_x) / box.scale)), min(height, math.floor((v2 - box.pad_y) / box.scale))
    return replace(region, x1=x1, y1=y1, x2=x2, y2=y2, long_side=max(stride, round(max(x2 - x1, y2 - y1) * box.scale)))
