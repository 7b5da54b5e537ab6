#!/usr/bin/env python3
"""Robustness suite: the nuisance clips replayed through the real pipeline and scored.

    python scripts/robustness.py [NAME ...] [--out out/robustness] [--config configs/scenarios.yaml]
    python scripts/robustness.py --soak [--minutes 30] [--seed 1]

The suite is every `sample_videos/scenarios/nuisance-*.yaml` (scripts/make_scenarios.py renders
them, cached, into sample_videos/generated/). Each clip is replayed quietly with camera
`<name>` of configs/scenarios.yaml and scored against its ground truth, with a latency limit of
dwell + 10 s; the report is detector.suite_scoring's, the one `detector score OUT GT_DIR`
prints from the events files `--out` keeps: per clip its nuisances, the expected events, false
alerts, TP/FN, alarm latency and alerts ended and restarted, the totals, and per nuisance type
false alerts, recall and worst latency. tests/test_robustness.py holds CI to the same bar.

`--soak` renders a long stream instead (camera `nuisance-soak`): real vtest footage in random
segments, under a slow illumination drift and random nuisances (seeded), and reports false
alerts per camera-hour. It takes long (rendering and replaying 30 minutes of video): a script,
not a test. Exit status: 0 when every clip passed (nothing false, missed, late or restarted), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # make_scenarios, nuisances
import make_scenarios  # noqa: E402
import nuisances  # noqa: E402

from detector import scoring, suite_scoring  # noqa: E402
from detector.config import load_config  # noqa: E402
from detector.replay import ReplaySummary, replay  # noqa: E402

ROOT = make_scenarios.ROOT
CONFIG = ROOT / "configs" / "scenarios.yaml"
LATENCY_SLACK_S = 10.0  # the bar: latency at most dwell + 10 s
SOAK_CAMERA = "nuisance-soak"
SOAK_BASE = "sample_videos/clips/vtest.avi"
SOAK_VERSION = "1"
# Nuisances the soak draws from: each one passes (to_s is always set), so the view returns.
SOAK_NUISANCES = (
    "dim", "exposure_jump", "flash", "ir_mono", "shadow", "rain", "snow", "fog", "noise",
    "compression", "blur", "sway", "ptz", "cover", "defocus",
)  # fmt: skip


def suite_config(storage: Path, path: Path = CONFIG):
    os.chdir(ROOT)  # the config's sources are relative to the repository
    return load_config(path).model_copy(update={"storage_dir": storage})


def latency_limits(config) -> dict[str, float]:
    """The issue's bar per violation type: an alarm at most dwell + 10 s after the violation began."""
    return {kind: settings["dwell_s"] + LATENCY_SLACK_S for kind, settings in config.violations.model_dump().items()}


def run_clip(config, name: str, out: Path, on_frame=None) -> tuple[suite_scoring.ClipScore, ReplaySummary]:
    """Render (when not up to date), replay (`on_frame`: see detector.replay) and score one
    nuisance scenario; its events.jsonl is left in `out/<name>/` (`detector score OUT GT_DIR`)."""
    video = make_scenarios.generate(name)
    truth = scoring.load_ground_truth(video.with_suffix(".gt.yaml"))
    summary = replay(config, name, out_dir=out / name, quiet=True, progress=False, on_frame=on_frame)
    return suite_scoring.score_clip(name, summary.alerts, truth, max_latency_s=latency_limits(config)), summary


# ---------------------------------------------------------------------------------------------
# Soak


def soak_nuisances(minutes: float, seed: int) -> tuple[nuisances.Nuisance, ...]:
    """Random nuisances, one every 60-180 s, each lasting 3-40 s (seeded)."""
    rng = np.random.default_rng(seed)
    drawn, t, end = [], 30.0, minutes * 60
    while t < end:
        kind = str(rng.choice(SOAK_NUISANCES))
        length = 0.1 if kind == "flash" else float(rng.uniform(3, 40))
        ramp = 0.0 if kind in ("flash", "exposure_jump", "ir_mono", "compression") else float(rng.uniform(0, min(5, length / 3)))
        drawn.append(nuisances.Nuisance(kind, from_s=t, to_s=min(t + length, end), ramp_s=ramp, seed=int(rng.integers(1 << 16))))
        t += length + float(rng.uniform(60, 180))
    return tuple(drawn)


def soak_frames(minutes: float, seed: int, fps: int = 10):
    """Real footage in random forward segments of 20-60 s (different pedestrians every time),
    under a slow illumination drift (two incommensurate periods, 70-115 %) and random nuisances."""
    rng = np.random.default_rng([seed, 1])
    planned = soak_nuisances(minutes, seed)
    total, produced = int(minutes * 60 * fps), 0
    base_frames = sum(1 for _ in make_scenarios.iter_clip(SOAK_BASE))
    while produced < total:
        length = int(rng.uniform(20, 60) * fps)
        start = int(rng.integers(0, base_frames - length))
        for i, frame in enumerate(make_scenarios.iter_clip(SOAK_BASE)):
            if i < start:
                continue
            if i >= start + length or produced >= total:
                break
            t = produced / fps
            gain = 0.925 + 0.15 * np.sin(2 * np.pi * t / 900) + 0.075 * np.sin(2 * np.pi * t / 347)
            frame = nuisances.exposure(frame, nuisances.Moment(t, 1.0, rng, seed), gain=gain)
            yield nuisances.apply_all(planned, frame, t, produced)
            produced += 1


def render_soak(minutes: float, seed: int, out_dir: Path = make_scenarios.DEFAULT_OUT) -> Path:
    """`<out_dir>/nuisance-soak.mp4` (+ an empty ground truth), rendered unless its stamp matches."""
    video, stamp = out_dir / f"{SOAK_CAMERA}.mp4", out_dir / f"{SOAK_CAMERA}.stamp.json"
    wanted = {"minutes": minutes, "seed": seed, "soak": SOAK_VERSION, "nuisances": nuisances.VERSION}
    if video.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return video
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    make_scenarios.encode(soak_frames(minutes, seed), video, 10, (768, 576))
    truth = {"clip": str(video), "camera": SOAK_CAMERA, "note": f"soak {minutes:g} min, seed {seed}", "events": []}
    video.with_suffix(".gt.yaml").write_text(json.dumps(truth))  # JSON is YAML
    stamp.write_text(json.dumps(wanted) + "\n")
    return video


def run_soak(config, minutes: float, seed: int, out: Path) -> int:
    video = render_soak(minutes, seed)
    summary = replay(config, SOAK_CAMERA, out_dir=out / SOAK_CAMERA, quiet=True, progress=False)
    result = scoring.score(summary.alerts, scoring.load_ground_truth(video.with_suffix(".gt.yaml")))
    hours = summary.stream_s / 3600
    print(f"soak: {summary.stream_s / 60:.1f} min of stream, seed {seed}, {len(soak_nuisances(minutes, seed))} nuisances")
    print(f"false alerts: {result.overall.fp} = {result.overall.fp / hours:.1f} per camera-hour")
    for alarm in result.false_alarms:
        print(f"  false: {alarm.describe()}")
    return 0 if result.overall.fp == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="nuisance scenarios (default: all nuisance-* scenarios)")
    parser.add_argument("--out", type=Path, help="keep each replay's events.jsonl here (default: a temporary folder)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the cameras' config (default: configs/scenarios.yaml)")
    parser.add_argument("--soak", action="store_true", help="run the long soak stream instead of the suite")
    parser.add_argument("--minutes", type=float, default=30.0, help="soak length (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="soak seed (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.config.is_file():
        parser.error(f"--config {args.config}: no such file")
    with tempfile.TemporaryDirectory(prefix="robustness-") as scratch:
        out = (args.out or Path(scratch)).resolve()
        config = suite_config(Path(scratch) / "storage", args.config.resolve())
        if args.soak:
            return run_soak(config, args.minutes, args.seed, out)
        results = []
        for name in args.names or make_scenarios.scenario_names(nuisance=True):
            result, summary = run_clip(config, name, out)
            results.append(result)
            print(f"{name}: {'passed' if result.passed else 'FAILED'} ({summary.wall_s:.0f} s)", file=sys.stderr)
        print(suite_scoring.format_suite(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
