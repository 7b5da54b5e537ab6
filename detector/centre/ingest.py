"""MQTT v5 ingest: every site's alerts, snapshots, status, zone state and health into the
database (docs/centre.md).

- A persistent session (fixed client id, clean start off, a session expiry): what is published
  while this instance is away waits for it at the broker.
- Alerts and snapshots come through a shared subscription (`$share/{group}/...`), so several
  instances share them; retained status and zone state are subscribed plainly (brokers send no
  retained messages to shared subscriptions), by every instance: writing them twice is harmless.
- An alert or snapshot is acknowledged (manual PUBACK) only once its transaction committed: a
  centre or database that dies in between gets the message again, and (id, seq) makes the
  repeat a no-op. While the database is away, ingest retries the write and the broker holds the
  rest.
- Health is QoS 0 and superseded every 10 s: the latest per camera is written once a second in
  one transaction.
"""

import json
import logging
import math
import re
import sys
import threading
import time
from datetime import datetime
from functools import partial

import paho.mqtt.client as mqtt
from django.db import DatabaseError, DataError, IntegrityError, close_old_connections, connections
from django.utils import timezone
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from detector.alerts.alert import Alert as Payload
from detector.backoff import Backoff
from detector.centre import fleet, store
from detector.centre.config import CentreConfig
from detector.errors import PublishError
from detector.mqtt.connection import CONNACK_TIMEOUT_S, Endpoint, describe_error, refusal_message, tls_context
from detector.mqtt.topics import parse

log = logging.getLogger("detector.centre")
ID_LIMIT = 64  # site, camera, zone and alert ids: the columns' width (the edge allows 64)
# the edge's ids (detector/config/schema.py Identifier; alert ids are UUIDs): they name evidence
# folders and files, so `..` or a `/` from a topic must never get that far
ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{ID_LIMIT - 1}}}")
ID_RULE = f"letters, digits and _ . -, at most {ID_LIMIT}"
TYPE_LIMIT, TIME_LIMIT = 32, 40  # the columns of an alert's type, its times and its end reason
SEQ_LIMIT = 2**31 - 1  # an IntegerField: PostgreSQL's int4
INTEGRITY_RETRIES = 3  # a unique race between instances is over on the next try; a CHECK never is
HEALTH_FLUSH_S = 1.0
COUNTS_EVERY_S = 60.0
COUNTED = ("alert", "duplicate", "snapshot", "health", "status", "refused")


class Ingest:
    def __init__(self, config: CentreConfig) -> None:
        self.config = config
        self.mqtt = config.mqtt
        self.endpoint = Endpoint.from_config(config.mqtt)
        self.stop = threading.Event()
        # messages by outcome, logged and reset once a minute (`_writer`): the ingest rate in the journal
        self.counts: dict[str, int] = dict.fromkeys(COUNTED, 0)
        self._health: dict[tuple[str, str], tuple[dict, datetime]] = {}
        self._health_lock = threading.Lock()
        self._statuses: dict[tuple[str, str], str] = {}  # the status this instance last wrote per camera
        self._client: mqtt.Client | None = None
        self._answered = threading.Event()  # the first CONNACK came
        self._refused = None  # its failure reason, if it was one
        self._subscribed = threading.Event()  # the first SUBACK came

    # --- the connection ---------------------------------------------------------------------

    def subscriptions(self) -> list[tuple[str, int]]:
        prefix = self.mqtt.topic_prefix
        shared = f"$share/{self.mqtt.share_group}/" if self.mqtt.share_group else ""
        return [
            (f"{shared}{prefix}/+/+/alert", 1),
            (f"{shared}{prefix}/+/+/snapshot/+", 1),
            (f"{shared}{prefix}/+/+/health", 0),
            (f"{prefix}/+/+/status", 1),
            (f"{prefix}/+/+/zone/+/state", 1),
        ]

    def start(self) -> None:
        """Connect (raises PublishError naming the broker when the first attempt fails) and run
        the network loop and the health/fleet writer in threads."""
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.mqtt.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        if self.endpoint.username is not None:
            client.username_pw_set(self.endpoint.username, self.endpoint.password)
        context = tls_context(self.endpoint)
        if context is not None:
            client.tls_set_context(context)
            client.tls_insecure_set(self.endpoint.tls_insecure)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: self._subscribed.set()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.mqtt.session_expiry_s
        try:
            client.connect(
                self.endpoint.host, self.endpoint.port, self.endpoint.keepalive_s, clean_start=False, properties=properties
            )
        except Exception as exc:  # noqa: BLE001 - socket/ssl: one line naming the broker
            raise PublishError(describe_error(self.endpoint, exc)) from None
        self._client = client
        client.loop_start()
        # the first answer decides: refused credentials are the user's error (one line, exit 5);
        # a broker slow to answer is not (paho keeps trying)
        if self._answered.wait(CONNACK_TIMEOUT_S) and self._refused is not None:
            self.close()
            raise PublishError(refusal_message(self.endpoint, self._refused))
        self._subscribed.wait(CONNACK_TIMEOUT_S)  # "started" means a new session has its subscriptions
        threading.Thread(target=self._writer, name="centre-health", daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            if not self._answered.is_set():
                self._refused = reason
                self._answered.set()
            log.error("mqtt broker %s refused the centre: %s", self.endpoint.name, reason)
            return
        self._answered.set()
        client.subscribe(self.subscriptions())
        log.info(
            "centre ingest connected to %s as %s (session %s)",
            self.endpoint.name,
            self.mqtt.client_id,
            "resumed" if flags.session_present else "new",
        )

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        if not self.stop.is_set():
            log.warning("mqtt broker %s: connection lost (%s), reconnecting", self.endpoint.name, reason)

    # --- messages -----------------------------------------------------------------------------

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            self.handle(message.topic, message.payload)
        except (DataError, IntegrityError) as exc:  # this message, not the database: it would fail forever
            self._refuse(
                message.topic, f"the database refused it: {str(exc).strip().splitlines()[0][:200]}", len(message.payload)
            )
        except DatabaseError:
            return  # stopping with the database away: unacknowledged, the broker sends it again
        except Exception as exc:  # noqa: BLE001 - a bug must not stop ingest: logged whole, refused, counted
            log.exception("ingest failed on %s", message.topic[:200])
            self._refuse(message.topic, f"internal error: {type(exc).__name__}", len(message.payload))
        if message.qos > 0:
            client.ack(message.mid, message.qos)

    def handle(self, topic: str, payload: bytes) -> None:
        """One message; never raises (a bad one is refused and counted). Blocks, retrying,
        while the database is unreachable."""
        received_at = timezone.now()
        parsed = parse(topic, self.mqtt.topic_prefix)
        if parsed is None:
            return self._refuse(topic, "not a detector topic", len(payload))
        site, camera, kind, rest = parsed
        if not (ID.fullmatch(site) and ID.fullmatch(camera)):
            return self._refuse(topic, f"site or camera is not an id ({ID_RULE})", len(payload))
        limit = self.mqtt.max_snapshot_bytes if kind == "snapshot" else self.mqtt.max_payload_bytes
        if len(payload) > limit:
            return self._refuse(topic, f"payload of {len(payload)} bytes is over the limit of {limit}", len(payload))
        if kind == "alert" and not rest:
            self._alert(topic, site, camera, payload, received_at)
        elif kind == "snapshot" and len(rest) == 1:
            self._snapshot(topic, site, camera, rest[0], payload, received_at)
        elif kind == "health" and not rest:
            self._health_message(topic, site, camera, payload, received_at)
        elif kind == "status" and not rest:
            status = payload.decode("utf-8", "replace")
            if status not in ("online", "offline"):
                return self._refuse(topic, f"status must be online or offline, got {status[:40]!r}", len(payload))
            # every (re)connect brings each camera's retained status again, and a broker restart
            # the boxes' `online` too: thousands of transactions that change nothing, while the
            # alerts behind them wait (scripts/simulate_district.py). Write changes only.
            if self._statuses.get((site, camera)) != status:
                self._write(lambda: store.record_status(site, camera, status, received_at))
                self._statuses[(site, camera)] = status
            self.counts["status"] += 1
        elif kind == "zone" and len(rest) == 2 and rest[1] == "state" and ID.fullmatch(rest[0]):
            data = _json_object(payload)
            if data is None or not isinstance(data.get("states"), dict):
                return self._refuse(topic, "zone state is not a detector.zone_state/1 object", len(payload))
            if problem := unstorable(data):
                return self._refuse(topic, f"zone state holds {problem}", len(payload))
            self._write(lambda: store.record_zone_state(site, camera, rest[0], data["states"]))
        else:
            self._refuse(topic, "unknown topic", len(payload))

    def _alert(self, topic: str, site: str, camera: str, payload: bytes, received_at: datetime) -> None:
        try:
            alert = Payload.from_bytes(payload)
        except ValueError as exc:
            return self._refuse(topic, f"not a detector.alert/1 payload: {exc}", len(payload))
        if (alert.site, alert.camera) != (site, camera):
            return self._refuse(topic, f"payload is of {alert.site}/{alert.camera}, topic of {site}/{camera}", len(payload))
        if problem := alert_problem(alert):
            return self._refuse(topic, problem, len(payload))
        try:
            stored = self._write(lambda: store.record_alert(alert, received_at))
        except store.AlertElsewhere as exc:
            return self._refuse(topic, str(exc), len(payload))
        self.counts["alert" if stored else "duplicate"] += 1

    def _snapshot(self, topic: str, site: str, camera: str, alert_id: str, jpeg: bytes, received_at: datetime) -> None:
        if not ID.fullmatch(alert_id):
            return self._refuse(topic, "not an alert id", len(jpeg))
        if not jpeg.startswith(b"\xff\xd8"):
            return self._refuse(topic, "snapshot is not a JPEG", len(jpeg))
        result = self._write(lambda: store.record_snapshot(site, camera, alert_id, jpeg, received_at))
        self.counts["snapshot"] += 1
        if result == "mismatch":
            self.counts["refused"] += 1

    def _health_message(self, topic: str, site: str, camera: str, payload: bytes, received_at: datetime) -> None:
        data = _json_object(payload)
        if data is None:
            return self._refuse(topic, "health is not a JSON object", len(payload))
        if problem := unstorable(data):
            return self._refuse(topic, f"health holds {problem}", len(payload))
        with self._health_lock:
            self._health[(site, camera)] = (data, received_at)
        self.counts["health"] += 1

    def _refuse(self, topic: str, reason: str, size: int) -> None:
        self.counts["refused"] += 1
        self._write(lambda: store.reject(topic, reason, size))

    # --- writing ------------------------------------------------------------------------------

    def _write(self, write):
        """Run a database write, retrying while the database is unreachable (a restart, a
        failover): the message is acknowledged only after it, so nothing is lost meanwhile."""
        backoff = Backoff(0.5, 10.0)
        failures = 0
        while True:
            try:
                close_old_connections()
                return write()
            except DataError:
                raise  # a value the database refuses is refused again: the caller refuses the message
            except DatabaseError as exc:
                if self.stop.is_set() or (isinstance(exc, IntegrityError) and failures >= INTEGRITY_RETRIES):
                    raise
                if failures == 0:
                    log.warning("database write failed (%s); retrying until it works", str(exc).splitlines()[0][:200])
                connections.close_all()
                time.sleep(backoff.delay(failures))
                failures += 1

    def _writer(self) -> None:
        """Health once a second, the fleet check every fleet.check_interval_s, the counts a minute."""
        next_fleet = time.monotonic() + self.config.fleet.check_interval_s
        next_counts = time.monotonic() + COUNTS_EVERY_S
        while not self.stop.wait(HEALTH_FLUSH_S):
            if time.monotonic() >= next_counts:
                next_counts += COUNTS_EVERY_S
                counts, self.counts = self.counts, dict.fromkeys(COUNTED, 0)
                log.info("ingest, last %.0f s: %s", COUNTS_EVERY_S, ", ".join(f"{n} {what}" for what, n in counts.items()))
            with self._health_lock:
                batch, self._health = self._health, {}
            try:
                self._write(partial(store.record_health, batch))
                if time.monotonic() >= next_fleet:
                    next_fleet = time.monotonic() + self.config.fleet.check_interval_s
                    self._write(fleet.check_fleet)
            except Exception:  # noqa: BLE001 - one bad batch or a bug must not end every camera's health
                if self.stop.is_set():
                    return  # stopping with the database away
                log.exception("writing health or checking the fleet failed; this second's health is dropped")


def alert_problem(alert: Payload) -> str | None:
    """Why the database cannot take an alert that is valid detector.alert/1, or None: ids it
    would file evidence under, values wider than their columns, boxes the joining computes with."""
    for name, value, limit in (("id", alert.id, ID_LIMIT), ("zone", alert.zone, ID_LIMIT), ("type", alert.type, TYPE_LIMIT)):
        if not ID.fullmatch(value) or len(value) > limit:
            return f"{name} {value[:70]!r} is not an id (letters, digits and _ . -, at most {limit})"
    if not 0 <= alert.seq <= SEQ_LIMIT:
        return f"seq must be from 0 to {SEQ_LIMIT}, got {alert.seq}"
    if max(len(alert.at), len(alert.first_seen_at), len(alert.reason or "")) > TIME_LIMIT:
        return f"at, first_seen_at and reason must be at most {TIME_LIMIT} characters"
    if alert.snapshot is not None and not re.fullmatch(r"[0-9a-f]{64}", alert.snapshot.sha256):
        return "snapshot.sha256 must be 64 hex digits"
    for i, thing in enumerate(alert.objects):
        # a float's range, as alert.py's numbers: NaN and Infinity fail it, and so do huge integers
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= sys.float_info.max for v in thing.box):
            return f"objects[{i}].box must be 4 finite numbers"
    problem = unstorable(alert.to_json())
    return f"the payload holds {problem}" if problem else None


def unstorable(data) -> str | None:
    """What in parsed JSON no column takes, or None: NaN or Infinity (Python's json reads them; a
    JSON column refuses them), NUL (PostgreSQL's text refuses it), lone surrogates (not UTF-8).
    Iterative: the JSON may be as deep as the parser allowed."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, float) and not math.isfinite(value):
            return "NaN or Infinity (not JSON)"
        elif isinstance(value, str):
            if "\x00" in value:
                return "a NUL character"
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError:
                    return "a lone surrogate (not UTF-8)"
    return None


def _json_object(payload: bytes) -> dict | None:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
