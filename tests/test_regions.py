"""Region planning, cut boxes and coverage: pure geometry, tables of cases (detector/detect/regions.py)."""

import numpy as np
import pytest

from detector.detect.regions import Region, around, covered, cut_by_edge, plan_regions
from detector.zones.geometry import Coverage

HD = (720, 1280)  # height, width
VGA = (576, 768)


def plan(zones: dict[str, list[float]], frame_hw=HD, margin=0.1, scale="frame"):
    """Zones as normalised boxes [x1, y1, x2, y2] on the frame."""
    size = np.array([frame_hw[1], frame_hw[0]] * 2, np.float32)
    boxes = {zone: np.array(box, np.float32) * size for zone, box in zones.items()}
    return plan_regions(boxes, frame_hw, long_side=640, stride=32, margin=margin, scale=scale)


@pytest.mark.parametrize(
    "zones, frame_hw, margin, scale, expected",
    [
        # a kerb at the top right: one crop over it, padded by 72 px (0.1 x 720), at the frame's scale (0.5)
        ({"van": [0.82, 0.06, 0.97, 0.20]}, HD, 0.1, "frame", [Region(977, 0, 1280, 216, 152, ("van",))]),
        # the same at 1:1 pixels where that still costs less than the frame: its long side as is
        ({"van": [0.82, 0.06, 0.97, 0.20]}, HD, 0.1, "native", [Region(977, 0, 1280, 216, 303, ("van",), native=True)]),
        # no margin: the zone's box itself
        ({"van": [0.5, 0.5, 0.75, 0.75]}, HD, 0.0, "frame", [Region(640, 360, 960, 540, 160, ("van",))]),
        # zones over most of the frame: the whole frame at the model's long side
        ({"road": [0.05, 0.1, 0.95, 0.9]}, HD, 0.1, "frame", [Region(0, 0, 1280, 720, 640, ("road",))]),
        # a big zone at native scale would cost more than the frame: frame scale instead
        ({"road": [0.0, 0.5, 1.0, 0.8]}, HD, 0.0, "native", [Region(0, 360, 1280, 576, 640, ("road",))]),
        # two kerbs far apart: two crops
        (
            {"left": [0.0, 0.7, 0.2, 0.9], "right": [0.8, 0.1, 1.0, 0.3]},
            HD,
            0.05,
            "frame",
            [Region(988, 36, 1280, 252, 146, ("right",)), Region(0, 468, 292, 684, 146, ("left",))],
        ),
        # two overlapping zones: one crop over both
        (
            {"a": [0.1, 0.1, 0.3, 0.3], "b": [0.2, 0.2, 0.4, 0.4]},
            VGA,
            0.0,
            "frame",
            [Region(76, 57, 308, 231, 193, ("a", "b"))],
        ),
    ],
    ids=["kerb", "kerb-native", "no-margin", "most-of-frame", "native-too-dear", "two-apart", "overlapping"],
)
def test_plan(zones, frame_hw, margin, scale, expected):
    assert list(plan(zones, frame_hw, margin, scale)) == expected


def test_plan_costs_less_than_the_whole_frame_or_is_the_whole_frame():
    rng = np.random.default_rng(7)
    whole = Region(0, 0, 1280, 720, 640).cost(32)
    for _ in range(200):
        x1, y1 = rng.uniform(0, 0.9, 2)
        w, h = rng.uniform(0.02, 1 - max(x1, y1), 2)
        regions = plan({"z": [x1, y1, x1 + w, y1 + h], "k": list(rng.uniform(0, 1, 2)) + [1.0, 1.0]})
        cost = sum(r.cost(32) for r in regions)
        assert regions == (Region(0, 0, 1280, 720, 640, ("z", "k")),) or cost < 0.85 * whole
        for region in regions:
            assert 0 <= region.x1 < region.x2 <= 1280 and 0 <= region.y1 < region.y2 <= 720
            assert region.scale >= 0.5 - 0.01  # never fewer pixels per object than in the whole frame


@pytest.mark.parametrize(
    "box, region, cut",
    [
        ([100, 100, 200, 200], Region(50, 50, 300, 300, 128), False),  # inside
        ([51, 100, 200, 200], Region(50, 50, 300, 300, 128), True),  # on the left edge
        ([100, 100, 299, 200], Region(50, 50, 300, 300, 128), True),  # on the right edge
        ([100, 100, 200, 299], Region(50, 50, 300, 300, 128), True),  # on the bottom edge
        ([0, 100, 200, 200], Region(0, 50, 300, 300, 128), False),  # on the frame's left edge: not cut by the crop
        ([100, 100, 1280, 720], Region(50, 50, 1280, 720, 128), False),  # frame's right and bottom edges
        ([100, 50, 200, 200], Region(50, 50, 300, 300, 128), True),  # top edge
    ],
)
def test_cut_by_edge(box, region, cut):
    assert cut_by_edge(np.array([box], np.float32), region, HD).tolist() == [cut]


def test_a_cut_below_can_be_left_out():
    region = Region(50, 50, 300, 300, 128)
    boxes = np.array([[100, 100, 200, 299], [51, 100, 200, 299]], np.float32)  # bottom edge; bottom and left edges
    assert cut_by_edge(boxes, region, HD, below=False).tolist() == [False, True]


@pytest.mark.parametrize(
    "cut_box, cut_class, whole_box, whole_class, expected",
    [
        ([100, 100, 150, 200], 2, [100, 100, 200, 200], 2, True),  # the left half of the whole box
        ([100, 100, 150, 200], 2, [100, 100, 200, 200], 7, False),  # another class
        ([100, 100, 150, 200], 2, [130, 100, 230, 200], 2, False),  # only 40 % inside
    ],
)
def test_covered(cut_box, cut_class, whole_box, whole_class, expected):
    result = covered(
        np.array([cut_box], np.float32), np.array([cut_class]), np.array([whole_box], np.float32), np.array([whole_class])
    )
    assert result.tolist() == [expected]


def test_covered_without_whole_boxes():
    assert covered(
        np.array([[0, 0, 1, 1]], np.float32), np.array([0]), np.zeros((0, 4), np.float32), np.zeros(0, int)
    ).tolist() == [False]


@pytest.mark.parametrize(
    "boxes, expected",
    [
        # grown by its size on every side, at the given scale (0.5): 300x300 -> long side 150
        ([[200, 200, 300, 300]], [Region(100, 100, 400, 400, 150)]),
        # clipped to the frame
        ([[0, 600, 100, 720]], [Region(0, 480, 200, 720, 120)]),
        # two whose grown boxes overlap: one region
        ([[200, 200, 300, 300], [350, 200, 450, 300]], [Region(100, 100, 550, 400, 225)]),
        # far apart: two
        ([[100, 100, 150, 150], [900, 500, 950, 550]], [Region(50, 50, 200, 200, 75), Region(850, 450, 1000, 600, 75)]),
    ],
)
def test_around(boxes, expected):
    like = Region(0, 0, 1280, 720, 640)  # at the frame's scale, 0.5
    assert list(around(np.array(boxes, np.float32), HD, like, 32)) == expected


@pytest.mark.parametrize(
    "box, looked, skipped, expected",
    [
        ([10, 10, 50, 50], [], [[0, 0, 100, 100]], True),  # in a skipped region
        ([10, 10, 50, 50], [[0, 0, 60, 60]], [[0, 0, 100, 100]], False),  # also in a region looked at
        ([90, 90, 190, 190], [], [[0, 0, 100, 100]], False),  # mostly outside the skipped region
        ([10, 10, 50, 50], [[0, 0, 100, 100]], [], False),  # nothing skipped
        ([500, 500, 550, 550], [], [], False),  # outside every region: looked at as ever (and missed)
    ],
)
def test_coverage(box, looked, skipped, expected):
    coverage = Coverage(np.array(looked, np.float32).reshape(-1, 4), np.array(skipped, np.float32).reshape(-1, 4))
    assert coverage.not_looked_at(np.array([box], np.float32)).tolist() == [expected]
