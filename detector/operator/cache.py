"""Per-clip cache of the pipeline's detect stage, so a sweep runs the model once per clip.

What is cached is exactly what stages 0 and 1 of `CameraPipeline.process` give for every sampled
frame: the view's state (`watch`; each change, in `meta["view"]`) and, while the view is not
paused, what `detect` returns: the model's boxes after NMS (at the cache's threshold) plus the
static-new-object detector's boxes, where the focus looked (the regions in `meta["regions"]`, the
regions the model ran on, the frame's motion), with the frame's stream time, index and gap. A paused frame
has no detections, as live. One `.npz` per (model sha256 and input size, clip sha256, detect fps,
model threshold, NMS IoU, static-object, view and focus settings): change any of them and it is a
different file, so a stale cache cannot be used by mistake.

Arrays are per frame (FRAME_ARRAYS) or per detection (DETECTION_ARRAYS, frame i's rows
offsets[i]:offsets[i+1]); another array is one more name in those tuples.

Filtering the cached model boxes at a *higher* threshold gives exactly what the model would
give at that threshold (greedy per-class NMS: a lower-scoring box never suppresses a higher
one). The static-object boxes are kept as cached: they were computed with the model boxes of
the cache's threshold masking their areas (a documented approximation when a combination's
threshold is higher than the sweep's lowest). Likewise where the focus looked: a region's
re-check interval is at most half its zones' grace_s, and a sweep over grace_s replays every
combination on the looks of the config the cache was built with.
"""

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from detector.capture import Frame, open_source
from detector.config import AppConfig, CameraConfig
from detector.detect import Detector
from detector.detect.base import file_digest
from detector.detect.focus import Look, focus_settings
from detector.detect.regions import Region
from detector.detections import Detections
from detector.errors import ConfigError
from detector.track.appearance import SIZE
from detector.view import OK_FROM_START, ViewState, ViewStatus
from detector.worker import CameraPipeline, uses_static_objects

log = logging.getLogger(__name__)

CACHE_VERSION = 6  # bump when the detect stage changes what it returns (2: the view's state, 3: appearance, 4-6: focus)
# offsets: one more than frames; ran: (frames, regions) the regions the model ran on; motion: NaN where gating is off
FRAME_ARRAYS = ("ts", "index", "gap_before_s", "inference_ms", "offsets", "ran", "motion")
DETECTION_ARRAYS = ("xyxy", "confidence", "class_id", "appearance")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class CachedModel(Detector):
    """Stands in for the model in a rules-only pipeline: names, digest and path, no inference."""

    def __init__(self, names: list[str], digest: str, path: Path) -> None:
        self.names, self.digest, self.path = list(names), digest, Path(path)

    def detect(self, image: np.ndarray) -> Detections:
        raise RuntimeError("rules-only replay: detections come from the cache, not the model")


@dataclass(frozen=True)
class DetectionCache:
    """Cached view and detect-stage output of one clip; `frames()` yields (Frame, Look, ViewState)."""

    meta: dict
    ts: np.ndarray
    index: np.ndarray
    gap_before_s: np.ndarray
    inference_ms: np.ndarray
    offsets: np.ndarray  # detections of frame i are rows offsets[i]:offsets[i+1]
    ran: np.ndarray  # (frames, regions) bool: which regions of meta["regions"] the model ran on
    motion: np.ndarray  # (frames,) the changed share of the frame; NaN: motion gating off
    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    appearance: np.ndarray  # (rows, appearance.SIZE) signatures: the tracker tells objects apart by them

    @property
    def model_threshold(self) -> float:
        return float(self.meta["key"]["model_threshold"])

    @property
    def static_object_id(self) -> int:
        return len(self.meta["names"])  # RoleMap puts static_object after the model's classes

    def model(self) -> CachedModel:
        return CachedModel(self.meta["names"], self.meta["key"]["model_sha256"], Path(self.meta["model_path"]))

    def __len__(self) -> int:
        return len(self.ts)

    def frames(self) -> Iterator[tuple[Frame, Look, ViewState]]:
        # the rules read only the frame's size: a zero-copy placeholder image of that size
        image = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (self.meta["height"], self.meta["width"], 3))
        changes = {change["frame"]: _view_state(change) for change in self.meta["view"]}
        view = OK_FROM_START
        regions = tuple(Region(*r["box"], r["long_side"], tuple(r["zones"])) for r in self.meta["regions"])
        for i in range(len(self.ts)):
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            detections = Detections(
                self.xyxy[a:b], self.confidence[a:b], self.class_id[a:b], data={"appearance": self.appearance[a:b]}
            )
            frame = Frame(image=image, ts=float(self.ts[i]), index=int(self.index[i]), gap_before_s=float(self.gap_before_s[i]))
            view = changes.get(i, view)
            motion = None if np.isnan(self.motion[i]) else float(self.motion[i])
            windows = tuple(region for region, ran in zip(regions, self.ran[i]) if ran)
            yield frame, Look(detections, float(self.inference_ms[i]), regions, windows, motion), view


def cache_key(config: AppConfig, camera: CameraConfig, clip: Path, threshold: float) -> dict:
    """Everything the detect stage's output depends on."""
    return {
        "version": CACHE_VERSION,
        "model_sha256": file_digest(config.model.path),
        "model_input": {"imgsz": config.model.imgsz, "fit_frame": config.model.fit_frame},
        "clip_sha256": file_digest(clip),
        "detect_fps": config.detect.fps,
        "model_threshold": round(float(threshold), 6),
        "nms_iou": config.detect.nms_iou,
        "static_objects": config.static_objects.model_dump() if uses_static_objects(config, camera) else None,
        "view": camera.view_settings(config.view).model_dump(),
        "focus": focus_settings(config, camera),
    }


def cache_path(cache_dir: Path, clip: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{clip.stem}-{digest}.npz"


def load_cache(path: Path, key: dict) -> DetectionCache | None:
    """The cache at `path` if it exists, is readable and was made for `key`; else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("key") != key:
                return None
            arrays = {name: data[name] for name in FRAME_ARRAYS + DETECTION_ARRAYS}
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s: unreadable detection cache (%s); rebuilding it", path, exc)
        return None
    return DetectionCache(meta=meta, **arrays)


def build_cache(
    config: AppConfig, camera: CameraConfig, clip: Path, threshold: float, key: dict, *, progress=None
) -> DetectionCache:
    """Runs the real pipeline's view and detect stages over the whole clip, as `process` does."""
    pipeline = CameraPipeline.build(config, camera, wall_of=lambda ts: _EPOCH, model_threshold=threshold)
    source = open_source(clip, config.detect.fps)
    ts, index, gaps, inference, offsets, motion = [], [], [], [], [0], []
    ran = []
    boxes, scores, classes, looks = [], [], [], []
    view_changes, view = [], OK_FROM_START
    for frame in source.frames():
        seen = replace(pipeline.watch(frame), measure=None)  # the frame's figures are not cached
        if seen != view:
            view = seen
            view_changes.append(_view_change(len(ts), view))
        look = pipeline.detect(frame) if not view.paused else Look(Detections.empty())
        detections = look.detections
        ts.append(frame.ts), index.append(frame.index), gaps.append(frame.gap_before_s), inference.append(look.inference_ms)
        ran.append([region in look.windows for region in pipeline.focus.plan(frame.image.shape[:2])])
        motion.append(np.nan if look.motion is None else look.motion)
        boxes.append(detections.xyxy), scores.append(detections.confidence), classes.append(detections.class_id)
        looks.append(detections.data.get("appearance", np.zeros((len(detections), SIZE), np.float32)))
        offsets.append(offsets[-1] + len(detections))
        if progress is not None:
            progress(frame.ts)
    meta = {
        "key": key,
        "names": list(pipeline.detector.names),
        "model_path": str(config.model.path),
        "clip": str(clip),
        "width": source.stats.size[0],
        "height": source.stats.size[1],
        "view": view_changes,
        "regions": [
            {"box": [r.x1, r.y1, r.x2, r.y2], "long_side": r.long_side, "zones": list(r.zones)}
            for r in pipeline.focus.plan((source.stats.size[1], source.stats.size[0]))
        ],
    }
    return DetectionCache(
        meta=meta,
        ts=np.array(ts, np.float64),
        index=np.array(index, np.int64),
        gap_before_s=np.array(gaps, np.float64),
        inference_ms=np.array(inference, np.float64),
        offsets=np.array(offsets, np.int64),
        ran=np.array(ran, bool).reshape(len(ts), -1),
        motion=np.array(motion, np.float64),
        xyxy=np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        confidence=np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32),
        class_id=np.concatenate(classes).astype(np.int32) if classes else np.zeros(0, np.int32),
        appearance=np.concatenate(looks).astype(np.float32) if looks else np.zeros((0, SIZE), np.float32),
    )


def save_cache(cache: DetectionCache, path: Path) -> None:
    """Atomically: a sweep interrupted mid-write leaves no half file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.npz")
    arrays = {name: getattr(cache, name) for name in FRAME_ARRAYS + DETECTION_ARRAYS}
    np.savez_compressed(temporary, meta=np.array(json.dumps(cache.meta)), **arrays)
    os.replace(temporary, path)


def _view_change(frame: int, view: ViewState) -> dict:
    return {
        "frame": frame,
        "status": view.status.value,
        "since_s": view.since_s,
        "reason": view.reason,
        "awaiting_operator": view.awaiting_operator,
        "back": view.back,
    }


def _view_state(change: dict) -> ViewState:
    fields = {k: v for k, v in change.items() if k != "frame"}
    return ViewState(**fields | {"status": ViewStatus(change["status"])})


def cached_detections(
    config: AppConfig, camera: CameraConfig, clip: Path, threshold: float, cache_dir: Path, *, build: bool = True, progress=None
) -> tuple[DetectionCache | None, bool]:
    """(cache, was_built): the clip's cached detect stage, building and saving it when missing
    (unless `build=False`, then (None, False))."""
    clip = Path(clip)
    if not clip.is_file():
        raise ConfigError(f"clip not found: {clip}")
    key = cache_key(config, camera, clip, threshold)
    path = cache_path(cache_dir, clip, key)
    cache = load_cache(path, key)
    if cache is not None or not build:
        return cache, False
    cache = build_cache(config, camera, clip, threshold, key, progress=progress)
    save_cache(cache, path)
    return cache, True
