"""The robustness suite's nuisance transforms (scripts/nuisances.py) and scenarios: each transform
changes a real frame the way its name says, deterministically; every committed `nuisance-*`
scenario parses, has ground truth and a camera; a short nuisance clip renders. Cheap: one real
frame, a few rendered frames. (Replaying the suite is scripts/robustness.py, not a test.)"""

import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import ROOT, asset
from scenario_clips import generator

gen = generator()
nuisances = sys.modules["nuisances"]  # imported by make_scenarios from scripts/


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return next(gen.iter_clip(asset("sample_videos/clips/vtest.avi")))


def _apply(frame, kind, t=1.0, index=10, **declared):
    return nuisances.parse_nuisance({"type": kind, **declared}, "test").apply(frame, t, index)


def _grey(image):
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def _mean(image):
    return float(image.mean())


def _sharpness(image):
    return float(cv2.Laplacian(_grey(image), cv2.CV_32F).var())


def _shift(before, after):
    """(dx, dy) of after relative to before, by phase correlation."""
    (dx, dy), _ = cv2.phaseCorrelate(_grey(before), _grey(after))
    return dx, dy


def _brighter_share(before, after, gain=1.0, by=20):
    """The share of pixels brighter than `before * gain` by more than `by` grey levels."""
    return float((_grey(after) > _grey(before) * gain + by).mean())


# type, declared parameters, apply at t (seconds since from_s), check(before, after)
CASES = [
    ("dim", {"gain": 0.6}, 1.0, lambda b, a: _mean(a) / _mean(b) == pytest.approx(0.6, abs=0.02)),
    ("dim", {"gain": 0.6, "ramp_s": 4}, 2.0, lambda b, a: _mean(a) / _mean(b) == pytest.approx(0.8, abs=0.02)),  # half-way
    ("exposure_jump", {}, 1.0, lambda b, a: a[..., 0].mean() / b[..., 0].mean() > 1.3 > a[..., 2].mean() / b[..., 2].mean()),
    ("flash", {}, 0.0, lambda b, a: _mean(a) > 1.6 * _mean(b)),
    ("ir_mono", {}, 1.0, lambda b, a: np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2])),
    ("night", {"gain": 0.3, "sigma": 7}, 1.0, lambda b, a: _mean(a) / _mean(b) == pytest.approx(0.3, abs=0.03)),
    ("noise", {"sigma": 8}, 1.0, lambda b, a: np.std(a.astype(float) - b) == pytest.approx(8, rel=0.15)),
    # The shadow's centre at t=1 s: (0.5 * 768 + 60, 0.6 * 576); far away nothing changes.
    (
        "shadow",
        {"start": [0.5, 0.6]},
        1.0,
        lambda b, a: _grey(a)[345, 444] < 0.6 * _grey(b)[345, 444] and np.array_equal(a[:150], b[:150]),
    ),
    # Headlights at t = period / 2: the spot is at the centre column of row 0.55 * 576.
    (
        "headlights",
        {"period_s": 6, "gain": 1.2},
        3.0,
        lambda b, a: _grey(a)[317, 384] == pytest.approx(1.2 * _grey(b)[317, 384], abs=1) and np.array_equal(a[:100], b[:100]),
    ),
    ("rain", {}, 1.0, lambda b, a: 0.01 < _brighter_share(b, a, gain=0.85) < 0.2),  # streaks on a darker scene
    ("snow", {}, 1.0, lambda b, a: 0.005 < _brighter_share(b, a) < 0.1),
    ("fog", {}, 1.0, lambda b, a: np.std(_grey(a)) < 0.5 * np.std(_grey(b)) and _mean(a) > _mean(b)),
    ("compression", {"quality": 6}, 1.0, lambda b, a: abs(_mean(a) - _mean(b)) < 3 and np.abs(a.astype(int) - b).mean() > 3),
    ("blur", {}, 1.0, lambda b, a: _sharpness(a) < 0.2 * _sharpness(b)),
    ("defocus", {}, 1.0, lambda b, a: _sharpness(a) < 0.1 * _sharpness(b)),
    # Sway at a quarter period: dx = amplitude, dy = amplitude / 2 * sin(0.7 * pi / 2 + 1).
    (
        "sway",
        {"amplitude_px": 4, "period_s": 2},
        0.5,
        lambda b, a: np.allclose(_shift(b, a), (4, 2 * np.sin(0.35 * np.pi + 1)), atol=0.3),
    ),
    ("knock", {"dx": 14, "dy": 6}, 30.0, lambda b, a: np.allclose(_shift(b, a), (14, 6), atol=0.3)),
    ("ptz", {}, 5.0, lambda b, a: np.corrcoef(_grey(a).ravel(), _grey(b).ravel())[0, 1] < 0.5),
    ("cover", {}, 1.0, lambda b, a: np.std(_grey(a)) < 3 and _mean(a) < 30),
]


def test_every_nuisance_type_has_a_case():
    assert {kind for kind, *_ in CASES} == set(nuisances.NUISANCES)


@pytest.mark.parametrize("kind, declared, t, check", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_transform_changes_the_frame_as_named(frame, kind, declared, t, check):
    after = _apply(frame, kind, t=t, **declared)
    assert after.shape == frame.shape and after.dtype == np.uint8
    assert check(frame, after)


@pytest.mark.parametrize("kind", sorted(nuisances.NUISANCES))
def test_transform_is_deterministic(frame, kind):
    first, second = _apply(frame, kind, seed=3), _apply(frame, kind, seed=3)
    assert np.array_equal(first, second)
    assert np.array_equal(frame, next(gen.iter_clip(ROOT / "sample_videos/clips/vtest.avi")))  # input untouched


@pytest.mark.parametrize("kind", ["noise", "night", "rain", "snow"])
def test_seed_changes_the_randomness(frame, kind):
    assert not np.array_equal(_apply(frame, kind, seed=1), _apply(frame, kind, seed=2))


@pytest.mark.parametrize(
    "declared, t, strength",
    [
        ({"from_s": 10, "to_s": 20}, 9.9, 0.0),
        ({"from_s": 10, "to_s": 20}, 10.0, 1.0),
        ({"from_s": 10, "to_s": 20}, 20.0, 0.0),  # to_s is exclusive
        ({"from_s": 10, "to_s": 20, "ramp_s": 4}, 11.0, 0.25),
        ({"from_s": 10, "to_s": 20, "ramp_s": 4}, 15.0, 1.0),
        ({"from_s": 10, "to_s": 20, "ramp_s": 4}, 19.0, 0.25),
        ({"from_s": 10, "ramp_s": 4}, 600.0, 1.0),  # no to_s: to the end
    ],
)
def test_envelope(declared, t, strength):
    assert nuisances.parse_nuisance({"type": "dim", **declared}, "x").strength(t) == pytest.approx(strength)


def test_inactive_nuisance_returns_the_frame(frame):
    assert _apply(frame, "dim", t=5.0, from_s=10) is frame


@pytest.mark.parametrize(
    "item, message",
    [
        ({"type": "tornado"}, "unknown nuisance type 'tornado'"),
        ({"type": "dim", "gian": 0.5}, r"dim has no parameter\(s\) \['gian'\]"),
        ({"type": "dim", "from_s": 5, "to_s": 5}, "to_s must be after from_s"),
        ({"gain": 0.5}, "needs a mapping with a type"),
    ],
)
def test_bad_declarations(item, message):
    with pytest.raises(nuisances.NuisanceError, match=message):
        nuisances.parse_nuisance(item, "x")


# ---------------------------------------------------------------------------------------------
# The committed suite

SUITE = gen.scenario_names(nuisance=True)


def test_suite_covers_every_nuisance_with_and_without_violations():
    scenarios = [gen.load_definition(name) for name in SUITE]
    assert len(scenarios) >= 20
    assert {n.type for s in scenarios for n in s.nuisances} == set(nuisances.NUISANCES)
    positives = [s.name for s in scenarios if s.ground_truth["events"]]
    assert {"nuisance-parking-night-ir", "nuisance-garbage-night-ir", "nuisance-parking-cloud", "nuisance-garbage-cloud"} <= set(
        positives
    )
    assert len(positives) < len(scenarios) / 2  # most must raise nothing
    assert not set(SUITE) & set(gen.scenario_names(nuisance=False))


@pytest.mark.parametrize("name", SUITE)
def test_nuisance_scenario_parses_with_ground_truth_and_camera(name):
    from detector.scoring import parse_ground_truth

    scenario = gen.load_definition(name)
    # a nuisance transform, or (occlusion, identity) objects that play one; short clips, a little
    # longer where two dwells must fit
    assert (scenario.nuisances or scenario.sprites) and 30 <= scenario.duration_s <= 75
    truth = parse_ground_truth(gen.ground_truth_document(scenario, Path(f"{name}.mp4")), name)
    assert truth.camera == name
    cameras = {c["id"]: c for c in yaml.safe_load((ROOT / "configs/scenarios.yaml").read_text())["cameras"]}
    assert cameras[name]["source"] == f"sample_videos/generated/{name}.mp4"
    # The CI scenarios' zones, plus one large lawn where a fooled static-object detector would alert.
    *ci_zones, grass = cameras[name]["zones"]
    assert ci_zones == cameras["parking-stop"]["zones"]
    assert grass["id"] == "grass" and grass["violations"] == ["stray_garbage"]


@pytest.mark.parametrize("name", gen.scenario_names(nuisance=False))
def test_plain_scenarios_keep_their_digest(name):
    """Nuisance support must not re-render the existing clips: their stamp digest is unchanged."""
    scenario = gen.load_definition(name)
    expected = hashlib.sha256(scenario.path.read_bytes() + gen.GENERATOR_VERSION.encode()).hexdigest()
    assert scenario.raw_digest == expected and scenario.nuisances == ()


def test_short_nuisance_clip_renders(tmp_path):
    """A committed nuisance scenario (sprites reused from parking-stop, night + IR), 5 frames."""
    asset("sample_videos/clips/vtest.avi")
    video = gen.generate("nuisance-parking-night-ir", tmp_path, max_frames=5)
    frames = list(gen.iter_clip(video))
    assert len(frames) == 5
    channels = frames[-1].astype(int)
    assert np.abs(channels[..., 0] - channels[..., 2]).mean() < 2  # monochrome, to H.264 chroma rounding
    assert yaml.safe_load((tmp_path / "nuisance-parking-night-ir.gt.yaml").read_text())["events"][0]["type"] == "illegal_parking"
    assert not (tmp_path / "nuisance-parking-night-ir.stamp.json").exists()  # truncated: never up to date
