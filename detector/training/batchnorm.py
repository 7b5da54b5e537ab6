"""BatchNorm layers recalibrated on the dataset's frames before fine-tuning.

The shipped `models/yolov8n.pt` came from a fused export: each BatchNorm layer has running mean
0, variance 1 - eps and weight 1, its bias the fused convolution's, so in eval mode it is
y = x + bias and the model is exact. In train mode BatchNorm normalises with the batch's own
statistics instead, every layer's output is pulled to mean 0 and variance 1, and the model's
function collapses on the first step.

Recalibrating keeps each layer's eval-mode function and gives it the statistics its input really
has. A layer computes y = a * x + c with a = weight / sqrt(running_var + eps) and
c = bias - running_mean * a. With the per-channel mean m and variance v of its input, measured by
forward hooks in eval mode over real frames, it becomes

    running_mean = m, running_var = v, weight = a * sqrt(v + eps), bias = c + a * m

which is still a * x + c in eval mode (for an identity layer: weight = sqrt(v + eps), bias =
m + the fused bias), and in train mode, where the batch statistics are close to (m, v), nearly
the same. Every layer's input is measured in one pass: recalibrating changes no layer's output.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.detect.letterbox import letterbox
from detector.detect.quantize import match_boxes
from detector.errors import ModelError

CHECK_IOU = 0.95  # a recalibrated model's box must overlap the base model's this much
CHECK_SCORE = 0.25  # the boxes compared: Ultralytics' default predict threshold
MAX_BOX_SHIFT, MAX_SCORE_CHANGE = 0.05, 1e-3  # raw output drift allowed (input pixels, score): float rounding is ~1e-3, 1e-6


@dataclass(frozen=True)
class Recalibration:
    """What `recalibrate` did: BatchNorm layers, how many of them were identity (a fused export's),
    frames used, and how far the raw output moved on the first batch of them (box coordinates in
    input pixels, class scores)."""

    layers: int
    identity: int
    frames: int
    box_shift: float
    score_change: float


def recalibrate(model, frames: Sequence[np.ndarray], imgsz: int, batch: int = 8) -> Recalibration:
    """Sets each BatchNorm layer of the Ultralytics `model` (torch, float32) to the statistics of its
    input over BGR `frames`, letterboxed square to `imgsz` as the trainer feeds them, keeping its
    eval-mode function (see the module docstring), checked on the raw output of the first batch:
    ModelError if it moved. The model is left in eval mode."""
    import torch

    layers = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    if not layers:
        raise ModelError(
            "the base model has no BatchNorm layers (a fused checkpoint): give an unfused one, e.g. models/yolov8n.pt"
        )
    identity = sum(1 for m in layers.values() if _is_identity(m))
    probe = torch.from_numpy(_blob(frames[:batch], imgsz))
    before = _raw_output(model, probe)
    statistics = _input_statistics(model, layers, frames, imgsz, batch)
    with torch.no_grad():
        for name, layer in layers.items():
            mean, var = (torch.as_tensor(s, dtype=torch.float64) for s in statistics[name])
            scale = layer.weight.double() / torch.sqrt(layer.running_var.double() + layer.eps)
            shift = layer.bias.double() - layer.running_mean.double() * scale
            layer.running_mean.copy_(mean)
            layer.running_var.copy_(var)
            layer.weight.copy_(scale * torch.sqrt(var + layer.eps))
            layer.bias.copy_(shift + scale * mean)
    after = _raw_output(model, probe)
    box_shift = float((after[:, :4] - before[:, :4]).abs().max())
    score_change = float((after[:, 4:] - before[:, 4:]).abs().max())
    if not (box_shift <= MAX_BOX_SHIFT and score_change <= MAX_SCORE_CHANGE):  # NaN fails too
        raise ModelError(
            f"BatchNorm recalibration changed the model's output (boxes by up to {box_shift:.3g} px, "
            f"scores by up to {score_change:.3g}); not training on it"
        )
    return Recalibration(len(layers), identity, len(frames), box_shift, score_change)


def _raw_output(model, blob):
    """The model's decoded output [n, 4 + classes, anchors] in eval mode (Ultralytics' Detect returns it first)."""
    import torch

    model.eval()
    with torch.no_grad():
        output = model(blob)
    return output[0] if isinstance(output, tuple | list) else output


def _is_identity(layer) -> bool:
    """A fused export's layer: running mean 0, running variance + eps = 1, weight 1."""
    import torch

    ones = torch.ones_like(layer.weight)
    return bool(
        torch.allclose(layer.running_mean, torch.zeros_like(ones))
        and torch.allclose(layer.running_var + layer.eps, ones)
        and torch.allclose(layer.weight, ones)
    )


def _input_statistics(model, layers: dict, frames: Sequence[np.ndarray], imgsz: int, batch: int) -> dict:
    """Per layer, (mean, variance) of its input per channel (float64 arrays) over all pixels of `frames`."""
    import torch

    sums: dict[str, list] = {name: [0.0, 0.0, 0] for name in layers}

    def hook(name: str):
        def record(_module, inputs, _output) -> None:
            x = inputs[0].detach().double()
            sums[name][0] = sums[name][0] + x.sum(dim=(0, 2, 3))
            sums[name][1] = sums[name][1] + (x * x).sum(dim=(0, 2, 3))
            sums[name][2] += x.numel() // x.shape[1]

        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(frames), batch):
                model(torch.from_numpy(_blob(frames[start : start + batch], imgsz)))
    finally:
        for handle in handles:
            handle.remove()
    statistics = {}
    for name, (total, squares, count) in sums.items():
        mean = (total / count).numpy()
        statistics[name] = (mean, np.maximum((squares / count).numpy() - mean * mean, 0.0))
    return statistics


def _blob(frames: Sequence[np.ndarray], imgsz: int) -> np.ndarray:
    """BGR frames -> float32 [n, 3, imgsz, imgsz], RGB 0..1, letterboxed centred with grey 114 (Ultralytics' LetterBox)."""
    canvases = [letterbox(frame, (imgsz, imgsz), centred=True)[0] for frame in frames]
    return np.ascontiguousarray(np.stack(canvases)[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


@dataclass(frozen=True)
class Check:
    """The recalibrated checkpoint's boxes against the base's on a few frames (Ultralytics predict,
    score >= CHECK_SCORE): each base box must have one of the same class at IoU >= CHECK_IOU."""

    frames: int
    base_boxes: int
    matched: int
    extra: int

    @property
    def passed(self) -> bool:
        return self.matched == self.base_boxes and self.extra == 0

    def summary(self) -> str:
        return (
            f"{self.matched}/{self.base_boxes} boxes of the base model matched at IoU >= {CHECK_IOU:g}, "
            f"{self.extra} new boxes, on {self.frames} frames"
        )


def check_unchanged(base: Path, recalibrated: Path, frames: Sequence[np.ndarray]) -> Check:
    """The two checkpoints through the pipeline's Ultralytics backend on `frames`; ModelError unless
    the recalibrated one detects exactly what the base one does."""
    import torch

    from detector.detect.ultralytics_backend import UltralyticsDetector

    threads = torch.get_num_threads()  # the backend sets torch's threads; training wants them back
    try:
        before = UltralyticsDetector(base, min_score=CHECK_SCORE, nms_iou=0.5, threads=threads)
        after = UltralyticsDetector(recalibrated, min_score=CHECK_SCORE, nms_iou=0.5, threads=threads)
        base_boxes = matched = extra = 0
        for frame in frames:
            expected, found = before.detect(frame), after.detect(frame)
            pairs = match_boxes(expected, found, min_iou=CHECK_IOU)
            base_boxes, matched, extra = base_boxes + len(expected), matched + len(pairs), extra + len(found) - len(pairs)
    finally:
        torch.set_num_threads(threads)
    check = Check(len(frames), base_boxes, matched, extra)
    if not check.passed:
        raise ModelError(
            f"{recalibrated}: BatchNorm recalibration changed what the model detects ({check.summary()}); not training on it"
        )
    return check
