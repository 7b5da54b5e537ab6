"""Per-camera health of `detector run`: measured by the worker's frame loop, written every
heartbeat to `{storage_dir}/health/{camera}.json` (the supervisor's liveness signal and what
`detector status` prints) and merged into the camera's MQTT `.../health` message.
"""

import json
import os
import resource
import time
from pathlib import Path

from detector.capture.rtsp_source import LiveSource


def health_path(storage_dir: Path, camera_id: str) -> Path:
    return Path(storage_dir) / "health" / f"{camera_id}.json"


class HealthMeter:
    """Counts over the interval between two `report()` calls; `latest` is the last report."""

    def __init__(self, path: Path, camera_id: str, source: LiveSource) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.camera_id = camera_id
        self.source = source
        self.started_at = time.time()
        self.processed = 0
        self.open_alerts = 0
        self._inference_ms: list[float] = []
        self._wait_ms: list[float] = []
        self._mark = (time.monotonic(), _cpu_s(), 0, 0)  # (wall, cpu, decoded, processed)
        self.latest: dict = {}

    def frame(self, inference_ms: float, wait_ms: float = 0.0) -> None:
        self.processed += 1
        self._inference_ms.append(inference_ms)
        self._wait_ms.append(wait_ms)

    def report(self, state: str = "running") -> dict:
        now, cpu = time.monotonic(), _cpu_s()
        wall0, cpu0, decoded0, processed0 = self._mark
        span = max(now - wall0, 1e-6)
        src = self.source
        inference, waits, self._inference_ms, self._wait_ms = self._inference_ms, self._wait_ms, [], []
        self._mark = (now, cpu, src.decoded, self.processed)
        self.latest = {
            "camera": self.camera_id,
            "pid": os.getpid(),
            "state": state,
            "heartbeat_at": round(time.time(), 3),
            "started_at": round(self.started_at, 3),
            "stream": src.state,
            "size": f"{src.size[0]}x{src.size[1]}" if src.size else None,
            "fps_in": round((src.decoded - decoded0) / span, 2),
            "fps_out": round((self.processed - processed0) / span, 2),
            "frame_age_s": round(time.time() - src.last_frame_at, 2) if src.last_frame_at else None,
            "inference_ms": round(sum(inference) / len(inference), 1) if inference else None,
            "inference_wait_ms": round(sum(waits) / len(waits), 1) if waits else None,
            "cpu_cores": round((cpu - cpu0) / span, 3),
            "reconnects": src.reconnects,
            "decode_errors": src.decode_errors,
            "dropped_frames": src.dropped,
            "frames_in": src.decoded,
            "frames_out": self.processed,
            "open_alerts": self.open_alerts,
            "last_error": src.last_error,
        }
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.latest))
        os.replace(partial, self.path)
        return self.latest

    def for_mqtt(self) -> dict:
        """Fields added to the channel's health message (docs/mqtt.md, docs/edge.md)."""
        keys = (
            "stream",
            "size",
            "fps_in",
            "fps_out",
            "reconnects",
            "decode_errors",
            "dropped_frames",
            "inference_wait_ms",
            "cpu_cores",
            "open_alerts",
            "last_error",
        )
        return {k: self.latest.get(k) for k in keys}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_health(storage_dir: Path, camera_id: str) -> dict | None:
    try:
        return json.loads(health_path(storage_dir, camera_id).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status_lines(config) -> list[str]:
    """`detector status`: one line per camera of the config, from the health files."""
    now = time.time()
    header = (
        f"{'camera':16} {'state':13} {'stream':12} {'fps in/out':>11} {'age s':>6} {'infer ms':>8} "
        f"{'reconn':>6} {'dec err':>7} {'dropped':>7} {'cpu':>5}  last error"
    )
    lines = [header]
    for camera in config.cameras:
        h = read_health(config.storage_dir, camera.id)
        if h is None:
            lines.append(f"{camera.id:16} {'no report':13}")
            continue
        silent = now - h.get("heartbeat_at", 0)
        state = h.get("state", "?")
        if state == "running" and (silent > config.supervisor.heartbeat_timeout_s or not _alive(h.get("pid", 0))):
            state = f"down {silent:.0f}s"
        fps = f"{h.get('fps_in', 0):.1f}/{h.get('fps_out', 0):.1f}"
        age = "-" if h.get("frame_age_s") is None else f"{h['frame_age_s']:.1f}"
        infer = "-" if h.get("inference_ms") is None else f"{h['inference_ms']:.0f}"
        lines.append(
            f"{camera.id:16} {state:13} {h.get('stream', '?'):12} {fps:>11} {age:>6} {infer:>8} "
            f"{h.get('reconnects', 0):>6} {h.get('decode_errors', 0):>7} {h.get('dropped_frames', 0):>7} "
            f"{h.get('cpu_cores', 0):>5.2f}  {h.get('last_error') or ''}"
        )
    return lines
