"""`detector run CONFIG`: one worker process per camera, supervised (docs/edge.md).

Workers are subprocesses `python -m detector worker CONFIG --camera ID --slots DIR`, not
multiprocessing children: the supervisor never imports the model, FFmpeg or paho (a fault in them
cannot take it down or hang it), nothing is forked from a process with threads, each worker shows
its camera in `ps`, and a worker is exactly what an operator can start by hand to debug one camera.

    crash (any exit while running)  -> restarted after restart_min_s doubling to restart_max_s (x0.5..1 jitter);
                                       the delay resets once a worker has run for 60 s
    hang (health.worker_down: no heartbeat for heartbeat_timeout_s; no report for startup_timeout_s)
                                    -> SIGKILL, then restarted like a crash
    SIGTERM / SIGINT                -> SIGTERM to every worker (each flushes its outbox and publishes
                                       `offline`), SIGKILL after stop_timeout_s; exit 0
    SIGHUP                          -> re-read the config; restart the workers whose camera (or any
                                       shared section) changed, start new cameras, stop removed ones.
                                       An invalid new config is logged and the running one kept.
"""

import fcntl
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from detector.backoff import Backoff
from detector.budget import create_slots, max_concurrent
from detector.config import AppConfig, CameraConfig, check_files, load_config
from detector.errors import ConfigError, DetectorError
from detector.health import read_health, worker_down

log = logging.getLogger(__name__)

POLL_S = 0.25
STABLE_S = 60.0


@dataclass
class _Worker:
    camera: CameraConfig
    proc: subprocess.Popen | None = None
    started: float = 0.0
    attempt: int = 0
    due: float = 0.0  # monotonic time of the next start while proc is None
    retiring: bool = False  # stopped for a reload: start again at once when it has exited
    restarts: int = 0


class Supervisor:
    def __init__(self, config_path: Path, *, log_format: str = "text", verbose: bool = False) -> None:
        self.config_path = Path(config_path)
        self.config = _load(self.config_path)
        self.log_args = ["--log-format", log_format] + (["-v"] if verbose else [])
        self.workers: dict[str, _Worker] = {}
        self._stop = False
        self._reload = False
        run_dir = Path(self.config.storage_dir) / "run"
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            self._lock = open(run_dir / "supervisor.lock", "w")
        except OSError as exc:
            raise ConfigError(f"storage_dir {self.config.storage_dir}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another `detector run` uses storage_dir {self.config.storage_dir}") from None
        self.slots_dir = run_dir / "inference-slots"
        self.slots = max_concurrent(self.config.inference.max_concurrent, self.config.model.threads)
        create_slots(self.slots_dir, self.slots)

    # --- main loop ---

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        log.info(
            "supervising %d cameras, at most %d inferences at once",
            len(self.config.cameras),
            self.slots,
            extra={"kv": {"event": "supervisor_started", "cameras": len(self.config.cameras), "max_concurrent": self.slots}},
        )
        try:
            for camera in self.config.cameras:
                self.workers[camera.id] = _Worker(camera)
            while not self._stop:
                if self._reload:
                    self._reload = False
                    self._apply_reload()
                for camera_id, worker in list(self.workers.items()):
                    self._tend(camera_id, worker)
                time.sleep(POLL_S)
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("stopped", extra={"kv": {"event": "supervisor_stopped"}})
        return 0

    def _on_signal(self, signum, frame) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stop = True

    def _tend(self, camera_id: str, w: _Worker) -> None:
        now = time.monotonic()
        if w.proc is None:
            if now >= w.due:
                self._start(camera_id, w)
            return
        code = w.proc.poll()
        if code is not None:
            w.proc = None
            if w.retiring:
                w.retiring, w.due = False, now
                if camera_id not in {c.id for c in self.config.cameras}:
                    del self.workers[camera_id]
                return
            if now - w.started >= STABLE_S:
                w.attempt = 0
            delay = Backoff(self.config.supervisor.restart_min_s, self.config.supervisor.restart_max_s).delay(w.attempt)
            w.attempt += 1
            w.due = now + delay
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            log.warning(
                "worker of camera %s ended (%s); restarting in %.1f s",
                camera_id,
                how,
                delay,
                extra={"kv": {"event": "worker_exited", "camera": camera_id, "code": code, "restart_in_s": round(delay, 1)}},
            )
            return
        if not w.retiring and self._hung(camera_id, w, now):
            w.proc.kill()  # reaped and restarted with backoff by the next _tend

    def _hung(self, camera_id: str, w: _Worker, now: float) -> bool:
        s = self.config.supervisor
        health = read_health(self.config.storage_dir, camera_id)
        if health is None or health.get("pid") != w.proc.pid:  # no report of this worker yet (loading)
            silent = now - w.started
            down = f"no report for {silent:.0f} s" if silent > s.startup_timeout_s else None
        else:
            down = worker_down(health, time.time(), s.heartbeat_timeout_s)
        if down is None:
            return False
        log.warning(
            "worker of camera %s (pid %d) down (%s): killing it",
            camera_id,
            w.proc.pid,
            down,
            extra={"kv": {"event": "worker_hung", "camera": camera_id, "pid": w.proc.pid, "reason": down}},
        )
        return True

    def _start(self, camera_id: str, w: _Worker) -> None:
        args = [
            sys.executable,
            "-m",
            "detector",
            *self.log_args,
            "worker",
            str(self.config_path),
            "--camera",
            camera_id,
            "--slots",
            str(self.slots_dir),
        ]
        w.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        w.started = time.monotonic()
        if w.restarts or w.attempt:
            log.info(
                "worker of camera %s restarted (pid %d)",
                camera_id,
                w.proc.pid,
                extra={"kv": {"event": "worker_restarted", "camera": camera_id, "pid": w.proc.pid}},
            )
        w.restarts += 1

    # --- reload and stop ---

    def _apply_reload(self) -> None:
        try:
            new = _load(self.config_path)
        except DetectorError as exc:
            log.error(
                "reload refused, keeping the running config: %s",
                exc,
                extra={"kv": {"event": "reload_failed", "reason": str(exc)}},
            )
            return
        shared_changed = _shared(new) != _shared(self.config)
        old_cameras = {c.id: c for c in self.config.cameras}
        self.config = new
        changed = []
        for camera in new.cameras:
            w = self.workers.get(camera.id)
            if w is None:
                self.workers[camera.id] = _Worker(camera)
                changed.append(camera.id)
            elif shared_changed or old_cameras.get(camera.id) != camera:
                w.camera = camera
                self._retire(w)
                changed.append(camera.id)
        for camera_id in set(old_cameras) - {c.id for c in new.cameras}:
            w = self.workers[camera_id]
            if w.proc is None:
                del self.workers[camera_id]
            else:
                self._retire(w)
            changed.append(camera_id)
        log.info(
            "config reloaded; restarting: %s",
            ", ".join(sorted(changed)) or "nothing",
            extra={"kv": {"event": "reloaded", "restarted": ",".join(sorted(changed))}},
        )

    def _retire(self, w: _Worker) -> None:
        if w.proc is None:
            w.due = time.monotonic()
            return
        w.retiring = True
        w.proc.terminate()

    def _stop_all(self) -> None:
        running = [w for w in self.workers.values() if w.proc is not None]
        for w in running:
            w.proc.terminate()
        deadline = time.monotonic() + self.config.supervisor.stop_timeout_s
        for w in running:
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "worker of camera %s did not stop in time: killed",
                    w.camera.id,
                    extra={"kv": {"event": "worker_killed", "camera": w.camera.id}},
                )
                w.proc.kill()
                w.proc.wait()


def _load(path: Path) -> AppConfig:
    config = load_config(path)
    check_files(config)
    return config


def _shared(config: AppConfig) -> dict:
    """Everything but the cameras: a change here restarts every worker."""
    return config.model_dump(exclude={"cameras"})


def worker_main(config_path: Path, camera_id: str, slots_dir: Path | None) -> int:
    """`detector worker`: one camera until SIGTERM/SIGINT (or the supervisor's death)."""
    import threading

    from detector.run import run_camera

    _die_with_parent()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # reloads are the supervisor's business
    config = load_config(config_path)
    try:
        config.camera(camera_id)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    run_camera(config, camera_id, stop, slots_dir)
    return 0


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the supervisor dies (no orphaned cameras)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
