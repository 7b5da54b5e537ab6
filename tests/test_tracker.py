"""Stationary tracker: per-frame boxes -> ids, settle times and stationarity."""

import numpy as np
import pytest

from detector.detections import Detections
from detector.track import StationaryTracker
from detector.zones.geometry import Coverage

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


# The parked car (PARKED, settled at 0) is seen at t=6 as ...; (same track, settle time kept)
CORNER = [150, 130, 200, 160]  # its lower right quarter
GROWN = [70, 60, 260, 190]  # merged with a passing shadow or a bus in front


@pytest.mark.parametrize(
    "boxes, kept",
    [
        # a headlight sweep: a small box, then the whole car again (IoU with the last box is 0.25,
        # with where it settled 1)
        ([(CAR, CORNER), (CAR, PARKED)], True),
        # its visible part only, for several frames (a shadow over a bag, a bus in front)
        ([(CAR, CORNER), (CAR, CORNER), (CAR, CORNER)], True),
        # box grown by a shadow, then back
        ([(CAR, GROWN), (CAR, PARKED)], True),
        # a person standing at the car's corner is not the car (another class)
        ([(PERSON, CORNER)], False),
    ],
)
def test_box_jump_finds_the_stationary_object_where_it_settled(boxes, kept):
    t = tracker()
    for ts in range(6):
        t.update(dets((CAR, PARKED)), ts)
    out = [t.update(dets(row), 6 + i) for i, row in enumerate(boxes)]
    assert (int(out[-1].tracker_id[0]), float(out[-1].data["settled_since"][0])) == ((1, 0.0) if kept else (2, 6.0))


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


# Identity and occlusion, with appearance signatures taken from a real vtest frame: the white van
# (cut from where it is parked) pasted on the road, and the same van repainted.
SPOT = [300, 300, 380, 362]
LEAVING = [340, 300, 420, 362]  # half a length on: driving off
LORRY = [270, 280, 420, 380]


@pytest.fixture(scope="module")
def street():
    import cv2

    ok, image = cv2.VideoCapture("sample_videos/clips/vtest.avi").read()
    assert ok
    return image


def scene(street, *vans):
    """The frame with vans pasted: (box, gains) each; gains repaint the van (1, 1, 1: white)."""
    import cv2

    image = street.copy()
    van = street[42:104, 647:727].astype(np.float32)
    for box, gains in vans:
        x1, y1, x2, y2 = box
        image[y1:y2, x1:x2] = np.clip(cv2.resize(van, (x2 - x1, y2 - y1)) * np.array(gains), 0, 255).astype(np.uint8)
    return image


WHITE, RED = (1, 1, 1), (0.35, 0.35, 0.85)


def looked(rows, image):
    from detector.track.appearance import signatures

    d = dets(*rows)
    return d.with_data(appearance=signatures(image, d.xyxy))


def run_with_looks(street, frames):
    """frames: (ts, [(class, box, gains)]) -> per frame the tracker's output."""
    t = tracker()
    out = []
    for ts, rows in frames:
        image = scene(street, *[(box, gains) for _, box, gains in rows if gains])
        out.append(t.update(looked([(c, b) for c, b, _ in rows], image), ts))
    return out


def row(out, i=0):
    return (
        int(out.tracker_id[i]),
        float(out.data["settled_since"][i]),
        bool(out.data["stationary"][i]),
        int(out.data["replaces"][i]),
    )


@pytest.mark.parametrize(
    "between, newcomer, expected",
    [
        # the white van drives off, a red one parks on the spot: a newcomer that replaced it
        ([(6, [(CAR, LEAVING, WHITE)]), (7, [])], RED, (2, 8.0, True, 1)),
        # the white van comes back to its spot after a while: itself again, nothing replaced
        ([(6, [(CAR, LEAVING, WHITE)]), (7, [])], WHITE, (1, 8.0, True, 0)),
        # unseen for two frames (missed while leaving), a red van on the spot: not matched to it
        ([(6, []), (7, [])], RED, (2, 8.0, True, 1)),
        # unseen for two frames, the white van again: the same track, its settle time kept
        ([(6, []), (7, [])], WHITE, (1, 0.0, True, 0)),
    ],
    ids=["left, red parks", "left, comes back", "missed, red parks", "missed, same van"],
)
def test_another_object_on_the_place_replaces_the_one_that_was_there(street, between, newcomer, expected):
    frames = [(ts, [(CAR, SPOT, WHITE)]) for ts in range(6)] + between
    frames += [(ts, [(CAR, SPOT, newcomer)]) for ts in range(8, 12)]
    assert row(run_with_looks(street, frames)[-1]) == expected


def test_stationary_object_behind_a_lorry_is_hidden_not_gone(street):
    parked = [(ts, [(CAR, SPOT, WHITE)]) for ts in range(6)]
    behind = [(ts, [(TRUCK, LORRY, RED)]) for ts in range(6, 26)]  # 20 s: longer than memory_s 10
    back = [(26, []), (27, [(CAR, SPOT, WHITE)])]  # the lorry gone, the van missed for a frame
    out = run_with_looks(street, parked + behind + back)
    hidden = out[20]  # t = 20: the lorry and, behind it, the van
    assert hidden.data["hidden"].tolist() == [False, True]
    assert row(hidden, 1)[:3] == (1, 0.0, True) and hidden.xyxy[1].tolist() == SPOT
    assert row(out[-1]) == (1, 0.0, True, 0)  # seen again: the same van, settled since 0


def test_passer_by_covering_little_hides_nothing(street):
    walker = [330, 280, 360, 380]  # a person in front of part of the van
    out = run_with_looks(street, [(ts, [(CAR, SPOT, WHITE)]) for ts in range(6)] + [(6, [(PERSON, walker, None)])])
    assert len(out[-1]) == 1 and not out[-1].data["hidden"].any()


REGION = [50, 50, 300, 300]  # a region over PARKED
SKIPPED = Coverage(np.zeros((0, 4), np.float32), np.array([REGION], np.float32))
LOOKED = Coverage(np.array([REGION], np.float32), np.zeros((0, 4), np.float32))


@pytest.mark.parametrize(
    "frames, expected",
    [
        # seen, then not looked at: carried at its last box, still the same track, stationary once settle_s passed
        (
            [("seen", LOOKED)] * 2 + [("none", SKIPPED)] * 4,
            [(1, False, False)] * 2 + [(1, True, False)] + [(1, True, True)] * 3,
        ),
        # looked at and not seen: missed, and then not carried where the model did not look either
        ([("seen", LOOKED), ("none", LOOKED), ("none", SKIPPED)], [(1, False, False)]),
        # not looked at for longer than its memory (10 s) would allow unseen: carried all along
        ([("seen", LOOKED)] + [("none", SKIPPED)] * 14, [(1, False, False)] + [(1, True, False)] * 2 + [(1, True, True)] * 12),
        # no coverage (gating off): an unseen object is simply not there
        ([("seen", None), ("none", None)], [(1, False, False)]),
    ],
    ids=["carried", "missed-then-skipped", "carried-past-memory", "no-coverage"],
)
def test_not_looked_at_is_not_looked_at_and_not_seen(frames, expected):
    """`carried` tracks (motion gating): rows are (id, carried, stationary) over all frames' rows."""
    t = tracker()
    rows = []
    for ts, (what, coverage) in enumerate(frames):
        d = t.update(dets((CAR, PARKED)) if what == "seen" else dets(), float(ts), coverage)
        carried = d.data.get("carried", np.zeros(len(d), bool))
        stationary = d.data.get("stationary", np.zeros(len(d), bool))
        rows += [(int(i), bool(c), bool(s)) for i, c, s in zip(d.tracker_id, carried, stationary)]
    assert rows[: len(expected)] == expected and len(rows) == len(expected)


def test_a_carried_frame_counts_neither_for_nor_against_presence():
    t = tracker()
    for ts in range(4):
        t.update(dets((CAR, PARKED)), float(ts), LOOKED)
    (track,) = t.tracks
    before = (track.hits_since_settle, track.frames_since_settle)
    for ts in range(4, 8):
        t.update(dets(), float(ts), SKIPPED)
    assert (track.hits_since_settle, track.frames_since_settle) == before
    t.update(dets(), 8.0, LOOKED)  # looked at and not seen: a frame without it
    assert (track.hits_since_settle, track.frames_since_settle) == (before[0], before[1] + 1) and track.missed
