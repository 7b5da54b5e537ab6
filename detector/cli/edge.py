"""The edge box: `detector run | status` and the hidden `detector worker` (docs/edge.md)."""

import argparse
import os
import signal
from pathlib import Path

from detector.errors import DetectorError


def add_commands(commands) -> None:
    run = commands.add_parser("run", help="the edge box's main job: one supervised worker process per camera")
    run.add_argument("config", type=Path)
    run.set_defaults(command=_run)
    status = commands.add_parser("status", help="health of each camera of a running `detector run`")
    status.add_argument("config", type=Path)
    status.add_argument("--json", action="store_true", help="the health reports as one JSON object")
    status.set_defaults(command=_status)
    worker = commands.add_parser("worker")  # started by `detector run`; no help: not listed
    worker.add_argument("config", type=Path)
    worker.add_argument("--camera", required=True)
    worker.add_argument("--slots", type=Path, help="inference slot folder made by the supervisor")
    worker.add_argument("--parent", type=int, help="pid of the supervisor: exit at once if it is gone")
    worker.add_argument("--probe", action="store_true", help="only open the model and exit (a reload's check)")
    worker.add_argument("--beat-fd", type=int, help="pipe to write a byte to every heartbeat (the supervisor's)")
    worker.set_defaults(command=_worker, log_camera=True)  # every log line names the camera


def _run(args: argparse.Namespace) -> int:
    from detector.supervisor import Supervisor

    return Supervisor(args.config, log_format=args.log_format, verbose=args.verbose).run()


def _status(args: argparse.Namespace) -> int:
    import json

    from detector.config import load_config
    from detector.health import read_health, status_lines

    config = load_config(args.config)
    if args.json:
        print(json.dumps({c.id: read_health(config.storage_dir, c.id) for c in config.cameras}, indent=1))
    else:
        print("\n".join(status_lines(config)))
    return 0


def _worker(args: argparse.Namespace) -> int:
    _die_with_parent(args.parent)  # first: the imports below (config, model, FFmpeg) take a while
    from detector.supervisor import probe_model, worker_main

    if args.probe:
        return probe_model(args.config)
    return worker_main(args.config, args.camera, args.slots, args.beat_fd)


def _die_with_parent(parent: int | None) -> None:
    """Linux: SIGTERM this worker when the supervisor dies (no orphaned cameras). The signal only
    covers a death after it is armed, so then check that the supervisor is still our parent."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent is not None and os.getppid() != parent:
        raise DetectorError(f"the supervisor (pid {parent}) that started this worker is gone")
