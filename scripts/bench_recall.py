#!/usr/bin/env python3
"""Recall and false alarms with the capacity levers on, against the levers off (issue 11).

    .venv/bin/python scripts/bench_recall.py [NAME ...] [--model MODEL] [--out out/bench_recall]

Replays every committed scenario (sample_videos/scenarios/*.yaml: the scenario suite and the
robustness suite, rendered and cached by scripts/make_scenarios.py) twice, with its camera of
configs/scenarios.yaml, and scores each replay against the clip's ground truth as the robustness
suite does (false alerts, misses, latency over dwell + 10 s, alerts ended and restarted):

    levers off   models/yolov8n.onnx (a 640x640 letterbox), regions and motion gating off
    levers on    --model (default: the config's, models/yolov8n_dynamic.onnx, input shaped to
                 the frame) with regions and motion gating as configured (on by default)

and compares the two replays' alert starts clip by clip: the same (zone, type) starts, and how far
apart in time. For the levers on it also gives the model's work: the input pixels of the regions
windows it ran on over the whole replay, as a share of a whole 640-long-side frame's at every
frame (regions and motion gating together). Prints one row per clip and the totals; exit status 0 when the levers on lose no
expected alert and add no false one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # make_scenarios, robustness
import make_scenarios  # noqa: E402
import robustness  # noqa: E402

from detector import scoring, suite_scoring  # noqa: E402
from detector.alerts.alert import AlertEvent  # noqa: E402
from detector.detect.letterbox import frame_shaped_input  # noqa: E402
from detector.replay import replay  # noqa: E402

ROOT = make_scenarios.ROOT
BASELINE_MODEL = ROOT / "models" / "yolov8n.onnx"


def variant(config, *, levers: bool, model: Path | None):
    """The config with the levers off (the baseline) or on (`model` instead of the config's)."""
    if not levers:
        return config.model_copy(
            update={
                "model": config.model.model_copy(update={"path": BASELINE_MODEL}),
                "regions": config.regions.model_copy(update={"enabled": False}),
                "motion": config.motion.model_copy(update={"enabled": False}),
            }
        )
    return config if model is None else config.model_copy(update={"model": config.model.model_copy(update={"path": model})})


class ModelWork:
    """The model's input pixels over the replay, as a share of the whole frame's at every frame."""

    def __init__(self) -> None:
        self.looked = self.whole = 0

    def __call__(self, result) -> None:
        look = result.look
        if not look.regions or result.view.paused:
            return
        height, width = frame_shaped_input(result.frame.image.shape[:2], 640, 32)  # the default model's
        self.whole += height * width
        self.looked += sum(window.cost(32) for window in look.windows)

    @property
    def share(self) -> float:
        return self.looked / max(self.whole, 1)


def run(config, name: str, out: Path):
    video = make_scenarios.generate(name)
    truth = scoring.load_ground_truth(video.with_suffix(".gt.yaml"))
    work = ModelWork()
    summary = replay(config, name, out_dir=out / name, quiet=True, progress=False, on_frame=work)
    limits = robustness.latency_limits(config)
    return suite_scoring.score_clip(name, summary.alerts, truth, max_latency_s=limits), summary, work.share


def starts(summary) -> list[tuple[str, str, float]]:
    return sorted((a.zone, a.type, a.stream_time_s) for a in summary.alerts if a.event is AlertEvent.START)


def compare(off: list, on: list) -> tuple[bool, float]:
    """(the same (zone, type) starts, the largest time shift between paired starts)."""
    same = [(z, t) for z, t, _ in off] == [(z, t) for z, t, _ in on]
    shift = max((abs(a[2] - b[2]) for a, b in zip(off, on)), default=0.0) if same else float("nan")
    return same, shift


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="scenarios (default: every committed one)")
    parser.add_argument("--model", type=Path, help="the model with the levers on (default: the config's)")
    parser.add_argument("--out", type=Path, help="keep each replay's events here (default: a temporary folder)")
    args = parser.parse_args(argv)
    names = args.names or make_scenarios.scenario_names(nuisance=False) + make_scenarios.scenario_names(nuisance=True)
    with tempfile.TemporaryDirectory(prefix="bench-recall-") as scratch:
        out = (args.out or Path(scratch)).resolve()
        config = robustness.suite_config(Path(scratch) / "storage")
        configs = {"off": variant(config, levers=False, model=None), "on": variant(config, levers=True, model=args.model)}
        results = {"off": [], "on": []}
        rows = []
        for name in names:
            runs = {side: run(configs[side], name, out / side) for side in configs}
            for side, (result, _, _) in runs.items():
                results[side].append(result)
            same, shift = compare(starts(runs["off"][1]), starts(runs["on"][1]))
            cells = []
            for side in ("off", "on"):
                result, summary, share = runs[side]
                s = result.score.overall
                cells.append(f"{s.tp}/{s.tp + s.fn} {s.fp} {'pass' if result.passed else 'FAIL'} {summary.wall_s:.0f}s")
            work = runs["on"][2]
            rows.append(f"| {name} | {cells[0]} | {cells[1]} | {work:.2f} | {'same' if same else 'DIFFERENT'} | {shift:.1f} |")
            print(rows[-1], file=sys.stderr, flush=True)
    print(
        f"levers on: model {configs['on'].model.path.name}, regions {configs['on'].regions.enabled}, motion {configs['on'].motion.enabled}"
    )
    print(
        "| clip | levers off: found/expected, false, bar, wall | levers on: the same | levers on: model input"
        " / whole frame's | alert starts | largest shift (s) |"
    )
    print("|---|---|---|---:|---|---:|")
    print("\n".join(rows))
    totals = {}
    for side, clip_scores in results.items():
        tp = sum(r.score.overall.tp for r in clip_scores)
        fn = sum(r.score.overall.fn for r in clip_scores)
        fp = sum(r.score.overall.fp for r in clip_scores)
        totals[side] = (tp, fn, fp)
        print(
            f"levers {side}: recall {tp}/{tp + fn}, false alerts {fp}, clips passing {sum(r.passed for r in clip_scores)}/{len(clip_scores)}"
        )
    (tp_off, _, fp_off), (tp_on, _, fp_on) = totals["off"], totals["on"]
    return 0 if tp_on >= tp_off and fp_on <= fp_off else 1


if __name__ == "__main__":
    raise SystemExit(main())
