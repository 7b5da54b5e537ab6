"""Bad input through the real command line: one clear message, a non-zero exit, no traceback,
and alerts already produced stay written."""

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import ROOT, asset, require

from detector.capture import FileSource

DEMO = (ROOT / "configs/demo.yaml").read_text()
assert "storage_dir" not in DEMO


def detector(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def config_with(tmp_path: Path, old: str, new: str) -> Path:
    assert old in DEMO
    path = tmp_path / "config.yaml"
    path.write_text(DEMO.replace(old, new) + f"storage_dir: {tmp_path / 'storage'}\n")
    return path


def assert_clean_failure(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert re.search(r"^detector( \w+)?: error: ", result.stderr, re.M)  # ours, or argparse's for a bad argument
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken")
    (folder / "garbage.mp4").write_bytes(os.urandom(20000))
    (folder / "empty.avi").write_bytes(b"")
    model = asset("models/yolov8n.onnx").read_bytes()
    (folder / "truncated.onnx").write_bytes(model[: len(model) // 3])
    (folder / "text.onnx").write_text("this is not a model\n")
    shutil.copy(asset("sample_videos/stills/fruits.jpg"), folder / "photo.onnx")
    shutil.copy(asset("sample_videos/stills/fruits.jpg"), folder / "photo.mp4")  # a JPEG renamed
    write_audio_only(folder / "audio.m4a")
    # a real container whose header claims 16000x16000 frames (one frame of it would take 768 MB)
    (folder / "huge.y4m").write_bytes(b"YUV4MPEG2 W16000 H16000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1000))
    (folder / "model.d").mkdir()
    (folder / "afile").write_text("a file where a folder is expected\n")
    (folder / "garbage.jsonl").write_text("not an alert\n{}\n")
    (folder / "empty.gt.yaml").write_text("")
    (folder / "nan.gt.yaml").write_text("events:\n  - {type: illegal_parking, begin_s: .nan}\n")
    yield folder
    for mount in folder.iterdir():
        if os.path.ismount(mount):
            subprocess.run(["umount", str(mount)], check=True)


def write_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def tmpfs(folder: Path, options: str, *, fill: bool = False) -> Path:
    """A real small file system at `folder` (mounting needs root, as in CI; chmod does not stop
    root). `fill`: written full first, so that every later write meets a full disk."""
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    if not os.path.ismount(folder):
        folder.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
        if fill:
            with open(folder / "filler", "wb", buffering=0) as filler:
                try:
                    while True:
                        filler.write(bytes(4096))
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
    return folder


def replay_to(out: Path, *extra: str) -> list[str]:
    return ["replay", "configs/demo.yaml", "--camera", "vtest", "--out", str(out), *extra]


CASES = {
    "missing config": (lambda t, b: ["check", str(t / "nope.yaml")], ["config file not found"]),
    "unknown key": (
        lambda t, b: ["check", str(config_with(t, "site: demo-campus", "site: demo-campus\nsitee: x"))],
        ["sitee: unknown key"],
    ),
    "missing video": (
        lambda t, b: ["replay", str(config_with(t, "sample_videos/clips/vtest.avi", "nope.avi")), "--camera", "vtest"],
        ["cameras.vtest.source: nope.avi: file not found"],
    ),
    "corrupt video": (
        lambda t, b: ["replay", "configs/demo.yaml", "--camera", "vtest", "--source", str(b / "garbage.mp4"), "--out", str(t)],
        ["garbage.mp4: cannot open video"],
    ),
    "empty video": (
        lambda t, b: ["replay", "configs/demo.yaml", "--camera", "vtest", "--source", str(b / "empty.avi"), "--out", str(t)],
        ["empty.avi"],
    ),
    "truncated model": (
        lambda t, b: ["check", str(config_with(t, "models/yolov8n_dynamic.onnx", str(b / "truncated.onnx")))],
        ["truncated.onnx: not a loadable ONNX model"],
    ),
    "text as model": (
        lambda t, b: ["check", str(config_with(t, "models/yolov8n_dynamic.onnx", str(b / "text.onnx")))],
        ["text.onnx: not a loadable ONNX model"],
    ),
    "photo as model": (
        lambda t, b: ["check", str(config_with(t, "models/yolov8n_dynamic.onnx", str(b / "photo.onnx")))],
        ["photo.onnx: not a loadable ONNX model"],
    ),
    "zone editor on an impossible port": (
        lambda t, b: ["zones", "configs/demo.yaml", "--camera", "vtest", "--port", "99999", "--no-browser"],
        ["--port 99999"],
    ),
    "explain an unknown zone": (
        lambda t, b: ["explain", "configs/demo.yaml", "--camera", "vtest", "--zone", "nope", "--to", "5"],
        ["camera vtest has no zone 'nope' (zones: van-no-parking, crossing)"],
    ),
    "tune without ground truth": (
        lambda t, b: ["tune", "configs/demo.yaml", "--camera", "vtest", "--gt", str(t / "none.gt.yaml"), "--set", "dwell_s=5"],
        ["ground truth file not found"],
    ),
    "listen to a broker that is not there": (
        lambda t, b: ["listen", "--port", "1", "--timeout", "5"],
        ["mqtt broker localhost:1 unreachable"],
    ),
    "run a missing config": (lambda t, b: ["run", str(t / "none.yaml")], ["config file not found"]),
    "unknown camera": (lambda t, b: ["replay", "configs/demo.yaml", "--camera", "cam-99"], ["no camera 'cam-99'"]),
    "missing events file": (
        lambda t, b: ["score", str(t / "none.jsonl"), "sample_videos/ground_truth/vtest.gt.yaml"],
        ["none.jsonl"],
    ),
    # media
    "JPEG renamed .mp4": (
        lambda t, b: ["check", str(config_with(t, "sample_videos/clips/vtest.avi", str(b / "photo.mp4")))],
        ["photo.mp4: is a still image (jpeg_pipe), not a video"],
    ),
    "zero-byte video in a config": (
        lambda t, b: ["check", str(config_with(t, "sample_videos/clips/vtest.avi", str(b / "empty.avi")))],
        ["empty.avi: cannot open video"],
    ),
    "audio-only file": (lambda t, b: replay_to(t, "--source", str(b / "audio.m4a")), ["audio.m4a: contains no video stream"]),
    "huge resolution header": (
        lambda t, b: replay_to(t, "--source", str(b / "huge.y4m")),
        ["huge.y4m: 16000x16000 frames are larger than any camera's"],
    ),
    "--source a directory": (lambda t, b: replay_to(t, "--source", str(b)), ["broken0: is a directory, not a video file"]),
    "camera source a directory": (
        lambda t, b: ["check", str(config_with(t, "sample_videos/clips/vtest.avi", str(b)))],
        ["cameras.vtest.source: ", "broken0: is a directory, not a file"],
    ),
    "model path a directory": (
        lambda t, b: ["check", str(config_with(t, "models/yolov8n_dynamic.onnx", str(b / "model.d")))],
        ["model.path: ", "model.d: is a directory, not a file"],
    ),
    # --out
    "--out under a file": (lambda t, b: replay_to(b / "afile/x"), ["--out ", "afile/x: cannot write there: Not a directory"]),
    "--out a file": (lambda t, b: replay_to(b / "afile"), ["afile: is a file, not a folder"]),
    "--out on a read-only file system": (
        lambda t, b: replay_to(tmpfs(b / "ro", "ro,size=1m") / "x"),
        ["ro/x: cannot write there: Read-only file system"],
    ),
    "--out on a full disk": (
        lambda t, b: replay_to(tmpfs(b / "full", "size=64k", fill=True) / "x"),
        ["full/x: cannot write there: No space left on device"],
    ),
    "annotated video on a full disk": (
        lambda t, b: replay_to(tmpfs(b / "full", "size=64k", fill=True) / "y", "--annotate"),
        ["y/vtest.annotated.mp4: cannot write the annotated video: No space left on device"],
    ),
    "--start-at garbage": (lambda t, b: replay_to(t, "--start-at", "garbage"), ["'garbage' is not an ISO 8601 time"]),
    "--start-at out of range": (lambda t, b: replay_to(t, "--start-at", "0001-01-01"), ["not a time between 1970 and 2999"]),
    # score
    "score an events file of garbage": (
        lambda t, b: ["score", str(b / "garbage.jsonl"), "sample_videos/ground_truth/vtest.gt.yaml"],
        ["garbage.jsonl: not an events file: none of its 2 lines is a detector.alert/1 payload"],
    ),
    "score with a negative tolerance": (
        lambda t, b: ["score", str(b / "garbage.jsonl"), "sample_videos/ground_truth/vtest.gt.yaml", "--tolerance=-5"],
        ["'-5' is not a number of seconds >= 0"],
    ),
    "score with a NaN tolerance": (
        lambda t, b: ["score", str(b / "garbage.jsonl"), "sample_videos/ground_truth/vtest.gt.yaml", "--tolerance", "nan"],
        ["'nan' is not a number of seconds >= 0"],
    ),
    "tune with a negative tolerance": (
        lambda t, b: ["tune", "configs/demo.yaml", "--camera", "vtest", "--gt", "x.gt.yaml", "--tolerance=-1"],
        ["'-1' is not a number of seconds >= 0"],
    ),
    "empty ground truth": (
        lambda t, b: ["score", str(b / "garbage.jsonl"), str(b / "empty.gt.yaml")],
        ["empty.gt.yaml: expected a mapping with an `events` list"],
    ),
    "ground truth with a NaN time": (
        lambda t, b: ["score", str(b / "garbage.jsonl"), str(b / "nan.gt.yaml")],
        ["nan.gt.yaml: events[0].begin_s: must be a number, got nan"],
    ),
    "ground truth a directory": (
        lambda t, b: ["score", str(b / "garbage.jsonl"), str(b)],
        ["cannot read ground truth", "Is a directory"],
    ),
    "score a suite folder against one ground-truth file": (
        lambda t, b: ["score", str(b), "sample_videos/ground_truth/vtest.gt.yaml"],
        ["vtest.gt.yaml: not a folder; with a folder of events, give the folder of <camera>.gt.yaml"],
    ),
    "score a folder without replays": (
        lambda t, b: ["score", str(t), str(t)],
        ["no <camera>/events.jsonl in it"],
    ),
    "--max-latency for one events file": (
        lambda t, b: ["score", str(b / "garbage.jsonl"), "sample_videos/ground_truth/vtest.gt.yaml", "--max-latency", "30"],
        ["--max-latency and --versus are for a suite"],
    ),
    "--versus for one events file": (
        lambda t, b: ["score", str(b / "garbage.jsonl"), "sample_videos/ground_truth/vtest.gt.yaml", "--versus", str(t)],
        ["--max-latency and --versus are for a suite"],
    ),
}


@pytest.mark.parametrize("make_args, fragments", CASES.values(), ids=CASES.keys())
def test_clean_failure(tmp_path, broken_files, make_args, fragments):
    assert_clean_failure(detector(*make_args(tmp_path, broken_files)), *fragments)


def test_check_passes_on_the_demo():
    result = detector("check", "configs/demo.yaml")
    assert result.returncode == 0, result.stderr
    assert "config ok: site demo-campus, 1 cameras, 2 zones" in result.stdout
    assert "camera vtest: sample_videos/clips/vtest.avi 768x576 @ 10.0 fps, 79.5 s" in result.stdout


def test_secrets_in_a_source_url_are_redacted(tmp_path):
    path = config_with(tmp_path, "sample_videos/clips/vtest.avi", "rtsp://admin:hunter2@192.0.2.1/stream1")
    result = detector("check", str(path))
    assert "hunter2" not in result.stdout + result.stderr
    assert "rtsp://***@192.0.2.1/stream1" in result.stdout


def test_video_truncated_mid_stream_keeps_the_alerts_already_made(tmp_path):
    clip = asset("sample_videos/clips/vtest.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip[: int(len(clip) * 0.6)])  # ~48 s of 79.5: past the 30 s alert
    config = config_with(tmp_path, "site: demo-campus", "site: demo-campus")
    result = detector("replay", str(config), "--camera", "vtest", "--source", str(cut), "--out", str(tmp_path / "out"))
    assert "Traceback" not in result.stderr
    events = [json.loads(line) for line in (tmp_path / "out/events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["zone"]) for e in events] == [("start", "van-no-parking")]


def write_mkv(path: Path, frames: int) -> None:
    """A real Matroska file (H.264) of vtest's first frames, made with PyAV."""
    with av.open(str(asset("sample_videos/clips/vtest.avi"))) as clip, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 768, 576, "yuv420p"
        for i, frame in enumerate(clip.decode(video=0)):
            if i == frames:
                break
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))


@pytest.mark.parametrize("clip", ["vtest.mkv", "sample_videos/clips/person-bicycle-car-detection.gif"])
def test_check_reads_other_containers(tmp_path, clip):
    """Matroska and GIF read like AVI (`check` on .mkv files was reported failing)."""
    if clip.endswith(".mkv"):
        write_mkv(tmp_path / clip, 30)
        clip = str(tmp_path / clip)
    result = detector("check", str(config_with(tmp_path, "sample_videos/clips/vtest.avi", clip)))
    assert result.returncode == 0, result.stderr
    assert re.search(r"camera vtest: \S+ \d+x\d+ @ [\d.]+ fps, 3.\d s, decodes \(\d frames at 1 fps\)", result.stdout)


def test_a_source_read_again_opens_its_file_again(tmp_path):
    """`AssertionError: Container is not open`: a source read to its end closed its container but
    kept it, so opening it again (`with source:`) handed back the closed one."""
    clip = tmp_path / "clip.mkv"
    write_mkv(clip, 30)
    source = FileSource(clip, fps=2).open()
    first = [frame.ts for frame in source.frames()]
    with source:
        assert [frame.ts for frame in source.frames()] == first == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


def test_a_clip_deleted_while_read_plays_to_its_end(tmp_path):
    """The open file stays readable after its name is removed (a cleanup job, a user)."""
    clip = tmp_path / "clip.mkv"
    write_mkv(clip, 60)
    source = FileSource(clip, fps=2).open()
    frames = source.frames()
    next(frames)
    clip.unlink()
    assert 1 + sum(1 for _ in frames) == 12 and source.stats.state == "ended"


def test_a_clip_cut_while_read_ends_early_with_a_warning(tmp_path, caplog):
    clip = tmp_path / "clip.mkv"
    write_mkv(clip, 60)
    source = FileSource(clip, fps=2).open()
    frames = source.frames()
    next(frames)
    os.truncate(clip, clip.stat().st_size // 3)
    with caplog.at_level(logging.WARNING):
        last = max(frame.ts for frame in frames)
    assert last < 4.0 and source.stats.state == "ended"
    assert re.search(r"clip.mkv: ended \d\.\d s into its 6.0 s \(truncated, or cut while being read\?\)", caplog.text)


def test_a_disk_filling_up_mid_replay_keeps_the_alerts_already_written(tmp_path, broken_files):
    """The annotated video fills a small disk after the first alert: the replay stops with one
    line naming the video, and the alert and its evidence are in the output folder, intact."""
    disk = tmpfs(broken_files / "small", "size=700k")
    config = config_with(tmp_path, "dwell_s: 30", "dwell_s: 5")
    result = detector("replay", str(config), "--camera", "vtest", "--out", str(disk / "out"), "--annotate")
    assert_clean_failure(result, "vtest.annotated.mp4: cannot write the annotated video: No space left on device")
    assert result.returncode == 6
    events = [json.loads(line) for line in (disk / "out/events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["zone"]) for e in events] == [("start", "van-no-parking")]
    evidence = (disk / "out" / events[0]["snapshot"]["path"]).read_bytes()
    assert hashlib.sha256(evidence).hexdigest() == events[0]["snapshot"]["sha256"]
