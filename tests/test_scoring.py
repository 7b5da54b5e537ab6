"""Table tests of detector.scoring: matching alarms to ground truth, counts, ratios, latency."""

import json
import math

import pytest
from conftest import make_alert

from detector.errors import ConfigError
from detector.scoring import (
    Alarm,
    GroundTruth,
    GroundTruthEvent,
    format_report,
    load_events,
    load_ground_truth,
    parse_ground_truth,
    score,
)

P, V, G, N = "illegal_parking", "street_vending", "stray_garbage", "nonmotor_parking"


def alarm(kind, t, zone="z1", camera=None):
    return Alarm(type=kind, zone=zone, stream_time_s=t, camera=camera)


def gt(kind, begin, end=None, zone=None):
    return GroundTruthEvent(type=kind, begin_s=begin, end_s=end, zone=zone)


# (name, alarms, ground-truth events, tolerance, expected overall (tp, fp, fn), expected latencies (median, max))
CASES = [
    ("nothing at all", [], [], 10, (0, 0, 0), (None, None)),
    ("one hit", [alarm(P, 35)], [gt(P, 10)], 10, (1, 0, 0), (25, 25)),
    ("alarm at begin_s exactly", [alarm(P, 10)], [gt(P, 10)], 10, (1, 0, 0), (0, 0)),
    ("alarm before the event began", [alarm(P, 9.9)], [gt(P, 10)], 10, (0, 1, 1), (None, None)),
    ("alarm within tolerance after end", [alarm(P, 30)], [gt(P, 10, 20)], 10, (1, 0, 0), (20, 20)),
    ("alarm at end + tolerance exactly", [alarm(P, 30)], [gt(P, 10, 20)], 10, (1, 0, 0), (20, 20)),
    ("alarm past end + tolerance", [alarm(P, 30.5)], [gt(P, 10, 20)], 10, (0, 1, 1), (None, None)),
    ("zero tolerance", [alarm(P, 20.5)], [gt(P, 10, 20)], 0, (0, 1, 1), (None, None)),
    ("open-ended event, very late alarm", [alarm(P, 5000)], [gt(P, 0)], 10, (1, 0, 0), (5000, 5000)),
    ("wrong type", [alarm(V, 35)], [gt(P, 10)], 10, (0, 1, 1), (None, None)),
    ("wrong zone", [alarm(P, 35, zone="z2")], [gt(P, 10, zone="z1")], 10, (0, 1, 1), (None, None)),
    ("right zone", [alarm(P, 35, zone="z1")], [gt(P, 10, zone="z1")], 10, (1, 0, 0), (25, 25)),
    ("event without zone takes any zone", [alarm(P, 35, zone="anything")], [gt(P, 10)], 10, (1, 0, 0), (25, 25)),
    ("duplicate alarm is a false alarm", [alarm(P, 35), alarm(P, 40)], [gt(P, 10)], 10, (1, 1, 0), (25, 25)),
    ("earliest alarm matches", [alarm(P, 50), alarm(P, 35)], [gt(P, 10)], 10, (1, 1, 0), (25, 25)),
    ("one miss", [], [gt(G, 20)], 10, (0, 0, 1), (None, None)),
    ("false alarm on a clean clip", [alarm(G, 40)], [], 10, (0, 1, 0), (None, None)),
    ("two events, two alarms", [alarm(P, 30), alarm(P, 90)], [gt(P, 10), gt(P, 60, 100)], 10, (2, 0, 0), (25, 30)),
    # Each alarm goes to the open event that began earliest: 30 -> event@10, 90 -> event@60.
    ("overlapping events", [alarm(P, 30), alarm(P, 90)], [gt(P, 60), gt(P, 10)], 10, (2, 0, 0), (25, 30)),
    ("second event missed", [alarm(P, 30)], [gt(P, 10, 40), gt(P, 60)], 10, (1, 0, 1), (20, 20)),
    ("mixed types", [alarm(P, 30), alarm(V, 40), alarm(G, 50)], [gt(P, 10), gt(V, 10)], 10, (2, 1, 0), (25, 30)),
    (
        "latency median of three",
        [alarm(P, 12), alarm(V, 30), alarm(G, 100)],
        [gt(P, 10), gt(V, 10), gt(G, 10)],
        10,
        (3, 0, 0),
        (20, 90),
    ),
]


@pytest.mark.parametrize("name, alarms, events, tolerance, counts, latency", CASES, ids=[c[0] for c in CASES])
def test_matching_table(name, alarms, events, tolerance, counts, latency):
    result = score(alarms, GroundTruth(tuple(events)), tolerance_s=tolerance)
    overall = result.overall
    assert (overall.tp, overall.fp, overall.fn) == counts
    assert overall.alarms == len(alarms)
    assert overall.ground_truth == len(events)
    assert len(result.matches) == counts[0]
    assert len(result.false_alarms) == counts[1]
    assert len(result.misses) == counts[2]
    median, maximum = latency
    assert overall.latency_median_s == (None if median is None else pytest.approx(median))
    assert overall.latency_max_s == (None if maximum is None else pytest.approx(maximum))
    assert format_report(result)  # always renders


# (alarms, events, expected (precision, recall, f1)) — None = undefined, printed "-"
RATIOS = [
    ([], [], (None, None, None)),
    ([alarm(P, 20)], [gt(P, 10)], (1.0, 1.0, 1.0)),
    ([], [gt(P, 10)], (None, 0.0, None)),
    ([alarm(P, 5)], [], (0.0, None, None)),
    ([alarm(P, 5)], [gt(P, 10)], (0.0, 0.0, None)),
    ([alarm(P, 20), alarm(P, 30)], [gt(P, 10)], (0.5, 1.0, 2 / 3)),
    ([alarm(P, 20)], [gt(P, 10), gt(P, 100)], (1.0, 0.5, 2 / 3)),
]


@pytest.mark.parametrize("alarms, events, expected", RATIOS)
def test_ratios_table(alarms, events, expected):
    row = score(alarms, GroundTruth(tuple(events))).overall
    for value, want in zip((row.precision, row.recall, row.f1), expected):
        assert value == (None if want is None else pytest.approx(want))


def test_per_type_rows_and_report():
    result = score([alarm(P, 30), alarm(G, 50)], GroundTruth((gt(P, 10), gt(V, 5))))
    parking, vending, garbage = result.row(P), result.row(V), result.row(G)
    assert (parking.tp, parking.fp, parking.fn) == (1, 0, 0)
    assert (vending.tp, vending.fp, vending.fn) == (0, 0, 1)
    assert (garbage.tp, garbage.fp, garbage.fn) == (0, 1, 0)
    assert [r.type for r in result.rows] == [P, V, G, N, "all"]
    report = format_report(result)
    lines = report.splitlines()
    assert lines[0].split()[:6] == ["type", "gt", "alarms", "tp", "fp", "fn"]
    assert len({len(line) for line in lines[:8] if not line.startswith("-")}) == 1  # fixed width
    assert "misses (no alarm):" in report and "false alarms:" in report and "matches:" in report
    assert "-" in lines[3].split()  # vending precision undefined


def test_payloads_only_start_counts_and_other_cameras_ignored():
    alerts = [
        make_alert(event="start", type=P, zone="z1", stream_time_s=30.0, camera="cam", id="a"),
        make_alert(event="update", type=P, zone="z1", stream_time_s=330.0, camera="cam", id="a", seq=2),
        make_alert(event="end", type=P, zone="z1", stream_time_s=400.0, camera="cam", id="a", seq=3),
        make_alert(event="start", type=P, zone="z1", stream_time_s=31.0, camera="other", id="b"),
    ]
    result = score(alerts, GroundTruth((gt(P, 10),), camera="cam"))
    assert (result.overall.tp, result.overall.fp, result.overall.fn) == (1, 0, 0)
    assert result.ignored_cameras == ("other",)
    assert "ignored alarms of other cameras: other" in format_report(result)


def test_negative_tolerance_rejected():
    with pytest.raises(ValueError, match="tolerance"):
        score([], GroundTruth(()), tolerance_s=-1)


# ------------------------------------------------------------------------------ loading


def test_load_ground_truth_file(tmp_path):
    path = tmp_path / "clip.gt.yaml"
    path.write_text(
        "clip: sample_videos/clips/vtest.avi\ncamera: vtest\nevents:\n"
        "  - {type: illegal_parking, zone: van-no-parking, begin_s: 0, end_s: null, note: van}\n"
        "  - {type: stray_garbage, begin_s: 20, end_s: 28.5}\n"
    )
    truth = load_ground_truth(path)
    assert truth.camera == "vtest"
    assert truth.nuisances == ()
    assert truth.events[0] == GroundTruthEvent(P, 0.0, None, "van-no-parking", "van")
    assert truth.events[1] == GroundTruthEvent(G, 20.0, 28.5, None, "")


BAD_GT = [
    ("[1, 2]", "expected a mapping"),
    ("camera: x", "missing key `events`"),
    ("events: {a: 1}", "`events` must be a list"),
    ("events: []\ncolour: red", "unknown key(s) colour"),
    ("events: [{type: parking, begin_s: 0}]", "events[0].type: must be one of"),
    ("events: [{type: illegal_parking}]", "events[0]: missing key `begin_s`"),
    ("events: [{type: illegal_parking, begin_s: soon}]", "events[0].begin_s: must be a number"),
    ("events: [{type: illegal_parking, begin_s: -1}]", "events[0].begin_s: must be >= 0"),
    ("events: [{type: illegal_parking, begin_s: 10, end_s: 5}]", "events[0].end_s: 5 is before begin_s 10"),
    ("events: [{type: illegal_parking, begin_s: 1, zone: [a]}]", "events[0].zone"),
    ("events: [{type: illegal_parking, begin_s: 1, start: 2}]", "events[0]: unknown key(s) start"),
    ("events: [oops]", "events[0]: expected a mapping"),
    ("events: [", "not valid YAML"),
    ("events: []\nnuisances: dim", "`nuisances` must be a list of nuisance types"),
    ("events: []\nnuisances: [dim, 3]", "`nuisances` must be a list of nuisance types"),
]


@pytest.mark.parametrize("text, message", BAD_GT)
def test_bad_ground_truth_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.gt.yaml"
    path.write_text(text)
    with pytest.raises((ValueError, ConfigError)) as info:
        load_ground_truth(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_ground_truth_file(tmp_path):
    with pytest.raises(ConfigError, match="ground truth file not found"):
        load_ground_truth(tmp_path / "nope.yaml")


def test_parse_ground_truth_empty_events_none():
    assert parse_ground_truth({"events": None}).events == ()


def test_parse_ground_truth_nuisances():
    assert parse_ground_truth({"events": [], "nuisances": ["dim", "noise"]}).nuisances == ("dim", "noise")


def test_load_events_skips_bad_lines(tmp_path):
    good = make_alert(zone="z", stream_time_s=3.5)
    line = good.to_bytes().decode()
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join([line, "", "not json", "[1]", json.dumps({"event": "start", "type": P}),
                   line.replace('"stream_time_s":3.5', '"stream_time_s":"3"'), line]) + "\n"
    )  # fmt: skip
    warnings: list[str] = []
    alerts = load_events(path, warnings=warnings)
    assert alerts == [good, good]
    assert len(warnings) == 4
    assert warnings[0].startswith(f"{path}:3: not JSON")
    assert "schema must be 'detector.alert/1'" in warnings[2]
    assert "stream_time_s must be a number" in warnings[3]
    with pytest.raises(ValueError, match=r":3: not JSON"):
        load_events(path, strict=True)


def test_load_events_missing_file(tmp_path):
    with pytest.raises(ValueError, match="events file not found"):
        load_events(tmp_path / "events.jsonl")


def test_open_event_accepts_forever():
    assert gt(P, 0).accepts(alarm(P, math.inf), 10)
