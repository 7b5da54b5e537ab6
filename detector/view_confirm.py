"""An operator's word on a paused view, from `detector view confirm` to the camera's worker.

The command writes `{storage_dir}/run/view-confirm/{camera}.json` (atomically); the worker's
frame loop takes it (reads and deletes it) at its next heartbeat and hands it to its pipeline
(CameraPipeline.confirm_view). A file, not a signal: it names the camera, the choice (the view is
back / the new view is the right one) and who asked; it needs no pid and no new service; and
SIGHUP already means "reload the config" to the supervisor.
"""

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewConfirmation:
    by: str  # who confirmed (the operator's user name)
    at: float  # when, unix s
    accept_new_view: bool = False  # the view as it is now is the right one: it becomes the reference


def confirmation_path(storage_dir: Path, camera_id: str) -> Path:
    return Path(storage_dir) / "run" / "view-confirm" / f"{camera_id}.json"


def request_confirmation(storage_dir: Path, camera_id: str, confirmation: ViewConfirmation) -> Path:
    """Leave the confirmation for the camera's worker (a newer one replaces one not yet taken)."""
    path = confirmation_path(storage_dir, camera_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(confirmation)))
    os.replace(partial, path)  # the worker never reads half a request
    return path


def take_confirmation(storage_dir: Path, camera_id: str) -> ViewConfirmation | None:
    """The camera's pending confirmation, removed; None without one (or an unreadable one, logged)."""
    path = confirmation_path(storage_dir, camera_id)
    try:
        text = path.read_text()
        path.unlink()
    except FileNotFoundError:
        return None
    try:
        return ViewConfirmation(**json.loads(text))
    except (ValueError, TypeError) as exc:
        log.warning("%s: unreadable view confirmation (%s); ignored", path, exc)
        return None
