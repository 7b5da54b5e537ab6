"""`detector dataset harvest` on the real demo clip, a scenario clip and a real RTSP stream: images,
the model's pre-labels mapped to the rules' roles, near-duplicates dropped, the split by time
blocks; the difference hash and the class mapping by tables."""

import contextlib
import io
import json
import os
import shutil

import cv2
import numpy as np
import pytest
from conftest import ROOT, asset, require
from rtsp_server import PASSWORD, USER, RtspServer, gst_available, make_h264_clip
from scenario_clips import scenario_clip

from detector.cli import main
from detector.dataset.harvest import HASH_SIDE, NearDuplicates, dataset_classes, dhash, frame_boxes, hamming, to_labels
from detector.dataset.yolo import CLASSES, YoloDataset
from detector.detections import Detections
from detector.rules.roles import RoleMap
from detector.rules.violations import ROLES
from detector.zones.geometry import box_iou

BITS = HASH_SIDE * HASH_SIDE
VAN = np.array([[0.8493, 0.0775, 0.9408, 0.1733]]) * [768, 576, 768, 576]  # the demo alert's truck box, in pixels
PERSON, VEHICLE, GARBAGE = CLASSES.index("person"), CLASSES.index("vehicle"), CLASSES.index("garbage")


def harvest(capsys, *args: str) -> tuple[int, list[str], str]:
    os.chdir(ROOT)
    code = main(["dataset", "harvest", *args, "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def labelled(dataset: YoloDataset) -> dict[str, tuple[str, np.ndarray, object]]:
    """{stem: (split, image, labels)} of every image in the dataset."""
    out = {}
    for item in dataset:
        image, labels = item.read(dataset.names)
        out[item.image.stem] = (item.split, image, labels)
    return out


@pytest.fixture(scope="module")
def vtest_dataset(tmp_path_factory):
    """The demo clip harvested once, one frame every 10 s (0, 10, ..., 70 s), default split."""
    asset("sample_videos/clips/vtest.avi")
    out = tmp_path_factory.mktemp("harvest") / "ds"
    os.chdir(ROOT)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["dataset", "harvest", "configs/demo.yaml", "--camera", "vtest", "--every", "10", "--out", str(out)])
    assert code == 0
    return out, printed.getvalue().splitlines()


# --- the difference hash, by tables ---

GRADIENT = np.tile(np.arange(0, 256, 2, dtype=np.uint8), (64, 1))  # brighter to the right


@pytest.mark.parametrize(
    "image, ones",
    [
        (np.full((48, 64), 128, np.uint8), 0),  # flat: no cell brighter than its left neighbour
        (GRADIENT, BITS),  # every cell brighter than its left
        (GRADIENT[:, ::-1].copy(), 0),  # every cell darker
        (cv2.cvtColor(GRADIENT, cv2.COLOR_GRAY2BGR), BITS),  # a BGR image hashes as its grey copy
        (np.vstack([GRADIENT[:32], GRADIENT[32:, ::-1]]), BITS // 2),  # brighter to the right in the top half only
    ],
)
def test_dhash_of_simple_images(image, ones):
    bits = dhash(image)
    assert bits.shape == (BITS,) and bits.dtype == bool
    assert int(bits.sum()) == ones


@pytest.mark.parametrize(
    "a, rows, expected",
    [
        ([1, 0, 1, 0], [[1, 0, 1, 0]], [0]),
        ([1, 0, 1, 0], [[0, 1, 0, 1], [1, 1, 1, 0], [1, 0, 1, 0]], [4, 1, 0]),
        ([0, 0, 0, 0], [[1, 1, 1, 1]], [4]),
    ],
)
def test_hamming_distance(a, rows, expected):
    assert hamming(np.array(a, bool), np.array(rows, bool)).tolist() == expected


def flipped(image_hash: np.ndarray, bits: int) -> np.ndarray:
    out = image_hash.copy()
    out[:bits] = ~out[:bits]
    return out


@pytest.mark.parametrize("changed, near", [(0, True), (1, True), (10, True), (11, False), (BITS, False)])
def test_near_duplicates_at_the_distance(changed, near):
    kept = dhash(GRADIENT)
    seen = NearDuplicates(10, [kept])
    assert seen.distance(flipped(kept, changed)) == changed
    assert seen.is_near(flipped(kept, changed)) is near


def test_near_duplicates_start_empty_and_learn():
    seen = NearDuplicates(0)
    image_hash = dhash(GRADIENT)
    assert len(seen) == 0 and seen.distance(image_hash) is None and not seen.is_near(image_hash)
    seen.add(image_hash)
    seen.add(flipped(image_hash, 100))
    assert len(seen) == 2 and seen.is_near(flipped(image_hash, 100)) and not seen.is_near(flipped(image_hash, 50))


def test_jpeg_copy_of_a_frame_is_a_near_duplicate_and_the_next_frames_are_not(vtest_dataset):
    dataset = YoloDataset.open(vtest_dataset[0])
    images = [cv2.imread(str(item.image)) for item in dataset]
    hashes = [dhash(image) for image in images]
    copy = cv2.imdecode(cv2.imencode(".jpg", images[0], [cv2.IMWRITE_JPEG_QUALITY, 75])[1], cv2.IMREAD_COLOR)
    assert hamming(dhash(copy), np.array(hashes[:1]))[0] <= 3
    apart = [int(hamming(h, np.array(hashes[i + 1 :])).min()) for i, h in enumerate(hashes[:-1])]
    assert min(apart) > 10  # frames 10 s apart, people walking: none is a near-duplicate of another


# --- mapping the model's classes to the dataset's ---

MODEL = ["person", "car", "truck", "handbag", "umbrella", "bicycle", "motorcycle", "dog"]


@pytest.mark.parametrize(
    "roles, expected",
    [
        # COCO defaults: a dog plays no role; the static-object detector's boxes play garbage
        ({}, {"person": "person", "car": "vehicle", "truck": "vehicle", "handbag": "garbage", "umbrella": "vending_item",
              "bicycle": "nonmotor", "motorcycle": "nonmotor", "dog": None, "static_object": "garbage"}),
        # motorcycles mapped back to vehicles (docs/violations.md); the dog made a vendor
        ({"vehicle": ("car", "truck", "motorcycle"), "nonmotor": ("bicycle",), "vendor": ("dog",)},
         {"motorcycle": "vehicle", "bicycle": "nonmotor", "dog": "vendor"}),
        # a class in two roles takes the first in the dataset's order
        ({"vendor": ("person",)}, {"person": "person"}),
        ({"person": (), "vendor": ("person",)}, {"person": "vendor"}),
        # garbage configured with no class: only the static objects play it
        ({"garbage": ()}, {"handbag": None, "static_object": "garbage"}),
    ],
)  # fmt: skip
def test_dataset_classes_follow_the_configured_roles(roles, expected):
    classes = {role.name: role.coco for role in ROLES} | roles
    role_map = RoleMap.build(MODEL, ROLES, classes)
    mapped = dataset_classes(role_map, CLASSES)
    by_label = {label: (None if c < 0 else CLASSES[c]) for label, c in zip(role_map.labels, mapped)}
    assert {label: by_label[label] for label in expected} == expected


def test_to_labels_leaves_out_the_classes_that_play_no_role():
    role_map = RoleMap.build(MODEL, ROLES, {role.name: role.coco for role in ROLES})
    detections = Detections(
        xyxy=np.array([[0, 0, 10, 20], [5, 5, 50, 40], [1, 1, 2, 2]], np.float32),
        confidence=np.array([0.9, 0.8, 0.7], np.float32),
        class_id=np.array([0, 7, 8], np.int32),  # person, dog, static_object
    )
    labels = to_labels(detections, dataset_classes(role_map, CLASSES))
    assert labels.class_id.tolist() == [PERSON, GARBAGE]
    assert labels.xyxy.tolist() == [[0, 0, 10, 20], [1, 1, 2, 2]]
    assert len(to_labels(Detections.empty(), dataset_classes(role_map, CLASSES))) == 0


def boxes(*rows):
    xyxy = np.array([r[:4] for r in rows], np.float32).reshape(-1, 4)
    return Detections(xyxy, np.full(len(rows), 0.9, np.float32), np.array([r[4] for r in rows], np.int32))


@pytest.mark.parametrize(
    "model, found, kept",
    [
        ([], [], []),
        ([(0, 0, 10, 10, 0)], [], [(0, 0, 10, 10, 0)]),
        ([], [(0, 0, 10, 10, 9)], [(0, 0, 10, 10, 9)]),  # a static object where the model sees nothing
        ([(0, 0, 100, 100, 0)], [(10, 10, 20, 20, 9)], [(0, 0, 100, 100, 0)]),  # on a person: the model's object
        ([(0, 0, 100, 100, 0)], [(90, 90, 110, 110, 9)], [(0, 0, 100, 100, 0), (90, 90, 110, 110, 9)]),  # a quarter on it
        ([(0, 0, 100, 100, 0)], [(80, 0, 120, 10, 9)], [(0, 0, 100, 100, 0)]),  # half on it
        ([(0, 0, 10, 10, 0)], [(0, 0, 10, 10, 1)], [(0, 0, 10, 10, 0)]),  # the pipeline's model boxes are not taken
    ],
)
def test_frame_boxes_are_the_models_and_the_static_objects_off_its_objects(model, found, kept):
    result = frame_boxes(boxes(*model), boxes(*found), static_id=9)
    assert [(*map(int, b), int(c)) for b, c in zip(result.xyxy, result.class_id)] == kept


# --- the demo clip ---


def test_harvest_writes_the_frames_with_the_models_people_and_the_van(vtest_dataset):
    dataset = YoloDataset.open(vtest_dataset[0])
    assert dataset.names == CLASSES
    items = labelled(dataset)
    assert sorted(items) == [f"vtest-vtest-{t * 1000:09d}" for t in range(0, 80, 10)]
    for stem, (_, image, labels) in items.items():
        assert image.shape == (576, 768, 3)
        people = labels.xyxy[labels.class_id == PERSON]
        assert 3 <= len(people) <= 15, stem  # the road has a few people walking at any time
        width, height = people[:, 2] - people[:, 0], people[:, 3] - people[:, 1]
        # standing people, near and far
        assert (height > 1.5 * width).all() and (height > 25).all() and (height < 200).all(), stem
        assert (people >= -1).all() and (people[:, [2, 3]] <= [769, 577]).all()
        vans = labels.xyxy[labels.class_id == VEHICLE]
        assert box_iou(vans, VAN).max() > 0.7, stem  # the van parked at the top right, in every frame
        assert set(labels.class_id.tolist()) <= {PERSON, VEHICLE, GARBAGE}  # COCO's classes that play no role are left out


def test_harvest_splits_by_blocks_of_stream_time(vtest_dataset):
    # 60 s blocks, every 5th to val: block 0 (0-60 s) train, block 1 (60-79 s) val
    vtest_dataset, _ = vtest_dataset
    splits = {stem: split for stem, (split, _, _) in labelled(YoloDataset.open(vtest_dataset)).items()}
    assert [stem for stem, split in sorted(splits.items()) if split == "val"] == [
        "vtest-vtest-000060000",
        "vtest-vtest-000070000",
    ]
    sources = [json.loads(line) for line in (vtest_dataset / "sources.jsonl").read_text().splitlines()]
    assert [s["stream_time_s"] for s in sources] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    assert {(s["kind"], s["camera"], s["source"]) for s in sources} == {("harvest", "vtest", "sample_videos/clips/vtest.avi")}
    assert [s["image"].split("/")[1] for s in sources] == ["train"] * 6 + ["val"] * 2


def test_harvest_other_blocks(tmp_path, capsys):
    code, out, _ = harvest(
        capsys, "configs/demo.yaml", "--camera", "vtest", "--every", "10", "--seconds", "40",
        "--block-s", "20", "--val-every", "2", "--out", str(tmp_path / "ds"),
    )  # fmt: skip
    assert code == 0
    assert out[0].startswith("vtest: 80 frames at 2 fps, 39.5 s of stream; 4 judged (one every 10 s): 4 kept, 0 near-duplicates")
    assert out[1].startswith("  train: 2 images") and out[2].startswith("  val: 2 images")  # 0, 10 s train; 20, 30 s val
    assert sorted(p.name for p in (tmp_path / "ds/images/val").iterdir()) == [
        "vtest-vtest-000020000.jpg",
        "vtest-vtest-000030000.jpg",
    ]


def test_the_same_clip_twice_adds_nothing_the_second_time(vtest_dataset, tmp_path, capsys):
    first_harvest, first = vtest_dataset
    dataset = tmp_path / "ds"
    shutil.copytree(first_harvest, dataset)
    assert first[0] == (
        "vtest: 159 frames at 2 fps, 79.0 s of stream; 8 judged (one every 10 s): 8 kept, 0 near-duplicates dropped"
    )
    boxes = [int(line.split(", ")[1].split()[0]) for line in first[1:3]]
    assert first[1].startswith("  train: 6 images, ") and first[2].startswith("  val: 2 images, ")
    assert "person" in first[1] and "vehicle" in first[1] and 30 <= boxes[0] <= 90 and 10 <= boxes[1] <= 30
    assert first[3] == f"{first_harvest}: train 6, val 2 images in all (data.yaml, sources.jsonl)"
    code, second, _ = harvest(capsys, "configs/demo.yaml", "--camera", "vtest", "--every", "10", "--out", str(dataset))
    assert code == 0
    assert second[0].endswith("8 judged (one every 10 s): 0 kept, 8 near-duplicates dropped")
    assert second[1:3] == ["  train: 0 images, 0 boxes (none)", "  val: 0 images, 0 boxes (none)"]
    assert second[3] == f"{dataset}: train 6, val 2 images in all (data.yaml, sources.jsonl)"
    assert len((dataset / "sources.jsonl").read_text().splitlines()) == 8
    # every 5 s over the first 40 s: 0, 10, 20, 30 s are there already, 5, 15, 25, 35 s are new
    code, third, _ = harvest(
        capsys, "configs/demo.yaml", "--camera", "vtest", "--every", "5", "--seconds", "40", "--out", str(dataset)
    )
    assert code == 0 and third[0].endswith("8 judged (one every 5 s): 4 kept, 4 near-duplicates dropped")
    assert YoloDataset.open(dataset).counts() == {"train": 10, "val": 2}


def test_static_objects_are_labelled_garbage(tmp_path, capsys):
    """garbage-drop: a yellow bag dropped on the grass at 20 s; the model has no class for it, the
    static-new-object detector finds it once it has stayed, and it becomes a garbage box."""
    clip = scenario_clip("garbage-drop")
    out = tmp_path / "ds"
    code, lines, _ = harvest(
        capsys, "configs/scenarios.yaml", "--camera", "garbage-drop", "--source", str(clip), "--every", "10",
        "--seconds", "45", "--out", str(out),
    )  # fmt: skip
    assert code == 0 and "5 judged (one every 10 s): 5 kept" in lines[0]
    items = labelled(YoloDataset.open(out))
    zone = np.array([[0.70, 0.83, 0.99, 0.99]])  # the garbage zone of configs/scenarios.yaml, normalised
    garbage = {}
    for stem, (_, image, labels) in items.items():
        height, width = image.shape[:2]
        boxes = labels.xyxy[labels.class_id == GARBAGE] / [width, height, width, height]
        garbage[int(stem[-9:]) // 1000] = [b for b in boxes if box_iou(b[None], zone)[0, 0] > 0]
    assert garbage[0] == [] and garbage[10] == []  # before the drop
    assert len(garbage[30]) == 1 and len(garbage[40]) == 1  # the bag, once it has stayed
    assert np.allclose(garbage[30][0], garbage[40][0], atol=0.01)


@pytest.mark.timeout(120)
def test_harvest_a_live_stream_with_its_credentials_redacted(tmp_path, capsys):
    require(gst_available(), "gst-rtsp-server is not installed (scripts/test.sh installs it as root)")
    vtest = asset("sample_videos/clips/vtest.avi")
    clip = make_h264_clip(vtest, ROOT / "sample_videos/generated/rtsp/vtest.mp4")
    server = RtspServer(clip, auth=True).start()
    try:
        config = tmp_path / "live.yaml"
        config.write_text(
            (ROOT / "configs/demo.yaml")
            .read_text()
            .replace("source: sample_videos/clips/vtest.avi", f"source: {server.url_with(USER, PASSWORD)}")
        )
        out = tmp_path / "ds"
        code, lines, err = harvest(capsys, str(config), "--camera", "vtest", "--every", "2", "--seconds", "6", "--out", str(out))
    finally:
        server.kill()
    assert code == 0, err
    kept = int(lines[0].split(": ")[2].split()[0])
    assert kept >= 2
    sources = [json.loads(line) for line in (out / "sources.jsonl").read_text().splitlines()]
    assert len(sources) == kept
    assert {s["source"] for s in sources} == {f"rtsp://***@127.0.0.1:{server.port}/cam"}
    assert all(s["image"].startswith("images/train/vtest-live-") for s in sources)
    assert PASSWORD not in (out / "sources.jsonl").read_text() + "\n".join(lines) + err


# --- what a user can get wrong: one line, a non-zero exit ---


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--camera", "nope"], 2, "no camera 'nope' in the config (cameras: vtest, live)"),
        (["--camera", "vtest", "--source", "missing.mp4"], 3, "video file not found: missing.mp4"),
        (["--camera", "vtest", "--out", "{file}"], 6, "is a file, not a folder"),
        (["--camera", "vtest", "--out", "{other}"], 6, "a dataset of other classes (car, bike); give another folder"),
        (["--camera", "live"], 2, "camera live's source is a live stream: give --seconds"),
    ],
)
def test_bad_harvest_input(tmp_path, capsys, args, code, message):
    config = tmp_path / "config.yaml"
    config.write_text(
        (ROOT / "configs/demo.yaml").read_text() + "  - {id: live, source: 'rtsp://admin:secret@192.0.2.1/stream', zones: []}\n"
    )
    (tmp_path / "file").write_text("x")
    YoloDataset.create(tmp_path / "other", ("car", "bike"))
    args = [a.format(file=tmp_path / "file", other=tmp_path / "other") for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "ds")]
    result, out, err = harvest(capsys, str(config), *args)
    lines = err.strip().splitlines()
    assert result == code and len(lines) == 1 and lines[0].startswith("detector: error: ") and message in lines[0]
    assert "secret" not in err and not out
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("option, value", [("--every", "0"), ("--every", "nan"), ("--val-every", "0"), ("--near", "300")])
def test_bad_harvest_numbers_are_refused_by_the_parser(capsys, option, value):
    with pytest.raises(SystemExit) as exit_:
        main(["dataset", "harvest", "configs/demo.yaml", "--camera", "vtest", "--out", "ds", option, value])
    assert exit_.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_a_live_stream_that_gives_no_frame(tmp_path, capsys):
    from rtsp_server import free_port

    config = tmp_path / "live.yaml"
    url = f"rtsp://admin:secret@127.0.0.1:{free_port()}/cam"  # nothing listens there
    config.write_text((ROOT / "configs/demo.yaml").read_text().replace("source: sample_videos/clips/vtest.avi", f"source: {url}"))
    code, out, err = harvest(capsys, str(config), "--camera", "vtest", "--seconds", "2", "--out", str(tmp_path / "ds"))
    errors = [line for line in err.splitlines() if line.startswith("detector: error: ")]
    assert code == 3 and not out and len(errors) == 1
    assert errors[0].startswith(f"detector: error: rtsp://***@127.0.0.1:{url.split(':')[3]}: no frame in 2 s")
    assert "secret" not in err and not (tmp_path / "ds").exists()
