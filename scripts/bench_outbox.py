#!/usr/bin/env python3
"""Outbox throughput: alerts/s written durably (SQLite WAL, synchronous=FULL, one commit each, as
the frame loop does) and alerts/s delivered to a local mosquitto (PUBACK received, row deleted).
Median of --repeats runs. Needs /usr/sbin/mosquitto for the delivery figure.

    .venv/bin/python scripts/bench_outbox.py [--alerts 2000] [--repeats 3] [--in-flight 1 16 64] [--dir DIR]
"""

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detector.alerts.ids import new_alert_id  # noqa: E402
from detector.mqtt.connection import Endpoint  # noqa: E402
from detector.mqtt.outbox import Outbox  # noqa: E402
from detector.mqtt.publisher import Publisher  # noqa: E402
from detector.mqtt.topics import CameraTopics  # noqa: E402

BODY = b'{"schema":"detector.alert/1","objects":[' + b'{"label":"car","score":0.81,"box":[0.1,0.2,0.3,0.4]},' * 8 + b"{}]}"


def fill(outbox: Outbox, n: int) -> float:
    started = time.perf_counter()
    for seq in range(1, n + 1):
        outbox.put("alert", "bench/s/cam/alert", new_alert_id(), seq, "update", BODY)
    return n / (time.perf_counter() - started)


def start_broker(folder: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n")
    broker = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return broker, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def deliver(folder: Path, port: int, n: int, in_flight: int) -> float:
    outbox = Outbox(folder / f"deliver-{time.monotonic_ns()}.sqlite3", max_alerts=2 * n)
    fill(outbox, n)
    publisher = Publisher(
        Endpoint("127.0.0.1", port),
        CameraTopics("bench", "s", "cam"),
        outbox,
        announce_status=False,
        max_in_flight=in_flight,
        quiet=True,
    )
    started = time.perf_counter()
    publisher.start()
    while outbox.count():
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    publisher.close(5)
    outbox.close()
    return n / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument(
        "--dir", type=Path, help="where the outbox files go (default: a temp folder; fsync cost depends on the disk)"
    )
    args = parser.parse_args()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        writes = []
        for i in range(args.repeats):
            outbox = Outbox(folder / f"write-{i}.sqlite3", max_alerts=2 * args.alerts)
            writes.append(fill(outbox, args.alerts))
            outbox.close()
        print(
            f"durable writes: {statistics.median(writes):8.0f} alerts/s  (median of {args.repeats} x {args.alerts}; "
            f"{1000 / statistics.median(writes):.2f} ms per alert; {len(BODY)} B payload)"
        )
        broker, port = start_broker(folder)
        try:
            for in_flight in args.in_flight:
                rates = [deliver(folder, port, args.alerts, in_flight) for _ in range(args.repeats)]
                print(f"delivered (PUBACK + delete), max_in_flight {in_flight:3}: {statistics.median(rates):8.0f} alerts/s")
        finally:
            broker.terminate()
            broker.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
