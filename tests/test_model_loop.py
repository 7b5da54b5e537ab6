"""The model loop end to end, small (issue 12), as an operator runs it: `detector dataset
harvest` a few dozen frames of the demo clip, `detector train` one epoch on CPU at a small size,
the exported model deployed in a config (roles mapped to its classes, no proxy), checked, run
by the real pipeline over a scenario clip, and `detector score`d.

One epoch at 160 px learns little: the figures asserted are the loop's (frames harvested, the
dataset the card names, the classes the pipeline runs with, people the trained model finds in
the scenario), not the model's accuracy (scripts/bench_training.py measures that).
"""

import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime

import pytest
import yaml
from conftest import ROOT, asset
from scenario_clips import scenario_clip

if __import__("importlib").util.find_spec("ultralytics") is not None:
    os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported, by `detector train`'s children too
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))
pytest.importorskip("ultralytics", reason="the [ultralytics] extra: pip install -e '.[ultralytics]'")
pytest.importorskip("pycocotools")

from detector.config import load_config  # noqa: E402
from detector.dataset.yolo import CLASSES, YoloDataset  # noqa: E402
from detector.replay import replay  # noqa: E402

SCENARIO = "parking-stop"  # a van parks on the road at 10 s; people walk past all along


def detector(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "detector", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_harvest_train_deploy_score(tmp_path):
    asset("sample_videos/clips/vtest.avi")
    dataset_dir, model = tmp_path / "ds", tmp_path / "loop.onnx"

    harvested = detector("dataset", "harvest", "configs/demo.yaml", "--camera", "vtest", "--every", "2", "--out", dataset_dir)
    assert harvested.returncode == 0, harvested.stderr
    dataset = YoloDataset.open(dataset_dir)
    counts = dataset.counts()
    assert dataset.names == CLASSES and 30 <= counts["train"] + counts["val"] <= 40 and counts["val"] >= 5  # 79 s, one every 2 s

    trained = detector("train", dataset_dir, "--epochs", "1", "--imgsz", "160", "--out", model, "--work", tmp_path / "work")
    assert trained.returncode == 0, trained.stderr
    card = model.with_suffix(".md").read_text()
    assert dataset.digest() in card and f"| {counts['train']} | {counts['val']} |" in card

    # deployed as the card says: the trained model at its size, each role its own class, no
    # proxy; on the scenario's camera of configs/scenarios.yaml
    clip = scenario_clip(SCENARIO)
    config_path = tmp_path / "deployed.yaml"
    config = yaml.safe_load((ROOT / "configs/scenarios.yaml").read_text())
    config.update(
        cameras=[camera for camera in config["cameras"] if camera["id"] == SCENARIO],
        model={"path": str(model), "imgsz": 160},
        roles={role: [role] for role in CLASSES},
        static_objects={"enabled": False},
        storage_dir=str(tmp_path / "storage"),
    )
    config_path.write_text(yaml.safe_dump(config))
    checked = detector("check", config_path, timeout=600)
    assert checked.returncode == 0, checked.stderr
    assert f"({len(CLASSES)} classes," in checked.stdout and "warning" not in checked.stdout

    people = []
    names = None

    def on_frame(result) -> None:
        nonlocal names
        names = result.labels
        people.append(int((result.tracks.class_id == result.labels.index("person")).sum()))

    summary = replay(
        load_config(config_path),
        SCENARIO,
        out_dir=tmp_path / "replay",
        start_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        quiet=True,
        progress=False,
        on_frame=on_frame,
    )
    assert names[: len(CLASSES)] == CLASSES  # the pipeline runs with the trained classes (then static_object)
    assert len(people) >= 80 and sum(n > 0 for n in people) >= len(people) // 2  # it finds the passers-by

    scored = detector("score", tmp_path / "replay" / "events.jsonl", clip.with_suffix(".gt.yaml"))
    assert scored.returncode == 0, scored.stderr
    row = next(line.split() for line in scored.stdout.splitlines() if line.startswith("illegal_parking"))
    assert row[1] == "1" and int(row[2]) == len([a for a in summary.alerts if a.event.value == "start"])  # gt, alarms
    assert re.search(r"^all\s+1\s", scored.stdout, re.M)
