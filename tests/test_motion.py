"""The motion detector on synthetic 1280x720 scenes, a table of frame sequences with what each frame
must say (nothing moved, a box on the object, the whole scene changed), and on the real vtest.avi
clip sampled at 1 frame per second: people walk, so most frames have motion."""

import cv2
import numpy as np
import pytest
from conftest import ROOT

from detector.config.schema import MotionConfig
from detector.detect.motion import MotionDetector

HEIGHT, WIDTH = 720, 1280
SQUARE = (80, 60)  # width, height of the object, frame px


def textured(seed: int, shape=(HEIGHT, WIDTH)) -> np.ndarray:
    """A static street-like texture: 8 px cells of random colour, with fine per-pixel grain."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(40, 200, (-(-shape[0] // 8), -(-shape[1] // 8), 3)).astype(np.float32)
    grain = rng.uniform(-10, 10, (*shape, 3)).astype(np.float32)
    return np.kron(cells, np.ones((8, 8, 1), np.float32))[: shape[0], : shape[1]] + grain


BACKGROUND = textured(7)


def square_at(x: int, y: int) -> tuple[int, int, int, int]:
    return x, y, x + SQUARE[0], y + SQUARE[1]


def frame(index: int, rect=None, brightness=1.0, noise=3.0, dim=None, rain=False) -> np.ndarray:
    """The background lit at `brightness`, with a dark square on `rect` (x1, y1, x2, y2), or `dim`
    grey levels added there; fresh sensor noise per frame; `rain`: 300 bright 1x8 px streaks."""
    rng = np.random.default_rng(1000 + index)
    image = BACKGROUND * brightness
    if rect is not None:
        x1, y1, x2, y2 = rect
        image[y1:y2, x1:x2] = 20 * brightness if dim is None else image[y1:y2, x1:x2] + dim
    image += rng.normal(0, noise, image.shape).astype(np.float32)
    if rain:
        xs, ys = rng.integers(0, WIDTH, 300), rng.integers(0, HEIGHT - 8, 300)
        rows = (ys[:, None] + np.arange(8)).ravel()
        image[rows, np.repeat(xs, 8)] = 240
    return np.clip(image, 0, 255).astype(np.uint8)


# What a frame must say: the whole scene changed; nothing moved; a box overlapping a rect (x1, y1, x2,
# y2); not the whole scene and under a fifth of the frame changed (rain); anything (an object fading in).
EVERYWHERE, NONE, QUIET, ANY = "everywhere", "none", "quiet", "any"

STILL = square_at(600, 300)
DIM = square_at(300, 200)
MOVES = [square_at(100 + 90 * i, 400 - 20 * i) for i in range(12)]
WALKS = [(200 + 15 * i, 500, 216 + 15 * i, 540) for i in range(12)]  # a person far off: 16x40 px, 30 grey levels darker


def at(rect):
    return ("at", rect)


CASES = {
    "static scene, sensor noise": ([frame(i) for i in range(10)], [EVERYWHERE] + [NONE] * 9),
    "object arrives and stays": (
        [frame(i) for i in range(5)] + [frame(i, STILL) for i in range(5, 25)],
        [EVERYWHERE] + [NONE] * 4 + [at(STILL)] * 2 + [ANY] * 13 + [NONE] * 5,
    ),
    "low-contrast object arrives and stays": (
        [frame(i) for i in range(5)] + [frame(i, STILL, dim=25) for i in range(5, 20)],
        [EVERYWHERE] + [NONE] * 4 + [at(STILL)] * 2 + [ANY] * 8 + [NONE] * 5,
    ),
    "object moves across": ([frame(i, rect) for i, rect in enumerate(MOVES)], [EVERYWHERE] + [at(r) for r in MOVES[1:]]),
    "small person walks": ([frame(i, rect, dim=-30) for i, rect in enumerate(WALKS)], [EVERYWHERE] + [at(r) for r in WALKS[1:]]),
    "IR cut filter switch (x0.4)": (
        [frame(i) for i in range(5)] + [frame(i, brightness=0.4) for i in range(5, 25)],
        [EVERYWHERE] + [NONE] * 4 + [EVERYWHERE, ANY] + [NONE] * 18,
    ),
    "night, dim object appears": (
        [frame(i, brightness=0.12, noise=2) for i in range(6)] + [frame(i, DIM, 0.12, 2, dim=10) for i in range(6, 9)],
        [EVERYWHERE] + [NONE] * 5 + [at(DIM)] * 2 + [ANY],
    ),
    "rain streaks": ([frame(i, rain=True) for i in range(10)], [EVERYWHERE] + [QUIET] * 9),
}


def overlaps(boxes: np.ndarray, rect) -> bool:
    x1, y1, x2, y2 = rect
    return bool(np.any((boxes[:, 0] < x2) & (boxes[:, 2] > x1) & (boxes[:, 1] < y2) & (boxes[:, 3] > y1)))


def check(motion, expected, where: str) -> None:
    assert motion.boxes.dtype == np.float32 and motion.boxes.ndim == 2 and motion.boxes.shape[1] == 4, where
    assert 0.0 <= motion.fraction <= 1.0, where
    if expected == EVERYWHERE:
        assert motion.everywhere, where
    elif expected == NONE:
        assert not motion.everywhere and len(motion.boxes) == 0, f"{where}: {motion}"
    elif expected == QUIET:
        assert not motion.everywhere and motion.fraction < 0.2, f"{where}: {motion.fraction:.3f}"
    elif expected != ANY:
        assert not motion.everywhere and overlaps(motion.boxes, expected[1]), f"{where}: {motion.boxes} not on {expected[1]}"


@pytest.mark.parametrize("name", CASES)
def test_scene(name):
    frames, expected = CASES[name]
    assert len(frames) == len(expected)
    detector = MotionDetector(MotionConfig())
    for i, (image, want) in enumerate(zip(frames, expected)):
        check(detector.update(image), want, f"{name}, frame {i}")


def test_night_object_is_below_threshold_without_stretching():
    """The night case means something: its object changes the raw grey level by less than the threshold."""
    grey = [cv2.cvtColor(frame(6, DIM, 0.12, 0, dim=dim), cv2.COLOR_BGR2GRAY).astype(int) for dim in (0, 10)]
    x1, y1, x2, y2 = DIM
    assert np.abs(grey[1] - grey[0])[y1:y2, x1:x2].max() < MotionConfig().threshold


def test_reset_relearns():
    detector = MotionDetector(MotionConfig())
    for i in range(3):
        detector.update(frame(i))
    assert not detector.update(frame(3)).everywhere
    detector.reset()
    assert detector.update(frame(4)).everywhere
    check(detector.update(frame(5)), NONE, "after reset")


@pytest.mark.parametrize("shape", [(576, 768), (1080, 1920), (360, 641), (100, 130)])
def test_frame_size_change(shape):
    detector = MotionDetector(MotionConfig())
    for i in range(3):
        detector.update(frame(i))
    other = np.clip(textured(8, shape), 0, 255).astype(np.uint8)
    motion = detector.update(other)
    assert motion.everywhere
    assert np.array_equal(motion.boxes, [[0, 0, shape[1], shape[0]]])
    check(detector.update(other), NONE, f"second frame at {shape}")


def test_real_clip_people_walking():
    """vtest.avi (768x576, 10 fps), one frame a second for 20 s: people walk through most of it."""
    path = ROOT / "sample_videos/clips/vtest.avi"
    if not path.is_file():
        pytest.skip(f"{path.relative_to(ROOT)} is missing: run scripts/fetch_assets.py")
    capture = cv2.VideoCapture(str(path))
    frames = []
    for index in range(200):
        ok, image = capture.read()
        assert ok, f"vtest.avi ended at frame {index}"
        if index % 10 == 0:
            frames.append(image)
    capture.release()
    detector = MotionDetector(MotionConfig())
    motions = [detector.update(image) for image in frames]
    assert motions[0].everywhere
    moving = sum(len(m.boxes) > 0 and not m.everywhere for m in motions[1:])
    assert moving >= 0.8 * (len(motions) - 1), f"motion on {moving} of {len(motions) - 1} frames"
    height, width = frames[0].shape[:2]
    for m in motions:
        b = m.boxes
        assert np.all((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= width) & (b[:, 3] <= height))
        assert np.all((b[:, 0] < b[:, 2]) & (b[:, 1] < b[:, 3]))
