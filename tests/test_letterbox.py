"""Letterbox geometry (detector/detect/letterbox.py): where the frame lands in the model input,
and how boxes map back to frame pixels."""

import numpy as np
import pytest

from detector.detect.letterbox import PAD_VALUE, Letterbox, letterbox


def frame(height: int, width: int) -> np.ndarray:
    """A frame with no pixel equal to the pad value, so padding is easy to find."""
    return np.full((height, width, 3), 7, np.uint8)


# (frame h, w), input (h, w), centred -> expected scale, pad_x, pad_y, resized (w, h)
LETTERBOX_CASES = [
    # vtest.avi 768x576 into YOLOv8 640: 640x480, 80 rows above and below
    ((576, 768), (640, 640), True, 640 / 768, 0, 80, (640, 480)),
    # ... into YOLOX 416 at the top-left: 416x312, no offset, padding below only
    ((576, 768), (416, 416), False, 416 / 768, 0, 0, (416, 312)),
    # portrait frame: padding left and right when centred
    ((400, 200), (64, 64), True, 64 / 400, 16, 0, (32, 64)),
    # odd padding rounds as Ultralytics' LetterBox: top = round(dh - 0.1), bottom = the rest
    ((45, 100), (64, 64), True, 0.64, 0, 17, (64, 29)),
    # upscaling a small frame
    ((24, 32), (64, 64), True, 2.0, 0, 8, (64, 48)),
    ((24, 32), (64, 64), False, 2.0, 0, 0, (64, 48)),
    # the frame already has the input size: no resize, no padding
    ((64, 64), (64, 64), True, 1.0, 0, 0, (64, 64)),
    ((64, 64), (64, 64), False, 1.0, 0, 0, (64, 64)),
    # non-square input (height, width)
    ((100, 100), (32, 64), True, 0.32, 16, 0, (32, 32)),
    # top-left mode truncates the resized size as YOLOX's preproc does
    ((30, 70), (64, 64), False, 64 / 70, 0, 0, (64, 27)),
]


@pytest.mark.parametrize("shape, size, centred, scale, pad_x, pad_y, resized", LETTERBOX_CASES)
def test_letterbox_geometry(shape, size, centred, scale, pad_x, pad_y, resized):
    canvas, box = letterbox(frame(*shape), size, centred=centred)
    assert canvas.shape == (size[0], size[1], 3)
    assert canvas.dtype == np.uint8
    assert box.scale == pytest.approx(scale)
    assert (box.pad_x, box.pad_y) == (pad_x, pad_y)
    new_w, new_h = resized
    image_area = np.zeros(canvas.shape[:2], bool)
    image_area[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = True
    assert (canvas[image_area] == 7).all(), "the resized frame sits at (pad_x, pad_y)"
    assert (canvas[~image_area] == PAD_VALUE).all(), "everything else is grey 114"


def test_letterbox_keeps_the_frame_untouched():
    image = frame(576, 768)
    before = image.copy()
    letterbox(image, (640, 640), centred=True)
    assert (image == before).all()


@pytest.mark.parametrize(
    "shape, size, centred",
    [
        ((576, 768), (640, 640), True),
        ((576, 768), (416, 416), False),
        ((400, 200), (64, 64), True),
        ((45, 100), (64, 64), True),
        ((24, 32), (64, 64), False),
        ((100, 100), (32, 64), True),
    ],
)
def test_to_frame_inverts_the_letterbox(shape, size, centred):
    _, box = letterbox(frame(*shape), size, centred=centred)
    rng = np.random.default_rng(0)
    height, width = shape
    xy1 = rng.uniform(0, [width / 2, height / 2], size=(20, 2))
    xyxy = np.concatenate([xy1, xy1 + rng.uniform(1, [width / 2, height / 2], size=(20, 2))], axis=1).astype(np.float32)
    in_input = xyxy * box.scale + np.array([box.pad_x, box.pad_y] * 2, np.float32)
    back = box.to_frame(in_input)
    np.testing.assert_allclose(back, xyxy, rtol=1e-5, atol=1e-3)


def test_to_frame_known_values():
    box = Letterbox(scale=0.5, pad_x=10, pad_y=20)
    np.testing.assert_allclose(box.to_frame(np.array([[10, 20, 60, 70]], np.float32)), [[0, 0, 100, 100]])
    assert box.to_frame(np.zeros((0, 4), np.float32)).shape == (0, 4)


def test_letterbox_of_a_pixel_lands_where_to_frame_says():
    """A bright pixel in the frame must appear in the canvas at frame * scale + pad."""
    image = frame(576, 768)
    image[300:310, 500:510] = 255
    canvas, box = letterbox(image, (640, 640), centred=True)
    ys, xs = np.nonzero(canvas[:, :, 0] > 130)  # half-way between 7 and 255: edges blend
    found = box.to_frame(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32))[0]
    np.testing.assert_allclose(found, [500, 300, 510, 310], atol=1.5)
