#!/usr/bin/env python
"""CPU of a live camera's decoding, `decode: full` vs `decode: auto` (issue 11), per stream second.

The stream: vtest.avi (real street footage) upscaled to 1280x720 at 25 fps, H.264 with a keyframe
every second (PyAV/libx264), served over RTSP/TCP by gst-rtsp-server on this box. Each run starts
a fresh server and one LiveSource at detect fps 1 (what `detector run` opens, without the model),
takes its frames as a worker would, lets auto measure the keyframe interval (`--warmup` s), then
counts this process's CPU time (all threads, FFmpeg's included) over `--window` s. A live
stream comes in real time, so a wall second is a stream second. Runs alternate full, auto, full,
auto, ...; each figure is the median of `--runs`.

Needs the gst-rtsp-server packages (scripts/test.sh installs them).
    .venv/bin/python scripts/bench_decode.py [--runs 3] [--warmup 5] [--window 8]
"""

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from rtsp_server import RtspServer, gst_available, make_h264_clip  # noqa: E402

from detector.capture import open_source  # noqa: E402

DETECT_FPS = 1.0
CLIP_S = 20.0  # each run plays the clip from its start; the server ends the stream at its end


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def consume(source, seconds: float) -> None:
    """Take the sampled frames for `seconds`, as a worker's frame loop does."""
    deadline = time.monotonic() + seconds
    for _ in source.frames(timeout_s=0.2):
        if time.monotonic() >= deadline:
            return


def one_run(clip: Path, decode: str, warmup_s: float, window_s: float) -> tuple[float, str]:
    """CPU seconds per stream second over the window, and what the source decoded then."""
    server = RtspServer(clip).start()
    source = open_source(server.url, DETECT_FPS, live=True, name=decode, decode=decode)
    try:
        consume(source, warmup_s)
        cpu, wall = cpu_s(), time.monotonic()
        consume(source, window_s)
        cores = (cpu_s() - cpu) / (time.monotonic() - wall)
        choice = source.stats.decode
    finally:
        source.close()
        server.kill()
    return cores, f"{choice.mode} ({choice.reason})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per mode (the median is printed)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the window (auto measures the GOP)")
    parser.add_argument("--window", type=float, default=8.0, help="seconds of stream measured per run")
    args = parser.parse_args()
    if args.warmup + args.window > CLIP_S - 2:
        parser.error(f"--warmup + --window must be at most {CLIP_S - 2:g} s (the clip is {CLIP_S:g} s)")
    if not gst_available():
        print("bench_decode: gst-rtsp-server is not installed (scripts/test.sh installs it)", file=sys.stderr)
        return 1
    clip = make_h264_clip(
        ROOT / "sample_videos" / "clips" / "vtest.avi",
        ROOT / "sample_videos" / "generated" / "rtsp" / "vtest-720p25-20s.mp4",
        width=1280,
        height=720,
        fps=25,
        gop=25,
        seconds=CLIP_S,
    )
    print(f"1280x720 @ 25 fps H.264, GOP 1 s, over RTSP/TCP; detect fps {DETECT_FPS:g}; {os.cpu_count()} CPUs")
    cores: dict[str, list[float]] = {"full": [], "auto": []}
    decoded: dict[str, str] = {}
    for _ in range(args.runs):
        for decode in cores:  # interleaved: the box's load drifts over all of them alike
            figure, decoded[decode] = one_run(clip, decode, args.warmup, args.window)
            cores[decode].append(figure)
    print(f"\nCPU s per stream s (median of {args.runs} x {args.window:g} s)   runs")
    for decode, figures in cores.items():
        runs = " ".join(f"{f:.4f}" for f in figures)
        print(f"  {decode:5} {statistics.median(figures):.4f}                      {runs}   decoding {decoded[decode]}")
    ratio = statistics.median(cores["auto"]) / statistics.median(cores["full"])
    print(f"\nauto / full: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
