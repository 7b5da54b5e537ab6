"""Pure geometry on pixel boxes, in numpy only (the config imports it through the rule registry,
and the supervisor reads the config: no OpenCV here)."""

from dataclasses import dataclass
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


COVERED_BY_PART = 0.5  # a box this much inside a part of the frame lies in that part


@dataclass(frozen=True)
class Coverage:
    """The parts of a frame the model looked at and those it skipped this frame (the regions it
    ran on and those motion gating left out, detector/detect/focus.py)."""

    looked: np.ndarray  # (k, 4) boxes
    skipped: np.ndarray  # (m, 4) boxes

    def not_looked_at(self, xyxy: np.ndarray) -> np.ndarray:
        """(n, 4) -> (n,) bool: the box lies in a skipped part and in no part looked at."""
        if not len(xyxy) or not len(self.skipped):
            return np.zeros(len(xyxy), bool)
        skipped = box_containment(xyxy, self.skipped).max(axis=1) >= COVERED_BY_PART
        if len(self.looked):
            skipped &= box_containment(xyxy, self.looked).max(axis=1) < COVERED_BY_PART
        return skipped


def box_size(xyxy: np.ndarray) -> np.ndarray:
    """(n, 4) -> (n,) geometric mean of width and height: the scale drift is measured against."""
    return np.sqrt(np.clip(_area(xyxy), 1e-6, None))


def box_centres(xyxy: np.ndarray) -> np.ndarray:
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2], axis=1)


MAX_POLYGON_POINTS = 256  # far more than a drawn zone needs; bounds the O(k^2) crossing test
MIN_POLYGON_AREA = 1e-6  # of a normalised frame: about two pixels of 1080p


def polygon_defect(polygon: np.ndarray) -> str | None:
    """Why (k, 2) normalised vertices do not outline a zone, or None when they do.

    A zone is a simple polygon: at least 3 distinct points, not all on one line, an outline that
    never crosses or touches itself, and some area. Repeated consecutive points (a ring closed by
    repeating its first point, a double click in the editor) are harmless and skipped. A crossing
    outline is refused, not repaired: a bow-tie is almost always two points in the wrong order,
    and which of its parts was meant is a guess (docs/violations.md, "Zones").
    """
    if len(polygon) > MAX_POLYGON_POINTS:
        return f"a polygon may have at most {MAX_POLYGON_POINTS} points, got {len(polygon)}"
    kept = _distinct_ring(polygon)
    if len(kept) < 3:
        return f"a polygon needs at least 3 distinct points, got {len(kept)}"
    points = polygon[kept]
    if np.linalg.matrix_rank(points - points[0], tol=1e-9) < 2:
        return "its points lie on one line: it encloses no area"
    crossing = crossing_edges(points)
    if crossing is not None:
        i, j = crossing
        return (
            f"edge {_edge(polygon, kept, i)} meets edge {_edge(polygon, kept, j)}: "
            "the outline must not cross or touch itself (list the points in order around the zone)"
        )
    area = polygon_area(points)
    if area < MIN_POLYGON_AREA:
        return f"it encloses almost no area ({area:.2g} of the frame, less than {MIN_POLYGON_AREA:g})"
    return None


def polygon_area(polygon: np.ndarray) -> float:
    """(k, 2) vertices of a simple polygon -> its area (shoelace formula)."""
    x, y = polygon[:, 0].astype(np.float64), polygon[:, 1].astype(np.float64)
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def crossing_edges(polygon: np.ndarray) -> tuple[int, int] | None:
    """(k, 2) vertices, no two consecutive ones equal -> the first pair of edges (i, j), i < j, that
    cross or touch other than at the vertex two neighbouring edges share; None if there is none.

    Edge i runs from vertex i to vertex i+1 (the last one back to vertex 0). Written by hand
    (orientation tests over all k^2 pairs, vectorised) rather than adding shapely for one
    predicate on polygons of at most MAX_POLYGON_POINTS vertices.
    """
    a = polygon.astype(np.float64)
    b = np.roll(a, -1, axis=0)
    k = len(a)
    # orientation of each edge j's end points against each edge i's line, and vice versa: (k, k)
    d1, d2 = _orientation(a[:, None], b[:, None], a[None, :]), _orientation(a[:, None], b[:, None], b[None, :])
    d3, d4 = d1.T, d2.T
    proper = (d1 * d2 < 0) & (d3 * d4 < 0)
    touch = (
        ((d1 == 0) & _within(a[:, None], b[:, None], a[None, :]))
        | ((d2 == 0) & _within(a[:, None], b[:, None], b[None, :]))
        | ((d3 == 0) & _within(a[None, :], b[None, :], a[:, None]))
        | ((d4 == 0) & _within(a[None, :], b[None, :], b[:, None]))
    )
    i, j = np.triu_indices(k, 1)
    follows = j == i + 1  # edge j starts where edge i ends
    neighbours = follows | ((i == 0) & (j == k - 1))  # ... or edge 0 starts where edge k-1 ends
    # neighbours share a vertex, which is no crossing; they overlap only when one folds back along the other
    fold = neighbours & _folds_back(b - a, np.where(follows, i, j), np.where(follows, j, i))
    hits = np.flatnonzero(((proper | touch)[i, j] & ~neighbours) | fold)
    return None if len(hits) == 0 else (int(i[hits[0]]), int(j[hits[0]]))


_COLLINEAR = 1e-12  # |cross product| below this counts as collinear (normalised coordinates)


def _orientation(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Sign of the turn p -> q -> r: 1 left, -1 right, 0 collinear (within _COLLINEAR)."""
    cross = (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
    return np.where(np.abs(cross) <= _COLLINEAR, 0, np.sign(cross))


def _within(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """r (collinear with p-q) lies on the segment p-q: inside its bounding box."""
    lo, hi = np.minimum(p, q) - _COLLINEAR, np.maximum(p, q) + _COLLINEAR
    return np.all((lo <= r) & (r <= hi), axis=-1)


def _folds_back(edges: np.ndarray, into: np.ndarray, out_of: np.ndarray) -> np.ndarray:
    """(k, 2) edge vectors; edge `into` ends at the vertex where edge `out_of` starts -> both lie on
    one line and turn back there (a spike)."""
    u, v = edges[into], edges[out_of]
    cross = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    return (np.abs(cross) <= _COLLINEAR) & (np.einsum("ij,ij->i", u, v) < 0)


def _distinct_ring(polygon: np.ndarray) -> np.ndarray:
    """Indices of the vertices that differ from the one before them, the ring closed."""
    keep = np.any(polygon != np.roll(polygon, 1, axis=0), axis=1)
    if not keep.any():
        return np.array([0])  # one point repeated
    return np.flatnonzero(keep)


def _edge(polygon: np.ndarray, kept: np.ndarray, i: int) -> str:
    """Edge i of the kept vertices, named by the original point numbers and coordinates."""
    start, end = kept[i], kept[(i + 1) % len(kept)]
    return f"{start}-{end} ({_point(polygon[start])} to {_point(polygon[end])})"


def _point(point: np.ndarray) -> str:
    return f"[{float(point[0]):g}, {float(point[1]):g}]"
