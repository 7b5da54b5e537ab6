"""`detector listen`: subscribe to `{prefix}/#` and print what the detectors publish.

Readable lines by default (alerts through `format_alert`; status and zone-state changes; health
with --health); `--json`: one JSON object per message, {"topic", "retain", "payload"}.
"""

import json
import os
import sys
import time
from typing import TextIO

import paho.mqtt.client as mqtt

from detector.alerts import Alert, format_alert
from detector.backoff import Backoff
from detector.errors import PublishError
from detector.mqtt.connection import Endpoint, describe_error, handshake, new_client, tls_context
from detector.mqtt.topics import parse


class Printer:
    def __init__(self, prefix: str, as_json: bool, health: bool, out: TextIO) -> None:
        self.prefix = prefix
        self.as_json = as_json
        self.health = health
        self.out = out
        self.alerts = 0
        self._last: dict[str, bytes] = {}  # topic -> payload, to print state changes only

    def message(self, topic: str, payload: bytes, retain: bool) -> None:
        parsed = parse(topic, self.prefix)
        if self.as_json:
            self._json(topic, payload, retain)
        elif parsed is not None:
            self._readable(topic, payload, parsed)
        if parsed is not None and parsed[2] == "alert":
            self.alerts += 1

    def _json(self, topic: str, payload: bytes, retain: bool) -> None:
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):  # whatever others publish under the prefix
            body = payload.decode("utf-8") if _is_text(payload) else {"bytes": len(payload)}
        print(json.dumps({"topic": topic, "retain": retain, "payload": body}, ensure_ascii=False), file=self.out, flush=True)

    def _readable(self, topic: str, payload: bytes, parsed: tuple) -> None:
        site, camera, kind, rest = parsed
        where = f"{site}/{camera}"
        line = None
        try:
            if kind == "alert":
                alert = Alert.from_bytes(payload)
                line = format_alert(alert) + ("  [delayed]" if alert.delayed else "")
            elif kind == "status" and self._changed(topic, payload):
                line = f"{'':9} STATUS {where}: {payload.decode('utf-8', 'replace')}"
            elif kind == "zone" and rest[-1:] == ("state",) and self._changed(topic, payload):
                state = json.loads(payload)
                parts = [
                    f"{t}={s['state']}" + (f" (id {s['alert_id'][:13]})" if s.get("alert_id") else "")
                    for t, s in state["states"].items()
                ]
                line = f"{'':9} ZONE   {where}/{rest[0]}: {', '.join(parts)}"
            elif kind == "snapshot":
                line = f"{'':9} SNAPSHOT {where} alert {rest[0] if rest else '?'}: {len(payload)} bytes of JPEG"
            elif kind == "health" and self.health:
                h = json.loads(payload)
                line = (
                    f"{'':9} HEALTH {where}: {h['state']}, {h['fps_out']} fps out, inference {h['inference_ms']} ms "
                    f"(+{h['inference_wait_ms']} waiting), open alerts {h['open_alerts']}, outbox {h['outbox_depth']}, "
                    f"mqtt reconnects {h['mqtt_reconnects']}"
                )
                if h["stream"] is not None:  # a source is reported (docs/mqtt.md)
                    line += (
                        f", stream {h['stream']} ({h['stream_reconnects']} reconnects"
                        + (f", {h['last_error']}" if h["last_error"] else "")
                        + f"), {h['fps_in']} fps in, frame age {h['frame_age_s']} s, dropped {h['dropped_frames']}, "
                        f"decode errors {h['decode_errors']}"
                    )
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError):
            line = f"{'':9} MALFORMED {kind} on {topic}: {payload[:80]!r}"
        if line is not None:
            print(line, file=self.out, flush=True)

    def _changed(self, topic: str, payload: bytes) -> bool:
        changed = self._last.get(topic) != payload
        self._last[topic] = payload
        return changed


def listen(
    endpoint: Endpoint,
    prefix: str,
    *,
    as_json: bool = False,
    health: bool = False,
    count: int | None = None,
    timeout_s: float | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Until interrupted, `count` alerts or `timeout_s`. A first connection that fails raises
    PublishError (one line); a lost one is retried at once, then with Backoff."""
    printer = Printer(prefix, as_json, health, out)
    context = tls_context(endpoint)
    backoff = Backoff(0.5, 10.0)
    deadline = time.monotonic() + timeout_s if timeout_s else float("inf")
    connected_once, failures = False, 0
    while time.monotonic() < deadline and (count is None or printer.alerts < count):
        client = new_client(endpoint, f"detector-listen-{os.getpid()}", context)
        closed: list[bool] = []
        client.on_disconnect = lambda c, u, f, rc, p, closed=closed: closed.append(True)
        client.on_message = lambda c, u, m: printer.message(m.topic, m.payload, bool(m.retain))
        try:
            handshake(client, endpoint)
            client.subscribe(f"{prefix}/#", qos=1)
            if not as_json:
                print(f"listening on {endpoint.name} to {prefix}/#", file=err, flush=True)
            connected_once, failures = True, 0
            while time.monotonic() < deadline and (count is None or printer.alerts < count):
                if client.loop(0.1) != mqtt.MQTT_ERR_SUCCESS or closed:
                    print(f"mqtt broker {endpoint.name}: connection lost, reconnecting", file=err, flush=True)
                    break
        except Exception as exc:  # noqa: BLE001 - socket/ssl/refusal: one line
            if not connected_once:
                raise PublishError(describe_error(endpoint, exc)) from None
            time.sleep(min(backoff.delay(failures), max(0.0, deadline - time.monotonic())))
            failures += 1
        finally:
            try:
                client.disconnect()
            except Exception:  # noqa: BLE001 - the socket may already be gone
                pass
    return 0


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
