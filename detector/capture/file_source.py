"""Recorded video through PyAV, as fast as decoding goes: every sampled frame, in order, with
stream time from the container's timestamps, until the end of the file. Every frame is decoded
whatever a camera's `decode` says, so replays, explain and tune see the same frames every time."""

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import av

from detector.capture.frames import Frame, Sampler, StreamClock, decode_packets
from detector.capture.keyframes import RECORDING
from detector.capture.source import FrameSource
from detector.errors import SourceError

log = logging.getLogger(__name__)

# Larger than any camera (8K is 7680x4320): a header claiming more is corrupt or hostile, and one
# such frame as BGR would take gigabytes before the model shrinks it to 640 pixels.
MAX_FRAME_PIXELS = 8192 * 8192


class FileSource(FrameSource):
    """A video file, decoded once from start to end.

    `frames()` yields only the frames the sampler keeps, converted to BGR; the others are
    decoded (inter-frame codecs need them) but never converted, which is most of the saving.
    Decoding is never waited for, so it never yields None; it closes the file at its end.
    """

    def __init__(self, path: str | Path, fps: float, *, name: str = "", max_gap_s: float = 2.0) -> None:
        self.path = Path(path)
        super().__init__(name or self.path.name)
        self.fps = fps
        self.max_gap_s = max_gap_s
        self.nominal_fps = 25.0  # the container's frame rate once opened
        self._container = None

    def open(self) -> "FileSource":
        if self._container is not None:
            return self
        if self.path.is_dir():
            raise SourceError(f"{self.path}: is a directory, not a video file")
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{self.path}: cannot open video: {exc.strerror or exc}") from None
        try:
            _require_video(container, self.path)
        except SourceError:
            container.close()
            raise
        self._container, self._stream = container, container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.nominal_fps = float(rate) if rate else self.nominal_fps
        if self._stream.duration is not None and self._stream.time_base is not None:
            self.duration_s = float(self._stream.duration * self._stream.time_base)
        elif container.duration:
            self.duration_s = container.duration / av.time_base
        self._update(
            state="connected", size=(self._stream.codec_context.width, self._stream.codec_context.height), decode=RECORDING
        )
        return self

    def frames(self, timeout_s: float | None = None) -> Iterator[Frame]:
        clock = StreamClock(1.0 / self.nominal_fps, self.max_gap_s)
        sampler = Sampler(self.fps)
        index, ts, cut_s = -1, 0.0, 0.0
        timestamps = _FrameTimes(self.nominal_fps, self.name)
        try:
            for av_frame in self._decode():
                index += 1
                self._update(decoded=index + 1, last_frame_at=time.time())
                ts, gap = clock.advance(timestamps.seconds(av_frame.time, index))
                cut_s += gap
                if gap:
                    log.warning("%s: %.1f s of stream missing before frame %d; timers paused", self.name, gap, index)
                if sampler.keep(ts, gap):
                    yield Frame(image=av_frame.to_ndarray(format="bgr24"), ts=ts, index=index, gap_before_s=gap)
        finally:
            self.close()
        if index < 0:
            raise SourceError(f"{self.path}: no decodable video frames (corrupt or not a video?)")
        if self.duration_s and self.duration_s - (ts + cut_s) > self.max_gap_s:
            log.warning(
                "%s: ended %.1f s into its %.1f s (truncated, or cut while being read?)", self.name, ts + cut_s, self.duration_s
            )
        self._update(state="ended")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None  # a later open() opens the file again instead of returning a closed one

    def _decode(self) -> Iterator[av.VideoFrame]:
        try:
            yield from decode_packets(self._container, self._stream, self._count_decode_error)
        except av.FFmpegError as exc:
            raise SourceError(f"{self.path}: cannot read video: {exc}") from None

    def _count_decode_error(self) -> None:
        self._update(decode_errors=self.stats.decode_errors + 1)


def _require_video(container, path: Path) -> None:
    """SourceError unless the container holds a video this detector can play: FFmpeg also opens
    stills (a JPEG renamed .mp4 is one frame, which no dwell time can ever be reached on), audio
    files, and headers claiming any frame size."""
    if not container.streams.video:
        raise SourceError(f"{path}: contains no video stream")
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):  # jpeg_pipe, png_pipe, ...
        raise SourceError(f"{path}: is a still image ({container.format.name}), not a video")
    context = container.streams.video[0].codec_context
    if context.width * context.height > MAX_FRAME_PIXELS:
        raise SourceError(f"{path}: {context.width}x{context.height} frames are larger than any camera's (corrupt header?)")


class _FrameTimes:
    """Container timestamps, unless they cannot be trusted.

    Some AVI files carry packet timestamps out of presentation order (1, 4, 6, 5, 7, ...). The
    first time a timestamp fails to increase, the rest of the file is timed by frame index at
    the nominal rate, continuing from the last good timestamp, and it is logged once.
    """

    def __init__(self, nominal_fps: float, name: str) -> None:
        self.period = 1.0 / nominal_fps
        self.name = name
        self._last: float | None = None
        self._index_origin: float | None = None  # set once timestamps are abandoned

    def seconds(self, pts_s: float | None, index: int) -> float:
        if self._index_origin is None:
            if pts_s is not None and (self._last is None or pts_s > self._last):
                self._last = pts_s
                return pts_s
            # continue from the last good timestamp, which belonged to frame index - 1
            self._index_origin = 0.0 if self._last is None else self._last - self.period * (index - 1)
            log.warning(
                "%s: frame timestamps out of order or missing; timing frames by index at %.2f fps", self.name, 1 / self.period
            )
        return self._index_origin + index * self.period
