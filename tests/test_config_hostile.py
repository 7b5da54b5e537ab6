"""Hostile or broken configs: refused fast with one line naming the cause, by the one YAML reader
(`read_yaml`), the commands, the zone editor and a running supervisor's reload; zone polygons
that cannot mean one area are refused with the zone's path."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, asset, start_run, wait_for

from detector.config import load_config
from detector.config.load import MAX_BYTES, MAX_DEPTH, MAX_VALUES, read_yaml
from detector.errors import ConfigError
from detector.health import read_health
from detector.operator.yaml_edit import ConfigDocument
from detector.scoring import load_ground_truth
from detector.zones.geometry import crossing_edges, polygon_defect

DEMO = (ROOT / "configs/demo.yaml").read_text()
DWELL = "illegal_parking: {dwell_s: 30, grace_s: 10, clear_s: 20, cooldown_s: 300}"
assert DWELL in DEMO
FAST_S = 1.0  # every refusal, in process


def laughs(levels: int = 9) -> str:
    """The billion laughs: 9 aliases of 9 aliases ... = 9^9 values from a dozen lines."""
    lines = ['x-lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"x-lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


DUPLICATE = DEMO.replace(
    DWELL, "illegal_parking:\n    dwell_s: 5\n    grace_s: 10\n    clear_s: 20\n    cooldown_s: 300\n    dwell_s: 500"
)

# name: (text, fragment of the one-line error)
HOSTILE = {
    "billion laughs": (DEMO + laughs(), f"more than {MAX_VALUES} values once YAML aliases (*name) are expanded"),
    "alias inside its own anchor": (DEMO + "x: &r [1, *r]\n", "alias *r is inside its own anchor"),
    "deep flow nesting": (DEMO + "x: " + "[" * 100 + "]" * 100 + "\n", f"line 19: nested deeper than {MAX_DEPTH} levels"),
    "very deep flow nesting": (DEMO + "x: " + "[" * 100_000 + "]" * 100_000 + "\n", "nest"),  # libyaml stops at 1000
    "deep block nesting": (DEMO + "x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 60)), "nested deeper than"),
    "deep through aliases": (
        DEMO + "".join(f"x{i}: &d{i} [[[[[[[[[[{f'*d{i - 1}' if i else 0}]]]]]]]]]]\n" for i in range(8)),
        "levels once YAML aliases (*name) are expanded",
    ),
    "too many values": (DEMO + "x: [" + ", ".join(["0"] * (MAX_VALUES + 1)) + "]\n", f"more than {MAX_VALUES} values"),
    "duplicate key": (DUPLICATE, "duplicate key 'dwell_s' at line 9 and line 13"),
    "duplicate key in a flow mapping": (
        DEMO.replace(DWELL, "illegal_parking: {dwell_s: 5, grace_s: 10, clear_s: 20, cooldown_s: 300, dwell_s: 500}"),
        "duplicate key 'dwell_s' at line 8 (columns 21 and 76)",
    ),
    "duplicate top-level section": (DEMO + "site: other\n", "duplicate key 'site' at line 3 and line 19"),
    "impossible date": (DEMO + "x: 2024-13-45\n", "line 19, column 4: cannot read '2024-13-45' as timestamp"),
    "unreadable tagged scalar": (DEMO + "x: !!bool maybe\n", "cannot read 'maybe' as bool"),
    "python object tag": (DEMO + "x: !!python/object/apply:os.system [ls]\n", "could not determine a constructor"),
    "control character": (DEMO + "x: a\x00b\n", "#x0000 is not allowed"),
    "syntax error": (DEMO + "x: [1,\n", "not valid YAML: line 20, column 1: "),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_yaml_is_refused_fast_in_one_line(tmp_path, name):
    text, fragment = HOSTILE[name]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert time.monotonic() - started < FAST_S
    message = str(refused.value)
    assert "\n" not in message and message.startswith(str(path)), message
    assert fragment in message, message


def test_the_same_reader_guards_ground_truth_files(tmp_path):
    path = tmp_path / "gt.yaml"
    path.write_text("events: []\n" + laughs())
    with pytest.raises(ConfigError, match="once YAML aliases"):
        load_ground_truth(path)


@pytest.mark.parametrize("kind", ["file", "endless device"])
def test_a_file_over_the_size_bound_is_refused_before_parsing(tmp_path, kind):
    if kind == "file":
        path, found = tmp_path / "big.yaml", "1.0 MiB"
        path.write_bytes(b"# padding\n" * (MAX_BYTES // 10 + 1))
    else:
        path, found = Path("/dev/zero"), "more than that"
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        read_yaml(path)
    assert time.monotonic() - started < FAST_S
    assert str(refused.value) == f"{path}: too large for a config file: at most 1 MiB, this one is {found}"


def test_legitimate_aliases_and_merge_keys_still_load(tmp_path):
    # configs/scenarios.yaml shares two zones lists between its cameras through aliases
    cameras = load_config(ROOT / "configs/scenarios.yaml").cameras
    zones = [c.zones for c in cameras]
    nuisance = next(c.zones for c in cameras if c.id.startswith("nuisance-"))
    assert zones.count(cameras[0].zones) + zones.count(nuisance) == len(cameras) - 1  # all but traffic
    # a merge key, then one of its keys overridden: not a duplicate
    path = tmp_path / "merge.yaml"
    path.write_text(
        DEMO.replace("      - id: van-no-parking", "      - &van\n        id: van-no-parking")
        + "      - {<<: *van, id: van-again}\n"
    )
    zones = load_config(path).cameras[0].zones
    assert [z.id for z in zones] == ["van-no-parking", "crossing", "van-again"] and zones[2].polygon == zones[0].polygon


@pytest.mark.parametrize("name", ["billion laughs", "duplicate key", "deep flow nesting", "alias inside its own anchor"])
def test_zone_editor_document_refuses_the_same(name):
    text, fragment = HOSTILE[name]
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        ConfigDocument(text, "site.yaml")
    assert time.monotonic() - started < FAST_S and fragment in str(refused.value)


def detector(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detector", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", [["check"], ["replay", "--camera", "vtest"], ["run"]])
def test_commands_refuse_a_billion_laughs_with_one_line(tmp_path, command):
    path = tmp_path / "laughs.yaml"
    path.write_text(DEMO + laughs() + f"storage_dir: {tmp_path / 'store'}\n")
    args = [command[0], str(path), *command[1:]]
    if command[0] == "replay":
        args += ["--out", str(tmp_path / "out")]
    started = time.monotonic()
    result = detector(*args, timeout=30)
    assert time.monotonic() - started < 10  # the interpreter and imports; the refusal itself is instant
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"detector: error: {path}: line "), result.stderr


# --- polygons -------------------------------------------------------------------------------

SQUARE = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]
CROSSING = ": the outline must not cross or touch itself (list the points in order around the zone)"

# name: (polygon, the message after `cameras.vtest.zones.van-no-parking.polygon: `, or None: accepted)
POLYGONS = {
    "square": (SQUARE, None),
    "concave L": ([[0, 0], [0.4, 0], [0.4, 0.1], [0.1, 0.1], [0.1, 0.4], [0, 0.4]], None),
    "closed ring (first point repeated)": ([*SQUARE, SQUARE[0]], None),
    "a point clicked twice": ([SQUARE[0], SQUARE[1], SQUARE[1], SQUARE[2], SQUARE[3]], None),
    "one point three times": ([[0.1, 0.1]] * 3, "a polygon needs at least 3 distinct points, got 1"),
    "two distinct points": (
        [[0.1, 0.1], [0.5, 0.5], [0.5, 0.5], [0.1, 0.1]],
        "a polygon needs at least 3 distinct points, got 2",
    ),
    "points on one line": ([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], "its points lie on one line: it encloses no area"),
    "bow-tie": (
        [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]],
        "edge 0-1 ([0.1, 0.1] to [0.5, 0.5]) meets edge 2-3 ([0.5, 0.1] to [0.1, 0.5])" + CROSSING,
    ),
    "outline touching itself at a corner": (
        [[0.1, 0.1], [0.5, 0.1], [0.3, 0.3], [0.5, 0.5], [0.1, 0.5], [0.3, 0.3]],
        "edge 1-2 ([0.5, 0.1] to [0.3, 0.3]) meets edge 4-5 ([0.1, 0.5] to [0.3, 0.3])" + CROSSING,
    ),
    "spike folding back along an edge": (
        [[0.1, 0.1], [0.5, 0.1], [0.3, 0.1], [0.3, 0.5]],
        "edge 0-1 ([0.1, 0.1] to [0.5, 0.1]) meets edge 1-2 ([0.5, 0.1] to [0.3, 0.1])" + CROSSING,
    ),
    "a sliver": ([[0.1, 0.1], [0.1002, 0.1], [0.1, 0.1003]], "it encloses almost no area (3e-08 of the frame, less than 1e-06)"),
    "too many points": (
        [[0.5 + 0.4 * np.cos(t), 0.5 + 0.4 * np.sin(t)] for t in np.linspace(0, 6.28, 257, endpoint=False)],
        "a polygon may have at most 256 points, got 257",
    ),
}


@pytest.mark.parametrize("name", POLYGONS)
def test_zone_polygons(tmp_path, name):
    polygon, expected = POLYGONS[name]
    path = tmp_path / "config.yaml"
    first = "[[0.82, 0.06], [0.97, 0.06], [0.97, 0.20], [0.82, 0.20]]"
    path.write_text(DEMO.replace(first, json.dumps([[float(x), float(y)] for x, y in polygon])))
    if expected is None:
        assert load_config(path).cameras[0].zones[0].polygon[0] == tuple(polygon[0])
        return
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert time.monotonic() - started < FAST_S
    assert str(refused.value).splitlines()[1:] == [f"  cameras.vtest.zones.van-no-parking.polygon: {expected}"]


@pytest.mark.parametrize(
    "polygon, crossing",
    [
        ([[0, 0], [1, 0], [1, 1], [0, 1]], None),
        ([[0, 0], [1, 1], [1, 0], [0, 1]], (0, 2)),  # bow-tie
        ([[0, 0], [2, 0], [2, 2], [1, -1]], (0, 2)),  # the last corner pulls an edge across the first
        ([[0, 0], [4, 0], [4, 4], [2, 0], [0, 4]], (0, 2)),  # a corner on another edge
        ([[0, 0], [2, 0], [1, 0], [1, 1]], (0, 1)),  # neighbours folding back
        ([[0, 0], [3, 0], [3, 1], [2, 1], [2, 0.5], [1, 0.5], [1, 1], [0, 1]], None),  # concave
    ],
)
def test_crossing_edges(polygon, crossing):
    assert crossing_edges(np.array(polygon, float)) == crossing


def test_polygon_checks_stay_fast_at_the_point_bound():
    circle = [[0.5 + 0.4 * np.cos(t), 0.5 + 0.4 * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 256, endpoint=False)]
    started = time.monotonic()
    for _ in range(20):
        assert polygon_defect(np.array(circle)) is None
    assert time.monotonic() - started < FAST_S


# --- a running supervisor's reload ----------------------------------------------------------


def run_log_events(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if "event=" in line]


@pytest.mark.timeout(120)
def test_sighup_with_a_hostile_config_keeps_the_running_workers(tmp_path):
    store = tmp_path / "store"
    good = {
        "site": "hostile",
        "model": {"path": str(asset("models/yolov8n_320.onnx")), "threads": 1},
        "detect": {"fps": 1},
        "storage_dir": str(store),
        "supervisor": {"heartbeat_timeout_s": 10, "restart_min_s": 0.5, "restart_max_s": 1},
        "cameras": [{"id": "vtest", "source": str(asset("sample_videos/clips/vtest.avi")), "zones": []}],
    }
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(good))
    log_path = tmp_path / "run.log"
    run = start_run(config, log_path)
    try:
        health = wait_for(lambda: (h := read_health(store, "vtest")) and h["state"] == "running" and h, 60, "the worker")
        pid = health["pid"]
        good_text = config.read_text()
        for name, fragment in (("billion laughs", "once YAML aliases"), ("duplicate key", "duplicate key 'site'")):
            text = good_text + laughs() if name == "billion laughs" else good_text + "site: other\n"
            config.write_text(text)
            refusals = len([e for e in run_log_events(log_path) if "event=reload_failed" in e])
            sent = time.monotonic()
            run.send_signal(signal.SIGHUP)
            refusal = wait_for(
                lambda r=refusals: [e for e in run_log_events(log_path) if "event=reload_failed" in e][r:], 5, f"{name} refused"
            )[0]
            assert time.monotonic() - sent < 2.5, f"{name}: refused only after {time.monotonic() - sent:.1f} s"
            assert fragment in refusal, refusal
            beat = read_health(store, "vtest")["heartbeat_at"]
            wait_for(lambda b=beat: read_health(store, "vtest")["heartbeat_at"] > b, 5, "the worker's next heartbeat")
            assert read_health(store, "vtest")["pid"] == pid and run.poll() is None  # untouched, still supervised
        # a model that does not load is refused too (probed before the reload is taken)
        broken = tmp_path / "broken.onnx"
        broken.write_bytes(b"not a model")
        config.write_text(yaml.safe_dump({**good, "model": {"path": str(broken), "threads": 1}}))
        run.send_signal(signal.SIGHUP)
        refusal = wait_for(lambda: [e for e in run_log_events(log_path) if "event=reload_failed" in e][2:], 30, "model refused")[
            0
        ]
        assert "does not load" in refusal and "broken.onnx" in refusal, refusal
        assert read_health(store, "vtest")["pid"] == pid and run.poll() is None
        # the supervisor loop goes on after the refusals: a killed worker is reaped (no zombie) and
        # restarted on the config the supervisor accepted, not on the refused file still on disk
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: any("code=-9" in e and "event=worker_exited" in e for e in run_log_events(log_path)), 5, "the reap")
        assert not Path(f"/proc/{pid}").exists()
        wait_for(lambda: (h := read_health(store, "vtest")) and h["pid"] != pid and h["state"] == "running", 60, "the restart")
        assert run.poll() is None and "event=reloaded" not in log_path.read_text()
    finally:
        run.send_signal(signal.SIGTERM)
        try:
            code = run.wait(40)
        finally:
            if run.poll() is None:  # a hung supervisor must not outlive the test (its workers die with it)
                run.kill()
    assert code == 0
