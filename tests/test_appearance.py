"""Appearance signatures (detector/track/appearance.py) on real vtest frames: the same object
under jitter, passers-by, light and an IR switch stays the same; another object does not."""

import cv2
import numpy as np
import pytest

from detector.track.appearance import SIZE, correlation, same_object, signatures

VAN = np.array([647, 42, 727, 104], np.float32)  # the white van parked top right the whole clip


@pytest.fixture(scope="module")
def frames():
    capture = cv2.VideoCapture("sample_videos/clips/vtest.avi")
    images = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    assert len(images) > 700
    return images


def look(image, box=VAN):
    return signatures(image, np.array([box], np.float32))[0]


def repainted(image, gains, box=VAN):
    x1, y1, x2, y2 = box.astype(int)
    out = image.copy()
    out[y1:y2, x1:x2] = np.clip(out[y1:y2, x1:x2] * np.array(gains), 0, 255).astype(np.uint8)
    return out


def infrared(image):
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize(
    "later, same",
    [
        (lambda f: look(f[400]), True),  # 40 s later, people passing
        (lambda f: look(f[790]), True),  # the end of the clip
        (lambda f: look(f[0], VAN + [6, 3, 6, 3]), True),  # the box jittered by a tenth of its size
        (lambda f: look(f[0], VAN + [0, 8, 0, 8]), True),
        (lambda f: look(np.clip(f[0] * 0.45, 0, 255).astype(np.uint8)), True),  # dusk, a cloud
        (lambda f: look(infrared(f[0])), True),  # the camera switched to IR: compared by structure
        (lambda f: look(repainted(f[0], (0.35, 0.35, 0.85))), False),  # the same van, red
        (lambda f: look(repainted(f[0], (0.8, 0.45, 0.3))), False),  # the same van, blue
        (lambda f: look(f[0], np.array([320, 420, 400, 482], np.float32)), False),  # the lawn
        (lambda f: look(f[0], np.array([300, 150, 380, 212], np.float32)), False),  # the building
    ],
    ids=["40 s later", "end of clip", "jitter 6,3", "jitter 0,8", "dark", "infrared", "red van", "blue van", "lawn", "building"],
)
def test_same_object_or_another(frames, later, same):
    assert same_object(look(frames[0]), later(frames)) is same


def test_one_object_across_the_clip_correlates_highly(frames):
    """Measured: the van against itself every 2 s of the clip; the margin to SAME_STRUCTURE."""
    first = look(frames[0])
    scores = [correlation(first, look(image)) for image in frames[::20]]
    assert min(scores) > 0.9


def test_monochrome_frames_carry_no_colour_and_empty_input_is_empty(frames):
    assert np.isnan(look(infrared(frames[0]))[-2:]).all()
    assert not np.isnan(look(frames[0])).any()
    assert signatures(frames[0], np.zeros((0, 4), np.float32)).shape == (0, SIZE)
    # boxes touching or leaving the frame are clipped, never an empty crop
    edge = signatures(frames[0], np.array([[-50, -50, 5, 5], [760, 570, 900, 700]], np.float32))
    assert edge.shape == (2, SIZE) and np.isfinite(edge[:, :-2]).all()
