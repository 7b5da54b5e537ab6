"""Live sources (RTSP cameras, or a file played like one) read by a background thread.

The reader thread opens the stream with PyAV (TCP by default, open and read timeouts), decodes
every frame or keyframes only (`decode`: auto chooses per session from the stream's keyframe
interval, detector/capture/keyframes.py), puts each through one StreamClock and the detect-fps Sampler,
and keeps only the **latest** sampled frame: a consumer slower than the stream skips frames
(counted in `dropped`) instead of falling behind. Faults never end the source:

    source closed / frozen (no data for read_timeout_s) / refused / 401 / unreachable
      -> logged once per outage (URL credentials redacted), retried with exponential backoff
         and jitter, and the outage is cut out of stream time (the next frame carries
         `gap_before_s`), so violation timers pause over it.
    a file that opens but has no decodable frame -> the same, with state `no_frames`

Every new session is a discontinuity: its first frame continues stream time one frame after the
last one and carries the outage's wall time as `gap_before_s` (StreamClock.resume). Within a
session StreamClock cuts out timestamp jumps over max_gap_s (at least 3 keyframe intervals while
decoding keyframes only). A file (not a stream URL) is paced at its frame rate and restarts at its end,
like a camera that reconnects: what `detector run` does with a file; `detector replay` reads
files with FileSource instead, as fast as they decode.
"""

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av

from detector.backoff import Backoff
from detector.capture.frames import Frame, Sampler, StreamClock, decode_packets
from detector.capture.keyframes import MEASURING, DecodeChoice, KeyframeWatch
from detector.capture.source import FrameSource
from detector.errors import redact_url
from detector.urls import is_stream_url

log = logging.getLogger(__name__)


def describe(exc: BaseException, read_timeout_s: float) -> str:
    """A short reason for an outage, without credentials."""
    if isinstance(exc, av.ExitError):
        return f"no data for {read_timeout_s:g} s (source frozen or network cut)"
    if isinstance(exc, av.HTTPUnauthorizedError | av.HTTPForbiddenError):
        return "authorization failed (wrong user or password)"
    if isinstance(exc, av.ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, av.FFmpegError):
        return redact_url(exc.strerror or str(exc))  # PyAV appends the URL in str(); strerror has no URL
    return redact_url(f"{type(exc).__name__}: {exc}")


END_OF_FILE = "end of file"  # a file played live: replayed from the start at once
NO_FRAMES = "no decodable video frames (corrupt or not a video?)"  # a file that opens, but no frame decodes


class _Closed(Exception):
    pass


def packet_seconds(packet: av.Packet) -> float | None:
    """A packet's presentation time (decode time when it has none) in seconds."""
    t = packet.pts if packet.pts is not None else packet.dts
    return float(t * packet.time_base) if t is not None and packet.time_base is not None else None


class LiveSource(FrameSource):
    """`open()` starts the reader thread; `frames(timeout_s)` yields the latest sampled Frame, or
    None when none came within timeout_s, until `close()`."""

    def __init__(
        self,
        url: str | Path,
        fps: float,
        *,
        name: str = "",
        transport: str = "tcp",
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        decode: str = "auto",
        backoff: Backoff | None = None,
        max_gap_s: float = 2.0,
    ) -> None:
        self.url = str(url)
        super().__init__(name or redact_url(self.url))
        self.is_file = not is_stream_url(url)
        self.transport = transport
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.decode = decode
        self.backoff = backoff or Backoff()
        self.max_gap_s = max_gap_s
        self.fps = fps
        self.sampler = Sampler(fps)
        self.clock: StreamClock | None = None
        self._latest: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._resume_gap: float | None = None  # set for the first frame of a new session
        self._lost_at: float | None = None  # monotonic start of the current outage
        self._sessions = 0
        self._last_frame_mono: float | None = None
        self._logged_mode: str | None = None  # the decoding mode last logged (once per change)

    # --- consumer side ---

    def open(self) -> "LiveSource":
        if self._thread.ident is None:
            self._thread.start()
        return self

    def frames(self, timeout_s: float | None = None) -> Iterator[Frame | None]:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._latest is not None or self._stop.is_set(), timeout_s)
                if self._stop.is_set():
                    return
                frame, self._latest = self._latest, None
            yield frame

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.ident is not None:
            self._thread.join(self.read_timeout_s + 2)

    # --- reader thread ---

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                container = self._open()
            except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
                self._lost(describe(exc, self.read_timeout_s))
            else:
                try:
                    got = self._read(container)
                    if got:
                        attempt = 0  # frames came: the next outage starts its backoff afresh
                    if self.is_file:  # replayed at once only if it gave frames: else a busy loop
                        self._lost(END_OF_FILE if got else NO_FRAMES)
                    else:
                        self._lost("source closed the stream")
                except _Closed:
                    return
                except (av.FFmpegError, OSError, ValueError) as exc:
                    self._lost(describe(exc, self.read_timeout_s))
                finally:
                    container.close()
            if self.is_file and self.stats.last_error == END_OF_FILE:
                delay = 0.0
            else:
                delay = self.backoff.delay(attempt)
                attempt += 1
            self._stop.wait(delay)

    def _open(self):
        if self.is_file:
            container = av.open(self.url)
        else:
            # A small probe (0.5 s) so that the first frame comes in under a second, not after FFmpeg's
            # default 5 s of analysis. A frozen RTSP stream gives one empty read per read timeout
            # before the error, so half of read_timeout_s makes the detection take read_timeout_s.
            options = {"rtsp_transport": self.transport, "analyzeduration": "500000", "probesize": "200000"}
            container = av.open(self.url, options=options, timeout=(self.open_timeout_s, self.read_timeout_s / 2))
        if not container.streams.video:
            container.close()
            raise ValueError("the stream has no video")
        return container

    def _read(self, container) -> bool:
        """Decode one session until it ends or fails; returns whether any frame came."""
        stream = container.streams.video[0]
        # one decoding thread: a camera's worker is one of many on a box, and FFmpeg's threads cost
        # CPU of their own (8-10 % more for a 720p25 stream here, which one thread decodes, every
        # frame, in 3 % of a core)
        stream.codec_context.thread_count = 1
        rate = stream.average_rate or stream.guessed_rate
        period = 1.0 / float(rate) if rate else 0.04
        if self.clock is None:
            self.clock = StreamClock(period, self.max_gap_s)
        watch = KeyframeWatch(self.decode, self.fps)
        self._decoding(watch.choice, stream)

        def on_packet(packet: av.Packet) -> None:
            if watch.packet(packet.is_keyframe, packet_seconds(packet)):
                self._decoding(watch.choice, stream)

        self._resume_gap = None if self._last_frame_mono is None else 0.0
        first_pts: float | None = None
        last_pts = 0.0
        wall_start = time.monotonic()
        got = False
        for av_frame in decode_packets(container, stream, self._count_decode_error, on_packet):
            if self._stop.is_set():
                raise _Closed
            if av_frame.time is None and first_pts is None:
                continue  # a session's first frame may come without a timestamp: nothing to anchor on
            pts = av_frame.time if av_frame.time is not None else last_pts + period
            if first_pts is None:
                first_pts = pts
                if self._last_frame_mono is not None:  # the outage's wall time, cut out of stream time
                    self._resume_gap = time.monotonic() - self._last_frame_mono
                self._restored(av_frame.width, av_frame.height)
            last_pts = pts
            if self.is_file:  # play a file at its own rate
                ahead = (pts - first_pts) - (time.monotonic() - wall_start)
                if ahead > 0 and self._stop.wait(ahead):
                    raise _Closed
            got = True
            self._last_frame_mono = time.monotonic()
            self._frame(av_frame, pts - first_pts)
        return got

    def _decoding(self, choice: DecodeChoice, stream) -> None:
        """Decode as `choice` says from the next packet on; health says so, the log when the mode changes."""
        keyframes = choice.mode == "keyframes"
        stream.codec_context.skip_frame = "NONKEY" if keyframes else "DEFAULT"
        keyframe_steps = 3 * (choice.gop_s or 0.0) if keyframes else 0.0  # a step from keyframe to keyframe is no gap
        self.clock.max_gap_s = max(self.max_gap_s, keyframe_steps)
        self._update(decode=choice)
        if choice != MEASURING and choice.mode != self._logged_mode:
            self._logged_mode = choice.mode
            log.info(
                "%s: decoding %s: %s",
                self.name,
                "keyframes only" if keyframes else "every frame",
                choice.reason,
                extra={"kv": {"event": "decode_mode", "mode": choice.mode, "gop_s": choice.gop_s, "reason": choice.reason}},
            )

    def _count_decode_error(self) -> None:
        self._update(decode_errors=self.stats.decode_errors + 1)

    def _frame(self, av_frame, raw_s: float) -> None:
        self._update(decoded=self.stats.decoded + 1, last_frame_at=time.time())
        if self._resume_gap is not None:
            ts, gap = self.clock.resume(raw_s, self._resume_gap)
            self._resume_gap = None
        else:
            ts, gap = self.clock.advance(raw_s)
        if not self.sampler.keep(ts, gap):
            return
        frame = Frame(image=av_frame.to_ndarray(format="bgr24"), ts=ts, index=self.stats.decoded - 1, gap_before_s=gap)
        with self._cond:
            if self._latest is not None:
                self._update(dropped=self.stats.dropped + 1)
            self._latest = frame
            self._cond.notify()

    def _restored(self, width: int, height: int) -> None:
        self._sessions += 1
        before = self.stats
        reconnects = before.reconnects + 1 if self._sessions > 1 else 0
        self._update(state="connected", reconnects=reconnects, size=(width, height))
        if self._lost_at is not None and not (self.is_file and before.last_error == END_OF_FILE):
            outage = time.monotonic() - self._lost_at
            log.info(
                "%s: stream restored after %.1f s (%s)",
                self.name,
                outage,
                before.last_error,
                extra={"kv": {"event": "stream_restored", "outage_s": round(outage, 1), "reconnects": reconnects}},
            )
        self._lost_at = None
        if before.size is not None and before.size != (width, height):
            log.info(
                "%s: resolution changed from %dx%d to %dx%d",
                self.name,
                *before.size,
                width,
                height,
                extra={"kv": {"event": "resolution_changed", "size": f"{width}x{height}"}},
            )

    def _lost(self, reason: str) -> None:
        """Once per outage at warning level; further failed attempts of the same outage at debug."""
        was_connected = self.stats.state == "connected"
        first = self._lost_at is None or self.stats.last_error == END_OF_FILE  # a file's replay is no outage
        state = "no_frames" if reason == NO_FRAMES else "reconnecting" if self._sessions else "connecting"
        self._update(state=state, last_error=reason)
        if first:
            self._lost_at = time.monotonic()
        if first and reason != END_OF_FILE:
            verb = "stream lost" if was_connected else "cannot open stream"
            log.warning(
                "%s: %s: %s; retrying with backoff",
                self.name,
                verb,
                reason,
                extra={"kv": {"event": "stream_lost", "reason": reason}},
            )
        else:
            log.debug("%s: still down: %s", self.name, reason)
