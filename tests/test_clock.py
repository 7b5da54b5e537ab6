"""The box's wall clock set back an hour during a live run (docs/edge.md "Wall clock"): alert
ids stay unique and increasing, `at` follows the wall clock, schedules are evaluated on the new
wall time. The clock is injected where the code reads it (AlertIds, StreamWall), never patched."""

import uuid
from datetime import UTC, datetime, timedelta

from conftest import ROOT, asset

from detector.alerts.ids import AlertIds
from detector.capture import open_source
from detector.config import load_config
from detector.run import StreamWall
from detector.worker import CameraPipeline

HOUR = timedelta(hours=1)


class SettableClock:
    """A wall clock that a test moves: `now` (datetime, UTC)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def ns(self) -> int:
        return int(self.now.timestamp() * 1e9)


def millis_of(alert_id: str) -> int:
    return uuid.UUID(alert_id).int >> 80


def test_ids_never_go_backwards_when_the_clock_does():
    clock = SettableClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    ids = AlertIds(clock_ns=clock.ns)
    made = [ids() for _ in range(3)]
    clock.now -= HOUR
    made += [ids() for _ in range(1000)]  # many within one (frozen) millisecond, too
    clock.now += HOUR + timedelta(seconds=1)
    made += [ids()]
    assert len(set(made)) == len(made)
    assert made == sorted(made)  # as strings, the way a centre would sort them
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in made)
    assert millis_of(made[3]) == millis_of(made[2])  # behind: the last id's millisecond, counting on
    assert millis_of(made[-1]) == int((clock.now.timestamp()) * 1000)  # caught up: the clock's time again


def test_stream_wall_follows_a_clock_step_and_keeps_durations():
    start = datetime(2026, 3, 2, 10, 59, 0, tzinfo=UTC)
    clock = SettableClock(start)
    wall = StreamWall(clock)
    for ts, lag in ((0.0, 0.3), (0.5, 0.1), (1.0, 2.5)):
        clock.now = start + timedelta(seconds=ts + lag)  # frames processed late, some later than others
        wall.record(ts, 0.0)
    assert wall(1.0) == start + timedelta(seconds=1.3)  # anchored at the first frame: lag jitter does not move it
    clock.now = start + timedelta(seconds=20) - HOUR  # set back an hour
    wall.record(20.0, 0.0)
    assert wall(20.0) == clock.now
    assert wall(1.0) == start + timedelta(seconds=1) - HOUR  # moments already seen move with it
    clock.now += timedelta(seconds=40)  # an 8 s outage, then 32 s more: a gap anchors afresh
    wall.record(52.0, 8.0)
    assert wall(52.0) == clock.now and wall(20.0) == start + timedelta(seconds=20) - HOUR


def test_a_live_run_follows_the_clock_set_back_an_hour(tmp_path):
    """vtest's parked van in a zone enforced 10:00-11:00 (Europe/London = UTC in March), frames
    fed as a live worker does. The van's alert starts 10 s in; at 20 s the clock is set back an
    hour (09:59:55): the zone is outside its window on the new time, so the alert ends (reason
    `schedule`) with `at` on the new clock; at 10:00:00 the window opens and the van, parked for
    longer than its dwell, is alerted again at once under a new, greater id."""
    text = (ROOT / "configs/demo.yaml").read_text()
    text = text.replace("models/yolov8n.onnx", str(asset("models/yolov8n.onnx")))
    text = text.replace("sample_videos/clips/vtest.avi", str(asset("sample_videos/clips/vtest.avi")))
    text = text.replace("detect: {fps: 2,", "detect: {fps: 1,").replace("cooldown_s: 300", "cooldown_s: 0")
    text = text.replace(
        "violations: [illegal_parking]\n",
        "violations: [illegal_parking]\n        dwell_s: 10\n        schedule: ['daily 10:00-11:00']\n",
        1,
    )
    (tmp_path / "site.yaml").write_text(text)
    config = load_config(tmp_path / "site.yaml")
    camera = config.camera("vtest")
    camera = camera.model_copy(update={"zones": camera.zones[:1]})  # the van's zone only: fewer rules to wait for

    start = datetime(2026, 3, 2, 10, 59, 35, tzinfo=UTC)
    clock = SettableClock(start)
    wall = StreamWall(clock)
    pipeline = CameraPipeline.build(config, camera, wall_of=wall)
    alerts = []
    with open_source(camera.source, config.detect.fps) as source:
        for frame in source.frames():
            if frame.ts > 45:
                break
            clock.now = start + timedelta(seconds=frame.ts) - (HOUR if frame.ts >= 20 else timedelta(0))
            wall.record(frame.ts, frame.gap_before_s)
            alerts += pipeline.process(frame).alerts
    pipeline.close()

    events = [(a.event, a.stream_time_s, a.at, a.reason) for a in alerts]
    assert [e[0] for e in events] == ["start", "end", "start"], events
    first, end, second = alerts
    assert first.at.startswith("2026-03-02T10:59:4")  # 10 s of dwell after the van settled
    assert (end.id, end.reason, end.stream_time_s) == (first.id, "schedule", 20.0)
    assert end.at == "2026-03-02T09:59:55.000Z"  # the new wall time, an hour before the start's
    assert (second.at, second.stream_time_s) == ("2026-03-02T10:00:00.000Z", 25.0)  # the window reopened
    seen = datetime.fromisoformat(second.first_seen_at)  # on the new clock: the dwell measured is true
    assert datetime.fromisoformat(second.at) - seen == timedelta(seconds=second.stream_time_s - second.first_seen_s)
    assert second.id != first.id and second.id > first.id
