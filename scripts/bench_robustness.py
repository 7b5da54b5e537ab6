#!/usr/bin/env python3
"""Per-frame cost of the robustness stages against the model, on one camera's real frames.

    .venv/bin/python scripts/bench_robustness.py [--camera nuisance-garbage-cloud] [--repeats 5]

Replays the camera of configs/scenarios.yaml (a robustness-suite clip: real vtest footage with a
nuisance) through its real pipeline and times, per sampled frame, interleaved on the same frames:

  model       the focus's `look` (motion, regions, preprocess, ONNX Runtime, decode, NMS);
  view        the view monitor (moved / blocked view, detector/view.py);
  static      the static-new-object detector (relighting, registration, snapshots, blobs);
  looks       the appearance signatures of every box (detector/track/appearance.py);
  judge       tracker (identity, occlusion) + rules + debouncers (`track_and_judge`).

and prints median ms per frame of each, and `added / model`: (view + static + looks + judge) over
the model, and `stage ratio`: (model + all that) / model, the figure the issue bounds at 1.2 on
CPU. Medians over --repeats passes; the machine may be shared: compare the ratios of one run.
"""

import argparse
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detector.capture import open_source  # noqa: E402
from detector.config import load_config  # noqa: E402
from detector.detections import Detections  # noqa: E402
from detector.track.appearance import signatures  # noqa: E402
from detector.worker import CameraPipeline  # noqa: E402

STAGES = ("model", "view", "static", "looks", "judge")


def one_pass(config, camera) -> dict[str, list[float]]:
    """Per-stage ms of every sampled frame of one replay of the camera's clip."""
    pipeline = CameraPipeline.build(config, camera, wall_of=lambda ts: datetime(2026, 1, 1, tzinfo=UTC))
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def timed(stage, call, *args):
        started = time.perf_counter()
        result = call(*args)
        times[stage].append((time.perf_counter() - started) * 1000)
        return result

    for frame in open_source(camera.source, config.detect.fps).frames():
        timed("view", pipeline.watch, frame)
        look = timed("model", pipeline.focus.look, frame.image, frame.ts)
        detections = look.detections
        if pipeline.static_objects is not None:
            found = timed("static", pipeline.static_objects.update, frame.image, frame.ts, detections)
            detections = Detections.merge([detections, found])
        looks = timed("looks", signatures, frame.image, detections.xyxy)
        timed("judge", pipeline.track_and_judge, replace(look, detections=detections.with_data(appearance=looks)), frame)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "scenarios.yaml")
    parser.add_argument("--camera", default="nuisance-garbage-cloud")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    camera = config.camera(args.camera)
    passes = [one_pass(config, camera) for _ in range(args.repeats)]
    medians = {stage: statistics.median(statistics.median(p[stage]) for p in passes if p[stage]) for stage in STAGES}
    added = sum(medians[s] for s in STAGES if s != "model")
    print(f"camera {camera.id}, {len(passes[0]['model'])} frames x {args.repeats} passes (median ms per frame)")
    for stage in STAGES:
        print(f"  {stage:<7} {medians[stage]:8.2f} ms")
    print(f"  added / model: {added / medians['model']:.3f}")
    print(f"  stage ratio (model + added) / model: {(medians['model'] + added) / medians['model']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
