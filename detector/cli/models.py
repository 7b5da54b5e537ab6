"""Model files: `detector quantize` (docs/edge.md)."""

import argparse
import shlex
from pathlib import Path

from detector.cli.common import recorded_clip, whole


def add_commands(commands) -> None:
    quantize = commands.add_parser(
        "quantize", help="static INT8 of an ONNX model, calibrated on the site's frames, written only if it keeps recall"
    )
    quantize.add_argument("model", type=Path, help="the float ONNX model")
    quantize.add_argument(
        "--calib", type=recorded_clip, nargs="+", required=True, metavar="DIR|CLIP", help="the site's clips or image folders"
    )
    quantize.add_argument("--out", type=Path, help="the INT8 model (default: MODEL_int8.onnx beside MODEL); its card beside it")
    quantize.add_argument(
        "--frames", type=whole(1, 10000, "frames"), default=50, help="calibration frames, spread over the sources (default: 50)"
    )
    quantize.add_argument(
        "--holdout",
        type=whole(1, 10000, "frames"),
        default=20,
        help="frames held back from calibration for the recall gate (default: 20)",
    )
    quantize.add_argument(
        "--min-recall",
        type=_fraction,
        default=0.95,
        help="share of the float model's boxes the INT8 model must find on the held-back frames (default: 0.95)",
    )
    quantize.set_defaults(command=_quantize)


def _quantize(args: argparse.Namespace) -> int:
    from detector.detect.quantize import quantize

    out = args.out or args.model.with_name(f"{args.model.stem}_int8.onnx")
    command = shlex.join(
        ["detector", "quantize", str(args.model), "--calib", *map(str, args.calib), "--out", str(out)]
        + ["--frames", str(args.frames), "--holdout", str(args.holdout), "--min-recall", f"{args.min_recall:g}"]
    )
    result = quantize(
        args.model, args.calib, out, frames=args.frames, held_back=args.holdout, min_recall=args.min_recall, command=command
    )
    print(f"{result.model}: written; {result.gate.summary()}")
    print(f"{result.card}: its model card")
    return 0


def _fraction(text: str) -> float:
    """`--min-recall`: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not a recall from 0 to 1")
    return value
