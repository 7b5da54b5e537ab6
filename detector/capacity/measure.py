"""The measurements behind `detector capacity`, each in CPU-seconds per stream-second (cores).

Process CPU time (`time.process_time()`: every thread of the process, FFmpeg's and ONNX Runtime's
included), never wall time: a loaded box stretches wall time, not the CPU a camera needs.

    decode_cores   a clip decoded as a live source decodes it (every frame, or keyframes only),
                   the frames sampled at the detect fps converted to BGR; here, as fast as it goes
    detect_cores   CameraPipeline.process (model, static objects, tracker, rules, alerts) on the
                   sampled frames, timed around each call only; run in a spawned child process per
                   model (detector.capacity), whose peak RSS is what a worker holds
"""

import logging
import pickle
import resource
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import av

from detector.capture import FileSource, Frame, Sampler
from detector.capture.frames import decode_packets
from detector.capture.keyframes import MEASURING, DecodeChoice, KeyframeWatch
from detector.capture.rtsp_source import describe, packet_seconds
from detector.config import AppConfig, CameraConfig
from detector.config.schema import ModelConfig
from detector.detect import Detector, open_model
from detector.errors import SourceError
from detector.worker import CameraPipeline


@dataclass(frozen=True)
class Sample:
    """The first seconds of one camera's video, its sampled frames saved for the detect children.

    Attributes:
        clip: the video measured (the camera's recording, a recording of its stream, or --clip).
        frames: file of the frames sampled at the detect fps, pickled one after another.
        count: how many frames it holds.
        size: (width, height) of the frames.
        nominal_fps: the video's frame rate.
        stream_s: seconds of stream measured: --seconds, or the whole clip where it is shorter.
    """

    clip: Path
    frames: Path
    count: int
    size: tuple[int, int]
    nominal_fps: float
    stream_s: float


def sample_frames(clip: Path, fps: float, seconds: float, target: Path) -> Sample:
    """The frames a camera's pipeline gets in the first `seconds` of `clip`, sampled at `fps` by
    the recordings' own source (FileSource), saved to `target`. SourceError for a clip that
    cannot be read or has no frame."""
    count, last_ts = 0, 0.0
    with FileSource(clip, fps) as source, open(target, "wb") as out:
        size, nominal_fps = source.stats.size, source.nominal_fps
        for frame in source.frames():
            if frame.ts >= seconds:
                break
            pickle.dump(frame, out, protocol=pickle.HIGHEST_PROTOCOL)
            count, last_ts = count + 1, frame.ts
        duration_s = source.duration_s or last_ts + 1 / nominal_fps
    if count == 0:
        raise SourceError(f"{clip}: no frame in its first {seconds:g} s")
    return Sample(clip, target, count, size, nominal_fps, min(seconds, duration_s))


def read_frames(path: Path) -> Iterator[Frame]:
    """The frames `sample_frames` saved, one at a time (a worker holds one frame, not all)."""
    with open(path, "rb") as saved:
        while True:
            try:
                yield pickle.load(saved)
            except EOFError:
                return


def decode_cores(sample: Sample, keyframes: bool, fps: float) -> float:
    """Cores to decode `sample.stream_s` of its clip as LiveSource does: every frame, or keyframes
    only (`skip_frame`), the frames the sampler keeps at `fps` converted to BGR."""
    with av.open(str(sample.clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # as LiveSource decodes
        if keyframes:
            stream.codec_context.skip_frame = "NONKEY"
        sampler, first = Sampler(fps), None
        started = time.process_time()
        for av_frame in decode_packets(container, stream, lambda: None):  # a corrupt packet: skipped, as live
            if av_frame.time is None:
                continue
            first = av_frame.time if first is None else first
            ts = av_frame.time - first
            if ts >= sample.stream_s:
                break
            if sampler.keep(ts):
                av_frame.to_ndarray(format="bgr24")
        return (time.process_time() - started) / sample.stream_s


def auto_decode(sample: Sample, fps: float) -> DecodeChoice:
    """What `decode: auto` would choose for this video at `fps`, from its packets' key flags and
    times over the sample's seconds (KeyframeWatch, as a live source does; nothing decoded)."""
    watch = KeyframeWatch("auto", fps)
    with av.open(str(sample.clip)) as container:
        stream = container.streams.video[0]
        first = None
        for packet in container.demux(stream):
            seconds = packet_seconds(packet)
            if seconds is None:
                continue
            first = seconds if first is None else first
            if seconds - first >= sample.stream_s:
                break
            watch.packet(packet.is_keyframe, seconds)
    if watch.choice == MEASURING:
        return DecodeChoice("full", None, f"fewer than 3 keyframe intervals in {sample.stream_s:g} s: not known")
    return watch.choice


def record_stream(camera: CameraConfig, seconds: float, target: Path) -> Path:
    """The first `seconds` of a live camera, its packets copied into `target` (Matroska; nothing
    decoded or re-encoded: the same codec, size and keyframes as the camera's)."""
    options = {"rtsp_transport": camera.transport}
    timeout = (camera.open_timeout_s, camera.read_timeout_s)
    try:
        with (
            av.open(camera.source, options=options, timeout=timeout) as live,
            av.open(str(target), "w", format="matroska") as out,
        ):
            stream = live.streams.video[0]
            copy = out.add_stream_from_template(stream)
            first = None
            for packet in live.demux(stream):
                if packet.dts is None:
                    continue
                seconds_in = float(packet.dts * packet.time_base)
                first = seconds_in if first is None else first
                if seconds_in - first >= seconds:
                    break
                packet.stream = copy
                out.mux(packet)
    except (av.FFmpegError, OSError, IndexError) as exc:
        reason = "no video stream" if isinstance(exc, IndexError) else describe(exc, camera.read_timeout_s)
        raise SourceError(f"camera {camera.id}: cannot record {seconds:g} s of its stream: {reason}") from None
    return target


@dataclass(frozen=True)
class DetectFigures:
    """One model's detect + rules figures, from its child process.

    Attributes:
        cores: camera id -> cores of each repeat.
        input_hw: camera id -> the model input (height, width) its frames get; None where the
            backend does not say.
        peak_rss_mb: the child's largest resident set, MB: a worker's memory with this model.
    """

    cores: dict[str, list[float]]
    input_hw: dict[str, tuple[int, int] | None]
    peak_rss_mb: float


def detect_cores(
    config: AppConfig, model: ModelConfig, cameras: Sequence[tuple[CameraConfig, Sample]], fps: float, repeats: int
) -> DetectFigures:
    """Run in a fresh process: the model opened as a worker opens it, then for each camera
    `repeats` times a new pipeline over the sample's frames; cores = mean CPU per frame x fps."""
    logging.disable(logging.INFO)  # the model's and pipeline's info lines, once per repeat
    detector = open_model(model, config.model_threshold, config.detect.nms_iou)
    cores: dict[str, list[float]] = {}
    input_hw: dict[str, tuple[int, int] | None] = {}
    for camera, sample in cameras:
        # warm-up, untimed: a process's first frame costs twice a later one (allocations, first calls)
        _pipeline_cpu(config, camera, detector, islice(read_frames(sample.frames), 1))
        input_hw[camera.id] = detector.input_hw_for(sample.size[::-1])
        cores[camera.id] = [
            _pipeline_cpu(config, camera, detector, read_frames(sample.frames)) / sample.count * fps for _ in range(repeats)
        ]
    return DetectFigures(cores, input_hw, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _pipeline_cpu(config: AppConfig, camera: CameraConfig, detector: Detector, frames: Iterable[Frame]) -> float:
    """CPU seconds of a new pipeline's `process` calls over `frames` (the calls only, not the reading)."""
    pipeline = CameraPipeline.build(config, camera, detector=detector, wall_of=lambda ts: datetime.now(UTC))
    cpu = 0.0
    for frame in frames:
        started = time.process_time()
        pipeline.process(frame)
        cpu += time.process_time() - started
    return cpu
