"""One camera's health: one meter fed by every stage, one dict, one set of names, one window.

The frame loop feeds `frame()` (model and inference-slot wait ms, open alerts); the meter reads
the source's `stats` and the alert channel's `delivery()` itself. The same `snapshot()` is
written every heartbeat by `report()` to `{storage_dir}/health/{camera}.json` (the supervisor's
liveness signal, what `detector status` prints) and sent by the publisher thread as MQTT
`.../health` (docs/mqtt.md has the table of fields). `worker_down` is the one definition of a
worker that is down, for `detector status` and the supervisor alike.

A full or read-only disk does not stop the heartbeat: the storage fields say so (detector.storage),
and when no new file can be made the health file is rewritten in place (its block is already on
disk), so the supervisor still sees the worker beat.
"""

import json
import os
import resource
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from detector.storage import HEALTH_FIELDS, Storage

if TYPE_CHECKING:  # the supervisor reads health files and must not import PyAV (docs/edge.md)
    from detector.capture.source import FrameSource

WINDOW_S = 10.0  # rates and means cover the last 10 s: steady at 1 fps, and fresh
MARK_S = 1.0  # how often the frame loop records the counters the rates are taken from


@dataclass(frozen=True)
class Delivery:
    """The alert channel's figures (None where there is no such thing: no broker, no channel)."""

    outbox_depth: int | None = None
    outbox_dropped: int | None = None
    mqtt_reconnects: int | None = None
    delivered: int | None = None
    outbox_memory: int | None = None


@dataclass(frozen=True)
class _Mark:
    at: float  # time.monotonic()
    cpu_s: float
    frames_in: int
    frames_out: int


def health_path(storage_dir: Path, camera_id: str) -> Path:
    return Path(storage_dir) / "health" / f"{camera_id}.json"


class HealthMeter:
    """Thread-safe: the frame loop feeds and reports, the publisher thread takes snapshots."""

    def __init__(
        self,
        camera_id: str,
        *,
        path: Path | None = None,
        source: "FrameSource | None" = None,
        storage: Storage | None = None,
    ) -> None:
        """`path`: the health file (None: no file, e.g. a replay); `source`: a live source (None:
        the source fields are null); `storage`: the camera's storage_dir, whose faults and disk
        use the meter reports (None: those fields are null)."""
        self.camera_id = camera_id
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.storage = storage
        self.source = source  # `detector run` sets it once the live source is open
        self.delivery: Callable[[], Delivery] = Delivery  # the alert channel's, once opened with this meter
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._state = "running"
        self._failure: str | None = None  # why the worker cannot start (state "failed")
        self._heartbeat_at = self.started_at
        self._frames_out = 0
        self._stream_time_s: float | None = None
        self._open_alerts = 0
        self._view: dict | None = None  # {state, since, reason, awaiting_operator, back}; None: no view stage
        self._frames: deque[tuple[float, float, float]] = deque()  # (monotonic, inference ms, wait ms)
        self._marks: deque[_Mark] = deque([self._mark(time.monotonic())])

    def frame(self, ts: float, inference_ms: float, wait_ms: float = 0.0, open_alerts: int = 0, view=None) -> None:
        """After each frame through the pipeline: its stream time, model ms (slot wait excluded),
        slot wait ms, the alerts open after it, and the view's state (a detector.view.ViewState)."""
        now = time.monotonic()
        with self._lock:
            if view is not None and _view_changed(self._view, view):
                since = time.time() - max(ts - view.since_s, 0.0)  # the wall time the frames began to say so
                self._view = {
                    "state": view.status.value,
                    "since": round(since, 3),
                    "reason": view.reason or None,
                    "awaiting_operator": view.awaiting_operator,
                    "back": view.back,
                }
            self._frames_out += 1
            self._stream_time_s = ts
            self._open_alerts = open_alerts
            self._heartbeat_at = time.time()
            self._frames.append((now, inference_ms, wait_ms))
            if now - self._marks[-1].at >= MARK_S:
                self._marks.append(self._mark(now))
            self._trim(now)

    def report(self, state: str = "running") -> dict:
        """The frame loop's heartbeat (starting | running | stopped): writes the health file."""
        with self._lock:
            self._state = state
            self._heartbeat_at = time.time()
        if self.storage is not None:
            self.storage.probe()  # once a second: a full disk that has room again clears here
        health = self.snapshot()
        if self.path is not None:
            self._write(json.dumps(health).encode())
        return health

    def _write(self, data: bytes) -> None:
        """Atomically (a new file renamed over the old); on a full disk, in place."""
        partial = self.path.with_suffix(".tmp")
        try:
            partial.write_bytes(data)
            os.replace(partial, self.path)
        except OSError as exc:
            with suppress(OSError):  # read-only: unlink fails too
                partial.unlink(missing_ok=True)
            if self.storage is None or not self.storage.failed("health", self.path, exc):
                raise
            _rewrite_in_place(self.path, data)
            return
        if self.storage is not None:
            self.storage.succeeded("health")

    def failed(self, reason: str) -> dict:
        """The worker cannot start (its config or the model is wrong): `state: failed`, the
        reason as `last_error`."""
        self._failure = reason
        return self.report("failed")

    def snapshot(self) -> dict:
        """The health dict; `heartbeat_at` only moves with the frame loop, so a hung loop shows
        in the MQTT message too."""
        stats = self.source.stats if self.source is not None else None
        delivery = self.delivery()
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            base, mark = self._marks[0], self._mark(now)
            self._marks.append(mark)
            frames = list(self._frames)
            span = mark.at - base.at
            health = {
                "camera": self.camera_id,
                "pid": os.getpid(),
                "state": self._state,
                "started_at": round(self.started_at, 3),
                "heartbeat_at": round(self._heartbeat_at, 3),
                "fps_out": _rate(mark.frames_out - base.frames_out, span),
                "frames_out": mark.frames_out,
                "stream_time_s": round(self._stream_time_s, 3) if self._stream_time_s is not None else None,
                "inference_ms": _mean([f[1] for f in frames]),
                "inference_wait_ms": _mean([f[2] for f in frames]),
                "cpu_cores": _rate(mark.cpu_s - base.cpu_s, span, digits=3),
                "open_alerts": self._open_alerts,
                "view": self._view,
            }
        live = stats is not None
        health |= {
            "stream": stats.state if live else None,
            "size": f"{stats.size[0]}x{stats.size[1]}" if live and stats.size else None,
            "decode": asdict(stats.decode) if live and stats.decode else None,
            "fps_in": _rate(mark.frames_in - base.frames_in, span) if live else None,
            "frames_in": stats.decoded if live else None,
            "frame_age_s": round(time.time() - stats.last_frame_at, 2) if live and stats.last_frame_at else None,
            "stream_reconnects": stats.reconnects if live else None,
            "decode_errors": stats.decode_errors if live else None,
            "dropped_frames": stats.dropped if live else None,
            "last_error": self._failure or (stats.last_error if live else None),
        }
        return health | asdict(delivery) | (self.storage.health() if self.storage is not None else _NO_STORAGE)

    def _mark(self, now: float) -> _Mark:
        frames_in = self.source.stats.decoded if self.source is not None else 0
        return _Mark(now, _cpu_s(), frames_in, self._frames_out)

    def _trim(self, now: float) -> None:
        """Keep the frames of the window, and the newest mark at least WINDOW_S old as its start."""
        while self._frames and self._frames[0][0] < now - WINDOW_S:
            self._frames.popleft()
        while len(self._marks) > 1 and self._marks[1].at <= now - WINDOW_S:
            self._marks.popleft()


_NO_STORAGE = dict.fromkeys(HEALTH_FIELDS)


def _view_changed(reported: dict | None, view) -> bool:
    if reported is None:
        return True
    return (reported["state"], reported["awaiting_operator"], reported["back"]) != (
        view.status.value,
        view.awaiting_operator,
        view.back,
    )


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite the health file in place, padded with spaces to its old length (JSON allows
    them), never truncated: a full disk has no block for a new file, but this one's block is
    there, and a reader sees one whole JSON object (read_health reads again if not)."""
    with suppress(OSError), open(path, "r+b") as f:  # read-only, or no file yet: the beat goes stale
        f.write(data.ljust(os.fstat(f.fileno()).st_size))


def _rate(count: float, span: float, digits: int = 2) -> float:
    return round(count / span, digits) if span > 0 else 0.0


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_health(storage_dir: Path, camera_id: str) -> dict | None:
    """The camera's health file, None without one. Read twice before giving up on a file that
    does not parse: it may have been caught mid-way through an in-place rewrite (full disk)."""
    for attempt in range(2):
        try:
            return json.loads(health_path(storage_dir, camera_id).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            if attempt == 0:
                time.sleep(0.01)
    return None


def worker_down(health: dict | None, now: float, heartbeat_timeout_s: float) -> str | None:
    """Why the worker that wrote `health` is not running, or None while it is (starting,
    running, or stopping after `state: stopped` but still beating in time).

    "no report" (no health file); "stopped" (stopped cleanly, process gone); "failed" (could not
    start: config or model, `last_error` says why); "dead" (process gone otherwise: killed or
    crashed); "silent N s" (process there, no heartbeat for more than `heartbeat_timeout_s`:
    hung). `now` is time.time().
    """
    if health is None:
        return "no report"
    alive = _alive(health.get("pid", 0))
    if not alive:
        return health.get("state") if health.get("state") in ("stopped", "failed") else "dead"
    silent = now - health.get("heartbeat_at", 0)
    if silent > heartbeat_timeout_s:
        return f"silent {silent:.0f} s"
    return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def status_lines(config) -> list[str]:
    """`detector status`: one line per camera of the config, from the health files."""
    now = time.time()
    header = (
        f"{'camera':16} {'state':13} {'stream':12} {'decode':10} {'fps in/out':>11} {'age s':>6} {'infer ms':>8} "
        f"{'reconn':>6} {'dec err':>7} {'dropped':>7} {'cpu':>5}  last error"
    )
    lines = [header]
    for camera in config.cameras:
        h = read_health(config.storage_dir, camera.id)
        down = worker_down(h, now, config.supervisor.heartbeat_timeout_s)
        if h is None:
            lines.append(f"{camera.id:16} {down:13}")
            continue
        fps = f"{_num(h.get('fps_in'), '.1f')}/{_num(h.get('fps_out'), '.1f')}"
        lines.append(
            f"{camera.id:16} {down or h.get('state', '?'):13} {h.get('stream') or '-':12} "
            f"{_decode(h.get('decode')):10} {fps:>11} "
            f"{_num(h.get('frame_age_s'), '.1f'):>6} {_num(h.get('inference_ms'), '.0f'):>8} "
            f"{_num(h.get('stream_reconnects'), 'd'):>6} {_num(h.get('decode_errors'), 'd'):>7} "
            f"{_num(h.get('dropped_frames'), 'd'):>7} {_num(h.get('cpu_cores'), '.2f'):>5}  {_problems(h)}"
        )
    return lines


def _decode(decode: dict | None) -> str:
    """The decode column: `keys 1s` (keyframes only, a keyframe every second), `full 10s`, `full`
    (interval not measured yet); the reason is in the health file."""
    if not decode:
        return "-"
    mode = "keys" if decode["mode"] == "keyframes" else "full"
    return mode if decode["gop_s"] is None else f"{mode} {decode['gop_s']:.3g}s"


def _problems(health: dict) -> str:
    """The last-error column: the stream's last error, a paused view and why, and storage when it
    is not fine."""
    problems = [health.get("last_error") or ""]
    view = health.get("view") or {}
    if view.get("state") not in (None, "ok"):
        since = time.strftime("%H:%M:%S", time.localtime(view["since"]))
        problems.append(f"paused: {view['state']} since {since} ({view['reason']})")
        if view.get("awaiting_operator"):
            back = "the view is back; " if view.get("back") else ""
            problems.append(f"{back}waiting for an operator: detector view confirm")
    if health.get("storage") not in (None, "ok"):
        problems.append(f"storage {health['storage']}: {health.get('storage_path')}")
    return "; ".join(p for p in problems if p)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
