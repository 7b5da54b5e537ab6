"""ONNX Runtime backend for every layout in `layouts.LAYOUTS`, chosen from the model itself."""

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from detector.detect.base import Detector, file_digest, read_names_file
from detector.detect.coco import COCO_NAMES
from detector.detect.layouts import Codec, Shape, choose_codec, metadata_value
from detector.detect.letterbox import frame_shaped_input
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

    def codec_for(self, frame_hw: tuple[int, int]) -> Codec:
        """The codec, bound to its input size, for frames of `frame_hw` (height, width)."""
        if not self.fits_frame:
            return self.codec
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
        codecs = [self.codec_for(image.shape[:2]) for image in images]
        if not self.batched:
            return [self._run(codec, [image])[0] for codec, image in zip(codecs, images)]
        by_input: dict[tuple[int, int], list[int]] = {}
        for index, codec in enumerate(codecs):
            by_input.setdefault(codec.input_hw, []).append(index)
        found: dict[int, Detections] = {}
        for indices in by_input.values():
            found.update(zip(indices, self._run(codecs[indices[0]], [images[i] for i in indices])))
        return [found[index] for index in range(len(images))]

    def _run(self, codec: Codec, images: list[np.ndarray]) -> list[Detections]:
        """One session.run over `images`, all letterboxed into `codec`'s input, each its own way."""
        blob, boxes = codec.preprocess(images)
        outputs = self.session.run(None, {self.input_name: blob})[0]
        return [
            codec.postprocess(output, box, image.shape, self.min_score, self.nms_iou)
            for output, box, image in zip(outputs, boxes, images)
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
