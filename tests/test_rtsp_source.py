"""Live sources against a real RTSP server (gst-rtsp-server): sampling on stream time, keyframe-only
decoding, and every stream fault: closed, frozen, wrong credentials, unreachable, resolution change."""

import logging
import os
import random
import time
from pathlib import Path

import pytest
from rtsp_server import PASSWORD, USER, RtspServer, gst_available, make_h264_clip

from detector.backoff import Backoff
from detector.capture import FrameSource, open_source

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "sample_videos" / "generated" / "rtsp"

needs_gst = pytest.mark.skipif(
    not os.environ.get("CI") and not gst_available(),
    reason="gst-rtsp-server is not installed (scripts/test.sh installs it as root)",
)
pytestmark = [needs_gst, pytest.mark.timeout(120)]


def vtest_clip(**kwargs) -> Path:
    source = ROOT / "sample_videos" / "clips" / "vtest.avi"
    if not source.is_file():
        pytest.fail("sample_videos/clips/vtest.avi is missing: run scripts/setup.sh")
    name = "vtest" + "".join(f"-{k}{v}" for k, v in sorted(kwargs.items())) + ".mp4"
    return make_h264_clip(source, GENERATED / name, **kwargs)


def pull(source: FrameSource, seconds: float, until=None) -> list:
    frames, deadline = [], time.monotonic() + seconds
    for frame in source.frames(timeout_s=0.2):
        if frame is not None:
            frames.append(frame)
            if until is not None and until(frame):
                break
        if time.monotonic() >= deadline:
            break
    return frames


def events(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "kv", {}).get("event") == name]


@pytest.fixture
def server():
    s = RtspServer(vtest_clip()).start()
    yield s
    s.kill()


def test_sampled_frames_on_stream_time_and_keyframes_only(server):
    """5 fps out of a 10 fps stream: ts steps of 0.2 s; keyframes only (1 per s): only keyframes decoded."""
    full = open_source(server.url, 5.0, live=True, name="full")
    keys = open_source(server.url, 5.0, live=True, name="keys", keyframes_only=True)
    try:
        got_full, got_keys = pull(full, 5.0), pull(keys, 0.1)
        time.sleep(max(0.0, 5.0 - 0.1))
        got_keys += pull(keys, 0.5)
    finally:
        full.close(), keys.close()
    steps = {round(b.ts - a.ts, 3) for a, b in zip(got_full, got_full[1:], strict=False)}
    assert len(got_full) >= 15 and steps == {0.2}, steps
    assert got_full[0].image.shape == (576, 768, 3) and full.stats.size == (768, 576)
    # keyframe-only decoding: about 1 decoded frame per second of stream, all on whole seconds
    assert keys.stats.decoded <= full.stats.decoded / 5 and keys.stats.decoded >= 3
    assert all(abs(f.ts - round(f.ts)) < 0.05 for f in got_keys)
    assert full.stats.reconnects == 0 and full.stats.state == "connected" and full.stats.last_error is None


def test_server_killed_and_restarted_at_another_resolution(server, caplog):
    """Closed stream -> one stream_lost, reconnect with backoff, the outage cut out of stream time."""
    caplog.set_level(logging.INFO, "detector.capture.rtsp_source")
    source = open_source(server.url, 2.0, live=True, name="cam", backoff=Backoff(0.2, 1.0))
    try:
        before = pull(source, 10.0, until=lambda f: f.ts >= 2.0)
        server.kill()
        time.sleep(3.0)  # several failed attempts (connection refused) during the outage
        assert source.stats.state == "reconnecting"
        server.start(vtest_clip(width=384, height=288))
        after = pull(source, 10.0, until=lambda f: f.image.shape[0] == 288)
        after += pull(source, 1.2)
    finally:
        source.close()
    lost, restored = events(caplog, "stream_lost"), events(caplog, "stream_restored")
    assert len(lost) == 1 and lost[0].kv["reason"] == "source closed the stream"
    assert len(restored) == 1 and source.stats.reconnects == 1
    assert [r.kv["size"] for r in events(caplog, "resolution_changed")] == ["384x288"]
    first_new = next(f for f in after if f.image.shape[0] == 288)
    assert first_new.gap_before_s >= 3.0  # the outage is a gap, not stream time
    assert first_new.ts - before[-1].ts < 1.0  # stream time continued across it
    assert all(b.ts > a.ts for a, b in zip(before + after, (before + after)[1:], strict=False))


def test_frozen_server_is_detected_by_the_read_timeout(server, caplog):
    """SIGSTOP: the connection stays open, no data: lost within read_timeout_s, back after SIGCONT."""
    caplog.set_level(logging.INFO, "detector.capture.rtsp_source")
    source = open_source(server.url, 2.0, live=True, name="cam", read_timeout_s=2.0, backoff=Backoff(0.2, 0.5))
    try:
        pull(source, 10.0, until=lambda f: f.ts >= 3.0)
        server.freeze()
        frozen_at = time.monotonic()
        while source.stats.state == "connected" and time.monotonic() - frozen_at < 10:
            time.sleep(0.05)
        detected_s = time.monotonic() - frozen_at
        server.thaw()
        after = pull(source, 10.0, until=lambda f: f.gap_before_s > 0)
    finally:
        server.thaw()
        source.close()
    lost = events(caplog, "stream_lost")
    assert len(lost) == 1 and lost[0].kv["reason"].startswith("no data for 2 s")
    assert detected_s <= 2.0 + 1.0, detected_s  # the read timeout, plus the frames already on their way
    assert after and after[-1].gap_before_s >= 1.5 and source.stats.reconnects == 1  # frozen ~2 s, then reconnected


def garbled(clip: Path, target: Path) -> Path:
    """`clip` with runs of random bytes written over its coded frames (the header and the first
    keyframe left intact): what a camera with a failing encoder or a lossy link sends."""
    if not target.exists():
        data = bytearray(clip.read_bytes())
        rng = random.Random(8)
        for offset in range(len(data) // 8, len(data) - 512, len(data) // 12):
            data[offset : offset + 256] = rng.randbytes(256)
        target.write_bytes(bytes(data))
    return target


def test_garbage_in_the_video_stream_is_skipped_not_fatal():
    """Corrupt H.264 over RTSP: the decoder conceals or the packet is counted and skipped; frames
    keep coming on increasing stream time, and the source never reports an outage for it."""
    clip = garbled(vtest_clip(seconds=12), GENERATED / "vtest-garbled.mp4")
    server = RtspServer(clip).start()
    source = open_source(server.url, 2.0, live=True, name="cam", read_timeout_s=3.0, backoff=Backoff(0.2, 0.5))
    try:
        frames = pull(source, 20.0, until=lambda f: f.ts >= 10.0)
        stats = source.stats
    finally:
        source.close()
        server.kill()
    assert frames and frames[-1].ts >= 10.0, [f.ts for f in frames]
    assert all(b.ts > a.ts for a, b in zip(frames, frames[1:]))
    assert stats.reconnects == 0 and stats.last_error is None, stats


def test_wrong_credentials_and_unreachable_host_are_logged_once_without_secrets(caplog):
    caplog.set_level(logging.DEBUG, "detector.capture.rtsp_source")
    server = RtspServer(vtest_clip(), auth=True).start()
    wrong = open_source(server.url_with(USER, "not-" + PASSWORD), 2.0, live=True, backoff=Backoff(0.05, 0.2))
    dead = open_source(server.url_with(USER, PASSWORD).replace(str(server.port), "1"), 2.0, live=True, backoff=Backoff(0.05, 0.2))
    good = open_source(server.url_with(USER, PASSWORD), 2.0, live=True)
    try:
        frames = pull(good, 10.0, until=lambda f: True)
        time.sleep(1.5)
        assert frames and good.stats.state == "connected"
        assert wrong.stats.state == "connecting" and wrong.stats.last_error == "authorization failed (wrong user or password)"
        assert dead.stats.state == "connecting" and dead.stats.last_error == "connection refused"
    finally:
        for s in (wrong, dead, good):
            s.close()
        server.kill()
    attempts = [r for r in caplog.records if "still down" in r.getMessage()]
    assert len(attempts) >= 4  # retried, at debug level only
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert sorted(r.kv["reason"] for r in warnings) == ["authorization failed (wrong user or password)", "connection refused"]
    assert PASSWORD not in caplog.text and "rtsp://***@127.0.0.1" in caplog.text
