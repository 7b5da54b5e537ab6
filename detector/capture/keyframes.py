"""Decoding every frame or keyframes only, chosen from the stream itself (a camera's `decode`).

Decoding only keyframes costs a half to a quarter of the CPU of decoding every frame (720p25,
GOP 1 s: scripts/bench_decode.py, docs/edge.md), and loses nothing when every sample the detect
fps asks for can be a keyframe. `decode: auto` measures the keyframe interval from each
session's packets (their key flags and timestamps: nothing is decoded for it) and decodes
keyframes only once INTERVALS_NEEDED intervals in a row were all

    at most 1/fps x (1 + GOP_TOLERANCE)     (1.1 s at 1 fps)

so the samples are at most 10 % fewer than the detect fps asks for, none more than 1.1/fps
apart. Until then it decodes every frame; and from the first interval that is longer (or the
first wait for a keyframe that is), to the end of the session: a camera that stretches its GOP
now and then would otherwise flip back and forth, and every fall-back leaves a stretch without
frames (the frames after skipped ones cannot be decoded before the next keyframe). Every session
(each reconnect, each replay of a file played live) measures afresh: a camera's admin may have
changed its GOP.
"""

from dataclasses import dataclass
from typing import Literal

GOP_TOLERANCE = 0.1  # a keyframe interval may exceed the detect period by this fraction
INTERVALS_NEEDED = 3  # keyframe intervals measured before auto decodes keyframes only


@dataclass(frozen=True)
class DecodeChoice:
    """What a source decodes, and why (health `decode`, the `decode_mode` log event).

    Attributes:
        mode: "full" (every frame) or "keyframes" (keyframes only).
        gop_s: the longest keyframe interval measured in this session, seconds; None before one.
        reason: one line for operators.
    """

    mode: Literal["full", "keyframes"]
    gop_s: float | None
    reason: str


MEASURING = DecodeChoice("full", None, "measuring the keyframe interval (every frame decoded meanwhile)")
RECORDING = DecodeChoice("full", None, "a recording is read whole: every frame decoded (replays stay reproducible)")


def choose_decode(
    longest_s: float | None, intervals: int, fps: float, *, waiting_s: float = 0.0, tolerance: float = GOP_TOLERANCE
) -> DecodeChoice | None:
    """Keyframes only when the `intervals` keyframe intervals measured (the longest `longest_s`)
    and the wait for the next keyframe (`waiting_s`: the next interval is at least that) are all
    at most 1/fps x (1 + tolerance); full as soon as one is longer; None (not known yet) while
    fewer than INTERVALS_NEEDED were measured."""
    limit = (1 + tolerance) / fps
    allowed = f"{limit:.3g} s allowed at detect fps {fps:g} (1/fps + {tolerance:.0%})"
    gop_s = round(longest_s, 2) if longest_s is not None else None
    if longest_s is not None and longest_s > limit:
        return DecodeChoice("full", gop_s, f"keyframe interval {longest_s:.3g} s > {allowed}")
    if waiting_s > limit:
        return DecodeChoice("full", gop_s, f"no keyframe for {waiting_s:.3g} s > {allowed}")
    if intervals < INTERVALS_NEEDED:
        return None
    return DecodeChoice("keyframes", gop_s, f"a keyframe at least every {longest_s:.3g} s, {allowed}")


class KeyframeWatch:
    """One session's packets (key flag, seconds) -> the decoding for the packet at hand.

    `packet()` is called before each packet is decoded and says when `choice` changed; the caller
    applies it from that packet on. A fall-back from keyframes to full takes effect at the next
    keyframe (the frames before it reference frames that were skipped). With `decode: full` or
    `keyframes` the choice is the config's; the interval is measured and reported all the same.
    """

    def __init__(self, setting: str, fps: float) -> None:
        """`setting`: a camera's `decode` (auto, full or keyframes); `fps`: the detect fps."""
        self.setting = setting
        self.fps = fps
        self.choice = MEASURING if setting == "auto" else self._configured(None)
        self._longest_s: float | None = None
        self._intervals = 0
        self._since: float | None = None  # the last keyframe's time; the first packet's before any
        self._keyframe_seen = False

    def packet(self, is_keyframe: bool, seconds: float | None) -> bool:
        """One packet, before it is decoded (`seconds`: its timestamp, None if it has none);
        True when `choice` changed."""
        if seconds is None:
            return False  # nothing to measure with
        if self._since is None:
            self._since = seconds
        if is_keyframe:
            if self._keyframe_seen:
                self._longest_s = max(self._longest_s or 0.0, seconds - self._since)
                self._intervals += 1
            self._since, self._keyframe_seen = seconds, True
        choice = self._decide(seconds - self._since)
        if choice is None or choice == self.choice:
            return False
        # Between keyframes the only news is a wait too long while still measuring: a fall-back
        # from keyframes waits for the next keyframe anyway, and figures change only at one.
        if not is_keyframe and self.choice != MEASURING:
            return False
        self.choice = choice
        return True

    def _decide(self, waiting_s: float) -> DecodeChoice | None:
        if self.setting != "auto":
            return self._configured(round(self._longest_s, 2) if self._longest_s is not None else None)
        return choose_decode(self._longest_s, self._intervals, self.fps, waiting_s=waiting_s)

    def _configured(self, gop_s: float | None) -> DecodeChoice:
        return DecodeChoice(self.setting, gop_s, f"decode: {self.setting} in the config")
