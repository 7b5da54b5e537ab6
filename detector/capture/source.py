"""The interface every frame source has, and the counters it keeps for health."""

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal, Self

from detector.capture.frames import Frame
from detector.capture.keyframes import DecodeChoice


@dataclass(frozen=True)
class SourceStats:
    """What a source has done since it was opened.

    Only the thread that decodes writes it, each time as a whole new snapshot, so a reader on
    another thread (the health meter) never sees half an update.

    Attributes:
        state: "connecting" (nothing yet), "connected", "reconnecting" (a live source's outage),
            "no_frames" (a file played live that opens but has no decodable frame: retried with
            backoff), "ended" (a recording read to its end).
        size: (width, height) of the frames, None until known.
        decoded: frames decoded, sampled or not.
        dropped: sampled frames replaced by a newer one before the consumer took them (live only).
        decode_errors: packets that could not be decoded and were skipped.
        reconnects: sessions opened after the first (live only).
        last_error: why the latest outage began (credentials redacted); None before any.
        last_frame_at: time.time() of the latest decoded frame.
        decode: what is decoded (every frame or keyframes only) and why; None before the first session.
    """

    state: Literal["connecting", "connected", "reconnecting", "no_frames", "ended"] = "connecting"
    size: tuple[int, int] | None = None
    decoded: int = 0
    dropped: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    last_error: str | None = None
    last_frame_at: float | None = None
    decode: DecodeChoice | None = None


class FrameSource(ABC):
    """Sampled frames on stream time, from a recording or a live stream.

        with open_source(camera.source, fps) as source:
            for frame in source.frames(timeout_s=0.5):
                ...  # None: no frame within 0.5 s (a live source whose camera is down)

    `open()` may be called more than once (the context manager calls it too); a source is
    read once, by one consumer.
    """

    duration_s: float | None = None  # a recording's length once opened; None for live sources

    def __init__(self, name: str) -> None:
        self.name = name  # in logs and thread names; never contains credentials
        self._stats = SourceStats()

    @property
    def stats(self) -> SourceStats:
        return self._stats

    @abstractmethod
    def open(self) -> Self:
        """Start reading. A recording that cannot be read raises SourceError here; a live
        source never fails: it retries in the background until closed."""

    @abstractmethod
    def frames(self, timeout_s: float | None = None) -> Iterator[Frame | None]:
        """The sampled frames in stream-time order. Yields None when `timeout_s` passes without
        a frame (never with the default None: then it waits as long as it takes). Ends at the
        end of a recording, and when the source is closed."""

    @abstractmethod
    def close(self) -> None:
        """Stop reading and release the video; safe to call more than once."""

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _update(self, **changes) -> None:
        self._stats = replace(self._stats, **changes)
