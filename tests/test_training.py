"""`detector train` and `detector eval` on real parts: vtest.avi frames pre-labelled by the COCO
model (its boxes mapped onto the rules' roles) written as a YOLO dataset, the shipped
models/yolov8n.pt with its identity BatchNorm layers, Ultralytics' own trainer, the pipeline's
ONNX backend. AP tables of pure logic, the refusals as one line each.

The AP figures need pycocotools (extras `[test]` and `[ultralytics]`); recalibration and training
need the `[ultralytics]` extra and are skipped without it.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import ROOT, asset

if importlib.util.find_spec("ultralytics") is not None:
    # offline, and settings.json in a temp dir rather than ~/.config (before ultralytics is imported)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))
pytest.importorskip("pycocotools")

from detector.config.schema import RoleClasses  # noqa: E402
from detector.dataset.harvest import default_classes, to_labels  # noqa: E402
from detector.dataset.yolo import CLASSES, Labels, Source, YoloDataset, split_by_time  # noqa: E402
from detector.detect.base import file_digest  # noqa: E402
from detector.detect.onnx_backend import OnnxDetector  # noqa: E402
from detector.errors import ModelError  # noqa: E402
from detector.training.evaluate import ClassAP, Evaluation, Found, average_precision, evaluate  # noqa: E402

VTEST = "sample_videos/clips/vtest.avi"
LABELLER = "models/yolov8n_dynamic.onnx"
BASE = "models/yolov8n.pt"
EVERY = 16  # frames of vtest (10 fps) between dataset images: 50 images


def detector(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def ultralytics_extra() -> None:
    pytest.importorskip("ultralytics", reason="the [ultralytics] extra: pip install -e '.[ultralytics]'")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> YoloDataset:
    """Every 16th vtest frame, labelled by the COCO model at score >= 0.4 with COCO classes mapped
    onto the roles (person -> person, car/truck/bus -> vehicle, ...), split by 10 s blocks (every
    4th block is val): 38 train and 12 val images."""
    labeller = OnnxDetector(asset(LABELLER), min_score=0.4, nms_iou=0.5)
    class_of = default_classes(labeller.names)
    data = YoloDataset.create(tmp_path_factory.mktemp("training") / "vtest-roles")
    capture = cv2.VideoCapture(str(asset(VTEST)))
    frames, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % EVERY == 0:
            frames.append((index, frame))
        index += 1
    for start in range(0, len(frames), 8):
        chunk = frames[start : start + 8]
        for (index, frame), found in zip(chunk, labeller.detect_batch([f for _, f in chunk])):
            labels = to_labels(found, class_of)
            seconds = index / 10.0
            source = Source(image="", kind="harvest", camera="vtest", source=VTEST, stream_time_s=seconds)
            split = split_by_time(seconds, block_s=10.0, val_every=4)
            data.add(split, f"vtest_{index:04d}", frame, labels, source)
    assert data.counts() == {"train": 38, "val": 12}
    return data


# --- AP by table: one class `person` (0), one `vehicle` (1) the model may lack -------------------

GT = [10.0, 10.0, 110.0, 210.0]  # 100 x 200 px


def shifted(box, dx):
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


@pytest.mark.parametrize(
    "truth, found, ap50, ap50_95",
    [
        # the box itself
        ([(0, GT)], [(0, GT, 0.9)], 1.0, 1.0),
        # IoU 0.62 (shifted 23.5 px): a match at IoU 0.50, 0.55, 0.60 of the ten thresholds
        ([(0, GT)], [(0, shifted(GT, 23.5), 0.9)], 1.0, 0.3),
        # a false box scored above the true one: precision 0.5 all along the curve
        ([(0, GT)], [(0, shifted(GT, 300), 0.9), (0, GT, 0.8)], 0.5, 0.5),
        # a false box scored below the true one: the curve is 1 up to full recall
        ([(0, GT)], [(0, GT, 0.9), (0, shifted(GT, 300), 0.8)], 1.0, 1.0),
        # one of two boxes found: recall 0.5, 51 of the 101 recall points at precision 1
        ([(0, GT), (0, shifted(GT, 300))], [(0, GT, 0.9)], 51 / 101, 51 / 101),
        # found as the other class: nothing of `person`
        ([(0, GT)], [(1, GT, 0.9)], 0.0, 0.0),
        # nothing found at all
        ([(0, GT)], [], 0.0, 0.0),
    ],
)
def test_average_precision_by_table(truth, found, ap50, ap50_95):
    labels = Labels(np.array([c for c, _ in truth], np.int32), np.array([b for _, b in truth], np.float32).reshape(-1, 4))
    boxes = Found(
        np.array([b for _, b, _ in found], np.float32).reshape(-1, 4),
        np.array([s for _, _, s in found], np.float32),
        np.array([c for c, _, _ in found], np.int32),
    )
    person, vehicle = average_precision([labels], [boxes], [(480, 640)], ("person", "vehicle"), {0, 1})
    assert person == ClassAP(
        "person", images=1, boxes=len(truth), missing=False, ap50=pytest.approx(ap50), ap50_95=pytest.approx(ap50_95)
    )
    assert vehicle == ClassAP("vehicle", images=0, boxes=0, missing=False, ap50=None, ap50_95=None)  # no boxes: no AP


def test_a_class_the_model_lacks_is_missing_and_left_out_of_the_mean():
    labels = Labels(np.array([0, 1], np.int32), np.array([GT, shifted(GT, 300)], np.float32))
    hit = Found(np.array([GT], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))
    ghost = Found(np.array([GT], np.float32), np.array([0.95], np.float32), np.array([0], np.int32))  # on an empty image
    classes = average_precision([labels, Labels.empty()], [hit, ghost], [(480, 640)] * 2, ("person", "vehicle"), {0})
    assert classes == (
        ClassAP("person", images=1, boxes=1, missing=False, ap50=pytest.approx(0.5), ap50_95=pytest.approx(0.5)),
        ClassAP("vehicle", images=1, boxes=1, missing=True, ap50=None, ap50_95=None),
    )
    result = Evaluation(Path("m.onnx"), Path("ds"), "val", 2, 640, 0.001, 0.5, classes, 0.1)
    assert result.mean_ap50 == pytest.approx(0.5) and result.measured == classes[:1]
    assert result.table().splitlines() == [
        "| class | images | boxes | AP50 | AP50-95 |",
        "|---|---:|---:|---:|---:|",
        "| person | 1 | 1 | 0.500 | 0.500 |",
        "| vehicle | 1 | 1 | missing | missing |",
        "| **mean of 1 class** | 2 | 1 | 0.500 | 0.500 |",
    ]


# --- eval of the COCO model on the boxes it labelled itself -----------------------------------


def test_eval_of_the_labelling_model_finds_its_own_people(dataset):
    """The COCO model labelled the people itself (at 0.4, on the frames before JPEG): person AP50
    near 1 through the pipeline's backend; the roles it has no class of by name are missing."""
    result = evaluate(asset(LABELLER), dataset.root, "val")
    val = [item.read(dataset.names)[1] for item in dataset.items("val")]
    person = result.of("person")
    assert person.boxes == sum(int((labels.class_id == 1).sum()) for labels in val) > 30
    assert person.images == 12 and result.images == 12 and result.imgsz == 640
    assert person.ap50 > 0.9 and person.ap50_95 > 0.8
    assert result.of("vehicle").missing and result.of("vehicle").boxes > 0  # COCO says car, the dataset vehicle
    assert result.mean_ap50 == person.ap50

    done = detector("eval", str(asset(LABELLER)), str(dataset.root))
    assert done.returncode == 0, done.stderr
    assert f"| person | 12 | {person.boxes} | {person.ap50:.3f} | {person.ap50_95:.3f} |" in done.stdout
    assert re.search(r"^\| vehicle \| 12 \| \d+ \| missing \| missing \|$", done.stdout, re.M)


# --- BatchNorm recalibration ---------------------------------------------------------------------


def test_recalibrated_batchnorm_detects_as_before_and_holds_in_train_mode(dataset, tmp_path):
    """Each BatchNorm layer keeps its function: the same boxes (IoU >= 0.95) on 4 val frames. In
    train mode (batch statistics) the recalibrated model's neck features stay close to eval mode's;
    the shipped model's collapse. The formula of a plain identity layer (bias = mean, ignoring the
    fused convolution's bias) is caught by the check."""
    ultralytics_extra()
    import copy

    import torch
    from ultralytics.nn.tasks import load_checkpoint

    from detector.training.batchnorm import _blob, check_unchanged, recalibrate

    base, checkpoint = load_checkpoint(asset(BASE))
    frames = [item.read(dataset.names)[0] for item in dataset.items("train")]
    model = copy.deepcopy(base)
    done = recalibrate(model, frames, 160)
    assert (done.layers, done.identity, done.frames) == (57, 57, 38)
    assert done.box_shift < 0.01 and done.score_change < 1e-4
    saved = tmp_path / "recalibrated.pt"
    torch.save({**checkpoint, "model": model, "ema": None}, saved)
    check = check_unchanged(asset(BASE), saved, [item.read(dataset.names)[0] for item in dataset.items("val")[::3]])
    assert check.frames == 4 and check.base_boxes > 20 and check.matched == check.base_boxes and check.extra == 0

    blob = torch.from_numpy(_blob(frames[:16], 160))

    def drift(net) -> float:
        """Relative change of the last neck block's output from eval to train mode."""
        outputs = []
        for train_mode in (False, True):
            probe = copy.deepcopy(net).train(train_mode)
            probe.model[21].register_forward_hook(lambda _m, _i, output: outputs.append(output))
            with torch.no_grad():
                probe(blob)
        return float((outputs[1] - outputs[0]).norm() / outputs[0].norm())

    assert drift(model) < 0.2 and drift(base) > 1.0

    naive = copy.deepcopy(model)
    for layer in naive.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.bias.data = layer.running_mean.clone()
    torch.save({**checkpoint, "model": naive, "ema": None}, tmp_path / "naive.pt")
    with pytest.raises(ModelError, match=r"BatchNorm recalibration changed what the model detects \(\d+/\d+ boxes"):
        check_unchanged(asset(BASE), tmp_path / "naive.pt", [item.read(dataset.names)[0] for item in dataset.items("val")[:4]])


# --- detector train ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """`detector train` for one epoch at 160: (its output, the ONNX path, seconds it took)."""
    ultralytics_extra()
    folder = tmp_path_factory.mktemp("trained")
    out, digest = folder / "models" / "city.onnx", dataset.digest()
    started = time.monotonic()
    done = detector(
        "train", str(dataset.root), "--base", str(asset(BASE)), "--epochs", "1", "--imgsz", "160",
        "--out", str(out), "--work", str(folder / "work"),
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert dataset.digest() == digest  # Ultralytics' label caches were removed again
    return done, out, seconds


def test_train_writes_a_dynamic_onnx_model_of_the_roles(trained, dataset):
    done, out, seconds = trained
    model = OnnxDetector(out, min_score=0.35, nms_iou=0.5)
    assert model.names == list(CLASSES) == list(dataset.names)
    assert model.layout.name == "ultralytics" and model.batched and model.fits_frame
    assert model.input_hw_for((576, 768)) == (480, 640)  # dynamic: shaped to the frame at the default long side
    assert seconds < 120, f"one epoch at 160 took {seconds:.0f} s"
    assert re.search(rf"^{re.escape(str(out))}: written; 1 epoch, [\d.]+ s of training each$", done.stdout, re.M)


def test_train_writes_a_model_card_with_the_pipelines_figures(trained, dataset):
    done, out, _ = trained
    card = out.with_suffix(".md").read_text()
    evaluation = evaluate(out, dataset.root, "val")
    assert evaluation.imgsz == 160  # the size it was exported at, from its metadata
    assert evaluation.table() in card and evaluation.table() in done.stdout  # detector eval's figures, to the digit
    person, vehicle = evaluation.of("person"), evaluation.of("vehicle")
    assert person.ap50 > 0.25 and vehicle.ap50 > 0.05, evaluation.table()  # one epoch: person starts from COCO's person
    assert f"| `{out.name}` | `{file_digest(out)}` | ONNX, float32, opset 17 |" in card
    assert f"| `{dataset.root}` | `{dataset.digest()}` | 38 | 12 |" in card
    assert f"| `{asset(BASE)}` | `{file_digest(asset(BASE))}` | 1 | 160 | 16 | cpu |" in card
    per_epoch = re.search(r"\| cpu \| ([\d.]+) s \| (\d+) s \|", card)
    assert per_epoch and 0 < float(per_epoch.group(1)) <= int(per_epoch.group(2)) + 1
    assert "0 `vehicle`, 1 `person`, 2 `vendor`, 3 `vending_item`, 4 `garbage`, 5 `nonmotor`" in card
    assert (
        "the base model's 57 BatchNorm layers (57 of them identity, as a fused export leaves them) recalibrated on 38 train"
        in card
    )
    assert re.search(r"(\d+)/\1 boxes of the base model matched at IoU >= 0.95, 0 new boxes, on 4 frames", card)
    assert "rows of the classes the base model has by name (person" in card
    assert "**AGPL-3.0**: the weights derive from Ultralytics' YOLOv8n weights" in card
    command = re.search(r"```sh\n(detector train .*)\n```", card).group(1)
    assert command == (
        f"detector train {dataset.root} --base {asset(BASE)} --epochs 1 --imgsz 160 --batch 16 --device cpu --out {out}"
    )
    deploy = yaml.safe_load(re.search(r"## Deploy\n```yaml\n(.*?)```", card, re.S).group(1))
    assert deploy["model"] == {"path": str(out), "imgsz": 160}
    assert RoleClasses(**deploy["roles"]).model_dump() == {role: (role,) for role in CLASSES}


def test_int8_copy_is_evaluated_beside_the_float_model(dataset, tmp_path):
    """--int8's step on the COCO model (the trained one of one epoch is too unsure for the recall
    gate): `detector quantize` on the train images, then the same evaluation; person AP moves little.
    Needs onnx (the [test] extra), not Ultralytics."""
    from detector.training.train import quantized_copy

    model = tmp_path / "coco.onnx"
    shutil.copyfile(asset(LABELLER), model)
    copy = quantized_copy(model, dataset, 640)
    assert copy.refused is None and copy.model == tmp_path / "coco_int8.onnx" and copy.model.with_suffix(".md").is_file()
    float_ap, int8_ap = evaluate(model, dataset.root).of("person"), copy.evaluation.of("person")
    assert abs(int8_ap.ap50 - float_ap.ap50) < 0.05 and int8_ap.ap50 > 0.85
    assert "recall gate:" in copy.note and "--frames 50 --holdout 20 --min-recall 0.95" in copy.note


# --- refusals: one line each, no traceback -------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "no/such/dataset"], r"detector: error: dataset not found: no/such/dataset"),
        (["train", "{empty}"], r"detector: error: {empty}: not a dataset \(no data\.yaml"),
        (["train", "{dataset}", "--base", "models/missing.pt"], r"detector: error: base model not found: models/missing\.pt"),
        (["train", "{dataset}", "--epochs", "0"], r"detector train: error: argument --epochs: '0' is not a number of epochs"),
        (["train", "{dataset}", "--imgsz", "100"], r"error: argument --imgsz: '100' is not an image size: a multiple of 32"),
        (["eval", "models/missing.onnx", "{dataset}"], r"detector: error: model file not found: models/missing\.onnx"),
        (["eval", LABELLER, "no/such/dataset"], r"detector: error: dataset not found: no/such/dataset"),
        (["eval", LABELLER, "{empty}"], r"detector: error: {empty}: not a dataset \(no data\.yaml"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(args, message, dataset, tmp_path):
    empty = tmp_path / "frames"
    empty.mkdir()
    fill = {"{dataset}": str(dataset.root), "{empty}": str(empty)}
    args = [fill.get(a, a) for a in args]
    for key, value in fill.items():
        message = message.replace(key, re.escape(value))
    done = detector(*args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert re.search(message, done.stderr.strip().splitlines()[-1]), done.stderr


def test_without_the_extra_train_says_how_to_install_it_and_eval_needs_no_torch(dataset, tmp_path):
    """Ultralytics made unimportable: `train` ends with the pip line. `eval` runs without
    importing torch or Ultralytics, as the edge runtime must."""
    script = (
        "import sys; sys.modules['ultralytics'] = None\n"
        "from detector.cli import main\n"
        f"code = main(['train', {str(dataset.root)!r}, '--out', {str(tmp_path / 'm.onnx')!r}, '--work', {str(tmp_path)!r}])\n"
        f"code += 10 * main(['eval', {str(asset(LABELLER))!r}, {str(dataset.root)!r}])\n"
        "assert 'torch' not in sys.modules, 'eval imported torch'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # train's error, then eval's success
    assert (
        "detector: error: training needs the optional extra (ultralytics is not installed): pip install 'detector[ultralytics]'"
        in (done.stderr)
    )
    assert "| person | 12 |" in done.stdout
