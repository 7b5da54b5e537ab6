"""The scenario generator: deterministic frames, sprites where the definition puts them, GT copied,
up-to-date skipping. Cheap: a few frames of a small scenario written to tmp_path."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from conftest import ROOT
from scenario_clips import generator

VTEST = ROOT / "sample_videos" / "clips" / "vtest.avi"
FRUITS = ROOT / "sample_videos" / "stills" / "fruits.jpg"

pytestmark = pytest.mark.skipif(
    not (VTEST.exists() and FRUITS.exists()), reason="assets not fetched (python scripts/fetch_assets.py)"
)


gen = generator()

GROUND_TRUTH = {"camera": "tiny", "events": [{"type": "stray_garbage", "zone": "garbage", "begin_s": 0.5, "end_s": None}]}


def _definition(tmp_path: Path, **overrides) -> Path:
    """A 2-second scenario: a fruit crate appearing at 0.5 s (high z) and a van driving (low z)."""
    data = {
        "name": "tiny",
        "note": "test",
        "duration_s": 2,
        "base": {"clip": str(VTEST), "start_s": 0},
        "sprites": [
            {
                "id": "crate",
                "source": {"image": str(FRUITS), "box": [60, 30, 512, 480]},
                "appear_s": 0.5,
                "feather_px": 0,
                "z": 5,
                "keyframes": [{"t": 0, "x": 300, "y": 400, "scale": 0.2}],
            },
            {
                "id": "van",
                "source": {"clip": str(VTEST), "frame": 0, "box": [647, 42, 727, 104]},
                "feather_px": 3,
                "z": 1,
                "keyframes": [{"t": 0, "x": 200, "y": 400, "scale": 1.0}, {"t": 1, "x": 300, "y": 400}],
            },
        ],
        "ground_truth": GROUND_TRUTH,
    }
    data.update(overrides)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _base_frames(count: int) -> list[np.ndarray]:
    frames = []
    for frame in gen.iter_clip(VTEST):
        frames.append(frame)
        if len(frames) == count:
            return frames
    return frames


def test_render_is_deterministic(tmp_path):
    scenario = gen.load_definition(_definition(tmp_path))
    first = list(gen.render_frames(scenario, max_frames=12))
    second = list(gen.render_frames(scenario, max_frames=12))
    assert len(first) == 12
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_sprites_placed_as_declared(tmp_path):
    scenario = gen.load_definition(_definition(tmp_path))
    frames = list(gen.render_frames(scenario, max_frames=15))
    base = _base_frames(15)
    crate, van = scenario.sprites
    # Before appear_s the crate is absent; at 0.5 s it is there, box centred on x=300, bottom at y=400.
    assert gen.sprite_box(crate, 0.4) is None
    x1, y1, x2, y2 = gen.sprite_box(crate, 0.5)
    assert (x2 - x1, y2 - y1) == (round(452 * 0.2), round(450 * 0.2))
    assert abs((x1 + x2) / 2 - 300) <= 1 and y2 == 400
    # With feather 0 the crate's pixels are pasted (to rounding) (it is on top: z 5 over the van's z 1).
    pixels, _ = gen.cut_sprite(crate.source, 0)
    import cv2

    expected = cv2.resize(pixels, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    expected = np.clip(expected + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(frames[5][y1:y2, x1:x2].astype(int) - expected).max() <= 1
    # Outside all sprites the base clip shows unchanged.
    assert np.array_equal(frames[5][:300, :], base[5][:300, :])
    assert np.array_equal(frames[0], np.where(_van_mask(van, 0.0, frames[0].shape), frames[0], base[0]))
    # The van moves linearly from x=200 (t=0) to x=300 (t=1), then stays.
    centre = lambda t: (gen.sprite_box(van, t)[0] + gen.sprite_box(van, t)[2]) / 2  # noqa: E731
    assert abs(centre(0.0) - 200) <= 1 and abs(centre(0.5) - 250) <= 1 and abs(centre(1.4) - 300) <= 1
    # The van's centre pixel differs from the base where it is drawn (it is not on top of the crate at t=0).
    vx1, vy1, vx2, vy2 = gen.sprite_box(van, 0.0)
    cy, cx = (vy1 + vy2) // 2, (vx1 + vx2) // 2
    assert not np.array_equal(frames[0][cy, cx], base[0][cy, cx])


def _van_mask(van, t, shape):
    mask = np.zeros(shape, bool)
    x1, y1, x2, y2 = gen.sprite_box(van, t)
    mask[max(y1, 0) : y2, max(x1, 0) : x2] = True
    return mask


def test_tint_repaints_the_sprite():
    """The swap scenario's red van: the white van's pixels times per-channel gains (B, G, R)."""
    plain = gen.SpriteSource(clip=None, image=str(FRUITS), frame=0, box=(60, 30, 260, 230))
    red = gen.SpriteSource(clip=None, image=str(FRUITS), frame=0, box=(60, 30, 260, 230), tint=(0.35, 0.35, 0.85))
    (pixels, _), (tinted, _) = gen.cut_sprite(plain, 0), gen.cut_sprite(red, 0)
    assert np.allclose(tinted, np.clip(pixels * np.float32([0.35, 0.35, 0.85]), 0, 255))


def test_polygon_mask_cuts_the_outline():
    triangle = gen.SpriteSource(
        clip=None, image=str(FRUITS), frame=0, box=(60, 30, 260, 230), mask_polygon=((60, 30), (259, 30), (60, 229))
    )
    pixels, alpha = gen.cut_sprite(triangle, 0)
    assert pixels.shape[:2] == alpha.shape == (200, 200)
    assert alpha[10, 10] == 1.0 and alpha[190, 190] == 0.0  # inside / outside the hypotenuse


def test_disappear_removes_sprite(tmp_path):
    path = _definition(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["sprites"][0]["disappear_s"] = 1.0
    path.write_text(yaml.safe_dump(data))
    scenario = gen.load_definition(path)
    crate = scenario.sprites[0]
    assert gen.sprite_box(crate, 0.9) is not None and gen.sprite_box(crate, 1.0) is None


def test_generate_writes_clip_gt_and_skips_when_up_to_date(tmp_path):
    definition = _definition(tmp_path, duration_s=1.0)
    out = tmp_path / "out"
    video = gen.generate(definition, out)
    assert video == out / "tiny.mp4"
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert len(frames) == 10
    assert (frames[0].width, frames[0].height) == (768, 576)
    assert [round(f.time * 10) for f in frames] == list(range(10))  # regular timestamps, 10 fps
    truth = yaml.safe_load((out / "tiny.gt.yaml").read_text())
    assert truth["camera"] == "tiny" and truth["events"] == GROUND_TRUTH["events"]
    stamp = json.loads((out / "tiny.stamp.json").read_text())
    assert stamp["generator_version"] == gen.GENERATOR_VERSION
    # Up to date: not rewritten.
    mtime = video.stat().st_mtime_ns
    gen.generate(definition, out)
    assert video.stat().st_mtime_ns == mtime
    # A changed definition is regenerated.
    definition.write_text(definition.read_text().replace("note: test", "note: changed"))
    gen.generate(definition, out)
    assert video.stat().st_mtime_ns != mtime


def test_generated_ground_truth_loads_with_scoring(tmp_path):
    from detector.scoring import load_ground_truth

    gen.generate(_definition(tmp_path, duration_s=0.3), tmp_path / "out", max_frames=3)
    truth = load_ground_truth(tmp_path / "out" / "tiny.gt.yaml")
    assert truth.camera == "tiny" and truth.events[0].begin_s == 0.5


@pytest.mark.parametrize(
    "override, message",
    [
        ({"duration_s": 100}, "duration_s must be in"),
        ({"ground_truth": {"events": "none"}}, "ground_truth.events must be a list"),
        (
            {"sprites": [{"id": "x", "source": {"image": "a.png", "clip": "b.avi", "box": [0, 0, 1, 1]}, "keyframes": []}]},
            "exactly one of clip or image",
        ),
        (
            {
                "sprites": [
                    {"id": "x", "source": {"image": "a.png", "box": [5, 0, 1, 1]}, "keyframes": [{"t": 0, "x": 0, "y": 0}]}
                ]
            },
            "x2 > x1",
        ),
        (
            {
                "sprites": [
                    {
                        "id": "x",
                        "source": {"image": "a.png", "box": [0, 0, 9, 9], "mask": {"polygon": [[0, 0], [5, 5]]}},
                        "keyframes": [{"t": 0, "x": 0, "y": 0}],
                    }
                ]
            },
            "polygon needs at least 3 points",
        ),
        (
            {
                "sprites": [
                    {
                        "id": "x",
                        "source": {"image": "a.png", "box": [0, 0, 9, 9], "tint": [1, 2]},
                        "keyframes": [{"t": 0, "x": 0, "y": 0}],
                    }
                ]
            },
            "tint must be three gains",
        ),
    ],
)
def test_bad_definitions(tmp_path, override, message):
    with pytest.raises(gen.ScenarioError, match=message):
        gen.load_definition(_definition(tmp_path, **override))


def test_committed_scenarios_load_and_carry_ground_truth():
    from detector.scoring import parse_ground_truth

    names = sorted(p.stem for p in gen.SCENARIO_DIR.glob("*.yaml"))
    assert {
        "parking-stop",
        "parking-brief",
        "vending-stall",
        "vending-person-only",
        "garbage-drop",
        "garbage-pickup",
        "nonmotor-parked",
        "nonmotor-ridden",
    } <= set(names)
    for name in names:
        scenario = gen.load_definition(name)
        assert scenario.duration_s <= 75
        truth = parse_ground_truth(gen.ground_truth_document(scenario, Path(f"{name}.mp4")), name)
        assert truth.camera == name
