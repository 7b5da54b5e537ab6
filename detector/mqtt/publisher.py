"""Background thread that sends the outbox to the broker; the frame loop never waits on it.

Per connection: a fresh paho client, `online` on the status topic (last will `offline`), all zone
states again (retained), then outbox entries in queue order with at most `max_in_flight` awaiting
PUBACK; an entry leaves the outbox only when its PUBACK arrives. After a disconnect, entries not
acknowledged are sent again from the outbox (same id and seq, `delayed: true`): at-least-once.
A full disk is not a broker problem: the outbox holds what it cannot write in memory and never
hands out an acknowledged entry again, even when its delete failed (retried every second).
Reconnects back off exponentially (reconnect_min_s doubling to reconnect_max_s) with jitter
(x0.5..1.0) so a thousand cameras do not hammer a restarted broker in step.
"""

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from detector.alerts import iso_utc
from detector.alerts.alert import Alert
from detector.backoff import Backoff
from detector.errors import PublishError
from detector.mqtt.connection import (
    CONNACK_TIMEOUT_S,
    LOOP_TIMEOUT_S,
    Endpoint,
    Refused,
    describe_error,
    handshake,
    new_client,
    tls_context,
)
from detector.mqtt.outbox import Entry, Outbox
from detector.mqtt.topics import HEALTH_SCHEMA, CameraTopics

log = logging.getLogger(__name__)

# Old names kept in the MQTT health message for one release (docs/mqtt.md): alias -> field.
DEPRECATED_HEALTH_ALIASES = {"fps": "fps_out", "reconnects": "stream_reconnects"}
DELETE_RETRY_S = 1.0  # acknowledged entries the outbox could not delete: how often to retry


class _Session:
    """State of one connection; paho callbacks only append here (they run on our thread)."""

    def __init__(self) -> None:
        self.closed = False
        self.acked: list[int] = []
        self.in_flight: dict[int, int] = {}  # mid -> outbox id (alerts only)
        self.last_sent = 0
        self.connected_at = 0.0
        self.first = False  # the process's first connection, made at the first attempt


class Publisher:
    def __init__(
        self,
        endpoint: Endpoint,
        topics: CameraTopics,
        outbox: Outbox,
        *,
        client_id: str | None = None,
        announce_status: bool = True,
        max_in_flight: int = 16,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        health_interval_s: float = 30.0,
        health: Callable[[], dict] | None = None,
        quiet: bool = False,
    ) -> None:
        """`health`: the camera's health dict (detector.health.HealthMeter.snapshot), sent every
        health_interval_s while connected; None: no health messages."""
        self.endpoint = endpoint
        self.topics = topics
        self.outbox = outbox
        self.client_id = client_id or f"detector-{topics.site}-{topics.camera}-{os.getpid()}"[:64]
        self.announce_status = announce_status
        self.max_in_flight = max_in_flight
        self.backoff = Backoff(reconnect_min_s, max(reconnect_max_s, reconnect_min_s))
        self.health_interval_s = health_interval_s
        self.health = health
        self.context = tls_context(endpoint)  # raises PublishError now for bad TLS files
        self.connections = 0
        self.delivered = 0
        self.last_error: str | None = None
        self.refused = False
        self._lock = threading.Lock()
        self._zone_states: dict[str, bytes] = {}
        self._dirty_zones: set[str] = set()
        self._resent: set[int] = set()  # outbox ids sent, not yet acknowledged (a resend is `delayed`)
        self._started_at = time.time()
        self._retry_delete_at = 0.0  # monotonic; see _take_acks
        self._had_trouble = False  # any failed attempt or lost connection so far
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._deadline = float("inf")
        self._reported: str | None = None
        self._quiet = quiet  # replay reports its outcome once at the end instead
        self._tried_since_close = False
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{topics.camera}", daemon=True)

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    def start(self) -> "Publisher":
        self._thread.start()
        return self

    def set_zone_state(self, zone: str, payload: dict) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        with self._lock:
            if self._zone_states.get(zone) != body:
                self._zone_states[zone] = body
                self._dirty_zones.add(zone)

    def close(self, timeout_s: float) -> None:
        """Drain for up to timeout_s (retrying a lost broker at once), then say `offline`."""
        self._deadline = time.monotonic() + timeout_s
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout_s + CONNACK_TIMEOUT_S + 5)

    # --- the thread ---

    def _run(self) -> None:
        failures = 0
        while True:
            session = _Session()
            try:
                self._session(session)
            except Refused as exc:
                self.refused = True
                self._report(str(exc), logging.ERROR)
            except Exception as exc:  # noqa: BLE001 - socket/ssl/paho: mapped to one line, retried
                self._report(describe_error(self.endpoint, exc), logging.WARNING)
            finally:
                self._had_trouble = self._had_trouble or not self._closing.is_set() or bool(self.last_error)
            failures = 1 if session.connected_at else failures + 1  # a lost connection starts over
            if self._should_stop():
                return
            delay = self.backoff.delay(failures - 1)
            if self._closing.is_set():
                delay = min(delay, max(0.0, self._deadline - time.monotonic()))
            if self._wake.wait(delay):  # close() wakes it once: a prompt retry before giving up
                self._wake.clear()

    def _should_stop(self) -> bool:
        if not self._closing.is_set():
            return False
        if time.monotonic() >= self._deadline or self.outbox.count() == 0:
            return True
        return self.refused and self.last_error is not None and self._tried_since_close

    def _session(self, session: _Session) -> None:
        self._tried_since_close = self._closing.is_set()
        will = (self.topics.status, "offline") if self.announce_status else None
        client = new_client(self.endpoint, self.client_id, self.context, will, self.max_in_flight)
        client.on_disconnect = lambda c, u, flags, rc, props: setattr(session, "closed", True)
        client.on_publish = lambda c, u, mid, rc, props: session.acked.append(mid)
        try:
            handshake(client, self.endpoint)
            self._connected(client, session)
            self._serve(client, session)
        finally:
            try:
                client.disconnect() if not session.closed else None
                client.loop(0)
            except Exception:  # noqa: BLE001 - the socket may already be gone
                pass
            try:
                client.socket() and client.socket().close()
            except Exception:  # noqa: BLE001
                pass

    def _connected(self, client: mqtt.Client, session: _Session) -> None:
        session.connected_at = time.time()
        session.first = self.connections == 0 and not self._had_trouble
        self.connections += 1
        self.refused = False
        self.last_error = None
        waiting = self.outbox.count()
        if self._reported is not None or self.connections > 1:
            log.info("mqtt broker %s: connected again; %d alerts waiting in the outbox", self.endpoint.name, waiting)
        self._reported = None
        if self.announce_status:
            client.publish(self.topics.status, "online", qos=1, retain=True)
        with self._lock:
            self._dirty_zones = set(self._zone_states)

    def _serve(self, client: mqtt.Client, session: _Session) -> None:
        next_health = time.monotonic() + min(1.0, self.health_interval_s)
        while True:
            if client.loop(LOOP_TIMEOUT_S) != mqtt.MQTT_ERR_SUCCESS or session.closed:
                raise PublishError(f"mqtt broker {self.endpoint.name}: connection lost")
            self._take_acks(session)
            self._send_pending(client, session)
            self._send_zone_states(client)
            if self.health is not None and time.monotonic() >= next_health:
                next_health = time.monotonic() + self.health_interval_s
                client.publish(self.topics.health, self._health_message(), qos=0)
            if self._closing.is_set():
                drained = not session.in_flight and not self.outbox.pending(session.last_sent, 1)
                if drained or time.monotonic() >= self._deadline:
                    self._goodbye(client, session)
                    return

    def _health_message(self) -> bytes:
        health = self.health()
        aliases = {alias: health[field] for alias, field in DEPRECATED_HEALTH_ALIASES.items()}
        message = {"schema": HEALTH_SCHEMA, "site": self.topics.site, "at": iso_utc(datetime.now(UTC)), **health, **aliases}
        return json.dumps(message, separators=(",", ":")).encode()

    def _take_acks(self, session: _Session) -> None:
        """PUBACKed entries leave the outbox. If the file cannot delete them (disk full) the outbox
        remembers them, so they are not sent again, and the delete is retried here once a second
        until it works (with the next acks sooner)."""
        acked, session.acked = session.acked, []
        ids = [session.in_flight.pop(mid) for mid in acked if mid in session.in_flight]
        if ids or (self.outbox.undeleted and time.monotonic() >= self._retry_delete_at):
            self.outbox.remove(ids)
            self._retry_delete_at = time.monotonic() + DELETE_RETRY_S
        self._resent.difference_update(ids)  # never sent again; kept, the set would grow for months
        self.delivered += len(ids)

    def _send_pending(self, client: mqtt.Client, session: _Session) -> None:
        room = self.max_in_flight - len(session.in_flight)
        if room <= 0:
            return
        for entry in self.outbox.pending(session.last_sent, room):
            info = client.publish(entry.topic, self._wire_body(entry, session), qos=1, retain=False)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise PublishError(f"mqtt broker {self.endpoint.name}: publish failed ({mqtt.error_string(info.rc)})")
            session.in_flight[info.mid] = entry.id
            session.last_sent = entry.id
            self._resent.add(entry.id)

    def _wire_body(self, entry: Entry, session: _Session) -> bytes:
        """Alerts that waited say so: queued by an earlier process, or while the broker was not
        reachable (not merely during the first handshake), or sent before without a PUBACK."""
        if entry.kind != "alert":
            return entry.body
        waited = entry.queued_at < session.connected_at and not (session.first and entry.queued_at >= self._started_at)
        if waited or entry.id in self._resent:
            return Alert.from_bytes(entry.body).with_delayed().to_bytes()
        return entry.body

    def _send_zone_states(self, client: mqtt.Client) -> None:
        with self._lock:
            dirty, self._dirty_zones = self._dirty_zones, set()
            bodies = {zone: self._zone_states[zone] for zone in dirty}
        for zone, body in sorted(bodies.items()):
            client.publish(self.topics.zone_state(zone), body, qos=1, retain=True)

    def _goodbye(self, client: mqtt.Client, session: _Session) -> None:
        if self.announce_status:
            info = client.publish(self.topics.status, "offline", qos=1, retain=True)
            until = time.monotonic() + 2.0
            while info.mid not in session.acked and not session.closed and time.monotonic() < until:
                client.loop(LOOP_TIMEOUT_S)
        self._take_acks(session)
        client.disconnect()
        client.loop(0)
        session.closed = True

    def _report(self, message: str, level: int) -> None:
        """Each distinct problem once (not once per retry); credentials never reach it."""
        self.last_error = message
        if message != self._reported:
            self._reported = message
            log.log(logging.DEBUG if self._quiet else level, "%s; alerts wait in the outbox %s", message, self.outbox.path)
