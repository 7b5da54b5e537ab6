"""The violation state machine, as tables of timed inputs -> expected events."""

import pytest

from detector.config.schema import ViolationSettings
from detector.rules.debounce import Candidate, Debouncer, State

SETTINGS = ViolationSettings(dwell_s=10, grace_s=3, clear_s=5, cooldown_s=20, update_s=0)
HERE = (0.10, 0.10, 0.20, 0.20)
THERE = (0.60, 0.60, 0.70, 0.70)


def car(track_id: int = 1, settled: float = 0.0, box=HERE, *, replaces: int = 0, hidden: bool = False) -> Candidate:
    return Candidate(track_id=track_id, settled_since=settled, box=box, label="car", score=0.8, replaces=replaces, hidden=hidden)


def seconds(start: float, stop: float, step: float = 1.0) -> list[float]:
    count = int(round((stop - start) / step)) + 1
    return [round(start + i * step, 3) for i in range(count)]


def run(steps, settings=SETTINGS):
    debouncer = Debouncer(settings)
    events = []
    for ts, candidates, *enforced in steps:
        for t in debouncer.update(ts, candidates, enforced[0] if enforced else True):
            events.append((t.event, t.ts, t.first_seen_s, t.reason))
    return events, debouncer


def present(times, *candidates):
    return [(t, list(candidates)) for t in times]


def absent(times):
    return [(t, []) for t in times]


CASES = {
    "settles and stays: start after dwell, timed from the settle": (
        present(seconds(2, 20), car(settled=2)),
        [("start", 12, 2, "")],
    ),
    "brief stop shorter than dwell: nothing": (
        present(seconds(0, 8), car()) + absent(seconds(9, 30)),
        [],
    ),
    "occlusion shorter than grace keeps the dwell timer": (
        present(seconds(0, 5), car()) + absent([6, 7, 8]) + present(seconds(9, 12), car()),
        [("start", 10, 0, "")],
    ),
    "absence longer than grace while pending resets": (
        present(seconds(0, 5), car()) + absent(seconds(6, 9)) + present(seconds(10, 25), car(settled=10)),
        [("start", 20, 10, "")],
    ),
    "active: absence shorter than clear does not end": (
        present(seconds(0, 10), car()) + absent(seconds(11, 14)) + present(seconds(15, 16), car()),
        [("start", 10, 0, "")],
    ),
    "active: absence of clear_s ends, once": (
        present(seconds(0, 10), car()) + absent(seconds(11, 30)),
        [("start", 10, 0, ""), ("end", 15, 0, "cleared")],
    ),
    "cooldown: the same object at the same place stays quiet": (
        present(seconds(0, 10), car()) + absent(seconds(11, 16)) + present(seconds(17, 34), car(settled=17)),
        [("start", 10, 0, ""), ("end", 15, 0, "cleared")],
    ),
    "cooldown expires with the object still there: it alerts again at once": (
        present(seconds(0, 10), car()) + absent(seconds(11, 16)) + present(seconds(17, 50), car(settled=17)),
        [("start", 10, 0, ""), ("end", 15, 0, "cleared"), ("start", 35, 17, "")],
    ),
    "cooldown is per place: another object elsewhere alerts": (
        present(seconds(0, 10), car()) + absent(seconds(11, 16)) + present(seconds(17, 30), car(2, 17, THERE)),
        [("start", 10, 0, ""), ("end", 15, 0, "cleared"), ("start", 27, 17, "")],
    ),
    "a new track id on the same spot inherits the dwell (tracker lost it)": (
        present(seconds(0, 4), car(1)) + present(seconds(5, 12), car(7, settled=5)),
        [("start", 10, 0, "")],
    ),
    "two objects: the first to complete its dwell starts the alert": (
        present(seconds(0, 3), car(1, 0)) + present(seconds(4, 14), car(1, 0), car(2, 4, THERE)),
        [("start", 10, 0, "")],
    ),
    "outside the schedule nothing is raised": (
        [(t, [car()], False) for t in seconds(0, 30)],
        [],
    ),
    "leaving the schedule ends an open alert": (
        present(seconds(0, 12), car()) + [(13, [car()], False), (14, [car()], False)],
        [("start", 10, 0, ""), ("end", 13, 0, "schedule")],
    ),
    "a candidate must be present at the moment of the start": (
        present([0], car()) + absent([1, 2, 3]),
        [],
    ),
    # identity (the tracker's `replaces`: another object on the place of one that left)
    "another car on the spot within clear_s: the alert ends, the newcomer gets its own dwell": (
        present(seconds(0, 12), car(1)) + present(seconds(13, 40), car(2, 13, replaces=1)),
        [("start", 10, 0, ""), ("end", 17, 0, "cleared"), ("start", 23, 13, "")],
    ),
    "another car on the spot after the end: not silenced by the first car's cooldown": (
        present(seconds(0, 12), car(1)) + absent(seconds(13, 18)) + present(seconds(19, 40), car(2, 19, replaces=1)),
        [("start", 10, 0, ""), ("end", 17, 0, "cleared"), ("start", 29, 19, "")],
    ),
    "a newcomer does not inherit the dwell of the one that left": (
        present(seconds(0, 4), car(1)) + present(seconds(5, 20), car(7, 5, replaces=1)),
        [("start", 15, 5, "")],
    ),
    "the newcomer's own alert continues with it": (
        present(seconds(0, 30), car(2, 0, replaces=1)),
        [("start", 10, 0, "")],
    ),
    # occlusion (the tracker's `hidden`: a stationary object behind a bus)
    "hidden longer than clear_s: the alert neither ends nor restarts": (
        present(seconds(0, 12), car()) + present(seconds(13, 30), car(hidden=True)) + present(seconds(31, 35), car()),
        [("start", 10, 0, "")],
    ),
    "hidden longer than grace_s keeps the dwell, but only a visible object starts the alert": (
        present(seconds(0, 4), car()) + present(seconds(5, 14), car(hidden=True)) + present(seconds(15, 16), car()),
        [("start", 15, 0, "")],
    ),
    "hidden alone never opens a dwell record": (
        present(seconds(0, 20), car(hidden=True)),
        [],
    ),
}


@pytest.mark.parametrize("steps, expected", CASES.values(), ids=CASES.keys())
def test_state_machine(steps, expected):
    events, _ = run(steps)
    assert events == expected


def test_updates_while_active_every_update_s():
    settings = SETTINGS.model_copy(update={"update_s": 4})
    events, _ = run(present(seconds(0, 20), car()), settings)
    assert [(e, t) for e, t, *_ in events] == [("start", 10), ("update", 14), ("update", 18)]


@pytest.mark.parametrize(
    "steps, state",
    [
        (present([0], car()), State.PENDING),
        (present(seconds(0, 10), car()), State.ACTIVE),
        (present([0], car()) + absent([1, 2, 3, 4]), State.IDLE),
        (present(seconds(0, 10), car()) + absent(seconds(11, 15)), State.IDLE),
    ],
    ids=["pending", "active", "pending dropped after grace", "idle after end"],
)
def test_states(steps, state):
    _, debouncer = run(steps)
    assert debouncer.state is state
