"""scripts/make_training_data.py: a small dataset (24 images) written to tmp_path from the real
catalogue, clips and base model, checked for real: counts, label lines, pasted boxes that bound
pasted pixels, the split by background, the same bytes for the same seed."""

import importlib.util
import json
import sys
from collections import Counter, defaultdict

import numpy as np
import pytest
from conftest import ROOT
from scenario_clips import generator

NEEDED = [
    "models/yolov8n_dynamic.onnx",
    *(f"sample_videos/clips/{n}" for n in ("vtest.avi", "bgs_video.avi", "bgs_video03.avi", "car-detection.mp4")),
    "sample_videos/clips/person-bicycle-car-detection.gif",
    *(f"sample_videos/stills/{n}" for n in ("fruits.jpg", "smarties.png", "box.png", "box_in_scene.png")),
]
pytestmark = pytest.mark.skipif(
    not all((ROOT / n).is_file() for n in NEEDED), reason="assets not fetched (python scripts/fetch_assets.py)"
)

IMAGES, SEED = 24, 7


def _module():
    """scripts/make_training_data.py as a module (scripts/ is not a package), make_scenarios shared."""
    module = sys.modules.get("make_training_data")
    if module is None:
        generator()
        spec = importlib.util.spec_from_file_location("make_training_data", ROOT / "scripts/make_training_data.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


mtd = _module()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("training") / "ds"
    return out, mtd.generate(out, IMAGES, SEED)


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _label_rows(path):
    return [line.split() for line in path.read_text().splitlines()]


def test_counts(made):
    out, summary = made
    # every 5th image is val: 4, 9, 14, 19
    assert {s: len(list((out / "images" / s).glob("*.jpg"))) for s in ("train", "val")} == {"train": 20, "val": 4}
    assert {s: len(list((out / "labels" / s).glob("*.txt"))) for s in ("train", "val")} == {"train": 20, "val": 4}
    assert summary.images == Counter(train=20, val=4)
    sources, composites = _jsonl(out / "sources.jsonl"), _jsonl(out / "composites.jsonl")
    assert len(sources) == len(composites) == IMAGES
    assert {s["kind"] for s in sources} == {"synthetic"}
    # the label files hold what the summary counts, class by class
    found = Counter()
    for split in ("train", "val"):
        for label in (out / "labels" / split).glob("*.txt"):
            found.update((split, mtd.CLASSES[int(row[0])]) for row in _label_rows(label))
    assert found == summary.boxes
    pasted = Counter(o["cutout"] for c in composites for o in c["objects"])
    assert pasted == summary.pasted and sum(pasted.values()) >= IMAGES  # 0-3 per image, 1.55 on average
    assert {"fruit-crate", "litter-vtest"} <= set(pasted)
    per_image = [len(c["objects"]) for c in composites]
    assert summary.without_cutout == per_image.count(0) and max(per_image) <= 3
    # every pasted object is a label of its class; the frames' people and vehicles are labelled too
    assert sum(found[(s, "vendor")] for s in ("train", "val")) == sum(
        1 for c in composites for o in c["objects"] if o["class"] == "vendor"
    )
    assert sum(found[(s, "person")] for s in ("train", "val")) > 10
    # the top-down clips (empty_only): frames where nothing moves, labelled with what was pasted only
    top_down = [c for c in composites if c["clip"].endswith(("car-detection.mp4", "bgs_video.avi"))]
    assert top_down
    for record in top_down:
        label = out / record["image"].replace("images/", "labels/", 1).replace(".jpg", ".txt")
        assert len(_label_rows(label)) == len(record["objects"])
    assert sum(found[(s, "vehicle")] for s in ("train", "val")) > 10


def test_label_lines_in_range(made):
    out, _ = made
    lines = 0
    for label in (out / "labels").rglob("*.txt"):
        for row in _label_rows(label):
            assert len(row) == 5
            c, (x, y, w, h) = int(row[0]), (float(v) for v in row[1:])
            assert 0 <= c < len(mtd.CLASSES)
            assert 0 < w <= 1 and 0 < h <= 1
            assert -1e-6 <= x - w / 2 and x + w / 2 <= 1 + 1e-6 and -1e-6 <= y - h / 2 and y + h / 2 <= 1 + 1e-6
            lines += 1
    assert lines > 3 * IMAGES


def _backgrounds(records):
    """The clean background frame of each record, decoded again from its clip."""
    wanted = defaultdict(set)
    for record in records:
        wanted[record["clip"]].add(record["frame"])
    frames = {}
    for clip, indices in wanted.items():
        for i, frame in enumerate(mtd.scenes.iter_clip(clip)):
            if i in indices:
                frames[(clip, i)] = frame
            if i >= max(indices):
                break
    return frames


def test_pasted_boxes_bound_pasted_pixels(made):
    """Each pasted object's label box bounds the pixels that differ from the clean frame, tightly;
    its label line is that box; and outside the pasted objects the image is the background (to
    JPEG error)."""
    import cv2

    out, _ = made
    records = _jsonl(out / "composites.jsonl")
    backgrounds = _backgrounds(records)
    checked = 0
    for record in records:
        image = cv2.imread(str(out / record["image"])).astype(np.int16)
        background = backgrounds[(record["clip"], record["frame"])].astype(np.int16)
        height, width = image.shape[:2]
        diff = np.abs(image - background).max(axis=2)
        outside = np.ones(diff.shape, bool)
        label = out / record["image"].replace("images/", "labels/", 1).replace(".jpg", ".txt")
        rows = {tuple(round(float(v), 4) for v in row[1:]) for row in _label_rows(label)}
        for obj in record["objects"]:
            x1, y1, x2, y2 = obj["xyxy"]
            px1, py1, px2, py2 = obj["placed"]
            assert px1 <= x1 < x2 <= px2 and py1 <= y1 < y2 <= py2 and 0 <= x1 and x2 <= width and 0 <= y1 and y2 <= height
            solid = 0.1 if obj["class"] == "nonmotor" else 0.3  # a bicycle is mostly see-through
            assert (diff[y1:y2, x1:x2] > 25).mean() > solid, obj  # the box holds the object ...
            ys, xs = np.nonzero(diff[py1:py2, px1:px2] > 25)
            changed = (px1 + xs.min(), py1 + ys.min(), px1 + xs.max() + 1, py1 + ys.max() + 1)
            # ... tightly: what changed spans it (edges where the object looks like the ground
            # change little) and reaches past it only by the feathered rim (alpha < 0.5)
            assert changed[2] - changed[0] >= 0.8 * (x2 - x1) - 1 and changed[3] - changed[1] >= 0.8 * (y2 - y1) - 1, obj
            assert max(x1 - changed[0], y1 - changed[1], changed[2] - x2, changed[3] - y2) <= 6, obj
            line = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
            assert any(np.allclose(line, row, atol=2e-4) for row in rows), (obj, rows)
            outside[max(py1 - 8, 0) : py2 + 8, max(px1 - 8, 0) : px2 + 8] = False  # the blur reaches 4 px
            checked += 1
        # JPEG moves single pixels a little (colour at saturated edges more: compare brightness),
        # never a whole 9x9 patch by much
        grey = np.abs(
            cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
            - cv2.cvtColor(background.astype(np.uint8), cv2.COLOR_BGR2GRAY)
        )
        assert cv2.blur(grey, (9, 9))[outside].max() < 8, record["image"]
    assert checked >= IMAGES


def test_split_by_background(made):
    """No val background is a train background, or a near-copy of one: same clip, at least the
    guard band apart (2 s on vtest, where the guard is 1 s each side)."""
    out, _ = made
    by_split = defaultdict(lambda: defaultdict(list))
    for source in _jsonl(out / "sources.jsonl"):
        by_split[source["image"].split("/")[1]][source["camera"]].append(source["stream_time_s"])
    assert by_split["val"] and by_split["train"]
    for camera, times in by_split["val"].items():
        train = by_split["train"].get(camera, [])
        assert camera != "person-bicycle-car-detection"  # too short to split: train only
        gap = min((abs(v - t) for v in times for t in train), default=np.inf)
        assert gap >= (2.0 if camera == "vtest" else 0.6), (camera, gap)


def test_split_frames_table():
    """80 s at 10 fps: blocks of 8 s, blocks 2 and 7 (8-16 s, 48-56 s) are val; frames less than
    1 s from a change between train and val are used by neither."""
    times = np.arange(800) / 10
    splits = mtd.split_frames(times)

    def tenths(lo, hi):
        return {round(lo + k / 10, 1) for k in range(round((hi - lo) * 10) + 1)}

    assert set(np.round(times[splits == "val"], 1)) == tenths(9.0, 15.0) | tenths(49.0, 55.0)
    assert set(np.round(times[splits == ""], 1)) == tenths(7.1, 8.9) | tenths(15.1, 16.9) | tenths(47.1, 48.9) | tenths(
        55.1, 56.9
    )
    assert (splits == "train").sum() == 800 - 122 - 76
    assert (mtd.split_frames(np.arange(41) / 12.5) == "train").all()  # the gif, 3.3 s: too short to split


def test_same_seed_same_bytes(made, tmp_path):
    out, summary = made
    assert mtd.generate(tmp_path / "again", IMAGES, SEED).digest == summary.digest


def test_committed_catalogue_has_the_scenario_cutouts():
    cutouts, backgrounds = mtd.load_catalogue()
    by_id = {c.id: c for c in cutouts}
    classes = Counter(c.class_name for c in cutouts)
    assert classes["vendor"] >= 2 and classes["garbage"] >= 3
    stall = mtd.scenes.load_definition("vending-stall").sprites[0]
    bag = mtd.scenes.load_definition("garbage-drop").sprites[0]
    assert by_id["fruit-crate"].source == stall.source and by_id["fruit-crate"].class_name == "vendor"
    assert by_id["litter-vtest"].source == bag.source and by_id["litter-vtest"].class_name == "garbage"
    assert {b.clip.split("/")[-1] for b in backgrounds} >= {"vtest.avi", "bgs_video03.avi"}


def test_covered_prelabels_are_dropped():
    covered = np.zeros((100, 100), bool)
    covered[0:50, 0:50] = True
    labels = mtd.Labels(np.array([1, 0, 1], np.int32), np.array([[0, 0, 40, 40], [0, 0, 100, 50], [60, 60, 90, 90]], np.float32))
    kept, dropped = mtd.visible(labels, covered)
    assert dropped == 1 and kept.class_id.tolist() == [0, 1]  # the one all under; half under stays


@pytest.mark.parametrize(
    "change, message",
    [
        ({"class": "stall"}, "is not one of the dataset.s \\(vehicle, person"),
        ({"mask": "polygon"}, "makes it 'box'"),
        ({"source": {"image": "sample_videos/stills/nope.png", "box": [0, 0, 9, 9]}}, "nope.png is missing"),
        ({"size_px": [2, 10]}, "size_px must be"),
    ],
)
def test_bad_cutouts(change, message):
    item = {
        "id": "x",
        "class": "garbage",
        "source": {"image": "sample_videos/stills/box.png", "box": [0, 0, 9, 9]},
        "mask": "box",
    }
    with pytest.raises(mtd.TrainingDataError, match=message):
        mtd.parse_cutout(item | change, "test")


def test_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(mtd.TrainingDataError, match="not empty"):
        mtd.generate(tmp_path, 2, 0)
