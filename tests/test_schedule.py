"""Zone schedules as tables of (entries, local time) -> enforced."""

from datetime import datetime

import pytest

from detector.config.schedule import in_schedule, parse_window

MONDAY = datetime(2026, 11, 23)  # a Monday


def at(day_offset: int, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return MONDAY.replace(day=MONDAY.day + day_offset, hour=hours, minute=minutes)


@pytest.mark.parametrize(
    "entries, moment, enforced",
    [
        ([], at(0, "03:00"), True),  # no schedule: always
        (["Mon-Fri 07:00-20:00"], at(0, "07:00"), True),
        (["Mon-Fri 07:00-20:00"], at(0, "20:00"), False),  # end is exclusive
        (["Mon-Fri 07:00-20:00"], at(0, "06:59"), False),
        (["Mon-Fri 07:00-20:00"], at(5, "12:00"), False),  # Saturday
        (["Sat,Sun 09:00-13:00"], at(6, "10:00"), True),
        (["Fri-Mon 09:00-10:00"], at(6, "09:30"), True),  # range wrapping the week end
        (["Fri-Mon 09:00-10:00"], at(2, "09:30"), False),
        (["daily 22:00-06:00"], at(0, "23:00"), True),  # overnight
        (["daily 22:00-06:00"], at(1, "05:59"), True),
        (["daily 22:00-06:00"], at(1, "06:00"), False),
        (["Fri 22:00-06:00"], at(5, "02:00"), True),  # Friday night runs into Saturday
        (["Fri 22:00-06:00"], at(4, "02:00"), False),  # but not Thursday night
        (["Mon 00:00-24:00"], at(0, "23:59"), True),
        (["Mon-Fri 07:00-09:00", "Mon-Fri 17:00-19:00"], at(0, "18:00"), True),
        (["Mon-Fri 07:00-09:00", "Mon-Fri 17:00-19:00"], at(0, "12:00"), False),
    ],
)
def test_in_schedule(entries, moment, enforced):
    assert in_schedule(tuple(parse_window(e) for e in entries), moment) is enforced


@pytest.mark.parametrize(
    "entry, message",
    [
        ("Mon-Fri", "is not like"),
        ("Mon-Fry 07:00-20:00", "unknown day 'Fry'"),
        ("Mon 25:00-26:00", "invalid time '25:00'"),
        ("Mon 07:60-08:00", "invalid time '07:60'"),
    ],
)
def test_bad_entries(entry, message):
    with pytest.raises(ValueError, match=message):
        parse_window(entry)
