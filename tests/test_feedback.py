"""`detector feedback EVENTS ID --false-alarm` on a real replay of the demo (one illegal_parking
alert at 30.0 s, the van at the top right): the mark in feedback.jsonl, the alert's clean frame
as a hard negative without the van's box, the report's command line, and bad input."""

import html
import json
import os
import re
import shlex
import shutil

import cv2
import numpy as np
import pytest
from conftest import ROOT, asset

from detector.capture import FileSource
from detector.cli import main
from detector.dataset.yolo import CLASSES, YoloDataset
from detector.zones.geometry import box_iou

PERSON, VEHICLE = CLASSES.index("person"), CLASSES.index("vehicle")


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """The demo replayed once, with its report; (folder, alert start payload)."""
    asset("sample_videos/clips/vtest.avi")
    out = tmp_path_factory.mktemp("feedback") / "demo"
    os.chdir(ROOT)
    args = ["replay", "configs/demo.yaml", "--camera", "vtest", "--out", str(out), "--report", "--no-progress"]
    assert main(args + ["--start-at", "2024-05-06T08:00:00+00:00"]) == 0
    starts = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [(a["event"], a["type"], a["stream_time_s"]) for a in starts] == [("start", "illegal_parking", 30.0)]
    return out, starts[0]


@pytest.fixture
def copy(replay, tmp_path):
    """A fresh copy of the replay's folder (feedback.jsonl is written beside its events)."""
    out, alert = replay
    target = tmp_path / "demo"
    shutil.copytree(out, target, ignore=shutil.ignore_patterns("feedback.jsonl"))
    return target, alert


def feedback(capsys, *args: str) -> tuple[int, list[str], list[str]]:
    os.chdir(ROOT)
    code = main(["feedback", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.strip().splitlines()


def test_mark_a_false_alarm(copy, capsys):
    out, alert = copy
    short = alert["id"][:13]  # as the console prints it
    code, lines, err = feedback(capsys, out / "events.jsonl", short, "--false-alarm", "--note", "a delivery: allowed")
    assert code == 0 and not err
    assert lines == [
        f"alert {alert['id']} (illegal_parking, vtest/van-no-parking) marked false_alarm -> {out / 'feedback.jsonl'}"
    ]
    (mark,) = [json.loads(line) for line in (out / "feedback.jsonl").read_text().splitlines()]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", mark.pop("at"))
    assert mark == {
        "alert_id": alert["id"],
        "type": "illegal_parking",
        "camera": "vtest",
        "zone": "van-no-parking",
        "mark": "false_alarm",
        "note": "a delivery: allowed",
    }
    code, lines, _ = feedback(capsys, out / "events.jsonl", alert["id"], "--false-alarm")
    assert code == 0 and lines == [f"alert {alert['id']} is already marked false_alarm in {out / 'feedback.jsonl'}"]
    assert len((out / "feedback.jsonl").read_text().splitlines()) == 1


def test_the_alert_frame_becomes_a_hard_negative_without_the_van(copy, tmp_path, capsys):
    out, alert = copy
    dataset = tmp_path / "ds"
    args = [out / "events.jsonl", alert["id"], "--false-alarm", "--dataset", dataset, "--config", "configs/demo.yaml"]
    code, lines, err = feedback(capsys, *args)
    assert code == 0, err
    stem = f"negative-vtest-{alert['id']}"
    match = re.fullmatch(
        rf"{dataset}: added {stem}\.jpg \(train\) as a hard negative: (\d+) boxes of the model kept, (\d+) on the alert's objects removed",
        lines[0],
    )
    assert match and int(match.group(2)) >= 1
    assert lines[1].startswith(f"alert {alert['id']} (illegal_parking, vtest/van-no-parking) marked false_alarm")

    ds = YoloDataset.open(dataset)
    (item,) = list(ds)
    assert (item.split, item.image.stem) == ("train", stem)
    image, labels = item.read(ds.names)
    assert len(labels) == int(match.group(1))
    objects = np.array([o["box"] for o in alert["objects"]]) * [768, 576, 768, 576]
    vehicles = labels.xyxy[labels.class_id == VEHICLE]
    assert len(vehicles) == 0 or box_iou(vehicles, objects).max() < 0.5  # the van's box is gone
    assert (labels.class_id == PERSON).sum() >= 3  # the people on the road stay labelled

    # the clean frame of the clip at 30.0 s, not the annotated snapshot
    frame = next(f for f in FileSource(ROOT / "sample_videos/clips/vtest.avi", 2.0).open().frames() if f.ts == 30.0)
    snapshot = cv2.imread(str(out / alert["snapshot"]["path"]))
    assert np.abs(image.astype(int) - frame.image).mean() < 2  # JPEG noise
    assert np.abs(image.astype(int) - snapshot).mean() > 2 * np.abs(image.astype(int) - frame.image).mean()
    (source,) = [json.loads(line) for line in (dataset / "sources.jsonl").read_text().splitlines()]
    assert source == {
        "image": f"images/train/{stem}.jpg",
        "kind": "negative",
        "camera": "vtest",
        "source": "sample_videos/clips/vtest.avi",
        "stream_time_s": 30.0,
        "note": alert["id"],
    }

    code, lines, _ = feedback(capsys, *args)  # again: nothing is added twice
    assert code == 0 and lines == [
        f"{dataset}: already holds {stem}.jpg; left as it is",
        f"alert {alert['id']} is already marked false_alarm in {out / 'feedback.jsonl'}",
    ]
    assert len(list(ds)) == 1 and len((dataset / "sources.jsonl").read_text().splitlines()) == 1


def test_the_report_gives_the_command_line_that_marks_it(replay, capsys):
    out, alert = replay
    page = (out / "report.html").read_text()
    (code_cell,) = re.findall(r"<code class='feedback'>(.*?)</code>", page)
    command = shlex.split(html.unescape(code_cell))
    assert command == ["detector", "feedback", str(out / "events.jsonl"), alert["id"], "--false-alarm"]
    try:
        code, lines, _ = feedback(capsys, *command[2:])
        assert code == 0 and lines[0].endswith(f"marked false_alarm -> {out / 'feedback.jsonl'}")
    finally:
        (out / "feedback.jsonl").unlink(missing_ok=True)


def tamper_snapshot(out, alert):
    path = out / alert["snapshot"]["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_events(out, alert, change):
    lines = (out / "events.jsonl").read_text().splitlines()
    (out / "events.jsonl").write_text("\n".join(change(lines)) + "\n")


DATASET = ["--dataset", "{ds}", "--config", "configs/demo.yaml"]


@pytest.mark.parametrize(
    "prepare, args, code, message",
    [
        (None, ["nope-1234"], 2, "no alert 'nope-1234' in {events} (its alerts: {id})"),
        (None, ["{id_short}"], 2, "no alert '{id_short}' in"),  # under 8 characters: not taken as a prefix
        (lambda out, a: edit_events(out, a, lambda ls: ls + ['{"schema": "detector.alert/1", "id": ']), ["{id}"], 2,
         "{events}:2: not JSON"),
        (lambda out, a: edit_events(out, a, lambda ls: ls + ['{"schema": "detector.alert/1"}']), ["{id}"], 2,
         "{events}:2: missing field(s) id, seq"),
        (lambda out, a: (out / "events.jsonl").unlink(), ["{id}"], 2, "events file not found: {events}"),
        (lambda out, a: (out / "feedback.jsonl").write_text("not json\n"), ["{id}"], 2,
         "{out}/feedback.jsonl:1: not a feedback line"),
        (tamper_snapshot, ["{id}", *DATASET], 3, "not the evidence of alert {id} (its sha256 differs from the alert's)"),
        (lambda out, a: (out / a["snapshot"]["path"]).unlink(), ["{id}", *DATASET], 3,
         "the evidence snapshot of alert {id} is missing"),
        # a stream time edited to 30.5 s: the clip's frame there is not the evidence frame
        (lambda out, a: edit_events(out, a, lambda ls: [ls[0].replace('"stream_time_s":30.0', '"stream_time_s":30.5')]),
         ["{id}", *DATASET], 3, "its frame at 30.5 s is not alert {id}'s evidence ("),
        (None, ["{id}", *DATASET, "--source", "sample_videos/clips/bgs_video.avi"], 3,
         "sample_videos/clips/bgs_video.avi: has no frame at 30.0 s"),
        (None, ["{id}", "--dataset", "{ds}"], 2, "--dataset needs --config"),
        (None, ["{id}", "--config", "configs/demo.yaml"], 2, "--config and --source go with --dataset"),
        (lambda out, a: YoloDataset.create(out.parent / "ds", ("car",)), ["{id}", *DATASET], 6,
         "a dataset of other classes (car); give another folder"),
    ],
)  # fmt: skip
def test_bad_feedback_input(copy, capsys, prepare, args, code, message):
    out, alert = copy
    if prepare is not None:
        prepare(out, alert)
    ds = out.parent / "ds"
    existed = ds.exists()
    values = {"events": out / "events.jsonl", "id": alert["id"], "id_short": alert["id"][:7], "ds": ds, "out": out}
    result, lines, err = feedback(capsys, out / "events.jsonl", *[a.format(**values) for a in args], "--false-alarm")
    assert result == code and not lines
    assert len(err) == 1 and err[0].startswith("detector: error: ") and message.format(**values) in err[0], err
    assert not (out / "feedback.jsonl").exists() or "feedback.jsonl" in message  # nothing half-written
    assert ds.exists() == existed and (not existed or not list(YoloDataset.open(ds)))


def test_a_mark_is_required(copy, capsys):
    out, alert = copy
    with pytest.raises(SystemExit) as exit_:
        main(["feedback", str(out / "events.jsonl"), alert["id"]])
    assert exit_.value.code == 2 and "--false-alarm" in capsys.readouterr().err
