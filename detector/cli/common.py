"""Helpers shared by the command modules."""

import argparse
import math
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from detector.errors import ConfigError, redact_url
from detector.urls import is_stream_url


def camera_of(config, camera_id: str):
    """The config's camera, or ConfigError naming the ones there are."""
    try:
        return config.camera(camera_id)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None


def recorded_clip(text: str) -> Path:
    """`--source`: a video file. A stream URL is refused here, before Path() collapses its `//`
    and the URL, credentials and all, would be reported as a file name."""
    if is_stream_url(text):
        raise argparse.ArgumentTypeError(f"{redact_url(text)} is a live stream; give a recording of it (a video file)")
    return Path(text)


def wall_time(text: str) -> datetime:
    """`--start-at`: an ISO 8601 time, from 1970 to 2999 (a clip's times must stay representable)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-03-02T08:00:00+01:00") from None
    if not 1970 <= moment.year <= 2999:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time between 1970 and 2999")
    return moment


def seconds(text: str) -> float:
    """`--tolerance`: a finite number of seconds, 0 or more."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def positive_seconds(text: str) -> float:
    """`--every`, `--seconds`: a finite number of seconds above 0."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _finite(text: str) -> float:
    """The number, or -inf where it is none or not finite (refused by every caller)."""
    try:
        value = float(text)
    except ValueError:
        return -math.inf
    return value if math.isfinite(value) else -math.inf


def site_time(moment: datetime | None, config) -> datetime | None:
    """A time written without an offset is the site's (config `timezone`, as for schedules), not
    this machine's."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(config.timezone))


def whole(low: int, high: int, what: str):
    """An argparse type: a whole number of `what` from `low` to `high`."""

    def parse(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what} from {low} to {high}")
        return int(text)

    return parse
