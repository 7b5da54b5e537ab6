"""The case life cycle as tables (pure; tests/test_centre_lifecycle.py): which state may follow
which, who may make each move, and when a new alert joins an open case.

    NEW -> CONFIRMED | REJECTED | SELF_RESOLVED
    CONFIRMED -> DISPATCHED | REJECTED | SELF_RESOLVED
    DISPATCHED -> ACCEPTED | HANDLED | DISPATCHED (sent to another unit)
    ACCEPTED -> HANDLED
    HANDLED -> CLOSED | REOPENED
    REJECTED, SELF_RESOLVED, CLOSED -> REOPENED
    REOPENED -> CONFIRMED | REJECTED | DISPATCHED

SELF_RESOLVED is the system's move: every alert of the case ended before anyone was dispatched.
"""

from enum import StrEnum


class State(StrEnum):
    NEW = "NEW"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    DISPATCHED = "DISPATCHED"
    ACCEPTED = "ACCEPTED"
    HANDLED = "HANDLED"
    CLOSED = "CLOSED"
    REOPENED = "REOPENED"
    SELF_RESOLVED = "SELF_RESOLVED"


SYSTEM = "system"

# (from, to) -> roles allowed to make the move
MOVES: dict[tuple[State, State], frozenset[str]] = {
    (State.NEW, State.CONFIRMED): frozenset({"admin", "dispatcher"}),
    (State.NEW, State.REJECTED): frozenset({"admin", "dispatcher"}),
    (State.NEW, State.SELF_RESOLVED): frozenset({SYSTEM}),
    (State.CONFIRMED, State.DISPATCHED): frozenset({"admin", "dispatcher"}),
    (State.CONFIRMED, State.REJECTED): frozenset({"admin", "dispatcher"}),
    (State.CONFIRMED, State.SELF_RESOLVED): frozenset({SYSTEM}),
    (State.DISPATCHED, State.DISPATCHED): frozenset({"admin", "dispatcher"}),
    (State.DISPATCHED, State.ACCEPTED): frozenset({"admin", "officer"}),
    (State.DISPATCHED, State.HANDLED): frozenset({"admin", "officer"}),
    (State.ACCEPTED, State.HANDLED): frozenset({"admin", "officer"}),
    (State.HANDLED, State.CLOSED): frozenset({"admin", "dispatcher"}),
    (State.HANDLED, State.REOPENED): frozenset({"admin", "dispatcher"}),
    (State.REJECTED, State.REOPENED): frozenset({"admin", "dispatcher"}),
    (State.SELF_RESOLVED, State.REOPENED): frozenset({"admin", "dispatcher"}),
    (State.CLOSED, State.REOPENED): frozenset({"admin", "dispatcher"}),
    (State.REOPENED, State.CONFIRMED): frozenset({"admin", "dispatcher"}),
    (State.REOPENED, State.REJECTED): frozenset({"admin", "dispatcher"}),
    (State.REOPENED, State.DISPATCHED): frozenset({"admin", "dispatcher"}),
}

# a case in one of these states takes new alerts of its camera, zone, type and object
OPEN = frozenset({State.NEW, State.CONFIRMED, State.DISPATCHED, State.ACCEPTED, State.REOPENED})
# for queries; sorted, since a frozenset's order changes per process and a migration's must not
OPEN_STATES = sorted(s.value for s in OPEN)
# nobody has been sent yet: the alert ending resolves the case by itself
BEFORE_DISPATCH = frozenset({State.NEW, State.CONFIRMED, State.REOPENED})
FINISHED = frozenset({State.CLOSED, State.REJECTED, State.SELF_RESOLVED})


class MoveRefused(ValueError):
    """A move the table does not have, or not for this role: the message says which."""


def check_move(current: str, target: str, role: str) -> None:
    allowed = MOVES.get((State(current), State(target)))
    if allowed is None:
        raise MoveRefused(f"a {current} case cannot become {target}")
    if role not in allowed:
        article = "an" if role[0] in "aeiou" else "a"
        raise MoveRefused(f"{article} {role} cannot make a {current} case {target}")


def moves_for(current: str, role: str) -> list[State]:
    """The states a `role` may move a `current` case to (the case page's buttons)."""
    return [to for (frm, to), roles in MOVES.items() if frm == current and role in roles]


def iou(a: list[float] | tuple, b: list[float] | tuple) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes (0 for empty ones)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def joins(case_box: list[float] | None, alert_box: list[float] | None, min_iou: float) -> bool:
    """Does an alert's object join an open case of the same camera, zone and type? The same
    object (boxes overlapping at least `min_iou`), or either side without a box (a zone-wide
    violation is one case)."""
    if case_box is None or alert_box is None:
        return True
    return iou(case_box, alert_box) >= min_iou
