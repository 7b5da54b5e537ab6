"""Pre- and post-processing of the two YOLO output layouts the shared models use.

Ultralytics (YOLOv8/YOLO11): input RGB 0..1, letterbox centred; output [1, 4+nc, N] of
(cx, cy, w, h) in input pixels followed by nc class scores (no objectness).
YOLOX: input BGR 0..255, letterbox at the top-left; output [1, N, 5+nc] of grid offsets
(x, y, log w, log h), objectness and nc class scores, on grids of strides 8/16/32.

Both decoders filter by confidence *before* NMS: at a 0.25 threshold a frame keeps tens of
boxes out of thousands, and NMS on thousands of boxes costs as much as the model.
"""

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

PAD_VALUE = 114


class Layout(StrEnum):
    ULTRALYTICS = "ultralytics"
    YOLOX = "yolox"


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

    Centred padding rounds as Ultralytics' LetterBox does, so boxes match its predictions.
    """
    height, width = image.shape[:2]
    scale = min(size[0] / height, size[1] / width)
    if centred:
        new_w, new_h = round(width * scale), round(height * scale)
        dw, dh = (size[1] - new_w) / 2, (size[0] - new_h) / 2
        top, left = round(dh - 0.1), round(dw - 0.1)
    else:
        new_w, new_h = int(width * scale), int(height * scale)
        top, left = 0, 0
    canvas = np.full((size[0], size[1], 3), PAD_VALUE, np.uint8)
    window = canvas[top : top + new_h, left : left + new_w]
    if (new_w, new_h) == (width, height):
        window[:] = image
    else:  # resize straight into the canvas: no intermediate image, no border copy
        cv2.resize(image, (new_w, new_h), dst=window, interpolation=cv2.INTER_LINEAR)
    return canvas, Letterbox(scale=scale, pad_x=left, pad_y=top)


def to_blob(canvas: np.ndarray, layout: Layout) -> np.ndarray:
    """HWC BGR uint8 -> NCHW float32 as the layout expects."""
    if layout is Layout.ULTRALYTICS:
        return cv2.dnn.blobFromImage(canvas, scalefactor=1 / 255, swapRB=True)
    return cv2.dnn.blobFromImage(canvas, scalefactor=1.0, swapRB=False)


def detect_layout(output_shape: list, class_count: int | None) -> tuple[Layout, int]:
    """Tell the layout (and class count) from the output shape [1, a, b].

    Ultralytics puts the per-box channels first (4+nc is far smaller than the anchor count),
    YOLOX puts them last (5+nc).
    """
    if len(output_shape) != 3 or not all(isinstance(d, int) for d in output_shape[1:]):
        raise ValueError(f"expected a [1, a, b] output with fixed sizes, got {output_shape}")
    _, a, b = output_shape
    if a < b:
        layout, channels = Layout.ULTRALYTICS, a - 4
    else:
        layout, channels = Layout.YOLOX, b - 5
    if channels < 1 or (class_count is not None and channels != class_count):
        raise ValueError(f"output {output_shape} does not fit {layout.value} with {class_count} classes")
    return layout, channels


def decode_ultralytics(output: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[1, 4+nc, N] -> (xyxy (k,4), score (k,), class_id (k,)) in input pixels, score >= min_score."""
    rows = output[0]
    best = rows[4:].max(axis=0)
    keep = np.flatnonzero(best >= min_score)  # argmax only over the few kept columns
    class_id = rows[4:, keep].argmax(axis=0)
    cx, cy, w, h = rows[:4, keep]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return xyxy.astype(np.float32), best[keep].astype(np.float32), class_id.astype(np.int32)


def yolox_grid(input_hw: tuple[int, int], strides: tuple[int, ...] = (8, 16, 32)) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell offsets (N, 2) and strides (N, 1) in the order YOLOX emits its anchors."""
    grids, expanded = [], []
    for stride in strides:
        gh, gw = input_hw[0] // stride, input_hw[1] // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        expanded.append(np.full((gh * gw, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(expanded).astype(np.float32)


def decode_yolox(
    output: np.ndarray, grid: np.ndarray, strides: np.ndarray, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[1, N, 5+nc] -> (xyxy, score, class_id) in input pixels; score = objectness x class."""
    rows = output[0]
    if len(rows) != len(grid):
        raise ValueError(f"YOLOX output has {len(rows)} anchors, the input size implies {len(grid)}")
    # score = objectness x class score <= objectness: most rows go before any argmax
    likely = np.flatnonzero(rows[:, 4] >= min_score)
    rows, cells, cell_strides = rows[likely], grid[likely], strides[likely]
    class_id = rows[:, 5:].argmax(axis=1)
    score = rows[:, 4] * rows[np.arange(len(rows)), 5 + class_id]
    keep = score >= min_score
    rows, cells, cell_strides, class_id = rows[keep], cells[keep], cell_strides[keep], class_id[keep]
    centre = (rows[:, :2] + cells) * cell_strides
    half = np.exp(rows[:, 2:4]) * cell_strides / 2
    xyxy = np.concatenate([centre - half, centre + half], axis=1)
    return xyxy.astype(np.float32), score[keep].astype(np.float32), class_id.astype(np.int32)


def non_max_suppression(xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by per-class NMS (OpenCV's batched NMS), best score first."""
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), class_id.tolist(), 0.0, iou)
    return np.asarray(kept, np.int64).reshape(-1)
