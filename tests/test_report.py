"""`detector replay --report [--gt]` on the scenario clips: report.html with the alert and its
snapshot, the per-zone timeline (SVG) at the right stream times, and the score table."""

import os
import re
import shutil

import pytest
from conftest import ROOT, SCREENSHOTS, make_alert
from scenario_clips import scenario_clip

from detector.cli import main
from detector.operator.timeline import RuleTrack, runs, timeline_svg

START_AT = "2024-05-06T08:00:00+00:00"


@pytest.fixture(scope="module")
def parking_stop_report(tmp_path_factory):
    os.chdir(ROOT)
    clip = scenario_clip("parking-stop")
    out = tmp_path_factory.mktemp("report")
    gt = clip.with_suffix(".gt.yaml")
    config = out.parent / "scenarios.yaml"  # the shipped config, with a temporary storage_dir
    config.write_text((ROOT / "configs/scenarios.yaml").read_text() + f"\nstorage_dir: {out.parent / 'storage'}\n")
    code = main(
        [
            "replay",
            str(config),
            "--camera",
            "parking-stop",
            "--out",
            str(out),
            "--report",
            "--gt",
            str(gt),
            "--annotate",
            "--start-at",
            START_AT,
            "--no-progress",
        ]
    )
    assert code == 0
    return out, (out / "report.html").read_text()


def svg_of(html, zone, violation):
    match = re.search(rf'<svg [^>]*data-zone="{zone}" data-type="{violation}">(.*?)</svg>', html, re.S)
    assert match, f"no timeline for {zone}/{violation}"
    return match.group(1)


def test_report_lists_the_alert_with_its_snapshot(parking_stop_report):
    out, html = parking_stop_report
    assert "<span id='alert-count'>1</span>" in html
    rows = re.findall(r"<tr class='alert'>(.*?)</tr>", html, re.S)
    assert len(rows) == 1
    snapshot = re.search(r"<img class='snapshot' src='(evidence/[0-9a-f-]+\.jpg)'", rows[0]).group(1)
    assert (out / snapshot).read_bytes()[:2] == b"\xff\xd8"  # a JPEG, linked relative to the report
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[0], re.S)
    assert cells[1:4] == ["illegal_parking", "no-parking", "10.0"]  # type, zone, settled at 10.0 s
    assert cells[4].startswith("30.0<br><small>2024-05-06T08:00:30.000Z")  # start, stream and wall time
    assert cells[5] == "-"  # still open at the end of the clip
    assert cells[6] == "0.63"
    assert "href='parking-stop.annotated.mp4'" in html and "<video controls" in html
    assert "href='events.jsonl'" in html


def test_timeline_shows_the_state_machine_over_stream_time(parking_stop_report):
    _, html = parking_stop_report
    svg = svg_of(html, "no-parking", "illegal_parking")
    assert "<title>pending 13.0-30.0 s</title>" in svg  # settled 10.0 + settle_s 3
    assert "<title>active 30.0-45.0 s</title>" in svg  # dwell 20 s after settling; 44.5 s + one frame
    assert "<title>ground truth 10.0-45.0 s</title>" in svg
    assert len(re.findall(r'class="alert-start"', svg)) == 1 and "<title>start 30.0 s</title>" in svg
    present = re.findall(r"<title>present ([\d.]+)-([\d.]+) s</title>", svg)
    assert present[0][0] == "8.0"  # the van enters the zone before it stops
    for zone, violation in (("vending", "street_vending"), ("garbage", "stray_garbage")):
        quiet = svg_of(html, zone, violation)
        assert "lane-pending" not in quiet and "lane-active" not in quiet and "alert-start" not in quiet


def test_score_table_matches_the_ground_truth(parking_stop_report):
    _, html = parking_stop_report
    row = re.search(r"<tr data-type='all'><th>all</th>(.*?)</tr>", html, re.S).group(1)
    cells = re.findall(r"<td class='num'>(.*?)</td>", row)
    # gt, alarms, TP, FP, FN, precision, recall, F1, latency median, max
    assert cells == ["1", "1", "1", "0", "0", "1.00", "1.00", "1.00", "20.0", "20.0"]
    assert "<li class='match'>illegal_parking @ no-parking 30s" in html
    assert html.count("<li>none</li>") == 2  # no misses, no false alarms


def test_report_of_a_quiet_clip(tmp_path):
    os.chdir(ROOT)
    clip = scenario_clip("parking-brief")  # the van stops 8 s < dwell: no violation, no alert
    assert (
        main(
            [
                "replay",
                "configs/scenarios.yaml",
                "--camera",
                "parking-brief",
                "--out",
                str(tmp_path),
                "--report",
                "--gt",
                str(clip.with_suffix(".gt.yaml")),
                "--start-at",
                START_AT,
                "--no-progress",
            ]
        )
        == 0
    )
    html = (tmp_path / "report.html").read_text()
    assert "<span id='alert-count'>0</span>" in html and "<p>No alerts.</p>" in html
    row = re.search(r"<tr data-type='all'><th>all</th>(.*?)</tr>", html, re.S).group(1)
    assert re.findall(r"<td class='num'>(.*?)</td>", row)[:5] == ["0", "0", "0", "0", "0"]
    svg = svg_of(html, "no-parking", "illegal_parking")
    assert "lane-pending" in svg and "lane-active" not in svg  # it was pending, never active


def test_a_bad_ground_truth_file_fails_before_the_replay(tmp_path, capsys):
    os.chdir(ROOT)
    bad = tmp_path / "bad.gt.yaml"
    bad.write_text("events: [{type: parking, begin_s: 1}]\n")
    code = main(
        ["replay", "configs/scenarios.yaml", "--camera", "parking-stop", "--out", str(tmp_path / "out"), "--gt", str(bad)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("detector: error: ") and "events[0].type: must be one of" in err[0]
    assert not (tmp_path / "out").exists()


def test_runs_and_svg_geometry():
    ts = [0.0, 0.5, 1.0, 1.5, 2.0]
    assert runs(ts, [False, True, True, False, True], 2.5) == [(0.5, 1.5), (2.0, 2.5)]
    track = RuleTrack("z", "illegal_parking", ts, [0, 1, 1, 1, 0], [0, 0, 1, 1, 0], ["idle", "idle", "pending", "active", "idle"])
    svg = timeline_svg(track, 2.5, alerts=[make_alert(stream_time_s=1.5)], width=590)
    # plot area 90..578 px for 0..2.5 s: 195.2 px per second
    assert '<rect class="lane-active" x="382.8" y="56" width="97.6"' in svg
    assert '<line class="alert-start" x1="382.8" x2="382.8"' in svg


def test_report_renders_in_a_browser_with_its_snapshot_and_video(parking_stop_report, browser):
    out, _ = parking_stop_report
    page = browser.new_page(viewport={"width": 1200, "height": 1600})
    page.goto((out / "report.html").as_uri())
    widths = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
    assert widths and all(w > 0 for w in widths)  # every evidence link resolves to a real JPEG
    assert page.eval_on_selector("video", "v => v.readyState >= 1 || v.networkState !== 3")
    assert page.locator("svg").count() >= 3  # a timeline per zone x type
    screenshot = out / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, SCREENSHOTS / "report.png")
    assert screenshot.stat().st_size > 50_000
