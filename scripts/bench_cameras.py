#!/usr/bin/env python
"""Edge-box figures for docs/edge.md (issue 4), on a real RTSP stream served locally.

1. CPU per camera (cores = process CPU time / wall time of one `detector worker`, median of
   windows) at detect fps 1, 2 and 5, full vs keyframe-only decoding, for a 720p25 H.264 stream
   (vtest.avi upscaled to 1280x720 at 25 fps, a keyframe every second, made with PyAV/libx264).
2. The largest number of such cameras the box sustains at 1 fps, derived from (1), then checked
   by running that many in one `detector run` (every camera must keep ~1 fps out).
3. The inference budget: 4 processes x 1 thread running the model flat out, with and without
   the cross-process slots (max_concurrent = cores), in inferences per second.

4. `--levers N`: only a check of N cameras with every capacity lever (issue 11): configs/demo.yaml's
   zones and rules, `--model` (give the INT8 of models/yolov8n_dynamic.onnx), decode: auto,
   regions and motion gating as defaulted, 1 detection/s, one `detector run` for `--seconds`:
   per camera its frames out per second, frame age and dropped frames, and the box's busy share
   (/proc/stat: every process, the RTSP server serving N streams included).

Needs the gst-rtsp-server packages (scripts/test.sh installs them).
    .venv/bin/python scripts/bench_cameras.py [--model models/yolov8n.onnx] [--window 6] [--windows 3]
    .venv/bin/python scripts/bench_cameras.py --levers 30 --model MODEL_int8.onnx [--seconds 60]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from rtsp_server import RtspServer, make_h264_clip  # noqa: E402

from detector.budget import usable_cores  # noqa: E402
from detector.health import read_health  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
UTILISATION = 0.75
ZONE = {"id": "kerb", "polygon": [[0.82, 0.06], [0.97, 0.06], [0.97, 0.20], [0.82, 0.20]], "violations": ["illegal_parking"]}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, all threads


def write_config(folder: Path, model: Path, url: str, fps: float, keyframes: bool, cameras: int = 1, slots="auto") -> Path:
    config = {
        "site": "bench",
        "model": {"path": str(model), "threads": 1},
        "detect": {"fps": fps},
        "storage_dir": str(folder / "store"),
        "inference": {"max_concurrent": slots},
        "cameras": [
            {"id": f"cam{i}", "source": url, "decode": "keyframes" if keyframes else "full", "zones": [ZONE]}
            for i in range(cameras)
        ],
    }
    path = folder / f"bench-{fps}-{keyframes}-{cameras}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def one_camera(config: Path, warmup: float, window: float, windows: int) -> tuple[float, float]:
    """Median cores of one worker over `windows` windows, and its frames out per second."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector", "worker", str(config), "--camera", "cam0"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(warmup)
        health = Path(yaml.safe_load(config.read_text())["storage_dir"]) / "health" / "cam0.json"
        cores, frames = [], []
        for _ in range(windows):
            c0, t0, f0 = cpu_s(proc.pid), time.monotonic(), json.loads(health.read_text())["frames_out"]
            time.sleep(window)
            span = time.monotonic() - t0
            cores.append((cpu_s(proc.pid) - c0) / span)
            frames.append((json.loads(health.read_text())["frames_out"] - f0) / span)
        return statistics.median(cores), statistics.median(frames)
    finally:
        proc.terminate()
        proc.wait(30)


def busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def levers_config(folder: Path, model: Path, url: str, cameras: int) -> Path:
    """N cameras on `url` with the demo's zones and rules, 1 detection/s, every lever as defaulted."""
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    config = {
        **demo,
        "model": {"path": str(model), "threads": 1},
        "detect": {**demo["detect"], "fps": 1},
        "storage_dir": str(folder / "store-levers"),
        "cameras": [
            {"id": f"cam{i}", "source": url, "decode": "auto", "zones": demo["cameras"][0]["zones"]} for i in range(cameras)
        ],
    }
    path = folder / f"levers-{cameras}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def many_cameras(config: Path, count: int, seconds: float) -> list[dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector", "run", str(config)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        store = Path(yaml.safe_load(config.read_text())["storage_dir"]) / "health"
        deadline = time.monotonic() + 180  # start-up: every worker loads its model, then reports
        while time.monotonic() < deadline:
            reports = [read_health(store.parent, f"cam{i}") for i in range(count)]
            if all(r and r["state"] == "running" and r["frames_out"] for r in reports):
                break
            time.sleep(1)
        time.sleep(5)
        before = {i: json.loads((store / f"cam{i}.json").read_text()) for i in range(count)}
        ticks = busy_ticks()
        time.sleep(seconds)
        busy = busy_ticks()
        after = {i: json.loads((store / f"cam{i}.json").read_text()) for i in range(count)}
        print(f"box busy {(busy[0] - ticks[0]) / (busy[1] - ticks[1]):.0%} over {seconds:g} s", flush=True)
        return [
            {
                "fps_out": (after[i]["frames_out"] - before[i]["frames_out"])
                / (after[i]["heartbeat_at"] - before[i]["heartbeat_at"]),
                "frame_age_s": after[i]["frame_age_s"],
                "dropped": after[i]["dropped_frames"] - before[i]["dropped_frames"],
                "inference_wait_ms": after[i]["inference_wait_ms"],
                "decode": (after[i].get("decode") or {}).get("mode"),
            }
            for i in range(count)
        ]
    finally:
        proc.terminate()
        proc.wait(60)


LOOP = """
import sys, time, numpy as np
from pathlib import Path
from detector.config.schema import ModelConfig
from detector.detect import open_model
from detector.budget import InferenceSlots, GatedDetector
model = open_model(ModelConfig(path=Path(sys.argv[1]), threads=1), 0.25, 0.5)
if sys.argv[2] != "-":
    model = GatedDetector(model, InferenceSlots(sys.argv[2]))
image = (np.random.default_rng(0).random((720, 1280, 3)) * 255).astype(np.uint8)
model.detect(image)
print("ready", flush=True)
sys.stdin.readline()
deadline, n = time.monotonic() + float(sys.argv[3]), 0
while time.monotonic() < deadline:
    model.detect(image); n += 1
print(n, flush=True)
"""


def budget(model: Path, processes: int, slots_dir: Path | None, seconds: float) -> float:
    """Inferences per second of `processes` flat-out loops, started together."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOOP, str(model), str(slots_dir or "-"), str(seconds)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    total = sum(int(p.stdout.readline()) for p in procs)
    for p in procs:
        p.wait()
    return total / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "yolov8n.onnx")
    parser.add_argument("--window", type=float, default=6.0, help="seconds per CPU window")
    parser.add_argument("--windows", type=int, default=3, help="windows per figure (the median is printed)")
    parser.add_argument("--skip-check", action="store_true", help="do not run the derived number of cameras")
    parser.add_argument("--check-keyframes", action="store_true", help="also run the keyframe-only number (many processes)")
    parser.add_argument("--levers", type=int, help="only check this many cameras with every capacity lever (issue 11)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the --levers check")
    args = parser.parse_args()
    cores = usable_cores()
    work = Path(tempfile.mkdtemp(prefix="bench-cameras-"))
    clip = make_h264_clip(
        ROOT / "sample_videos" / "clips" / "vtest.avi",
        ROOT / "sample_videos" / "generated" / "rtsp" / "vtest-720p25.mp4",
        width=1280,
        height=720,
        fps=25,
        gop=25,
    )
    server = RtspServer(clip).start()
    print(f"model {args.model.name}, {cores} usable cores, stream 1280x720 @ 25 fps H.264 (GOP 1 s) over RTSP/TCP")
    if args.levers:
        try:
            return check_levers(work, args.model, server.url, args.levers, args.seconds)
        finally:
            server.kill()
    try:
        print(f"\nCPU per camera (cores; median of {args.windows} x {args.window:.0f} s)   frames out/s")
        print(f"{'detect fps':>10} {'full decode':>12} {'keyframes only':>15}   {'full':>5} {'keys':>5}")
        table = {}
        for fps in (1, 2, 5):
            row = [
                one_camera(write_config(work, args.model, server.url, fps, k), 5.0, args.window, args.windows)
                for k in (False, True)
            ]
            table[fps] = row
            print(f"{fps:>10} {row[0][0]:>12.3f} {row[1][0]:>15.3f}   {row[0][1]:>5.2f} {row[1][1]:>5.2f}")
        full_1, keys_1 = table[1][0][0], table[1][1][0]
        # 75 % of the cores: the rest for the RTSP/network stack, the supervisor, MQTT and bursts
        derived = {"full": int(UTILISATION * cores / full_1), "keyframes only": int(UTILISATION * cores / keys_1)}
        print(
            f"\ncameras at 1 fps on {cores} cores at 100 % CPU: full decode {int(cores / full_1)}, keyframes only "
            f"{int(cores / keys_1)}; at {UTILISATION:.0%}: full decode {derived['full']}, "
            f"keyframes only {derived['keyframes only']}"
        )
        if not args.skip_check:
            for keyframes, label in ((False, "full"), (True, "keyframes only"))[: 2 if args.check_keyframes else 1]:
                n = derived[label]
                stats = many_cameras(write_config(work, args.model, server.url, 1, keyframes, cameras=n), n, 20.0)
                worst = min(s["fps_out"] for s in stats)
                print(
                    f"check {label}: {n} cameras for 20 s: fps out min {worst:.2f}, mean "
                    f"{statistics.mean(s['fps_out'] for s in stats):.2f}, max frame age "
                    f"{max(s['frame_age_s'] or 0 for s in stats):.2f} s, dropped {sum(s['dropped'] for s in stats)}"
                )
        slots = work / "slots"
        from detector.budget import create_slots

        create_slots(slots, cores)
        free = [budget(args.model, 4, None, 10.0) for _ in range(2)]
        gated = [budget(args.model, 4, slots, 10.0) for _ in range(2)]
        alone = [budget(args.model, cores, None, 10.0) for _ in range(2)]
        print(f"\ninference budget, 720p frame, {args.model.name}, inferences/s (median of 2 x 10 s):")
        print(f"  4 processes, no limit:              {statistics.median(free):.1f}")
        print(f"  4 processes, max_concurrent={cores}:     {statistics.median(gated):.1f}")
        print(f"  {cores} processes (reference):           {statistics.median(alone):.1f}")
    finally:
        server.kill()
    return 0


def check_levers(work: Path, model: Path, url: str, count: int, seconds: float) -> int:
    stats = many_cameras(levers_config(work, model, url, count), count, seconds)
    fps = [s["fps_out"] for s in stats]
    ages = [s["frame_age_s"] or 0 for s in stats]
    dropped = sum(s["dropped"] for s in stats)
    print(
        f"{count} cameras, demo zones, 1 detection/s, {seconds:g} s: fps out min {min(fps):.2f} mean {statistics.mean(fps):.2f} "
        f"max {max(fps):.2f}; frame age max {max(ages):.2f} s; dropped frames {dropped}; "
        f"decode {sorted({str(s['decode']) for s in stats})}; inference wait max {max(s['inference_wait_ms'] or 0 for s in stats):.0f} ms"
    )
    return 0 if min(fps) >= 0.95 and max(ages) < 1.0 and dropped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
