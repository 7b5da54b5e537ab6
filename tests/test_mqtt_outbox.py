"""The durable outbox on its own (no broker): durability settings, order, bound policy, embedded mode."""

import json
import logging
import sqlite3

import yaml
from conftest import make_alert

from detector.cli import main
from detector.config import load_config
from detector.mqtt.channel import AlertChannel
from detector.mqtt.outbox import Outbox, outbox_path


def test_outbox_is_wal_full_sync_and_keeps_order_across_reopen(tmp_path):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, 100)
    assert box._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    ids = [box.put("alert", "t/alert", f"a{i}", 1, "start", json.dumps({"n": i}).encode()) for i in range(20)]
    box.remove(ids[:5])
    box.close()
    # a separate connection (another process would see the same): committed, ordered
    rows = sqlite3.connect(path).execute("SELECT id, alert_id FROM outbox ORDER BY id").fetchall()
    assert [r[1] for r in rows] == [f"a{i}" for i in range(5, 20)]
    again = Outbox(path, 100)
    pending = again.pending(0, 100)
    assert [json.loads(e.body)["n"] for e in pending] == list(range(5, 20))
    assert [e.alert_id for e in again.pending(pending[4].id, 3)] == ["a10", "a11", "a12"]


def test_bound_drops_snapshots_then_updates_then_oldest_and_says_so(tmp_path, caplog):
    box = Outbox(tmp_path / "o.sqlite3", max_alerts=10)
    caplog.set_level(logging.WARNING, logger="detector.mqtt.outbox")
    box.put("alert", "t", "A", 1, "start", b"{}")
    box.put("snapshot", "t/s", "A", 1, "snapshot", b"\xff\xd8jpeg")
    for seq in range(2, 6):
        box.put("alert", "t", "A", seq, "update", b"{}")
    box.put("alert", "t", "A", 6, "end", b"{}")  # 7 of 10
    assert not any("full" in r.message for r in caplog.records)
    box.put("alert", "t", "B", 1, "start", b"{}")  # 8 of 10: 80 %
    assert sum("80% full (8 of 10)" in r.message for r in caplog.records) == 1
    box.put("alert", "t", "B", 2, "end", b"{}")
    box.put("alert", "t", "C", 1, "start", b"{}")  # 10: full, nothing dropped yet
    assert box.dropped == 0
    box.put("alert", "t", "C", 2, "end", b"{}")  # drops the snapshot
    box.put("alert", "t", "D", 1, "start", b"{}")  # drops update seq 2
    kept = [(e.alert_id, e.seq, e.event) for e in box.pending(0, 100)]
    assert ("A", 1, "snapshot") not in kept and ("A", 2, "update") not in kept
    assert ("A", 3, "update") in kept and len(kept) == 10
    for i in range(3):  # the 3 updates left go next, then the oldest of all (A's start)
        box.put("alert", "t", f"E{i}", 1, "start", b"{}")
    box.put("alert", "t", "F", 1, "start", b"{}")
    kept = [(e.alert_id, e.seq) for e in box.pending(0, 100)]
    assert kept[0] == ("A", 6) and ("F", 1) in kept and len(kept) == 10
    assert box.dropped == 6
    drops = [r.message for r in caplog.records if "dropped the oldest" in r.message]
    assert len(drops) == 6
    assert "snapshot of alert A (seq 1)" in drops[0] and "update of alert A (seq 2)" in drops[1]
    assert "start of alert A (seq 1)" in drops[-1]
    assert sum("full (" in r.message and "%" in r.message for r in caplog.records) == 1  # 80 % warning once


def _config(tmp_path, mqtt=None):
    data = {
        "site": "s1",
        "model": {"path": "models/yolov8n.onnx"},
        "storage_dir": str(tmp_path / "store"),
        "cameras": [{"id": "cam-01", "source": "x.mp4"}, {"id": "cam-02", "source": "y.mp4"}],
    }
    if mqtt:
        data["mqtt"] = mqtt
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_without_mqtt_alerts_wait_in_the_outbox_and_cli_lists_them(tmp_path, capsys):
    config_path = _config(tmp_path)
    config = load_config(config_path)
    channel = AlertChannel.open(config, "cam-01")
    alerts = [
        make_alert(
            site="s1", camera="cam-01", id="01a2160c-f2d5-7b52-a0fd-aeb449f3cfb5", seq=seq, event=ev, stream_time_s=seq * 10.0
        )
        for seq, ev in ((1, "start"), (2, "update"), (3, "end"))
    ]
    for alert in alerts:
        channel.emit(alert)
    channel.observe({"kerb": {"illegal_parking": {"state": "idle", "alert_id": None}}})
    channel.close()
    assert channel.problem() is None  # nothing configured to send to: not an error
    stored = Outbox(outbox_path(config.storage_dir, "cam-01")).pending()
    assert [json.loads(e.body) for e in stored] == [a.to_json() for a in alerts]  # exactly the emitted payloads, in order

    assert main(["outbox", str(config_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert "START" in lines[0] and "UPDATE" in lines[1] and "END" in lines[2]
    assert all("cam-01/kerb" in line and "seq" in line for line in lines[:3])
    assert lines[3].startswith("3 waiting in") and "no mqtt section" in lines[3]

    assert main(["outbox", str(config_path), "--drain"]) == 5  # no broker configured: one clear line
    assert "no mqtt section" in capsys.readouterr().err
    assert main(["outbox", str(config_path), "--purge"]) == 0
    assert "deleted 3" in capsys.readouterr().out
    assert Outbox(outbox_path(config.storage_dir, "cam-01")).count() == 0
