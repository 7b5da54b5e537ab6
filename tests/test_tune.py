"""`detector tune` on the scenario clips: the model runs once per clip, every combination
replays only the rules over the cached detections, and the numbers are the real replay's."""

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import ROOT
from scenario_clips import scenario_clip

from detector import worker as worker_module
from detector.cli import main
from detector.config import ViolationType, load_config
from detector.errors import ConfigError
from detector.operator import cache as cache_module
from detector.operator import sweep
from detector.operator.cache import cached_detections
from detector.operator.rules_only import replay_rules
from detector.replay import replay

ORIGIN = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    os.chdir(ROOT)
    clip = scenario_clip("parking-stop")
    config = load_config(ROOT / "configs/scenarios.yaml")
    cache_dir = tmp_path_factory.getbasetemp() / "detections-cache"  # shared with test_explain
    return config, clip, cache_dir


def run_sweep(config, clip, cache_dir, *sets):
    clips = sweep.resolve_clips(config.camera("parking-stop"), [clip.with_suffix(".gt.yaml")], None)
    return sweep.sweep(config, "parking-stop", sweep.parse_sets(list(sets)), clips, cache_dir=cache_dir)


def test_dwell_sweep_gives_the_expected_recall_per_row(setup, monkeypatch):
    config, clip, cache_dir = setup
    first = run_sweep(config, clip, cache_dir, "dwell_s=10,20,40")
    rows = [(dict(r.settings)["dwell_s"], r.total.tp, r.total.fp, r.total.recall, r.total.latency_median_s) for r in first.rows]
    # the van settles at 10.0 s (ground truth: stopped at 10 s); the clip ends at 44.5 s, so with
    # dwell 40 the alert (50.0 s) would come after the end: recall 0
    assert rows == [(10.0, 1, 0, 1.0, 10.0), (20.0, 1, 0, 1.0, 20.0), (40.0, 0, 0, 0.0, None)]
    assert first.best == 0  # F1 ties at 1.0; the lower latency wins
    assert first.frames == 90

    # the same inputs again: detections from the cache (the model is not even opened), same table
    monkeypatch.setattr(worker_module, "open_model", lambda *a, **k: pytest.fail("the model ran despite the cache"))
    second = run_sweep(config, clip, cache_dir, "dwell_s=10,20,40")
    assert second.built == 0 and second.model_s == 0.0
    assert sweep.format_table(second) == sweep.format_table(first)
    table = sweep.format_table(first).splitlines()
    assert table[0].split() == ["dwell_s", "alarms", "tp", "fp", "fn", "precision", "recall", "f1", "lat_med_s"]
    assert table[2].split() == ["*", "10", "1", "1", "0", "0", "1.00", "1.00", "1.00", "10.0"]
    assert table[4].split() == ["40", "0", "0", "0", "1", "-", "0.00", "-", "-"]
    assert table[-1] == "* best (F1, then latency): dwell_s=10"


def test_rules_only_replay_equals_the_real_replay_and_is_much_faster(setup, tmp_path):
    config, clip, cache_dir = setup
    camera = config.camera("parking-stop")
    started = time.perf_counter()
    real = replay(config, "parking-stop", out_dir=tmp_path, quiet=True, progress=False, start_at=ORIGIN)
    replay_s = time.perf_counter() - started
    cache, _ = cached_detections(config, camera, clip, config.model_threshold, cache_dir)
    started = time.perf_counter()
    cached = replay_rules(config, camera, cache, origin=ORIGIN)
    rules_s = time.perf_counter() - started

    def key(a):
        return (a.event, a.zone, a.type, a.stream_time_s, a.first_seen_s, a.at, a.confidence, a.objects)

    assert [key(a) for a in cached] == [key(a) for a in real.alerts]
    assert [a.stream_time_s for a in real.alerts] == [30.0]
    print(f"\nreplay {replay_s:.2f} s, rules-only over cached detections {rules_s:.3f} s: {replay_s / rules_s:.0f}x")
    assert replay_s / rules_s > 10


def test_two_keys_and_a_type_prefix(setup):
    config, clip, cache_dir = setup
    result = run_sweep(config, clip, cache_dir, "illegal_parking.dwell_s=20,30", "track.settle_s=3,8")
    got = [(tuple(v for _, v in r.settings), r.total.tp, r.total.latency_median_s) for r in result.rows]
    # settle_s 8: the van counts as stationary 5 s later, but dwell runs from when it settled (at
    # 10.0 s, or one frame earlier: a van still creeping in settles at one frame or the next)
    assert got == [((20.0, 3.0), 1, 20.0), ((20.0, 8.0), 1, 19.5), ((30.0, 3.0), 1, 30.0), ((30.0, 8.0), 1, 29.5)]
    assert result.best == 1  # same F1, the earliest alarm


def test_min_score_above_every_detection_finds_nothing(setup):
    config, clip, cache_dir = setup
    result = run_sweep(config, clip, cache_dir, "min_score=0.35,0.95")
    assert [(r.total.alarms, r.total.recall) for r in result.rows] == [(1, 1.0), (0, 0.0)]


def test_apply_sets_zone_overrides_and_refuses_an_ambiguous_type_key(setup):
    config, _, _ = setup
    variant, camera = sweep.apply(config, "parking-stop", {"dwell_s": 33.0, "track.tolerance": 0.5})
    zone = camera.zones[0]
    assert zone.settings_for(zone.violations[0], variant.violations, variant.detect).dwell_s == 33.0
    assert variant.track.tolerance == 0.5 and config.track.tolerance == 0.25  # the original is untouched
    mixed = config.model_copy(
        update={
            "cameras": (
                camera.model_copy(
                    update={
                        "zones": (
                            zone.model_copy(
                                update={"violations": zone.violations + (ViolationType.STRAY_GARBAGE,), "dwell_s": 5.0}
                            ),
                        )
                    }
                ),
            )
        }
    )
    with pytest.raises(ConfigError, match="sets dwell_s for all of its types"):
        sweep.apply(mixed, "parking-stop", {"illegal_parking.dwell_s": 10.0})
    with pytest.raises(ConfigError, match=r"--set dwell_s=-1: .*greater than or equal to 0"):
        sweep.apply(config, "parking-stop", {"dwell_s": -1.0})


@pytest.mark.parametrize(
    "sets, message",
    [
        (["dwel_s=10"], "--set dwel_s: not a settable key"),
        (["dwell_s=10,x"], "--set dwell_s: 'x' is not a number"),
        (["dwell_s"], "expected KEY=V1,V2"),
        (["dwell_s=1,1"], "a value is listed twice"),
        (["track.speed=1"], "--set track.speed: not a settable key"),
    ],
)
def test_bad_set_is_one_clear_error(sets, message, capsys):
    os.chdir(ROOT)
    argv = ["tune", "configs/scenarios.yaml", "--camera", "parking-stop", "--gt", "sample_videos/generated/parking-stop.gt.yaml"]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("detector: error: ") and message in err[0]


def test_cli_prints_the_table(setup, capsys):
    config, clip, cache_dir = setup
    argv = [
        "tune",
        "configs/scenarios.yaml",
        "--camera",
        "parking-stop",
        "--gt",
        str(clip.with_suffix(".gt.yaml")),
        "--set",
        "dwell_s=10,20,40",
        "--cache",
        str(cache_dir),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "camera parking-stop: 3 combinations x 1 clip (parking-stop.gt.yaml)"
    assert out[1:] == sweep.format_table(run_sweep(config, clip, cache_dir, "dwell_s=10,20,40")).splitlines()


def test_cache_key_changes_with_what_the_detections_depend_on(setup):
    config, clip, cache_dir = setup
    camera = config.camera("parking-stop")
    base = cache_module.cache_key(config, camera, clip, 0.35)
    other_fps = config.model_copy(update={"detect": config.detect.model_copy(update={"fps": 4.0})})
    paths = {
        cache_module.cache_path(cache_dir, clip, key)
        for key in (
            base,
            cache_module.cache_key(config, camera, clip, 0.3),
            cache_module.cache_key(other_fps, camera, clip, 0.35),
        )
    }
    assert len(paths) == 3
    assert base["static_objects"] is not None  # parking-stop has a garbage zone: static objects are cached too
    assert base["clip_sha256"] == cache_module.file_digest(Path(clip))
