"""Stream clock (gaps cut out of stream time) and the detect-fps sampler, as tables."""

import pytest

from detector.backoff import Backoff
from detector.capture import Sampler, StreamClock


@pytest.mark.parametrize(
    "raw, expected",
    [
        ([10.0, 10.1, 10.2], [(0.0, 0.0), (0.1, 0.0), (0.2, 0.0)]),  # origin at the first frame
        ([0.0, 0.1, 5.1, 5.2], [(0.0, 0.0), (0.1, 0.0), (0.2, 5.0), (0.3, 0.0)]),  # 5 s gap cut out
        ([0.0, 1.5, 3.0], [(0.0, 0.0), (1.5, 0.0), (3.0, 0.0)]),  # slow but below max_gap_s
        ([0.0, 0.1, 0.05, 0.15], [(0.0, 0.0), (0.1, 0.0), (0.2, 0.0), (0.3, 0.0)]),  # backwards: a discontinuity
    ],
    ids=["regular", "gap", "slow", "backwards"],
)
def test_stream_clock(raw, expected):
    clock = StreamClock(nominal_interval_s=0.1, max_gap_s=2.0)
    got = [tuple(round(v, 6) for v in clock.advance(r)) for r in raw]
    assert got == expected


@pytest.mark.parametrize(
    "fps, times, kept",
    [
        (2, [i / 10 for i in range(21)], [0.0, 0.5, 1.0, 1.5, 2.0]),  # 10 fps -> 2 fps
        (2, [i / 3 for i in range(7)], [0.0, 2 / 3, 1.0, 5 / 3, 2.0]),  # 3 fps: first frame at or after each tick
        (5, [0.0, 1.0, 1.1, 1.2, 1.3], [0.0, 1.0, 1.2]),  # a late frame does not cause a burst
        (1, [0.0, 0.04, 0.08], [0.0]),
    ],
)
def test_sampler(fps, times, kept):
    sampler = Sampler(fps)
    assert [t for t in times if sampler.keep(t)] == pytest.approx(kept)


def test_sampler_restarts_after_a_gap():
    sampler = Sampler(1)
    assert [sampler.keep(0.0), sampler.keep(0.5), sampler.keep(0.6, gap_before_s=30.0), sampler.keep(1.0), sampler.keep(1.6)] == [
        True,
        False,
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    "attempt, low, high", [(0, 0.25, 0.5), (1, 0.5, 1.0), (3, 2.0, 4.0), (10, 15.0, 30.0), (1000, 15.0, 30.0)]
)
def test_backoff_doubles_with_jitter_up_to_the_cap(attempt, low, high):
    delays = [Backoff(0.5, 30.0).delay(attempt) for _ in range(200)]
    assert low <= min(delays) and max(delays) <= high and max(delays) - min(delays) > 0
