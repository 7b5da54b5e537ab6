"""`detector train`: the base model fine-tuned on a dataset of the city's frames, exported to
ONNX, measured by `detector eval` and described by a model card.

    check       dataset, base model and output before anything slow
    recalibrate the base model's BatchNorm statistics from the train frames (batchnorm.py), checked
                to detect exactly as before, saved in the work folder
    fine-tune   Ultralytics' own trainer from that checkpoint (matching weights transfer; the
                class layer is new), offline (offline.py)
    export      ONNX, dynamic batch, height and width, opset 17, class names in the metadata
    evaluate    the exported model on the val split through the pipeline's backend (evaluate.py)
    int8        optionally, `detector quantize` on the train images, evaluated too
    card        beside the model (card.py)
"""

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.dataset.yolo import YoloDataset
from detector.detect.base import file_digest
from detector.errors import DetectorError, ModelError, OutputError, SourceError
from detector.training import offline
from detector.training.batchnorm import Check, Recalibration, check_unchanged, recalibrate
from detector.training.card import TrainingFacts, model_card
from detector.training.evaluate import Evaluation, evaluate

log = logging.getLogger(__name__)

CALIBRATION_FRAMES = 64  # train frames whose statistics the BatchNorm layers take
CHECK_FRAMES = 4  # val frames on which the recalibrated model must detect as the base does
INT8_FRAMES, INT8_HELD_BACK, INT8_MIN_RECALL = 50, 20, 0.95  # `detector quantize`'s defaults


class TrainingError(DetectorError):
    """Ultralytics' trainer or exporter failed (a device that is not there, too little memory, ...)."""


@dataclass(frozen=True)
class TrainSettings:
    dataset: Path
    base: Path
    out: Path
    work: Path
    epochs: int
    imgsz: int
    batch: int
    device: str
    workers: int
    int8: bool
    command: str  # the command line that reproduces the run, for the card


@dataclass(frozen=True)
class Int8Copy:
    """`quantized_copy`'s outcome: the INT8 model and its evaluation, or why the recall gate refused it;
    `note` says which for the card."""

    model: Path | None
    evaluation: Evaluation | None
    refused: str | None
    note: str


@dataclass(frozen=True)
class Trained:
    """What `train` wrote and measured."""

    model: Path
    card: Path
    evaluation: Evaluation
    epoch_s: tuple[float, ...]
    int8: Int8Copy  # all None without --int8


def train(settings: TrainSettings) -> Trained:
    dataset = _checked(settings)
    work = settings.work
    ultralytics = offline.ultralytics(work)
    import torch

    if settings.device not in ("cpu", "mps") and not torch.cuda.is_available():
        raise TrainingError(f"--device {settings.device}: torch {torch.__version__} sees no CUDA device here; use --device cpu")

    digest, counts = dataset.digest(), dataset.counts()
    started = time.monotonic()
    recalibrated = work / f"{settings.base.stem}_recalibrated.pt"
    recalibration, check, base_names = _recalibrate(dataset, settings, recalibrated)
    with offline.label_caches_removed(dataset):
        best, epoch_s = _fine_tune(ultralytics.YOLO, recalibrated, offline.data_yaml(dataset, work), settings)
        _export(ultralytics.YOLO, best, settings)
    total_s = time.monotonic() - started
    evaluation = evaluate(settings.out, dataset.root, "val", imgsz=settings.imgsz)
    int8 = quantized_copy(settings.out, dataset, settings.imgsz) if settings.int8 else Int8Copy(None, None, None, "")
    facts = TrainingFacts(
        dataset=dataset.root,
        dataset_digest=digest,
        counts=counts,
        names=dataset.names,
        base=settings.base,
        base_digest=file_digest(settings.base),
        epochs=settings.epochs,
        imgsz=settings.imgsz,
        batch=settings.batch,
        device=settings.device,
        epoch_s=epoch_s,
        total_s=total_s,
        recalibration=recalibration,
        check=check,
        work=work,
        inherited=_inherited(base_names, dataset.names),
        versions=f"Ultralytics {ultralytics.__version__}, torch {torch.__version__}",
        command=settings.command,
    )
    card = settings.out.with_suffix(".md")
    card.write_text(model_card(settings.out, facts, evaluation, int8), encoding="utf-8")
    return Trained(settings.out, card, evaluation, tuple(epoch_s), int8)


def _checked(settings: TrainSettings) -> YoloDataset:
    """The dataset, once the inputs and outputs are known to be usable: nothing slow fails on them later."""
    if not settings.dataset.exists():
        raise SourceError(f"dataset not found: {settings.dataset}")
    dataset = YoloDataset.open(settings.dataset)
    empty = [split for split, count in dataset.counts().items() if count == 0]
    if empty:
        raise SourceError(f"{settings.dataset}: no images in the {' and '.join(empty)} split (images/{empty[0]}/)")
    if settings.base.is_dir() or not settings.base.is_file():
        raise ModelError(f"base model not found: {settings.base}")
    if settings.base.suffix != ".pt":
        raise ModelError(f"{settings.base}: the base model must be an Ultralytics checkpoint (.pt), e.g. models/yolov8n.pt")
    if settings.out.suffix != ".onnx":
        raise OutputError(f"{settings.out}: --out must name an .onnx file")
    for folder in (settings.out.parent, settings.work):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as exc:
            raise OutputError(f"{folder}: cannot write there: {exc.strerror}") from None
    return dataset


def _spread(items: list, count: int) -> list:
    """`count` of `items` evenly spread over them (all of them when there are fewer)."""
    return [items[int(i)] for i in np.linspace(0, len(items), min(count, len(items)), endpoint=False)]


def _recalibrate(dataset: YoloDataset, settings: TrainSettings, out: Path) -> tuple[Recalibration, Check, tuple[str, ...]]:
    """The base model with its BatchNorm recalibrated on train frames, saved to `out` (float32: Ultralytics'
    own save would halve it) and checked on val frames against the base; and the base model's class names."""
    import torch
    from ultralytics.nn.tasks import load_checkpoint

    try:
        model, checkpoint = load_checkpoint(settings.base)
    except Exception as exc:  # torch.load and Ultralytics raise many unrelated types
        raise ModelError(f"{settings.base}: not a loadable Ultralytics checkpoint: {_first_line(exc)}") from None
    frames = [item.read(dataset.names)[0] for item in _spread(dataset.items("train"), CALIBRATION_FRAMES)]
    recalibration = recalibrate(model, frames, settings.imgsz)
    torch.save({**checkpoint, "model": model, "ema": None}, out)
    check_frames = [item.read(dataset.names)[0] for item in _spread(dataset.items("val"), CHECK_FRAMES)]
    names = model.names.values() if isinstance(model.names, dict) else model.names
    return recalibration, check_unchanged(settings.base, out, check_frames), tuple(map(str, names))


def _inherited(base_names: tuple[str, ...], names: tuple[str, ...]) -> tuple[str, ...]:
    """The dataset's classes whose row of the class layer Ultralytics starts from the base model's
    row of the same name (its `cls_remap`, from 8.4 on); none before."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return tuple(name for name in names if name in base_names) if DEFAULT_CFG_DICT.get("cls_remap") else ()


def _fine_tune(yolo, checkpoint: Path, data: Path, settings: TrainSettings) -> tuple[Path, list[float]]:
    """Ultralytics' trainer from `checkpoint`; the best checkpoint and the training time of each epoch."""
    run = settings.work.resolve() / "run"
    shutil.rmtree(run, ignore_errors=True)  # a checkpoint of an earlier run must not pass for this one's
    model = yolo(str(checkpoint), task="detect")
    epoch_s, started = [], [0.0]
    model.add_callback("on_train_epoch_start", lambda _trainer: started.__setitem__(0, time.monotonic()))
    model.add_callback("on_train_epoch_end", lambda _trainer: epoch_s.append(time.monotonic() - started[0]))
    try:
        model.train(
            data=str(data),
            epochs=settings.epochs,
            imgsz=settings.imgsz,
            batch=settings.batch,
            device=settings.device,
            workers=settings.workers,
            amp=False,  # the AMP check downloads a model
            plots=False,
            project=str(run.parent),
            name=run.name,
            exist_ok=True,
            verbose=False,
        )
    except Exception as exc:  # Ultralytics raises anything from AssertionError to RuntimeError
        log.debug("training failed", exc_info=True)
        raise TrainingError(f"training failed: {_first_line(exc)}") from None
    weights = run / "weights"
    best = next((p for p in (weights / "best.pt", weights / "last.pt") if p.is_file()), None)
    if best is None:
        raise TrainingError(f"training wrote no checkpoint in {weights}")
    return best, epoch_s


def _export(yolo, checkpoint: Path, settings: TrainSettings) -> None:
    """`checkpoint` as ONNX (dynamic batch, height and width; opset 17) at `settings.out`."""
    try:
        exported = yolo(str(checkpoint), task="detect").export(
            format="onnx", dynamic=True, opset=17, imgsz=settings.imgsz, simplify=False, device="cpu", verbose=False
        )
    except Exception as exc:
        log.debug("export failed", exc_info=True)
        raise TrainingError(f"exporting {checkpoint} to ONNX failed: {_first_line(exc)}") from None
    try:
        shutil.copyfile(exported, settings.out)
    except OSError as exc:
        raise OutputError(f"{settings.out}: cannot write the model: {exc.strerror}") from None


def quantized_copy(model: Path, dataset: YoloDataset, imgsz: int) -> Int8Copy:
    """`detector quantize` of the ONNX `model` (to MODEL_int8.onnx, its own card beside it), calibrated on
    the dataset's train images, then evaluated on the val split as the float model is."""
    from detector.detect.quantize import GateRefused, quantize

    out = model.with_name(f"{model.stem}_int8.onnx")
    calibration = dataset.root / "images" / "train"
    command = (
        f"detector quantize {model} --calib {calibration} --out {out} "
        f"--frames {INT8_FRAMES} --holdout {INT8_HELD_BACK} --min-recall {INT8_MIN_RECALL:g}"
    )
    try:
        result = quantize(
            model,
            [calibration],
            out,
            frames=INT8_FRAMES,
            held_back=INT8_HELD_BACK,
            min_recall=INT8_MIN_RECALL,
            command=command,
        )
    except GateRefused as exc:
        return Int8Copy(None, None, str(exc), f"INT8: not written. {exc}")
    note = (
        f"`{out.name}`: static INT8 calibrated on the train images (`{command}`); "
        f"recall gate: {result.gate.summary()}. The same evaluation as above:"
    )
    return Int8Copy(out, evaluate(out, dataset.root, "val", imgsz=imgsz), None, note)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def default_out(dataset: Path) -> Path:
    """`models/<dataset folder name>.onnx`."""
    return Path("models") / f"{Path(os.path.abspath(dataset)).name}.onnx"
