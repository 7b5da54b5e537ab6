#!/usr/bin/env python
"""CPU per camera at 1 detection/s: ours, lever by lever, against an Ultralytics pipeline, in one run (issue 11).

Two clips: (a) vtest.avi upscaled to 1280x720 at 25 fps, H.264 with a keyframe every second (PyAV,
cached under sample_videos/generated/rtsp/), and (b) vtest.avi itself (768x576, 10 fps, MPEG-4
with a keyframe every 25 s). On each, at detect fps 1:

    ours, today's default   configs/demo.yaml's camera (its zones and rules, static objects and
                            all) with models/yolov8n.onnx (a 640x640 letterbox), decode: full,
                            regions and motion gating off: the pipeline before issue 11
    ours + keyframes        decode: auto (keyframes only where the clip's keyframe interval allows
                            1 detection/s: the 720p clip's does, vtest's does not)
    ours + INT8             `detector quantize models/yolov8n.onnx --calib vtest.avi` (cached in --work)
    ours + dynamic shape    models/yolov8n_dynamic.onnx (its input shaped by the backend)
    ours + regions          the dynamic-shape model on regions over the zones
    ours + motion gating    the default model, its whole frame run only on motion or re-check
    ours, new defaults      what a user now gets without tuning: the dynamic-shape model, decode:
                            auto, regions and motion gating
    ours, all levers        the new defaults with the INT8 quantisation of the dynamic-shape model
    Ultralytics .pt         YOLO('models/yolov8n.pt').track(source=clip, stream=True, vid_stride=clip fps)
    Ultralytics ONNX        the same with YOLO('models/yolov8n.onnx', task='detect')

Ours plays the clip the way `detector run` plays a file (LiveSource: a reader thread decoding at
the clip's frame rate); Ultralytics reads it as fast as it goes. Every run is a child process of
its own (its own memory and CPU) that measures itself: process CPU time (all its threads: decoder,
ONNX Runtime, torch) from the first detection at or after --warmup s of stream time (model loading,
first inferences and decode: auto's measuring of the keyframe interval come before) to the last one
--window s later, over the stream time between them: CPU-seconds per stream-second, the cores one
camera takes. Peak RSS is the child's largest resident set. Both sides run the model on one thread
(`model.threads: 1`; torch.set_num_threads(1) and ONNX Runtime with one intra-op thread for
Ultralytics): one camera of many on a box. Runs are interleaved, every configuration once and
again --repeats times, so a change of the box's load hits all alike; figures are medians.

The Ultralytics side runs under --ultralytics-python (torch and ultralytics are an optional extra,
best in a venv of their own: docs/edge.md); where ultralytics does not import there, its rows are
skipped with a message. It runs offline: YOLO_OFFLINE=1 and its settings under --work.

    .venv/bin/python scripts/bench_pipeline.py [--ultralytics-python /tmp/ulvenv/bin/python]
        [--repeats 3] [--warmup 4] [--window 12] [--work /tmp/bench_pipeline] [--only NAME...] [--clip 720p|vtest]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DETECT_FPS = 1.0
VTEST = ROOT / "sample_videos" / "clips" / "vtest.avi"
CLIP_720P = ROOT / "sample_videos" / "generated" / "rtsp" / "vtest-720p25-20s.mp4"  # shared with bench_decode.py
CLIP_720P_S = 20.0
DEMO_CONFIG = ROOT / "configs" / "demo.yaml"
MODEL = ROOT / "models" / "yolov8n.onnx"
DYNAMIC_MODEL = ROOT / "models" / "yolov8n_dynamic.onnx"
PT_MODEL = ROOT / "models" / "yolov8n.pt"
ULTRALYTICS_PT = "Ultralytics .pt"  # the row the last ratio is taken to
RESULT = "bench_pipeline result: "  # the child's figures, one JSON line after whatever its libraries print


@dataclass(frozen=True)
class Setup:
    """One configuration: which side runs it, with which model, decoding how, with regions and
    motion gating or not (ours only)."""

    name: str
    side: str  # ours | ultralytics
    model: Path
    decode: str = "full"
    regions: bool = False
    motion: bool = False


# --- child side: runs under either interpreter, so it imports its side's packages only ---


def measure_window(detection_times: Iterable[float], warmup_s: float, window_s: float) -> dict:
    """This process's CPU per stream second between the first detection at or after `warmup_s`
    and the first one `window_s` after it; `detection_times` yields each detection's stream time
    as it completes."""
    first = last = None
    detections = 0
    for ts in detection_times:
        if ts < warmup_s:
            continue
        mark = (ts, time.process_time())
        if first is None:
            first = mark
            continue
        last, detections = mark, detections + 1
        if ts >= first[0] + window_s:
            break
    if last is None:
        raise RuntimeError(f"the clip ended before {warmup_s + window_s:g} s of stream time")
    stream_s = last[0] - first[0]
    return {
        "cores": (last[1] - first[1]) / stream_s,
        "detections_per_s": detections / stream_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_ours(spec: dict) -> dict:
    """The demo camera on `spec`'s clip, model and decode, played as `detector run` plays a file."""
    import yaml

    from detector.capture import open_source
    from detector.config import load_config
    from detector.config.load import read_yaml
    from detector.worker import CameraPipeline

    raw = read_yaml(DEMO_CONFIG)
    raw["model"]["path"] = spec["model"]
    raw["detect"]["fps"] = DETECT_FPS
    raw["cameras"][0].update(source=spec["clip"], decode=spec["decode"])
    raw["regions"], raw["motion"] = {"enabled": spec["regions"]}, {"enabled": spec["motion"]}
    config = load_config(DEMO_CONFIG, text=yaml.safe_dump(raw))
    camera = config.cameras[0]
    pipeline = CameraPipeline.build(config, camera, wall_of=lambda ts: datetime.now(UTC))
    # opened after the model is loaded: the reader thread plays the clip from then on
    source = open_source(camera.source, config.detect.fps, live=True, decode=camera.decode)

    def detect(frame) -> float:
        pipeline.process(frame)
        return frame.ts

    try:
        figures = measure_window(map(detect, source.frames()), spec["warmup_s"], spec["window_s"])
        return {**figures, "decoded": source.stats.decode.mode}
    finally:
        source.close()
        pipeline.close()


def run_ultralytics(spec: dict) -> dict:
    """`YOLO(model).track(stream=True, vid_stride)` on `spec`'s clip, one detection per second."""
    import cv2
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(1)
    if spec["model"].endswith(".onnx"):
        _onnx_runtime_on_one_thread()
    capture = cv2.VideoCapture(spec["clip"])
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    stride = max(1, round(fps / DETECT_FPS))
    results = YOLO(spec["model"], task="detect").track(
        source=spec["clip"], stream=True, vid_stride=stride, device="cpu", verbose=False
    )
    figures = measure_window((i * stride / fps for i, _ in enumerate(results)), spec["warmup_s"], spec["window_s"])
    return {**figures, "decoded": "full"}  # OpenCV decodes every frame; vid_stride skips only the model


def _onnx_runtime_on_one_thread() -> None:
    """Ultralytics opens ONNX Runtime with default options (an intra-op thread per core) and no
    way to pass others; its backend table gets options with one thread, as ours runs."""
    import functools

    import onnxruntime
    from ultralytics.nn.autobackend import AutoBackend

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    backends = AutoBackend._BACKEND_MAP
    AutoBackend._BACKEND_MAP = {**backends, "onnx": functools.partial(backends["onnx"], session_options=options)}


def child(spec: dict) -> int:
    figures = run_ours(spec) if spec["side"] == "ours" else run_ultralytics(spec)
    print(RESULT + json.dumps(figures), flush=True)
    return 0


# --- parent side ---


class BenchError(Exception):
    """A clear reason to stop, printed without a traceback."""


def last_line(text: str) -> str:
    """The last line a failing child wrote: its error, without the traceback above it."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no message)"


def prepare_clip() -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from rtsp_server import make_h264_clip

    return make_h264_clip(VTEST, CLIP_720P, width=1280, height=720, fps=25, gop=25, seconds=CLIP_720P_S)


def int8_model(model: Path, work: Path) -> Path:
    """`detector quantize MODEL --calib vtest.avi`, cached in `work` under the float model's digest."""
    from detector.detect.base import file_digest

    out = work / f"{model.stem}-{file_digest(model)[:12]}_int8.onnx"
    if not out.exists():
        print(f"quantising {model.name} -> {out}", flush=True)
        command = [sys.executable, "-m", "detector", "quantize", str(model), "--calib", str(VTEST), "--out", str(out)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"detector quantize {model.name} failed: {last_line(done.stderr)}")
    return out


def ultralytics_env(work: Path) -> dict[str, str]:
    """No hub, no downloads, no settings file in the home folder (shared/assets/MANIFEST.md)."""
    return {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(work / "ultralytics")}


def ultralytics_missing(python: str, env: dict[str, str]) -> str | None:
    """Why the Ultralytics rows cannot run under `python`, or None when they can."""
    try:
        probe = subprocess.run([python, "-c", "import torch, ultralytics"], capture_output=True, text=True, env=env, timeout=120)
    except OSError as exc:
        return f"{python}: {exc.strerror}"
    if probe.returncode != 0:
        return f"ultralytics (or torch) does not import under {python}: {last_line(probe.stderr)}"
    return None


def run_child(setup: Setup, clip: Path, args: argparse.Namespace, env: dict[str, str]) -> dict:
    spec = {
        "side": setup.side,
        "model": str(setup.model),
        "decode": setup.decode,
        "regions": setup.regions,
        "motion": setup.motion,
        "clip": str(clip),
        "warmup_s": args.warmup,
        "window_s": args.window,
    }
    python = sys.executable if setup.side == "ours" else args.ultralytics_python
    command = [python, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    limit_s = 120 + 2 * (args.warmup + args.window)
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=limit_s)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{setup.name} on {clip.name}: no result within {limit_s:g} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        raise BenchError(f"{setup.name} on {clip.name} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(lines[-1].removeprefix(RESULT))


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "unknown CPU")
    return f"{model}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable)"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def table(setups: list[Setup], runs: dict[str, list[dict]]) -> list[str]:
    """One clip's markdown table; ratios to our default and to Ultralytics .pt, medians of the runs."""
    cores = {name: statistics.median(r["cores"] for r in figures) for name, figures in runs.items()}
    ours, theirs = cores.get(setups[0].name), cores.get(ULTRALYTICS_PT)
    lines = [
        "| configuration | CPU per camera (cores) | × our default | × Ultralytics .pt | peak RSS (MB) | detections/s | decoded |",
        "|---|---|---|---|---|---|---|",
    ]
    for setup in setups:
        if setup.name not in runs:
            continue
        figures = runs[setup.name]
        versus_theirs = f"{cores[setup.name] / theirs:.2f}" if theirs else "-"
        lines.append(
            f"| {setup.name} | {cores[setup.name]:.3f} | {cores[setup.name] / ours:.2f} | {versus_theirs} "
            f"| {max(r['peak_rss_mb'] for r in figures):.0f} "
            f"| {statistics.median(r['detections_per_s'] for r in figures):.2f} | {figures[-1]['decoded']} |"
        )
    return lines


def setups(work: Path, with_ultralytics: bool) -> list[Setup]:
    ours = [
        Setup("ours, today's default", "ours", MODEL),
        Setup("ours + keyframes (decode: auto)", "ours", MODEL, "auto"),
        Setup("ours + INT8", "ours", int8_model(MODEL, work)),
        Setup("ours + dynamic shape", "ours", DYNAMIC_MODEL),
        Setup("ours + regions", "ours", DYNAMIC_MODEL, regions=True),
        Setup("ours + motion gating", "ours", MODEL, motion=True),
        Setup("ours, new defaults", "ours", DYNAMIC_MODEL, "auto", regions=True, motion=True),
        Setup("ours, all levers", "ours", int8_model(DYNAMIC_MODEL, work), "auto", regions=True, motion=True),
    ]
    theirs = [Setup(ULTRALYTICS_PT, "ultralytics", PT_MODEL), Setup("Ultralytics ONNX", "ultralytics", MODEL)]
    return ours + (theirs if with_ultralytics else [])


def bench(args: argparse.Namespace) -> int:
    args.work.mkdir(parents=True, exist_ok=True)
    env = ultralytics_env(args.work)
    why_not = ultralytics_missing(args.ultralytics_python, env)
    if why_not:
        print(f"Ultralytics rows skipped: {why_not}; pass --ultralytics-python (docs/edge.md)", flush=True)
    needed = [VTEST, DEMO_CONFIG, MODEL, DYNAMIC_MODEL] + ([] if why_not else [PT_MODEL])
    missing = [str(p.relative_to(ROOT)) for p in needed if not p.exists()]
    if missing:
        raise BenchError(f"missing {', '.join(missing)} (scripts/fetch_assets.py fetches models and clips)")
    clips = {"720p25 H.264, keyframe every 1 s (vtest upscaled)": prepare_clip(), "vtest.avi (768x576, 10 fps, MPEG-4)": VTEST}
    clips = {label: clip for label, clip in clips.items() if not args.clip or any(c in label for c in args.clip)}
    configurations = setups(args.work, with_ultralytics=why_not is None)
    if args.only:  # the first (our default) stays: the ratios are taken to it
        configurations = configurations[:1] + [c for c in configurations[1:] if any(o in c.name for o in args.only)]
    print(f"machine: {machine()}; load average before: {load()}", flush=True)
    runs: dict[str, dict[str, list[dict]]] = {clip: {} for clip in clips}
    started = time.monotonic()
    for repeat in range(args.repeats):
        for label, clip in clips.items():
            for setup in configurations:  # interleaved: a change of load hits every configuration alike
                figures = run_child(setup, clip, args, env)
                runs[label].setdefault(setup.name, []).append(figures)
                print(
                    f"  run {repeat + 1}/{args.repeats} {clip.name:24} {setup.name:32} {figures['cores']:.3f} cores", flush=True
                )
    print(f"\nload average after: {load()}; {time.monotonic() - started:.0f} s")
    for label in clips:
        print(f"\n{label}: CPU-s per stream-s at {DETECT_FPS:g} detection/s, medians of {args.repeats} runs of {args.window:g} s")
        print("\n".join(table(configurations, runs[label])))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ultralytics-python", default=sys.executable, help="interpreter with torch and ultralytics")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration and clip (medians printed)")
    parser.add_argument("--warmup", type=float, default=4.0, help="stream seconds before the measured window")
    parser.add_argument("--window", type=float, default=12.0, help="stream seconds measured per run")
    parser.add_argument(
        "--only", nargs="+", help="run only the configurations whose names contain one of these (and the default)"
    )
    parser.add_argument("--clip", nargs="+", help="run only the clips whose labels contain one of these (720p, vtest)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_pipeline"), help="INT8 models, Ultralytics settings")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one run, in a child process: a JSON spec
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        return child(json.loads(args.child))
    if args.repeats < 1 or args.warmup < 0 or args.window < 2:
        parser.error("--repeats must be >= 1, --warmup >= 0 and --window >= 2")
    if args.warmup + args.window > CLIP_720P_S - 2:
        parser.error(f"--warmup + --window must be at most {CLIP_720P_S - 2:g} s (the 720p clip is {CLIP_720P_S:g} s)")
    try:
        return bench(args)
    except BenchError as exc:
        print(f"bench_pipeline: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
