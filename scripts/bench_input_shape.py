#!/usr/bin/env python3
"""A dynamic-shape model's input shaped to the frame against its square letterbox: CPU time per
inference and the boxes it finds.

    .venv/bin/python scripts/bench_input_shape.py [--model models/yolov8n_dynamic.onnx]
        [--clip sample_videos/clips/vtest.avi] [--frames 20] [--repeats 5]

On frames spread over CLIP as they are (vtest: 768x576, 4:3) and as a 16:9 camera would give
them (the middle 768x432 resized to 1280x720), one row each:
  input            the model input each frame gets, shaped to the frame and square;
  shaped, square   CPU milliseconds of one `OnnxDetector.detect` (1 intra-op thread, as the
                   worker opens it), the two called in turn on each frame, --repeats times;
                   medians. CPU time, not wall time: the machine may be shared, and other
                   processes' load shows less in it;
  ratio            shaped ms / square ms;
  matched          the square input's boxes (score >= detect.min_score) with a box of the same
                   class at IoU >= 0.5 from the shaped input, and the shaped input's extra boxes.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from detector.config.schema import DetectConfig  # noqa: E402
from detector.detect.onnx_backend import OnnxDetector  # noqa: E402
from detector.detect.quantize import compare_models, spread_frames  # noqa: E402


def as_720p(image: np.ndarray) -> np.ndarray:
    """A 16:9 1280x720 frame from the middle rows of a taller one (4:3 and the like)."""
    height, width = image.shape[:2]
    rows = round(width * 9 / 16)
    top = (height - rows) // 2
    return cv2.resize(image[top : top + rows], (1280, 720), interpolation=cv2.INTER_LINEAR)


def cpu_ms(detector: OnnxDetector, frame: np.ndarray) -> float:
    started = time.process_time()
    detector.detect(frame)
    return (time.process_time() - started) * 1000


def bench(name: str, frames: list[np.ndarray], shaped: OnnxDetector, square: OnnxDetector, repeats: int) -> str:
    times: dict[str, list[float]] = {"shaped": [], "square": []}
    for _ in range(repeats):
        for frame in frames:  # interleaved: a change of load hits both alike
            times["shaped"].append(cpu_ms(shaped, frame))
            times["square"].append(cpu_ms(square, frame))
    shaped_ms, square_ms = statistics.median(times["shaped"]), statistics.median(times["square"])
    match = compare_models(square, shaped, frames)
    frame_hw = frames[0].shape[:2]
    inputs = " vs ".join(f"{w}x{h}" for h, w in (shaped.input_hw_for(frame_hw), square.input_hw_for(frame_hw)))
    return (
        f"| {name} {frame_hw[1]}x{frame_hw[0]} | {inputs} | {shaped_ms:.1f} | {square_ms:.1f} | {shaped_ms / square_ms:.2f} "
        f"| {match.matched}/{match.float_boxes} = {match.recall:.3f}, {match.extra} extra |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/yolov8n_dynamic.onnx"))
    parser.add_argument("--clip", type=Path, default=Path("sample_videos/clips/vtest.avi"))
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    defaults = DetectConfig()
    shaped = OnnxDetector(args.model, min_score=defaults.min_score, nms_iou=defaults.nms_iou)
    square = OnnxDetector(args.model, min_score=defaults.min_score, nms_iou=defaults.nms_iou, fit_frame=False)
    if not shaped.fits_frame:
        parser.error(f"{args.model} has a fixed input size: nothing to shape to the frame")
    frames = spread_frames(args.clip, args.frames)
    views: dict[str, Callable[[np.ndarray], np.ndarray]] = {"as recorded": lambda frame: frame, "as 16:9": as_720p}
    print(f"{args.model}, {len(frames)} frames of {args.clip}, {args.repeats} repeats, CPU ms per detect (1 thread)")
    print("| frames | input shaped vs square | shaped ms | square ms | ratio | square's boxes matched |")
    print("|---|---|---|---|---|---|")
    for name, view in views.items():
        print(bench(name, [view(frame) for frame in frames], shaped, square, args.repeats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
