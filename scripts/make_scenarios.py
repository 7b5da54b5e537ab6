#!/usr/bin/env python3
"""Composite scenario clips with known ground truth from real footage.

    python scripts/make_scenarios.py [--out sample_videos/generated] [--force] [NAME ...]

Each `sample_videos/scenarios/<name>.yaml` becomes `<out>/<name>.mp4` (768x576, 10 fps, H.264
yuv420p, regular timestamps) and `<out>/<name>.gt.yaml` (its ground truth, in the format of
sample_videos/README.md). A real base clip (vtest.avi) plays underneath; sprites cut from real
frames or stills are pasted on top with a feathered alpha edge, moved along linearly
interpolated keyframes, shown between `appear_s` and `disappear_s`, drawn in `z` order.
`sprites_from: <scenario>` draws another scenario's sprites first (then the file's own), and
`nuisances:` (scripts/nuisances.py) transforms the composited frames over time ranges: lighting,
weather, compression, camera motion, tampering. Scenarios named `nuisance-*` make up the
robustness suite (scripts/robustness.py, tests/test_robustness.py), not tests/test_scenarios.py.

Rendering is deterministic (same definition and assets -> same frames). A clip is skipped when
`<out>/<name>.stamp.json` records the same definition hash and generator version; `--force`
regenerates anyway. Tests import `generate`, `render_frames` and `load_definition` from here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling module, also when loaded by path (tests)
import nuisances  # noqa: E402

GENERATOR_VERSION = "1"
ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = ROOT / "sample_videos" / "scenarios"
DEFAULT_OUT = ROOT / "sample_videos" / "generated"
MAX_DURATION_S = 75.0
NUISANCE_PREFIX = "nuisance-"  # the robustness suite's scenarios (scripts/robustness.py)
ENCODE_OPTIONS = {"crf": "18", "preset": "veryfast", "tune": "film"}


class ScenarioError(ValueError):
    """A scenario definition that cannot be rendered; the message names the problem."""


# ---------------------------------------------------------------------------------------------
# Definition


@dataclass(frozen=True)
class Keyframe:
    t: float
    x: float  # bottom-centre of the sprite, output pixels
    y: float
    scale: float


@dataclass(frozen=True)
class SpriteSource:
    clip: str | None  # video path relative to the repo root, or None for a still
    image: str | None
    frame: int
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in source pixels (x2, y2 exclusive)
    mask_background: tuple[int, ...] = ()  # frames whose median is the clean plate for the mask
    mask_threshold: int = 30
    mask_polygon: tuple[tuple[int, int], ...] = ()  # outline in source pixels; alpha 0 outside
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel gain (B, G, R): the object repainted


@dataclass(frozen=True)
class Sprite:
    id: str
    source: SpriteSource
    keyframes: tuple[Keyframe, ...]
    appear_s: float = 0.0
    disappear_s: float | None = None
    z: int = 0
    feather_px: int = 3


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    duration_s: float
    base_clip: str
    base_start_s: float
    sprites: tuple[Sprite, ...]
    ground_truth: dict[str, Any]
    note: str = ""
    raw_digest: str = ""
    size: tuple[int, int] = (768, 576)
    fps: int = 10
    nuisances: tuple[nuisances.Nuisance, ...] = ()

    @property
    def frame_count(self) -> int:
        return int(round(self.duration_s * self.fps))


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


def scenario_path(name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
        raise ScenarioError(f"no scenario {str(name_or_path)!r} (known: {known})")
    return path


def scenario_names(*, nuisance: bool) -> list[str]:
    """The committed scenarios: the robustness suite's (`nuisance-*`) or the others."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml") if p.stem.startswith(NUISANCE_PREFIX) == nuisance)


def _need(mapping: dict, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ScenarioError(f"{where}: missing key {key!r}")
    return mapping[key]


def parse_sprite_source(src: dict, where: str) -> SpriteSource:
    """A sprite's `source` mapping (a still or a clip frame, box, mask, tint; sample_videos/README.md),
    checked; `where` names it in errors. scripts/make_training_data.py reads its cut-outs with it too."""
    if not isinstance(src, dict) or ("clip" in src) == ("image" in src):
        raise ScenarioError(f"{where}: give exactly one of clip or image")
    box = tuple(int(v) for v in _need(src, "box", where))
    if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
        raise ScenarioError(f"{where}.box must be [x1, y1, x2, y2] with x2 > x1, y2 > y1, got {list(box)}")
    mask = src.get("mask") or {}
    source = SpriteSource(
        clip=src.get("clip"),
        image=src.get("image"),
        frame=int(src.get("frame", 0)),
        box=box,
        mask_background=tuple(int(f) for f in mask.get("background_frames", ())),
        mask_threshold=int(mask.get("threshold", 30)),
        mask_polygon=tuple((int(x), int(y)) for x, y in mask.get("polygon", ())),
        tint=tuple(float(v) for v in src.get("tint", (1.0, 1.0, 1.0))),
    )
    if len(source.tint) != 3 or not all(0 <= v <= 4 for v in source.tint):
        raise ScenarioError(f"{where}.tint must be three gains [b, g, r] in 0..4, got {list(source.tint)}")
    if source.mask_polygon and len(source.mask_polygon) < 3:
        raise ScenarioError(f"{where}.mask.polygon needs at least 3 points")
    return source


def load_definition(name_or_path: str | Path) -> Scenario:
    path = scenario_path(name_or_path)
    raw_bytes = path.read_bytes()
    try:
        data = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    where = str(path)
    name = data.get("name", path.stem)
    duration = float(_need(data, "duration_s", where))
    if not 0 < duration <= MAX_DURATION_S:
        raise ScenarioError(f"{where}: duration_s must be in (0, {MAX_DURATION_S}], got {duration}")
    base = _need(data, "base", where)
    sprites, extra_digest = [], b""
    if data.get("sprites_from"):
        # Reuse another scenario's sprites (the van of parking-stop under a cloud); its
        # definition is part of this one's digest, so editing it renders this clip again.
        reused = load_definition(data["sprites_from"])
        sprites.extend(reused.sprites)
        extra_digest += reused.path.read_bytes()
    for i, item in enumerate(data.get("sprites") or []):
        sw = f"{where}: sprites[{i}]"
        source = parse_sprite_source(_need(item, "source", sw), sw + ".source")
        keyframes, scale = [], 1.0
        for k, kf in enumerate(_need(item, "keyframes", sw)):
            scale = float(kf.get("scale", scale))
            keyframes.append(Keyframe(float(_need(kf, "t", f"{sw}.keyframes[{k}]")), float(kf["x"]), float(kf["y"]), scale))
        if not keyframes:
            raise ScenarioError(f"{sw}: needs at least one keyframe")
        if any(b.t < a.t for a, b in zip(keyframes, keyframes[1:])):
            raise ScenarioError(f"{sw}: keyframe times must not decrease")
        sprites.append(
            Sprite(
                id=str(item.get("id", f"sprite{i}")),
                source=source,
                keyframes=tuple(keyframes),
                appear_s=float(item.get("appear_s", 0.0)),
                disappear_s=None if item.get("disappear_s") is None else float(item["disappear_s"]),
                z=int(item.get("z", 0)),
                feather_px=int(item.get("feather_px", 3)),
            )
        )
    gt = _need(data, "ground_truth", where)
    if not isinstance(gt.get("events"), list):
        raise ScenarioError(f"{where}: ground_truth.events must be a list (may be empty)")
    try:
        declared = tuple(
            nuisances.parse_nuisance(item, f"{where}: nuisances[{i}]") for i, item in enumerate(data.get("nuisances") or [])
        )
    except nuisances.NuisanceError as exc:
        raise ScenarioError(str(exc)) from None
    if declared:
        extra_digest += nuisances.VERSION.encode()
    # Without sprites_from and nuisances the digest is what it always was: no needless re-renders.
    digest = hashlib.sha256(raw_bytes + extra_digest + GENERATOR_VERSION.encode()).hexdigest()
    return Scenario(
        name=name,
        path=path,
        duration_s=duration,
        base_clip=str(_need(base, "clip", where + ": base")),
        base_start_s=float(base.get("start_s", 0.0)),
        sprites=tuple(sprites),
        ground_truth=gt,
        note=str(data.get("note", "")),
        raw_digest=digest,
        nuisances=declared,
    )


# ---------------------------------------------------------------------------------------------
# Real footage


def iter_clip(path: str | Path) -> Iterator[np.ndarray]:
    """Decoded BGR frames of a clip, in order."""
    with av.open(str(_resolve(path))) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="bgr24")


@lru_cache(maxsize=8)
def _clip_frames(path: str, indices: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    wanted = set(indices)
    found: dict[int, np.ndarray] = {}
    for i, frame in enumerate(iter_clip(path)):
        if i in wanted:
            found[i] = frame
            if len(found) == len(wanted):
                break
    missing = sorted(wanted - set(found))
    if missing:
        raise ScenarioError(f"{path}: has no frame(s) {missing}")
    return tuple(found[i] for i in indices)


def cut_sprite(source: SpriteSource, feather_px: int) -> tuple[np.ndarray, np.ndarray]:
    """The sprite's BGR pixels (float32) and alpha (float32 0..1, feathered edges)."""
    if source.image is not None:
        image = cv2.imread(str(_resolve(source.image)), cv2.IMREAD_COLOR)
        if image is None:
            raise ScenarioError(f"cannot read image {source.image}")
    else:
        image = _clip_frames(source.clip, (source.frame,))[0]
    x1, y1, x2, y2 = source.box
    h, w = image.shape[:2]
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        raise ScenarioError(f"box {list(source.box)} is outside the {w}x{h} source {source.clip or source.image}")
    pixels = np.clip(image[y1:y2, x1:x2].astype(np.float32) * np.float32(source.tint), 0, 255)
    alpha = np.ones(pixels.shape[:2], np.float32)
    if source.mask_background:
        # Silhouette: what differs from a clean plate (median of frames without the object).
        plates = _clip_frames(source.clip, source.mask_background)
        plate = np.median(np.stack([p[y1:y2, x1:x2] for p in plates]), axis=0).astype(np.float32)
        diff = np.abs(pixels - plate).max(axis=2)
        mask = (diff > source.mask_threshold).astype(np.uint8)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if count > 1:  # keep the largest blob: the object, not noise
            mask = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
        mask = cv2.dilate(mask, kernel)
        alpha = mask.astype(np.float32)
    if source.mask_polygon:
        # An outline drawn by hand: for footage without a clean plate (a panning camera) or to
        # leave out part of the object (the rider of a bicycle).
        outline = np.zeros_like(alpha)
        cv2.fillPoly(outline, [np.array(source.mask_polygon, np.int32) - [x1, y1]], 1.0)
        alpha = np.minimum(alpha, outline)
    if feather_px > 0:
        f = feather_px
        border = np.zeros_like(alpha)
        border[f:-f, f:-f] = 1.0
        alpha = np.minimum(alpha, border)
        k = 2 * f + 1
        alpha = cv2.GaussianBlur(alpha, (k, k), 0)
    return pixels, alpha


def _interpolate(keyframes: tuple[Keyframe, ...], t: float) -> tuple[float, float, float]:
    if t <= keyframes[0].t:
        k = keyframes[0]
        return k.x, k.y, k.scale
    for a, b in zip(keyframes, keyframes[1:]):
        if a.t <= t <= b.t:
            u = 0.0 if b.t == a.t else (t - a.t) / (b.t - a.t)
            return a.x + u * (b.x - a.x), a.y + u * (b.y - a.y), a.scale + u * (b.scale - a.scale)
    k = keyframes[-1]
    return k.x, k.y, k.scale


def sprite_box(sprite: Sprite, t: float) -> tuple[int, int, int, int] | None:
    """Where the sprite is drawn at stream time t (output pixels, x2/y2 exclusive), or None when
    it is not shown. The box may extend past the frame."""
    if t < sprite.appear_s or (sprite.disappear_s is not None and t >= sprite.disappear_s):
        return None
    x, y, scale = _interpolate(sprite.keyframes, t)
    x1, y1, x2, y2 = sprite.source.box
    w = max(1, int(round((x2 - x1) * scale)))
    h = max(1, int(round((y2 - y1) * scale)))
    left = int(math.floor(x - w / 2 + 0.5))
    top = int(math.floor(y + 0.5)) - h
    return left, top, left + w, top + h


def scale_sprite(pixels: np.ndarray, alpha: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A cut sprite's pixels and alpha resized to w x h (area averaging when it shrinks)."""
    if (w, h) == pixels.shape[1::-1]:
        return pixels, alpha
    interp = cv2.INTER_AREA if w < pixels.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(pixels, (w, h), interpolation=interp), np.clip(cv2.resize(alpha, (w, h), interpolation=interp), 0, 1)


class _Prepared:
    def __init__(self, sprite: Sprite) -> None:
        self.sprite = sprite
        self.pixels, self.alpha = cut_sprite(sprite.source, sprite.feather_px)
        self._scaled: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def scaled(self, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        if (w, h) not in self._scaled:
            self._scaled[(w, h)] = scale_sprite(self.pixels, self.alpha, w, h)
        return self._scaled[(w, h)]


def composite(frame: np.ndarray, prepared: _Prepared, box: tuple[int, int, int, int]) -> None:
    """Paste a prepared sprite at box (in place), clipped to the frame."""
    left, top, right, bottom = box
    paste(frame, *prepared.scaled(right - left, bottom - top), box)


def paste(frame: np.ndarray, pixels: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Alpha-blend sprite pixels (float32 BGR) and alpha (float32 0..1), already of the box's size,
    into `frame` at box (in place), clipped to the frame."""
    left, top, right, bottom = box
    fh, fw = frame.shape[:2]
    x1, y1, x2, y2 = max(left, 0), max(top, 0), min(right, fw), min(bottom, fh)
    if x1 >= x2 or y1 >= y2:
        return
    sp = pixels[y1 - top : y2 - top, x1 - left : x2 - left]
    sa = alpha[y1 - top : y2 - top, x1 - left : x2 - left, None]
    region = frame[y1:y2, x1:x2].astype(np.float32)
    frame[y1:y2, x1:x2] = np.clip(region * (1 - sa) + sp * sa + 0.5, 0, 255).astype(np.uint8)


def render_frames(scenario: Scenario, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """The scenario's frames (BGR uint8), deterministically."""
    prepared = [_Prepared(s) for s in sorted(scenario.sprites, key=lambda s: s.z)]  # stable: file order within a z
    count = scenario.frame_count if max_frames is None else min(max_frames, scenario.frame_count)
    skip = int(round(scenario.base_start_s * scenario.fps))
    width, height = scenario.size
    produced = 0
    for i, base in enumerate(iter_clip(scenario.base_clip)):
        if i < skip:
            continue
        if produced >= count:
            return
        if base.shape[1::-1] != (width, height):
            base = cv2.resize(base, (width, height), interpolation=cv2.INTER_AREA)
        frame = base.copy()
        t = produced / scenario.fps
        for item in prepared:
            box = sprite_box(item.sprite, t)
            if box is not None:
                composite(frame, item, box)
        yield nuisances.apply_all(scenario.nuisances, frame, t, produced)
        produced += 1
    if produced < count:
        raise ScenarioError(
            f"{scenario.path}: base clip {scenario.base_clip} ends after {produced} frames from start_s "
            f"{scenario.base_start_s}; duration_s {scenario.duration_s} needs {count}"
        )


# ---------------------------------------------------------------------------------------------
# Output


def encode(frames: Iterator[np.ndarray], path: Path, fps: int, size: tuple[int, int]) -> int:
    """H.264 yuv420p with fixed settings; pts = frame index (time base 1/fps)."""
    tmp = path.with_name(path.name + ".part")
    count = 0
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options=dict(ENCODE_OPTIONS))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.time_base = Fraction(1, fps)
        stream.thread_count = 1  # single-threaded x264: bit-exact across runs
        for frame in frames:
            video = av.VideoFrame.from_ndarray(frame, format="bgr24")
            video.pts = count
            video.time_base = Fraction(1, fps)
            for packet in stream.encode(video):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return count


def ground_truth_document(scenario: Scenario, clip_path: Path) -> dict[str, Any]:
    try:
        clip = str(clip_path.resolve().relative_to(ROOT))
    except ValueError:
        clip = str(clip_path)
    document = {"clip": clip, "camera": scenario.ground_truth.get("camera", scenario.name), "note": scenario.note.strip()}
    # the robustness suite's per-nuisance table (detector/suite_scoring.py): the transforms, and
    # what sprites play (`ground_truth.nuisances`: occlusion, identity)
    played = [*scenario.ground_truth.get("nuisances", []), *(n.type for n in scenario.nuisances)]
    if played:
        document["nuisances"] = list(dict.fromkeys(played))
    return {**document, "events": scenario.ground_truth["events"]}


def write_ground_truth(scenario: Scenario, video: Path) -> None:
    """`<name>.gt.yaml` next to the video, rewritten only when its text changes: it is cheap to
    derive, so a new field reaches clips whose video is up to date without rendering them again."""
    path = video.with_suffix(".gt.yaml")
    text = yaml.safe_dump(ground_truth_document(scenario, video), sort_keys=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _stamp(scenario: Scenario) -> dict[str, str]:
    return {"definition_sha256": scenario.raw_digest, "generator_version": GENERATOR_VERSION}


def is_up_to_date(scenario: Scenario, out_dir: Path) -> bool:
    stamp = out_dir / f"{scenario.name}.stamp.json"
    video, gt = out_dir / f"{scenario.name}.mp4", out_dir / f"{scenario.name}.gt.yaml"
    if not (stamp.exists() and video.exists() and gt.exists()):
        return False
    try:
        return json.loads(stamp.read_text()) == _stamp(scenario)
    except (OSError, ValueError):
        return False


def generate(
    name_or_path: str | Path, out_dir: str | Path = DEFAULT_OUT, *, force: bool = False, max_frames: int | None = None
) -> Path:
    """Render one scenario to `<out_dir>/<name>.mp4` (+ .gt.yaml, .stamp.json); returns the mp4 path.

    `max_frames` truncates the clip (for tests; a truncated clip is never stamped up to date)."""
    scenario = load_definition(name_or_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / f"{scenario.name}.mp4"
    if max_frames is None and not force and is_up_to_date(scenario, out_dir):
        write_ground_truth(scenario, video)
        return video
    stamp = out_dir / f"{scenario.name}.stamp.json"
    stamp.unlink(missing_ok=True)
    encode(render_frames(scenario, max_frames), video, scenario.fps, scenario.size)
    write_ground_truth(scenario, video)
    if max_frames is None:
        stamp.write_text(json.dumps(_stamp(scenario), indent=1) + "\n")
    return video


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="scenario names (default: all in sample_videos/scenarios)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="regenerate even when up to date")
    args = parser.parse_args(argv)
    names = args.names or scenario_names(nuisance=False) + scenario_names(nuisance=True)
    try:
        for name in names:
            scenario = load_definition(name)
            fresh = not args.force and is_up_to_date(scenario, args.out)
            path = generate(name, args.out, force=args.force)  # an up-to-date clip: its ground truth only
            if fresh:
                print(f"{scenario.name}: up to date")
            else:
                print(f"{scenario.name}: wrote {path} ({scenario.frame_count} frames, {scenario.duration_s:g} s)")
    except (ScenarioError, OSError, av.error.FFmpegError) as exc:
        print(f"make_scenarios: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
