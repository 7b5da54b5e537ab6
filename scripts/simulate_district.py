#!/usr/bin/env python
"""A whole district through a real broker into the real management centre: the figures of
docs/centre.md's "Scale" section. A benchmark run on demand, not a test.

What it plays: `--boxes` (152) simulated edge boxes of `--cameras-per-box` (15) cameras, 2,280
cameras in all. Each box is one paho MQTT client (MQTT 3.1.1, its own client id, a persistent
session) publishing for its cameras, as the edge's workers would over their connections
(docs/mqtt.md):
- `status`: `online`, retained, for each camera at every connect;
- `health`: QoS 0, about 1 KB (docs/mqtt.md's example), every `--health-every` s (10) per camera,
  spread evenly over the period (228 messages a second for 2,280 cameras);
- alerts, QoS 1: violations start at `--alerts-per-s` (5 a second in all, Poisson), and every
  `--burst-every` s (60), for `--burst-s` s (5), `--burst-factor` (10) times as many on one street
  (`--street-boxes` boxes next to each other: a rush hour, a market opening). Each violation is a
  `start` with its evidence JPEG (30-60 KB, a real photo made unique per alert; its sha256 in the
  start) on the snapshot topic, 0-2 `update`s and an `end` 5-40 s after the start. Every violation
  has its own alert id and zone, so none joins another's case: the cases expected = alert ids.
- delivery as the edge's outbox does it: every alert event and snapshot is kept until the broker
  acknowledges it (PUBACK), and what is unacknowledged is sent again after each reconnect, with
  `delayed: true` and the same id and seq (paho also resends its own in-flight messages: the
  centre must take both as one).

Into: a real mosquitto (tests/mqtt_broker.py, persistence on, max_queued_messages raised: see
tune_broker; a new one per phase), a real PostgreSQL (tests/postgres_server.py; the `detector`
database made anew per phase) and 1 or 2 `detector centre --no-web` processes (tests/centre_process.py: shared subscription, persistent
sessions, PUBACK after the commit; fleet check every 10 s as in production).

Phases (`--phases`): steady1 (1 centre instance), steady2 (2 instances), faults (2 instances; while
publishing goes on, one instance is killed with SIGKILL and started again, PostgreSQL is stopped
for 5 s, and the broker is stopped for 5 s). Each phase publishes new violations for `--seconds`,
lets the open ones end, then drains (waits until every published event is committed) and checks.

What it reports, per phase (a table, and `--json OUT`):
- ingest: alert events committed per second over the publishing window (sustained) against those
  offered, the most committed in one second (peak), and the most waiting (published, not yet
  committed) at any time;
- latency from an event's first publish (not its re-sends) to its row committed (the centre's
  `committed_at`), p50 / p99 / max, split at `received_at` into broker + queue and the write;
- database growth per 10,000 cases (pg_database_size after minus before), the main tables' sizes,
  and the evidence JPEGs on disk (storage_dir/evidence) apart;
- CPU in cores over the steady part of the window (from 1/4 of it, at most 15 s in, to its end):
  the centre process(es), PostgreSQL, mosquitto, this simulator, and the whole machine (/proc/stat);
- the check: every published (id, seq) stored exactly once (0 lost), violation cases = alert ids
  (0 duplicated), one alert per case, every evidence JPEG attached.

    .venv/bin/python scripts/simulate_district.py                       # the full run (~15 min)
    .venv/bin/python scripts/simulate_district.py --boxes 10 --seconds 20 --phases steady1   # a smoke run
    .venv/bin/python scripts/simulate_district.py --json out/district.json --work /tmp/district

Needs mosquitto and PostgreSQL (scripts/test.sh installs both), as the centre's tests do. One
process plays every box: paho select()s on each client's sockets, which must stay below
descriptor 1024, so at most about 330 boxes (3 descriptors each).
"""

import argparse
import gc
import hashlib
import heapq
import itertools
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from centre_process import Centre  # noqa: E402
from mqtt_broker import Mosquitto  # noqa: E402
from postgres_server import DATABASE, PASSWORD, USER, Postgres  # noqa: E402

from detector.alerts.alert import Alert, AlertEvent, AlertObject, ModelStamp, Snapshot  # noqa: E402

PREFIX = "city"  # tests/centre_process.Centre's topic_prefix
TYPES = {"illegal_parking": "car", "street_vending": "stall", "stray_garbage": "garbage", "nonmotor_parking": "bicycle"}
MODEL = ModelStamp("yolov8n_int8.onnx", "5" * 64)
PHOTOS = ("fruits.jpg", "box_in_scene.png")  # sample_videos/stills: real photos, so real JPEG sizes
TABLES = ("centre_alertevent", "centre_alert", "centre_case", "centre_transition", "centre_camera", "centre_pendingsnapshot")
CASE_TABLES = ("centre_alertevent", "centre_alert", "centre_case", "centre_transition")  # grow with the cases
DURATION_S = (5.0, 40.0)  # a violation's start to its end


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- one edge box ---------------------------------------------------------------------------------


@dataclass
class Entry:
    """An alert event or snapshot in a box's outbox: what to send again, and the sends so far."""

    topic: str
    resend: bytes  # the payload of a re-send (alert events: `delayed: true`)
    sends: list = field(default_factory=list)  # paho's MQTTMessageInfo of each send

    def acknowledged(self) -> bool:
        return any(acknowledged(info) for info in self.sends)


def acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """Did the broker acknowledge this send? paho's is_published() raises for a message published
    while disconnected (its rc stays NO_CONN) even though paho queues it, sends it after the
    reconnect and marks it on the PUBACK: read the mark itself."""
    with info._condition:
        return info._published


class Box:
    """One edge box: one MQTT connection for its cameras, and an outbox of what the broker has not
    acknowledged. Acknowledgement is read from paho's MQTTMessageInfo (set on PUBACK) rather than
    on_publish, whose mids QoS 0 health shares and which can fire before publish() returns."""

    def __init__(self, index: int, cameras: int, broker: Mosquitto, run_id: str) -> None:
        self.site = f"site{index:03d}"
        self.cameras = [f"cam{i:02d}" for i in range(cameras)]
        self.lock = threading.Lock()
        self.outbox: dict[tuple, Entry] = {}
        self.connects = 0
        self.resent = 0
        self.connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{run_id}-{self.site}", clean_session=False, protocol=mqtt.MQTTv311
        )
        self.client.reconnect_delay_set(0.5, 4)  # the edge's backoff is 0.5 s doubling (jittered)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.client.connect_async(broker.host, broker.port, keepalive=30)
        self.client.loop_start()

    def topic(self, camera: str, kind: str) -> str:
        return f"{PREFIX}/{self.site}/{camera}/{kind}"

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            return
        self.connects += 1
        for camera in self.cameras:
            client.publish(self.topic(camera, "status"), b"online", qos=1, retain=True)
        if self.connects > 1:
            self._resend()
        self.connected.set()

    def _resend(self) -> None:
        """After a reconnect: everything unacknowledged again, as the edge's outbox does."""
        with self.lock:
            waiting = [entry for entry in self.outbox.values() if not entry.acknowledged()]
        for entry in waiting:
            info = self.client.publish(entry.topic, entry.resend, qos=1)
            with self.lock:
                entry.sends.append(info)
            self.resent += 1

    def send(self, key: tuple, topic: str, payload: bytes, resend: bytes) -> None:
        entry = Entry(topic, resend)
        with self.lock:
            self.outbox[key] = entry
        info = self.client.publish(topic, payload, qos=1)  # queued by paho while disconnected
        with self.lock:
            entry.sends.append(info)

    def health(self, camera: str, payload: bytes) -> None:
        self.client.publish(self.topic(camera, "health"), payload, qos=0)

    def waiting(self) -> int:
        """Drop what the broker acknowledged; the number still waiting."""
        with self.lock:
            for key in [k for k, e in self.outbox.items() if e.acknowledged()]:
                del self.outbox[key]
            return len(self.outbox)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --- the district's traffic -----------------------------------------------------------------------


def make_photos() -> list[bytes]:
    """Evidence JPEGs of 30-60 KB from the repository's sample photos."""
    photos = []
    for name in PHOTOS:
        image = cv2.imread(str(ROOT / "sample_videos" / "stills" / name))
        if image is None:
            raise SystemExit(f"sample_videos/stills/{name} is missing (scripts/fetch_assets.py)")
        for quality in (70, 80, 88):
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            photos.append(data.tobytes())
    return photos


def unique_jpeg(photo: bytes, alert_id: str) -> bytes:
    """The photo with the alert id in a JPEG comment right after SOI: each alert's own sha256."""
    comment = alert_id.encode()
    return photo[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + photo[2:]


def health_payload(site: str, camera: str, started: float, sent: int) -> bytes:
    """docs/mqtt.md's health example, for this camera now."""
    now = time.time()
    return json.dumps(
        {
            "schema": "detector.health/1", "site": site, "at": now_iso(), "camera": camera, "pid": 4242,
            "state": "running", "started_at": started, "heartbeat_at": now, "fps_out": 2.0, "frames_out": 20 * sent,
            "stream_time_s": now - started, "inference_ms": 41.2, "inference_wait_ms": 0.3, "cpu_cores": 0.171,
            "open_alerts": 0, "view": {"state": "ok", "since": started, "reason": None, "awaiting_operator": False, "back": False},
            "stream": "connected", "size": "1280x720",
            "decode": {"mode": "full", "gop_s": 2.0, "reason": "keyframe interval 2 s > 1.1 s allowed at detect fps 1 (1/fps + 10%)"},
            "fps_in": 25.0, "frames_in": 250 * sent, "frame_age_s": 0.03, "stream_reconnects": 0, "decode_errors": 0,
            "dropped_frames": 0, "last_error": None, "outbox_depth": 0, "outbox_dropped": 0, "mqtt_reconnects": 0,
            "delivered": 17, "storage": "ok", "storage_path": None, "storage_failures": {}, "disk_free_bytes": 51_000_000_000,
            "fps": 2.0, "reconnects": 0,
        }
    ).encode()  # fmt: skip


@dataclass
class Violation:
    box: Box
    camera: str
    alert_id: str
    type: str
    zone: str
    box_xy: tuple
    first_seen: float
    first_seen_at: str
    events: int  # start + updates + end
    photo: bytes


class District:
    """The boxes and one scheduler thread that plays health, violations and bursts on them."""

    def __init__(self, options: argparse.Namespace, broker: Mosquitto, seed: int) -> None:
        self.options = options
        self.rng = np.random.default_rng(seed)
        run_id = uuid.uuid4().hex[:6]
        self.boxes = [Box(i, options.cameras_per_box, broker, run_id) for i in range(options.boxes)]
        self.cameras = [(box, camera) for box in self.boxes for camera in box.cameras]
        self.photos = make_photos()
        self.published: dict[tuple[str, int], float] = {}  # (id, seq) -> wall time of its first publish
        self.alert_ids: list[str] = []
        self.snapshots = 0
        self.health_sent = 0
        self.open = 0  # violations started and not yet ended
        self.stop = threading.Event()
        self.started_wall = 0.0
        self.starts_until = 0.0  # monotonic: no new violation after this
        self._heap: list = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def wait_connected(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for box in self.boxes:
            if not box.connected.wait(max(0.1, deadline - time.monotonic())):
                raise RuntimeError(f"box {box.site} could not connect to the broker")

    def start(self, seconds: float) -> None:
        start = time.monotonic()
        self.started_wall = time.time()
        self.starts_until = start + seconds
        every = self.options.health_every
        for i, (box, camera) in enumerate(self.cameras):  # spread evenly over the period
            self._at(start + every * i / len(self.cameras), self._health, box, camera)
        self._at(start, self._tick, start)
        self._thread = threading.Thread(target=self._run, name="district", daemon=True)
        self._thread.start()

    def finished(self) -> bool:
        """No more new violations, and every started one has ended."""
        return time.monotonic() > self.starts_until and self.open == 0

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for box in self.boxes:
            box.close()

    def waiting(self) -> int:
        return sum(box.waiting() for box in self.boxes)

    # --- the schedule ---

    def _at(self, when: float, action, *args) -> None:
        heapq.heappush(self._heap, (when, next(self._order), action, args))

    def _run(self) -> None:
        while not self.stop.is_set() and self._heap:
            when, _, action, args = self._heap[0]
            delay = when - time.monotonic()
            if delay > 0:
                self.stop.wait(min(delay, 0.5))
                continue
            heapq.heappop(self._heap)
            action(*args)

    def _health(self, box: Box, camera: str) -> None:
        self.health_sent += 1
        box.health(camera, health_payload(box.site, camera, self.started_wall, self.health_sent))
        self._at(time.monotonic() + self.options.health_every, self._health, box, camera)

    def in_burst(self, elapsed: float) -> bool:
        """Bursts from half a period in, so that the first seconds are the base rate."""
        o = self.options
        return o.burst_every > 0 and (elapsed - o.burst_every / 2) % o.burst_every < o.burst_s and elapsed >= o.burst_every / 2

    def _tick(self, start: float) -> None:
        """Every 0.1 s: this tenth of a second's new violations (Poisson), a burst on one street."""
        now = time.monotonic()
        if now > self.starts_until:
            return
        o = self.options
        elapsed = now - start
        burst = self.in_burst(elapsed)
        count = self.rng.poisson(o.alerts_per_s * 0.1 * (o.burst_factor if burst else 1))
        if burst:
            street = int((elapsed - o.burst_every / 2) // o.burst_every)  # one street per burst
            first = (street * 37 % max(1, o.boxes - o.street_boxes + 1)) * o.cameras_per_box
            pool = self.cameras[first : first + o.street_boxes * o.cameras_per_box]
        else:
            pool = self.cameras
        for _ in range(count):
            box, camera = pool[self.rng.integers(len(pool))]
            self._start_violation(box, camera)
        self._at(now + 0.1, self._tick, start)

    def _start_violation(self, box: Box, camera: str) -> None:
        kind = list(TYPES)[self.rng.integers(len(TYPES))]
        x, y = self.rng.uniform(0, 0.7, 2)
        w, h = self.rng.uniform(0.05, 0.3, 2)
        violation = Violation(
            box=box, camera=camera, alert_id=str(uuid.uuid4()), type=kind, zone=f"z{len(self.alert_ids)}",
            box_xy=(round(x, 4), round(y, 4), round(x + w, 4), round(y + h, 4)), first_seen=time.monotonic(),
            first_seen_at=now_iso(), events=2 + int(self.rng.integers(3)),
            photo=self.photos[self.rng.integers(len(self.photos))],
        )  # fmt: skip
        self.alert_ids.append(violation.alert_id)
        self.open += 1
        duration = self.rng.uniform(*DURATION_S)
        for seq in range(violation.events):  # start, the updates evenly between, the end
            self._at(violation.first_seen + duration * seq / (violation.events - 1), self._event, violation, seq)

    def _event(self, v: Violation, seq: int) -> None:
        event = AlertEvent.START if seq == 0 else AlertEvent.END if seq == v.events - 1 else AlertEvent.UPDATE
        jpeg = unique_jpeg(v.photo, v.alert_id) if event is AlertEvent.START else None
        snapshot = Snapshot(f"evidence/{v.camera}/{v.alert_id}.jpg", hashlib.sha256(jpeg).hexdigest()) if jpeg else None
        elapsed = round(time.monotonic() - v.first_seen, 2)
        alert = Alert(
            id=v.alert_id, seq=seq, event=event, type=v.type, site=v.box.site, camera=v.camera, zone=v.zone,
            first_seen_s=1000.0, stream_time_s=1000.0 + elapsed, first_seen_at=v.first_seen_at, at=now_iso(),
            confidence=round(0.6 + 0.3 * self.rng.random(), 3),
            objects=(AlertObject(TYPES[v.type], round(0.5 + 0.4 * self.rng.random(), 3), v.box_xy, track_id=seq + 7),),
            snapshot=snapshot, model=MODEL, config_sha256="c" * 64, gap_s=0.0,
            reason="cleared" if event is AlertEvent.END else None,
        )  # fmt: skip
        self.published[(v.alert_id, seq)] = time.time()
        v.box.send((v.alert_id, seq), v.box.topic(v.camera, "alert"), alert.to_bytes(), alert.with_delayed().to_bytes())
        if jpeg is not None:  # after the start, as the edge's channel queues it
            topic = v.box.topic(v.camera, f"snapshot/{v.alert_id}")
            v.box.send((v.alert_id, "snapshot"), topic, jpeg, jpeg)
            self.snapshots += 1
        if event is AlertEvent.END:
            self.open -= 1


# --- measuring ------------------------------------------------------------------------------------


def cpu_seconds(process: psutil.Process) -> float:
    """The process's CPU time with its exited children's (PostgreSQL backends that ended)."""
    t = process.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def tree_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        total = cpu_seconds(root)
        for child in root.children(recursive=True):
            try:
                total += cpu_seconds(child)
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(fields[:8]) / tick  # user nice system idle iowait irq softirq steal
    return total - (fields[3] + fields[4]) / tick, total


@dataclass
class CpuSample:
    at: float
    centre: dict[int, float]
    postgres: dict[int, float]  # {root pid: CPU s}: a restarted server is another pid
    mosquitto: dict[int, float]
    simulator: float
    machine: tuple[float, float]


def cpu_sample(centres: list[Centre], postgres: Postgres, broker: Mosquitto) -> CpuSample:
    return CpuSample(
        at=time.monotonic(),
        centre={c.process.pid: tree_cpu(c.process.pid) for c in centres if c.process is not None},
        postgres={p.pid: tree_cpu(p.pid) for p in [postgres.process] if p is not None},
        mosquitto={p.pid: tree_cpu(p.pid) for p in [broker.process] if p is not None},
        simulator=cpu_seconds(psutil.Process()),
        machine=machine_busy(),
    )


def cpu_cores(a: CpuSample, b: CpuSample) -> dict:
    """Cores used between two samples; None for a part restarted in between (the faults phase):
    its killed process's CPU time is gone."""
    wall = b.at - a.at

    def cores(before: dict[int, float], after: dict[int, float]) -> list[float] | None:
        return [round((after[p] - before[p]) / wall, 3) for p in before] if before and set(before) == set(after) else None

    busy, total = b.machine[0] - a.machine[0], b.machine[1] - a.machine[1]
    centre, postgres, mosquitto = cores(a.centre, b.centre), cores(a.postgres, b.postgres), cores(a.mosquitto, b.mosquitto)
    return {
        "window_s": round(wall, 1),
        "centre": None if centre is None else round(sum(centre), 3),
        "centre_per_instance": centre,
        "postgres": None if postgres is None else postgres[0],
        "mosquitto": None if mosquitto is None else mosquitto[0],
        "simulator": round((b.simulator - a.simulator) / wall, 3),
        "machine_busy": round(busy / total * os.cpu_count(), 3),
        "machine_cores": os.cpu_count(),
    }


class Database:
    """The simulator's own connection to the centre's database (as its user), reconnecting after a
    PostgreSQL restart; every query answers None while the server is away."""

    def __init__(self, postgres: Postgres) -> None:
        self.postgres = postgres
        self.connection = None

    def rows(self, statement: str) -> list[tuple] | None:
        try:
            if self.connection is None or self.connection.closed:
                self.connection = psycopg.connect(
                    host=self.postgres.host, port=self.postgres.port, dbname=DATABASE, user=USER, password=PASSWORD,
                    autocommit=True, connect_timeout=3,
                )  # fmt: skip
            return self.connection.execute(statement).fetchall()
        except psycopg.Error:
            self.close()
            return None

    def one(self, statement: str):
        rows = self.rows(statement)
        return None if rows is None else rows[0][0]

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except psycopg.Error:
                pass
        self.connection = None


class Monitor:
    """Every second: events committed, evidence attached, and cameras whose health is fresh (two
    periods), against what the district has published: the backlog over time. And the boxes'
    outboxes: what the broker has not acknowledged yet."""

    def __init__(self, postgres: Postgres, district: District, health_every: float) -> None:
        self.db = Database(postgres)
        self.district = district
        self.health_every = health_every
        self.samples: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self.thread.start()

    def latest(self) -> dict:
        return self.samples[-1] if self.samples else {}

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            published, snapshots = len(self.district.published), self.district.snapshots
            unacknowledged = self.district.waiting()  # also drops what the broker acknowledged
            row = self.db.rows(
                "SELECT (SELECT count(*) FROM centre_alertevent), (SELECT count(*) FROM centre_alert WHERE evidence = 'ok'), "
                f"(SELECT count(*) FROM centre_camera WHERE health_at > now() - interval '{2 * self.health_every} seconds')"
            )
            if row is None:
                continue  # PostgreSQL is restarting
            committed, evidence, fresh = row[0]
            self.samples.append(
                {"t": time.time(), "published": published, "committed": committed, "snapshots": snapshots,
                 "evidence": evidence, "fresh_health": fresh, "unacknowledged": unacknowledged}
            )  # fmt: skip

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.db.close()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def per_second(times: list[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for t in times:
        counts[int(t)] = counts.get(int(t), 0) + 1
    return counts


# --- one phase ------------------------------------------------------------------------------------


def tune_broker(broker: Mosquitto, options: argparse.Namespace) -> None:
    """mosquitto as a district would run it, in what tests/mqtt_broker.py leaves at its defaults:
    - logging: not every packet (`log_type all`): at 300 messages a second the log itself would
      cost the broker CPU. Connects and errors stay.
    - `max_queued_messages` (`--broker-max-queued`): mosquitto's default, 1000 per client, counts
      the QoS 0 health queued for a centre that lags too, and beyond it drops QoS 1 alerts it has
      already acknowledged to the edge box: lost. A centre catching up after a restart of itself,
      the database or the broker lags by more than that. `--broker-max-queued 1000` shows it.
    - `--tcp-nodelay`: set_tcp_nodelay (mosquitto's default is off: Nagle's algorithm holds small
      packets to the centre back until the previous ones are acknowledged)."""
    conf = broker.conf.read_text().replace("log_type all\n", "log_type error\nlog_type warning\nlog_type notice\n")
    conf += f"max_queued_messages {options.broker_max_queued}\n"
    broker.conf.write_text(conf + ("set_tcp_nodelay true\n" if options.tcp_nodelay else ""))


def reset_database(postgres: Postgres, first: bool) -> None:
    """A new, empty `detector` database for each phase: its own size and rows to check."""
    if first:
        postgres.create_database()
        return
    postgres.sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    postgres.sql(f"CREATE DATABASE {DATABASE} OWNER {USER}")


def start_centres(folder: Path, broker: Mosquitto, postgres: Postgres, instances: int) -> list[Centre]:
    # one folder, so one storage_dir (evidence) for all instances, as on shared storage
    centres = [
        Centre(folder, broker, postgres, client_id=f"centre-{i + 1}", fleet={"check_interval_s": 10}) for i in range(instances)
    ]
    for centre in centres:
        centre.start(web=False)
    return centres


def restart_centre(centre: Centre) -> dict:
    began = time.monotonic()
    centre.stop(kill=True)
    centre.start(web=False)
    return {"what": f"centre {centre.config_path.stem} killed (SIGKILL) and started again", "took_s": time.monotonic() - began}


def restart_postgres(postgres: Postgres) -> dict:
    began = time.monotonic()
    postgres.stop("fast")
    time.sleep(5)
    postgres.start()
    return {"what": "PostgreSQL stopped (fast), 5 s, started", "took_s": time.monotonic() - began}


def restart_broker(broker: Mosquitto) -> dict:
    began = time.monotonic()
    broker.stop()
    time.sleep(5)
    broker.start()
    return {"what": "mosquitto stopped, 5 s, started", "took_s": time.monotonic() - began}


def sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.monotonic()))


def play(district: District, centres, postgres, broker, seconds: float, faults: bool) -> tuple[dict, list[dict]]:
    """Publish for `seconds` (faults at 20 %, 45 % and 70 % of it); the steady window's CPU."""
    start = time.monotonic()
    district.start(seconds)
    warm = min(15.0, seconds / 4)
    sleep_until(start + warm)
    first = cpu_sample(centres, postgres, broker)
    done = []
    if faults:
        for share, fault in ((0.2, lambda: restart_centre(centres[0])), (0.45, lambda: restart_postgres(postgres)),
                             (0.7, lambda: restart_broker(broker))):  # fmt: skip
            sleep_until(start + share * seconds)
            at = time.monotonic() - start
            done.append({"at_s": round(at, 1)} | fault())
            done[-1]["took_s"] = round(done[-1]["took_s"], 1)
            print(f"  fault at {at:.0f} s: {done[-1]['what']} ({done[-1]['took_s']} s)", flush=True)
    sleep_until(start + seconds)
    return cpu_cores(first, cpu_sample(centres, postgres, broker)), done


def drain(district: District, monitor: Monitor, timeout: float) -> float:
    """Wait for the open violations to end, the boxes' outboxes to empty and every event and
    snapshot to be committed; the seconds it took after the publishing window."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        latest = monitor.latest()
        if (
            district.finished()
            and district.waiting() == 0
            and latest.get("committed") == len(district.published)
            and latest.get("evidence") == district.snapshots
        ):
            return time.monotonic() - began
        time.sleep(1)
    return float("nan")


def check(db: Database, district: District) -> dict:
    """0 lost, 0 duplicated: the rows against what was published."""
    rows = db.rows("SELECT a.alert_id, e.seq FROM centre_alertevent e JOIN centre_alert a ON a.id = e.alert_id")
    stored = [(alert_id, seq) for alert_id, seq in rows]
    published = set(district.published)
    lost = published - set(stored)
    cases = db.one("SELECT count(*) FROM centre_case WHERE kind = 'violation'")
    return {
        "published_events": len(published),
        "stored_events": len(stored),
        "lost_events": len(lost),
        "lost_by_publish_s": lost_when(lost, district),
        "unexpected_events": len(set(stored) - published),
        "duplicate_rows": len(stored) - len(set(stored)),
        "alert_ids": len(district.alert_ids),
        "alerts_stored": db.one("SELECT count(*) FROM centre_alert"),
        "cases": cases,
        "duplicated_cases": cases - len(set(district.alert_ids)),
        "cases_without_alert": db.one(
            "SELECT count(*) FROM centre_case c WHERE kind = 'violation' AND NOT EXISTS "
            "(SELECT 1 FROM centre_alert a WHERE a.case_id = c.id)"
        ),
        "cases_with_several_alerts": db.one(
            "SELECT count(*) FROM (SELECT case_id FROM centre_alert GROUP BY case_id HAVING count(*) > 1) s"
        ),
        "cases_not_self_resolved": db.one(
            "SELECT count(*) FROM centre_case WHERE kind = 'violation' AND state <> 'SELF_RESOLVED'"
        ),
        "snapshots_published": district.snapshots,
        "evidence_ok": db.one("SELECT count(*) FROM centre_alert WHERE evidence = 'ok'"),
        "evidence_not_ok": db.one("SELECT count(*) FROM centre_alert WHERE evidence <> 'ok'"),
        "maintenance_cases": db.one("SELECT count(*) FROM centre_case WHERE kind = 'maintenance'"),
        "rejections": db.one("SELECT count(*) FROM centre_rejection"),
        "resent_by_boxes": sum(box.resent for box in district.boxes),
        "box_reconnects": sum(box.connects - 1 for box in district.boxes),
    }


def lost_when(lost: set, district: District) -> dict[int, int]:
    """Lost events by when they were first published (5 s bins from the phase's start): next to
    the faults' times, which one lost them."""
    bins: dict[int, int] = {}
    for key in lost:
        at = int((district.published[key] - district.started_wall) // 5 * 5)
        bins[at] = bins.get(at, 0) + 1
    return dict(sorted(bins.items()))


def timing(db: Database, district: District, window: tuple[float, float]) -> tuple[dict, dict]:
    """Latency from first publish to commit, and the ingest rates."""
    rows = db.rows(
        "SELECT a.alert_id, e.seq, extract(epoch FROM e.received_at)::float8, extract(epoch FROM e.committed_at)::float8 "
        "FROM centre_alertevent e JOIN centre_alert a ON a.id = e.alert_id"
    )
    total, broker, write, committed = [], [], [], []
    for alert_id, seq, received_at, committed_at in rows:
        sent = district.published.get((alert_id, seq))
        committed.append(committed_at)
        if sent is not None:
            total.append(committed_at - sent)
            broker.append(received_at - sent)
            write.append(committed_at - received_at)
    latency = {
        "p50_ms": ms(percentile(total, 0.5)),
        "p99_ms": ms(percentile(total, 0.99)),
        "max_ms": ms(max(total, default=None)),
        "publish_to_received_p50_ms": ms(percentile(broker, 0.5)),
        "publish_to_received_p99_ms": ms(percentile(broker, 0.99)),
        "received_to_committed_p50_ms": ms(percentile(write, 0.5)),
        "received_to_committed_p99_ms": ms(percentile(write, 0.99)),
    }
    begin, end = window
    in_window = [t for t in committed if begin <= t < end]
    offered = [t for t in district.published.values() if begin <= t < end]
    rates = {
        "offered_events_per_s": round(len(offered) / (end - begin), 2),
        "committed_events_per_s": round(len(in_window) / (end - begin), 2),
        "peak_offered_events_1s": max(per_second(offered).values(), default=0),
        "peak_committed_events_1s": max(per_second(committed).values(), default=0),
    }
    return latency, rates


def sizes(postgres: Postgres, base: int, cases: int, store: Path) -> dict:
    def per_10k(value: int) -> float | None:
        return round(value / cases * 10_000 / 1e6, 2) if cases else None

    grown = int(postgres.sql(f"SELECT pg_database_size('{DATABASE}')")) - base
    tables = {
        t: int(postgres.sql(f"SELECT pg_total_relation_size('{t}')", database=DATABASE)) for t in TABLES
    }  # tables and their indexes
    evidence = [p.stat().st_size for p in (store / "evidence").rglob("*.jpg")] if (store / "evidence").exists() else []
    return {
        "database_growth_bytes": grown,
        "database_mb_per_10k_cases": per_10k(grown),
        "case_tables_mb_per_10k_cases": per_10k(sum(tables[t] for t in CASE_TABLES)),
        "tables_bytes": tables,
        "evidence_files": len(evidence),
        "evidence_bytes": sum(evidence),
        "evidence_mb_per_10k_cases": per_10k(sum(evidence)),
    }


def run_phase(name: str, options: argparse.Namespace, postgres: Postgres, work: Path, first: bool) -> dict:
    instances = 1 if name == "steady1" else 2
    print(f"\n== {name}: {instances} centre instance(s), {options.boxes} boxes, {options.seconds:g} s", flush=True)
    folder = work / name
    load_before = os.getloadavg()
    reset_database(postgres, first)
    broker = Mosquitto(folder / "broker")
    tune_broker(broker, options)
    broker.start()
    centres = start_centres(folder / "centre", broker, postgres, instances)
    base = int(postgres.sql(f"SELECT pg_database_size('{DATABASE}')"))  # migrated, empty
    district = District(options, broker, seed=options.seed + len(name))
    monitor = None
    try:
        district.wait_connected()
        monitor = Monitor(postgres, district, options.health_every)
        cpu, faults = play(district, centres, postgres, broker, options.seconds, name == "faults")
        window = (district.started_wall, district.started_wall + options.seconds)
        print("  publishing window over; open violations end, then the drain", flush=True)
        drained = drain(district, monitor, options.drain_timeout + DURATION_S[1])
        district.stop.set()  # health too: the figures are taken
        db = Database(postgres)
        result = {
            "phase": name,
            "instances": instances,
            "boxes": options.boxes,
            "cameras": len(district.cameras),
            "seconds": options.seconds,
            "broker_tcp_nodelay": options.tcp_nodelay,
            "broker_max_queued_messages": options.broker_max_queued,
            "drain_s": None if drained != drained else round(drained, 1),
            "faults": faults,
            "cpu_cores": cpu,
            "health": health_figures(district, monitor, window, options),
            "backlog_max": max((s["published"] - s["committed"] for s in monitor.samples), default=None),
            "unacknowledged_max": max((s["unacknowledged"] for s in monitor.samples), default=None),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        }
        result["latency"], result["rates"] = timing(db, district, window)
        result["check"] = check(db, district)
        result["sizes"] = sizes(postgres, base, result["check"]["cases"], folder / "centre" / "store")
        db.close()
        return result
    finally:
        if monitor is not None:
            monitor.close()
        district.close()
        for i, centre in enumerate(centres):
            centre.stop()
            (folder / f"centre-{i + 1}.log").write_text(centre.log)
        broker.stop()


def health_figures(district: District, monitor: Monitor, window: tuple[float, float], options) -> dict:
    begin, end = window
    steady = [s["fresh_health"] for s in monitor.samples if begin + 2 * options.health_every <= s["t"] <= end]
    return {
        "sent_per_s": round(district.health_sent / max(1e-9, time.time() - begin), 1),
        "cameras_fresh_min": min(steady, default=None),
        "cameras_fresh_median": statistics.median(steady) if steady else None,
    }


# --- the report -----------------------------------------------------------------------------------

ROWS = (
    ("centre instances", lambda r: r["instances"]),
    ("cameras / boxes", lambda r: f"{r['cameras']} / {r['boxes']}"),
    ("offered alert events/s (mean)", lambda r: r["rates"]["offered_events_per_s"]),
    ("committed alert events/s (sustained)", lambda r: r["rates"]["committed_events_per_s"]),
    ("peak offered events in 1 s", lambda r: r["rates"]["peak_offered_events_1s"]),
    ("peak committed events in 1 s", lambda r: r["rates"]["peak_committed_events_1s"]),
    ("most events waiting (backlog)", lambda r: r["backlog_max"]),
    ("most unacknowledged by the broker", lambda r: r["unacknowledged_max"]),
    ("health sent/s", lambda r: r["health"]["sent_per_s"]),
    ("cameras with fresh health (min)", lambda r: r["health"]["cameras_fresh_min"]),
    ("publish->commit p50 ms", lambda r: r["latency"]["p50_ms"]),
    ("publish->commit p99 ms", lambda r: r["latency"]["p99_ms"]),
    ("publish->commit max ms", lambda r: r["latency"]["max_ms"]),
    ("  publish->received p50/p99 ms", lambda r: f"{r['latency']['publish_to_received_p50_ms']} / {r['latency']['publish_to_received_p99_ms']}"),
    ("  received->committed p50/p99 ms", lambda r: f"{r['latency']['received_to_committed_p50_ms']} / {r['latency']['received_to_committed_p99_ms']}"),
    ("drain after window s", lambda r: r["drain_s"]),
    ("cases", lambda r: r["check"]["cases"]),
    ("DB MB per 10,000 cases", lambda r: r["sizes"]["database_mb_per_10k_cases"]),
    ("  case tables MB per 10,000 cases", lambda r: r["sizes"]["case_tables_mb_per_10k_cases"]),
    ("evidence MB per 10,000 cases", lambda r: r["sizes"]["evidence_mb_per_10k_cases"]),
    ("CPU cores: centre (all instances)", lambda r: r["cpu_cores"]["centre"]),
    ("CPU cores: centre per instance", lambda r: r["cpu_cores"]["centre_per_instance"]),
    ("CPU cores: postgres", lambda r: r["cpu_cores"]["postgres"]),
    ("CPU cores: mosquitto", lambda r: r["cpu_cores"]["mosquitto"]),
    ("CPU cores: simulator", lambda r: r["cpu_cores"]["simulator"]),
    ("CPU cores: machine busy", lambda r: f"{r['cpu_cores']['machine_busy']} of {r['cpu_cores']['machine_cores']}"),
    ("events published / stored", lambda r: f"{r['check']['published_events']} / {r['check']['stored_events']}"),
    ("events lost", lambda r: r["check"]["lost_events"]),
    ("duplicated cases", lambda r: r["check"]["duplicated_cases"]),
    ("cases with >1 alert / no alert", lambda r: f"{r['check']['cases_with_several_alerts']} / {r['check']['cases_without_alert']}"),
    ("evidence ok / snapshots", lambda r: f"{r['check']['evidence_ok']} / {r['check']['snapshots_published']}"),
    ("re-sent by boxes (delayed)", lambda r: r["check"]["resent_by_boxes"]),
    ("load average before / after", lambda r: f"{r['load_before'][0]} / {r['load_after'][0]}"),
)  # fmt: skip


def print_table(results: list[dict]) -> None:
    width = max(len(label) for label, _ in ROWS) + 2
    print("\n" + "".ljust(width) + "".join(r["phase"].rjust(22) for r in results))
    for label, value in ROWS:
        cells = []
        for r in results:
            try:
                cells.append(str(value(r)).rjust(22))
            except (KeyError, TypeError):
                cells.append("-".rjust(22))
        print(label.ljust(width) + "".join(cells))
    for r in results:
        for fault in r["faults"]:
            print(f"{r['phase']}: at {fault['at_s']} s {fault['what']} ({fault['took_s']} s)")


def passed(result: dict) -> bool:
    c = result["check"]
    return (
        c["lost_events"] == 0
        and c["duplicated_cases"] == 0
        and c["cases_with_several_alerts"] == 0
        and c["cases_without_alert"] == 0
        and c["evidence_ok"] == c["snapshots_published"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=152, help="simulated edge boxes (one MQTT connection each)")
    parser.add_argument("--cameras-per-box", type=int, default=15)
    parser.add_argument("--alerts-per-s", type=float, default=5.0, help="new violations a second in all, outside bursts")
    parser.add_argument("--burst-every", type=float, default=60.0, help="seconds between bursts (0: none)")
    parser.add_argument("--burst-s", type=float, default=5.0, help="how long a burst lasts")
    parser.add_argument("--burst-factor", type=float, default=10.0, help="a burst's rate over the base rate")
    parser.add_argument("--street-boxes", type=int, default=4, help="boxes on the street a burst is on")
    parser.add_argument("--health-every", type=float, default=10.0, help="seconds between a camera's health messages")
    parser.add_argument(
        "--broker-max-queued", type=int, default=1_000_000, help="mosquitto's max_queued_messages (its default: 1000)"
    )
    parser.add_argument(
        "--tcp-nodelay", action="store_true", help="mosquitto with set_tcp_nodelay true (default: its default, off)"
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="publishing window of each phase")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="longest wait for the centre to catch up")
    parser.add_argument("--phases", default="steady1,steady2,faults", help="comma-separated: steady1, steady2, faults")
    parser.add_argument("--work", type=Path, help="folder for the broker, database and centre (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    phases = options.phases.split(",")
    unknown = set(phases) - {"steady1", "steady2", "faults"}
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "scripts/simulate_district.py", *sys.argv[1:]])
    print(f"reproduce: {command}\nload average (1, 5, 15 min): {os.getloadavg()}; cores: {os.cpu_count()}", flush=True)

    work = options.work or Path(tempfile.mkdtemp(prefix="district-"))
    if work.exists() and options.work:
        shutil.rmtree(work)
    postgres = Postgres(work / "postgres").start()
    results = []
    try:
        for i, name in enumerate(phases):
            results.append(run_phase(name, options, postgres, work, first=i == 0))
            # paho closes a client's wake-up socket pair only when the client is collected, and
            # selects on it: past descriptor 1024 (the third phase) its boxes could not connect
            gc.collect()
    finally:
        postgres.stop()
    print_table(results)
    print(f"\nreproduce: {command}")
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(
            json.dumps({"command": command, "options": vars(options), "phases": results}, indent=2, default=str) + "\n"
        )
    ok = all(passed(r) for r in results)
    print("check: " + ("0 alerts lost, 0 duplicated cases in every phase" if ok else "FAILED (see the table)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
