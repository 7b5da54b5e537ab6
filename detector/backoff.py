"""Retry delays shared by everything that reconnects or restarts (streams, the broker, workers).

min_s, 2*min_s, 4*min_s, ... capped at max_s, each multiplied by a random 0.5..1.0: the jitter
keeps a thousand cameras from hammering a restarted broker or camera server in step.
"""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    min_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0 = the first retry)."""
        return min(self.max_s, self.min_s * 2 ** min(attempt, 30)) * random.uniform(0.5, 1.0)
