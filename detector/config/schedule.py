"""Zone schedules: `"Mon-Fri 07:00-20:00"`, `"Sat,Sun 09:00-13:00"`, `"daily 22:00-06:00"`.

A window whose end is not after its start runs past midnight (the night belongs to the day it
started on). `00:00-24:00` is the whole day.
"""

import re
from dataclasses import dataclass
from datetime import datetime

DAY_NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_FULL_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WINDOW = re.compile(r"^\s*(?P<days>[A-Za-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")


@dataclass(frozen=True)
class ScheduleWindow:
    days: frozenset[int]  # 0 = Monday
    start_min: int  # minutes after midnight
    end_min: int  # minutes after midnight, 1440 allowed; <= start means "next day"

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.start_min < self.end_min:
            return day in self.days and self.start_min <= minute < self.end_min
        # Overnight: the evening part on a listed day, the morning part on the day after one.
        return (day in self.days and minute >= self.start_min) or ((day - 1) % 7 in self.days and minute < self.end_min)


def _parse_day(name: str) -> int:
    key = name.strip().lower()[:3]
    if key not in DAY_NAMES or name.strip().lower() not in (key, _FULL_NAMES[DAY_NAMES.index(key)]):
        raise ValueError(f"unknown day {name.strip()!r} (use Mon..Sun)")
    return DAY_NAMES.index(key)


def _parse_days(text: str) -> frozenset[int]:
    if text.strip().lower() in ("daily", "every day", "all"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            first, last = (_parse_day(p) for p in part.split("-", 1))
            span = (last - first) % 7
            days.update((first + i) % 7 for i in range(span + 1))
        else:
            days.add(_parse_day(part))
    return frozenset(days)


def _parse_minutes(text: str) -> int:
    hours, minutes = (int(p) for p in text.split(":"))
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise ValueError(f"invalid time {text!r}")
    return hours * 60 + minutes


def parse_window(text: str) -> ScheduleWindow:
    """Parse one schedule entry; raises ValueError with a readable reason."""
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f"{text!r} is not like 'Mon-Fri 07:00-20:00'")
    return ScheduleWindow(
        days=_parse_days(match["days"]),
        start_min=_parse_minutes(match["start"]),
        end_min=_parse_minutes(match["end"]),
    )


def in_schedule(windows: tuple[ScheduleWindow, ...], local: datetime) -> bool:
    """True when no schedule is set (always on) or a window contains the local time."""
    return not windows or any(w.contains(local) for w in windows)
