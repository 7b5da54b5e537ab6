"""A broker that goes down every couple of seconds while alerts keep coming (issue 9): every alert
arrives at least once and in order, and an (id, seq) arrives twice only as a re-send flagged
`delayed` (or as the broker's own redelivery of the very same message to the subscriber)."""

import json
import random
import time

import pytest
from mqtt_broker import Collector, broker_fixture, needs_mosquitto  # noqa: F401
from test_mqtt_publish import emitter, first_arrivals, keys, outbox_depth, queued, write_config

pytestmark = [needs_mosquitto, pytest.mark.timeout(120)]


class DupCollector(Collector):
    """Also records which messages the broker flagged as its own redelivery (MQTT DUP)."""

    def __init__(self, broker) -> None:
        self.redelivered: list[bool] = []
        super().__init__(broker)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))
            self.redelivered.append(bool(message.dup))

    def alerts_with_dup(self) -> list[tuple[dict, bool]]:
        with self._lock:
            pairs = list(zip(self.messages, self.redelivered, strict=True))
        return [(json.loads(m[1]), dup) for m, dup in pairs if m[0].endswith("/alert")]


def test_a_flapping_broker_loses_nothing_and_duplicates_only_flagged_resends(tmp_path, broker):
    collector = DupCollector(broker)
    proc = emitter(write_config(tmp_path, broker.mqtt_section(drain_timeout_s=20)), "--count", "300", "--interval", "0.05")
    flaps, rng, started = 0, random.Random(9), time.monotonic()
    while proc.poll() is None and time.monotonic() - started < 30:
        time.sleep(rng.uniform(1.0, 2.0))
        broker.stop()
        time.sleep(rng.uniform(0.3, 1.0))
        broker.start()
        flaps += 1
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    produced = queued(out)
    assert len(produced) == 300 and flaps >= 5
    assert collector.wait(lambda c: set(keys(c.alerts())) >= set(produced), timeout=30), "alerts lost"
    pairs = collector.alerts_with_dup()
    assert first_arrivals([a for a, _ in pairs]) == produced  # all of them, first arrivals in order
    seen: dict[tuple[str, int], dict] = {}
    resent = 0
    for alert, dup in pairs:
        key = (alert["id"], alert["seq"])
        if key in seen:
            same = {k: v for k, v in alert.items() if k != "delayed"} == {k: v for k, v in seen[key].items() if k != "delayed"}
            assert same, key  # the same event again, never a different one under the same (id, seq)
            assert alert["delayed"] or (dup and alert == seen[key]), f"{key}: a duplicate not flagged delayed"
            resent += 1
        seen[key] = alert
    assert outbox_depth(tmp_path) == 0
    print(f"\n{flaps} broker restarts in {time.monotonic() - started:.0f} s: 300 produced, {len(pairs)} received, {resent} again")
    collector.close()
