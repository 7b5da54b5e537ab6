"""What the centre keeps. Migrations (detector/centre/migrations/) are made with
`detector centre CONFIG --makemigrations` after a change here and committed; `detector centre`
applies them at start."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from detector.centre.lifecycle import OPEN_STATES, State

STATES = [(s.value, s.value) for s in State]


class Unit(models.Model):
    """An enforcement unit: cases are dispatched to it; its officers see only its cases."""

    name = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    """The role is the user's group (admin, dispatcher, officer, viewer); an officer has a unit."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="centre_profile")
    unit = models.ForeignKey(Unit, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")


class Camera(models.Model):
    site = models.CharField(max_length=64)
    camera = models.CharField(max_length=64)
    status = models.CharField(max_length=16, blank=True)  # online | offline (retained, last will)
    status_at = models.DateTimeField(null=True)
    health = models.JSONField(null=True)  # the last health message
    health_at = models.DateTimeField(null=True)  # when it arrived
    last_frame_at = models.DateTimeField(null=True)  # health's `at` minus its frame_age_s
    view_state = models.CharField(max_length=16, blank=True)  # ok | view_changed | view_blocked
    view_since = models.DateTimeField(null=True)
    zones = models.JSONField(default=dict)  # zone -> {type: {state, alert_id}} from the retained zone state
    flag = models.CharField(max_length=16, blank=True)  # '' | camera_dark | view_moved
    flag_since = models.DateTimeField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "camera"], name="camera_unique")]

    @property
    def name(self) -> str:
        return f"{self.site}/{self.camera}"


class Case(models.Model):
    VIOLATION, MAINTENANCE = "violation", "maintenance"

    kind = models.CharField(max_length=16, default=VIOLATION)
    type = models.CharField(max_length=32)  # a violation type, or camera_dark / view_moved
    camera = models.ForeignKey(Camera, on_delete=models.PROTECT, related_name="cases")
    zone = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=STATES, default=State.NEW.value)
    box = models.JSONField(null=True)  # the object's box of its latest alert (joining)
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    unit = models.ForeignKey(Unit, null=True, blank=True, on_delete=models.SET_NULL, related_name="cases")
    officer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    due_at = models.DateTimeField(null=True)
    dispatched_at = models.DateTimeField(null=True)  # first dispatch
    handled_at = models.DateTimeField(null=True)
    closed_at = models.DateTimeField(null=True)
    summary = models.CharField(max_length=200, blank=True)  # maintenance: why

    class Meta:
        indexes = [
            models.Index(fields=["state", "opened_at"]),
            models.Index(fields=["camera", "zone", "type"]),
            models.Index(fields=["unit", "state"]),
            models.Index(fields=["updated_at"]),
        ]
        constraints = [  # one open maintenance case per camera and cause, even with several instances
            models.UniqueConstraint(
                fields=["camera", "type"], condition=Q(kind="maintenance", state__in=OPEN_STATES), name="one_open_maintenance"
            )
        ]


class Alert(models.Model):
    alert_id = models.CharField(max_length=64, unique=True)  # the payload's id
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="alerts")
    type = models.CharField(max_length=32)
    zone = models.CharField(max_length=64)
    first_seen_at = models.CharField(max_length=40)
    started_at = models.CharField(max_length=40, blank=True)
    ended_at = models.CharField(max_length=40, blank=True)
    end_reason = models.CharField(max_length=40, blank=True)
    last_seq = models.IntegerField(default=-1)
    confidence = models.FloatField(default=0)
    payload_objects = models.JSONField(default=list)  # the latest event's `objects`
    snapshot_sha256 = models.CharField(max_length=64, blank=True)
    snapshot_file = models.CharField(max_length=200, blank=True)  # under storage_dir/evidence
    evidence = models.CharField(max_length=16, blank=True)  # '' (none announced) | waiting | ok | mismatch
    false_alarm = models.BooleanField(default=False)  # its case was REJECTED: a hard negative for training


class AlertEvent(models.Model):
    """One MQTT message of an alert, stored once: (alert id, seq) is unique, so a duplicate or a
    `delayed` re-send changes nothing."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    seq = models.IntegerField()
    event = models.CharField(max_length=8)
    at = models.CharField(max_length=40)
    delayed = models.BooleanField(default=False)
    payload = models.JSONField()
    received_at = models.DateTimeField()  # when ingest took the message
    committed_at = models.DateTimeField()  # set in the transaction that stores it

    class Meta:
        constraints = [models.UniqueConstraint(fields=["alert", "seq"], name="alert_event_once")]


class Transition(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=16, blank=True)  # '' when the case opened
    to_state = models.CharField(max_length=16)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)  # null: the system
    at = models.DateTimeField()
    note = models.TextField(blank=True)
    photo = models.CharField(max_length=200, blank=True)  # under storage_dir/photos
    unit = models.ForeignKey(Unit, null=True, on_delete=models.SET_NULL)  # a dispatch's unit


class PendingSnapshot(models.Model):
    """A snapshot that arrived before its alert (shared subscriptions do not keep order)."""

    alert_id = models.CharField(max_length=64, unique=True)
    file = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField()


class Rejection(models.Model):
    """A message ingest refused (not JSON, wrong schema, oversized, evidence not matching)."""

    at = models.DateTimeField(db_index=True)
    topic = models.CharField(max_length=300)
    reason = models.CharField(max_length=300)
    size = models.IntegerField()
