"""`detector eval`: per-class AP of an ONNX model on a dataset split, through the pipeline's backend.

The model runs as a camera worker runs it (`OnnxDetector`: the layout's letterbox, colours and
decoding; a dynamic model gets an input shaped to each image, long side `imgsz`), with a low
`min_score` so the precision-recall curve runs to its end, and the pipeline's NMS IoU. Its
classes are matched to the dataset's by name: a dataset class the model lacks is reported as
missing (a COCO model on a dataset of roles has `person` and no `vehicle`), a model class the
dataset lacks is ignored. AP is COCO's (pycocotools COCOeval, 101-point interpolation, up to 100
boxes per image and class): AP50 at IoU 0.5, AP50-95 averaged over IoU 0.50, 0.55, ... 0.95,
each class from COCOeval's precision array. The mean is over the classes that have boxes in the
split and that the model has.
"""

import contextlib
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.config.schema import DetectConfig
from detector.dataset.yolo import Labels, YoloDataset
from detector.detect.layouts import metadata_value
from detector.detect.onnx_backend import NATIVE_SIZE, OnnxDetector
from detector.errors import ModelError, SourceError
from detector.training.offline import require

BATCH = 8  # images per detect_batch call
MAX_DETECTIONS = 100  # per image and class, as COCO counts them


@dataclass(frozen=True)
class Found:
    """A model's boxes on one image, in the dataset's class ids: xyxy (k, 4) pixels, score (k,), class_id (k,)."""

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray


@dataclass(frozen=True)
class ClassAP:
    """One dataset class: images and boxes of it in the split; AP None where it cannot be measured
    (the model lacks the class: `missing`; or the split has no box of it)."""

    name: str
    images: int
    boxes: int
    missing: bool
    ap50: float | None
    ap50_95: float | None


@dataclass(frozen=True)
class Evaluation:
    """`detector eval`'s figures, for the command, the model card and benchmarks."""

    model: Path
    dataset: Path
    split: str
    images: int
    imgsz: int
    min_score: float
    nms_iou: float
    classes: tuple[ClassAP, ...]
    seconds: float

    @property
    def measured(self) -> tuple[ClassAP, ...]:
        return tuple(c for c in self.classes if c.ap50 is not None)

    @property
    def mean_ap50(self) -> float | None:
        return float(np.mean([c.ap50 for c in self.measured])) if self.measured else None

    @property
    def mean_ap50_95(self) -> float | None:
        return float(np.mean([c.ap50_95 for c in self.measured])) if self.measured else None

    def of(self, name: str) -> ClassAP:
        return next(c for c in self.classes if c.name == name)

    def table(self) -> str:
        """A Markdown table: one row per dataset class, then the mean."""
        rows = ["| class | images | boxes | AP50 | AP50-95 |", "|---|---:|---:|---:|---:|"]
        for c in self.classes:
            rows.append(f"| {c.name} | {c.images} | {c.boxes} | {_figure(c, c.ap50)} | {_figure(c, c.ap50_95)} |")
        boxes = sum(c.boxes for c in self.measured)
        label = f"mean of {len(self.measured)} class{'es' if len(self.measured) != 1 else ''}"
        rows.append(f"| **{label}** | {self.images} | {boxes} | {_number(self.mean_ap50)} | {_number(self.mean_ap50_95)} |")
        return "\n".join(rows)


def _figure(c: ClassAP, value: float | None) -> str:
    if c.missing:
        return "missing"
    return "no boxes" if value is None else f"{value:.3f}"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def evaluate(
    model: Path,
    dataset: Path,
    split: str = "val",
    *,
    min_score: float = 0.001,
    imgsz: int | None = None,
    threads: int | None = None,
) -> Evaluation:
    """`model` (ONNX) on the images of `dataset`'s `split`; `imgsz` (a dynamic model's long side)
    defaults to the size the model was exported at (its metadata), else 640."""
    require("pycocotools", "measuring AP")
    if not Path(dataset).exists():
        raise SourceError(f"dataset not found: {dataset}")
    data = YoloDataset.open(Path(dataset))
    items = data.items(split)
    if not items:
        raise SourceError(f"{dataset}: no images in the {split} split (images/{split}/)")
    started = time.monotonic()
    nms_iou = DetectConfig().nms_iou
    size = imgsz or _exported_size(Path(model))
    detector = OnnxDetector(Path(model), min_score=min_score, nms_iou=nms_iou, threads=threads or os.cpu_count() or 1, imgsz=size)
    to_dataset = {i: data.names.index(name) for i, name in enumerate(detector.names) if name in data.names}
    truth, found, shapes = [], [], []
    for start in range(0, len(items), BATCH):
        images, labels = zip(*(item.read(data.names) for item in items[start : start + BATCH]))
        for detections in detector.detect_batch(list(images)):
            keep = np.isin(detections.class_id, list(to_dataset))
            ids = np.array([to_dataset[int(c)] for c in detections.class_id[keep]], np.int32)
            found.append(Found(detections.xyxy[keep], detections.confidence[keep], ids))
        truth += labels
        shapes += [image.shape[:2] for image in images]
    classes = average_precision(truth, found, shapes, data.names, set(to_dataset.values()))
    return Evaluation(
        model=Path(model),
        dataset=Path(dataset),
        split=split,
        images=len(items),
        imgsz=size,
        min_score=min_score,
        nms_iou=nms_iou,
        classes=classes,
        seconds=time.monotonic() - started,
    )


def _exported_size(model: Path) -> int:
    """The long side of the input the model was exported at (Ultralytics' `imgsz` metadata), else 640."""
    import onnxruntime as ort

    if not model.is_file():
        raise ModelError(f"model file not found: {model}")
    try:
        metadata = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    except Exception:  # a bad file: OnnxDetector reports it as the pipeline does
        return NATIVE_SIZE
    size = metadata_value(metadata, "imgsz")
    sides = size if isinstance(size, list | tuple) else [size]
    return max(sides) if all(isinstance(s, int) and s > 0 for s in sides) else NATIVE_SIZE


def average_precision(
    truth: Sequence[Labels],
    found: Sequence[Found],
    image_hw: Sequence[tuple[int, int]],
    names: Sequence[str],
    modelled: set[int],
) -> tuple[ClassAP, ...]:
    """Per class of `names`: COCO AP50 and AP50-95 of `found` against `truth` (one each per image
    of `image_hw`), None for a class not in `modelled` (the model lacks it) or without boxes."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations, results = [], []
    for image_id, (labels, boxes) in enumerate(zip(truth, found), 1):
        for c, (x1, y1, x2, y2) in zip(labels.class_id, labels.xyxy.tolist()):
            width, height = x2 - x1, y2 - y1
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(c) + 1}
                | {"bbox": [x1, y1, width, height], "area": width * height, "iscrowd": 0}
            )
        for c, score, (x1, y1, x2, y2) in zip(boxes.class_id, boxes.score.tolist(), boxes.xyxy.tolist()):
            results.append([image_id, x1, y1, x2 - x1, y2 - y1, score, int(c) + 1])
    images = [{"id": i, "height": int(h), "width": int(w)} for i, (h, w) in enumerate(image_hw, 1)]
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(names)]
    precision = None
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        if results:
            reference = COCO()
            reference.dataset = {"images": images, "annotations": annotations, "categories": categories}
            reference.createIndex()
            evaluation = COCOeval(reference, reference.loadRes(np.array(results, np.float64)), "bbox")
            evaluation.params.maxDets = [1, 10, MAX_DETECTIONS]
            evaluation.evaluate()
            evaluation.accumulate()
            precision = evaluation.eval["precision"]  # [IoU thresholds, recall points, class, area, max boxes]
    classes = []
    for k, name in enumerate(names):
        boxes = sum(int((labels.class_id == k).sum()) for labels in truth)
        images_with = sum(1 for labels in truth if (labels.class_id == k).any())
        ap50 = ap50_95 = None
        if k in modelled and boxes:
            if precision is None:  # the model found nothing at all
                ap50 = ap50_95 = 0.0
            else:
                curve = precision[:, :, k, 0, -1]  # all areas, up to MAX_DETECTIONS boxes
                ap50, ap50_95 = float(np.mean(curve[0])), float(np.mean(curve))
        classes.append(ClassAP(name, images_with, boxes, missing=k not in modelled, ap50=ap50, ap50_95=ap50_95))
    return tuple(classes)
