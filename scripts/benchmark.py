#!/usr/bin/env python3
"""Speed of the pieces of one camera's pipeline on this machine, per model.

    .venv/bin/python scripts/benchmark.py [--clip sample_videos/clips/vtest.avi]
        [--models models/yolov8n.onnx models/yolov8n_320.onnx models/yolox_nano.onnx]
        [--repeats 5] [--fps 2] [--iterations 60] [--profile] [--json [FILE]]

For the clip:
  decode      frames/s of a PyAV decode of every frame, no colour conversion;
  sampled     frames/s decoded through detector.capture.open_source(clip, fps).frames(), which
              converts only the sampled frames to BGR (the worker's real input path).
For each model (ONNX Runtime, 1 intra-op thread, as the worker opens it):
  infer/s     OnnxDetector.detect(image) calls per second (preprocess + run + postprocess);
  ratio       the detector's per-inference time over a bare `session.run` on the same,
              already-preprocessed input, measured interleaved (detect, run, detect, run, ...)
              on the same session; median of the detect times / median of the run times.
              The target is <= 1.15: pre- and post-processing should cost little next to the model;
  stages      median ms of letterbox, to_blob, session.run, decode, NMS (one pass each);
  replay x    detector.replay.replay() of the whole clip (decode, model, tracker, rules, sinks)
              as a multiple of real time: stream seconds / wall seconds.
Every figure is the median over --repeats runs (inference figures: over --iterations calls).
The machine may be shared and noisy: compare ratios measured in one run, not absolute numbers
across runs. When a ratio exceeds the target (or with --profile) the detect path is profiled
with cProfile and the most expensive functions are printed.
"""

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from detector.capture import open_source  # noqa: E402
from detector.config import load_config  # noqa: E402
from detector.detect.letterbox import letterbox  # noqa: E402
from detector.detect.nms import non_max_suppression  # noqa: E402
from detector.detect.onnx_backend import OnnxDetector  # noqa: E402
from detector.replay import replay  # noqa: E402

TARGET_RATIO = 1.15
DEFAULT_MODELS = ["models/yolov8n.onnx", "models/yolov8n_320.onnx", "models/yolox_nano.onnx"]


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# ---------------------------------------------------------------- decoding


def decode_all(clip: Path) -> tuple[int, float]:
    """Decode every frame with PyAV (threads as FileSource sets them), no conversion."""
    started = time.perf_counter()
    count = 0
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            count += 1
    return count, time.perf_counter() - started


def decode_sampled(clip: Path, fps: float) -> tuple[int, int, float, float]:
    """open_source(clip, fps).frames(): (decoded frames, sampled frames, stream seconds, wall seconds)."""
    started = time.perf_counter()
    sampled, last_ts = 0, 0.0
    source = open_source(clip, fps)
    for frame in source.frames():
        sampled, last_ts = sampled + 1, frame.ts
    return source.stats.decoded, sampled, last_ts, time.perf_counter() - started


def sampled_images(clip: Path, fps: float, limit: int) -> list[np.ndarray]:
    images = [frame.image for frame in open_source(clip, fps).frames()]
    if len(images) > limit:  # spread over the whole clip
        images = [images[i] for i in np.linspace(0, len(images) - 1, limit).round().astype(int)]
    return images


# ---------------------------------------------------------------- inference


def time_detect_vs_run(detector: OnnxDetector, images: list[np.ndarray], iterations: int) -> dict:
    """Interleave detect(image) and session.run(blob) on the same session, image by image."""
    blobs = [detector.codec.preprocess([image])[0] for image in images]
    feed = detector.input_name
    run = detector.session.run
    for image, blob in zip(images[:3], blobs[:3]):  # warm-up: arena allocation, caches
        detector.detect(image)
        run(None, {feed: blob})
    detect_s, run_s = [], []
    for i in range(iterations):
        image, blob = images[i % len(images)], blobs[i % len(images)]
        # alternate which goes first so neither always follows the other's cache state
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            started = time.perf_counter()
            if which == 0:
                detector.detect(image)
                detect_s.append(time.perf_counter() - started)
            else:
                run(None, {feed: blob})
                run_s.append(time.perf_counter() - started)
    pair_ratios = [d / r for d, r in zip(detect_s, run_s)]
    return {
        "detect_ms": median(detect_s) * 1000,
        "run_ms": median(run_s) * 1000,
        "inferences_per_s": 1.0 / median(detect_s),
        "ratio": median(detect_s) / median(run_s),
        "ratio_pairwise_median": median(pair_ratios),
        "iterations": iterations,
    }


def time_stages(detector: OnnxDetector, images: list[np.ndarray]) -> dict:
    """Median ms of each stage of OnnxDetector.detect, one image at a time."""
    stages: dict[str, list[float]] = {k: [] for k in ("letterbox", "to_blob", "session_run", "decode", "nms", "to_frame")}
    codec = detector.codec
    for image in images:
        t0 = time.perf_counter()
        canvas, box = letterbox(image, detector.input_hw, centred=codec.centred)
        t1 = time.perf_counter()
        blob = codec.to_blob([canvas])
        t2 = time.perf_counter()
        output = detector.session.run(None, {detector.input_name: blob})[0]
        t3 = time.perf_counter()
        xyxy, score, class_id = codec.decode(output[0], detector.min_score)
        t4 = time.perf_counter()
        keep = non_max_suppression(xyxy, score, class_id, detector.nms_iou) if codec.needs_nms else slice(None)
        t5 = time.perf_counter()
        frame_xyxy = box.to_frame(xyxy[keep])
        np.clip(frame_xyxy, 0, [image.shape[1], image.shape[0]] * 2, out=frame_xyxy)
        t6 = time.perf_counter()
        for name, (a, b) in zip(stages, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)]):
            stages[name].append((b - a) * 1000)
    return {name: round(median(values), 3) for name, values in stages.items()}


def profile_detect(detector: OnnxDetector, images: list[np.ndarray], top: int = 15) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for image in images:
        detector.detect(image)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


# ---------------------------------------------------------------- whole pipeline


def time_replay(config_path: Path, model: Path, clip: Path, fps: float, repeats: int) -> dict:
    base = load_config(config_path)
    config = base.model_copy(
        update={
            "model": base.model.model_copy(update={"path": Path(model)}),
            "detect": base.detect.model_copy(update={"fps": fps}),
        }
    )
    camera_id = config.cameras[0].id
    speeds, walls, frames, stream_s = [], [], 0, 0.0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
            summary = replay(config, camera_id, out_dir=Path(tmp), source=clip, quiet=True, progress=False)
        frames, stream_s = summary.frames, summary.stream_s
        walls.append(summary.wall_s)
        speeds.append(summary.stream_s / summary.wall_s)
    return {
        "realtime_x": median(speeds),
        "wall_s": median(walls),
        "frames": frames,
        "stream_s": stream_s,
        "alerts": len(summary.alerts),
    }


# ---------------------------------------------------------------- main


def _locate(path: Path) -> Path:
    if path.is_absolute() or path.exists():
        return path.resolve()
    return ROOT / path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=Path("sample_videos/clips/vtest.avi"))
    parser.add_argument("--models", type=Path, nargs="+", default=[Path(m) for m in DEFAULT_MODELS])
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("configs/demo.yaml"),
        help="config the replay runs (its first camera, with the model and clip replaced)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs of decode and replay (median)")
    parser.add_argument("--fps", type=float, default=2.0, help="detect fps (frames sampled per stream second)")
    parser.add_argument(
        "--iterations", type=int, default=60, help="interleaved detect/session.run pairs per model for the ratio (median)"
    )
    parser.add_argument("--frames", type=int, default=20, help="distinct sampled frames the inference loop cycles over")
    parser.add_argument("--no-replay", action="store_true", help="skip the whole-pipeline replay")
    parser.add_argument("--profile", action="store_true", help="profile the detect path even when the ratio is fine")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="also write machine-readable results to FILE (or stdout; the table then goes to stderr)",
    )
    args = parser.parse_args(argv)
    # paths given relative to where the script is run from; defaults relative to the project
    args.clip, args.config = _locate(args.clip), _locate(args.config)
    args.models = [_locate(m) for m in args.models]
    os.chdir(ROOT)  # the config's own relative paths (models, clips) are relative to the project
    out = sys.stderr if args.json == "-" else sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    for path in [args.clip, args.config, *args.models]:
        if not path.is_file():
            print(f"benchmark: file not found: {path}", file=sys.stderr)
            return 2

    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "av": av.__version__,
        },
        "clip": str(args.clip),
        "fps": args.fps,
        "repeats": args.repeats,
        "target_ratio": TARGET_RATIO,
    }

    say(
        f"clip {args.clip}  (detect fps {args.fps}, {args.repeats} repeats, medians; "
        f"{os.cpu_count()} cpus, onnxruntime {ort.__version__})"
    )
    all_fps, sampled_fps = [], []
    total = decoded = sampled = 0
    stream_s = 0.0
    for _ in range(args.repeats):
        total, wall = decode_all(args.clip)
        all_fps.append(total / wall)
        decoded, sampled, stream_s, wall = decode_sampled(args.clip, args.fps)
        sampled_fps.append(decoded / wall)
    results["decode"] = {
        "frames": total,
        "decode_fps": median(all_fps),
        "sampled_frames": sampled,
        "sampled_decode_fps": median(sampled_fps),
        "stream_s": stream_s,
    }
    say(f"  decode, every frame, no conversion : {median(all_fps):8.1f} frames/s  ({total} frames)")
    say(
        f"  FileSource at {args.fps:g} fps, BGR of sampled: {median(sampled_fps):8.1f} frames/s decoded "
        f"({sampled} sampled of {decoded})"
    )
    say()

    config = load_config(args.config)
    min_score, nms_iou = config.model_threshold, config.detect.nms_iou
    images = sampled_images(args.clip, args.fps, args.frames)
    rows, profiles = [], {}
    for model in args.models:
        detector = OnnxDetector(model, min_score=min_score, nms_iou=nms_iou, threads=1)
        timing = time_detect_vs_run(detector, images, args.iterations)
        stages = time_stages(detector, images)
        row = {
            "model": str(model),
            "input": f"{detector.input_hw[1]}x{detector.input_hw[0]}",
            "layout": detector.codec.name,
            **timing,
            "stages_ms": stages,
        }
        if timing["ratio"] > TARGET_RATIO or args.profile:
            profiles[str(model)] = profile_detect(detector, images)
        if not args.no_replay:
            row["replay"] = time_replay(args.config, model, args.clip, args.fps, args.repeats)
        rows.append(row)
        say(f"  measured {model} ...")
    results["models"] = rows

    say()
    header = (
        f"{'model':<26} {'input':>7} {'infer/s':>8} {'detect ms':>9} {'run ms':>8} {'ratio':>6} "
        f"{'pre ms':>7} {'post ms':>7} {'replay x':>9}"
    )
    say(header)
    say("-" * len(header))
    for row in rows:
        s = row["stages_ms"]
        pre, post = s["letterbox"] + s["to_blob"], s["decode"] + s["nms"] + s["to_frame"]
        replay_x = f"{row['replay']['realtime_x']:9.2f}" if "replay" in row else f"{'-':>9}"
        flag = "" if row["ratio"] <= TARGET_RATIO else "  > target"
        say(
            f"{Path(row['model']).name:<26} {row['input']:>7} {row['inferences_per_s']:8.2f} {row['detect_ms']:9.2f} "
            f"{row['run_ms']:8.2f} {row['ratio']:6.3f} {pre:7.2f} {post:7.2f} {replay_x}{flag}"
        )
    say()
    say(
        "ratio = median detect() / median bare session.run() on the same preprocessed input "
        f"(interleaved, {args.iterations} pairs; target <= {TARGET_RATIO}); pre = letterbox + to_blob, "
        "post = decode + NMS + to_frame (stage medians); replay x = stream s / wall s of detector.replay"
    )
    for row in rows:
        s = row["stages_ms"]
        say(
            f"  {Path(row['model']).name}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in s.items())
            + " ms"
            + (f"; replay {row['replay']['frames']} frames, {row['replay']['wall_s']:.1f} s wall" if "replay" in row else "")
        )
    for model, text in profiles.items():
        say()
        say(f"cProfile of detect() on {model} ({len(images)} frames), by own time:")
        say(text)
    if profiles:
        results["profiles"] = profiles

    if args.json == "-":
        json.dump(results, sys.stdout, indent=2)
        print()
    elif args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
