"""Alert ids: UUIDv7 (RFC 9562), unique across runs and machines and ordered by creation time.

The ids of one process never go backwards, even when the wall clock does (NTP stepping it, an
admin setting it back an hour): an id made while the clock is at or behind the last id's
millisecond keeps that millisecond and counts on, in a 42-bit counter at the top of the random
part (RFC 9562 section 6.2, method 1), as Python 3.14's `uuid.uuid7` does; written out here
because we support 3.11 and the clock must be injectable for tests. Across processes ids are
ordered by their clocks alone: a worker restarted while the clock is behind makes ids that sort
before its predecessor's, still unique (73 random bits within a millisecond).
"""

import os
import threading
import time
import uuid
from collections.abc import Callable

_VERSION_7_AND_VARIANT = (0x7 << 76) | (0x2 << 62)
_COUNTER_MAX = (1 << 42) - 1


class AlertIds:
    """Callable: each call returns a new id (str), greater than every earlier one of this instance."""

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._lock = threading.Lock()  # cameras' threads may share the process's generator
        self._last_ms = -1
        self._counter = 0

    def __call__(self) -> str:
        with self._lock:
            millis = self._clock_ns() // 1_000_000
            if millis > self._last_ms:
                counter, tail = _fresh_counter_and_tail()
            else:  # the same millisecond, or the clock went back: count on from the last id
                millis, counter = self._last_ms, self._counter + 1
                tail = int.from_bytes(os.urandom(4), "big")
                if counter > _COUNTER_MAX:
                    millis += 1
                    counter, tail = _fresh_counter_and_tail()
            self._last_ms, self._counter = millis, counter
        value = (millis & ((1 << 48) - 1)) << 80 | (counter >> 30) << 64 | (counter & ((1 << 30) - 1)) << 32 | tail
        return str(uuid.UUID(int=value | _VERSION_7_AND_VARIANT))


def _fresh_counter_and_tail() -> tuple[int, int]:
    """A random counter with its top bit clear (room to count before the millisecond must
    advance) and 32 random bits."""
    rand = int.from_bytes(os.urandom(10), "big")
    return (rand >> 32) & (_COUNTER_MAX >> 1), rand & 0xFFFF_FFFF


new_alert_id = AlertIds()  # the process's ids: one sequence for every camera it runs
