#!/usr/bin/env python3
"""Float against static INT8 (`detector quantize`), per model: CPU time per inference and recall.

    .venv/bin/python scripts/bench_quantize.py [--models models/yolov8n.onnx models/yolov8n_320.onnx]
        [--calib sample_videos/clips/vtest.avi] [--unseen sample_videos/clips/bgs_video03.avi]
        [--frames 50] [--holdout 20] [--unseen-frames 20] [--repeats 5]

Each model is quantised as `detector quantize MODEL --calib CALIB` does (into a temporary folder,
the gate at 0 so the figures always print), then:
  float ms, int8 ms  CPU milliseconds of one `OnnxDetector.detect` (1 intra-op thread, as the
                     worker opens it) on the held-back frames of CALIB, float and INT8 called in
                     turn on each frame, --repeats times; medians. CPU time, not wall time: the
                     machine may be shared, and other processes' load shows less in it;
  ratio              int8 ms / float ms;
  recall held-back   the gate's figure: float boxes matched by INT8 boxes (same class, IoU >= 0.5)
                     on CALIB's held-back frames, and the mean score change;
  recall unseen      the same on frames spread over UNSEEN, a clip the calibration never saw.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detector.config.schema import DetectConfig  # noqa: E402
from detector.detect.onnx_backend import OnnxDetector  # noqa: E402
from detector.detect.quantize import compare_models, quantize, read_frames, spread_frames  # noqa: E402


def cpu_ms(detector: OnnxDetector, frame) -> float:
    started = time.process_time()
    detector.detect(frame)
    return (time.process_time() - started) * 1000


def bench(model: Path, args: argparse.Namespace, folder: Path) -> str:
    out = folder / f"{model.stem}_int8.onnx"
    result = quantize(
        model, [args.calib], out, frames=args.frames, held_back=args.holdout, min_recall=0.0, command="scripts/bench_quantize.py"
    )
    defaults = DetectConfig()
    reference = OnnxDetector(model, min_score=defaults.min_score, nms_iou=defaults.nms_iou)
    candidate = OnnxDetector(out, min_score=defaults.min_score, nms_iou=defaults.nms_iou)
    held = [f for s in read_frames([args.calib], args.frames, args.holdout) for f in s.held_back]
    times: dict[str, list[float]] = {"float": [], "int8": []}
    for _ in range(args.repeats):
        for frame in held:  # interleaved: a change of load hits both alike
            times["float"].append(cpu_ms(reference, frame))
            times["int8"].append(cpu_ms(candidate, frame))
    float_ms, int8_ms = statistics.median(times["float"]), statistics.median(times["int8"])
    unseen = compare_models(reference, candidate, spread_frames(args.unseen, args.unseen_frames))
    gate = result.gate
    return (
        f"| {model.name} | {float_ms:.1f} | {int8_ms:.1f} | {int8_ms / float_ms:.2f} "
        f"| {gate.matched}/{gate.float_boxes} = {gate.recall:.3f} ({gate.score_change:+.3f}) "
        f"| {unseen.matched}/{unseen.float_boxes} = {unseen.recall:.3f} ({unseen.score_change:+.3f}) |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", default=[Path("models/yolov8n.onnx"), Path("models/yolov8n_320.onnx")])
    parser.add_argument("--calib", type=Path, default=Path("sample_videos/clips/vtest.avi"))
    parser.add_argument("--unseen", type=Path, default=Path("sample_videos/clips/bgs_video03.avi"))
    parser.add_argument("--frames", type=int, default=50, help="calibration frames")
    parser.add_argument("--holdout", type=int, default=20, help="held-back frames of --calib")
    parser.add_argument("--unseen-frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"calibration: {args.frames} frames of {args.calib}; held back: {args.holdout}; unseen: {args.unseen}")
    print("| model | float ms | int8 ms | ratio | recall held-back (score change) | recall unseen (score change) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            print(bench(model, args, Path(folder)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
