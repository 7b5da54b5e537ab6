"""`detector explain` on the scenario clips: why the parking alert fired (parking-stop) and why
it did not (parking-brief: the van leaves after 8 s), from the model or from cached detections."""

import os
from datetime import UTC, datetime

import pytest
from conftest import ROOT
from scenario_clips import scenario_clip

from detector.cli import main
from detector.config import load_config
from detector.operator.cache import cached_detections
from detector.operator.explain import explain

ORIGIN = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config():
    os.chdir(ROOT)
    return load_config(ROOT / "configs/scenarios.yaml")


@pytest.fixture(scope="module")
def cache_dir(config, tmp_path_factory):
    directory = tmp_path_factory.getbasetemp() / "detections-cache"  # shared with test_tune
    for name in ("parking-stop", "parking-brief"):
        cached_detections(config, config.camera(name), scenario_clip(name), config.model_threshold, directory)
    return directory


def test_why_the_alert_fired(config, cache_dir):
    lines, how = explain(
        config, config.camera("parking-stop"), "no-parking", violation=None, from_s=5, to_s=35, cache_dir=cache_dir, origin=ORIGIN
    )
    assert how.startswith("cached detections")
    assert lines[0].startswith(
        "zone no-parking · illegal_parking  (dwell_s 20, grace_s 10, clear_s 10, min_score 0.35, settle_s 3"
    )
    assert lines[1] == "  before 5 s: idle"
    text = "\n".join(lines)
    # the van enters the zone moving, settles at 10.0 s, is stationary 3 s later, and 20 s after settling the alert starts
    assert "#20 car score 0.55-0.68, moving (settled 10.0 s, still 2.5 < settle_s 3 s), seen in 4/5 frames" in text
    assert "  >> 13.0 s  idle -> pending: a candidate is stationary in the zone" in lines
    assert "  >> 30.0 s  pending -> active: a candidate stationary for dwell_s 20 s" in lines
    assert "  >> 30.0 s  alert START (first seen 10.0 s, confidence 0.63)" in lines
    assert (
        "pending, dwell 3.0/20 s (since 10.0 s): #20 car score 0.47, stationary since 10.0 s (still 3.0 s) -> candidate" in text
    )
    # the arriving van (its box says car or truck) before it enters the zone; the van parked at the
    # top right is in no region: the model does not look there (detector/detect/regions.py)
    assert "idle: nothing of the type's classes in the zone | outside the zone: #20 car, #21 truck" in text
    assert lines[-1] == "  verdict: alert started at 30.0 s: a candidate stationary since 10.0 s reached dwell_s 20 s"
    assert len(lines) < 20  # 61 sampled frames condensed into runs


def test_why_no_alert_fired_and_the_model_path_agrees_with_the_cache(config, cache_dir):
    camera = config.camera("parking-brief")
    cached, how = explain(
        config, camera, "no-parking", violation="illegal_parking", from_s=0, to_s=40, cache_dir=cache_dir, origin=ORIGIN
    )
    live, how_live = explain(
        config, camera, "no-parking", violation="illegal_parking", from_s=0, to_s=40, cache_dir=None, origin=ORIGIN
    )
    assert how.startswith("cached detections") and how_live.startswith("model over")
    assert cached == live
    assert "  >> 29.0 s  pending -> idle: no candidate for grace_s 10 s" in cached
    assert (
        cached[-1]
        == "  verdict: no alert in range: a candidate was present for at most 8.5 s of dwell_s 20 s; last candidate seen at 18.5 s"
    )


def test_other_zone_and_ranges(config, cache_dir):
    lines, _ = explain(
        config, config.camera("parking-stop"), "vending", violation=None, from_s=0, to_s=44, cache_dir=cache_dir, origin=ORIGIN
    )
    assert lines[-1].startswith("  verdict: no alert")
    assert not any(">>" in line for line in lines)
    lines, _ = explain(
        config,
        config.camera("parking-stop"),
        "no-parking",
        violation=None,
        from_s=100,
        to_s=120,
        cache_dir=cache_dir,
        origin=ORIGIN,
    )
    assert lines[-1] == "  no sampled frame in 100-120 s (is the range inside the clip?)"


def test_cli(cache_dir, capsys):
    assert (
        main(
            [
                "explain",
                "configs/scenarios.yaml",
                "--camera",
                "parking-stop",
                "--zone",
                "no-parking",
                "--from",
                "28",
                "--to",
                "30",
                "--cache",
                str(cache_dir),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("camera parking-stop, 28-30 s of stream, from cached detections (")
    assert out[0].endswith("parking-stop.mp4)")
    assert "  >> 30.0 s  alert START (first seen 10.0 s, confidence 0.63)" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--zone", "kerb", "--to", "10"],
            "camera parking-stop has no zone 'kerb' (zones: no-parking, vending, garbage, nonmotor-no-parking)",
        ),
        (["--zone", "no-parking", "--type", "stray_garbage", "--to", "10"], "zone no-parking does not check stray_garbage"),
        (["--zone", "no-parking", "--type", "parking", "--to", "10"], "--type 'parking': must be one of"),
        (["--zone", "no-parking", "--from", "20", "--to", "10"], "--to 10 is before --from 20"),
    ],
)
def test_bad_arguments_are_one_clear_error(extra, message, capsys):
    os.chdir(ROOT)
    assert main(["explain", "configs/scenarios.yaml", "--camera", "parking-stop", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("detector: error: ") and message in err[0]
