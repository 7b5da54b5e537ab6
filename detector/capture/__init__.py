"""Frame sources: recorded files now, RTSP later; all yield `Frame`s on stream time."""

from detector.capture.file_source import FileSource
from detector.capture.frames import Frame, Sampler, StreamClock

__all__ = ["FileSource", "Frame", "Sampler", "StreamClock"]
