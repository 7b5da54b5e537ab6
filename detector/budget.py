"""The inference budget of a box: at most N model inferences at once over all camera workers.

N workers x T threads on C cores run slower in total than C/T at a time (cache and scheduler
thrash: 4 processes x 1 thread on 2 cores gave about half the throughput of 2 x 1 here), so
`detector run` hands each worker a slot folder and every `detect()` holds one of N slots.

Slots are `flock`ed files, not a multiprocessing semaphore: the kernel releases a lock when its
holder dies, so a worker killed (SIGKILL, OOM) in the middle of an inference cannot leak a slot
and starve the others; and the workers are independent processes (`python -m detector worker`)
that only need the folder's path.
"""

import fcntl
import os
import time
from pathlib import Path

POLL_S = 0.002


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def max_concurrent(setting: int | str, model_threads: int) -> int:
    """`inference.max_concurrent`: an integer, or auto = usable cores // model.threads (>= 1)."""
    if setting == "auto":
        return max(1, usable_cores() // max(1, model_threads))
    return int(setting)


def create_slots(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("slot-*"):
        if int(stale.name.split("-")[1]) >= count:
            stale.unlink(missing_ok=True)
    for i in range(count):
        (folder / f"slot-{i}").touch()
    return folder


class InferenceSlots:
    """Context manager: blocks until one of the folder's slot files is locked by this process."""

    def __init__(self, folder: Path) -> None:
        paths = sorted(Path(folder).glob("slot-*"))
        if not paths:
            raise FileNotFoundError(f"no inference slots in {folder}")
        self._fds = [os.open(p, os.O_RDWR) for p in paths]
        self._held: int | None = None
        self._next = os.getpid() % len(self._fds)  # workers start probing at different slots
        self.waited_s = 0.0

    def __enter__(self) -> "InferenceSlots":
        started = None
        while True:
            for k in range(len(self._fds)):
                fd = self._fds[(self._next + k) % len(self._fds)]
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                self._held = fd
                if started is not None:
                    self.waited_s += time.perf_counter() - started
                return self
            started = started or time.perf_counter()
            time.sleep(POLL_S)

    def __exit__(self, *exc) -> None:
        if self._held is not None:
            fcntl.flock(self._held, fcntl.LOCK_UN)
            self._held = None

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


class GatedDetector:
    """A Detector whose `detect`, `detect_batch` and `detect_regions` hold one inference slot per
    call; everything else passes through."""

    def __init__(self, detector, slots: InferenceSlots) -> None:
        self._detector = detector
        self.slots = slots

    def detect(self, image):
        with self.slots:
            return self._detector.detect(image)

    def detect_batch(self, images):
        with self.slots:
            return self._detector.detect_batch(images)

    def detect_regions(self, image, regions):
        with self.slots:
            return self._detector.detect_regions(image, regions)

    def __getattr__(self, name: str):
        return getattr(self._detector, name)
