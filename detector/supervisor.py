"""`detector run CONFIG`: one worker process per camera, supervised (docs/edge.md).

Workers are subprocesses `python -m detector worker STORAGE/run/config.yaml --camera ID ...`, not
multiprocessing children: the supervisor never imports the model, FFmpeg or paho (a fault in them
cannot take it down or hang it), nothing is forked from a process with threads, each worker shows
its camera in `ps`, and a worker is exactly what an operator can start by hand to debug one camera.

    crash (any exit while running)  -> restarted after restart_min_s doubling to restart_max_s (x0.5..1 jitter);
                                       the delay resets once a worker has run for 60 s
    exit 2 or 4 (config or model)   -> no restart (it would fail the same way, for every camera):
                                       one error line, every worker stopped, exit with that code
    hang (no byte down its heartbeat pipe for heartbeat_timeout_s; none since start for
          startup_timeout_s; timed on the monotonic clock, independent of the disk)
                                    -> SIGKILL, then restarted like a crash
    SIGTERM / SIGINT                -> SIGTERM to every worker (each flushes its outbox and publishes
                                       `offline`), SIGKILL after stop_timeout_s; exit 0
    SIGHUP                          -> re-read the config; restart the workers whose camera (or any
                                       shared section) changed, start new cameras, stop removed ones.
                                       An invalid new config (or a model that does not load) is
                                       logged and the running one kept. Workers read the text the
                                       supervisor accepted (STORAGE/run/config.yaml), never the file.
"""

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from detector.backoff import Backoff
from detector.budget import create_slots, max_concurrent
from detector.config import AppConfig, CameraConfig, check_files, load_config
from detector.config.load import read_text
from detector.errors import ConfigError, DetectorError, ModelError, redact_url
from detector.health import HealthMeter, health_path, read_health

log = logging.getLogger(__name__)

POLL_S = 0.25
STABLE_S = 60.0
# A worker that exits with these cannot start: its config or the model is wrong, and both are
# shared by every camera, so a restart only hides the failure from systemd.
FATAL_ERRORS = {error.exit_code: error for error in (ConfigError, ModelError)}


@dataclass
class _Worker:
    camera: CameraConfig
    proc: subprocess.Popen | None = None
    started: float = 0.0
    attempt: int = 0
    due: float = 0.0  # monotonic time of the next start while proc is None
    retiring: bool = False  # stopped for a reload: start again at once when it has exited
    restarts: int = 0
    beats: int | None = None  # read end of its heartbeat pipe
    beat_seen: float | None = None  # monotonic time of its last heartbeat; None: none yet (loading)


class Supervisor:
    def __init__(self, config_path: Path, *, log_format: str = "text", verbose: bool = False) -> None:
        self.config_path = Path(config_path)
        self.config, text = _load(self.config_path)
        self._model_stamp = _model_stamp(self.config)
        self.log_args = ["--log-format", log_format] + (["-v"] if verbose else [])
        self.workers: dict[str, _Worker] = {}
        self._stop = False
        self._reload = False
        self._failure: DetectorError | None = None  # why a worker cannot start: raised once all stopped
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
        # Workers (restarts included) read the config the supervisor accepted, never the file as
        # it is now: an edit that was not reloaded, or was refused, cannot reach them.
        self.accepted = run_dir / "config.yaml"
        _keep(self.accepted, text)
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
        if self._failure is not None:
            raise self._failure
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
            pid, w.proc = w.proc.pid, None
            _close(w.beats)
            w.beats = None
            if code in FATAL_ERRORS:
                self._give_up(camera_id, pid, code)
                return
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

    def _give_up(self, camera_id: str, pid: int, code: int) -> None:
        """One line with the worker's reason (from its health file), then stop everything."""
        if self._failure is not None:  # stopping already: one line is enough
            return
        health = read_health(self.config.storage_dir, camera_id)
        if health is not None and health.get("pid") == pid and health.get("state") == "failed":
            reason = redact_url(str(health.get("last_error")))
        else:
            reason = f"exit status {code} (its `detector: error:` line above says why)"
        log.error(
            "worker of camera %s cannot start, stopping every camera (a restart cannot fix this): %s",
            camera_id,
            reason,
            extra={"kv": {"event": "worker_failed", "camera": camera_id, "code": code, "reason": reason}},
        )
        self._failure = FATAL_ERRORS[code](f"camera {camera_id} cannot start: {reason}")
        self._stop = True

    def _hung(self, camera_id: str, w: _Worker, now: float) -> bool:
        """A worker beats down its pipe every second (detector/run.py): silence is timed here on the
        monotonic clock, so neither a full or read-only disk (no health file) nor a wall-clock step
        looks like a hang."""
        s = self.config.supervisor
        if _drain(w.beats):
            w.beat_seen = now
        if w.beat_seen is None:
            silent, limit, what = now - w.started, s.startup_timeout_s, "no heartbeat since it started"
        else:
            silent, limit, what = now - w.beat_seen, s.heartbeat_timeout_s, "no heartbeat"
        if silent <= limit:
            return False
        down = f"{what} for {silent:.0f} s"
        log.warning(
            "worker of camera %s (pid %d) hung (%s): killing it",
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
            str(self.accepted),
            "--camera",
            camera_id,
            "--slots",
            str(self.slots_dir),
            "--parent",
            str(os.getpid()),
        ]
        beats, beat_end = os.pipe()
        os.set_blocking(beats, False)
        try:
            w.proc = subprocess.Popen([*args, "--beat-fd", str(beat_end)], stdin=subprocess.DEVNULL, pass_fds=(beat_end,))
        finally:
            os.close(beat_end)  # the worker holds the write end
        _close(w.beats)
        w.beats, w.beat_seen = beats, None
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
            new, text = _load(self.config_path)
            if _model_stamp(new) != self._model_stamp:
                self._probe(new, text)
        except DetectorError as exc:
            log.error(
                "reload refused, keeping the running config: %s",
                exc,
                extra={"kv": {"event": "reload_failed", "reason": str(exc)}},
            )
            return
        _keep(self.accepted, text)
        shared_changed = _shared(new) != _shared(self.config) or _model_stamp(new) != self._model_stamp
        old_cameras = {c.id: c for c in self.config.cameras}
        self.config, self._model_stamp = new, _model_stamp(new)
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

    def _probe(self, new: AppConfig, text: str) -> None:
        """A new or replaced model must load before the reload is taken: opened by a short-lived
        worker process (the supervisor itself never imports the model's runtime)."""
        candidate = self.accepted.with_name("config.candidate.yaml")
        _keep(candidate, text)
        args = [sys.executable, "-m", "detector", "worker", str(candidate), "--camera", new.cameras[0].id, "--probe"]
        try:
            probe = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   timeout=new.supervisor.startup_timeout_s)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ModelError(f"model {new.model.path} did not load in {new.supervisor.startup_timeout_s:g} s") from None
        finally:
            candidate.unlink(missing_ok=True)
        if probe.returncode != 0:
            reason = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
            raise ModelError(f"model {new.model.path} does not load: {reason.removeprefix('detector: error: ')}")

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


def _beat_writer(fd: int | None):
    """The worker's side of the heartbeat pipe: one byte a beat; a full pipe (a supervisor busy
    for minutes) or a gone one is not the worker's problem."""
    if fd is None:
        return None
    os.set_blocking(fd, False)

    def beat() -> None:
        try:
            os.write(fd, b".")
        except (BlockingIOError, BrokenPipeError):
            pass

    return beat


def _load(path: Path) -> tuple[AppConfig, str]:
    """The config as the file is now, validated, and the exact text that was validated."""
    text = read_text(path)
    config = load_config(path, text)
    check_files(config)
    return config, text


def _drain(fd: int | None) -> bool:
    """Whether beats came down the pipe since the last look."""
    if fd is None:
        return False
    try:
        return bool(os.read(fd, 4096))  # b"": the worker closed it (exiting)
    except BlockingIOError:
        return False


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _keep(path: Path, text: str) -> None:
    """Atomically, readable by the owner only (a config may hold secrets written in clear)."""
    partial = path.with_name(path.name + ".tmp")
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(partial, path)


def _model_stamp(config: AppConfig) -> tuple:
    """The model settings and its file's size and change time: a new one is probed on reload."""
    try:
        stat = config.model.path.stat()
    except OSError:
        return (config.model, None)
    return (config.model, stat.st_size, stat.st_mtime_ns)


def _shared(config: AppConfig) -> dict:
    """Everything but the cameras: a change here restarts every worker."""
    return config.model_dump(exclude={"cameras"})


def probe_model(config_path: Path) -> int:
    """`detector worker CONFIG --camera ID --probe`: open the config's model and exit (0 when it loads)."""
    from detector.worker import open_configured_model

    open_configured_model(load_config(config_path))
    return 0


def worker_main(config_path: Path, camera_id: str, slots_dir: Path | None, beat_fd: int | None = None) -> int:
    """`detector worker`: one camera until SIGTERM/SIGINT (or the supervisor's death)."""
    import threading

    from detector.run import run_camera

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # reloads are the supervisor's business
    config = load_config(config_path)  # unreadable: only stderr can say why
    try:
        try:
            config.camera(camera_id)
        except KeyError as exc:  # the message names the cameras there are
            raise ConfigError(exc.args[0]) from None
        run_camera(config, camera_id, stop, slots_dir, beat=_beat_writer(beat_fd))
    except DetectorError as exc:
        if exc.exit_code in FATAL_ERRORS:  # for `detector status` and the supervisor's line
            try:
                HealthMeter(camera_id, path=health_path(config.storage_dir, camera_id)).failed(redact_url(str(exc)))
            except OSError:
                pass  # no health file (storage broken too): the error line below still says why
        raise
    return 0
