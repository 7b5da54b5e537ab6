"""Stream clock (gaps cut out of stream time), the detect-fps sampler and the URL test, as tables;
file and live sources read through the one FrameSource interface (RTSP faults: test_rtsp_source.py)."""

import time
from pathlib import Path

import pytest
from conftest import asset
from rtsp_server import make_h264_clip

from detector.backoff import Backoff
from detector.capture import Frame, FrameSource, Sampler, StreamClock, open_source
from detector.errors import SourceError
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
    frames, heartbeats, stats = read[True]
    assert len(frames) == 8 and frames[-1].ts > 1.0 and heartbeats > 0  # past the end of the 1 s clip
    assert stats.state == "connected" and stats.decoded > 10


def test_a_stream_url_is_not_a_recording():
    with pytest.raises(SourceError, match=r"rtsp://\*\*\*@host/x is a live stream") as raised:
        open_source("rtsp://user:secret@host/x", 5.0)
    assert "secret" not in str(raised.value)
