"""Typed, strict, read-only configuration; docs/config.md (generated from it) lists every key.

No I/O here: files are checked by `detector.config.load.check_files`, after validation.
"""

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, create_model, field_validator, model_validator

from detector.config.schedule import ScheduleWindow, parse_window
from detector.mqtt.topics import prefix_problem
from detector.rules.violations import ROLES, RULE_TYPES
from detector.urls import is_stream_url
from detector.zones.geometry import Anchor, polygon_defect

log = logging.getLogger(__name__)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The violation types, their default timings and the roles' classes come from the rule registry
# (detector/rules/violations.py): a new type appears here without an edit to this file.
ViolationType = StrEnum("ViolationType", {rule.type.upper(): rule.type for rule in RULE_TYPES})
ViolationType.__doc__ = "A violation type of the rule registry (detector/rules/violations.py)."


Seconds = Annotated[float, Field(ge=0)]
Score = Annotated[float, Field(ge=0, le=1)]
ID_MAX_LENGTH = 64
# Site, camera and zone ids are topic levels too (docs/mqtt.md): no /, +, #, $ or spaces.
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=ID_MAX_LENGTH)]


class ModelConfig(Strict):
    path: Path = Field(description="ONNX file (Ultralytics or YOLOX layout) or Ultralytics .pt")
    names: Path | None = Field(None, description="Class names file (one per line) when the model has none")
    threads: int = Field(
        1, ge=1, le=64, description="Threads of one inference: ONNX Runtime's intra-op threads, and OpenCV's in that process"
    )
    providers: tuple[str, ...] = Field(
        ("CPUExecutionProvider",), description="ONNX Runtime execution providers, in order of preference"
    )
    imgsz: int = Field(
        640,
        ge=32,
        le=4096,
        multiple_of=32,
        description="Long side of a dynamic-shape ONNX model's input, a multiple of 32 (fixed-size models keep theirs)",
    )
    fit_frame: bool = Field(
        True,
        description="A dynamic-shape ONNX model's input follows the frame's aspect ratio (1280x720 -> 640x384); false: a square imgsz",
    )


class DetectConfig(Strict):
    fps: float = Field(2.0, gt=0, le=60, description="Frames per second of stream time sent to the model")
    min_score: Score = Field(0.35, description="Default score a detection needs to count (per type/zone overridable)")
    nms_iou: Score = Field(0.5, description="IoU above which NMS suppresses the weaker box of one class")


class TrackConfig(Strict):
    settle_s: Seconds = Field(3.0, description="How long an object must stay put before it counts as stationary")
    tolerance: float = Field(
        0.25, gt=0, le=2, description="Allowed drift of the box centre from where it settled, as a fraction of the box size"
    )
    match_iou: Score = Field(0.3, description="IoU a detection needs with a track's box to continue it")


RoleClasses = create_model(
    "RoleClasses",
    __base__=Strict,
    __doc__="Model class names per role. COCO names by default; map a custom model's classes here.",
    **{role.name: (tuple[str, ...], Field(role.coco, description=f"{role.description} (model class names)")) for role in ROLES},
)


class StaticObjectsConfig(Strict):
    """Class-agnostic static new object detector (long-term vs short-term background)."""

    enabled: bool = Field(True, description="Run it for cameras with a stray_garbage zone")
    short_s: Seconds = Field(4.0, description="Time constant of the short-term background")
    long_s: Seconds = Field(600.0, description="Time constant of the long-term background")
    threshold: int = Field(28, ge=1, le=255, description="Grey-level difference that counts as a change")
    min_area: float = Field(0.0004, gt=0, le=1, description="Smallest blob, as a fraction of the frame")
    max_area: float = Field(0.03, gt=0, le=1, description="Largest blob, as a fraction of the frame")


class RegionsConfig(Strict):
    """Where the model looks (detector/detect/regions.py): crops over the zones instead of the
    whole frame, where they cost less; for dynamic-shape models (a fixed input sees the whole frame)."""

    enabled: bool = Field(True, description="Run the model on crops over the zones when they cost less than the whole frame")
    margin: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Added around each zone's box, as a fraction of the frame height (objects reach out of zones)",
    )
    scale: Literal["frame", "native"] = Field(
        "frame",
        description="frame: crops at the whole frame's scale (the same detections, less compute); native: at up to 1:1 "
        "pixels (model.imgsz long side), so small distant objects gain pixels, where that still costs less than the frame",
    )


class MotionConfig(Strict):
    """Motion gating (detector/detect/motion.py, focus.py): the model looks at a region when motion
    touched it, and every `recheck_s` without; the objects it did not look at are carried, not
    lost, meanwhile."""

    enabled: bool = Field(True, description="Skip the model on regions where nothing moved since they were last looked at")
    recheck_s: float = Field(
        5.0,
        gt=0,
        description="A region without motion is looked at again after this long (at most half its zones' shortest grace_s, "
        "so a departure the motion detector missed is still seen within grace)",
    )
    threshold: int = Field(20, ge=1, le=255, description="Grey-level change (after contrast stretching) that counts as motion")
    min_area: float = Field(
        0.0003, gt=0, le=1, description="Smallest changed blob that counts as motion, as a fraction of the frame"
    )


class ViewConfig(Strict):
    """Moved or blocked view (detector/view.py): while the camera does not see its zones' scene,
    the model does not run and the violation timers pause, like a stream gap."""

    enabled: bool = Field(True, description="Watch every camera's view against the reference learnt at start")
    hold_s: Seconds = Field(
        5.0, description="A moved, blocked or restored view must last this long before the state switches (a passing truck less)"
    )
    max_shift: float = Field(
        0.04, gt=0, le=0.5, description="A shift of the view beyond this fraction of the width = view_changed (sway is far below)"
    )
    min_match: Score = Field(
        0.3, description="Best correlation of the frame's edges with the reference's below this = another view (view_changed)"
    )
    min_contrast: float = Field(6.0, ge=0, le=128, description="Grey-level std below this = covered or dark (view_blocked)")
    min_sharpness: Score = Field(
        0.4, description="Sharpness below this fraction of the reference's = defocused or sprayed (view_blocked)"
    )
    adapt_s: float = Field(
        120.0, gt=0, description="Time constant of the reference: follows lighting drift and re-registers a small knock"
    )
    resume: Literal["auto", "operator"] = Field(
        "auto",
        description="auto: resume when the view matches the reference again (a PTZ back at its preset); operator: stay "
        "paused until `detector view confirm CONFIG --camera ID` (a fixed camera that should never move)",
    )


# A camera's `view:` overrides some of the top-level keys (a PTZ on a tour, a fixed camera that
# must never resume by itself): the same keys and bounds, each optional (absent = the top level's).
ViewOverride = create_model(
    "ViewOverride",
    __base__=Strict,
    __doc__="This camera's view settings; a key left out keeps the top-level `view` one.",
    **{
        key: (
            (Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation) | None,
            Field(None, description=f"This camera's view.{key} (default: the top-level view.{key})"),
        )
        for key, field in ViewConfig.model_fields.items()
    },
)


class ViolationSettings(Strict):
    dwell_s: Seconds = Field(description="Stationary presence needed before an alert starts")
    grace_s: Seconds = Field(description="Missed detections / occlusions shorter than this keep a pending candidate")
    clear_s: Seconds = Field(description="Absence that ends an active alert")
    cooldown_s: Seconds = Field(description="After an end, the same object at the same place stays quiet this long")
    update_s: Seconds = Field(300.0, description="Interval of `update` events while active (0 = none)")
    min_score: Score | None = Field(None, description="Score a detection needs (default: detect.min_score)")


DEFAULT_VIOLATIONS = {ViolationType(rule.type): ViolationSettings(**vars(rule.defaults)) for rule in RULE_TYPES}
VIOLATION_KEYS = tuple(ViolationSettings.model_fields)  # the settings a zone or `detector tune` may override

ViolationDefaults = create_model(
    "ViolationDefaults",
    __base__=Strict,
    __doc__="Settings per violation type; a zone may override them.",
    **{
        rule.type: (ViolationSettings, Field(DEFAULT_VIOLATIONS[ViolationType(rule.type)], description=rule.summary))
        for rule in RULE_TYPES
    },
)


class ZoneConfig(Strict):
    id: Identifier = Field(description="Zone name, unique within its camera; goes into topics, payloads and error messages")
    polygon: tuple[tuple[float, float], ...] = Field(
        description="Normalised [x, y] vertices, 0..1, in order around the zone: 3 to 256 points, an outline that does not cross itself"
    )
    violations: tuple[ViolationType, ...] = Field(description="Violation types enforced in this zone, each listed once")
    anchor: Anchor = Field(Anchor.BOTTOM_CENTER, description="Point of the box tested against the polygon")
    overlap_min: Score = Field(0.5, description="With anchor: overlap, the fraction of the box inside the zone")
    schedule: tuple[str, ...] = Field((), description="Windows when the zone is enforced; empty = always")
    dwell_s: Seconds | None = Field(None, description="This zone's dwell_s for all its types (default: violations.TYPE.dwell_s)")
    grace_s: Seconds | None = Field(None, description="This zone's grace_s for all its types (default: violations.TYPE.grace_s)")
    clear_s: Seconds | None = Field(None, description="This zone's clear_s for all its types (default: violations.TYPE.clear_s)")
    cooldown_s: Seconds | None = Field(
        None, description="This zone's cooldown_s for all its types (default: violations.TYPE.cooldown_s)"
    )
    update_s: Seconds | None = Field(
        None, description="This zone's update_s for all its types (default: violations.TYPE.update_s)"
    )
    min_score: Score | None = Field(
        None, description="This zone's min_score for all its types (default: violations.TYPE.min_score, then detect.min_score)"
    )

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, polygon: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        if len(polygon) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(polygon)}")
        for i, (x, y) in enumerate(polygon):
            if not (0 <= x <= 1 and 0 <= y <= 1):
                raise ValueError(f"point {i} [{x}, {y}] is outside 0..1 (coordinates are normalised)")
        defect = polygon_defect(np.array(polygon, np.float64))
        if defect is not None:
            raise ValueError(defect)
        return polygon

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        for entry in entries:
            parse_window(entry)
        return entries

    @field_validator("violations")
    @classmethod
    def _unique_violations(cls, types: tuple[ViolationType, ...]) -> tuple[ViolationType, ...]:
        if not types:
            raise ValueError("list at least one violation type")
        if len(set(types)) != len(types):
            raise ValueError("a violation type is listed twice")
        return types

    @property
    def schedule_windows(self) -> tuple[ScheduleWindow, ...]:
        return tuple(parse_window(entry) for entry in self.schedule)

    def settings_for(self, violation: ViolationType, defaults: ViolationDefaults, detect: DetectConfig) -> ViolationSettings:
        """The type's defaults with this zone's overrides applied; min_score always resolved."""
        base = getattr(defaults, violation.value)
        overrides = {key: getattr(self, key) for key in VIOLATION_KEYS if getattr(self, key) is not None}
        merged = base.model_copy(update=overrides)
        if merged.min_score is None:
            merged = merged.model_copy(update={"min_score": detect.min_score})
        return merged


class CameraConfig(Strict):
    id: Identifier = Field(description="Camera name, unique in the config; goes into topics, payloads and outbox file names")
    source: str = Field(description="Video file path or rtsp:// URL (credentials may come from ${ENV})")
    zones: tuple[ZoneConfig, ...] = Field((), description="Areas of the view where violations are enforced")
    # --- live sources (issue 4, docs/edge.md); a file source played by `detector run` uses decode too ---
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport (ignored for files)")
    open_timeout_s: float = Field(10.0, gt=0, description="Connecting and opening the stream may take this long")
    read_timeout_s: float = Field(5.0, gt=0, description="No data for this long = frozen source: reconnect (ignored for files)")
    decode: Literal["auto", "full", "keyframes"] = Field(
        "auto",
        description="auto: keyframes only when the stream's keyframe interval is at most 1/detect.fps + 10 % (measured "
        "at each reconnect; half the decode CPU or less), else every frame; full: every frame; keyframes: keyframes only "
        "(detect fps <= keyframe rate). `detector replay` decodes every frame whatever this says",
    )
    reconnect_min_s: float = Field(0.5, gt=0, description="First retry delay after a stream fault; doubles, with jitter")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest retry delay after stream faults")
    view: ViewOverride = Field(
        ViewOverride(), description="This camera's moved or blocked view settings, over the top-level `view`"
    )

    @field_validator("zones")
    @classmethod
    def _unique_zone_ids(cls, zones: tuple[ZoneConfig, ...]) -> tuple[ZoneConfig, ...]:
        _require_unique_ids(zones, "zone")
        return zones

    @model_validator(mode="before")
    @classmethod
    def _keyframes_only_replaced(cls, data: object) -> object:
        """`keyframes_only` (before `decode`) still reads as it meant: true = keyframes, false =
        full, with a warning to move on; both at once is a contradiction."""
        if not isinstance(data, dict) or "keyframes_only" not in data:
            return data
        if "decode" in data:
            raise ValueError("keyframes_only is replaced by decode: give decode only")
        data = dict(data)
        decode = "keyframes" if data.pop("keyframes_only") is True else "full"
        log.warning("camera %s: keyframes_only is deprecated; read as decode: %s (auto is the default)", data.get("id"), decode)
        return {**data, "decode": decode}

    @property
    def is_file(self) -> bool:
        return not is_stream_url(self.source)

    def view_settings(self, defaults: ViewConfig) -> ViewConfig:
        """The top-level view settings with this camera's overrides applied."""
        return defaults.model_copy(update=self.view.model_dump(exclude_none=True))


class TlsConfig(Strict):
    ca: Path | None = Field(None, description="CA certificate (PEM) that signed the broker's (default: the system's CAs)")
    cert: Path | None = Field(None, description="Client certificate (PEM), for brokers that authenticate clients by certificate")
    key: Path | None = Field(None, description="Private key (PEM) of cert, when cert does not contain it")
    insecure: bool = Field(False, description="Skip server hostname verification (testing only)")


def _broker_host(host: str) -> str:
    if not host.strip():
        raise ValueError("give the broker's host name or IP address")
    if any(c.isspace() or c in "/@" for c in host):
        raise ValueError("a host name only: no scheme, path, user or spaces (port, username and password are keys of their own)")
    return host


def _topic_prefix(prefix: str) -> str:
    problem = prefix_problem(prefix, ID_MAX_LENGTH)
    if problem:
        raise ValueError(f"the topic prefix {problem}")
    return prefix


# the edge's and the centre's `mqtt` sections alike
BrokerHost = Annotated[str, AfterValidator(_broker_host)]
TopicPrefix = Annotated[str, AfterValidator(_topic_prefix)]


class MqttConfig(Strict):
    host: BrokerHost = Field(description="Broker host name or IP address (no scheme, port or user: those are keys of their own)")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS)")
    topic_prefix: TopicPrefix = Field(
        "detector",
        description="First level(s) of every topic: {prefix}/{site}/{camera}/...; no $ at the start, no + # or empty level",
    )
    username: str | None = Field(None, description="Broker user (none = anonymous)")
    password: SecretStr | None = Field(None, description="Broker password; write ${MQTT_PASSWORD} to keep it in the environment")
    tls: TlsConfig | None = Field(None, description="Connect over TLS (absent = plain TCP)")
    keepalive_s: int = Field(
        30, ge=5, le=65535, description="MQTT keepalive; 1.5x this without traffic and the broker sends the last will"
    )
    health_interval_s: Seconds = Field(30.0, description="Interval of the .../health messages")
    snapshots: bool = Field(False, description="Also publish the evidence JPEG on .../snapshot/{alert_id}")
    # --- issue 3 (detector/mqtt, docs/mqtt.md) ---
    client_id: str | None = Field(None, max_length=64, description="MQTT client id (default: detector-{site}-{camera}-{pid})")
    max_in_flight: int = Field(16, ge=1, le=1000, description="Alerts published but not yet acknowledged (PUBACK), at most")
    reconnect_min_s: float = Field(0.5, gt=0, description="First reconnect delay; doubles per failure, with jitter")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest reconnect delay")
    drain_timeout_s: Seconds = Field(
        15.0, description="At the end of a replay / shutdown: how long to wait for the outbox to drain"
    )

    @model_validator(mode="after")
    def _user_requires_password(self) -> "MqttConfig":
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        return self


class OutboxConfig(Strict):
    """The durable local queue of alerts (storage_dir/outbox/{camera}.sqlite3); see docs/mqtt.md."""

    max_alerts: int = Field(
        10000, ge=10, description="Bound; when full, the oldest snapshots, then updates, then any alerts are dropped (logged)"
    )


class RetentionConfig(Strict):
    """`detector run`: how long each camera's evidence JPEGs and events files are kept (docs/edge.md)."""

    max_age_days: float = Field(30.0, gt=0, description="Evidence JPEGs and rotated events files older than this are deleted")
    max_total_mb: float = Field(
        1024.0,
        gt=0,
        description="Per camera: evidence and events files together at most this size; the oldest go first "
        "(never the evidence of an alert still open or waiting in the outbox)",
    )
    events_file_mb: float = Field(
        64.0, gt=0, description="events/{camera}.jsonl is rotated daily (UTC) and before it grows past this size"
    )
    check_interval_s: float = Field(60.0, gt=0, description="How often the worker applies the limits and measures disk use")


class InferenceConfig(Strict):
    """How many model inferences may run at once on this box, over all camera workers."""

    max_concurrent: int | Literal["auto"] = Field(
        "auto", description="auto = usable CPU cores // model.threads (at least 1); an integer >= 1 sets it"
    )

    @field_validator("max_concurrent")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if value != "auto" and value < 1:
            raise ValueError("must be 'auto' or an integer >= 1")
        return value


class SupervisorConfig(Strict):
    """`detector run`: how camera worker processes are watched and restarted (docs/edge.md)."""

    heartbeat_timeout_s: float = Field(30.0, gt=0, description="A worker silent this long is hung: killed and restarted")
    startup_timeout_s: float = Field(120.0, gt=0, description="Time a new worker has to load its model and report")
    restart_min_s: float = Field(1.0, gt=0, description="First restart delay after a crash; doubles, with jitter")
    restart_max_s: float = Field(60.0, gt=0, description="Longest restart delay")
    stop_timeout_s: float = Field(30.0, gt=0, description="On SIGTERM, time a worker has to flush and exit before SIGKILL")


class AppConfig(Strict):
    site: Identifier = Field(description="Site name; goes into topics and payloads")
    timezone: str = Field("UTC", description="IANA time zone of the zone schedules")
    model: ModelConfig = Field(description="The detection model")
    detect: DetectConfig = Field(DetectConfig(), description="Frame sampling and detection thresholds")
    track: TrackConfig = Field(TrackConfig(), description="Tracking and when an object counts as stationary")
    roles: RoleClasses = Field(RoleClasses(), description="Which model classes play which role in the rules")
    static_objects: StaticObjectsConfig = Field(
        StaticObjectsConfig(), description="Class-agnostic detector of new static objects (stray_garbage)"
    )
    view: ViewConfig = Field(ViewConfig(), description="Moved or blocked view detection; pauses the violation timers")
    regions: RegionsConfig = Field(RegionsConfig(), description="Crops over the zones instead of the whole frame (capacity)")
    motion: MotionConfig = Field(MotionConfig(), description="Motion gating of the regions, with stationary re-checks (capacity)")
    violations: ViolationDefaults = Field(
        ViolationDefaults(), description="Alert timing and score per violation type; zones override it (docs/violations.md)"
    )
    mqtt: MqttConfig | None = Field(None, description="Broker the alerts go to (docs/mqtt.md); absent: they wait in the outbox")
    storage_dir: Path = Field(Path("var/detector"), description="Outbox, events and evidence of `detector run`")
    outbox: OutboxConfig = Field(OutboxConfig(), description="Durable local queue of alerts not yet acknowledged by the broker")
    retention: RetentionConfig = Field(
        RetentionConfig(), description="How long `detector run` keeps evidence and events files, by age and size"
    )
    inference: InferenceConfig = Field(InferenceConfig(), description="Inferences at once over all cameras of this box")
    supervisor: SupervisorConfig = Field(SupervisorConfig(), description="How `detector run` watches and restarts camera workers")
    cameras: tuple[CameraConfig, ...] = Field(description="Cameras of the site, at least one; ids unique")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: tuple[CameraConfig, ...]) -> tuple[CameraConfig, ...]:
        if not cameras:
            raise ValueError("configure at least one camera")
        _require_unique_ids(cameras, "camera")
        return cameras

    @property
    def model_threshold(self) -> float:
        """The model keeps everything any zone or type could use; rules apply their own min_score."""
        scores = [self.detect.min_score]
        for camera in self.cameras:
            for zone in camera.zones:
                scores += [zone.settings_for(v, self.violations, self.detect).min_score for v in zone.violations]
        return min(scores)

    def camera(self, camera_id: str) -> CameraConfig:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        known = ", ".join(c.id for c in self.cameras)
        raise KeyError(f"no camera {camera_id!r} in the config (cameras: {known})")


def _require_unique_ids(items: tuple, what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"{what} id {item.id!r} is used twice")
        seen.add(item.id)
