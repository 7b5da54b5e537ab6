"""Anchors, point-in-polygon, IoU and zone tests as tables."""

import numpy as np
import pytest

from detector.config.schema import Anchor, ZoneConfig
from detector.zones.geometry import anchor_points, box_containment, box_iou
from detector.zones.zone import Zone, points_in_polygon

SQUARE = np.array([[10, 10], [20, 10], [20, 20], [10, 20]], np.float32)
L_SHAPE = np.array([[0, 0], [10, 0], [10, 4], [4, 4], [4, 10], [0, 10]], np.float32)


@pytest.mark.parametrize(
    "point, polygon, inside",
    [
        ((15, 15), SQUARE, True),
        ((5, 15), SQUARE, False),
        ((10, 15), SQUARE, True),  # on an edge counts as inside
        ((20, 20), SQUARE, True),  # on a vertex
        ((2, 8), L_SHAPE, True),
        ((8, 8), L_SHAPE, False),  # in the notch of a concave polygon
        ((8, 2), L_SHAPE, True),
    ],
)
def test_points_in_polygon(point, polygon, inside):
    assert points_in_polygon(np.array([point], np.float32), polygon).tolist() == [inside]


@pytest.mark.parametrize(
    "anchor, expected",
    [(Anchor.BOTTOM_CENTER, [15, 40]), (Anchor.CENTER, [15, 25])],
)
def test_anchor_points(anchor, expected):
    assert anchor_points(np.array([[10, 10, 20, 40]], np.float32), anchor).tolist() == [expected]


@pytest.mark.parametrize(
    "a, b, iou, contained",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0, 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150, 0.5),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0, 0.0),
        ([2, 2, 4, 4], [0, 0, 10, 10], 4 / 100, 1.0),
        ([0, 0, 0, 0], [0, 0, 10, 10], 0.0, 0.0),  # degenerate box
    ],
)
def test_iou_and_containment(a, b, iou, contained):
    a, b = np.array([a], np.float32), np.array([b], np.float32)
    assert box_iou(a, b)[0, 0] == pytest.approx(iou)
    assert box_containment(a, b)[0, 0] == pytest.approx(contained)


def zone(anchor: str, **extra) -> Zone:
    return Zone(
        ZoneConfig(
            id="z", polygon=[[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]], violations=["illegal_parking"], anchor=anchor, **extra
        )
    )


@pytest.mark.parametrize(
    "anchor, box, inside",
    [
        ("bottom_center", [40, 20, 60, 60], True),  # roof outside, wheels inside
        ("center", [40, 20, 60, 60], False),
        ("bottom_center", [40, 10, 60, 49], False),
        ("overlap", [50, 50, 100, 100], True),  # fully inside
        ("overlap", [25, 50, 75, 100], True),  # exactly half inside (overlap_min 0.5)
        ("overlap", [0, 50, 60, 100], False),  # a sixth inside
    ],
)
def test_zone_anchor_modes(anchor, box, inside):
    assert zone(anchor).contains(np.array([box], np.float32), 100, 100).tolist() == [inside]


def test_zone_follows_resolution_change():
    z = zone("bottom_center")
    box = np.array([[40, 20, 60, 60]], np.float32)
    assert z.contains(box, 100, 100).tolist() == [True]
    assert z.contains(box, 200, 200).tolist() == [False]  # same pixels, twice the frame
    assert z.contains(box * 2, 200, 200).tolist() == [True]
