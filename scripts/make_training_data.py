#!/usr/bin/env python3
"""Training images for the city's own classes: real cut-outs pasted onto real street frames.

    python scripts/make_training_data.py --out DS [--images 600] [--seed 0]

A COCO model has no class for a stall or a bag of litter (issue 12), and no footage of the
city's violations is labelled yet. This writes DS, a dataset in the Ultralytics YOLO layout
(detector/dataset/yolo.py: images/, labels/, data.yaml, sources.jsonl) whose `vendor`, `garbage`
and `nonmotor` boxes are exact because the objects were put there: each cut-out of
sample_videos/training/cutouts.yaml (a real object cut from a real still or clip frame with
scripts/make_scenarios.py's sprite code: box, hand-drawn polygon or clean-plate mask, feathered
alpha) is pasted onto frames of the real clips at random places (mostly on the ground, the
lower two thirds), sizes (about 20-200 px on a 768-px-wide frame), lighting (brightness,
contrast, gamma), slight blur and noise, mirrored half the time; 0-3 per image, about one image
in seven with none. The cut-outs of the vending-stall and garbage-drop scenarios are among
them, so a model trained here can be scored on those clips.

A model trained only on the new classes would forget the people and vehicles the parking and
vending rules need, so every background frame keeps its own objects: models/yolov8n_dynamic.onnx
labels it before anything is pasted (score >= 0.35), COCO classes mapped to the dataset's by
the roles' defaults (person -> person, car/truck/bus -> vehicle, bicycle/motorcycle -> nonmotor,
...; detector/rules/violations.py), plus the scene objects the catalogue lists (vtest's litter);
a box that a pasted object covers by 60 % or more is dropped. The base model misses cars seen
from straight above and calls road marks suitcases, so of the two top-down clips (catalogue:
`empty_only`) only the frames in which nothing moves are used, with no pre-labels; what it
misses elsewhere (the gif's cyclist) stays unlabelled.

Split by background, never frame by frame: each clip's time is cut into 10 equal blocks;
blocks 2 and 7 (detector.dataset.yolo.split_by_time, every 5th block from the 2nd) give the
val images, the other 8 the train images, and frames closer than 1 s (at most a quarter block)
to a boundary between a train and a val block are used by neither, so no val background has a
near-copy in train. A clip shorter than 10 s (the 41-frame gif) goes to train whole. Every 5th
image is a val image (20 %).

The same seed, catalogue and assets give the same bytes (the digest printed). Besides the
dataset, DS/composites.jsonl records per image the clip, frame and every pasted object (cut-out,
box, transform) for tests and for tracing a label back.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling module, also when loaded by path (tests)
import make_scenarios as scenes  # noqa: E402

from detector.dataset.harvest import default_classes  # noqa: E402
from detector.dataset.yolo import CLASSES, SPLITS, Labels, Source, YoloDataset, split_by_time  # noqa: E402
from detector.detect.onnx_backend import OnnxDetector  # noqa: E402
from detector.detections import Detections  # noqa: E402
from detector.errors import DetectorError  # noqa: E402

ROOT = scenes.ROOT
CATALOGUE = ROOT / "sample_videos" / "training" / "cutouts.yaml"
MODEL = ROOT / "models" / "yolov8n_dynamic.onnx"
MIN_SCORE, NMS_IOU = 0.35, 0.5  # the base model's pre-labels
MASK_METHODS = ("box", "polygon", "clean_plate")
REFERENCE_WIDTH = 768  # size_px is on a frame this wide (vtest, the scenario clips)
VAL_EVERY = 5  # every 5th image, and 2 of each clip's 10 time blocks, are val
BLOCKS, GUARD_S, MIN_SPLIT_S = 10, 1.0, 10.0
OBJECTS_P = (0.15, 0.35, 0.30, 0.20)  # P(0, 1, 2, 3 pasted objects in an image)
GROUND_SHARE = 0.85  # objects whose bottom lies in the lower two thirds of the frame
COVERED_DROP = 0.6  # a pre-label this much under pasted objects is occluded: dropped
MIN_BOX_PX = 4
BATCH = 8  # frames the base model labels in one run
EMPTY_BLOB = 0.001  # share of the frame a moving blob may cover in an `empty_only` frame


class TrainingDataError(ValueError):
    """A catalogue or an output folder that cannot be used; the message names the problem."""


@dataclass(frozen=True)
class Cutout:
    id: str
    class_name: str
    source: scenes.SpriteSource
    feather_px: int
    size_px: tuple[float, float]  # long side on a REFERENCE_WIDTH frame, min and max


@dataclass(frozen=True)
class Background:
    clip: str
    weight: float
    labels: Labels  # the scene's own objects in every frame, pixels
    empty_only: bool = False  # the base model cannot label this view: only frames where nothing moves, no pre-labels


@dataclass(frozen=True)
class ClipIndex:
    """A clip's frames: stream time (s, from the first frame), split ('' = guard band), size."""

    times: np.ndarray
    splits: np.ndarray
    size: tuple[int, int]  # width, height


@dataclass(frozen=True)
class Placement:
    """One cut-out in one image: where its source box lands (pixels, x2/y2 exclusive) and how it looks."""

    cutout: int
    box: tuple[int, int, int, int]
    flip: bool
    gamma: float
    contrast: float
    brightness: float
    blur_sigma: float
    noise_sigma: float
    noise_seed: int


@dataclass(frozen=True)
class ImagePlan:
    stem: str
    split: str
    clip: int
    frame: int
    placements: tuple[Placement, ...]


@dataclass
class Summary:
    images: Counter = field(default_factory=Counter)  # per split
    boxes: Counter = field(default_factory=Counter)  # per (split, class)
    pasted: Counter = field(default_factory=Counter)  # per cut-out id
    backgrounds: Counter = field(default_factory=Counter)  # images per clip
    without_cutout: int = 0
    dropped: int = 0  # pre-labels under pasted objects
    digest: str = ""


# ---------------------------------------------------------------------------------------------
# The catalogue


def _resolve(path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else ROOT / path


def _require(path: str, where: str) -> None:
    if not _resolve(path).is_file():
        raise TrainingDataError(f"{where}: {path} is missing (python scripts/fetch_assets.py places it)")


def parse_cutout(item: dict, where: str) -> Cutout:
    if not isinstance(item, dict) or not {"id", "class", "source", "mask"} <= set(item):
        raise TrainingDataError(f"{where}: needs id, class, source and mask")
    if item["class"] not in CLASSES:
        raise TrainingDataError(f"{where}: class {item['class']!r} is not one of the dataset's ({', '.join(CLASSES)})")
    source = scenes.parse_sprite_source(item["source"], where + ".source")
    method = "polygon" if source.mask_polygon else "clean_plate" if source.mask_background else "box"
    if item["mask"] != method:
        raise TrainingDataError(f"{where}: mask {item['mask']!r}, but its source.mask makes it {method!r} ({MASK_METHODS})")
    _require(source.image or source.clip, where)
    low, high = (float(v) for v in item.get("size_px", (20, 200)))
    if not 4 <= low <= high:
        raise TrainingDataError(f"{where}: size_px must be [min, max] with 4 <= min <= max, got {[low, high]}")
    return Cutout(str(item["id"]), item["class"], source, int(item.get("feather_px", 3)), (low, high))


def parse_background(item: dict, where: str) -> Background:
    if not isinstance(item, dict) or "clip" not in item:
        raise TrainingDataError(f"{where}: needs clip")
    _require(item["clip"], where)
    labels = item.get("labels") or []
    if any(label.get("class") not in CLASSES or len(label.get("box", ())) != 4 for label in labels):
        raise TrainingDataError(f"{where}.labels: each needs a class of {CLASSES} and a box [x1, y1, x2, y2]")
    class_id = np.array([CLASSES.index(label["class"]) for label in labels], np.int32)
    xyxy = np.array([label["box"] for label in labels], np.float32).reshape(-1, 4)
    return Background(str(item["clip"]), float(item.get("weight", 1.0)), Labels(class_id, xyxy), bool(item.get("empty_only")))


def load_catalogue(path: Path = CATALOGUE) -> tuple[list[Cutout], list[Background]]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TrainingDataError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    cutouts = [parse_cutout(item, f"{path}: cutouts[{i}]") for i, item in enumerate(data.get("cutouts") or [])]
    backgrounds = [parse_background(item, f"{path}: backgrounds[{i}]") for i, item in enumerate(data.get("backgrounds") or [])]
    if not cutouts or not backgrounds:
        raise TrainingDataError(f"{path}: needs at least one cut-out and one background")
    if len({c.id for c in cutouts}) != len(cutouts):
        raise TrainingDataError(f"{path}: cut-out ids repeat")
    return cutouts, backgrounds


# ---------------------------------------------------------------------------------------------
# Backgrounds and the split


def split_frames(times: np.ndarray) -> np.ndarray:
    """'train' | 'val' | '' (guard band, unused) per frame of a clip; times from its first frame."""
    duration = times[-1] + (float(np.median(np.diff(times))) if len(times) > 1 else 0.0)
    if duration < MIN_SPLIT_S:
        return np.full(len(times), "train", object)
    block = duration / BLOCKS
    splits = np.array([split_by_time(t, block, VAL_EVERY) for t in times], object)
    of_block = [split_by_time((b + 0.5) * block, block, VAL_EVERY) for b in range(BLOCKS)]
    boundaries = np.array([b * block for b in range(1, BLOCKS) if of_block[b] != of_block[b - 1]])
    near = np.abs(times[:, None] - boundaries[None, :]).min(axis=1) < min(GUARD_S, block / 4)
    splits[near] = ""
    return splits


def empty_frames(thumbnails: list[np.ndarray]) -> np.ndarray:
    """(n,) bool: frames where nothing moves. The clean plate is the median of 25 frames spread
    over the clip; a frame is empty when no blob differing from it by more than 30 covers
    EMPTY_BLOB of the frame (a car seen from above covers 100x that)."""
    plate = np.median(np.stack(thumbnails[:: max(1, len(thumbnails) // 25)]), axis=0)
    empty = np.zeros(len(thumbnails), bool)
    for i, thumbnail in enumerate(thumbnails):
        moved = (np.abs(thumbnail.astype(np.float32) - plate).max(axis=2) > 30).astype(np.uint8)
        moved = cv2.morphologyEx(moved, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(moved)
        empty[i] = count == 1 or stats[1:, cv2.CC_STAT_AREA].max() < EMPTY_BLOB * moved.size
    return empty


def index_clip(background: Background) -> ClipIndex:
    """One decoding pass: each frame's stream time and split, the frame size (and, for an
    `empty_only` background, which frames are empty: the others get no split)."""
    times, thumbnails = [], []
    with av.open(str(_resolve(background.clip))) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        rate = float(stream.average_rate or 10)
        for i, frame in enumerate(container.decode(stream)):
            times.append(frame.time if frame.time is not None else i / rate)
            if background.empty_only:
                thumbnails.append(
                    cv2.resize(frame.to_ndarray(format="bgr24"), None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
                )
        size = (stream.codec_context.width, stream.codec_context.height)
    if not times:
        raise TrainingDataError(f"{background.clip}: no frames")
    times = np.array(times, np.float64) - times[0]
    splits = split_frames(times)
    if background.empty_only:
        splits[~empty_frames(thumbnails)] = ""
    return ClipIndex(times, splits, size)


# ---------------------------------------------------------------------------------------------
# The plan: every random draw, before any pixel is touched


def _place(rng: np.random.Generator, cutouts: list[Cutout], size: tuple[int, int]) -> tuple[Placement, ...]:
    width, height = size
    by_class = {name: [k for k, c in enumerate(cutouts) if c.class_name == name] for name in CLASSES}
    classes = [name for name, members in by_class.items() if members]
    placed: list[Placement] = []
    for _ in range(rng.choice(len(OBJECTS_P), p=OBJECTS_P)):
        k = int(rng.choice(by_class[classes[rng.integers(len(classes))]]))
        x1, y1, x2, y2 = cutouts[k].source.box
        low, high = cutouts[k].size_px
        long_side = math.exp(rng.uniform(math.log(low), math.log(high))) * width / REFERENCE_WIDTH
        scale = long_side / max(x2 - x1, y2 - y1)
        w, h = min(width, max(3, round((x2 - x1) * scale))), min(height, max(3, round((y2 - y1) * scale)))
        for _try in range(30):
            floor = height / 3 if rng.random() < GROUND_SHARE else 0.0
            bottom = round(rng.uniform(max(floor, h), height))
            left = int(rng.integers(0, width - w + 1))
            box = (left, bottom - h, left + w, bottom)
            if not any(box[0] < p.box[2] and p.box[0] < box[2] and box[1] < p.box[3] and p.box[1] < box[3] for p in placed):
                break
        else:
            continue  # no free place: one object fewer
        placed.append(
            Placement(
                cutout=k,
                box=box,
                flip=bool(rng.random() < 0.5),
                gamma=float(math.exp(rng.uniform(math.log(0.7), math.log(1.4)))),
                contrast=float(rng.uniform(0.75, 1.25)),
                brightness=float(rng.uniform(-35, 35)),
                blur_sigma=float(rng.uniform(0.3, 1.2)) if rng.random() < 0.5 else 0.0,
                noise_sigma=float(rng.uniform(0, 4)),
                noise_seed=int(rng.integers(2**31)),
            )
        )
    return tuple(placed)


def plan_images(
    count: int, seed: int, cutouts: list[Cutout], backgrounds: list[Background], indexes: list[ClipIndex]
) -> list[ImagePlan]:
    """Image i draws from its own generator (seed, i): its background, cut-outs and transforms."""
    plans = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        split = "val" if i % VAL_EVERY == VAL_EVERY - 1 else "train"
        clips = [k for k, index in enumerate(indexes) if (index.splits == split).any()]
        if not clips:
            raise TrainingDataError(f"no background clip has {split} frames")
        weights = np.array([backgrounds[k].weight for k in clips])
        k = clips[rng.choice(len(clips), p=weights / weights.sum())]
        frame = int(rng.choice(np.flatnonzero(indexes[k].splits == split)))
        stem = f"{i:05d}_{Path(backgrounds[k].clip).stem}_{frame:05d}"
        plans.append(ImagePlan(stem, split, k, frame, _place(rng, cutouts, indexes[k].size)))
    return plans


# ---------------------------------------------------------------------------------------------
# Pixels


def relight(pixels: np.ndarray, p: Placement) -> np.ndarray:
    """The object under other light: gamma, then contrast about mid-grey, then brightness, then blur and noise."""
    lit = 255.0 * (np.clip(pixels, 0, 255) / 255.0) ** p.gamma
    lit = (lit - 128.0) * p.contrast + 128.0 + p.brightness
    if p.blur_sigma > 0:
        lit = cv2.GaussianBlur(lit, (0, 0), p.blur_sigma)
    if p.noise_sigma > 0:
        lit = lit + np.random.default_rng(p.noise_seed).normal(0.0, p.noise_sigma, lit.shape)
    return np.clip(lit, 0, 255).astype(np.float32)


Box = tuple[int, int, int, int]


def render(
    background: np.ndarray, plan: ImagePlan, sprites: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, list[tuple[Placement, Box]], np.ndarray]:
    """The composited image, [(placement, label box)] of the objects pasted, and (h, w) bool of
    the pixels they cover (alpha > 0.5: also what each label box bounds)."""
    image = background.copy()
    covered = np.zeros(image.shape[:2], bool)
    pasted = []
    for p in plan.placements:
        pixels, alpha = sprites[p.cutout]
        if p.flip:
            pixels, alpha = pixels[:, ::-1], alpha[:, ::-1]
        left, top, right, bottom = p.box
        pixels, alpha = scenes.scale_sprite(np.ascontiguousarray(pixels), np.ascontiguousarray(alpha), right - left, bottom - top)
        solid = alpha > 0.5
        rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
        if len(rows) < MIN_BOX_PX or len(cols) < MIN_BOX_PX or rows[-1] - rows[0] < MIN_BOX_PX or cols[-1] - cols[0] < MIN_BOX_PX:
            continue  # too small to label
        scenes.paste(image, relight(pixels, p), alpha, p.box)
        covered[top:bottom, left:right] |= solid
        pasted.append((p, (left + int(cols[0]), top + int(rows[0]), left + int(cols[-1]) + 1, top + int(rows[-1]) + 1)))
    return image, pasted, covered


def visible(labels: Labels, covered: np.ndarray) -> tuple[Labels, int]:
    """The labels not mostly under pasted objects, and how many were dropped."""
    keep = np.ones(len(labels), bool)
    for i, (x1, y1, x2, y2) in enumerate(labels.xyxy):
        region = covered[max(int(y1), 0) : max(math.ceil(y2), 0), max(int(x1), 0) : max(math.ceil(x2), 0)]
        keep[i] = not region.size or region.mean() < COVERED_DROP
    return Labels(labels.class_id[keep], labels.xyxy[keep]), int((~keep).sum())


# ---------------------------------------------------------------------------------------------
# Writing


def _frames(clip: str, wanted: set[int]):
    """(index, BGR frame) of the wanted frames of a clip, in order."""
    last = max(wanted)
    for i, frame in enumerate(scenes.iter_clip(clip)):
        if i in wanted:
            yield i, frame
        if i >= last:
            return


def _write(dataset, plan, image, labels, pasted, background, index, cutouts, composites) -> None:
    source = Source(
        image="",
        kind="synthetic",
        camera=Path(background.clip).stem,
        source=background.clip,
        stream_time_s=round(float(index.times[plan.frame]), 3),
        note=f"frame {plan.frame}; cut-outs: {', '.join(cutouts[p.cutout].id for p, _ in pasted) or 'none'}",
    )
    item = dataset.add(plan.split, plan.stem, image, labels, source)
    objects = [
        {"cutout": cutouts[p.cutout].id, "class": cutouts[p.cutout].class_name, "xyxy": list(box), "placed": list(p.box)}
        | {key: round(getattr(p, key), 3) for key in ("gamma", "contrast", "brightness", "blur_sigma", "noise_sigma")}
        | {"flip": p.flip}
        for p, box in pasted
    ]
    record = {
        "image": str(item.image.relative_to(dataset.root)),
        "clip": background.clip,
        "frame": plan.frame,
        "objects": objects,
    }
    composites.write(json.dumps(record) + "\n")


def _run_clip(k, plans, detector, sprites, cutouts, backgrounds, indexes, dataset, composites, summary) -> None:
    """Label the clip's wanted frames with the base model, BATCH at a time, and write their images."""
    mine = [plan for plan in plans if plan.clip == k]
    if not mine:
        return
    background, class_of = backgrounds[k], default_classes(detector.names)
    frames = _frames(background.clip, {plan.frame for plan in mine})
    while batch := list(itertools.islice(frames, BATCH)):
        found = [Detections.empty()] * len(batch) if background.empty_only else detector.detect_batch([f for _, f in batch])
        for (index, frame), detections in zip(batch, found):
            mapped = class_of[detections.class_id]
            own = Labels(
                np.concatenate([mapped[mapped >= 0], background.labels.class_id]).astype(np.int32),
                np.concatenate([detections.xyxy[mapped >= 0], background.labels.xyxy]).astype(np.float32),
            )
            for plan in (plan for plan in mine if plan.frame == index):
                image, pasted, covered = render(frame, plan, sprites)
                kept, dropped = visible(own, covered)
                ids = np.array([CLASSES.index(cutouts[p.cutout].class_name) for p, _ in pasted], np.int32)
                boxes = np.array([box for _, box in pasted], np.float32).reshape(-1, 4)
                labels = Labels(np.concatenate([kept.class_id, ids]), np.concatenate([kept.xyxy, boxes]))
                _write(dataset, plan, image, labels, pasted, background, indexes[k], cutouts, composites)
                summary.images[plan.split] += 1
                summary.backgrounds[Path(background.clip).name] += 1
                summary.boxes.update((plan.split, CLASSES[c]) for c in labels.class_id)
                summary.pasted.update(cutouts[p.cutout].id for p, _ in pasted)
                summary.without_cutout += not pasted
                summary.dropped += dropped


def generate(out: Path, images: int = 600, seed: int = 0, catalogue: Path = CATALOGUE, model: Path = MODEL) -> Summary:
    """Write the dataset to `out` (a new or empty folder); returns its counts and digest."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise TrainingDataError(f"{out}: not empty; give a new folder (a dataset is made whole, never added to)")
    cutouts, backgrounds = load_catalogue(catalogue)
    indexes = [index_clip(background) for background in backgrounds]
    plans = plan_images(images, seed, cutouts, backgrounds, indexes)
    sprites = [scenes.cut_sprite(cutout.source, cutout.feather_px) for cutout in cutouts]
    detector = OnnxDetector(model, min_score=MIN_SCORE, nms_iou=NMS_IOU)
    dataset = YoloDataset.create(out, CLASSES)
    summary = Summary()
    with (out / "composites.jsonl").open("w", encoding="utf-8") as composites:
        for k in range(len(backgrounds)):
            _run_clip(k, plans, detector, sprites, cutouts, backgrounds, indexes, dataset, composites, summary)
    summary.digest = dataset.digest()
    return summary


def report(summary: Summary, out: Path, seconds: float) -> str:
    total = sum(summary.images.values())
    lines = [
        f"wrote {out}: {total} images ({', '.join(f'{summary.images[s]} {s}' for s in SPLITS)}; "
        f"{summary.without_cutout} without a cut-out) in {seconds:.1f} s",
        f"{'class':<14}" + "".join(f"{s:>8}" for s in SPLITS),
        *(f"{name:<14}" + "".join(f"{summary.boxes[(s, name)]:>8}" for s in SPLITS) for name in CLASSES),
        "backgrounds: " + ", ".join(f"{clip} {n}" for clip, n in summary.backgrounds.most_common()),
        "pasted: " + ", ".join(f"{cutout} {n}" for cutout, n in sorted(summary.pasted.items())),
        f"pre-labels dropped under pasted objects: {summary.dropped}",
        f"digest (sha256 of images and labels): {summary.digest}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write (new or empty)")
    parser.add_argument("--images", type=int, default=600, help="images to write (default: %(default)s)")
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives the same bytes (default: %(default)s)"
    )
    parser.add_argument("--catalogue", type=Path, default=CATALOGUE, help="cut-outs and backgrounds (default: %(default)s)")
    parser.add_argument(
        "--model", type=Path, default=MODEL, help="base model that pre-labels the backgrounds (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error("--images must be at least 1")
    started = time.monotonic()
    try:
        summary = generate(args.out, args.images, args.seed, args.catalogue, args.model)
    except (TrainingDataError, scenes.ScenarioError, DetectorError, OSError, av.error.FFmpegError) as exc:
        print(f"make_training_data: error: {exc}", file=sys.stderr)
        return 1
    print(report(summary, args.out, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
