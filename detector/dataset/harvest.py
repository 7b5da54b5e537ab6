"""`detector dataset harvest`: a camera's frames for training, pre-labelled by the current model (issue 12).

The camera's own pipeline (detector/worker.py, as `detector replay` drives it) runs over the whole
source at the detect fps, so the static-new-object detector has the background history it has
live. Every `every_s` of stream time one frame is judged:

    view paused (moved or blocked)        -> skipped: not the view the camera is there to see
    a near-duplicate of an image kept     -> dropped (difference hash, Hamming distance)
    otherwise                             -> kept: the model's boxes on the whole frame, plus the
                                             static-new-object detector's boxes of this frame
                                             (less those on an object the model sees)

The pipeline's own model boxes cover only where its focus looked (crops over the zones, where
motion was: detector/detect/focus.py); a training image needs every object labelled, so a kept
frame is run through the same model once more on the whole frame. Boxes are mapped to the
dataset's classes (the rules' roles) through the config's `roles`; a box whose class plays no
role is left out, and the static-object boxes play `garbage`. Images go to train or val by
blocks of stream time (`split_by_time`): adjacent frames look alike.

Pre-labels are a start, not ground truth: operators correct them in CVAT or Label Studio.
"""

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from detector.capture import Frame, FrameSource, open_camera, open_source
from detector.config import AppConfig, CameraConfig
from detector.config.schema import RoleClasses
from detector.dataset.yolo import CLASSES, SPLITS, Labels, Source, YoloDataset, split_by_time
from detector.detect.static_objects import OCCUPIED_OVERLAP
from detector.detections import Detections
from detector.errors import SourceError, redact_url
from detector.rules.roles import RoleMap
from detector.rules.violations import ROLES
from detector.urls import is_stream_url
from detector.worker import CameraPipeline
from detector.zones.geometry import box_containment

HASH_SIDE = 16  # a 16 x 16 = 256-bit difference hash
# At or below this many of the 256 bits an image is a near-duplicate. Measured on vtest.avi: a
# frame against its own JPEG copy differs in 0-2 bits, frames 5 s apart (people walking) in 20-48.
NEAR_DISTANCE = 10


def dhash(image: np.ndarray) -> np.ndarray:
    """The difference hash of a BGR or grey image: (HASH_SIDE * HASH_SIDE,) bool, whether each
    cell of a small grey copy is brighter than its left neighbour.

    Written here on cv2 and numpy because the libraries that compute it (imagehash) need PIL and
    more, and OpenCV's img_hash module is only in the contrib build. The 64-bit dHash usual for
    photos is too coarse for a fixed camera: its frames differ in small objects, and 5 s apart
    they were 3-16 bits apart, where JPEG noise is 0-1; at 256 bits that is 20-48 against 0-2."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (HASH_SIDE + 1, HASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.int16)
    return (small[:, 1:] > small[:, :-1]).ravel()


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between hash `a` (bits,) and each row of `b` (n, bits): (n,) int."""
    return np.count_nonzero(np.asarray(b).reshape(-1, a.size) != a, axis=1)


class NearDuplicates:
    """The hashes of the images kept so far; a new image within `max_distance` bits of one is a near-duplicate."""

    def __init__(self, max_distance: int = NEAR_DISTANCE, hashes: Iterable[np.ndarray] = ()) -> None:
        self.max_distance = max_distance
        self._hashes = np.array(list(hashes), bool).reshape(-1, HASH_SIDE * HASH_SIDE)

    def __len__(self) -> int:
        return len(self._hashes)

    def distance(self, image_hash: np.ndarray) -> int | None:
        """Bits to the nearest image kept; None when none is kept."""
        return int(hamming(image_hash, self._hashes).min()) if len(self._hashes) else None

    def is_near(self, image_hash: np.ndarray) -> bool:
        distance = self.distance(image_hash)
        return distance is not None and distance <= self.max_distance

    def add(self, image_hash: np.ndarray) -> None:
        self._hashes = np.vstack([self._hashes, image_hash[None, :]])


def dataset_classes(roles: RoleMap, names: Sequence[str]) -> np.ndarray:
    """The dataset class id of each of `roles.labels` (the model's classes, then `static_object`):
    (labels,) int32, -1 where the class plays no role. A class configured in several roles takes
    the first of them in the dataset's order (a YOLO box has one class)."""
    classes = np.full(len(roles.labels), -1, np.int32)
    for class_id in reversed(range(len(names))):
        members = roles.members.get(names[class_id])
        if members is not None:
            classes[members] = class_id
    return classes


def default_classes(model_names: Sequence[str]) -> np.ndarray:
    """`dataset_classes` of a model's classes under the roles' default (COCO) class names, as a
    labeller without a config maps them: (model classes,) int32, -1 where none plays a role."""
    roles = RoleMap.build(model_names, ROLES, RoleClasses().model_dump())
    return dataset_classes(roles, CLASSES)[: len(model_names)]


def to_labels(detections: Detections, classes: np.ndarray) -> Labels:
    """`detections` (class ids of the role map's labels, frame pixels) as dataset labels; boxes
    whose class plays no role are left out."""
    mapped = classes[detections.class_id] if len(detections) else np.zeros(0, np.int32)
    keep = mapped >= 0
    return Labels(mapped[keep].astype(np.int32), detections.xyxy[keep].astype(np.float32))


@dataclass(frozen=True)
class HarvestSettings:
    every_s: float = 5.0  # one frame judged per this much stream time
    block_s: float = 60.0  # split_by_time's blocks
    val_every: int = 5  # every 5th block to val
    max_distance: int = NEAR_DISTANCE  # near-duplicate: at most this many bits of the dHash differ
    seconds: float | None = None  # stop after this much stream time (a live source: wall time); None: the whole clip


@dataclass
class HarvestSummary:
    names: tuple[str, ...]
    frames: int = 0  # decoded at the detect fps and run through the pipeline
    stream_s: float = 0.0
    judged: int = 0  # frames due (one every every_s)
    kept: int = 0
    near_duplicates: int = 0
    paused: int = 0  # due while the view was moved or blocked: skipped
    images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    boxes: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (classes,) boxes added
    totals: dict[str, int] = field(default_factory=dict)  # split -> images in the dataset after the harvest

    def count(self, split: str, labels: Labels) -> None:
        self.kept += 1
        self.images[split] += 1
        boxes = self.boxes.setdefault(split, np.zeros(len(self.names), np.int64))
        boxes += np.bincount(labels.class_id, minlength=len(self.names))[: len(self.names)]

    def lines(self) -> list[str]:
        """The summary the command prints: per split, images and boxes per class (those with any)."""
        lines = []
        for split in SPLITS:
            boxes = self.boxes.get(split, np.zeros(len(self.names), np.int64))
            per_class = ", ".join(f"{name} {n}" for name, n in zip(self.names, boxes) if n) or "none"
            lines.append(f"  {split}: {self.images[split]} images, {int(boxes.sum())} boxes ({per_class})")
        return lines


def harvest(
    config: AppConfig,
    camera: CameraConfig,
    out: Path,
    settings: HarvestSettings = HarvestSettings(),
    *,
    source: Path | None = None,
    on_frame: Callable[[float], None] | None = None,
) -> HarvestSummary:
    """Adds the camera's judged frames to the dataset at `out` (see the module's docstring) and
    returns what it did. `source`: a recording instead of the camera's source. `on_frame(stream
    time)`: progress. A new dataset is made with its first image: a source that fails, or gives
    nothing new, leaves no folder behind."""
    where = source if source is not None else camera.source
    live = is_stream_url(str(where))
    if live and settings.seconds is None:
        raise ValueError("a live source needs `seconds`")
    opened = _open(config, camera, where)
    pipeline = None
    try:
        origin = datetime.now(UTC)
        pipeline = CameraPipeline.build(config, camera, wall_of=lambda ts: origin + timedelta(seconds=ts))
        existing = YoloDataset.create(out) if (Path(out) / "data.yaml").exists() else None  # refuses other classes
        classes = dataset_classes(pipeline.roles, CLASSES)
        near = NearDuplicates(settings.max_distance, _hashes_of(existing) if existing is not None else ())
        summary = HarvestSummary(CLASSES)
        shown = redact_url(str(where))
        slug = "live" if live else re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(where).stem)[:40]
        due = 0.0
        for frame in _frames(opened, live, settings.seconds):
            result = pipeline.process(frame)
            summary.frames, summary.stream_s = summary.frames + 1, frame.ts
            if on_frame is not None:
                on_frame(frame.ts)
            if frame.ts + 1e-6 < due:
                continue
            due = settings.every_s * (np.floor(frame.ts / settings.every_s + 1e-6) + 1)
            summary.judged += 1
            if result.view.paused:
                summary.paused += 1
                continue
            image_hash = dhash(frame.image)
            if near.is_near(image_hash):
                summary.near_duplicates += 1
                continue
            found = frame_boxes(pipeline.detector.detect(frame.image), result.look.detections, pipeline.roles.static_object_id)
            labels = to_labels(found, classes)
            split = split_by_time(frame.ts, settings.block_s, settings.val_every)
            dataset = existing = existing or YoloDataset.create(out)  # made with its first image
            stem = _free_stem(dataset, f"{camera.id}-{slug}-{round(frame.ts * 1000):09d}")
            dataset.add(split, stem, frame.image, labels, Source("", "harvest", camera.id, shown, round(frame.ts, 3)))
            near.add(image_hash)
            summary.count(split, labels)
        if live and not summary.frames:
            why = f": {opened.stats.last_error}" if opened.stats.last_error else ""
            raise SourceError(f"{redact_url(str(where))}: no frame in {settings.seconds:g} s{why}")
        summary.totals = existing.counts() if existing is not None else dict.fromkeys(SPLITS, 0)
    finally:
        if pipeline is not None:
            pipeline.close()
        if live:
            opened.close()
    return summary


def frame_boxes(model: Detections, found: Detections, static_id: int) -> Detections:
    """The model's boxes on the whole frame plus the pipeline's static-object boxes of this frame,
    less those mostly on an object the model sees (the static-object detector's own rule: it
    masks what the model saw where the focus looked; here the model looked everywhere)."""
    static = found[found.class_id == static_id]
    if len(static) and len(model):
        static = static[box_containment(static.xyxy, model.xyxy).max(axis=1) < OCCUPIED_OVERLAP]
    return Detections.merge([model, static])


def _open(config: AppConfig, camera: CameraConfig, where: str | Path) -> FrameSource:
    """The source at the detect fps: a recording (SourceError when it cannot be read), or a live
    stream read as `detector run` reads it (reconnecting, credentials kept out of its logs)."""
    if not is_stream_url(str(where)):
        return open_source(where, config.detect.fps)
    return open_camera(camera, config.detect.fps, where)


def _frames(source: FrameSource, live: bool, seconds: float | None) -> Iterator[Frame]:
    """A recording's frames to its end (or `seconds` of stream); a live stream's for `seconds` of wall time."""
    if not live:
        for frame in source.frames():
            if seconds is not None and frame.ts >= seconds:
                return
            yield frame
        return
    deadline = time.monotonic() + seconds
    for frame in source.frames(timeout_s=0.5):
        if time.monotonic() >= deadline:
            return
        if frame is not None:
            yield frame


def _hashes_of(dataset: YoloDataset) -> list[np.ndarray]:
    """The hashes of the images the dataset already holds, so a second harvest of the same view
    adds only what is new."""
    hashes = []
    for item in dataset:
        image = cv2.imread(str(item.image), cv2.IMREAD_GRAYSCALE)
        if image is not None:  # an unreadable image cannot be a duplicate of anything
            hashes.append(dhash(image))
    return hashes


def _free_stem(dataset: YoloDataset, stem: str) -> str:
    """`stem`, or `stem-2`, `stem-3`, ... if an image of that name is in the dataset (another clip
    of the camera at the same stream time, a second session of a live stream)."""
    taken = {p.stem for split in SPLITS for p in (dataset.root / "images" / split).glob(f"{stem}*")}
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}"
    return candidate
