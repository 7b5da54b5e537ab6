"""Fitting a frame into a model's input without distorting it, and mapping boxes back."""

import math
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model input: input = frame * scale + (pad_x, pad_y)."""

    scale: float
    pad_x: float
    pad_y: float

    def to_frame(self, xyxy: np.ndarray) -> np.ndarray:
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        return (xyxy - offset) / self.scale


def letterbox(image: np.ndarray, size: tuple[int, int], centred: bool) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect ratio and pad to `size` (height, width) with grey 114.

    Centred padding rounds as Ultralytics' LetterBox does, so boxes match its predictions;
    top-left padding truncates the resized size as YOLOX's `preproc` does.
    """
    height, width = image.shape[:2]
    box, (new_w, new_h) = fit(image.shape[:2], size, centred)
    top, left = int(box.pad_y), int(box.pad_x)
    canvas = np.full((size[0], size[1], 3), PAD_VALUE, np.uint8)
    window = canvas[top : top + new_h, left : left + new_w]
    if (new_w, new_h) == (width, height):
        window[:] = image
    else:  # resize straight into the canvas: no intermediate image, no border copy
        cv2.resize(image, (new_w, new_h), dst=window, interpolation=cv2.INTER_LINEAR)
    return canvas, box


def fit(frame_hw: tuple[int, int], size: tuple[int, int], centred: bool) -> tuple[Letterbox, tuple[int, int]]:
    """How `letterbox` fits a frame of `frame_hw` into `size`, and the resized frame's (width, height)."""
    height, width = frame_hw
    scale = min(size[0] / height, size[1] / width)
    if centred:
        new_w, new_h = round(width * scale), round(height * scale)
        dw, dh = (size[1] - new_w) / 2, (size[0] - new_h) / 2
        top, left = round(dh - 0.1), round(dw - 0.1)
    else:
        new_w, new_h = int(width * scale), int(height * scale)
        top, left = 0, 0
    return Letterbox(scale=scale, pad_x=left, pad_y=top), (new_w, new_h)


def frame_shaped_input(frame_hw: tuple[int, int], long_side: int, stride: int) -> tuple[int, int]:
    """The input (height, width) a dynamic-shape model gets for a frame of `frame_hw`: the long side
    at `long_side`, the short side scaled alike and rounded up to a multiple of `stride`, so the
    letterbox pads only that rounding (768x576 -> 640x480, 1280x720 -> 640x384, 320x240 -> 640x480).

    Rounds as Ultralytics' LetterBox(auto=True) does (the scaled side rounded, then padded up to
    the stride), so the input is the one Ultralytics would choose.
    """
    scale = long_side / max(frame_hw)
    height, width = (max(stride, math.ceil(round(side * scale) / stride) * stride) for side in frame_hw)
    return height, width
