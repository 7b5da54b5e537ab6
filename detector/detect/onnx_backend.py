"""ONNX Runtime backend for Ultralytics and YOLOX exports, layout detected from the model."""

import ast
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from detector.detect.base import Detector, file_digest, read_names_file
from detector.detect.coco import COCO_NAMES
from detector.detect.layouts import (
    Layout,
    decode_ultralytics,
    decode_yolox,
    detect_layout,
    letterbox,
    non_max_suppression,
    to_blob,
    yolox_grid,
)
from detector.detections import Detections
from detector.errors import ModelError

log = logging.getLogger(__name__)
ort.set_default_logger_severity(3)  # onnxruntime's own warnings would bypass our logging


class OnnxDetector(Detector):
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
        if len(model_input.shape) != 4 or not all(isinstance(d, int) for d in model_input.shape[2:]):
            raise ModelError(f"{self.path}: expected a fixed [1, 3, H, W] input, got {model_input.shape}")
        self.input_hw = (model_input.shape[2], model_input.shape[3])
        declared = _names_from_metadata(self.session)
        if names_file is not None:
            declared = read_names_file(names_file)
        try:
            self.layout, class_count = detect_layout(self.session.get_outputs()[0].shape, len(declared) if declared else None)
        except ValueError as exc:
            raise ModelError(f"{self.path}: not a supported YOLO detection model: {exc}") from None
        self.names = declared or _default_names(self.path, class_count)
        if self.layout is Layout.YOLOX:
            self._grid, self._strides = yolox_grid(self.input_hw)
        log.info(
            "model %s: %s layout, input %dx%d, %d classes, providers %s",
            self.path.name,
            self.layout.value,
            self.input_hw[1],
            self.input_hw[0],
            len(self.names),
            self.session.get_providers(),
        )

    def detect(self, image: np.ndarray) -> Detections:
        blob, box = self.preprocess(image)
        output = self.session.run(None, {self.input_name: blob})[0]
        return self.postprocess(output, box, image.shape)

    def preprocess(self, image: np.ndarray):
        canvas, box = letterbox(image, self.input_hw, centred=self.layout is Layout.ULTRALYTICS)
        return to_blob(canvas, self.layout), box

    def postprocess(self, output: np.ndarray, box, frame_shape) -> Detections:
        if self.layout is Layout.ULTRALYTICS:
            xyxy, score, class_id = decode_ultralytics(output, self.min_score)
        else:
            xyxy, score, class_id = decode_yolox(output, self._grid, self._strides, self.min_score)
        keep = non_max_suppression(xyxy, score, class_id, self.nms_iou)
        frame_xyxy = box.to_frame(xyxy[keep])
        height, width = frame_shape[:2]
        np.clip(frame_xyxy, 0, [width, height, width, height], out=frame_xyxy)
        return Detections(xyxy=frame_xyxy.astype(np.float32), confidence=score[keep], class_id=class_id[keep])


def _open_session(path: Path, threads: int, providers: tuple[str, ...]) -> ort.InferenceSession:
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


def _names_from_metadata(session: ort.InferenceSession) -> list[str] | None:
    """Ultralytics stores `names` as the repr of a dict {index: name}."""
    text = session.get_modelmeta().custom_metadata_map.get("names")
    if not text:
        return None
    try:
        names = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if isinstance(names, dict):
        return [str(names[i]) for i in sorted(names)]
    return [str(n) for n in names]


def _default_names(path: Path, class_count: int) -> list[str]:
    if class_count == len(COCO_NAMES):
        log.info("model %s carries no class names; using COCO-80 names", path.name)
        return list(COCO_NAMES)
    raise ModelError(f"{path}: the model has {class_count} classes and no names; set model.names to a names file")
