"""The centre's pure logic as tables (issue 13): the case life cycle (which move, by whom), when
an alert joins an open case, when a camera is flagged, and the figures' arithmetic."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("django", reason="the centre's extra is not installed: pip install -e '.[centre]'")

from detector.centre.config import CentreConfig  # noqa: E402
from detector.centre.lifecycle import MoveRefused, State, check_move, iou, joins, moves_for  # noqa: E402
from detector.centre.settings import configure  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def django_settings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("centre")
    configure(CentreConfig(mqtt={"host": "127.0.0.1"}, storage_dir=folder, database={"path": folder / "c.sqlite3"}))


ALLOWED = [  # (from, to, role)
    ("NEW", "CONFIRMED", "dispatcher"),
    ("NEW", "REJECTED", "dispatcher"),
    ("NEW", "SELF_RESOLVED", "system"),
    ("CONFIRMED", "DISPATCHED", "dispatcher"),
    ("CONFIRMED", "SELF_RESOLVED", "system"),
    ("DISPATCHED", "DISPATCHED", "dispatcher"),  # sent to another unit
    ("DISPATCHED", "ACCEPTED", "officer"),
    ("DISPATCHED", "HANDLED", "officer"),
    ("ACCEPTED", "HANDLED", "officer"),
    ("HANDLED", "CLOSED", "dispatcher"),
    ("HANDLED", "REOPENED", "dispatcher"),
    ("CLOSED", "REOPENED", "admin"),
    ("REJECTED", "REOPENED", "dispatcher"),
    ("SELF_RESOLVED", "REOPENED", "dispatcher"),
    ("REOPENED", "DISPATCHED", "dispatcher"),
]
REFUSED = [  # (from, to, role, message)
    ("NEW", "DISPATCHED", "dispatcher", "a NEW case cannot become DISPATCHED"),
    ("NEW", "CONFIRMED", "officer", "an officer cannot make a NEW case CONFIRMED"),
    ("NEW", "CONFIRMED", "viewer", "a viewer cannot make a NEW case CONFIRMED"),
    ("NEW", "SELF_RESOLVED", "dispatcher", "a dispatcher cannot make a NEW case SELF_RESOLVED"),
    ("DISPATCHED", "SELF_RESOLVED", "system", "a DISPATCHED case cannot become SELF_RESOLVED"),  # someone is on his way
    ("DISPATCHED", "HANDLED", "dispatcher", "a dispatcher cannot make a DISPATCHED case HANDLED"),
    ("HANDLED", "CLOSED", "officer", "an officer cannot make a HANDLED case CLOSED"),
    ("CLOSED", "HANDLED", "admin", "a CLOSED case cannot become HANDLED"),
    ("REJECTED", "CLOSED", "dispatcher", "a REJECTED case cannot become CLOSED"),
]


@pytest.mark.parametrize("current, target, role", ALLOWED)
def test_allowed_moves(current, target, role):
    check_move(current, target, role)
    assert State(target) in moves_for(current, role)


@pytest.mark.parametrize("current, target, role, message", REFUSED)
def test_refused_moves_say_why(current, target, role, message):
    with pytest.raises(MoveRefused, match=message):
        check_move(current, target, role)
    assert State(target) not in moves_for(current, role)


@pytest.mark.parametrize(
    "role, current, expected",
    [
        ("dispatcher", "NEW", ["CONFIRMED", "REJECTED"]),
        ("officer", "NEW", []),
        ("officer", "DISPATCHED", ["ACCEPTED", "HANDLED"]),
        ("viewer", "HANDLED", []),
        ("dispatcher", "HANDLED", ["CLOSED", "REOPENED"]),
    ],
)
def test_the_buttons_a_role_gets(role, current, expected):
    assert [m.value for m in moves_for(current, role)] == expected


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),
        ([0, 0, 1, 1], [0.5, 0, 1.5, 1], 1 / 3),
        ([0, 0, 1, 1], [1, 1, 2, 2], 0.0),  # touching corners
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty boxes
    ],
)
def test_iou(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)


@pytest.mark.parametrize(
    "case_box, alert_box, min_iou, expected",
    [
        ([0.1, 0.1, 0.3, 0.3], [0.11, 0.1, 0.31, 0.3], 0.3, True),  # the same van, a little shifted
        ([0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.8, 0.8], 0.3, False),  # another object in the zone
        (None, [0.6, 0.6, 0.8, 0.8], 0.3, True),  # a zone-wide case takes every alert
        ([0.1, 0.1, 0.3, 0.3], None, 0.3, True),
    ],
)
def test_joining_an_open_case(case_box, alert_box, min_iou, expected):
    assert joins(case_box, alert_box, min_iou) is expected


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "last_frame, view, view_since, expected",
    [
        (ago(5), "ok", None, ""),
        (ago(899), "", None, ""),  # not yet the threshold
        (ago(901), "", None, "camera_dark"),
        (None, "", None, ""),  # nothing known yet: not flagged
        (ago(5), "view_changed", ago(901), "view_moved"),
        (ago(5), "view_blocked", ago(1000), "view_moved"),
        (ago(5), "view_changed", ago(60), ""),
        (ago(2000), "view_changed", ago(2000), "camera_dark"),  # dark first: no frame says more
    ],
)
def test_fleet_flags(last_frame, view, view_since, expected):
    from detector.centre.fleet import flag_of

    flag, since = flag_of(last_frame, view, view_since, NOW, dark_after_s=900, moved_after_s=900)
    assert flag == expected
    assert since == ({"camera_dark": last_frame, "view_moved": view_since}.get(flag))


def case(
    state: str,
    opened_min: float,
    dispatched_min: float | None = None,
    handled_min: float | None = None,
    due_min: float | None = None,
):
    at = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    minute = timedelta(minutes=1)
    return {
        "state": state,
        "opened_at": at + opened_min * minute,
        "dispatched_at": None if dispatched_min is None else at + dispatched_min * minute,
        "handled_at": None if handled_min is None else at + handled_min * minute,
        "due_at": None if due_min is None else at + due_min * minute,
    }


def test_figures_arithmetic():
    from detector.centre.figures import Row

    row = Row("all")
    for c in (
        case("CLOSED", 0, dispatched_min=2, handled_min=30, due_min=60),
        case("CLOSED", 0, dispatched_min=4, handled_min=90, due_min=60),  # late
        case("DISPATCHED", 0, dispatched_min=10, due_min=70),
        case("REJECTED", 0),
        case("SELF_RESOLVED", 0),
        case("NEW", 0),
    ):
        row.add(c)
    assert (row.opened, row.rejected, row.self_resolved, row.closed, row.handled) == (6, 1, 1, 2, 2)
    assert row.closure_rate == pytest.approx(2 / 4)  # closed ÷ (opened − rejected − self-resolved)
    assert row.false_alarm_rate == pytest.approx(1 / 6)
    assert row.on_time_rate == pytest.approx(1 / 2)
    assert row.dispatch_median_s == 240 and row.dispatch_p90_s == 600
    assert Row("none").closure_rate is None and Row("none").dispatch_median_s is None


def test_the_edge_never_imports_the_centre_stack():
    """Edge boxes stay lean: the worker, the supervisor and the command line load no Django,
    psycopg, waitress or matplotlib, even with the extra installed."""
    code = (
        "import sys, detector.cli, detector.run, detector.supervisor, detector.worker, detector.replay\n"
        "detector.cli.parser()\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'django', 'psycopg', 'waitress', 'matplotlib', 'detector.centre'})\n"
        "assert not heavy and 'detector.centre' not in sys.modules, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_migrations_match_the_models(tmp_path):
    """A model changed without its migration would be applied to nobody's database; run twice,
    since string hashing (and so a set's order) differs per process."""
    config = tmp_path / "centre.yaml"
    config.write_text(f"storage_dir: {tmp_path}\nmqtt: {{host: 127.0.0.1}}\ndatabase: {{path: {tmp_path / 'c.sqlite3'}}}\n")
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "detector", "centre-manage", str(config), "makemigrations", "centre", "--check", "--dry-run"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0 and "No changes detected" in done.stdout, done.stdout + done.stderr
