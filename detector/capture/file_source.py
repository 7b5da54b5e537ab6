"""Recorded video through PyAV: frames with stream time from the container's timestamps."""

import logging
from collections.abc import Iterator
from pathlib import Path

import av

from detector.capture.frames import Frame, Sampler, StreamClock, decode_packets
from detector.errors import SourceError

log = logging.getLogger(__name__)


class FileSource:
    """A video file, decoded once from start to end.

    `frames(fps)` yields only the frames the sampler keeps, converted to BGR; the others are
    decoded (inter-frame codecs need them) but never converted, which is most of the saving.
    """

    def __init__(self, path: str | Path, max_gap_s: float = 2.0) -> None:
        self.path = Path(path)
        self.max_gap_s = max_gap_s
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{self.path}: cannot open video: {exc}") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{self.path}: contains no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.nominal_fps = float(rate) if rate else 25.0
        self.width = self._stream.codec_context.width
        self.height = self._stream.codec_context.height
        self.decode_errors = 0

    @property
    def duration_s(self) -> float | None:
        if self._stream.duration is not None and self._stream.time_base is not None:
            return float(self._stream.duration * self._stream.time_base)
        if self._container.duration:
            return self._container.duration / av.time_base
        return None

    def frames(self, fps: float) -> Iterator[Frame]:
        clock = StreamClock(1.0 / self.nominal_fps, self.max_gap_s)
        sampler = Sampler(fps)
        index = -1
        timestamps = _FrameTimes(self.nominal_fps, self.path.name)
        try:
            for av_frame in self._decode():
                index += 1
                ts, gap = clock.advance(timestamps.seconds(av_frame.time, index))
                if gap:
                    log.warning("%s: %.1f s of stream missing before frame %d; timers paused", self.path.name, gap, index)
                if sampler.keep(ts, gap):
                    yield Frame(image=av_frame.to_ndarray(format="bgr24"), ts=ts, index=index, gap_before_s=gap)
        finally:
            self._container.close()
        if index < 0:
            raise SourceError(f"{self.path}: no decodable video frames (corrupt or not a video?)")

    def _decode(self) -> Iterator[av.VideoFrame]:
        try:
            yield from decode_packets(self._container, self._stream, self._count_decode_error)
        except av.FFmpegError as exc:
            raise SourceError(f"{self.path}: cannot read video: {exc}") from None

    def _count_decode_error(self) -> None:
        self.decode_errors += 1


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
