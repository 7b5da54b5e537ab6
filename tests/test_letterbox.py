"""Letterbox geometry (detector/detect/letterbox.py): where the frame lands in the model input,
how boxes map back to frame pixels, and the input a dynamic-shape model gets for a frame."""

import numpy as np
import pytest

from detector.detect.letterbox import PAD_VALUE, Letterbox, frame_shaped_input, letterbox


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


# ---------------------------------------------------------------- input shaped to the frame

# frame (h, w), long side, stride -> model input (h, w)
FRAME_SHAPED_CASES = [
    pytest.param((576, 768), 640, 32, (480, 640), id="vtest 4:3"),
    pytest.param((720, 1280), 640, 32, (384, 640), id="720p 16:9: 360 rows rounded up"),
    pytest.param((1080, 1920), 640, 32, (384, 640), id="1080p"),
    pytest.param((240, 320), 640, 32, (480, 640), id="320x240 upscaled"),
    pytest.param((1280, 720), 640, 32, (640, 384), id="portrait"),
    pytest.param((1000, 1000), 640, 32, (640, 640), id="square"),
    pytest.param((804, 1920), 640, 32, (288, 640), id="2.39:1: 268 rows"),
    pytest.param((481, 640), 640, 32, (512, 640), id="one row past a multiple"),
    pytest.param((720, 1280), 320, 32, (192, 320), id="long side 320"),
    pytest.param((720, 1280), 640, 64, (384, 640), id="stride 64"),
    pytest.param((10, 4000), 640, 32, (32, 640), id="a sliver: at least one stride"),
]


@pytest.mark.parametrize("frame_hw, long_side, stride, expected", FRAME_SHAPED_CASES)
def test_frame_shaped_input(frame_hw, long_side, stride, expected):
    assert frame_shaped_input(frame_hw, long_side, stride) == expected


@pytest.mark.parametrize("frame_hw", [(576, 768), (720, 1280), (1080, 1920), (240, 320), (1280, 720), (804, 1920), (481, 640)])
def test_a_frame_shaped_input_pads_only_the_rounding(frame_hw):
    """The frame fills the input but for fewer than 32 rows or columns, at the scale that puts its
    long side at 640; boxes map back exactly."""
    image = frame(*frame_hw)
    canvas, box = letterbox(image, frame_shaped_input(frame_hw, 640, 32), centred=True)
    assert box.scale == pytest.approx(640 / max(frame_hw))
    padded_rows, padded_cols = (canvas[:, :, 0] == PAD_VALUE).all(axis=1).sum(), (canvas[:, :, 0] == PAD_VALUE).all(axis=0).sum()
    assert padded_rows < 32 and padded_cols < 32
    assert (box.pad_x, box.pad_y) == (padded_cols // 2, padded_rows // 2)
