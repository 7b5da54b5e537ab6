"""Model training: `detector train` and `detector eval`. Ultralytics and torch
(the optional extra `[ultralytics]`) are imported only inside these commands."""

import argparse
import shlex
from pathlib import Path

from detector.cli.common import whole
from detector.errors import DetectorError


def add_commands(commands) -> None:
    train = commands.add_parser(
        "train", help="fine-tune a YOLO model on a dataset of roles (Ultralytics, offline), export ONNX, evaluate, write its card"
    )
    train.add_argument("dataset", type=Path, help="the dataset folder (Ultralytics YOLO layout, `detector dataset` writes one)")
    train.add_argument(
        "--base", type=Path, default=Path("models/yolov8n.pt"), help="the base checkpoint (default: models/yolov8n.pt)"
    )
    train.add_argument("--epochs", type=whole(1, 10000, "epochs"), default=50, help="training epochs (default: 50)")
    train.add_argument("--imgsz", type=_image_size, default=640, help="training input size, a multiple of 32 (default: 640)")
    train.add_argument("--batch", type=whole(1, 1024, "images per batch"), default=16, help="images per batch (default: 16)")
    train.add_argument("--device", default="cpu", help="cpu, or a CUDA device: 0, 0,1 (default: cpu)")
    train.add_argument(
        "--workers",
        type=whole(0, 64, "data loader workers"),
        default=2,
        help="data loader processes on CUDA (Ultralytics uses none on CPU; default: 2)",
    )
    train.add_argument("--out", type=Path, help="the ONNX model (default: models/DATASET.onnx); its card beside it (.md)")
    train.add_argument("--work", type=Path, help="Ultralytics' settings, checkpoints and run (default: out/train/NAME)")
    train.add_argument("--int8", action="store_true", help="also a static INT8 copy (`detector quantize`), evaluated too")
    train.set_defaults(command=_train)

    evaluate = commands.add_parser("eval", help="per-class AP50 and AP50-95 of an ONNX model on a dataset split")
    evaluate.add_argument("model", type=Path, help="the ONNX model")
    evaluate.add_argument("dataset", type=Path, help="the dataset folder (Ultralytics YOLO layout)")
    evaluate.add_argument("--split", choices=("train", "val"), default="val", help="the split to measure (default: val)")
    evaluate.add_argument(
        "--min-score", type=_score, default=0.001, help="lowest score kept: the precision-recall curve's end (default: 0.001)"
    )
    evaluate.add_argument(
        "--imgsz", type=_image_size, help="a dynamic model's input long side (default: the size it was exported at)"
    )
    evaluate.set_defaults(command=_eval)


def _train(args: argparse.Namespace) -> int:
    from detector.training.train import TrainSettings, default_out, train

    out = args.out or default_out(args.dataset)
    work = args.work or Path("out/train") / out.stem
    command = ["detector", "train", str(args.dataset), "--base", str(args.base), "--epochs", str(args.epochs)]
    command += ["--imgsz", str(args.imgsz), "--batch", str(args.batch), "--device", args.device, "--out", str(out)]
    command += ["--int8"] if args.int8 else []
    settings = TrainSettings(
        dataset=args.dataset,
        base=args.base,
        out=out,
        work=work,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        workers=args.workers,
        int8=args.int8,
        command=shlex.join(command),
    )
    result = train(settings)
    epochs = len(result.epoch_s)
    print(f"{result.model}: written; {epochs} epoch{'s' if epochs != 1 else ''}, {_per_epoch(result.epoch_s)} of training each")
    print(result.evaluation.table())
    if result.int8.model is not None:
        print(f"{result.int8.model}: written (INT8)")
        print(result.int8.evaluation.table())
    print(f"{result.card}: its model card")
    if result.int8.refused:
        raise Int8Refused(result.int8.refused)
    return 0


def _per_epoch(epoch_s: tuple[float, ...]) -> str:
    return f"{sum(epoch_s) / len(epoch_s):.1f} s" if epoch_s else "no time"


class Int8Refused(DetectorError):
    """--int8 was given and `detector quantize`'s recall gate refused the INT8 model (the float model and card stay written)."""


def _eval(args: argparse.Namespace) -> int:
    from detector.training.evaluate import evaluate

    result = evaluate(args.model, args.dataset, args.split, min_score=args.min_score, imgsz=args.imgsz)
    print(
        f"{result.model} on {result.dataset} ({result.split}): {result.images} images, input long side {result.imgsz}, "
        f"min_score {result.min_score:g}, NMS IoU {result.nms_iou:g}, {result.seconds:.1f} s"
    )
    print(result.table())
    return 0


def _image_size(text: str) -> int:
    """`--imgsz`: a multiple of 32 from 32 to 4096 (the model's largest stride)."""
    if not text.isdigit() or not 32 <= int(text) <= 4096 or int(text) % 32:
        raise argparse.ArgumentTypeError(f"{text!r} is not an image size: a multiple of 32 from 32 to 4096")
    return int(text)


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not a score from 0 to 1")
    return value
