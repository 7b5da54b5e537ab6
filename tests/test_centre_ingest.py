"""The centre's ingest on real parts: a real mosquitto, the centre as its users run it (`detector
centre --no-web`, a subprocess) on SQLite and on a real PostgreSQL, and alerts, snapshots, status
and health published by a plain paho client as the edge boxes do. Every result is read from the
database itself: cases, events, evidence, rejections, flags; none from the centre's own word."""

import hashlib
import json
import math
import os
import sqlite3
import threading
import time
import uuid
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from centre_process import Centre
from conftest import make_alert, wait_for
from mqtt_broker import Mosquitto, needs_mosquitto
from postgres_server import BIN, Postgres

from detector.alerts.alert import AlertEvent, AlertObject, Snapshot

pytestmark = [needs_mosquitto, pytest.mark.timeout(120)]
SITE = "s1"
# an alert's row with its case and camera, to ask "which case, which camera" in one query
ALERTS = "centre_alert a JOIN centre_case c ON c.id = a.case_id JOIN centre_camera m ON m.id = c.camera_id"
CASES = "centre_case c JOIN centre_camera m ON m.id = c.camera_id"


# --- the parts ------------------------------------------------------------------------------------


class Database:
    """The centre's tables read with plain SQL: SQLite's file, or PostgreSQL through psql as the
    superuser (rows come back as JSON, so both give dicts with typed values)."""

    def __init__(self, path: Path | None = None, pg: Postgres | None = None, name: str = "") -> None:
        self.path, self.pg, self.name = path, pg, name

    def rows(self, query: str) -> list[dict]:
        if self.pg is not None:
            return json.loads(self.pg.sql(f"SELECT coalesce(json_agg(q), '[]') FROM ({query}) q", database=self.name))
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(query)]

    def value(self, query: str):
        rows = self.rows(query)
        return next(iter(rows[0].values())) if rows else None


def centre_on(
    backend: str, folder: Path, broker: Mosquitto, pg: Postgres | None, client_id: str, database: str = "", **overrides
) -> tuple[Centre, Database]:
    """A centre (not started) on SQLite or on a database of its own on the module's PostgreSQL
    (`database`: one that exists already, shared with another instance)."""
    if backend == "sqlite":
        centre = Centre(folder, broker, client_id=client_id, **overrides)
        return centre, Database(path=centre.folder / "centre.sqlite3")
    if not database:
        database = "db_" + client_id.replace("-", "_")
        pg.sql(f"CREATE DATABASE {database} OWNER detector")
    centre = Centre(folder, broker, pg, client_id=client_id, database={"name": database}, **overrides)
    return centre, Database(pg=pg, name=database)


class Edge:
    """Publishes as an edge box does: QoS 1, each message acknowledged by the broker before the
    next (so a test knows the broker has it)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(f"city/{topic}", payload, qos=qos, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), topic

    def alert(self, alert) -> None:
        self.send(f"{alert.site}/{alert.camera}/alert", alert.to_bytes())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Mosquitto(tmp_path_factory.mktemp("broker")).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def edge(broker):
    e = Edge(broker)
    yield e
    e.close()


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    """The module's PostgreSQL: skipped on a developer machine without it, a failure in CI."""
    if BIN is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (scripts/test.sh installs it)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; scripts/test.sh does it)")
    server = Postgres(tmp_path_factory.mktemp("postgres")).start().create_database()
    yield server
    server.stop()


class Live:
    def __init__(self, centre: Centre, db: Database) -> None:
        self.centre, self.db = centre, db


def running(request, tmp_path_factory, broker, name: str):
    """A started centre on the backend `request.param`, in a share group of its own (no other
    centre of this module takes its messages), with a payload limit of 2048 bytes (the oversized
    case), dark after 60 s and a fleet check every second (the fleet cases)."""
    pg = request.getfixturevalue("pg") if request.param == "postgresql" else None
    client_id = f"{name}-{request.param}-{uuid.uuid4().hex[:6]}"
    centre, db = centre_on(
        request.param,
        tmp_path_factory.mktemp(client_id),
        broker,
        pg,
        client_id,
        mqtt={"max_payload_bytes": 2048, "share_group": client_id},
        fleet={"dark_after_s": 60, "check_interval_s": 1},
    )
    centre.start(web=False)
    yield Live(centre, db)
    alive = centre.process.poll() is None
    centre.stop()
    assert alive, f"the centre died: {centre.log[-3000:]}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, tmp_path_factory, broker):
    """One centre per backend for the tests that publish what an edge box sends, and read."""
    yield from running(request, tmp_path_factory, broker, "live")


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request, tmp_path_factory, broker):
    """A centre of its own for a test of hostile input: one that wedges or kills ingest fails
    that test alone, not every test after it."""
    yield from running(request, tmp_path_factory, broker, "fresh")


# --- payloads -------------------------------------------------------------------------------------


def jpeg(shade: int) -> bytes:
    return cv2.imencode(".jpg", np.full((48, 64, 3), shade, np.uint8))[1].tobytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def alert(camera: str, *, id: str = "", seq: int = 1, event: str = "start", box=(0.1, 0.2, 0.3, 0.4), picture=None, **fields):
    """A detector.alert/1 event of site s1; `picture`: the JPEG its start announces."""
    event = AlertEvent(event)
    return make_alert(
        id=id or str(uuid.uuid4()),
        seq=seq,
        event=event,
        site=SITE,
        camera=camera,
        objects=(AlertObject("car", 0.8, tuple(box), 1),) if box else (),
        snapshot=Snapshot(f"evidence/{camera}.jpg", sha(picture)) if picture else None,
        reason="cleared" if event is AlertEvent.END else None,
        **fields,
    )


def follow(start, seq: int, event: str, **fields):
    """A later event of the alert `start`."""
    event = AlertEvent(event)
    return replace(start, seq=seq, event=event, snapshot=None, reason="cleared" if event is AlertEvent.END else None, **fields)


def as_json(value):
    return json.loads(value) if isinstance(value, str) else value


def when(value) -> datetime:
    """A timestamp column as read back: PostgreSQL's JSON has an offset, SQLite's text is UTC."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def events_of(db: Database, alert_id: str) -> list[dict]:
    return db.rows(
        "SELECT e.seq, e.event, e.delayed, e.payload FROM centre_alertevent e JOIN centre_alert a ON a.id = e.alert_id "
        f"WHERE a.alert_id = '{alert_id}' ORDER BY e.seq, e.id"
    )


def alert_row(db: Database, alert_id: str) -> dict | None:
    rows = db.rows(f"SELECT a.*, c.state AS case_state FROM {ALERTS} WHERE a.alert_id = '{alert_id}'")
    return rows[0] if rows else None


def cases_of(db: Database, camera: str) -> list[dict]:
    return db.rows(f"SELECT c.* FROM {CASES} WHERE m.site = '{SITE}' AND m.camera = '{camera}' ORDER BY c.id")


def evidence_path(live: Live, camera: str, alert_id: str) -> Path:
    return live.centre.folder / "store" / "evidence" / SITE / camera / f"{alert_id}.jpg"


# --- one alert, once ---------------------------------------------------------------------------------


def test_start_update_end_is_one_case_with_its_evidence_resolved_by_the_system(live, edge):
    picture = jpeg(90)
    start_ = alert("cam-life", picture=picture)
    edge.alert(start_)
    edge.send(f"{SITE}/cam-life/snapshot/{start_.id}", picture)
    edge.alert(follow(start_, 2, "update", confidence=0.9))
    end = follow(start_, 3, "end", at="2026-05-01T07:05:00.000Z", confidence=0.85)
    edge.alert(end)

    row = wait_for(
        lambda: (r := alert_row(live.db, start_.id)) and r["case_state"] == "SELF_RESOLVED" and r["evidence"] == "ok" and r,
        20,
        "the case resolved with its evidence",
    )
    assert [(e["seq"], e["event"], bool(e["delayed"])) for e in events_of(live.db, start_.id)] == [
        (1, "start", False),
        (2, "update", False),
        (3, "end", False),
    ]
    assert as_json(events_of(live.db, start_.id)[0]["payload"]) == start_.to_json()  # stored as published
    latest = (row["last_seq"], row["confidence"], row["ended_at"], row["end_reason"])
    assert latest == (3, 0.85, end.at, "cleared")  # the latest event's
    assert row["snapshot_sha256"] == sha(picture)
    kept = live.centre.folder / "store" / row["snapshot_file"]
    assert kept == evidence_path(live, "cam-life", start_.id) and sha(kept.read_bytes()) == sha(picture)

    cases = cases_of(live.db, "cam-life")
    assert [(c["kind"], c["type"], c["zone"], c["state"]) for c in cases] == [
        ("violation", "illegal_parking", "kerb", "SELF_RESOLVED")
    ]
    moves = live.db.rows(
        f"SELECT from_state, to_state, by_id FROM centre_transition WHERE case_id = {cases[0]['id']} ORDER BY id"
    )
    assert [(m["from_state"], m["to_state"], m["by_id"]) for m in moves] == [("", "NEW", None), ("NEW", "SELF_RESOLVED", None)]


def test_repeats_and_delayed_resends_are_stored_once(live, edge):
    first = alert("cam-dup")
    update = follow(first, 2, "update")
    for message in (first, first, first, first.with_delayed(), update, update.with_delayed(), update):
        edge.alert(message)
    # one subscriber gets one publisher's messages in order: once the fence is stored, all are
    fence = alert("cam-dup", zone="fence")
    edge.alert(fence)
    wait_for(lambda: events_of(live.db, fence.id), 20, "the fence alert")

    assert [(e["seq"], bool(e["delayed"])) for e in events_of(live.db, first.id)] == [(1, False), (2, False)]
    assert [c["zone"] for c in cases_of(live.db, "cam-dup")] == ["kerb", "fence"]
    assert live.db.value(f"SELECT count(*) FROM centre_alert WHERE alert_id = '{first.id}'") == 1
    assert live.db.rows("SELECT reason FROM centre_rejection WHERE topic LIKE '%/cam-dup/%'") == []  # a no-op, not a refusal


# --- which alerts make one case ------------------------------------------------------------------------

# (alert, type, zone, box, the alert that opened its case); published in this order, each stored
# before the next. The case's box is its latest alert's.
JOINS = [
    ("a", "illegal_parking", "kerb", (0.10, 0.10, 0.30, 0.30), "a"),
    ("b", "illegal_parking", "kerb", (0.12, 0.12, 0.32, 0.32), "a"),  # IoU 0.68 with a's box
    ("c", "illegal_parking", "kerb", (0.60, 0.60, 0.80, 0.80), "c"),  # far away: another object
    ("d", "illegal_parking", "kerb", (0.24, 0.12, 0.44, 0.32), "d"),  # IoU 0.25 with b's: under 0.3
    ("h", "illegal_parking", "kerb", (0.12, 0.22, 0.32, 0.42), "a"),  # IoU 0.33 with b's, 0.11 with d's
    ("e", "street_vending", "kerb", (0.60, 0.60, 0.80, 0.80), "e"),  # c's box, another type
    ("f", "illegal_parking", "bay", (0.60, 0.60, 0.80, 0.80), "f"),  # c's box, another zone
    ("g", "illegal_parking", "kerb", None, "d"),  # no box: zone-wide, the newest open case
]


def test_an_overlapping_alert_of_the_same_camera_zone_and_type_joins_the_open_case(live, edge):
    ids = {}
    for name, type_, zone, box, _ in JOINS:
        message = alert("cam-join", type=type_, zone=zone, box=box)
        ids[name] = message.id
        edge.alert(message)
        wait_for(lambda m=message: alert_row(live.db, m.id), 20, f"alert {name}")

    case_of = {name: alert_row(live.db, ids[name])["case_id"] for name, *_ in JOINS}
    for name, *_, opener in JOINS:
        assert case_of[name] == case_of[opener], f"{name} should be in {opener}'s case"
    assert len(set(case_of.values())) == len({opener for *_, opener in JOINS}) == 5

    # a finished case takes no new alert: c ends (its case resolves), the same box again is a new case
    edge.alert(follow(alert("cam-join", id=ids["c"], box=JOINS[2][3]), 2, "end"))
    wait_for(lambda: alert_row(live.db, ids["c"])["case_state"] == "SELF_RESOLVED", 20, "c's case resolved")
    again = alert("cam-join", box=JOINS[2][3])
    edge.alert(again)
    row = wait_for(lambda: alert_row(live.db, again.id), 20, "the alert after c's end")
    assert row["case_id"] not in case_of.values() and row["case_state"] == "NEW"
    assert len(cases_of(live.db, "cam-join")) == 6


# --- evidence ---------------------------------------------------------------------------------------

# (case, the snapshot comes before its start, the snapshot is the JPEG the start announced, evidence)
SNAPSHOTS = [
    ("before its alert", True, True, "ok"),
    ("after its alert, other bytes", False, False, "mismatch"),
    ("before its alert, other bytes", True, False, "mismatch"),
]


@pytest.mark.parametrize(("case", "first", "same", "evidence"), SNAPSHOTS, ids=[s[0] for s in SNAPSHOTS])
def test_a_snapshot_is_kept_only_when_its_sha256_matches_the_start(live, edge, case, first, same, evidence):
    camera = f"cam-snap-{SNAPSHOTS.index((case, first, same, evidence))}"
    announced = jpeg(40)
    start_ = alert(camera, picture=announced)
    topic = f"{SITE}/{camera}/snapshot/{start_.id}"
    sent = announced if same else jpeg(200)
    if first:
        edge.send(topic, sent)
        wait_for(lambda: live.db.rows(f"SELECT * FROM centre_pendingsnapshot WHERE alert_id = '{start_.id}'"), 20, "kept aside")
    edge.alert(start_)
    if not first:
        edge.send(topic, sent)
    row = wait_for(lambda: (r := alert_row(live.db, start_.id)) and r["evidence"] not in ("", "waiting") and r, 20, "evidence")

    assert row["evidence"] == evidence
    assert live.db.rows(f"SELECT * FROM centre_pendingsnapshot WHERE alert_id = '{start_.id}'") == []
    path = evidence_path(live, camera, start_.id)
    refusals = live.db.rows(f"SELECT reason FROM centre_rejection WHERE topic = 'snapshot/{start_.id}'")
    if evidence == "ok":
        assert sha(path.read_bytes()) == sha(announced) and row["snapshot_file"] and refusals == []
    else:
        assert not path.exists() and not row["snapshot_file"]
        assert len(refusals) == 1 and "is not the alert's" in refusals[0]["reason"]
    assert not list(path.parent.glob("*.part*"))


def test_a_later_snapshot_of_other_bytes_does_not_replace_good_evidence(live, edge):
    good = jpeg(60)
    start_ = alert("cam-snap-late", picture=good)
    edge.alert(start_)
    edge.send(f"{SITE}/cam-snap-late/snapshot/{start_.id}", good)
    wait_for(lambda: (r := alert_row(live.db, start_.id)) and r["evidence"] == "ok", 20, "evidence ok")
    edge.send(f"{SITE}/cam-snap-late/snapshot/{start_.id}", jpeg(220))
    wait_for(lambda: live.db.rows(f"SELECT reason FROM centre_rejection WHERE topic = 'snapshot/{start_.id}'"), 20, "refused")

    assert alert_row(live.db, start_.id)["evidence"] == "ok"
    assert sha(evidence_path(live, "cam-snap-late", start_.id).read_bytes()) == sha(good)


# --- bad input --------------------------------------------------------------------------------------


DROP = object()


def _payload(camera: str, changes: dict) -> bytes:
    """A valid alert of s1/`camera` as JSON, with fields changed (DROP: removed)."""
    data = alert(camera).to_json() | changes
    return json.dumps({k: v for k, v in data.items() if v is not DROP}).encode()


A_ID = "0192f0c2-7a1b-7c3d-8e4f-0123456789ab"
# (what, topic under city/ ({cam}: a camera of its own), payload (a dict: changes to a valid alert),
# words of the refusal's reason)
BAD = [
    ("not JSON", "s1/{cam}/alert", b"\xff\xfe not json", "not JSON"),
    ("JSON of another schema", "s1/{cam}/alert", b'{"schema": "other/1", "id": "x"}', "schema must be"),
    ("a JSON array", "s1/{cam}/alert", b"[1, 2]", "expected a JSON object"),
    ("a field missing", "s1/{cam}/alert", {"seq": DROP}, "missing field(s) seq"),
    ("seq as text", "s1/{cam}/alert", {"seq": "1"}, "seq must be an integer"),
    ("an unknown event", "s1/{cam}/alert", {"event": "pause"}, "not an event"),
    ("a NaN confidence", "s1/{cam}/alert", {"confidence": math.nan}, "finite number"),
    ("over max_payload_bytes", "s1/{cam}/alert", {"padding": "x" * 3000}, "over the limit of 2048"),
    ("another camera than its topic", "s1/{cam}/alert", {"camera": "elsewhere"}, "payload is of s1/elsewhere, topic of s1/bad"),
    ("JSON nested 2,000 deep", "s1/{cam}/alert", b"[" * 2000, "nested too deeply"),
    ("an alert id over 64 characters", "s1/{cam}/alert", {"id": "i" * 65}, "is not an id"),
    ("a type over 32 characters", "s1/{cam}/alert", {"type": "t" * 33}, "is not an id"),
    ("a seq beyond 32 bits", "s1/{cam}/alert", {"seq": 2**31}, "seq"),
    ("a time over 40 characters", "s1/{cam}/alert", {"at": "2026-05-01T07:00:00.000Z" + "0" * 20}, "40 characters"),
    ("a box of words", "s1/{cam}/alert", {"objects": [{"label": "car", "score": 0.8, "box": ["a", "b", "c", "d"]}]}, "box"),
    ("a box with NaN", "s1/{cam}/alert", {"objects": [{"label": "car", "score": 0.8, "box": [0.1, 0.2, math.nan, 0.4]}]}, "box"),
    ("a NUL in a text", "s1/{cam}/alert", {"first_seen_at": "2026-05-01T07:00\u0000"}, "NUL"),
    ("a NUL in the zone", "s1/{cam}/alert", {"zone": "ke\u0000rb"}, "zone"),
    ("a lone surrogate in the zone", "s1/{cam}/alert", {"zone": "ke\ud800rb"}, "zone"),
    ("a sha256 that is none", "s1/{cam}/alert", {"snapshot": {"path": "x.jpg", "sha256": "z" * 65}}, "sha256"),
    ("a site id over 64 characters", "%s/{cam}/alert" % ("s" * 65), b"{}", "not an id"),
    ("a camera id with a space", "s1/{cam} x/alert", b"{}", "not an id"),
    ("a snapshot that is not a JPEG", f"s1/{{cam}}/snapshot/{A_ID}", b"GIF89a....", "not a JPEG"),
    ("a snapshot under no alert id", "s1/{cam}/snapshot/not_an_id!", jpeg(10), "not an alert id"),
    ("a snapshot outside its folder", f"../../snapshot/{A_ID}", jpeg(10), "not an id"),
    ("a zone id over 64 characters: no topic of ours", "s1/{cam}/zone/%s/state" % ("z" * 65), b"{}", "unknown topic"),
    ("a zone state that is not an object", "s1/{cam}/zone/kerb/state", b"[1]", "zone state is not"),
    ("a zone state with NaN", "s1/{cam}/zone/kerb/state", b'{"states": {"illegal_parking": {"n": NaN}}}', "NaN"),
    ("a status neither online nor offline", "s1/{cam}/status", b"maybe", "must be online or offline"),
    ("health that is not an object", "s1/{cam}/health", b"[]", "health is not a JSON object"),
    ("health with a NUL", "s1/{cam}/health", b'{"state": "run\\u0000ning"}', "NUL"),
]


def test_bad_payloads_are_refused_with_a_reason_and_ingest_goes_on(fresh, edge):
    topics = []
    for i, (_, topic, payload, _) in enumerate(BAD):
        topics.append(topic.format(cam=f"bad{i}"))
        edge.send(topics[-1], _payload(f"bad{i}", payload) if isinstance(payload, dict) else payload)
    # a valid alert where a bad one was (its case must not be poisoned); stored last, after all of them
    valid = alert(f"bad{[b[0] for b in BAD].index('a box of words')}")
    edge.alert(valid)
    wait_for(lambda: alert_row(fresh.db, valid.id), 20, "the valid alert after the bad ones")

    reasons = {r["topic"]: r["reason"] for r in fresh.db.rows("SELECT topic, reason FROM centre_rejection")}
    for (what, _, _, words), topic in zip(BAD, topics, strict=True):
        reason = reasons.get(f"city/{topic}"[:300])
        assert reason is not None, f"{what}: not refused"
        assert words in reason and not reason.startswith("internal error"), f"{what}: {reason!r}"
    assert fresh.centre.process.poll() is None
    # nothing of them was stored: no other camera with a case, no file outside the evidence
    assert [r["camera"] for r in fresh.db.rows(f"SELECT m.camera FROM {CASES} WHERE m.camera LIKE 'bad%'")] == [valid.camera]
    assert not (fresh.centre.folder / f"{A_ID}.jpg").exists()


def test_an_alert_id_another_camera_used_is_refused_not_filed_in_its_case(live, edge):
    first = alert("cam-owner")
    edge.alert(first)
    wait_for(lambda: alert_row(live.db, first.id), 20, "the first camera's alert")
    edge.alert(replace(alert("cam-thief"), id=first.id, seq=2, event=AlertEvent.UPDATE))
    topic = f"city/{SITE}/cam-thief/alert"
    refusal = wait_for(lambda: live.db.rows(f"SELECT reason FROM centre_rejection WHERE topic = '{topic}'"), 20, "refused")
    assert refusal[0]["reason"] == f"alert id {first.id} is already filed under camera {SITE}/cam-owner"
    assert (
        live.db.value(
            f"SELECT count(*) FROM centre_alertevent e JOIN centre_alert a ON a.id = e.alert_id WHERE a.alert_id = '{first.id}'"
        )
        == 1
    )


# --- the broker keeps what the centre missed -------------------------------------------------------------


def test_what_is_published_while_the_centre_is_down_arrives_when_it_is_back(tmp_path, broker, edge):
    centre, db = centre_on("sqlite", tmp_path / "centre", broker, None, "persist", mqtt={"share_group": "persist"})
    centre.start(web=False)
    centre.stop()
    sent = [alert(f"cam-p{i % 3}", zone=f"z{i}") for i in range(30)]
    for message in sent:
        edge.alert(message)
    try:
        centre.start(web=False)
        wait_for(lambda: db.value("SELECT count(*) FROM centre_alertevent") >= 30, 30, "the alerts queued at the broker")
        time.sleep(0.5)  # a repeat would land now
        assert sorted(r["alert_id"] for r in db.rows("SELECT alert_id FROM centre_alert")) == sorted(a.id for a in sent)
        assert db.value("SELECT count(*) FROM centre_alertevent") == 30
        assert "session resumed" in centre.log
    finally:
        centre.stop()


# --- several instances ----------------------------------------------------------------------------------


def test_two_instances_share_the_alerts_and_store_each_once(tmp_path, broker, edge, pg):
    """Both in the default share group on one database: each message goes to one of them; the
    camera lock keeps one object in one case even when its alerts go to both."""
    one, db = centre_on("postgresql", tmp_path / "a", broker, pg, "share-a")
    two, _ = centre_on("postgresql", tmp_path / "b", broker, pg, "share-b", database=db.name)
    one.start(web=False)
    two.start(web=False)
    try:
        n = 200
        sent = [alert(f"cam-{i % 5}", zone=f"z{i}") for i in range(n)]
        same = [alert("cam-same", box=(0.4, 0.4, 0.6, 0.6)) for _ in range(20)]  # one object, 20 alerts
        for i, message in enumerate(sent):
            edge.alert(message)
            if i % 10 == 0:
                edge.alert(same[i // 10])
        wait_for(lambda: db.value("SELECT count(*) FROM centre_alertevent") >= n + 20, 60, "every alert stored")
        time.sleep(0.5)

        assert db.value("SELECT count(*) FROM centre_alertevent") == n + 20
        assert db.value("SELECT count(*) FROM centre_alert") == n + 20
        assert db.value(f"SELECT count(*) FROM {CASES} WHERE m.camera LIKE 'cam-_'") == n
        assert db.value(f"SELECT count(*) FROM {CASES} WHERE m.camera = 'cam-same'") == 1
        log = (broker.folder / "mosquitto.log").read_text()
        took = {who: log.count(f"Sending PUBLISH to {who} (") for who in ("share-a", "share-b")}
        assert all(count > n // 4 for count in took.values()), took
        print(f"\nshared: {took}")
    finally:
        one.stop()
        two.stop()


# --- faults mid-stream ------------------------------------------------------------------------------------


def stream(edge: Edge, alerts: int, cameras: int, pause_s: float) -> tuple[threading.Thread, list[tuple[str, int]]]:
    """Publish `alerts` alerts (start, update, end each; one zone each, so no joins) in a thread;
    the (id, seq) sent so far."""
    sent: list[tuple[str, int]] = []

    def run() -> None:
        for i in range(alerts):
            start_ = alert(f"cam-{i % cameras}", zone=f"z{i}")
            for message in (start_, follow(start_, 2, "update"), follow(start_, 3, "end")):
                edge.alert(message)
                sent.append((message.id, message.seq))
                time.sleep(pause_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, sent


def assert_each_once(db: Database, sent: list[tuple[str, int]], alerts: int) -> None:
    wait_for(lambda: db.value("SELECT count(*) FROM centre_alertevent") >= len(sent), 60, "every event stored")
    time.sleep(0.5)  # a repeat would land now
    stored = [
        (r["alert_id"], r["seq"])
        for r in db.rows(f"SELECT a.alert_id, e.seq FROM centre_alertevent e JOIN {ALERTS} ON a.id = e.alert_id")
    ]
    assert len(stored) == len(sent) and set(stored) == set(sent)
    cases = db.rows("SELECT case_id, count(*) AS n FROM centre_alert GROUP BY case_id")
    assert len(cases) == alerts and {c["n"] for c in cases} == {1}  # no duplicate case, none lost
    assert db.value("SELECT count(*) FROM centre_case WHERE state <> 'SELF_RESOLVED'") == 0


def test_a_database_restart_mid_stream_loses_and_duplicates_nothing(tmp_path, broker, edge, pg):
    centre, db = centre_on("postgresql", tmp_path / "centre", broker, pg, "db-restart", mqtt={"share_group": "db-restart"})
    centre.start(web=False)
    try:
        thread, sent = stream(edge, 50, 4, 0.03)
        wait_for(lambda: len(sent) >= 40, 20, "the stream under way")
        pg.stop("fast")
        time.sleep(3)
        pg.start()
        thread.join(60)
        assert len(sent) == 150
        assert_each_once(db, sent, 50)
        assert "database write failed" in centre.log  # the outage did reach ingest
        assert centre.process.poll() is None
    finally:
        centre.stop()


def test_a_centre_killed_mid_stream_loses_and_duplicates_nothing(tmp_path, broker, edge, pg):
    centre, db = centre_on("postgresql", tmp_path / "centre", broker, pg, "killed", mqtt={"share_group": "killed"})
    centre.start(web=False)
    try:
        thread, sent = stream(edge, 50, 4, 0.002)  # faster than it stores them: killed with a backlog in flight
        wait_for(lambda: db.value("SELECT count(*) FROM centre_alertevent") >= 30, 20, "the stream under way")
        centre.stop(kill=True)
        time.sleep(1)
        centre.start(web=False)
        thread.join(60)
        assert len(sent) == 150
        assert_each_once(db, sent, 50)
        assert "session resumed" in centre.log  # the broker kept what the killed one had not acknowledged
    finally:
        centre.stop()


# --- the fleet --------------------------------------------------------------------------------------------


def health(camera: str, frame_age_s, view=None) -> bytes:
    return json.dumps(
        {"schema": "detector.health/1", "site": SITE, "camera": camera, "at": "2026-05-01T07:00:00.000Z", "state": "running",
         "stream": "connected", "frame_age_s": frame_age_s, "fps_out": 1.0, "open_alerts": 0, "view": view}
    ).encode()  # fmt: skip


def camera_row(db: Database, camera: str) -> dict | None:
    rows = db.rows(f"SELECT * FROM centre_camera WHERE site = '{SITE}' AND camera = '{camera}'")
    return rows[0] if rows else None


def maintenance(db: Database, camera: str) -> list[dict]:
    return [c for c in cases_of(db, camera) if c["kind"] == "maintenance"]


def test_status_and_health_reach_the_camera_and_a_dark_one_gets_one_maintenance_case(live, edge):
    cam = "cam-fleet"
    edge.send(f"{SITE}/{cam}/status", b"online", retain=True)
    edge.send(f"{SITE}/{cam}/health", health(cam, 0.2), qos=0)
    row = wait_for(lambda: (r := camera_row(live.db, cam)) and r["status"] == "online" and r["last_frame_at"] and r, 20, "health")
    assert abs(when(row["last_frame_at"]) - datetime.now(UTC)) < timedelta(seconds=30)
    assert as_json(row["health"])["fps_out"] == 1.0 and row["flag"] == ""

    edge.send(f"{SITE}/{cam}/health", health(cam, 4000), qos=0)
    row = wait_for(lambda: (r := camera_row(live.db, cam)) and r["flag"] == "camera_dark" and r, 20, "the camera flagged dark")
    assert abs(when(row["flag_since"]) - (datetime.now(UTC) - timedelta(seconds=4000))) < timedelta(seconds=30)
    deadline = time.monotonic() + 3.5  # three more fleet checks: still one case
    while time.monotonic() < deadline:
        cases = maintenance(live.db, cam)
        assert [(c["type"], c["state"]) for c in cases] in ([], [("camera_dark", "NEW")]), cases
        time.sleep(0.2)
    assert len(maintenance(live.db, cam)) == 1

    edge.send(f"{SITE}/{cam}/health", health(cam, 0.1), qos=0)
    wait_for(lambda: maintenance(live.db, cam)[0]["state"] == "SELF_RESOLVED", 20, "the maintenance case resolved")
    assert camera_row(live.db, cam)["flag"] == ""
    moves = live.db.rows(
        f"SELECT to_state, by_id FROM centre_transition WHERE case_id = {maintenance(live.db, cam)[0]['id']} ORDER BY id"
    )
    assert [(m["to_state"], m["by_id"]) for m in moves] == [("NEW", None), ("SELF_RESOLVED", None)]

    edge.send(f"{SITE}/{cam}/status", b"offline", retain=True)
    wait_for(lambda: camera_row(live.db, cam)["status"] == "offline", 20, "offline")


def test_health_with_absurd_numbers_does_not_stop_the_health_writer(fresh, edge):
    """A frame age or a view time no clock can hold: the camera is dark (not a crash of the thread
    that writes every camera's health)."""
    edge.send(f"{SITE}/cam-absurd/health", health("cam-absurd", 1e300, view={"state": "view_changed", "since": 1e300}), qos=0)
    edge.send(f"{SITE}/cam-absurd2/health", health("cam-absurd2", 10**30), qos=0)
    wait_for(lambda: (r := camera_row(fresh.db, "cam-absurd")) and r["flag"] == "camera_dark", 20, "the absurd camera dark")
    wait_for(lambda: (r := camera_row(fresh.db, "cam-absurd2")) and r["flag"] == "camera_dark", 20, "the other one dark")
    edge.send(f"{SITE}/cam-after/health", health("cam-after", 0.5), qos=0)
    wait_for(lambda: (r := camera_row(fresh.db, "cam-after")) and r["last_frame_at"], 20, "the next health written")
