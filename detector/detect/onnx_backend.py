"""ONNX Runtime backend for every layout in `layouts.LAYOUTS`, chosen from the model itself."""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from detector.detect.base import Detector, file_digest, read_names_file, shifted
from detector.detect.coco import COCO_NAMES
from detector.detect.layouts import Codec, Shape, choose_codec, metadata_value
from detector.detect.letterbox import Letterbox, fit, frame_shaped_input, letterbox
from detector.detect.regions import Region, window
from detector.detections import Detections
from detector.errors import ModelError

log = logging.getLogger(__name__)
ort.set_default_logger_severity(3)  # onnxruntime's own warnings would bypass our logging

# A dynamic-shape model's long side, the size the shared models were trained at (model.imgsz),
# and the stride its input sides must be a multiple of where the model's metadata does not say.
NATIVE_SIZE = 640
STRIDE = 32


class OnnxDetector(Detector):
    """A model of any supported layout; a codec does its pre- and post-processing.

    A model with a fixed input size letterboxes every frame into it (`codec`). One with a dynamic
    height and width (a `dynamic=True` export) gets an input shaped like each frame: the long side
    at `imgsz`, the short side padded only up to the stride (1280x720 -> 640x384, about 0.6x the
    compute of 640x640, the same detections); `fit_frame=False` gives it a square `imgsz` input.
    The codec of each frame size is chosen once: a camera keeps its size, a new size gets its own.

    A model with a dynamic batch axis runs `detect_batch` as one batch per input shape
    (`batched`); one with a fixed batch of 1 runs the frames one at a time.
    """

    def __init__(
        self,
        path: Path,
        *,
        min_score: float,
        nms_iou: float,
        threads: int = 1,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        names_file: Path | None = None,
        imgsz: int = NATIVE_SIZE,
        fit_frame: bool = True,
    ) -> None:
        self.path = Path(path)
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.session = _open_session(self.path, threads, providers)
        self.digest = file_digest(self.path)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.batched, dynamic_hw, self.input_hw = _input_geometry(self.path, model_input, imgsz)
        self.fits_frame = dynamic_hw and fit_frame
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.stride = int(metadata_value(metadata, "stride") or STRIDE)
        output_shape = self._output_shape()
        try:
            self.layout = choose_codec(metadata, output_shape, self.input_hw)
        except ModelError as exc:
            raise ModelError(f"{self.path}: not a supported YOLO detection model: {exc}") from None
        self.names = self._class_names(self.layout, output_shape, metadata, names_file)
        self.codec: Codec = self.layout(self.input_hw)  # the fixed input's, or a square frame's
        self._frame_codecs: dict[tuple[int, int], Codec] = {}  # by frame (height, width): one per camera
        log.info(
            "model %s: %s layout, input %s, %s batch, %d classes, providers %s",
            self.path.name,
            self.layout.name,
            f"shaped to the frame (long side {imgsz})" if self.fits_frame else f"{self.input_hw[1]}x{self.input_hw[0]}",
            "dynamic" if self.batched else "fixed",
            len(self.names),
            self.session.get_providers(),
        )

    def input_hw_for(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        return self.codec_for(tuple(frame_hw)).input_hw

    def shaped_input(self) -> tuple[int, int] | None:
        return (max(self.input_hw), self.stride) if self.fits_frame else None

    def input_fit(self, frame_hw: tuple[int, int]) -> tuple[Letterbox, tuple[int, int]]:
        """How a whole frame of `frame_hw` fits the model input, and that input's (height, width)."""
        codec = self.codec_for(tuple(frame_hw))
        return fit(frame_hw, codec.input_hw, codec.centred)[0], codec.input_hw

    def codec_for(self, frame_hw: tuple[int, int], long_side: int | None = None) -> Codec:
        """The codec, bound to its input size, for frames of `frame_hw` (height, width), or for
        crops of that size whose long side is scaled to `long_side` (regions)."""
        if not self.fits_frame:
            return self.codec
        if long_side is not None:  # a codec is only its input size: nothing worth keeping per crop
            return self.layout(frame_shaped_input(frame_hw, long_side, self.stride))
        codec = self._frame_codecs.get(frame_hw)
        if codec is None:
            input_hw = frame_shaped_input(frame_hw, max(self.input_hw), self.stride)
            codec = self._frame_codecs[frame_hw] = self.layout(input_hw)
            log.info("model %s: %dx%d frames, input %dx%d", self.path.name, *frame_hw[::-1], *codec.input_hw[::-1])
        return codec

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """One `Detections` per frame, in order. A dynamic batch runs once per input shape (the
        frames of one camera together); a fixed batch of 1 runs frame by frame."""
        return self._detect_each(images, [self.codec_for(image.shape[:2]) for image in images])

    def detect_regions(self, image: np.ndarray, regions: Sequence[Region]) -> list[Detections]:
        """A window of the whole frame's input per region at the frame's scale (the very pixels,
        on the very grid, the whole frame would give the model), a crop scaled to its long side
        per `native` region; boxes in frame pixels."""
        found: dict[int, Detections] = {}
        native = [i for i, r in enumerate(regions) if r.native]
        if native:
            crops = [image[regions[i].y1 : regions[i].y2, regions[i].x1 : regions[i].x2] for i in native]
            codecs = [self.codec_for(crop.shape[:2], regions[i].long_side) for crop, i in zip(crops, native)]
            for i, detections in zip(native, self._detect_each(crops, codecs)):
                found[i] = shifted(detections, regions[i].x1, regions[i].y1)
        windowed = [i for i, r in enumerate(regions) if not r.native]
        if windowed:
            codec = self.codec_for(image.shape[:2])
            canvas, box = letterbox(image, codec.input_hw, centred=codec.centred)
            windows = [window(regions[i], box, codec.input_hw, self.stride) for i in windowed]
            cuts = [np.ascontiguousarray(canvas[v1:v2, u1:u2]) for u1, v1, u2, v2 in windows]
            # a window's boxes map back through the frame's letterbox, moved by the window's corner
            boxes = [Letterbox(box.scale, box.pad_x - u1, box.pad_y - v1) for u1, v1, _, _ in windows]
            for i, detections in zip(windowed, self._infer_each(cuts, boxes, image.shape)):
                found[i] = detections
        return [found[i] for i in range(len(regions))]

    def _detect_each(self, images: list[np.ndarray], codecs: list[Codec]) -> list[Detections]:
        """Each image letterboxed into its codec's input; one run per input shape where the batch is dynamic."""
        found: dict[int, Detections] = {}
        for indices in self._batches([codec.input_hw for codec in codecs]):
            found.update(zip(indices, self._run(codecs[indices[0]], [images[i] for i in indices])))
        return [found[index] for index in range(len(images))]

    def _infer_each(self, canvases: list[np.ndarray], boxes: list[Letterbox], frame_shape: tuple[int, ...]) -> list[Detections]:
        """Model-ready canvases (windows of a letterboxed frame) and how each maps to the frame."""
        found: dict[int, Detections] = {}
        for indices in self._batches([canvas.shape[:2] for canvas in canvases]):
            codec = self.layout(canvases[indices[0]].shape[:2])
            blob = codec.to_blob([canvases[i] for i in indices])
            found.update(zip(indices, self._infer(codec, blob, [boxes[i] for i in indices], [frame_shape] * len(indices))))
        return [found[index] for index in range(len(canvases))]

    def _batches(self, input_hws: list[tuple[int, int]]) -> list[list[int]]:
        """Indices run together: those of one input shape where the batch axis is dynamic, else one by one."""
        if not self.batched:
            return [[index] for index in range(len(input_hws))]
        by_input: dict[tuple[int, int], list[int]] = {}
        for index, input_hw in enumerate(input_hws):
            by_input.setdefault(tuple(input_hw), []).append(index)
        return list(by_input.values())

    def _run(self, codec: Codec, images: list[np.ndarray]) -> list[Detections]:
        """One session.run over `images`, all letterboxed into `codec`'s input, each its own way."""
        blob, boxes = codec.preprocess(images)
        return self._infer(codec, blob, boxes, [image.shape for image in images])

    def _infer(self, codec: Codec, blob: np.ndarray, boxes: list[Letterbox], shapes: list[tuple[int, ...]]) -> list[Detections]:
        outputs = self.session.run(None, {self.input_name: blob})[0]
        return [
            codec.postprocess(output, box, shape, self.min_score, self.nms_iou)
            for output, box, shape in zip(outputs, boxes, shapes)
        ]

    def _output_shape(self) -> Shape:
        """The first output's shape. Where it has dynamic sizes (a `dynamic=True` export), the
        shape one run on a blank input gives: the layout and class count need real sizes."""
        shape = self.session.get_outputs()[0].shape
        if all(isinstance(d, int) for d in shape[1:]):
            return shape
        blank = np.zeros((1, 3, *self.input_hw), np.float32)
        try:
            return list(self.session.run(None, {self.input_name: blank})[0].shape)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            reason = str(exc).strip().splitlines()[0][:200]
            raise ModelError(f"{self.path}: a trial run on a blank {blank.shape} input failed: {reason}") from None

    def _class_names(
        self, layout: type[Codec], output_shape: Shape, metadata: Mapping[str, str], names_file: Path | None
    ) -> list[str]:
        """A names file, else the model's metadata, else COCO-80 for an 80-class model."""
        declared = read_names_file(names_file) if names_file is not None else _names_from_metadata(metadata)
        class_count = layout.class_count(output_shape)
        if declared and class_count is not None and len(declared) != class_count:
            raise ModelError(
                f"{self.path}: {len(declared)} class names do not fit the {layout.name} output "
                f"{list(output_shape)} of {class_count} classes"
            )
        return declared or _default_names(self.path, class_count)


def _open_session(path: Path, threads: int, providers: tuple[str, ...]) -> ort.InferenceSession:
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not a model file")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    available = ort.get_available_providers()
    usable = [p for p in providers if p in available]
    if not usable:
        raise ModelError(f"none of the execution providers {list(providers)} is available here (available: {available})")
    for skipped in set(providers) - set(usable):
        log.warning("execution provider %s is not available here; using %s", skipped, usable)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # OpenCV's resizing, blobs and background models are part of each inference too: the same
    # threads (its default, a thread per core, cost 1.7x the CPU of one thread on a 720p resize
    # here, and a camera's process is one of many on a box). Process-wide: one model per worker.
    cv2.setNumThreads(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=usable)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        reason = str(exc).strip().splitlines()[0][:200]
        raise ModelError(f"{path}: not a loadable ONNX model (truncated or wrong file?): {reason}") from None


def _input_geometry(path: Path, model_input: ort.NodeArg, imgsz: int) -> tuple[bool, bool, tuple[int, int]]:
    """(dynamic batch axis?, dynamic height and width?, input (height, width)) of an image input
    [batch, 3, height, width]; a dynamic side is `imgsz`."""
    shape = model_input.shape
    is_image = len(shape) == 4 and (shape[1] == 3 or not isinstance(shape[1], int))
    if model_input.type != "tensor(float)" or not is_image:
        raise ModelError(f"{path}: expected a float32 image input [batch, 3, height, width], got {model_input.type} {shape}")
    batch = shape[0]
    if isinstance(batch, int) and batch != 1:
        raise ModelError(f"{path}: the input has a fixed batch of {batch}; export it with batch 1 or a dynamic batch")
    height, width = (d if isinstance(d, int) else imgsz for d in shape[2:])
    return not isinstance(batch, int), not any(isinstance(d, int) for d in shape[2:]), (height, width)


def _names_from_metadata(metadata: Mapping[str, str]) -> list[str] | None:
    """Ultralytics stores `names` as the repr of a dict {index: name}."""
    names = metadata_value(metadata, "names")
    if isinstance(names, dict):
        return [str(names[i]) for i in sorted(names)]
    if isinstance(names, list | tuple):
        return [str(n) for n in names]
    return None


def _default_names(path: Path, class_count: int | None) -> list[str]:
    if class_count == len(COCO_NAMES):
        log.info("model %s carries no class names; using COCO-80 names", path.name)
        return list(COCO_NAMES)
    counted = f"has {class_count} classes" if class_count is not None else "does not say how many classes it has"
    raise ModelError(f"{path}: the model {counted} and no names; set model.names to a names file")
