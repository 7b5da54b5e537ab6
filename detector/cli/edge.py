"""The edge box: `detector run | status | view confirm` and the hidden `detector worker` (docs/edge.md)."""

import argparse
import getpass
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
    view = commands.add_parser("view", help="a camera's moved or blocked view: confirm it to resume")
    view_commands = view.add_subparsers(required=True, metavar="ACTION")
    confirm = view_commands.add_parser("confirm", help="resume a camera paused until an operator confirms its view")
    confirm.add_argument("config", type=Path)
    confirm.add_argument("--camera", required=True)
    confirm.add_argument(
        "--accept-new-view",
        action="store_true",
        help="the view as it is now is the right one (the zones fit it): the new reference",
    )
    confirm.add_argument("--by", default=getpass.getuser(), help="who confirms, for the log (default: your user name)")
    confirm.add_argument("--wait-s", type=float, default=5.0, help="how long to wait for the worker to take it")
    confirm.set_defaults(command=_confirm_view)
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


def _confirm_view(args: argparse.Namespace) -> int:
    """Leave the confirmation for the camera's running worker and wait until it has taken it."""
    import time

    from detector.cli.common import camera_of
    from detector.config import load_config
    from detector.health import read_health, worker_down
    from detector.view_confirm import ViewConfirmation, confirmation_path, request_confirmation

    config = load_config(args.config)
    camera = camera_of(config, args.camera)
    health = read_health(config.storage_dir, camera.id)
    down = worker_down(health, time.time(), config.supervisor.heartbeat_timeout_s)
    if down:
        raise DetectorError(f"camera {camera.id}: no running worker ({down}); start `detector run` first")
    view = health.get("view") or {}
    if view.get("state") in (None, "ok"):
        print(f"camera {camera.id}: the view is not paused; nothing to confirm")
        return 0
    if not view.get("back") and not args.accept_new_view:
        raise DetectorError(
            f"camera {camera.id}: {view['state']} ({view['reason']}) and the view does not match its reference yet; "
            "wait for it to come back, or confirm with --accept-new-view if the new view is the right one"
        )
    request_confirmation(config.storage_dir, camera.id, ViewConfirmation(args.by, time.time(), args.accept_new_view))
    deadline = time.monotonic() + args.wait_s
    while confirmation_path(config.storage_dir, camera.id).exists():
        if time.monotonic() > deadline:
            raise DetectorError(f"camera {camera.id}: the worker has not taken the confirmation within {args.wait_s:g} s")
        time.sleep(0.1)
    print(f"camera {camera.id}: confirmed by {args.by}; see `detector status` (the worker's log says whether it resumed)")
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
