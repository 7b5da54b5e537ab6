"""ONNX Runtime backend for every layout in `layouts.LAYOUTS`, chosen from the model itself."""

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from detector.detect.base import Detector, file_digest, read_names_file
from detector.detect.coco import COCO_NAMES
from detector.detect.layouts import Codec, Shape, choose_codec, metadata_value
from detector.detections import Detections
from detector.errors import ModelError

log = logging.getLogger(__name__)
ort.set_default_logger_severity(3)  # onnxruntime's own warnings would bypass our logging

# A model with a dynamic height and width (a `dynamic=True` export) gets a square 640 input for
# now, the size the shared models were trained at; fitting the input to the frame's aspect
# ratio (fewer padded rows, less compute) is left to a later change.
DYNAMIC_INPUT_HW = (640, 640)


class OnnxDetector(Detector):
    """A model of any supported layout; `codec` does its pre- and post-processing.

    A model with a dynamic batch axis runs `detect_batch` as one batch (`batched`); one with a
    fixed batch of 1 runs the frames one at a time.
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
    ) -> None:
        self.path = Path(path)
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.session = _open_session(self.path, threads, providers)
        self.digest = file_digest(self.path)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.batched, self.input_hw = _input_geometry(self.path, model_input)
        metadata = self.session.get_modelmeta().custom_metadata_map
        output_shape = self._output_shape()
        try:
            layout = choose_codec(metadata, output_shape, self.input_hw)
        except ModelError as exc:
            raise ModelError(f"{self.path}: not a supported YOLO detection model: {exc}") from None
        self.names = self._class_names(layout, output_shape, metadata, names_file)
        self.codec: Codec = layout(self.input_hw)
        log.info(
            "model %s: %s layout, input %dx%d, %s batch, %d classes, providers %s",
            self.path.name,
            layout.name,
            self.input_hw[1],
            self.input_hw[0],
            "dynamic" if self.batched else "fixed",
            len(self.names),
            self.session.get_providers(),
        )

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        if not self.batched:
            return [self._run([image])[0] for image in images]
        return self._run(images) if images else []

    def _run(self, images: list[np.ndarray]) -> list[Detections]:
        """One session.run over `images`; each frame keeps its own letterbox."""
        blob, boxes = self.codec.preprocess(images)
        outputs = self.session.run(None, {self.input_name: blob})[0]
        return [
            self.codec.postprocess(output, box, image.shape, self.min_score, self.nms_iou)
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


def _input_geometry(path: Path, model_input: ort.NodeArg) -> tuple[bool, tuple[int, int]]:
    """(dynamic batch axis?, input (height, width)) of an image input [batch, 3, height, width]."""
    shape = model_input.shape
    is_image = len(shape) == 4 and (shape[1] == 3 or not isinstance(shape[1], int))
    if model_input.type != "tensor(float)" or not is_image:
        raise ModelError(f"{path}: expected a float32 image input [batch, 3, height, width], got {model_input.type} {shape}")
    batch = shape[0]
    if isinstance(batch, int) and batch != 1:
        raise ModelError(f"{path}: the input has a fixed batch of {batch}; export it with batch 1 or a dynamic batch")
    input_hw = tuple(d if isinstance(d, int) else fallback for d, fallback in zip(shape[2:], DYNAMIC_INPUT_HW))
    return not isinstance(batch, int), input_hw


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
