"""Live sources against a real RTSP server (gst-rtsp-server): sampling on stream time, keyframe-only
decoding (chosen from the stream's keyframe interval, or by the config), and every stream fault:
closed, frozen, wrong credentials, unreachable, resolution change."""

import logging
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rtsp_server import PASSWORD, USER, RtspServer, gst_available, make_h264_clip

from detector.backoff import Backoff
from detector.capture import FrameSource, open_source
from detector.capture.keyframes import DecodeChoice
from detector.config import load_config
from detector.health import HealthMeter, health_path, status_lines

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


@contextmanager
def served(clip: Path, fps: float, **options) -> Iterator[FrameSource]:
    """A live source named cam on a fresh server playing `clip`; both closed after."""
    server = RtspServer(clip).start()
    try:
        source = open_source(server.url, fps, live=True, name="cam", **options)
        try:
            yield source
        finally:
            source.close()
    finally:
        server.kill()


@pytest.fixture
def server():
    s = RtspServer(vtest_clip()).start()
    yield s
    s.kill()


def test_sampled_frames_on_stream_time_and_keyframes_only(server):
    """5 fps out of a 10 fps stream: ts steps of 0.2 s; keyframes only (1 per s): only keyframes decoded."""
    full = open_source(server.url, 5.0, live=True, name="full", decode="full")
    keys = open_source(server.url, 5.0, live=True, name="keys", decode="keyframes")
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


ALLOWED_AT_1_FPS = "1.1 s allowed at detect fps 1 (1/fps + 10%)"


def test_decode_auto_decodes_keyframes_only_once_it_has_measured_a_short_enough_gop(server, tmp_path, caplog):
    """GOP 1 s at detect fps 1: auto decodes every frame for 3 keyframe intervals, then keyframes
    only: still a sample every second, a tenth of the frames decoded. `decode: full` and
    `keyframes` are honoured on the same stream. Health, `detector status` and the log (once) say
    which and why."""
    caplog.set_level(logging.INFO, "detector.capture.rtsp_source")
    sources = {name: open_source(server.url, 1.0, live=True, name=name, decode=name) for name in ("auto", "full", "keyframes")}
    auto = sources["auto"]
    try:
        measured = pull(auto, 10.0, until=lambda f: auto.stats.decode.mode == "keyframes")
        decoded_at_switch = {name: s.stats.decoded for name, s in sources.items()}
        keyframes_only = pull(auto, 10.0, until=lambda f: f.ts >= measured[-1].ts + 4)
        decoded = {name: s.stats.decoded - decoded_at_switch[name] for name, s in sources.items()}
        config = tmp_path / "site.yaml"
        cameras = ", ".join(f"{{id: {name}, source: '{server.url}', decode: {name}}}" for name in sources)
        config.write_text(f"site: s\nmodel: {{path: m.onnx}}\nstorage_dir: '{tmp_path}'\ncameras: [{cameras}]\n")
        health = {name: HealthMeter(name, path=health_path(tmp_path, name), source=s).report() for name, s in sources.items()}
        status = status_lines(load_config(config))
    finally:
        for s in sources.values():
            s.close()
    assert 3.0 <= measured[-1].ts <= 6.0  # after 3 intervals (the session's first packets may have no timestamp)
    steps = [round(b.ts - a.ts, 2) for a, b in zip(measured, measured[1:] + keyframes_only)]
    # one sample per second; at the switch one may be lost (the sampler's ticks need not fall on keyframes)
    assert steps.count(1.0) >= len(steps) - 1 and all(1.0 <= step <= 2.0 for step in steps), steps
    assert decoded["auto"] <= 6 and decoded["keyframes"] <= 6 and decoded["full"] >= 40, decoded  # ~4 s of a 10 fps stream
    assert health["auto"]["decode"] == {
        "mode": "keyframes",
        "gop_s": 1.0,
        "reason": f"a keyframe at least every 1 s, {ALLOWED_AT_1_FPS}",
    }
    assert health["full"]["decode"] == {"mode": "full", "gop_s": 1.0, "reason": "decode: full in the config"}
    assert health["keyframes"]["decode"] == {"mode": "keyframes", "gop_s": 1.0, "reason": "decode: keyframes in the config"}
    assert [line.split()[3:5] for line in status[1:]] == [["keys", "1s"], ["full", "1s"], ["keys", "1s"]]
    logged = sorted((r.args[0], r.kv["mode"]) for r in events(caplog, "decode_mode"))  # measuring is not logged
    assert logged == [("auto", "keyframes"), ("full", "full"), ("keyframes", "keyframes")]


def test_decode_auto_decodes_every_frame_when_keyframes_are_too_far_apart(caplog):
    """GOP 10 s at detect fps 1: full decoding, said as soon as no keyframe came for 1.1 s."""
    caplog.set_level(logging.INFO, "detector.capture.rtsp_source")
    with served(vtest_clip(gop=100, seconds=12), 1.0) as source:
        frames = pull(source, 10.0, until=lambda f: f.ts >= 3.0)
        stats = source.stats
    assert [f.ts for f in frames] == pytest.approx([0, 1, 2, 3], abs=0.01) and stats.decoded >= 30  # every frame
    assert stats.decode.mode == "full" and stats.decode.gop_s is None
    assert re.fullmatch(rf"no keyframe for 1\.[12]\d* s > {re.escape(ALLOWED_AT_1_FPS)}", stats.decode.reason), stats.decode
    assert [(r.kv["mode"], r.kv["reason"]) for r in events(caplog, "decode_mode")] == [("full", stats.decode.reason)]


def test_decode_auto_falls_back_to_full_when_the_gop_stretches_mid_stream(caplog):
    """Keyframes every second for 5 s, then none until 9 s (the admin set a 4 s GOP): keyframes
    only after 3 intervals, every frame again from the keyframe at 9 s; the 4 s without a frame
    between are cut out of stream time (timers pause), and the log says each change once."""
    caplog.set_level(logging.INFO, "detector.capture.rtsp_source")
    with served(vtest_clip(keyframes_s=(0, 1, 2, 3, 4, 5, 9), seconds=11), 1.0) as source:
        frames = pull(source, 15.0, until=lambda f: f.gap_before_s > 0)
        decoded_at_gap = source.stats.decoded
        frames += pull(source, 5.0, until=lambda f: f.ts >= frames[-1].ts + 1)
        decoded_after = source.stats.decoded - decoded_at_gap
        decode = source.stats.decode
    *before, back, after = frames
    assert before[-1].ts >= 4.5  # keyframes only up to the one at 5 s
    assert back.gap_before_s == pytest.approx(4.0, abs=0.15) and back.ts == pytest.approx(before[-1].ts + 0.1, abs=0.01)
    assert after.ts == pytest.approx(back.ts + 1.0, abs=0.01) and decoded_after >= 8  # every frame again
    assert decode == DecodeChoice("full", 4.0, f"keyframe interval 4 s > {ALLOWED_AT_1_FPS}")
    assert [r.kv["mode"] for r in events(caplog, "decode_mode")] == ["keyframes", "full"]


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
    with served(clip, 2.0, read_timeout_s=3.0, backoff=Backoff(0.2, 0.5)) as source:
        frames = pull(source, 20.0, until=lambda f: f.ts >= 10.0)
        stats = source.stats
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
