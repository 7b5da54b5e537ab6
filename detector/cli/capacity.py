"""Sizing hardware: `detector capacity` (docs/edge.md#capacity)."""

import argparse
import json
import math
import tempfile
from pathlib import Path

from detector.cli.common import camera_of, recorded_clip


def add_commands(commands) -> None:
    capacity = commands.add_parser(
        "capacity", help="measure this box: CPU and memory per camera, cameras per box for each lever there is"
    )
    capacity.add_argument("config", type=Path)
    capacity.add_argument("--camera", metavar="ID", help="measure this camera only (default: every camera of the config)")
    capacity.add_argument(
        "--clip",
        type=recorded_clip,
        metavar="FILE",
        help="a sample video standing for every camera (with the first camera's zones, or --camera's)",
    )
    capacity.add_argument(
        "--seconds", type=_seconds, default=20.0, metavar="S", help="seconds of stream per measurement (default: 20)"
    )
    capacity.add_argument("--fps", type=_positive, metavar="F", help="detect fps to plan for (default: the config's detect.fps)")
    capacity.add_argument(
        "--target-load",
        type=_load,
        default=0.75,
        metavar="SHARE",
        help="share of the usable cores the cameras may take (default: 0.75)",
    )
    capacity.add_argument(
        "--int8", type=Path, metavar="MODEL", help="an INT8 model to measure (default: MODEL_int8.onnx beside the model)"
    )
    capacity.add_argument(
        "--dynamic",
        type=Path,
        metavar="MODEL",
        help="a dynamic-shape model to measure (default: MODEL_dynamic.onnx beside the model)",
    )
    capacity.add_argument("--json", action="store_true", help="the figures as one JSON object (fields: docs/edge.md)")
    capacity.set_defaults(command=_capacity)


def _capacity(args: argparse.Namespace) -> int:
    from detector.capacity import measure_capacity
    from detector.config import check_files, load_config

    config = load_config(args.config)
    cameras = [camera_of(config, args.camera)] if args.camera else list(config.cameras)
    check_files(config, [] if args.clip else [c.id for c in cameras])
    with tempfile.TemporaryDirectory(prefix="detector-capacity-") as work:
        capacity = measure_capacity(
            config,
            cameras,
            Path(work),
            clip=args.clip,
            seconds=args.seconds,
            fps=args.fps,
            target_load=args.target_load,
            int8=args.int8,
            dynamic=args.dynamic,
        )
    print(json.dumps(capacity.as_json(), indent=1) if args.json else "\n".join(capacity.lines()))
    return 0


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _seconds(text: str) -> float:
    """`--seconds`: more than 0, at most 600 (a measurement is meant to be short)."""
    if not 0 < _number(text) <= 600:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 600")
    return float(text)


def _positive(text: str) -> float:
    """`--fps`: more than 0, at most 60."""
    if not 0 < _number(text) <= 60:
        raise argparse.ArgumentTypeError(f"{text!r} is not a detect fps from 0 to 60")
    return float(text)


def _load(text: str) -> float:
    """`--target-load`: a share of the cores, more than 0, at most 1."""
    if not 0 < _number(text) <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share of the cores from 0 to 1")
    return float(text)
