"""Model layouts as codecs: each owns its pre-processing and its decoding, and says whether it
applies to a model, from the model's metadata or from its output shape.

| codec            | output                                                         | input                          |
|------------------|----------------------------------------------------------------|--------------------------------|
| UltralyticsCodec | [B, 4+nc, N]: cx, cy, w, h (input pixels), nc class scores     | RGB 0..1, letterbox centred    |
| YoloxCodec       | [B, N, 5+nc]: x, y, log w, log h on grids, objectness, scores  | BGR 0..255, letterbox top-left |
| EndToEndCodec    | [B, N, 6]: x1, y1, x2, y2 (input pixels), score, class; no NMS | RGB 0..1, letterbox centred    |
| UltralyticsRawCodec | [B, 64+nc, N]: an Ultralytics head cut before its decoding (`detector quantize`): 4x16 distance bins, nc class logits | as Ultralytics |

`choose_codec` tries `LAYOUTS` in order, on the metadata first and then on the output shape (the
raw head only by its metadata: an 84-channel Ultralytics output fits its shape too). A new layout
is one `Codec` subclass and one entry in `LAYOUTS`.

Decoders filter by score before anything else: at a 0.25 threshold a frame keeps tens of boxes
out of thousands, and argmax and NMS on thousands of boxes cost as much as the model.
"""

import ast
import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

import cv2
import numpy as np

from detector.detect.letterbox import Letterbox, letterbox
from detector.detect.nms import non_max_suppression
from detector.detections import Detections
from detector.errors import ModelError

Shape = Sequence[int | str | None]  # ONNX Runtime gives a dynamic axis as a name or None
Decoded = tuple[np.ndarray, np.ndarray, np.ndarray]  # xyxy (k, 4) f32, score (k,) f32, class_id (k,) i32
LAYOUT_KEY = "detector_layout"  # metadata naming the codec, where the output alone cannot tell (a raw head)


class Codec(ABC):
    """One output layout, bound to the model's input size (height, width)."""

    name: ClassVar[str]
    summary: ClassVar[str]  # the output it reads, for the error listing the supported layouts
    centred: ClassVar[bool]  # letterbox centred (Ultralytics) or at the top-left (YOLOX)
    rgb_0_1: ClassVar[bool]  # RGB scaled to 0..1 (Ultralytics), else BGR 0..255 (YOLOX)
    needs_nms: ClassVar[bool] = True
    by_shape: ClassVar[bool] = True  # else chosen only where the metadata claims it, and then no other

    def __init__(self, input_hw: tuple[int, int]) -> None:
        self.input_hw = input_hw

    @classmethod
    def claims(cls, metadata: Mapping[str, str]) -> bool:
        """Whether the model's metadata names this layout (exports without metadata: never)."""
        return False

    @classmethod
    @abstractmethod
    def fits(cls, output_shape: Shape, input_hw: tuple[int, int]) -> bool:
        """Whether an output of this shape can be this layout for this input size."""

    @classmethod
    def class_count(cls, output_shape: Shape) -> int | None:
        """The class count the output shape implies; None where the shape does not tell."""
        return None

    @abstractmethod
    def decode(self, output: np.ndarray, min_score: float) -> Decoded:
        """One frame's output (no batch axis) -> boxes in input pixels with score >= min_score."""

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """BGR frames of any sizes -> an NCHW float32 batch and each frame's letterbox."""
        canvases, boxes = zip(*(letterbox(image, self.input_hw, centred=self.centred) for image in images))
        return self.to_blob(canvases), list(boxes)

    def to_blob(self, canvases: Sequence[np.ndarray]) -> np.ndarray:
        """HWC BGR uint8 canvases of the input size -> NCHW float32 as the model expects."""
        if self.rgb_0_1:
            return cv2.dnn.blobFromImages(canvases, scalefactor=1 / 255, swapRB=True)
        return cv2.dnn.blobFromImages(canvases, scalefactor=1.0, swapRB=False)

    def postprocess(
        self, output: np.ndarray, box: Letterbox, frame_shape: tuple[int, ...], min_score: float, nms_iou: float
    ) -> Detections:
        """One frame's output -> `Detections` in frame pixels, after NMS where the layout needs it."""
        xyxy, score, class_id = self.decode(output, min_score)
        if self.needs_nms:
            keep = non_max_suppression(xyxy, score, class_id, nms_iou)
            xyxy, score, class_id = xyxy[keep], score[keep], class_id[keep]
        frame_xyxy = box.to_frame(xyxy)
        height, width = frame_shape[:2]
        np.clip(frame_xyxy, 0, [width, height, width, height], out=frame_xyxy)
        return Detections(xyxy=frame_xyxy.astype(np.float32), confidence=score, class_id=class_id)


class UltralyticsCodec(Codec):
    """YOLOv8/YOLO11 exports: (cx, cy, w, h) then nc class scores per anchor (no objectness)."""

    name = "ultralytics"
    summary = "Ultralytics YOLOv8/YOLO11 [B, 4+nc, N]"
    centred, rgb_0_1 = True, True

    @classmethod
    def claims(cls, metadata: Mapping[str, str]) -> bool:
        return metadata.get("task") == "detect" and not ultralytics_end2end(metadata) and LAYOUT_KEY not in metadata

    @classmethod
    def fits(cls, output_shape: Shape, input_hw: tuple[int, int]) -> bool:
        sizes = _fixed_sizes(output_shape)  # channels first: 4+nc is far below the anchor count
        return sizes is not None and 4 < sizes[0] < sizes[1]

    @classmethod
    def class_count(cls, output_shape: Shape) -> int | None:
        return output_shape[1] - 4

    def decode(self, output: np.ndarray, min_score: float) -> Decoded:
        best = output[4:].max(axis=0)
        keep = np.flatnonzero(best >= min_score)  # argmax only over the few kept columns
        class_id = output[4:, keep].argmax(axis=0)
        cx, cy, w, h = output[:4, keep]
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return xyxy.astype(np.float32), best[keep].astype(np.float32), class_id.astype(np.int32)


class YoloxCodec(Codec):
    """YOLOX exports: per anchor of the stride 8/16/32 grids, offsets (x, y, log w, log h),
    objectness and nc class scores; score = objectness x class score."""

    name = "yolox"
    summary = "YOLOX [B, N, 5+nc] on stride 8/16/32 grids"
    centred, rgb_0_1 = False, False

    def __init__(self, input_hw: tuple[int, int]) -> None:
        super().__init__(input_hw)
        self._grid, self._strides = anchor_grid(tuple(input_hw))

    @classmethod
    def fits(cls, output_shape: Shape, input_hw: tuple[int, int]) -> bool:
        # the anchor count must be the grid's, or every box would decode in the wrong cell
        sizes = _fixed_sizes(output_shape)
        return sizes is not None and sizes[1] > 5 and sizes[0] == len(anchor_grid(tuple(input_hw))[0])

    @classmethod
    def class_count(cls, output_shape: Shape) -> int | None:
        return output_shape[2] - 5

    def decode(self, output: np.ndarray, min_score: float) -> Decoded:
        # score = objectness x class score <= objectness: most rows go before any argmax
        likely = np.flatnonzero(output[:, 4] >= min_score)
        rows, cells, cell_strides = output[likely], self._grid[likely], self._strides[likely]
        class_id = rows[:, 5:].argmax(axis=1)
        score = rows[:, 4] * rows[np.arange(len(rows)), 5 + class_id]
        keep = score >= min_score
        rows, cells, cell_strides, class_id = rows[keep], cells[keep], cell_strides[keep], class_id[keep]
        centre = (rows[:, :2] + cells) * cell_strides
        half = np.exp(rows[:, 2:4]) * cell_strides / 2
        xyxy = np.concatenate([centre - half, centre + half], axis=1)
        return xyxy.astype(np.float32), score[keep].astype(np.float32), class_id.astype(np.int32)


class EndToEndCodec(Codec):
    """NMS-free exports (YOLOv10, YOLO26, Ultralytics `nms=True`): the graph already kept the
    final boxes, x1, y1, x2, y2 in input pixels, then score and class id. Input as Ultralytics."""

    name = "end2end"
    summary = "end-to-end [B, N, 6] of x1, y1, x2, y2, score, class"
    centred, rgb_0_1 = True, True
    needs_nms = False

    @classmethod
    def claims(cls, metadata: Mapping[str, str]) -> bool:
        return ultralytics_end2end(metadata)

    @classmethod
    def fits(cls, output_shape: Shape, input_hw: tuple[int, int]) -> bool:
        sizes = _fixed_sizes(output_shape)
        return sizes is not None and sizes[1] == 6

    def decode(self, output: np.ndarray, min_score: float) -> Decoded:
        score = output[:, 4]
        rows = output[(score >= min_score) & (score > 0)]  # unused rows are zero padding
        return rows[:, :4].astype(np.float32), rows[:, 4].astype(np.float32), rows[:, 5].astype(np.int32)


class UltralyticsRawCodec(Codec):
    """An Ultralytics head cut before its decoding by `detector quantize` (metadata `detector_layout:
    ultralytics-raw`): per anchor of the stride 8/16/32 grids, 4 x 16 distance bins (left, top,
    right, bottom; DFL) then nc class logits. The model's own decoding (a softmax over every
    anchor's bins, the anchor grid, a sigmoid per score) cost a sixth of an INT8 yolov8n's run on a
    720p frame's input; here it runs only for the few anchors whose best class clears the score,
    and the threshold is compared on the logit, before any sigmoid."""

    name = "ultralytics-raw"
    summary = "Ultralytics head before its decoding [B, 64+nc, N] (detector quantize)"
    centred, rgb_0_1 = True, True
    by_shape = False
    BINS = 16  # Ultralytics' reg_max: distances in stride units 0..15, as an expectation over bins

    def __init__(self, input_hw: tuple[int, int]) -> None:
        super().__init__(input_hw)
        cells, self._strides = anchor_grid(tuple(input_hw))
        self._centres = cells + 0.5  # Ultralytics anchors sit at the cells' centres

    @classmethod
    def claims(cls, metadata: Mapping[str, str]) -> bool:
        return metadata.get(LAYOUT_KEY) == cls.name

    @classmethod
    def fits(cls, output_shape: Shape, input_hw: tuple[int, int]) -> bool:
        sizes = _fixed_sizes(output_shape)
        return sizes is not None and sizes[0] > 4 * cls.BINS and sizes[1] == len(anchor_grid(tuple(input_hw))[0])

    @classmethod
    def class_count(cls, output_shape: Shape) -> int | None:
        return output_shape[1] - 4 * cls.BINS

    def decode(self, output: np.ndarray, min_score: float) -> Decoded:
        logits = output[4 * self.BINS :]
        best = logits.max(axis=0)
        with np.errstate(divide="ignore"):  # min_score 0 or 1: a logit of -inf or +inf
            keep = np.flatnonzero(best >= np.log(min_score) - np.log1p(-min_score))
        class_id = logits[:, keep].argmax(axis=0)
        score = 1 / (1 + np.exp(-best[keep]))
        bins = output[: 4 * self.BINS, keep].reshape(4, self.BINS, -1)
        weights = np.exp(bins - bins.max(axis=1, keepdims=True))  # softmax over each side's bins
        distance = (weights * np.arange(self.BINS, dtype=np.float32)[:, None]).sum(axis=1) / weights.sum(axis=1)
        centres, strides = self._centres[keep], self._strides[keep]
        xyxy = np.concatenate([centres - distance[:2].T, centres + distance[2:].T], axis=1) * strides
        return xyxy.astype(np.float32), score.astype(np.float32), class_id.astype(np.int32)


LAYOUTS: tuple[type[Codec], ...] = (UltralyticsCodec, YoloxCodec, EndToEndCodec, UltralyticsRawCodec)


def choose_codec(metadata: Mapping[str, str], output_shape: Shape, input_hw: tuple[int, int]) -> type[Codec]:
    """The first layout that the metadata claims and the output shape fits, else the first that
    the shape fits (never a raw head's, nor another where the metadata says raw head); a
    ModelError listing the supported layouts when none does."""
    task = metadata.get("task")
    if task not in (None, "detect"):
        raise ModelError(f"an Ultralytics '{task}' model: only detection models are supported")
    claimed = [codec for codec in LAYOUTS if codec.claims(metadata)]
    only = [codec for codec in claimed if not codec.by_shape]  # a raw head read as another layout decodes nonsense
    for codec in only or (*claimed, *(codec for codec in LAYOUTS if codec.by_shape)):
        if codec.fits(output_shape, input_hw):
            return codec
    supported = "; ".join(codec.summary for codec in LAYOUTS)
    raise ModelError(f"output {list(output_shape)} fits none of the supported layouts ({supported})")


def metadata_value(metadata: Mapping[str, str], key: str) -> object:
    """An ONNX metadata entry as the Python value Ultralytics wrote with str(): dicts, lists and
    booleans are literals, plain words (`task: detect`) stay text; None when absent."""
    text = metadata.get(key)
    if text is None:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def ultralytics_end2end(metadata: Mapping[str, str]) -> bool:
    """Ultralytics' own test (AutoBackend): an `end2end` model or an export with `nms=True`."""
    args = metadata_value(metadata, "args")
    return metadata_value(metadata, "end2end") is True or (isinstance(args, dict) and args.get("nms") is True)


@functools.lru_cache(maxsize=64)  # a codec is made per region window each frame: its grid is not
def anchor_grid(input_hw: tuple[int, int], strides: tuple[int, ...] = (8, 16, 32)) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell offsets (N, 2) and strides (N, 1) in the order YOLOX and Ultralytics emit their
    anchors (stride by stride, row-major); read-only, shared."""
    grids, expanded = [], []
    for stride in strides:
        gh, gw = input_hw[0] // stride, input_hw[1] // stride
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        expanded.append(np.full((gh * gw, 1), stride))
    grid, grid_strides = np.concatenate(grids).astype(np.float32), np.concatenate(expanded).astype(np.float32)
    grid.flags.writeable = grid_strides.flags.writeable = False
    return grid, grid_strides


def _fixed_sizes(output_shape: Shape) -> tuple[int, int] | None:
    """(a, b) of an output [batch, a, b] whose a and b are fixed; None for any other shape."""
    if len(output_shape) == 3 and all(isinstance(d, int) for d in output_shape[1:]):
        return output_shape[1], output_shape[2]
    return None
