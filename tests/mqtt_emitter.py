"""Drives the real outbox + publisher with synthetic alerts, as a worker process would (no model).

    python tests/mqtt_emitter.py CONFIG --camera cam-01 --count 50 --interval 0.05 [--hold S]

Prints `QUEUED <id> <seq> <event>` once each alert is durably in the outbox (flushed), so a test
that SIGKILLs this process knows what was produced; exits like `detector replay` (5 and one line
on stderr when alerts are left undelivered).
"""

import argparse
import sys
import time
from datetime import UTC, datetime

from conftest import make_alert

from detector.alerts import iso_utc
from detector.alerts.ids import new_alert_id
from detector.config import load_config
from detector.errors import DetectorError
from detector.health import HealthMeter, health_path
from detector.mqtt.channel import AlertChannel


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--camera", required=True)
    parser.add_argument("--count", type=int, default=10, help="alert events (start, updates..., end per 5)")
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to stay connected after the last alert")
    args = parser.parse_args()
    try:
        config = load_config(args.config)
        meter = HealthMeter(args.camera, path=health_path(config.storage_dir, args.camera))  # no source
        channel = AlertChannel.open(config, args.camera, quiet=True, meter=meter)
    except DetectorError as exc:
        print(f"detector: error: {exc}", file=sys.stderr)
        return exc.exit_code
    alert_id, seq = None, 0
    for i in range(args.count):
        event = "start" if i % 5 == 0 else ("end" if i % 5 == 4 or i == args.count - 1 else "update")
        if event == "start":
            alert_id, seq = new_alert_id(), 0
        seq += 1
        now = iso_utc(datetime.now(UTC))
        alert = make_alert(
            id=alert_id, seq=seq, event=event, site=config.site, camera=args.camera, stream_time_s=round(i * 0.5, 3),
            first_seen_at=now, at=now,
        )  # fmt: skip
        channel.emit(alert)
        print(f"QUEUED {alert_id} {seq} {event}", flush=True)
        state = {"state": "idle", "alert_id": None} if event == "end" else {"state": "active", "alert_id": alert_id}
        channel.observe({"kerb": {"illegal_parking": state}})
        meter.frame(i * 0.5, inference_ms=12.5, open_alerts=0 if event == "end" else 1)
        time.sleep(args.interval)
    time.sleep(args.hold)
    channel.close()
    meter.report("stopped")
    problem = channel.problem()
    if problem:
        print(f"detector: error: {problem}", file=sys.stderr)
        return 5
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
