"""Which cameras are in trouble: dark (no frame for `fleet.dark_after_s`) or with a moved or
blocked view for `fleet.moved_after_s`. A flagged camera gets one maintenance case per cause;
the case resolves itself when the camera is back before anyone was dispatched."""

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from detector.centre.lifecycle import BEFORE_DISPATCH, OPEN_STATES, SYSTEM, MoveRefused, State
from detector.centre.models import Camera, Case
from detector.centre.store import first_write_wins, move, open_case

DARK, VIEW_MOVED = "camera_dark", "view_moved"


def flag_of(
    last_frame_at: datetime | None,
    view_state: str,
    view_since: datetime | None,
    now: datetime,
    dark_after_s: float,
    moved_after_s: float,
) -> tuple[str, datetime | None]:
    """(flag, since): '' when the camera is fine or nothing is known of it yet."""
    if last_frame_at is not None and now - last_frame_at > timedelta(seconds=dark_after_s):
        return DARK, last_frame_at
    if view_state in ("view_changed", "view_blocked") and view_since is not None:
        if now - view_since > timedelta(seconds=moved_after_s):
            return VIEW_MOVED, view_since
    return "", None


def check_fleet(now: datetime | None = None) -> int:
    """Flag cameras and open or resolve their maintenance cases; returns the cameras flagged.
    Three queries whatever the fleet's size, plus one write per change."""
    now = now or timezone.now()
    fleet = settings.CENTRE.fleet
    open_cases = defaultdict(list)
    for case in Case.objects.filter(kind=Case.MAINTENANCE, state__in=OPEN_STATES):
        open_cases[case.camera_id].append(case)
    flagged = 0
    for camera in Camera.objects.all().only("id", "last_frame_at", "health_at", "view_state", "view_since", "flag"):
        flag, since = flag_of(
            camera.last_frame_at or camera.health_at,
            camera.view_state,
            camera.view_since,
            now,
            fleet.dark_after_s,
            fleet.moved_after_s,
        )
        flagged += bool(flag)
        if flag != camera.flag:
            Camera.objects.filter(pk=camera.pk).update(flag=flag, flag_since=since)
        cases = open_cases[camera.pk]
        if flag and not any(case.type == flag for case in cases):
            # another instance may open it at the same moment: the partial unique index keeps one
            first_write_wins(lambda camera=camera, flag=flag, since=since: _open_maintenance(camera, flag, since))
        for case in cases:
            if case.type != flag and case.state in BEFORE_DISPATCH:
                try:
                    move(case, State.SELF_RESOLVED, by=None, role=SYSTEM, note="the camera is back")
                except MoveRefused:
                    pass  # moved since the query above (another instance's check, a dispatcher): that move stands
    return flagged


def _open_maintenance(camera: Camera, flag: str, since: datetime) -> None:
    what = "no frame" if flag == DARK else "view moved or blocked"
    open_case(camera, Case.MAINTENANCE, flag, summary=f"{what} since {timezone.localtime(since):%Y-%m-%d %H:%M:%S %Z}")
