"""What ingest and the pages write, each in one transaction: alerts into cases (idempotent on
the alert's (id, seq)), evidence checked against its sha256, health and status of the fleet,
refused messages, and the moves of a case with who and when."""

import hashlib
import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from detector.alerts.alert import Alert as Payload
from detector.alerts.alert import AlertEvent as Kind
from detector.centre.lifecycle import BEFORE_DISPATCH, OPEN_STATES, SYSTEM, State, check_move, joins
from detector.centre.models import Alert, AlertEvent, Camera, Case, PendingSnapshot, Rejection, Transition

log = logging.getLogger("detector.centre")
MAX_FRAME_AGE_S = 100 * 365 * 86400  # older is as dark; a datetime cannot go back 1e300 s
HEALTH_FIELDS = ("health", "health_at", "last_frame_at", "view_state", "view_since")


class AlertElsewhere(ValueError):
    """An alert id that another camera already used: refused, never added to that camera's case."""


def camera_locked(site: str, camera: str) -> Camera:
    """The camera's row, locked to the end of the transaction (PostgreSQL: FOR UPDATE; SQLite
    serialises writers anyway): the alerts of one camera are stored one at a time, also by
    several centre instances, so two alerts never open two cases for one object."""
    Camera.objects.get_or_create(site=site, camera=camera)
    return Camera.objects.select_for_update().get(site=site, camera=camera)


def record_alert(payload: Payload, received_at: datetime) -> bool:
    """Store one alert event; False when its (id, seq) is already stored (a duplicate or a
    `delayed` re-send), which changes nothing."""
    with transaction.atomic():
        camera = camera_locked(payload.site, payload.camera)
        alert = Alert.objects.filter(alert_id=payload.id).select_related("case__camera").first()
        if alert is not None and alert.case.camera_id != camera.pk:
            raise AlertElsewhere(f"alert id {payload.id} is already filed under camera {alert.case.camera.name}")
        if alert is not None and alert.events.filter(seq=payload.seq).exists():
            return False
        if alert is None:
            alert = Alert.objects.create(
                alert_id=payload.id,
                case=_case_for(camera, payload),
                type=payload.type,
                zone=payload.zone,
                first_seen_at=payload.first_seen_at,
            )
        AlertEvent.objects.create(
            alert=alert,
            seq=payload.seq,
            event=payload.event.value,
            at=payload.at,
            delayed=payload.delayed,
            payload=payload.to_json(),
            received_at=received_at,
            committed_at=timezone.now(),
        )
        _apply(alert, payload)
        return True


def _case_for(camera: Camera, payload: Payload) -> Case:
    """An open case of this camera, zone, type and object, or a new one."""
    box = _box(payload)
    open_cases = Case.objects.filter(
        camera=camera, zone=payload.zone, type=payload.type, kind=Case.VIOLATION, state__in=OPEN_STATES
    ).order_by("-opened_at")
    for case in open_cases:
        if joins(case.box, box, settings.CENTRE.cases.join_iou):
            return case
    return open_case(camera, Case.VIOLATION, payload.type, zone=payload.zone, box=box)


def open_case(camera: Camera, kind: str, type_: str, zone: str = "", box=None, summary: str = "") -> Case:
    now = timezone.now()
    case = Case.objects.create(
        kind=kind, type=type_, camera=camera, zone=zone, box=box, summary=summary, opened_at=now, updated_at=now
    )
    Transition.objects.create(case=case, from_state="", to_state=State.NEW.value, at=now)
    return case


def _box(payload: Payload) -> list[float] | None:
    return list(payload.objects[0].box) if payload.objects else None


def _apply(alert: Alert, payload: Payload) -> None:
    """What the event changes on the alert and its case."""
    case = Case.objects.select_for_update().get(pk=alert.case_id)
    if payload.seq > alert.last_seq:
        alert.last_seq = payload.seq
        alert.confidence = payload.confidence
        if payload.objects:
            alert.payload_objects = [o.to_json() for o in payload.objects]
            case.box = _box(payload)
    if payload.event is Kind.START:
        alert.started_at = payload.at
        if payload.snapshot is not None and alert.evidence in ("", "waiting"):
            alert.snapshot_sha256 = payload.snapshot.sha256
            alert.evidence = "waiting"
            pending = PendingSnapshot.objects.filter(alert_id=alert.alert_id).first()
            if pending is not None:
                _attach(alert, Path(pending.file), pending.sha256)
                pending.delete()
    elif payload.event is Kind.END:
        alert.ended_at = payload.at
        alert.end_reason = payload.reason or ""
    alert.save()
    case.updated_at = timezone.now()
    case.save(update_fields=["box", "updated_at"])
    if payload.event is Kind.END and case.state in BEFORE_DISPATCH and not case.alerts.filter(ended_at="").exists():
        move(case, State.SELF_RESOLVED, by=None, role=SYSTEM, note="every alert of the case ended before a dispatch")


# --- evidence ---------------------------------------------------------------------------------


def record_snapshot(site: str, camera: str, alert_id: str, jpeg: bytes, received_at: datetime) -> str:
    """Keep a snapshot JPEG: `ok` (matches its alert's sha256), `mismatch` (refused, counted),
    or `pending` (its alert's start has not arrived yet)."""
    sha256 = hashlib.sha256(jpeg).hexdigest()
    # written aside first (the fsync outside the camera's lock); it takes the evidence's name only
    # once it is known to match: a repeat with other bytes must not replace evidence that did
    partial = _write_evidence(site, camera, alert_id, jpeg)
    with transaction.atomic():
        camera_locked(site, camera)  # the alert's start may be stored by another instance right now
        alert = Alert.objects.filter(alert_id=alert_id).first()
        if alert is None or not alert.snapshot_sha256:
            path = partial.replace(_evidence_path(site, camera, alert_id))
            PendingSnapshot.objects.update_or_create(
                alert_id=alert_id, defaults={"file": str(path), "sha256": sha256, "received_at": received_at}
            )
            return "pending"
        result = _attach(alert, partial, sha256)
        alert.save()
        return result


def _attach(alert: Alert, path: Path, sha256: str) -> str:
    """Check a received JPEG (at `path`, aside or kept pending) against the alert's sha256."""
    if sha256 != alert.snapshot_sha256:
        path.unlink(missing_ok=True)
        if alert.evidence != "ok":  # a wrong repeat does not undo the evidence that matched
            alert.evidence = "mismatch"
        reject(
            f"snapshot/{alert.alert_id}", f"evidence sha256 {sha256[:12]}… is not the alert's {alert.snapshot_sha256[:12]}…", 0
        )
        return "mismatch"
    path = path.replace(path.with_name(f"{alert.alert_id}.jpg"))
    alert.evidence = "ok"
    alert.snapshot_file = str(path.relative_to(settings.CENTRE_STORAGE))
    return "ok"


def _evidence_path(site: str, camera: str, alert_id: str) -> Path:
    return Path(settings.CENTRE_STORAGE) / "evidence" / site / camera / f"{alert_id}.jpg"


def _write_evidence(site: str, camera: str, alert_id: str, jpeg: bytes) -> Path:
    """The JPEG written and synced beside its final name; the path of that partial file."""
    path = _evidence_path(site, camera, alert_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{alert_id}.{os.getpid()}.{threading.get_ident()}.part")  # instances may share the folder
    with open(partial, "wb") as out:
        out.write(jpeg)
        out.flush()
        os.fsync(out.fileno())
    return partial


# --- the fleet ----------------------------------------------------------------------------------


def record_status(site: str, camera: str, status: str, received_at: datetime) -> None:
    with transaction.atomic():
        Camera.objects.get_or_create(site=site, camera=camera)
        Camera.objects.filter(site=site, camera=camera).update(status=status, status_at=received_at)


def record_zone_state(site: str, camera: str, zone: str, states: dict) -> None:
    with transaction.atomic():
        row = camera_locked(site, camera)
        row.zones = {**row.zones, zone: states}
        row.save(update_fields=["zones"])


def record_health(batch: dict[tuple[str, str], tuple[dict, datetime]]) -> None:
    """The latest health message of each camera in `batch`, in one transaction (2,280 cameras
    every 10 s are 228 messages a second: one commit per message would be the bottleneck)."""
    if not batch:
        return
    with transaction.atomic():
        rows = _camera_rows(list(batch))
        changed = []
        for key, (health, received_at) in batch.items():
            row = rows.get(key)
            if row is None:
                continue
            row.health, row.health_at = health, received_at
            frame_age = health.get("frame_age_s")
            if isinstance(frame_age, (int, float)) and frame_age >= 0:
                row.last_frame_at = received_at - timedelta(seconds=min(frame_age, MAX_FRAME_AGE_S))
            view = health.get("view") if isinstance(health.get("view"), dict) else {}
            state = view.get("state") if isinstance(view.get("state"), str) else ""
            if state != row.view_state:
                row.view_state = state[:16]
                row.view_since = _moment(view.get("since")) or received_at
            changed.append(row)
        _save_health(sorted(changed, key=lambda row: row.pk))  # one lock order: two instances' batches cannot deadlock


def _camera_rows(keys: list[tuple[str, str]]) -> dict[tuple[str, str], Camera]:
    """The cameras' rows (without their health and zones JSON), made for those not seen yet: two
    queries whatever the number (a get_or_create each took most of a 228-camera write)."""

    def fetch() -> dict[tuple[str, str], Camera]:
        found = Camera.objects.filter(site__in={s for s, _ in keys}, camera__in={c for _, c in keys})
        return {(c.site, c.camera): c for c in found.only("id", "site", "camera", "last_frame_at", "view_state", "view_since")}

    rows = fetch()
    missing = [Camera(site=site, camera=camera) for site, camera in keys if (site, camera) not in rows]
    if missing:
        Camera.objects.bulk_create(missing, ignore_conflicts=True)  # another instance may make them now
        rows = fetch()
    return rows


def _save_health(rows: list[Camera]) -> None:
    """One UPDATE per row, sent as one batch (executemany). bulk_update (a CASE WHEN per row and
    field) with a get_or_create per camera took ~0.17 s of CPU for 228 cameras, every second,
    holding the GIL that ingest's network thread needs; this takes ~0.015 s
    (scripts/simulate_district.py). The fields adapt their own values (JSON, time zones)."""
    connection = connections[Camera.objects.db]
    fields = [Camera._meta.get_field(name) for name in HEALTH_FIELDS]
    quote = connection.ops.quote_name
    columns = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(Camera._meta.db_table)} SET {columns} WHERE {quote(Camera._meta.pk.column)} = %s"
    params = [[f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields] + [row.pk] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _moment(since) -> datetime | None:
    """A unix time from a health message, or None when it is none a datetime can hold."""
    if not isinstance(since, (int, float)) or not since > 0:
        return None
    try:
        return datetime.fromtimestamp(since, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def reject(topic: str, reason: str, size: int) -> None:
    """A refused message: logged and counted (the fleet page shows the counts), never raised."""
    log.warning("refused a message on %s (%d bytes): %s", topic[:200], size, reason)
    # the reason may quote the payload: no NUL or lone surrogate, which the database would refuse
    topic, reason = (text.encode("utf-8", "replace").decode().replace("\x00", "\\0") for text in (topic, reason))
    Rejection.objects.create(at=timezone.now(), topic=topic[:300], reason=reason[:300], size=size)


# --- moves --------------------------------------------------------------------------------------


def move(
    case: Case, target: State, *, by, role: str, note: str = "", photo: str = "", unit=None, officer=None, due_at=None
) -> Case:
    """Move a case (MoveRefused when the table forbids it) and record who and when. A dispatch
    goes to a unit, or to one officer of it."""
    with transaction.atomic():
        case = Case.objects.select_for_update().get(pk=case.pk)
        check_move(case.state, target.value, role)
        now = timezone.now()
        previous = case.state
        case.state = target.value
        case.updated_at = now
        if target is State.DISPATCHED:
            case.unit = unit
            case.officer = officer
            case.due_at = due_at or now + timedelta(seconds=settings.CENTRE.cases.dispatch_due_s)
            case.dispatched_at = case.dispatched_at or now
        elif target is State.ACCEPTED:
            case.officer = by
        elif target is State.HANDLED:
            case.handled_at = now
            case.officer = case.officer or by
        elif target is State.CLOSED:
            case.closed_at = now
        elif target is State.REOPENED:
            case.closed_at = None
        if target is State.REJECTED or previous == State.REJECTED.value:
            case.alerts.update(false_alarm=target is State.REJECTED)
        case.save()
        Transition.objects.create(
            case=case, from_state=previous, to_state=target.value, by=by, at=now, note=note, photo=photo, unit=unit
        )
        return case


def first_write_wins(write) -> bool:
    """Run a write that a unique constraint may refuse because another instance made it first
    (a maintenance case): True when this one made it."""
    try:
        with transaction.atomic():
            write()
        return True
    except IntegrityError:
        return False
