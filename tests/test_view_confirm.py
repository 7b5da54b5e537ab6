"""A view paused until an operator confirms (`view.resume: operator`): the monitor's states on
real vtest frames moved or covered and brought back, with and without `confirm()`; then the
real `detector run` on the covered nuisance clip, confirmed with `detector view confirm`."""

import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import ROOT, asset, start_run, wait_for
from scenario_clips import scenario_clip
from test_view import FPS, shifted, vtest  # noqa: F401 (vtest: the module's fixture)

from detector.config.schema import ViewConfig
from detector.health import read_health
from detector.view import ViewMonitor
from detector.view_confirm import ViewConfirmation, confirmation_path, request_confirmation, take_confirmation

MOVED = lambda f: shifted(f, 0.3)  # noqa: E731
COVERED = np.zeros_like

# (resume, what happens to the view from..to s, {ts: confirm(accept_new_view)}) ->
#   {ts: (status, awaiting_operator, back)} and what each confirm returned
CASES = {
    "auto: resumes by itself": ("auto", (MOVED, 10, 20), {}, {16: ("view_changed", False, False), 26: ("ok", False, False)}, []),
    "operator: stays paused when it comes back": (
        "operator",
        (MOVED, 10, 20),
        {},
        {16: ("view_changed", True, False), 26: ("view_changed", True, True), 39: ("view_changed", True, True)},
        [],
    ),
    "operator: confirmed once back": (
        "operator",
        (MOVED, 10, 20),
        {27: False},
        {26: ("view_changed", True, True), 27: ("ok", False, False), 39: ("ok", False, False)},
        [True],
    ),
    "operator: a confirm while still moved is refused": (
        "operator",
        (MOVED, 10, 20),
        {17: False},
        {17: ("view_changed", True, False), 26: ("view_changed", True, True)},
        [False],
    ),
    "operator: moved for good, the new view accepted": (
        "operator",
        (MOVED, 10, 40),
        {20: True},
        {19: ("view_changed", True, False), 20: ("ok", False, False), 39: ("ok", False, False)},
        [True],
    ),
    "operator: covered, uncovered, confirmed": (
        "operator",
        (COVERED, 10, 20),
        {24: False, 28: False},
        {
            16: ("view_blocked", True, False),
            24: ("view_blocked", True, False),
            27: ("view_blocked", True, True),
            28: ("ok", False, False),
        },
        [False, True],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_a_view_paused_until_an_operator_confirms(vtest, name):  # noqa: F811
    resume, (change, start, end), confirms, expected, confirmed = CASES[name]
    monitor = ViewMonitor(ViewConfig(resume=resume))
    states, answers = {}, []
    for i, image in enumerate(vtest):
        ts = i / FPS
        if ts in confirms:
            answers.append(monitor.confirm(accept_new_view=confirms[ts]))
        state = monitor.update(change(image) if start <= ts < end else image, ts)
        states[ts] = (state.status.value, state.awaiting_operator, state.back)
    assert {ts: states[ts] for ts in expected} == expected
    assert answers == confirmed


def test_a_confirmation_is_taken_once_and_a_broken_one_is_ignored(tmp_path):
    assert take_confirmation(tmp_path, "cam") is None
    request_confirmation(tmp_path, "cam", ViewConfirmation("ops", 1.5, accept_new_view=True))
    assert take_confirmation(tmp_path, "cam") == ViewConfirmation("ops", 1.5, True)
    assert take_confirmation(tmp_path, "cam") is None
    confirmation_path(tmp_path, "cam").write_text("{not json")
    assert take_confirmation(tmp_path, "cam") is None and not confirmation_path(tmp_path, "cam").exists()


# --- the real `detector run` ---

CLIP_FROM_S = 8.0  # the covered clip from 8 s: covered 4..18 s, played live (paced) and looped at 32 s


def trimmed(clip: Path, start_s: float, out: Path) -> Path:
    """The clip from start_s on (a shorter test: the file is played at its real pace)."""
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    index = 0
    while (ok := capture.read())[0]:
        if index >= start_s * fps:
            writer.write(ok[1])
        index += 1
    capture.release(), writer.release()
    return out


def view_confirm(config: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "detector", "view", "confirm", str(config), "--camera", "cam", "--by", "test-ops", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)


@pytest.mark.timeout(90)
def test_detector_run_stays_paused_past_the_views_return_until_the_operator_confirms(tmp_path):
    clip = trimmed(scenario_clip("nuisance-covered"), CLIP_FROM_S, tmp_path / "covered.mp4")
    store = tmp_path / "store"
    config = tmp_path / "config.yaml"
    settings = {
        "site": "view-test",
        "model": {"path": str(asset("models/yolov8n_320.onnx")), "threads": 1},
        "detect": {"fps": 2},
        "view": {"resume": "operator", "hold_s": 1},
        "storage_dir": str(store),
        "cameras": [{"id": "cam", "source": str(clip)}],
    }
    config.write_text(yaml.safe_dump(settings))
    proc = start_run(config, tmp_path / "run.log")
    try:
        view = lambda: (read_health(store, "cam") or {}).get("view") or {}  # noqa: E731
        wait_for(lambda: view().get("state") == "view_blocked", 40, "the covered view to be reported")
        refused = view_confirm(config)
        assert refused.returncode == 1 and "does not match its reference yet" in refused.stderr
        back = wait_for(lambda: view().get("back") and view(), 40, "the uncovered view to be reported back")
        assert (
            back["state"] == "view_blocked" and back["awaiting_operator"] and back["reason"]
        )  # blurred as the cover ramps in, or no contrast
        status = subprocess.run(
            [sys.executable, "-m", "detector", "status", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        assert "paused: view_blocked" in status.stdout and "the view is back; waiting for an operator" in status.stdout
        time.sleep(2)  # past its return by more than the hold: still paused
        assert view()["state"] == "view_blocked"

        confirmed = view_confirm(config)
        assert confirmed.returncode == 0, confirmed.stderr
        wait_for(lambda: view().get("state") == "ok", 10, "the view to resume after the confirmation")
    finally:
        proc.terminate()
        proc.wait(30)
    log = (tmp_path / "run.log").read_text()
    events = [line for line in log.splitlines() if "event=view_" in line]
    assert [re.search(r"event=(\w+)", line)[1] for line in events] == [
        "view_changed",
        "view_back",
        "view_confirmed",
        "view_restored",
    ], log[-3000:]
    assert "by=test-ops" in events[2] and "resumed=True" in events[2] and "accept_new_view=False" in events[2]
