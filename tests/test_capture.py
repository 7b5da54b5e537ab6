"""Stream clock (gaps cut out of stream time), the detect-fps sampler, the choice of keyframe-only
decoding and the URL test, as tables; file and live sources read through the one FrameSource
interface (RTSP faults and decoding on real streams: test_rtsp_source.py)."""

import time
from pathlib import Path

import pytest
from conftest import asset
from rtsp_server import make_h264_clip

from detector.backoff import Backoff
from detector.capture import Frame, FrameSource, Sampler, StreamClock, open_source
from detector.capture.keyframes import MEASURING, RECORDING, KeyframeWatch, choose_decode
from detector.config import load_config
from detector.errors import ConfigError, SourceError
from detector.urls import is_stream_url


@pytest.mark.parametrize(
    "raw, expected",
    [
        ([10.0, 10.1, 10.2], [(0.0, 0.0), (0.1, 0.0), (0.2, 0.0)]),  # origin at the first frame
        ([0.0, 0.1, 5.1, 5.2], [(0.0, 0.0), (0.1, 0.0), (0.2, 5.0), (0.3, 0.0)]),  # 5 s gap cut out
        ([0.0, 1.5, 3.0], [(0.0, 0.0), (1.5, 0.0), (3.0, 0.0)]),  # slow but below max_gap_s
        ([0.0, 0.1, 0.05, 0.15], [(0.0, 0.0), (0.1, 0.0), (0.2, 0.0), (0.3, 0.0)]),  # backwards: a discontinuity
    ],
    ids=["regular", "gap", "slow", "backwards"],
)
def test_stream_clock(raw, expected):
    clock = StreamClock(nominal_interval_s=0.1, max_gap_s=2.0)
    got = [tuple(round(v, 6) for v in clock.advance(r)) for r in raw]
    assert got == expected


@pytest.mark.parametrize(
    "fps, times, kept",
    [
        (2, [i / 10 for i in range(21)], [0.0, 0.5, 1.0, 1.5, 2.0]),  # 10 fps -> 2 fps
        (2, [i / 3 for i in range(7)], [0.0, 2 / 3, 1.0, 5 / 3, 2.0]),  # 3 fps: first frame at or after each tick
        (5, [0.0, 1.0, 1.1, 1.2, 1.3], [0.0, 1.0, 1.2]),  # a late frame does not cause a burst
        (1, [0.0, 0.04, 0.08], [0.0]),
    ],
)
def test_sampler(fps, times, kept):
    sampler = Sampler(fps)
    assert [t for t in times if sampler.keep(t)] == pytest.approx(kept)


def test_sampler_restarts_after_a_gap():
    sampler = Sampler(1)
    assert [sampler.keep(0.0), sampler.keep(0.5), sampler.keep(0.6, gap_before_s=30.0), sampler.keep(1.0), sampler.keep(1.6)] == [
        True,
        False,
        True,
        False,
        True,
    ]


ALLOWED_AT_1_FPS = "1.1 s allowed at detect fps 1 (1/fps + 10%)"


@pytest.mark.parametrize(
    "intervals, waiting_s, fps, tolerance, mode, reason",
    [
        ([1.0, 1.0, 1.0], 0.0, 1, 0.1, "keyframes", f"a keyframe at least every 1 s, {ALLOWED_AT_1_FPS}"),
        ([1.0, 1.0], 0.5, 1, 0.1, None, None),  # two intervals: still measuring
        ([], 0.9, 1, 0.1, None, None),
        ([1.1, 1.0, 1.1], 0.0, 1, 0.1, "keyframes", f"a keyframe at least every 1.1 s, {ALLOWED_AT_1_FPS}"),  # the limit
        ([1.0, 1.2, 1.0], 0.0, 1, 0.1, "full", f"keyframe interval 1.2 s > {ALLOWED_AT_1_FPS}"),  # one too long
        (
            [1.0, 1.2, 1.0],
            0.0,
            1,
            0.25,
            "keyframes",
            "a keyframe at least every 1.2 s, 1.25 s allowed at detect fps 1 (1/fps + 25%)",
        ),
        ([10.0], 0.0, 1, 0.1, "full", f"keyframe interval 10 s > {ALLOWED_AT_1_FPS}"),  # one is enough to say no
        ([], 1.2, 1, 0.1, "full", f"no keyframe for 1.2 s > {ALLOWED_AT_1_FPS}"),  # nor does it wait for the keyframe
        ([1.0, 1.0], 1.2, 1, 0.1, "full", f"no keyframe for 1.2 s > {ALLOWED_AT_1_FPS}"),  # a GOP stretched mid-stream
        (
            [2.0, 2.0, 2.0],
            0.0,
            0.5,
            0.1,
            "keyframes",
            "a keyframe at least every 2 s, 2.2 s allowed at detect fps 0.5 (1/fps + 10%)",
        ),
        (
            [1.0, 1.0, 1.0],
            0.0,
            2,
            0.1,
            "full",
            "keyframe interval 1 s > 0.55 s allowed at detect fps 2 (1/fps + 10%)",
        ),  # half the samples
        (
            [0.5, 0.48, 0.52],
            0.3,
            2,
            0.1,
            "keyframes",
            "a keyframe at least every 0.52 s, 0.55 s allowed at detect fps 2 (1/fps + 10%)",
        ),
    ],
)
def test_choose_decode(intervals, waiting_s, fps, tolerance, mode, reason):
    choice = choose_decode(max(intervals, default=None), len(intervals), fps, waiting_s=waiting_s, tolerance=tolerance)
    assert (choice.mode, choice.reason) == (mode, reason) if mode else choice is None


def packets(keyframes_s: list[float], until_s: float) -> list[tuple[bool, float]]:
    """(is keyframe, seconds) of a 10 fps stream's packets, keyframes at `keyframes_s`."""
    times = [round(i * 0.1, 1) for i in range(int(until_s * 10) + 1)]
    return [(t in keyframes_s, t) for t in times]


@pytest.mark.parametrize(
    "setting, keyframes_s, until_s, changes",
    [
        # GOP 1 s at 1 fps: keyframes only once 3 intervals are measured, at the third's keyframe
        ("auto", [0, 1, 2, 3, 4, 5], 5.5, [(3.0, "keyframes", 1.0)]),
        # GOP 10 s: full as soon as the wait passes 1.1 s; the interval itself once it ends
        ("auto", [0, 10], 10.5, [(1.2, "full", None), (10.0, "full", 10.0)]),
        # the GOP stretched to 4 s mid-stream: no keyframe for 1.2 s at 6.2 s; full from the next keyframe
        ("auto", [0, 1, 2, 3, 4, 5, 9], 12.0, [(3.0, "keyframes", 1.0), (9.0, "full", 4.0)]),
        # and full for the rest of the session, though the GOP is short again
        ("auto", [0, 1, 2, 3, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5], 10.0, [(3.0, "keyframes", 1.0), (4.5, "full", 1.5)]),
        # a session starting between keyframes measures from its first packet
        ("auto", [0.5, 1.5, 2.5, 3.5], 4.0, [(3.5, "keyframes", 1.0)]),
        # the config's choice, whatever the GOP; the interval reported all the same
        ("full", [0, 1, 2, 3], 3.5, [(1.0, "full", 1.0)]),
        ("keyframes", [0, 10], 12.0, [(10.0, "keyframes", 10.0)]),
    ],
    ids=["gop-1s", "gop-10s", "gop-stretched", "no-flapping", "mid-gop-start", "full", "keyframes"],
)
def test_keyframe_watch(setting, keyframes_s, until_s, changes):
    watch = KeyframeWatch(setting, fps=1.0)
    start = watch.choice
    got = [(t, watch.choice.mode, watch.choice.gop_s) for key, t in packets(keyframes_s, until_s) if watch.packet(key, t)]
    assert got == changes
    assert (
        start == MEASURING if setting == "auto" else (start.mode, start.reason) == (setting, f"decode: {setting} in the config")
    )
    assert not watch.packet(True, None)  # a packet without a timestamp tells nothing


@pytest.mark.parametrize(
    "extra, decode",
    [("", "auto"), (", keyframes_only: true", "keyframes"), (", keyframes_only: false", "full")],
    ids=["default", "old key true", "old key false"],
)
def test_keyframes_only_still_reads_as_it_meant(tmp_path, caplog, extra, decode):
    config = tmp_path / "site.yaml"
    config.write_text(f"site: s\nmodel: {{path: m.onnx}}\ncameras: [{{id: cam-01, source: rtsp://cam/1{extra}}}]\n")
    assert load_config(config).cameras[0].decode == decode
    assert ("keyframes_only is deprecated" in caplog.text) == bool(extra)


def test_keyframes_only_with_decode_is_a_contradiction(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text(
        "site: s\nmodel: {path: m.onnx}\ncameras: [{id: cam-01, source: rtsp://cam/1, keyframes_only: true, decode: full}]\n"
    )
    with pytest.raises(ConfigError, match="cameras.cam-01: keyframes_only is replaced by decode: give decode only"):
        load_config(config)


@pytest.mark.parametrize(
    "attempt, low, high", [(0, 0.25, 0.5), (1, 0.5, 1.0), (3, 2.0, 4.0), (10, 15.0, 30.0), (1000, 15.0, 30.0)]
)
def test_backoff_doubles_with_jitter_up_to_the_cap(attempt, low, high):
    delays = [Backoff(0.5, 30.0).delay(attempt) for _ in range(200)]
    assert low <= min(delays) and max(delays) <= high and max(delays) - min(delays) > 0


@pytest.mark.parametrize(
    "source, url",
    [
        ("rtsp://user:p@ss@host/x", True),  # an unescaped @ in the password
        ("rtsp://192.0.2.1:554/Streaming/Channels/101", True),
        ("RTSP://host/x", True),  # schemes are case-insensitive
        ("rtsps://host/x", True),
        ("http://host/video.mjpg", True),
        ("https://host/live/index.m3u8", True),
        ("/path/with://weird.mp4", False),  # "://" after a "/" is part of a file name, not a scheme
        ("clips/a://b.mp4", False),
        ("sample_videos/clips/vtest.avi", False),
        ("./vtest.avi", False),
        ("vtest.avi", False),
        ("rtsp:/host/x", False),  # one slash: a relative file path
        ("", False),
        (Path("rtsp://host/x"), False),  # a Path is a file (and has collapsed the "//" already)
    ],
)
def test_is_stream_url(source, url):
    assert is_stream_url(source) is url


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    """1 s of vtest at 10 fps, 192x144."""
    target = tmp_path_factory.mktemp("clip") / "short.mp4"
    return make_h264_clip(asset("sample_videos/clips/vtest.avi"), target, width=192, height=144, seconds=1.0)


def take(source: FrameSource, limit: int, timeout_s: float = 0.05, within_s: float = 10.0) -> list[Frame | None]:
    """Up to `limit` frames and the heartbeat ticks (None) between them."""
    got, deadline = [], time.monotonic() + within_s
    for item in source.frames(timeout_s=timeout_s):
        got.append(item)
        if sum(f is not None for f in got) == limit or time.monotonic() > deadline:
            break
    return got


@pytest.mark.timeout(60)
def test_file_and_live_sources_read_through_one_interface(short_clip):
    """The same clip, the same calls. As a recording: its 5 frames at 5 fps as fast as they
    decode, no heartbeat, then the end. Live: paced at 10 fps, so heartbeats between frames, and
    restarted at its end with stream time going on."""
    read = {}
    for live in (False, True):
        with open_source(short_clip, 5.0, live=live) as source:
            got = take(source, limit=8)
            read[live] = ([f for f in got if f is not None], got.count(None), source.stats)
    for frames, _, stats in read.values():
        ts = [f.ts for f in frames]
        assert ts[0] == 0.0 and all(b > a for a, b in zip(ts, ts[1:])), ts
        assert frames[0].image.shape == (144, 192, 3) and stats.size == (192, 144)
    frames, heartbeats, stats = read[False]
    assert [f.ts for f in frames] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8]) and heartbeats == 0
    assert stats.state == "ended" and stats.decoded == 10 and stats.dropped == stats.decode_errors == 0
    assert stats.decode == RECORDING  # a replay decodes every frame, whatever the camera's `decode`
    frames, heartbeats, stats = read[True]
    assert len(frames) == 8 and frames[-1].ts > 1.0 and heartbeats > 0  # past the end of the 1 s clip
    assert stats.state == "connected" and stats.decoded > 10


def test_a_stream_url_is_not_a_recording():
    with pytest.raises(SourceError, match=r"rtsp://\*\*\*@host/x is a live stream") as raised:
        open_source("rtsp://user:secret@host/x", 5.0)
    assert "secret" not in str(raised.value)
