"""Open alerts across a worker restart, as tables: Debouncer.restore, the factory continuing a
reopened alert, the state file OpenAlerts keeps, and the cross-process inference slots."""

import fcntl
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from conftest import make_alert

from detector.alerts import AlertFactory, OpenAlert, OpenAlerts, Provenance
from detector.budget import GatedDetector, InferenceSlots, create_slots, max_concurrent
from detector.config.schema import ViolationSettings, ViolationType
from detector.detect import Detector
from detector.detect.focus import Look
from detector.detections import Detections
from detector.rules.debounce import Candidate, Debouncer, State
from detector.rules.engine import ZoneEvent

SETTINGS = ViolationSettings(dwell_s=10, grace_s=3, clear_s=5, cooldown_s=20, update_s=30)
HERE = (0.10, 0.10, 0.20, 0.20)


def car(track_id: int = 7, settled: float = 0.0) -> Candidate:
    return Candidate(track_id=track_id, settled_since=settled, box=HERE, label="car", score=0.8)


def restored() -> Debouncer:
    d = Debouncer(SETTINGS)
    d.restore(0.0, (car(track_id=3),))
    return d


CASES = {
    # the car is still there (a new track id after the restart, settled again): no second start;
    # updates go on every update_s
    "still there": ([(t, [car(settled=3.0)]) for t in range(3, 32)], [("update", 30.0)]),
    # the car left during the restart: end after clear_s of the new stream, no start
    "gone": ([(t, []) for t in range(0, 8)], [("end", 5.0)]),
    # it reappears (tracker needs settle time) before clear_s: nothing
    "back within clear_s": ([(t, []) for t in range(0, 4)] + [(t, [car(settled=4.0)]) for t in range(4, 12)], []),
}


@pytest.mark.parametrize("name", CASES)
def test_restored_debouncer(name):
    steps, expected = CASES[name]
    d = restored()
    assert d.state is State.ACTIVE
    events = [(t.event, t.ts) for ts, cands in steps for t in d.update(float(ts), cands)]
    assert events == expected


def test_restored_end_cools_down_its_objects():
    d = restored()
    [end] = [t for ts in range(0, 6) for t in d.update(float(ts), [])]
    assert end.objects[0].box == HERE and end.reason == "cleared"
    assert d.update(7.0, [car(settled=6.0)]) == [] and d.update(20.0, [car(settled=6.0)]) == []  # cooling down until 25


def test_alert_factory_continues_the_restored_id_and_seq():
    origin = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    open_alerts = OpenAlerts()
    open_alerts.reopen(OpenAlert("gate", "illegal_parking", "01aa-old", 3, "2026-05-01T07:00:00.000Z", ()))
    factory = AlertFactory(Provenance("s", "c", "m", "x", "y"), lambda ts: origin + timedelta(seconds=ts), None, open_alerts)
    d = restored()
    transitions = [t for ts in range(0, 6) for t in d.update(float(ts), [])]
    event = ZoneEvent("gate", ViolationType.ILLEGAL_PARKING, np.zeros((4, 2), np.float32), transitions[0])
    alert = factory.build(event, np.zeros((4, 4, 3), np.uint8), 0.0)
    assert (alert.id, alert.seq, alert.event) == ("01aa-old", 4, "end")
    assert alert.first_seen_at == "2026-05-01T07:00:00.000Z" and alert.at == "2026-05-01T08:00:05.000Z"
    assert len(open_alerts) == 0  # the end closed it


def test_open_alerts_file_follows_start_update_end(tmp_path):
    path = tmp_path / "state" / "cam.json"
    book = OpenAlerts(path)

    def event(kind, seq):
        book.record(make_alert(zone="gate", id="A", seq=seq, event=kind))
        book.save()

    event("start", 1)
    event("update", 2)
    assert [(a.id, a.seq) for a in OpenAlerts(path).saved()] == [("A", 2)]
    event("end", 3)
    assert json.loads(path.read_text()) == {"open": []}
    path.write_text("{not json")
    assert OpenAlerts(path).saved() == []  # unreadable: logged, nothing restored, no crash


def test_inference_slots_limit_processes_and_survive_a_killed_holder(tmp_path):
    """One slot: a second process waits while the first holds it; SIGKILL of the holder frees it."""
    folder = create_slots(tmp_path / "slots", 1)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from detector.budget import InferenceSlots; s=InferenceSlots(sys.argv[1]); s.__enter__();"
            "print('held', flush=True); time.sleep(60)",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    slots = InferenceSlots(folder)
    started = time.monotonic()
    killer = subprocess.Popen(["sh", "-c", f"sleep 0.5; kill -9 {holder.pid}"])
    with slots:
        waited = time.monotonic() - started
    killer.wait(), holder.wait()
    assert 0.4 <= waited < 5 and slots.waited_s >= 0.4
    assert max_concurrent("auto", 1) >= 1 and max_concurrent(3, 1) == 3 and max_concurrent("auto", 64) == 1


class SlotProbe(Detector):
    """A model that finds nothing and notes, per call, whether the only inference slot was held."""

    def __init__(self, slot_file) -> None:
        self.slot_file, self.held = slot_file, []

    def detect(self, image):
        return self.detect_batch([image])[0]

    def detect_batch(self, images):
        with open(self.slot_file) as other:  # a second open file: its flock conflicts with the holder's
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.held.append(False)
            except BlockingIOError:
                self.held.append(True)
        return [Detections.empty() for _ in images]


def test_a_gated_batch_holds_one_inference_slot(tmp_path):
    folder = create_slots(tmp_path / "slots", 1)
    probe = SlotProbe(folder / "slot-0")
    gated = GatedDetector(probe, InferenceSlots(folder))
    assert len(gated.detect_batch([np.zeros((4, 4, 3), np.uint8)] * 3)) == 3
    gated.detect(np.zeros((4, 4, 3), np.uint8))
    assert probe.held == [True, True]


def test_restored_alert_shows_in_the_zone_state_with_its_id(tmp_path):
    """What the retained MQTT zone state publishes right after a worker restart; an alert of a
    zone no longer configured is dropped from the state file."""
    import os

    from conftest import ROOT, asset

    from detector.capture import Frame
    from detector.config import load_config
    from detector.detections import Detections
    from detector.worker import CameraPipeline

    os.chdir(ROOT)
    config = load_config(ROOT / "configs/demo.yaml")
    config = config.model_copy(update={"model": config.model.model_copy(update={"path": asset("models/yolox_nano.onnx")})})
    path = tmp_path / "state.json"
    saved = {
        "zone": "van-no-parking",
        "type": "illegal_parking",
        "id": "a-restored-id",
        "seq": 3,
        "first_seen_at": "2026-01-01T00:00:00.000Z",
        "objects": [{"label": "truck", "score": 0.7, "box": [0.85, 0.08, 0.94, 0.17]}],
    }
    path.write_text(json.dumps({"open": [saved, {**saved, "zone": "gone", "id": "dropped"}]}))
    pipeline = CameraPipeline.build(
        config, config.cameras[0], wall_of=lambda ts: datetime(2026, 1, 1, tzinfo=UTC), open_alerts=OpenAlerts(path)
    )
    assert [a.id for a in pipeline.restore_open_alerts()] == ["a-restored-id"]
    assert [a["id"] for a in json.loads(path.read_text())["open"]] == ["a-restored-id"]
    result = pipeline.track_and_judge(Look(Detections.empty()), Frame(np.zeros((576, 768, 3), np.uint8), 0.0, 0))
    states = result.zone_states()
    assert states["van-no-parking"]["illegal_parking"] == {"state": "active", "alert_id": "a-restored-id"}
    assert states["crossing"]["street_vending"] == {"state": "idle", "alert_id": None}
