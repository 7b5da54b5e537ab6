#!/usr/bin/env python3
"""A model trained on the new classes against the COCO-proxy rules (issue 12): train on the
synthetic set, AP on its held-out frames, then the vending and garbage scenarios side by side.

    .venv/bin/python scripts/bench_training.py [--work /tmp/bench_training] [--images 600]
        [--epochs 30] [--imgsz 320] [--batch 16] [--device cpu] [--model TRAINED.onnx] [--all]

Needs the `[ultralytics]` extra (torch, Ultralytics, pycocotools). Steps, each skipped when its
output is already in --work (delete it to redo):

1. `scripts/make_training_data.py --out WORK/synthetic`: real cut-outs (stalls, litter, bags,
   boxes) composited onto real backgrounds, the backgrounds' own people and vehicles labelled by
   the base model; val is backgrounds the training split never sees.
2. `detector train WORK/synthetic --base models/yolov8n.pt`: fine-tuned, exported to ONNX with
   its model card (per-class AP on val, training time per epoch); or --model, already trained.
3. `detector eval`: per-class AP50 and AP50-95 of the trained model on the held-out val frames.
4. The scenarios (configs/scenarios.yaml's cameras, rendered by scripts/make_scenarios.py)
   replayed twice and scored as the robustness suite scores them:
       proxies   the config as it is: models/yolov8n_dynamic.onnx (COCO), vending = a still person
                 beside vending items, garbage = COCO litter classes and the static-new-object
                 detector
       trained   the trained model at its training size (--imgsz), every role played by its
                 class of the same name, no proxy:
                 no vending items, no COCO litter classes, the static-object detector off
   side by side in one table (`detector score PROXIES GT --versus TRAINED` prints the same).
   Default: the vending, garbage and parking scenarios and their negatives; --all: every one.

Training on 2 CPU cores takes long (the figures in docs/model-loop.md); a script, not a test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # make_scenarios, robustness
import make_scenarios  # noqa: E402
import robustness  # noqa: E402

from detector import suite_scoring  # noqa: E402
from detector.config import load_config  # noqa: E402
from detector.config.schema import RoleClasses  # noqa: E402
from detector.dataset.yolo import CLASSES  # noqa: E402

ROOT = make_scenarios.ROOT
BASE = ROOT / "models" / "yolov8n.pt"
SCENARIOS = (
    "vending-stall", "vending-person-only", "garbage-drop", "garbage-pickup",
    "nuisance-garbage-cloud", "nuisance-garbage-night-ir", "nuisance-garbage-shadow",
    "parking-stop", "parking-brief", "nonmotor-parked", "nonmotor-ridden",
)  # fmt: skip


def detector(*args: str) -> None:
    """A `detector` command, its output shown as it runs; a failure stops the benchmark."""
    done = subprocess.run([sys.executable, "-m", "detector", *args], cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"bench_training: `detector {' '.join(args)}` failed (exit {done.returncode})")


def trained_config(config, model: Path, imgsz: int):
    """The scenario config with the trained model at the size it was trained at, and no proxy:
    each role its own class."""
    return config.model_copy(
        update={
            "model": config.model.model_copy(update={"path": model, "imgsz": imgsz}),
            "roles": RoleClasses(**{role: (role,) for role in CLASSES}),
            "static_objects": config.static_objects.model_copy(update={"enabled": False}),
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_training"), help="datasets, models, replays")
    parser.add_argument("--images", type=int, default=600, help="synthetic images (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default: %(default)s)")
    parser.add_argument(
        "--imgsz",
        type=int,
        default=320,
        help="training image size, and the trained model's in the pipeline (default: %(default)s)",
    )
    parser.add_argument("--batch", type=int, default=16, help="training batch (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, or a CUDA device number (default: %(default)s)")
    parser.add_argument("--model", type=Path, help="a model already trained on the synthetic classes (skips training)")
    parser.add_argument("--all", action="store_true", help="every scenario, not only the vending, garbage and parking ones")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    dataset = args.work / "synthetic"
    if not (dataset / "data.yaml").exists():
        make = [
            sys.executable,
            str(ROOT / "scripts" / "make_training_data.py"),
            "--out",
            str(dataset),
            "--images",
            str(args.images),
        ]
        if subprocess.run(make, cwd=ROOT).returncode != 0:
            sys.exit("bench_training: scripts/make_training_data.py failed")

    model = args.model or args.work / "trained.onnx"
    if not model.exists():
        started = time.monotonic()
        detector(
            "train", str(dataset), "--base", str(BASE), "--epochs", str(args.epochs), "--imgsz", str(args.imgsz),
            "--batch", str(args.batch), "--device", args.device, "--out", str(model),
        )  # fmt: skip
        print(f"\ntrained in {time.monotonic() - started:.0f} s ({args.epochs} epochs): {model}; card {model.with_suffix('.md')}")

    print(f"\n## AP of {model.name} on the held-out synthetic frames (val)\n", flush=True)
    detector("eval", str(model), str(dataset))

    config = load_config(robustness.CONFIG)
    names = sorted(p.stem for p in (ROOT / "sample_videos" / "scenarios").glob("*.yaml")) if args.all else SCENARIOS
    suites = {
        "proxies": (config, args.work / "proxies"),
        "trained": (trained_config(config, model, args.imgsz), args.work / "trained"),
    }
    scores: dict[str, list[suite_scoring.ClipScore]] = {label: [] for label in suites}
    for name in names:
        for label, (variant, out) in suites.items():
            clip_score, _ = robustness.run_clip(variant, name, out)
            scores[label].append(clip_score)
            print(
                f"  {name:28} {label:8} false {clip_score.score.overall.fp}  TP/FN {clip_score.score.overall.tp}/{clip_score.score.overall.fn}",
                flush=True,
            )
    print(f"\n## Scenarios: COCO proxies against {model.name} without proxies\n")
    print(suite_scoring.format_comparison(scores))
    for label, results in scores.items():
        problems = [line for r in results for line in r.problems()]
        if problems:
            print(f"\n{label}:", *problems, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
