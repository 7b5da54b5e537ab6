"""Annotated replay video: zones coloured by state, boxes with track ids and stationary timers,
zone dwell timers and banners for alert events. H.264 through PyAV (plays in browsers).

While the camera's view is paused (moved or blocked, detector/view.py) a banner says why and
since when, and the zones are drawn grey and dashed: the camera does not see them, nothing is
detected and their timers stand still.

The regions the model ran on (detector/detect/focus.py) are drawn thin and cyan, those it skipped
grey and dashed, with the frame's motion share; a track carried where the model did
not look is labelled `carried`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from detector import draw
from detector.errors import OutputError
from detector.rules.debounce import State
from detector.rules.engine import RuleSnapshot
from detector.view import ViewState
from detector.worker import FrameResult

BANNER_S = 3.0  # how long an alert event stays on screen
STATE_COLOUR = {State.IDLE: draw.GREEN, State.PENDING: draw.AMBER, State.ACTIVE: draw.RED}


def view_banner(view: ViewState) -> list[str]:
    """The banner's lines for a paused view (none while the view is ok): what, since when, why."""
    if not view.paused:
        return []
    lines = [f"{view.status.value.replace('_', ' ').upper()} since {view.since_s:.1f} s: violation timers paused", view.reason]
    if view.back:
        lines.append("the view is back: waiting for an operator to confirm it (detector view confirm)")
    elif view.awaiting_operator:
        lines.append("waiting for an operator (detector view confirm)")
    return lines


class Annotator:
    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        with self._writing():
            self._container = av.open(str(self.path), mode="w")
        self._stream = None
        self._failed = False  # a write failed: the encoder must not be flushed any more
        self._banners: list[tuple[float, str]] = []

    def write(self, result: FrameResult) -> None:
        image = result.frame.image.copy()
        height, width = image.shape[:2]
        ts = result.frame.ts
        paused = result.view.paused
        self._draw_zones(image, result.rules, ts, width, height, paused)
        if not paused:  # paused: nothing detected, and the held rules' masks are of the last judged frame
            self._draw_regions(image, result)
            self._draw_tracks(image, result, ts)
        for alert in result.alerts:
            self._banners.append((ts, f"{alert.event.upper()} {alert.type} in {alert.zone} ({ts:.1f}s)"))
        self._banners = [(t, line) for t, line in self._banners if ts - t < BANNER_S]
        lines = view_banner(result.view) + [line for _, line in self._banners][-3:]
        if lines:
            draw.banner(image, lines)
        draw.text(image, f"t={ts:6.1f}s", (8, height - 10), draw.WHITE, 0.55)
        self._encode(image, ts)

    def _draw_zones(
        self, image: np.ndarray, rules: tuple[RuleSnapshot, ...], ts: float, width: int, height: int, paused: bool
    ) -> None:
        """Each zone coloured by its worst state, with every type's state and timer; paused: grey and
        dashed, the states as last judged and no timer (it stands still)."""
        by_zone: dict[str, list[RuleSnapshot]] = {}
        for rule in rules:
            by_zone.setdefault(rule.zone, []).append(rule)
        for zone, zone_rules in by_zone.items():
            worst = max((r.state for r in zone_rules), key=list(State).index)
            parts = []
            for r in zone_rules:
                since = r.active_since if r.state is State.ACTIVE else r.pending_since
                timer = f" {ts - since:.0f}/{r.settings.dwell_s:.0f}s" if since is not None and not paused else ""
                parts.append(f"{r.violation.value}:{r.state.value}{timer}")
            polygon_px = zone_rules[0].polygon * np.array([width, height], np.float32)
            label = f"{zone} {'paused ' if paused else ''}" + " ".join(parts)
            draw.zone(image, polygon_px, label, draw.GREY if paused else STATE_COLOUR[worst], dashed=paused)

    @staticmethod
    def _draw_regions(image: np.ndarray, result: FrameResult) -> None:
        """The regions the model ran on and those it skipped (none drawn when the one region is
        the whole frame and it ran)."""
        look = result.look
        if look.windows == look.regions and len(look.regions) == 1 and look.regions[0].is_whole(image.shape[:2]):
            return
        motion = "" if look.motion is None else f" motion {look.motion:.0%}"
        for region in look.regions:
            if region not in look.windows:
                x1, y1, x2, y2 = region.x1, region.y1, region.x2, region.y2
                outline = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)
                draw.zone(image, outline, "skipped: no motion" + motion, draw.GREY, dashed=True)
        for window in look.windows:
            draw.box(image, window.xyxy, "looked" + motion, draw.CYAN, 1)

    def _draw_tracks(self, image: np.ndarray, result: FrameResult, ts: float) -> None:
        tracks = result.tracks
        candidates = np.zeros(len(tracks), bool)
        for rule in result.rules:
            candidates |= rule.candidates
        for i in range(len(tracks)):
            label = result.labels[int(tracks.class_id[i])]
            still = ts - float(tracks.data["settled_since"][i])
            colour = draw.RED if candidates[i] else (draw.AMBER if tracks.data["stationary"][i] else draw.WHITE)
            carried = " carried" if "carried" in tracks.data and tracks.data["carried"][i] else ""
            text = f"#{tracks.tracker_id[i]} {label} {tracks.confidence[i]:.2f} still {still:.0f}s{carried}"
            draw.box(image, tracks.xyxy[i], text, colour, 1)

    def _encode(self, image: np.ndarray, ts: float) -> None:
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1000))
            self._stream.width, self._stream.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": "26", "preset": "veryfast"}
            self._stream.codec_context.time_base = Fraction(1, 1000)
        frame = av.VideoFrame.from_ndarray(image[: self._stream.height, : self._stream.width], format="bgr24")
        frame.pts = int(round(ts * 1000))
        frame.time_base = Fraction(1, 1000)
        with self._writing():
            self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        with self._writing():
            try:
                if self._stream is not None and not self._failed:  # after a failed write, FFmpeg would crash
                    self._container.mux(self._stream.encode(None))
            finally:
                self._container.close()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """FFmpeg's file errors (not a folder, read-only, disk full) as one line naming the video."""
        try:
            yield
        except (av.FFmpegError, OSError) as exc:
            self._failed = True
            raise OutputError(f"{self.path}: cannot write the annotated video: {exc.strerror or exc}") from None
