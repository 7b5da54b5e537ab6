"""`detector capacity CONFIG`: cameras per box, measured on this box (issue 11, docs/edge.md).

For each camera measured (the config's, one of them, or a sample clip standing for all, with
the first camera's zones), the first `seconds` of its video (a live camera's recorded first,
packets copied) are measured REPEATS times, interleaved where it is cheap:

    decode        every frame and keyframes only, in this process        (measure.decode_cores)
    detect+rules  per model option, in a spawned worker-like process    (measure.detect_cores)

and plan.py sums them per lever into cores per camera and cameras per box at the target load of
the usable cores. `Capacity` holds it all; `lines()` is the report, `as_json()` its JSON.
"""

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from detector.budget import usable_cores
from detector.capacity.measure import DetectFigures, Sample, auto_decode, decode_cores, detect_cores, record_stream, sample_frames
from detector.capacity.plan import CameraFigures, Figure, Lever, ModelOption, Skipped, levers, model_options
from detector.capture.keyframes import DecodeChoice
from detector.config import AppConfig, CameraConfig
from detector.errors import DetectorError, redact_url

REPEATS = 3  # each figure measured three times: the median plans, the range shows the noise
TARGET_LOAD = 0.75  # the rest of the cores for the network stack, the supervisor, MQTT and bursts
MEMORY = "peak RSS of a worker-like process (spawned; the model loaded, the camera's pipeline run one frame at a time)"


@dataclass(frozen=True)
class Box:
    """What the figures were measured on."""

    cpu: str
    cores: int
    load: tuple[float, float]  # 1-minute load average before and after

    def text(self) -> str:
        return f"{self.cpu}, {self.cores} usable cores, load average {self.load[0]:.2f} before, {self.load[1]:.2f} after"


@dataclass(frozen=True)
class Capacity:
    box: Box
    fps: float
    model_threads: int  # intra-op threads of one inference (model.threads): what each inference may take
    target_load: float
    cameras: list[CameraFigures]
    levers: list[Lever]
    skipped: list[Skipped]

    def lines(self) -> list[str]:
        out = [f"box: {self.box.text()}"]
        for camera in self.cameras:
            out += _camera_lines(camera, self.fps)
        out += [
            "",
            f"cameras per box: {self.target_load:.0%} of {self.box.cores} cores, detect fps {self.fps:g}, "
            f"model.threads {self.model_threads}, CPU per camera in cores",
        ]
        header = ("lever", "model", "decode", "CPU per camera", "cameras", "memory")
        rows = [
            (row.name, row.model.name, row.decode, row.cpu.text(), str(row.cameras), f"{row.memory_mb:.0f} MB")
            for row in self.levers
        ]
        out += _table(header, rows)
        out += [f"  skipped: {s.lever}: {s.why}" for s in self.skipped]
        return [*out, f"memory: {MEMORY}"]

    def as_json(self) -> dict:
        return {
            "box": {
                "cpu": self.box.cpu,
                "cores": self.box.cores,
                "load_before": round(self.box.load[0], 2),
                "load_after": round(self.box.load[1], 2),
            },
            "fps": self.fps,
            "model_threads": self.model_threads,
            "target_load": self.target_load,
            "repeats": REPEATS,
            "cameras": [_camera_json(c) for c in self.cameras],
            "levers": [
                {
                    "lever": row.name,
                    "model": str(row.model),
                    "decode": row.decode,
                    "cpu_per_camera": row.cpu.as_dict(),
                    "cameras_per_box": row.cameras,
                    "memory_mb": round(row.memory_mb),
                }
                for row in self.levers
            ],
            "skipped": [{"lever": s.lever, "why": s.why} for s in self.skipped],
            "memory": MEMORY,
        }


def measure_capacity(
    config: AppConfig,
    cameras: Sequence[CameraConfig],
    work: Path,
    *,
    clip: Path | None = None,
    seconds: float = 20.0,
    fps: float | None = None,
    target_load: float = TARGET_LOAD,
    int8: Path | None = None,
    dynamic: Path | None = None,
) -> Capacity:
    """Measure `cameras` (or `clip`, with the first camera's zones) on this box; `work`: a folder
    for the sampled frames and recordings. SourceError / ModelError before the long part."""
    fps = fps or config.detect.fps
    load_before = os.getloadavg()[0]
    options, skipped = model_options(config.model, int8=int8, dynamic=dynamic)
    samples = [
        (camera, sample_frames(_video(camera, clip, seconds, work), fps, seconds, work / f"{camera.id}.frames"))
        for camera in (cameras[:1] if clip else cameras)
    ]
    decode = {camera.id: _decode_figures(sample, fps) for camera, sample in samples}
    detect = {option.lever: _in_worker_process(config, option, samples, fps) for option in options}
    figures = [
        _camera_figures(
            camera, sample, decode[camera.id], auto_decode(sample, fps), detect, recorded=not clip and not camera.is_file
        )
        for camera, sample in samples
    ]
    cores = usable_cores()
    memory = {lever: result.peak_rss_mb for lever, result in detect.items()}
    rows, skipped_decode = levers(options, figures, memory, cores, target_load)
    box = Box(_cpu_model(), cores, (load_before, os.getloadavg()[0]))
    return Capacity(box, fps, config.model.threads, target_load, figures, rows, skipped + skipped_decode)


def _video(camera: CameraConfig, clip: Path | None, seconds: float, work: Path) -> Path:
    if clip is not None:
        return clip
    if camera.is_file:
        return Path(camera.source)
    return record_stream(camera, seconds, work / f"{camera.id}.mkv")


def _decode_figures(sample: Sample, fps: float) -> dict[str, Figure]:
    """Full and keyframes-only decoding, alternated so that a change of the box's load hits both."""
    runs: dict[str, list[float]] = {"full": [], "keyframes": []}
    for _ in range(REPEATS):
        for mode, values in runs.items():
            values.append(decode_cores(sample, mode == "keyframes", fps))
    return {mode: Figure.of(values) for mode, values in runs.items()}


def _in_worker_process(
    config: AppConfig, option: ModelOption, samples: list[tuple[CameraConfig, Sample]], fps: float
) -> DetectFigures:
    """detect_cores in a fresh interpreter (spawned, not forked: nothing of this process's
    memory, so its peak RSS is a worker's)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(detect_cores, config, option.model, samples, fps, REPEATS).result()
        except BrokenProcessPool:  # killed: out of memory, a signal
            raise DetectorError(f"the process measuring {option.model.path.name} died (out of memory?)") from None


def _camera_figures(
    camera: CameraConfig,
    sample: Sample,
    decode: dict[str, Figure],
    auto: DecodeChoice,
    detect: dict[str, DetectFigures],
    *,
    recorded: bool,
) -> CameraFigures:
    return CameraFigures(
        camera.id,
        f"{redact_url(camera.source)} (recorded)" if recorded else str(sample.clip),
        sample.size,
        sample.nominal_fps,
        sample.stream_s,
        decode,
        auto,
        {lever: Figure.of(result.cores[camera.id]) for lever, result in detect.items()},
        {lever: result.input_hw[camera.id] for lever, result in detect.items()},
    )


def _camera_lines(camera: CameraFigures, fps: float) -> list[str]:
    width, height = camera.size
    lines = [
        f"camera {camera.id}: {camera.clip}, {width}x{height} at {camera.nominal_fps:g} fps, {camera.stream_s:g} s of stream "
        f"x {REPEATS}; cores (median, low-high):",
        f"  decode every frame      {camera.decode['full'].text()}",
        f"  decode keyframes only   {camera.decode['keyframes'].text()}   decode: auto at {fps:g} fps: {camera.auto.mode} "
        f"({camera.auto.reason})",
    ]
    for lever, figure in camera.detect.items():
        hw = camera.input_hw[lever]
        shape = f", input {hw[1]}x{hw[0]}" if hw else ""
        lines.append(f"  detect + rules, {lever}{shape}: {figure.text()}")
    return lines


def _camera_json(camera: CameraFigures) -> dict:
    return {
        "id": camera.id,
        "clip": camera.clip,
        "size": list(camera.size),
        "nominal_fps": camera.nominal_fps,
        "stream_s": camera.stream_s,
        "decode": {mode: figure.as_dict() for mode, figure in camera.decode.items()},
        "auto_decode": {"mode": camera.auto.mode, "gop_s": camera.auto.gop_s, "reason": camera.auto.reason},
        "detect": {lever: {**figure.as_dict(), "input_hw": camera.input_hw[lever]} for lever, figure in camera.detect.items()},
    }


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Columns as wide as their widest cell; text left, numbers (cameras) right."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    right = header.index("cameras")
    return [
        "  " + "  ".join(cell.rjust(w) if i == right else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
        for line in (header, *rows)
    ]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


__all__ = ["REPEATS", "TARGET_LOAD", "Capacity", "measure_capacity"]
