#!/usr/bin/env python3
"""The full-disk soak of issue 9: the real `detector run` (supervisor, one worker, the model, a
real mosquitto) with its storage_dir on a small tmpfs that fills up, stays full, then gets space
back. Prints what the closing note needs: alert events produced (the worker's log lines) vs
delivered (what a subscriber received), duplicates, status messages, worker restarts,
tracebacks, time blind (no frame through the model), and the health `storage` field over time.

    sudo .venv/bin/python scripts/soak_disk_full.py [--full-s 120] [--after-s 30] [--tmpfs-mb 2]

Needs root (it mounts a tmpfs) and /usr/sbin/mosquitto. The camera is the bundled vtest.avi
played as a live source (restarted at its end), with short timings so that the van parked in
it gives an `update` every 2 s.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from mqtt_broker import Collector, Mosquitto  # noqa: E402

VAN_ZONE = [[0.82, 0.06], [0.97, 0.06], [0.97, 0.20], [0.82, 0.20]]
ALERT_LINE = re.compile(r"event=alert_(?:start|update|end) .*?id=(\S+) seq=(\d+)")


def write_config(path: Path, store: Path, broker: Mosquitto) -> None:
    import yaml

    config = {
        "site": "soak",
        "model": {"path": str(ROOT / "models" / "yolov8n_320.onnx"), "threads": 1},
        "detect": {"fps": 2, "min_score": 0.35},
        "track": {"settle_s": 1.0},
        "violations": {"illegal_parking": {"dwell_s": 2, "grace_s": 10, "clear_s": 6, "cooldown_s": 300, "update_s": 2}},
        "storage_dir": str(store),
        "mqtt": broker.mqtt_section(),
        "cameras": [
            {
                "id": "vtest",
                "source": str(ROOT / "sample_videos" / "clips" / "vtest.avi"),
                "zones": [{"id": "van-no-parking", "polygon": VAN_ZONE, "violations": ["illegal_parking"]}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config))


def fill(folder: Path) -> Path:
    """Write a file until the file system says ENOSPC: the disk is full."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def health_timeline(collector: Collector) -> list[tuple[float, dict]]:
    return [(t, json.loads(body)) for t, topic, body in collector.timed if topic.endswith("/health")]


def blind_seconds(progress: list[float], start: float, end: float) -> tuple[float, float]:
    """Total and longest time between `start` and `end` without a frame through the model
    (gaps of over 2 s between health messages that show frames_out moving; 1 s a message)."""
    marks = [start] + [t for t in progress if start <= t <= end] + [end]
    gaps = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    return sum(g - 1.0 for g in gaps if g > 2.0), max(gaps, default=0.0)


class TimedCollector(Collector):
    """A Collector that also keeps each message's arrival time."""

    def __init__(self, broker: Mosquitto) -> None:
        self.timed: list[tuple[float, str, bytes]] = []
        super().__init__(broker)

    def _on_message(self, client, userdata, message) -> None:
        super()._on_message(client, userdata, message)
        self.timed.append((time.monotonic(), message.topic, message.payload))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-s", type=float, default=120.0, help="how long the disk stays full")
    parser.add_argument("--after-s", type=float, default=30.0, help="how long to watch after space is freed")
    parser.add_argument("--tmpfs-mb", type=float, default=2.0, help="size of the storage_dir's tmpfs")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("soak_disk_full: error: needs root (it mounts a tmpfs for storage_dir)")

    with tempfile.TemporaryDirectory(prefix="soak-disk-full-") as tmp:
        tmp = Path(tmp)
        store = tmp / "store"
        store.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(args.tmpfs_mb * 1024)}k", "tmpfs", str(store)], check=True)
        broker = Mosquitto(tmp / "broker").start()
        collector = TimedCollector(broker)
        config = tmp / "soak.yaml"
        write_config(config, store, broker)
        log_path = tmp / "run.log"
        run = None
        try:
            with open(log_path, "w") as log_file:
                run = subprocess.Popen(
                    [sys.executable, "-m", "detector", "--log-format", "kv", "run", str(config)],
                    cwd=ROOT,
                    env=os.environ | {"PYTHONPATH": str(ROOT)},
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            if not collector.wait(lambda c: any(a["event"] == "start" for a in c.alerts()), timeout=120):
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
                raise SystemExit(f"soak_disk_full: error: no alert within 120 s of starting; the log ends:\n{tail}")
            time.sleep(3)
            filled_at = time.monotonic()
            filler = fill(store)
            print(f"disk full at +0 s ({filler.stat().st_size // 1024} KiB filler); holding {args.full_s:g} s", flush=True)
            time.sleep(args.full_s)
            filler.unlink()
            freed_at = time.monotonic()
            print(f"space freed at +{freed_at - filled_at:.0f} s; watching {args.after_s:g} s", flush=True)
            time.sleep(args.after_s)
            ended_at = time.monotonic()
        finally:
            if run is not None:
                run.send_signal(signal.SIGTERM)
                try:
                    run.wait(60)
                except subprocess.TimeoutExpired:
                    run.kill()
            time.sleep(1)
            collector.close()
            broker.stop()
            subprocess.run(["umount", str(store)], check=False)
        log = log_path.read_text(errors="replace")

    produced = {(m[1], int(m[2])) for m in ALERT_LINE.finditer(log)}
    received = [(a["id"], a["seq"]) for a in collector.alerts()]
    delivered = set(received)
    statuses = Counter(body.decode() for t, topic, body in collector.timed if topic.endswith("/status"))
    timeline = health_timeline(collector)
    progress, last = [], {}
    for t, h in timeline:
        if h.get("frames_out", 0) > last.get(h["pid"], 0):
            progress.append(t)
        last[h["pid"]] = h.get("frames_out", 0)
    blind_full, longest_full = blind_seconds(progress, filled_at, freed_at)
    blind_after, _ = blind_seconds(progress, freed_at, ended_at)
    storage_full = Counter(h.get("storage", "(no field)") for t, h in timeline if filled_at + 3 <= t <= freed_at)
    storage_after = [h.get("storage", "(no field)") for t, h in timeline if t >= freed_at]
    figures = {
        "disk full for s": round(freed_at - filled_at, 1),
        "alert events produced (log)": len(produced),
        "alert events delivered (distinct id, seq)": len(delivered),
        "produced but not delivered": len(produced - delivered),
        "alert messages received": len(received),
        "duplicate deliveries": len(received) - len(delivered),
        "most copies of one event": max(Counter(received).values(), default=0),
        "status online / offline": f"{statuses['online']} / {statuses['offline']}",
        "worker restarts": log.count("event=worker_exited"),
        "tracebacks in the log": log.count("Traceback"),
        "'OperationalError' in the log": log.count("OperationalError"),
        "blind while full: total s / longest gap s": f"{blind_full:.0f} / {longest_full:.0f}",
        "blind after space returned: s": round(blind_after),
        "health storage while full": dict(storage_full),
        "health storage at the end": storage_after[-1] if storage_after else None,
        "health outbox_memory, most while full": max(
            (h.get("outbox_memory") or 0 for t, h in timeline if filled_at <= t <= freed_at), default=None
        ),
        "health storage_failures at the end": timeline[-1][1].get("storage_failures") if timeline else None,
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:{width}}  {value}")
    warnings = [line for line in log.splitlines() if "level=warning" in line or "level=error" in line or "event=storage_" in line]
    print(f"\nwarning/error and storage log lines: {len(warnings)}; the first 8:")
    for line in warnings[:8]:
        print("  " + re.sub(r"^ts=\S+ ", "", line)[:240])
    return 0


if __name__ == "__main__":
    sys.exit(main())
