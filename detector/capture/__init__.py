"""Frame sources: recorded files and live streams behind one interface (FrameSource), all
yielding sampled `Frame`s on stream time with gaps cut out (StreamClock, Sampler).

    FileSource   a recording, as fast as it decodes, every sampled frame, ends at its end
                 (replay, explain, tune, check)
    LiveSource   an RTSP camera, or a file played like one (paced, restarted at its end): a
                 reader thread keeps the latest frame and reconnects (`detector run`)
"""

from pathlib import Path

from detector.capture.file_source import FileSource
from detector.capture.frames import Frame, Sampler, StreamClock
from detector.capture.rtsp_source import LiveSource
from detector.capture.source import FrameSource, SourceStats
from detector.errors import SourceError, redact_url
from detector.urls import is_stream_url

__all__ = [
    "FileSource",
    "Frame",
    "FrameSource",
    "LiveSource",
    "Sampler",
    "SourceStats",
    "StreamClock",
    "open_camera",
    "open_source",
]


def open_source(source: str | Path, fps: float, *, live: bool = False, **options) -> FrameSource:
    """The opened source for a camera's `source` (a file path or a stream URL), sampled at `fps`.

    `live=False`: a recording (FileSource); a stream URL raises SourceError, since it can only be
    read as it comes. `live=True`: a LiveSource, for a URL or a file alike. `options` go to the
    class (name, max_gap_s; LiveSource also transport, timeouts, decode, backoff).
    """
    if live:
        return LiveSource(source, fps, **options).open()
    if is_stream_url(source):
        raise SourceError(f"{redact_url(source)} is a live stream; this needs a recorded video file")
    return FileSource(source, fps, **options).open()


def open_camera(camera, fps: float, source: str | Path | None = None, **options) -> FrameSource:
    """A camera (its config: detector.config.CameraConfig) read live as `detector run` reads it:
    its transport, timeouts and decode setting; `source`: another stream or a recording of it."""
    return open_source(
        source if source is not None else camera.source,
        fps,
        live=True,
        name=camera.id,
        transport=camera.transport,
        open_timeout_s=camera.open_timeout_s,
        read_timeout_s=camera.read_timeout_s,
        decode=camera.decode,
        **options,
    )
