"""Each violation type on scenario clips with exactly known events (composited from real
footage by scripts/make_scenarios.py at test time), plus real moving traffic: the real model,
the whole pipeline, scored against the ground truth. Positives must be found, negatives quiet."""

import os

import pytest
import yaml
from conftest import ROOT, asset
from scenario_clips import scenario_clip

from detector import scoring
from detector.config import load_config
from detector.replay import replay
from detector.rules.violations import RULES

SCENARIO_DIR = ROOT / "sample_videos/scenarios"
# The robustness suite (nuisance-*) has its own bar and tests: tests/test_robustness.py.
SCENARIOS = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml") if not p.stem.startswith("nuisance-"))
LATENCY_SLACK_S = 12.0  # settle time + the short-term background absorbing a new object


@pytest.fixture(scope="session")
def config(tmp_path_factory):
    os.chdir(ROOT)
    storage = tmp_path_factory.mktemp("storage")
    return load_config(ROOT / "configs/scenarios.yaml").model_copy(update={"storage_dir": storage})


def run_and_score(config, camera, ground_truth, out):
    summary = replay(config, camera, out_dir=out, quiet=True, progress=False)
    return summary, scoring.score(summary.alerts, scoring.load_ground_truth(ground_truth))


def test_every_scenario_has_a_camera(config):
    assert set(SCENARIOS) <= {c.id for c in config.cameras}
    assert len(SCENARIOS) >= 8


def test_every_violation_type_has_a_positive_scenario():
    raised = {
        event["type"]
        for name in SCENARIOS
        for event in yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text())["ground_truth"]["events"]
    }
    assert raised == set(RULES)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name, config, tmp_path):
    gt_path = scenario_clip(name).with_suffix(".gt.yaml")
    summary, result = run_and_score(config, name, gt_path, tmp_path)
    expected = len(scoring.load_ground_truth(gt_path).events)
    print(f"\n{name}:\n{scoring.format_report(result)}")
    assert result.overall.fp == 0, f"false alarms: {result.false_alarms}"
    assert (result.overall.tp, result.overall.fn) == (expected, 0), f"missed: {result.misses}"
    for match in result.matches:
        settings = config.violations.model_dump()[match.event.type]
        assert match.latency_s <= settings["dwell_s"] + LATENCY_SLACK_S


def test_moving_traffic_raises_nothing(config, tmp_path):
    asset("sample_videos/clips/bgs_video03.avi")
    summary, result = run_and_score(config, "traffic", ROOT / "sample_videos/ground_truth/bgs_video03.gt.yaml", tmp_path)
    assert summary.alerts == [] and result.overall.fp == 0
    assert summary.stream_s == pytest.approx(28.3, abs=0.5)  # frame timing despite out-of-order pts
