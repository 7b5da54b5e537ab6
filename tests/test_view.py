"""A moved or blocked view (detector/view.py): real vtest frames, moved, covered, blurred or
relit; then a real pipeline whose view is moved for 20 s while the van's dwell timer runs."""

import os
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from conftest import ROOT, asset

from detector.capture import Frame, open_source
from detector.config import load_config
from detector.config.schema import ViewConfig
from detector.view import JudgedClock, ViewMonitor, ViewStatus
from detector.worker import CameraPipeline

FPS = 2.0
HOLD_S = ViewConfig().hold_s


@pytest.fixture(scope="module")
def vtest() -> list[np.ndarray]:
    """The first 40 s of vtest at 2 fps."""
    with open_source(asset("sample_videos/clips/vtest.avi"), FPS) as source:
        return [f.image for f in source.frames() if f.ts < 40]


def shifted(image: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    """The view moved by (dx, dy) fractions of its size (the edge mirrored in)."""
    h, w = image.shape[:2]
    return cv2.warpAffine(image, np.float32([[1, 0, dx * w], [0, 1, dy * h]]), (w, h), borderMode=cv2.BORDER_REFLECT)


def flipped_scene(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[::-1, ::-1])  # another view of a street: same colours, other layout


SEQUENCES = {  # what happens to the view after 10 s of the real clip -> the states expected
    "sway 2 px back and forth": (lambda i, f: shifted(f, (-1) ** i * 2 / f.shape[1]), {"ok"}),
    "knock of 6 px that stays": (lambda i, f: shifted(f, 6 / f.shape[1], 6 / f.shape[0]), {"ok"}),
    "40% darker (a cloud)": (lambda i, f: (f * 0.6).astype(np.uint8), {"ok"}),
    "40% brighter (exposure)": (lambda i, f: np.clip(f * 1.4, 0, 255).astype(np.uint8), {"ok"}),
    "monochrome (IR night mode)": (lambda i, f: cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), {"ok"}),
    "light blur (wet lens)": (lambda i, f: cv2.GaussianBlur(f, (0, 0), 2), {"ok"}),
    "moved 30%": (lambda i, f: shifted(f, 0.3), {"ok", "view_changed"}),
    "moved 10%": (lambda i, f: shifted(f, 0.1), {"ok", "view_changed"}),
    "another preset": (lambda i, f: flipped_scene(f), {"ok", "view_changed"}),
    "covered (black)": (lambda i, f: np.zeros_like(f), {"ok", "view_blocked"}),
    "uniform grey (sprayed)": (lambda i, f: np.full_like(f, 128), {"ok", "view_blocked"}),
    "heavy blur (defocused)": (lambda i, f: cv2.GaussianBlur(f, (0, 0), 8), {"ok", "view_blocked"}),
}


@pytest.mark.parametrize("name", SEQUENCES)
def test_sway_knock_and_light_are_tolerated_moves_and_blocks_are_reported_after_the_hold(vtest, name):
    change, expected = SEQUENCES[name]
    monitor = ViewMonitor(ViewConfig())
    states = []
    for i, image in enumerate(vtest):
        ts = i / FPS
        state = monitor.update(image if ts < 10 else change(i, image), ts)
        states.append((ts, state))
    assert {s.status.value for _, s in states} == expected, [(ts, s.reason) for ts, s in states if s.paused][:3]
    paused = [(ts, s) for ts, s in states if s.paused]
    if paused:
        first_ts, first = paused[0]
        assert first.since_s == 10.0 and first_ts == 10.0 + HOLD_S  # the hold, then the state from when it began
        assert first.reason and all(s.paused for _, s in states if _ >= first_ts)


def test_a_view_that_comes_back_resumes_after_the_hold(vtest):
    monitor = ViewMonitor(ViewConfig())
    moved = lambda ts: 10 <= ts < 20  # noqa: E731
    states = [monitor.update(shifted(f, 0.3) if moved(i / FPS) else f, i / FPS) for i, f in enumerate(vtest)]
    status = [s.status for s in states]
    assert status[int((10 + HOLD_S) * FPS)] is ViewStatus.CHANGED
    assert status[int((20 + HOLD_S) * FPS) - 1] is ViewStatus.CHANGED  # the hold again before it resumes
    assert status[int((20 + HOLD_S) * FPS)] is ViewStatus.OK and states[-1].since_s == 20.0


def test_a_camera_covered_from_the_start_is_blocked_and_learns_its_view_when_uncovered(vtest):
    monitor = ViewMonitor(ViewConfig())
    states = [monitor.update(np.zeros_like(f) if i < 20 else f, i / FPS) for i, f in enumerate(vtest)]
    assert states[int(HOLD_S * FPS)].status is ViewStatus.BLOCKED
    assert states[-1].status is ViewStatus.OK


@pytest.mark.parametrize(
    "frames, judged, back",
    [
        # (stream ts, paused) -> judged ts; a judged time -> stream time
        ([(0, False), (1, False), (2, False)], [0, 1, 2], {1.5: 1.5}),
        ([(0, False), (1, False), (2, True), (3, True), (4, False), (5, False)], [0, 1, None, None, 2, 3], {1: 1, 2: 4, 3: 5}),
    ],
)
def test_judged_clock_cuts_paused_stretches_like_a_stream_gap(frames, judged, back):
    clock = JudgedClock()
    assert [clock.advance(ts, paused) for ts, paused in frames] == judged
    assert {j: float(clock.stream_of(j)) for j in back} == back
    assert clock.stream_of(np.array(list(back), np.float64)).tolist() == list(back.values())


def test_a_pipeline_whose_view_is_moved_for_20_s_pauses_its_dwell_and_raises_nothing_against_the_old_zones(vtest):
    """The van settles at the start; from 10 s to 30 s the camera looks 30% to the side. No
    alert starts or ends during the move; the dwell resumes where it stood, so the van's alert
    starts about the 20 s of the move later than dwell_s (not reset: that would be later still)."""
    os.chdir(ROOT)
    config = load_config(ROOT / "configs/demo.yaml")
    config = config.model_copy(update={"model": config.model.model_copy(update={"path": asset("models/yolov8n_320.onnx")})})
    camera = config.camera("vtest")
    camera = camera.model_copy(update={"zones": camera.zones[:1]})  # the van's zone
    dwell = config.violations.illegal_parking.dwell_s
    pipeline = CameraPipeline.build(config, camera, wall_of=lambda ts: datetime(2026, 3, 2, tzinfo=UTC) + timedelta(seconds=ts))
    results = []
    with open_source(camera.source, FPS) as source:
        for frame in source.frames():
            if frame.ts >= 10 and frame.ts < 30:
                frame = Frame(shifted(frame.image, 0.3), frame.ts, frame.index)
            results.append(pipeline.process(frame))
            if frame.ts >= dwell + 30:
                break
    pipeline.close()
    changed = next(r for r in results if r.view.status is ViewStatus.CHANGED)
    assert changed.frame.ts - 10 <= 10 and changed.view.since_s == 10.0  # reported within 10 s
    paused = [r for r in results if r.view.paused]
    assert not any(r.alerts for r in paused) and not any(len(r.tracks) for r in paused)
    assert {r.rules[0].state.value for r in paused} == {"pending"}  # the dwell stands still
    alerts = [a for r in results for a in r.alerts]
    assert [a.event.value for a in alerts] == ["start"]
    pause_s = paused[-1].frame.ts - paused[0].frame.ts
    assert dwell + pause_s <= alerts[0].stream_time_s <= dwell + pause_s + config.track.settle_s + HOLD_S + 1
    assert alerts[0].first_seen_s <= 1.0  # on stream time: the van was there from the start
