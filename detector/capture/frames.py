"""Frames with stream time, the detect-fps sampler and the clock that cuts out gaps."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        image: HxWx3 BGR uint8.
        ts: stream time in seconds since the stream's first frame, gaps cut out (see StreamClock).
        index: position of the frame in the decoded stream, from 0.
        gap_before_s: seconds of stream that were missing just before this frame (0 normally).
    """

    image: np.ndarray
    ts: float
    index: int
    gap_before_s: float = 0.0


class StreamClock:
    """Turns container timestamps into stream time in which gaps do not pass.

    A jump between consecutive timestamps longer than `max_gap_s` (missing frames, a reconnect)
    is *unknown*, not *empty*: it is cut out of stream time (the frame after it comes one nominal
    frame interval later) and reported as `gap_before_s`. Every timer downstream runs on stream
    time, so this alone is what pauses dwell, grace and clear timers over a gap.
    """

    def __init__(self, nominal_interval_s: float, max_gap_s: float = 2.0) -> None:
        self.nominal_interval_s = nominal_interval_s
        self.max_gap_s = max_gap_s
        self._last_raw: float | None = None
        self._last_ts = 0.0

    def advance(self, raw_s: float) -> tuple[float, float]:
        """Raw container seconds -> (stream time, gap cut out just before it)."""
        if self._last_raw is None:
            self._last_raw = raw_s
            return 0.0, 0.0
        step = raw_s - self._last_raw
        self._last_raw = raw_s
        gap = 0.0
        if step > self.max_gap_s or step < 0:  # a jump either way is a discontinuity
            gap = max(step, 0.0)
            step = self.nominal_interval_s
        self._last_ts += step
        return self._last_ts, gap

    def resume(self, raw_s: float, gap_s: float) -> tuple[float, float]:
        """The first frame after a known discontinuity (a reconnect): `gap_s` of wall time is cut
        out whatever the timestamps say (a new session's timestamps restart anywhere)."""
        if self._last_raw is None:
            return self.advance(raw_s)
        self._last_raw = raw_s
        self._last_ts += self.nominal_interval_s
        return self._last_ts, gap_s


class Sampler:
    """Keeps frames at `fps` of stream time, deterministically: the first frame at or after each
    tick of 1/fps. A late frame does not cause a burst; after a gap the ticks restart."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._due = 0.0

    def keep(self, ts: float, gap_before_s: float = 0.0) -> bool:
        if gap_before_s:
            self._due = ts
        if ts + 1e-6 < self._due:
            return False
        late = ts - self._due >= self.period
        self._due = ts + self.period if late else self._due + self.period
        return True


def decode_packets(
    container, stream, on_corrupt: Callable[[], None], on_packet: Callable[[av.Packet], None] | None = None
) -> Iterator[av.VideoFrame]:
    """Decode packet by packet so that one corrupt packet is counted (`on_corrupt`) and skipped,
    not fatal. Errors of the container itself (a lost connection, a truncated file) propagate.
    `on_packet` sees each packet before it is decoded (keyframe-only decoding is switched there)."""
    for packet in container.demux(stream):
        if on_packet is not None:
            on_packet(packet)
        try:
            yield from packet.decode()
        except av.InvalidDataError:
            on_corrupt()
