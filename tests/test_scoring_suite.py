"""Table tests of detector.suite_scoring: late alarms, alerts ended and restarted, the suite
table and the per-nuisance table, reading a suite's folders."""

import pytest
from conftest import make_alert

from detector.scoring import GroundTruth, GroundTruthEvent
from detector.suite_scoring import format_comparison, format_suite, load_suite, score_clip

P = "illegal_parking"
LIMITS = {P: 30.0}  # dwell 20 s + 10 s


def alert(event, t, id="a", zone="z1", camera="cam"):
    return make_alert(event=event, type=P, zone=zone, stream_time_s=t, id=id, camera=camera)


def truth(end_s=None, nuisances=()):
    return GroundTruth((GroundTruthEvent(P, 10.0, end_s, "z1"),), camera="cam", nuisances=nuisances)


# name: (alerts, the violation's end_s, latency limits, (false alarms, late, restarted, passed))
CLIPS = {
    "on time": ([alert("start", 25), alert("update", 40)], None, LIMITS, (0, 0, 0, True)),
    "late": ([alert("start", 45)], None, LIMITS, (0, 1, 0, False)),
    "late, but no limit for the type": ([alert("start", 45)], None, {}, (0, 0, 0, True)),
    "found twice": ([alert("start", 25), alert("start", 38, id="b")], None, LIMITS, (1, 0, 1, False)),
    "ended while the violation lasts": ([alert("start", 25), alert("end", 35)], None, LIMITS, (0, 0, 1, False)),
    "ended before the violation did": ([alert("start", 25), alert("end", 35)], 50.0, LIMITS, (0, 0, 1, False)),
    "ended after the violation did": ([alert("start", 25), alert("end", 55)], 50.0, LIMITS, (0, 0, 0, True)),
    "ended and restarted": (
        [alert("start", 25), alert("end", 35), alert("start", 37, id="b")],
        None,
        LIMITS,
        (1, 0, 1, False),
    ),
    "another zone's alert ends": (
        [alert("start", 25), alert("start", 12, id="b", zone="z2"), alert("end", 30, id="b", zone="z2")],
        None,
        LIMITS,
        (1, 0, 0, False),
    ),
    "another camera's alerts": (
        [alert("start", 25), alert("start", 26, id="b", camera="other"), alert("end", 30, id="b", camera="other")],
        None,
        LIMITS,
        (0, 0, 0, True),
    ),
    "another camera's alert first": (
        [alert("start", 20, id="b", camera="other"), alert("start", 25), alert("update", 40)],
        None,
        LIMITS,
        (0, 0, 0, True),
    ),
    "missed": ([], None, LIMITS, (0, 0, 0, False)),
}


@pytest.mark.parametrize("alerts, end_s, limits, expected", CLIPS.values(), ids=CLIPS.keys())
def test_score_clip_table(alerts, end_s, limits, expected):
    result = score_clip("clip", alerts, truth(end_s), max_latency_s=limits)
    assert (len(result.score.false_alarms), len(result.late), len(result.restarted), result.passed) == expected
    assert len(result.problems()) == len(result.score.false_alarms) + len(result.score.misses) + expected[1] + expected[2]


def test_suite_table_totals_and_per_nuisance_rows():
    results = [
        score_clip("parking-dim", [alert("start", 26.5)], truth(nuisances=("dim", "noise")), max_latency_s=LIMITS),
        score_clip("parking-late", [alert("start", 44)], truth(nuisances=("dim",)), max_latency_s=LIMITS),
        score_clip("quiet-rain", [alert("start", 5, zone="z2")], GroundTruth((), "cam", nuisances=("rain",))),
        score_clip("plain", [], truth()),
    ]
    lines = format_suite(results).splitlines()
    rows = {line.split("  ")[0]: line.split() for line in lines}
    assert rows["parking-dim"] == ["parking-dim", "dim,noise", "illegal_parking@10s", "0", "1/0", "16.5", "0"]
    assert rows["quiet-rain"] == ["quiet-rain", "rain", "none", "1", "0/0", "-", "0"]
    assert rows["plain"] == ["plain", "-", "illegal_parking@10s", "0", "0/1", "-", "0"]
    assert "clips: 4, passed: 1" in lines
    assert "false alerts: 1" in lines
    assert "recall: 0.67 (2/3)" in lines
    assert "worst latency: 34.0 s" in lines
    assert "late: 1, restarted: 0" in lines
    # per nuisance: clips, false alerts, recall, worst latency
    assert rows["dim"] == ["dim", "2", "0", "1.00", "(2/2)", "34.0"]
    assert rows["noise"] == ["noise", "1", "0", "1.00", "(1/1)", "16.5"]
    assert rows["rain"] == ["rain", "1", "1", "-", "-"]
    assert rows["(none)"] == ["(none)", "1", "0", "0.00", "(0/1)", "-"]
    assert "false: quiet-rain: illegal_parking @ z2 5s [a]" in lines
    assert "late: parking-late: illegal_parking @ z1 44s [a] 34.0 s after illegal_parking @ z1 10s-end" in lines
    assert "missed: plain: illegal_parking @ z1 10s-end" in lines


def write_suite(root, clips):
    """`root/out/<clip>/events.jsonl` and `root/gt/<clip>.gt.yaml` from {clip: (events text, gt text or None)}."""
    for clip, (events, ground_truth) in clips.items():
        (root / "out" / clip).mkdir(parents=True)
        (root / "out" / clip / "events.jsonl").write_text(events)
        if ground_truth is not None:
            (root / "gt").mkdir(exist_ok=True)
            (root / "gt" / f"{clip}.gt.yaml").write_text(ground_truth)
    return root / "out", root / "gt"


def test_load_suite_reads_every_camera_folder(tmp_path):
    start = alert("start", 25, camera="parking").to_bytes().decode()
    out, gt = write_suite(
        tmp_path,
        {
            "parking": (start + "\n", "camera: parking\nnuisances: [dim]\nevents: [{type: illegal_parking, begin_s: 10}]\n"),
            "quiet": ("", "camera: quiet\nevents: []\n"),
        },
    )
    results = load_suite(out, gt, max_latency_s=LIMITS)
    assert [(r.clip, r.ground_truth.nuisances, r.score.overall.tp, r.passed) for r in results] == [
        ("parking", ("dim",), 1, True),
        ("quiet", (), 0, True),
    ]


BAD_SUITES = {
    "no events folders": ({}, "no <camera>/events.jsonl in it"),
    "no ground truth": ({"cam": ("", None)}, "cam.gt.yaml: no ground truth for"),
    "not an events file": ({"cam": ("garbage\n", "events: []\n")}, "events.jsonl: not an events file"),
    "bad ground truth": ({"cam": ("", "events: []\nnuisances: 3\n")}, "cam.gt.yaml: `nuisances` must be a list"),
}


@pytest.mark.parametrize("clips, message", BAD_SUITES.values(), ids=BAD_SUITES.keys())
def test_bad_suite_names_the_problem(tmp_path, clips, message):
    out, gt = write_suite(tmp_path, clips)
    out.mkdir(exist_ok=True)
    with pytest.raises(ValueError) as info:
        load_suite(out, gt)
    assert message in str(info.value)


def test_two_suites_side_by_side():
    """A base model that misses the violation and a trained one that finds it, on the same clips
    (one clip only the base replayed): per clip and per type, each suite's figures."""
    quiet = GroundTruth((), "cam")
    base = [score_clip("parking", [], truth()), score_clip("quiet", [alert("start", 5, zone="z2")], quiet)]
    trained = [score_clip("parking", [alert("start", 26.5)], truth())]
    lines = format_comparison({"base": base, "trained": trained}).splitlines()
    rows = {line.split("  ")[0]: line.split() for line in lines}
    assert lines[0].split("  ")[0] == "clip" and "base: TP/FN" in lines[0] and "trained: latency s" in lines[0]
    assert rows["parking"] == ["parking", "illegal_parking@10s", "0", "0/1", "-", "0", "1/0", "16.5"]
    assert rows["quiet"] == ["quiet", "none", "1", "0/0", "-", "-", "-", "-"]
    # per type: recall and false alerts of each
    assert rows["illegal_parking"] == ["illegal_parking", "0.00", "(0/1)", "1", "1.00", "(1/1)", "0"]
    assert rows["all"] == ["all", "0.00", "(0/1)", "1", "1.00", "(1/1)", "0"]
