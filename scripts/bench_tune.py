#!/usr/bin/env python3
"""How much faster `detector tune` is than replaying the clip once per combination.

    .venv/bin/python scripts/bench_tune.py [--camera parking-stop] [--set dwell_s=10,20,40 --set min_score=0.3,0.4]

Runs the real replay (model + rules) once per combination, then the sweep with an empty cache
(one model pass + rules-only replays) and again with the cache warm; prints the times, the
ratios, and whether every combination scored the same both ways.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detector import scoring  # noqa: E402
from detector.config import load_config  # noqa: E402
from detector.operator import sweep  # noqa: E402
from detector.replay import replay  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs/scenarios.yaml")
    parser.add_argument("--camera", default="parking-stop")
    parser.add_argument("--set", dest="sets", action="append")
    args = parser.parse_args()
    sets = args.sets or ["dwell_s=10,20,40", "min_score=0.3,0.4"]
    config = load_config(args.config)
    camera = config.camera(args.camera)
    gt = Path(camera.source).with_suffix(".gt.yaml")
    sweeps = sweep.parse_sets(sets)
    clips = sweep.resolve_clips(camera, [gt], None)
    combos = sweep.combinations(sweeps)

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        replayed = []
        for i, combo in enumerate(combos):
            variant, _ = sweep.apply(config, camera.id, combo)
            summary = replay(
                variant, camera.id, out_dir=Path(scratch) / f"r{i}", quiet=True, progress=False, start_at=sweep.FIXED_ORIGIN
            )
            replayed.append(scoring.score(summary.alerts, clips[0].ground_truth).overall)
        replay_s = time.perf_counter() - started

        cache_dir = Path(scratch) / "cache"
        started = time.perf_counter()
        cold = sweep.sweep(config, camera.id, sweeps, clips, cache_dir=cache_dir)
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        warm = sweep.sweep(config, camera.id, sweeps, clips, cache_dir=cache_dir)
        warm_s = time.perf_counter() - started

    same = all(
        (r.tp, r.fp, r.fn, r.latency_median_s) == (s.total.tp, s.total.fp, s.total.fn, s.total.latency_median_s)
        for r, s in zip(replayed, cold.rows)
    )
    n = len(combos)
    print(sweep.format_table(cold))
    print(f"\n{camera.id}: {cold.frames} frames, {n} combinations")
    print(f"  replay per combination (model + rules) x{n}: {replay_s:6.2f} s ({replay_s / n:.2f} s each)")
    print(f"  tune, cold cache (1 model pass + {n} rules-only): {cold_s:6.2f} s -> {replay_s / cold_s:.1f}x faster")
    print(f"  tune, warm cache ({n} rules-only): {warm_s:6.2f} s -> {replay_s / warm_s:.0f}x faster")
    print(f"  per combination, rules-only vs replay: {(replay_s / n) / (warm.rules_s / n):.0f}x")
    print(f"  same scores both ways: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
