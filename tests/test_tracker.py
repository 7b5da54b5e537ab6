"""Stationary tracker: per-frame boxes -> ids, settle times and stationarity."""

import numpy as np
import pytest

from detector.detections import Detections
from detector.track import StationaryTracker

CAR, PERSON, TRUCK = 2, 0, 7
PARKED = [100, 100, 200, 160]


def dets(*rows) -> Detections:
    """rows of (class_id, [x1, y1, x2, y2])"""
    if not rows:
        return Detections.empty()
    return Detections(
        xyxy=np.array([r[1] for r in rows], np.float32),
        confidence=np.full(len(rows), 0.8, np.float32),
        class_id=np.array([r[0] for r in rows], np.int32),
    )


def tracker() -> StationaryTracker:
    return StationaryTracker(settle_s=3, tolerance=0.25, match_iou=0.3, memory_s=10)


def shifted(box, dx, dy=0):
    return [box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy]


def feed(frames):
    """frames: list of (ts, [rows]); returns per frame a list of (id, settled_since, stationary)."""
    t = tracker()
    out = []
    for ts, rows in frames:
        d = t.update(dets(*rows), ts)
        out.append(
            [(int(i), float(s), bool(st)) for i, s, st in zip(d.tracker_id, d.data["settled_since"], d.data["stationary"])]
        )
    return out


def test_parked_object_becomes_stationary_after_settle_s():
    out = feed([(t, [(CAR, PARKED)]) for t in range(6)])
    assert [o[0] for o in out] == [(1, 0, False), (1, 0, False), (1, 0, False), (1, 0, True), (1, 0, True), (1, 0, True)]


def test_jitter_within_tolerance_keeps_the_settle_time():
    out = feed([(t, [(CAR, shifted(PARKED, (-1) ** t * 6, 3))]) for t in range(5)])
    assert {o[0][1] for o in out} == {0.0} and out[-1][0][2]


def test_moving_traffic_never_settles():
    out = feed([(t, [(CAR, shifted(PARKED, 40 * t))]) for t in range(8)])
    assert not any(o[0][2] for o in out)


def test_stopping_vehicle_settles_when_it_stops():
    frames = [(t, [(CAR, shifted(PARKED, 40 * t))]) for t in range(3)] + [(t, [(CAR, shifted(PARKED, 80))]) for t in range(3, 8)]
    out = feed(frames)
    assert out[-1][0][1] == 2.0 and out[-1][0][2]  # settled where it stopped, at t=2


def test_occlusion_shorter_than_memory_keeps_identity_and_settle_time():
    frames = [(t, [(CAR, PARKED)]) for t in range(6)] + [(t, []) for t in range(6, 10)] + [(10, [(CAR, PARKED)])]
    assert feed(frames)[-1] == [(1, 0.0, True)]


def test_sparse_sightings_at_one_spot_are_not_a_parked_object():
    """A queue of different cars far up a road, each caught in one frame out of four."""
    frames = [(t, [(CAR, PARKED)] if t % 4 == 0 else []) for t in range(20)]
    out = feed(frames)
    assert {o[0][0] for o in out if o} == {1} and not any(o[0][2] for o in out if o)


def test_absence_longer_than_memory_starts_a_new_track():
    frames = [(0, [(CAR, PARKED)]), (11, [(CAR, PARKED)])]
    assert feed(frames)[-1] == [(2, 11.0, False)]


def test_partly_occluded_box_stays_in_place():
    top_half = [100, 100, 200, 130]  # a passer-by hides the lower half
    frames = [(t, [(CAR, PARKED)]) for t in range(3)] + [(t, [(CAR, top_half)]) for t in range(3, 6)]
    assert feed(frames)[-1] == [(1, 0.0, True)]


def test_passer_by_does_not_take_over_the_parked_car():
    walker = lambda t: [60 + 30 * t, 90, 90 + 30 * t, 170]  # noqa: E731
    frames = [(t, [(CAR, PARKED), (PERSON, walker(t))]) for t in range(6)]
    out = feed(frames)
    assert all(o[0] == (1, 0.0, o[0][2]) for o in out)
    assert out[-1][0][2] and not out[-1][1][2]


def test_label_flicker_keeps_the_track():
    frames = [(t, [(CAR if t % 2 else TRUCK, PARKED)]) for t in range(5)]
    assert {o[0][0] for o in feed(frames)} == {1}


def test_ids_are_per_tracker_instance():
    a, b = tracker(), tracker()
    first = a.update(dets((CAR, PARKED)), 0).tracker_id.tolist()
    second = b.update(dets((CAR, PARKED)), 0).tracker_id.tolist()
    assert first == second == [1]
    assert a.update(dets((CAR, PARKED), (CAR, [400, 400, 450, 450])), 1).tracker_id.tolist() == [1, 2]


@pytest.mark.parametrize("count", [0, 1, 5])
def test_output_is_aligned_with_input(count):
    d = dets(*[(CAR, [i * 50, 0, i * 50 + 40, 40]) for i in range(count)])
    tracked = tracker().update(d, 0)
    assert len(tracked) == count and np.array_equal(tracked.xyxy, d.xyxy)
