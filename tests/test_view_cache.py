"""The detection cache carries the view: a rules-only replay over the cache of a clip whose view
is moved (or covered) pauses exactly where the real replay does, and judges the same."""

import itertools
import os
import re
from datetime import UTC, datetime

import pytest
from conftest import ROOT
from scenario_clips import scenario_clip

from detector.config import load_config
from detector.operator.cache import cached_detections
from detector.operator.explain import explain
from detector.operator.rules_only import replay_rules
from detector.replay import replay

ORIGIN = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)


def per_frame(result) -> tuple:
    """What every view reads from a frame: its time, the view, the tracks and every rule's state."""
    view = result.view
    return (
        result.frame.ts,
        (view.status.value, view.since_s, view.reason),
        len(result.tracks),
        tuple((r.zone, r.violation.value, r.state.value, r.pending_since, r.active_since) for r in result.rules),
    )


def paused_stretches(frames: list[tuple]) -> list[tuple[float, float, str]]:
    """(first ts, last ts, state) of each run of paused frames."""
    runs = ((state, list(run)) for state, run in itertools.groupby(frames, key=lambda f: f[1][0]))
    return [(run[0][0], run[-1][0], state) for state, run in runs if state != "ok"]


@pytest.mark.parametrize(
    "camera_id, state, within",
    [
        # the nuisance's own window (scenario YAML) and the state it must give
        ("nuisance-ptz-away-and-back", "view_changed", (10, 32 + 6)),
        ("nuisance-covered", "view_blocked", (12, 26 + 6)),
    ],
)
def test_a_cached_rules_only_replay_pauses_and_judges_as_the_real_replay(tmp_path, camera_id, state, within):
    os.chdir(ROOT)
    clip = scenario_clip(camera_id)
    config = load_config(ROOT / "configs/scenarios.yaml")
    camera = config.camera(camera_id)
    live: list[tuple] = []
    real = replay(
        config,
        camera_id,
        out_dir=tmp_path,
        quiet=True,
        progress=False,
        start_at=ORIGIN,
        on_frame=lambda r: live.append(per_frame(r)),
    )
    cache, built = cached_detections(config, camera, clip, config.model_threshold, tmp_path / "cache")
    cached: list[tuple] = []
    alerts = replay_rules(config, camera, cache, origin=ORIGIN, on_frame=lambda r: cached.append(per_frame(r)))

    assert built and cache.meta["view"][0]["status"] == state  # the first change recorded is the pause
    assert [(a.event, a.zone, a.stream_time_s) for a in alerts] == [(a.event, a.zone, a.stream_time_s) for a in real.alerts]
    assert cached == live
    stretches = paused_stretches(live)
    assert [s[2] for s in stretches] == [state]
    assert within[0] <= stretches[0][0] and stretches[0][1] <= within[1], stretches
    assert not any(tracks for _, (s, _, _), tracks, _ in live if s != "ok")  # no detections while paused


def test_explain_says_when_the_view_paused_the_timers_from_the_model_and_from_the_cache(tmp_path):
    os.chdir(ROOT)
    config = load_config(ROOT / "configs/scenarios.yaml")
    camera = config.camera("nuisance-ptz-away-and-back")
    zone = camera.zones[0]
    live, _ = explain(config, camera, zone.id, violation=None, from_s=0, to_s=45, cache_dir=None, origin=ORIGIN)
    cached_detections(config, camera, scenario_clip(camera.id), config.model_threshold, tmp_path)
    cached, how = explain(config, camera, zone.id, violation=None, from_s=0, to_s=45, cache_dir=tmp_path, origin=ORIGIN)
    assert how.startswith("cached detections") and cached == live
    paused = [line for line in live if "timers paused" in line]
    restored = [line for line in live if "view restored" in line]
    assert paused and restored and len(paused) == len(restored) == len(zone.violations), "\n".join(live)
    assert re.fullmatch(r"  >> \d+\.\d s  view_changed \(since \d+\.\d s\): .+; timers paused", paused[0])
    assert all("the model does not run" in line for line in live if ", held: view_" in line)
    assert "(the view was paused in" in live[-1]
