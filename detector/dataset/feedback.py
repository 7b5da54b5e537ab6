"""`detector feedback EVENTS ID --false-alarm`: an operator's mark on an alert, and its frame as a hard negative (issue 12).

The mark goes to `feedback.jsonl` beside EVENTS, one JSON object a line (alert_id, type, camera,
zone, mark, note, at). With a dataset, the alert's frame goes into it too, pre-labelled by the
config's model but without the boxes the alert was raised on: trained on it, the model learns
those were not what it took them for.

The evidence snapshot is not that frame: evidence.py draws the zone (tinted) and the alert's boxes
on it. So the clean frame is taken from the recording the alert came from (the camera's file
source, or `source`), at the alert's stream time, and checked against the snapshot by drawing it
as evidence.py does: the two must agree (identical, or within JPEG noise) or it is refused. An
alert of a live camera has no recording to take it from: give one (`source`), or harvest the
camera (`detector dataset harvest`) and correct its labels instead.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from detector.alerts import Alert, AlertEvent, EvidenceWriter
from detector.alerts.factory import iso_utc
from detector.capture import open_source
from detector.config import AppConfig, CameraConfig
from detector.dataset.harvest import dataset_classes, to_labels
from detector.dataset.yolo import Labels, Source, YoloDataset
from detector.errors import ConfigError, OutputError, SourceError, redact_url
from detector.rules.debounce import Candidate
from detector.scoring import load_events
from detector.urls import is_stream_url
from detector.worker import open_configured_model, role_map
from detector.zones.geometry import box_iou

FEEDBACK_FILE = "feedback.jsonl"
FALSE_ALARM = "false_alarm"
MIN_ID_PREFIX = 8  # the console prints ids cut to 13 characters: a unique prefix this long is enough
MATCH_IOU = 0.5  # a model box this close to an alert object is that object
# The recording's frame drawn as evidence against the snapshot: share of pixels more than
# PIXEL_DIFF grey levels apart. Measured on the demo: the alert's own frame gives the very same
# JPEG (sha256), the frames 0.5 s before and after (people walking) 2.5%.
PIXEL_DIFF = 25
MAX_DIFFERENT = 0.005


@dataclass(frozen=True)
class Mark:
    """One line of feedback.jsonl."""

    alert_id: str
    type: str
    camera: str
    zone: str
    mark: str
    note: str
    at: str  # ISO 8601 UTC, when the operator marked it

    def to_line(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True)
class Negative:
    """The alert's clean frame, its labels without the alert's boxes, and where it came from."""

    image: np.ndarray
    labels: Labels
    removed: int  # model boxes dropped because they are the alert's objects
    source: Source


def read_alerts(events: Path) -> list[Alert]:
    """Every event of an events.jsonl (scoring.load_events, strict: a bad line is refused, not
    skipped); ConfigError naming the file (and line) when it is not one."""
    try:
        return load_events(events, strict=True)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def find_alert(alerts: list[Alert], alert_id: str, events: Path) -> Alert:
    """The start event of the alert `alert_id` (or a unique prefix of it, of MIN_ID_PREFIX or more
    characters); its first event when the file has no start (rotated away)."""
    ids = list(dict.fromkeys(a.id for a in alerts))
    matches = [i for i in ids if i == alert_id] or (
        [i for i in ids if i.startswith(alert_id)] if len(alert_id) >= MIN_ID_PREFIX else []
    )
    if not matches:
        known = f" (its alerts: {', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})" if ids else " (it has no alerts)"
        raise ConfigError(f"no alert {alert_id!r} in {events}{known}")
    if len(matches) > 1:
        raise ConfigError(f"{alert_id!r} is the start of {len(matches)} alert ids in {events}: {', '.join(matches)}")
    events_of = [a for a in alerts if a.id == matches[0]]
    return next((a for a in events_of if a.event is AlertEvent.START), events_of[0])


def feedback_path(events: Path) -> Path:
    return Path(events).parent / FEEDBACK_FILE


def read_marks(path: Path) -> list[dict]:
    """The lines of a feedback.jsonl (none when it is not there yet); ConfigError on a bad line."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    marks = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            mark = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            mark = None
        if not isinstance(mark, dict) or not isinstance(mark.get("alert_id"), str):
            raise ConfigError(f"{path}:{number}: not a feedback line (a JSON object with alert_id)")
        marks.append(mark)
    return marks


def new_mark(alert: Alert, mark: str, note: str, now: datetime | None = None) -> Mark:
    return Mark(alert.id, alert.type, alert.camera, alert.zone, mark, note, iso_utc(now or datetime.now(UTC)))


def append_mark(path: Path, mark: Mark) -> None:
    """One line, written whole (O_APPEND, one write) and synced; OutputError when it cannot be."""
    line = mark.to_line()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if os.write(fd, line) != len(line):
                raise OSError(0, "short write (disk full?)")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the mark: {exc.strerror or exc}") from None


def snapshot_image(events: Path, alert: Alert) -> tuple[np.ndarray, Path]:
    """The start's evidence JPEG, checked against its sha256. The payload names it relative to
    the output folder: EVENTS's folder for a replay, the one above for `detector run`
    (storage_dir/events/CAMERA.jsonl, storage_dir/evidence/CAMERA/ID.jpg)."""
    if alert.event is not AlertEvent.START:
        raise ConfigError(f"alert {alert.id}: its start event (which names the evidence snapshot) is not in {events}")
    if alert.snapshot is None:
        why = f" ({alert.snapshot_error})" if alert.snapshot_error else ""
        raise SourceError(f"alert {alert.id} has no evidence snapshot{why}")
    folder = Path(events).parent
    candidates = [folder / alert.snapshot.path, folder.parent / alert.snapshot.path]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise SourceError(f"{candidates[0]}: the evidence snapshot of alert {alert.id} is missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != alert.snapshot.sha256:
        raise SourceError(f"{path}: not the evidence of alert {alert.id} (its sha256 differs from the alert's)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: not a readable JPEG")
    return image, path


def clean_frame(config: AppConfig, camera: CameraConfig, alert: Alert, snapshot: np.ndarray, source: Path | None) -> np.ndarray:
    """The recording's frame at the alert's stream time, once it is checked to be the snapshot's frame."""
    where = source if source is not None else camera.source
    if is_stream_url(str(where)):
        raise SourceError(
            f"camera {camera.id}'s source is a live stream ({redact_url(str(where))}) and the evidence snapshot has the zone "
            "and boxes drawn on it: give --source the recording the alert came from"
        )
    best = None
    for frame in open_source(where, config.detect.fps).frames():
        if best is None or abs(frame.ts - alert.stream_time_s) < abs(best.ts - alert.stream_time_s):
            best = frame
        if frame.ts > alert.stream_time_s:
            break
    if best is None or abs(best.ts - alert.stream_time_s) > 0.5 / config.detect.fps:
        raise SourceError(f"{where}: has no frame at {alert.stream_time_s:.1f} s (alert {alert.id})")
    different = _differs_from_snapshot(camera, alert, best.image, snapshot)
    if different > MAX_DIFFERENT:
        raise SourceError(
            f"{where}: its frame at {best.ts:.1f} s is not alert {alert.id}'s evidence "
            f"({different:.1%} of the pixels differ): give --source the recording the alert came from"
        )
    return best.image


def _differs_from_snapshot(camera: CameraConfig, alert: Alert, image: np.ndarray, snapshot: np.ndarray) -> float:
    """Share of pixels where `image`, drawn as evidence (zone, title and boxes as the alert's
    factory draws them), and the snapshot differ by more than PIXEL_DIFF grey levels; 1.0 when
    the sizes differ."""
    if image.shape != snapshot.shape:
        return 1.0
    zone = next((z for z in camera.zones if z.id == alert.zone), None)
    if zone is None:
        raise ConfigError(f"camera {camera.id} has no zone {alert.zone!r} (alert {alert.id}); give the config of the replay")
    height, width = image.shape[:2]
    polygon_px = np.array(zone.polygon, np.float32) * np.array([width, height], np.float32)
    objects = tuple(Candidate(-1, alert.first_seen_s, o.box, o.label, o.score) for o in alert.objects)
    with tempfile.TemporaryDirectory(prefix="detector-feedback-") as folder:
        drawn = EvidenceWriter(Path(folder)).write("frame", image, polygon_px, f"{alert.zone}: {alert.type}", objects)
        if alert.snapshot is not None and drawn.sha256 == alert.snapshot.sha256:
            return 0.0
        redrawn = cv2.imread(str(Path(folder) / drawn.path), cv2.IMREAD_GRAYSCALE)
    grey = cv2.cvtColor(snapshot, cv2.COLOR_BGR2GRAY)
    return float(np.mean(cv2.absdiff(redrawn, grey) > PIXEL_DIFF))


def hard_negative(config: AppConfig, alert: Alert, image: np.ndarray, names: tuple[str, ...], where: str) -> Negative:
    """The config's model on the whole frame, mapped to the dataset's classes as a harvest maps
    them, less every box of an alert object's class at IoU >= MATCH_IOU with that object's box
    (an object whose class plays no role matches boxes of any class)."""
    model = open_configured_model(config)
    roles = role_map(config, model.names)
    classes = dataset_classes(roles, names)
    labels = to_labels(model.detect(image), classes)
    height, width = image.shape[:2]
    index = {label: i for i, label in enumerate(roles.labels)}
    keep = np.ones(len(labels), bool)
    for obj in alert.objects:
        box = np.array([obj.box], np.float32) * np.array([width, height, width, height], np.float32)
        class_id = classes[index[obj.label]] if obj.label in index else -1
        same = labels.class_id == class_id if class_id >= 0 else np.ones(len(labels), bool)
        keep &= ~(same & (box_iou(labels.xyxy, box)[:, 0] >= MATCH_IOU))
    kept = Labels(labels.class_id[keep], labels.xyxy[keep])
    source = Source("", "negative", alert.camera, redact_url(where), alert.stream_time_s, alert.id)
    return Negative(image, kept, int((~keep).sum()), source)


def negative_stem(alert: Alert) -> str:
    return f"negative-{alert.camera}-{alert.id}"


def add_negative(dataset: YoloDataset, alert: Alert, negative: Negative) -> bool:
    """Adds the negative to train (hard negatives teach; val stays the cameras' plain frames);
    False when the dataset already holds it. A write that fails leaves no part of it behind."""
    stem = negative_stem(alert)
    if any((dataset.root / "images" / split / f"{stem}.jpg").exists() for split in ("train", "val")):
        return False
    image, label = dataset.root / "images" / "train" / f"{stem}.jpg", dataset.root / "labels" / "train" / f"{stem}.txt"
    try:
        dataset.add("train", stem, negative.image, negative.labels, negative.source)
    except (OSError, OutputError) as exc:
        for path in (image, label):
            path.unlink(missing_ok=True)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputError(f"{dataset.root}: cannot add the negative: {why}") from None
    return True
