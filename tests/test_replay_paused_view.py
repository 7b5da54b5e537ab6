"""A paused view (moved or blocked, detector/view.py) in what a replay leaves, on the real covered
nuisance clip: the annotated video's banner and grey zones (asserted on pixels of every frame),
the report's summary line and timeline band, the line `detector replay` prints and the summary's
stretches; the same camera with `view: {resume: operator}` (a per-camera override) stays paused
to the end of the clip, waiting for an operator. Then the stretches of a frame sequence (a table)."""

import contextlib
import io
import os
import re

import av
import numpy as np
import pytest
import yaml
from conftest import ROOT
from scenario_clips import scenario_clip

from detector.cli import main
from detector.config import load_config
from detector.operator.cache import cache_key
from detector.replay import PausedStretch, paused_stretches, replay
from detector.view import OK_FROM_START, ViewState, ViewStatus

CAMERA = "nuisance-covered"
SCENARIO = yaml.safe_load((ROOT / f"sample_videos/scenarios/{CAMERA}.yaml").read_text())
COVER = next(n for n in SCENARIO["nuisances"] if n["type"] == "cover")
HOLD_S = load_config(ROOT / "configs/scenarios.yaml").view.hold_s
# A pause begins hold_s after the cover (its ramp included) and ends hold_s after it is lifted.
BEGINS = (COVER["from_s"], COVER["from_s"] + COVER.get("ramp_s", 0) + HOLD_S)
ENDS = (COVER["to_s"], COVER["to_s"] + COVER.get("ramp_s", 0) + HOLD_S)
BANNER_LINE_PX = 22  # detector/draw.banner: 22 px a line, from the top


def config_with(tmp_path, camera_view: str | None = None):
    """configs/scenarios.yaml with a temporary storage_dir, the camera's `view:` override if given."""
    text = (ROOT / "configs/scenarios.yaml").read_text()
    if camera_view is not None:
        entry = f"{{id: {CAMERA}, "
        assert text.count(entry) == 1
        text = text.replace(entry, f"{entry}view: {camera_view}, ")
    path = tmp_path / "scenarios.yaml"
    path.write_text(text + f"\nstorage_dir: {tmp_path / 'storage'}\n")
    return path


@pytest.fixture(scope="module")
def covered(tmp_path_factory):
    """`detector replay --annotate --report` of the covered clip: (out dir, stdout lines, report HTML)."""
    os.chdir(ROOT)
    scenario_clip(CAMERA)
    out = tmp_path_factory.mktemp("covered")
    config = config_with(out.parent)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["replay", str(config), "--camera", CAMERA, "--out", str(out), "--annotate", "--report", "--no-progress"])
    assert code == 0
    return out, printed.getvalue().splitlines(), (out / "report.html").read_text()


@pytest.fixture(scope="module")
def awaiting_operator(tmp_path_factory):
    """The same clip through replay() with `view: {resume: operator}` on this camera only."""
    os.chdir(ROOT)
    scenario_clip(CAMERA)
    out = tmp_path_factory.mktemp("operator")
    config = load_config(config_with(out.parent, "{resume: operator}"))
    assert config.view.resume == "auto" and config.camera(CAMERA).view_settings(config.view).resume == "operator"
    return replay(config, CAMERA, out_dir=out, annotate=True, quiet=True, progress=False)


def printed_stretch(lines: list[str]) -> tuple[float, float]:
    paused = [line for line in lines if line.startswith("view paused")]
    assert len(paused) == 1, lines
    match = re.fullmatch(r"view paused (\d+\.\d)-(\d+\.\d) s: view_blocked: .+", paused[0])
    assert match, paused[0]
    return float(match.group(1)), float(match.group(2))


def frames(video) -> list[tuple[float, np.ndarray]]:
    with av.open(str(video)) as container:
        return [(float(f.pts * f.time_base), f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]


def red_share(image: np.ndarray, line: int) -> float:
    """The share of the banner's `line` (0: the first) that is the banner's red."""
    rows = image[BANNER_LINE_PX * line + 6 : BANNER_LINE_PX * (line + 1), :, :].astype(int)
    b, g, r = rows[..., 0], rows[..., 1], rows[..., 2]
    return float(((r > 170) & (g < 110) & (b < 110)).mean())


def zone_edge_green_share(image: np.ndarray, polygon) -> float:
    """The share of the middle of the zone's first edge drawn in the idle zone's green."""
    height, width = image.shape[:2]
    corners = np.array(polygon) * [width, height]
    points = np.round(np.linspace(corners[0], corners[1], 60)[10:-10]).astype(int)
    pixels = image[points[:, 1], points[:, 0]].astype(int)
    return float(((pixels[:, 1] > pixels[:, 2] + 50) & (pixels[:, 1] > pixels[:, 0] + 50)).mean())


def test_replay_prints_the_paused_stretch_within_the_cover(covered):
    _, lines, _ = covered
    begin, end = printed_stretch(lines)
    assert BEGINS[0] <= begin <= BEGINS[1] and ENDS[0] <= end <= ENDS[1], (begin, end)
    assert lines[0].endswith("0 alerts, 0 events -> " + str(covered[0] / "events.jsonl"))


def test_the_annotated_video_shows_a_banner_and_grey_zones_exactly_while_paused(covered):
    out, lines, _ = covered
    begin, end = printed_stretch(lines)
    zone = next(z for z in load_config(ROOT / "configs/scenarios.yaml").camera(CAMERA).zones if z.id == "no-parking")
    video = frames(out / f"{CAMERA}.annotated.mp4")
    paused = [(ts, image) for ts, image in video if begin <= ts < end]
    ok = [(ts, image) for ts, image in video if not begin <= ts < end]
    assert len(paused) == round((end - begin) * 2) and len(ok) > 40  # 2 fps
    for ts, image in paused:
        assert red_share(image, 0) > 0.7 and red_share(image, 1) > 0.7, ts  # what and since when; why
        assert red_share(image, 2) < 0.1, ts  # no third line: it resumes by itself
        assert zone_edge_green_share(image, zone.polygon) == 0.0, ts  # grey, not the idle state's green
    for ts, image in ok:
        assert red_share(image, 0) < 0.1, ts
    assert np.median([zone_edge_green_share(image, zone.polygon) for _, image in ok]) > 0.9


def test_the_report_names_the_paused_stretch_and_bands_every_timeline(covered):
    _, lines, html = covered
    begin, end = printed_stretch(lines)
    line = next(line for line in lines if line.startswith("view paused"))
    summary = re.findall(r"<span class='view-paused'>(.*?)</span>", html)
    assert summary == [line.replace("<", "&lt;")]
    timelines = re.findall(r"<svg .*?</svg>", html, re.S)
    bands = re.findall(r'<rect class="view-paused" x="([\d.]+)" y="0" width="([\d.]+)"[^>]*><title>(.*?)</title>', html)
    rules = sum(len(z.violations) for z in load_config(ROOT / "configs/scenarios.yaml").camera(CAMERA).zones)
    assert len(timelines) == len(bands) == rules  # one per zone x type, each banded
    end_s = float(re.search(r"([\d.]+) s of stream", lines[0]).group(1)) + 0.5  # the plot's span: one frame more
    x, width, title = bands[0]
    plot_w = 960 - 90 - 12  # detector/operator/timeline: width, left and right margins
    assert float(x) == pytest.approx(90 + plot_w * begin / end_s, abs=0.01)
    assert float(width) == pytest.approx(plot_w * (end - begin) / end_s, abs=0.02)
    assert title == summary[0] and "view paused (not judged, states held)" in html  # tooltip and legend


def test_a_camera_resumed_by_an_operator_only_stays_paused_to_the_end(awaiting_operator, covered):
    summary = awaiting_operator
    begin, _ = printed_stretch(covered[1])
    assert [(p.status, p.from_s, p.to_s, p.awaiting_operator) for p in summary.paused] == [("view_blocked", begin, None, True)]
    assert summary.paused[0].describe().startswith(f"view paused from {begin:.1f} s to the end: view_blocked: ")
    video = frames(summary.video_path)
    assert all((red_share(image, 2) > 0.7) == (ts >= begin) for ts, image in video)  # the third line: an operator


def test_the_detection_cache_is_keyed_by_the_cameras_own_view(tmp_path):
    config = load_config(config_with(tmp_path, "{resume: operator}"))
    clip = scenario_clip(CAMERA)

    def view_key(camera_id: str) -> dict:
        return cache_key(config, config.camera(camera_id), clip, config.model_threshold)["view"]

    assert view_key(CAMERA)["resume"] == "operator" and view_key("nuisance-ptz-away-and-back")["resume"] == "auto"


PAUSE = ViewState(ViewStatus.BLOCKED, 1.0, "no contrast")
MOVED = ViewState(ViewStatus.CHANGED, 3.0, "another view")
WAITING = ViewState(ViewStatus.BLOCKED, 1.0, "no contrast", awaiting_operator=True)
BACK = ViewState(ViewStatus.BLOCKED, 1.0, "no contrast", awaiting_operator=True, back=True)
OK = OK_FROM_START

# per-frame views from t = 0 s, one frame a second -> the stretches
STRETCHES = {
    "never paused": ([OK, OK, OK], []),
    "paused and back": ([OK, PAUSE, PAUSE, OK], [PausedStretch("view_blocked", 1.0, 3.0, "no contrast")]),
    "paused from the first frame": ([PAUSE, OK], [PausedStretch("view_blocked", 0.0, 1.0, "no contrast")]),
    "paused to the end": ([OK, OK, PAUSE], [PausedStretch("view_blocked", 2.0, None, "no contrast")]),
    "blocked, then moved, without an ok frame between": (
        [OK, PAUSE, MOVED, MOVED, OK],
        [PausedStretch("view_blocked", 1.0, 2.0, "no contrast"), PausedStretch("view_changed", 2.0, 4.0, "another view")],
    ),
    "two pauses": (
        [PAUSE, OK, PAUSE, OK],
        [PausedStretch("view_blocked", 0.0, 1.0, "no contrast"), PausedStretch("view_blocked", 2.0, 3.0, "no contrast")],
    ),
    "waiting for an operator, back, confirmed": (
        [OK, WAITING, BACK, BACK, OK],
        [PausedStretch("view_blocked", 1.0, 4.0, "no contrast", awaiting_operator=True)],
    ),
}


@pytest.mark.parametrize("views, expected", STRETCHES.values(), ids=STRETCHES.keys())
def test_paused_stretches_of_a_frame_sequence(views, expected):
    assert paused_stretches((float(ts), view) for ts, view in enumerate(views)) == expected


def test_a_stretch_in_one_line():
    assert PausedStretch("view_changed", 15.5, 36.5, "another view (match 0.24 < 0.3)").describe() == (
        "view paused 15.5-36.5 s: view_changed: another view (match 0.24 < 0.3)"
    )
    assert PausedStretch("view_blocked", 12.0, None, "no contrast", awaiting_operator=True).describe() == (
        "view paused from 12.0 s to the end: view_blocked: no contrast (waiting for an operator)"
    )
