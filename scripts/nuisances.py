"""Nuisances a street camera meets, as deterministic transforms of composited scenario frames.

A scenario declares them in file order (applied after the sprites are drawn, each on the result
of the previous one):

    nuisances:
      - {type: dim, from_s: 12, to_s: 24, ramp_s: 3, gain: 0.6}   # a cloud
      - {type: knock, from_s: 20, dx: 14, dy: 6}                   # to_s omitted: to the end

`from_s` (default 0) / `to_s` (default: end of clip) bound the nuisance in stream seconds; over
`ramp_s` (default 0) at both ends its strength rises from 0 to 1 and falls back (a cloud
drifting in, a PTZ camera panning); `seed` (default 0) seeds its randomness. Any other key is a
parameter of the transform (see NUISANCES; an unknown one is an error).

Every transform is a pure function `transform(frame, at, **params) -> frame` of a BGR uint8
frame and a `Moment` (time since from_s, strength, a generator seeded by (seed, frame index)),
so a clip renders the same every time and any frame can be rendered on its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import cv2
import numpy as np

VERSION = "1"  # bump when a transform's output changes: clips using nuisances are rendered again


@dataclass(frozen=True)
class Moment:
    t: float  # seconds since the nuisance began
    strength: float  # 0..1: the ramp envelope
    rng: np.random.Generator  # seeded by (seed, frame index): per-frame randomness
    seed: int  # for randomness that must persist across frames (snowflakes)


# ---------------------------------------------------------------------------------------------
# Helpers


def _blend(value: float, target: float, strength: float) -> float:
    return value + (target - value) * strength


def _scale(frame: np.ndarray, factors: np.ndarray, lift: float = 0.0) -> np.ndarray:
    """frame * factors (per pixel and/or channel) + lift, rounded and saturated to uint8."""
    return np.clip(frame.astype(np.float32) * factors + (lift + 0.5), 0, 255).astype(np.uint8)


def _warp(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return cv2.warpAffine(frame, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def _blob(shape: tuple[int, ...], centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """A soft elliptical spot (float32 HxW, 1 at the centre, Gaussian fall-off)."""
    ys, xs = np.ogrid[: shape[0], : shape[1]]
    d2 = ((xs - centre[0]) / radii[0]) ** 2 + ((ys - centre[1]) / radii[1]) ** 2
    return np.exp(-0.5 * d2 * 4).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Illumination


def exposure(
    frame: np.ndarray, at: Moment, gain: float = 1.0, white_balance: tuple[float, float, float] = (1, 1, 1), lift: float = 0
) -> np.ndarray:
    """Global gain (cloud, dusk, auto-exposure jump, flash), per-channel B, G, R white balance
    and an added lift, all scaled by the strength."""
    factors = np.array([_blend(1.0, gain * wb, at.strength) for wb in white_balance], np.float32)
    return _scale(frame, factors, lift * at.strength)


def noise(frame: np.ndarray, at: Moment, sigma: float = 8.0) -> np.ndarray:
    """Gaussian sensor noise (grey levels), independent per pixel, channel and frame."""
    jitter = at.rng.standard_normal(frame.shape, dtype=np.float32) * (sigma * at.strength)
    return np.clip(frame.astype(np.float32) + jitter + 0.5, 0, 255).astype(np.uint8)


def night(frame: np.ndarray, at: Moment, gain: float = 0.3, sigma: float = 7.0) -> np.ndarray:
    """Night: a dark scene and the sensor noise of high gain."""
    return noise(exposure(frame, at, gain=gain), at, sigma=sigma)


def ir_mono(frame: np.ndarray, at: Moment, contrast: float = 1.3, lift: float = -20) -> np.ndarray:
    """An IR camera switched to monochrome: one grey channel (foliage bright: near infrared is
    reflected by leaves, hence the weight on green and red), more contrast. Strength blends from
    colour (a real switch is sudden: ramp_s 0)."""
    grey = cv2.transform(frame, np.array([[0.10, 0.55, 0.35]], np.float32))
    ir = cv2.cvtColor(cv2.convertScaleAbs(grey, alpha=contrast, beta=lift), cv2.COLOR_GRAY2BGR)
    return ir if at.strength >= 1 else cv2.addWeighted(ir, at.strength, frame, 1 - at.strength, 0)


def shadow(
    frame: np.ndarray,
    at: Moment,
    gain: float = 0.5,
    size_px: tuple[float, float] = (140, 50),
    start: tuple[float, float] = (0.0, 0.6),
    velocity_px_s: tuple[float, float] = (60, 0),
) -> np.ndarray:
    """A soft shadow (of a person or vehicle out of view) moving from `start` (normalised
    centre) at `velocity_px_s`."""
    h, w = frame.shape[:2]
    centre = (start[0] * w + velocity_px_s[0] * at.t, start[1] * h + velocity_px_s[1] * at.t)
    darkening = 1 - (1 - gain) * at.strength * _blob(frame.shape, centre, size_px)
    return _scale(frame, darkening[..., None])


def headlights(
    frame: np.ndarray,
    at: Moment,
    period_s: float = 6.0,
    y: float = 0.55,
    radii_px: tuple[float, float] = (180, 70),
    gain: float = 3.0,
) -> np.ndarray:
    """Headlights sweeping across the scene at row `y` (normalised), one pass per period: a bright
    moving spot (at night, after `night`)."""
    h, w = frame.shape[:2]
    travel = (at.t % period_s) / period_s
    centre = (-radii_px[0] + travel * (w + 2 * radii_px[0]), y * h)
    light = _blob(frame.shape, centre, radii_px) * at.strength
    return _scale(frame, (1 + (gain - 1) * light)[..., None])


# ---------------------------------------------------------------------------------------------
# Weather and image quality


def rain(
    frame: np.ndarray, at: Moment, drops: int = 500, length_px: int = 22, angle_deg: float = 75, brightness: float = 70
) -> np.ndarray:
    """Rain streaks: short bright slanted lines, new ones every frame, slightly blurred."""
    h, w = frame.shape[:2]
    count = int(drops * at.strength)
    heads = at.rng.uniform((0, 0), (w, h), size=(count, 2))
    step = length_px * np.array([np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))])
    lines = np.stack([heads, heads + step], axis=1).astype(np.int32)
    layer = np.zeros((h, w), np.uint8)
    cv2.polylines(layer, list(lines), False, int(brightness), 1, cv2.LINE_AA)
    layer = cv2.GaussianBlur(layer, (3, 3), 0)
    return cv2.add(exposure(frame, at, gain=0.85), cv2.cvtColor(layer, cv2.COLOR_GRAY2BGR))


def snow(frame: np.ndarray, at: Moment, flakes: int = 500, fall_px_s: float = 45, brightness: float = 255) -> np.ndarray:
    """Snowflakes falling (positions persist across frames: seeded by `seed` only; each flake
    falls at its own speed and sways sideways)."""
    h, w = frame.shape[:2]
    rng = np.random.default_rng(at.seed)
    x0, y0 = rng.uniform(0, w, flakes), rng.uniform(0, h, flakes)
    speed, phase = rng.uniform(0.5, 1.5, flakes), rng.uniform(0, 2 * np.pi, flakes)
    shown = rng.uniform(size=flakes) < at.strength
    xs = ((x0 + 8 * np.sin(at.t + phase)) % w).astype(np.int32)[shown]
    ys = ((y0 + fall_px_s * speed * at.t) % h).astype(np.int32)[shown]
    layer = np.zeros((h, w), np.float32)
    layer[ys, xs] = brightness
    layer = cv2.GaussianBlur(cv2.dilate(layer, np.ones((3, 3), np.uint8)), (3, 3), 0)[..., None]
    return np.clip(frame + layer * (1 - frame / 255.0) + 0.5, 0, 255).astype(np.uint8)  # screen blend


def veil(frame: np.ndarray, at: Moment, density: float = 0.6, level: float = 190, sigma: float = 0.0) -> np.ndarray:
    """Blend towards a uniform grey `level` (fog, low contrast; `cover`: a hand, a bag, spray
    paint), with an optional blur of the remaining detail."""
    a = density * at.strength
    veiled = cv2.convertScaleAbs(frame, alpha=1 - a, beta=a * level)
    return cv2.GaussianBlur(veiled, (0, 0), sigma) if sigma > 0 else veiled


def compression(frame: np.ndarray, at: Moment, quality: int = 8) -> np.ndarray:
    """Heavy compression: JPEG at a very low quality (8x8 blocks, ringing, flattened colour), the
    look of a starved H.264 stream's keyframes. On or off: the strength is not graded."""
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def blur(frame: np.ndarray, at: Moment, sigma: float = 3.0) -> np.ndarray:
    """A dirty or wet lens: Gaussian blur."""
    s = sigma * at.strength
    return cv2.GaussianBlur(frame, (0, 0), s) if s >= 0.3 else frame


def defocus(frame: np.ndarray, at: Moment, radius_px: float = 9.0) -> np.ndarray:
    """Defocused lens (tampering): a disk kernel, the shape of an out-of-focus point."""
    r = int(round(radius_px * at.strength))
    if r < 1:
        return frame
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)).astype(np.float32)
    return cv2.filter2D(frame, -1, disk / disk.sum(), borderType=cv2.BORDER_REFLECT101)


# ---------------------------------------------------------------------------------------------
# Camera motion


def sway(frame: np.ndarray, at: Moment, amplitude_px: float = 3.0, period_s: float = 2.5) -> np.ndarray:
    """A pole swaying in the wind: a continuous sub-pixel shift, mostly sideways."""
    phase = 2 * np.pi * at.t / period_s
    dx = amplitude_px * at.strength * np.sin(phase)
    dy = 0.5 * amplitude_px * at.strength * np.sin(0.7 * phase + 1.0)
    return _warp(frame, np.float32([[1, 0, dx], [0, 1, dy]]))


def view_shift(
    frame: np.ndarray, at: Moment, dx: float = 12, dy: float = 6, zoom: float = 1.0, rotate_deg: float = 0
) -> np.ndarray:
    """The view moved: shift (pixels), zoom and rotation about the centre. `knock` (a permanent
    knock, to_s left out) and `ptz` (a PTZ camera at another preset and back; ramp_s = pan time)."""
    h, w = frame.shape[:2]
    s = at.strength
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rotate_deg * s, _blend(1.0, zoom, s))
    matrix[:, 2] += (dx * s, dy * s)
    return _warp(frame, matrix)


# ---------------------------------------------------------------------------------------------
# The table

Transform = Callable[..., np.ndarray]

NUISANCES: dict[str, Transform] = {
    # illumination
    "dim": partial(exposure, gain=0.6),  # cloud, dusk: ramp_s for a gradual change
    "exposure_jump": partial(exposure, gain=1.35, white_balance=(1.15, 1.0, 0.85)),  # auto-exposure + white balance
    "flash": partial(exposure, gain=1.8, lift=70),  # one frame: to_s = from_s + 0.1
    "ir_mono": ir_mono,
    "shadow": shadow,
    "night": night,
    "headlights": headlights,
    # weather and image quality
    "rain": rain,
    "snow": snow,
    "fog": partial(veil, density=0.6, level=190),
    "noise": noise,
    "compression": compression,
    "blur": blur,
    # camera motion and tampering
    "sway": sway,
    "knock": partial(view_shift, dx=14, dy=6),
    "ptz": partial(view_shift, dx=-260, dy=90, zoom=1.8),
    "cover": partial(veil, density=0.96, level=20, sigma=6),
    "defocus": defocus,
}

_COMMON_KEYS = {"type", "from_s", "to_s", "ramp_s", "seed"}


class NuisanceError(ValueError):
    """A nuisance declaration that cannot be applied; the message names the problem."""


@dataclass(frozen=True)
class Nuisance:
    type: str
    from_s: float = 0.0
    to_s: float | None = None  # None: to the end of the clip
    ramp_s: float = 0.0
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def strength(self, t: float) -> float:
        """The envelope at stream time t: 0 outside [from_s, to_s), ramps of ramp_s at both ends."""
        if t < self.from_s or (self.to_s is not None and t >= self.to_s):
            return 0.0
        if self.ramp_s <= 0:
            return 1.0
        rise = (t - self.from_s) / self.ramp_s
        fall = np.inf if self.to_s is None else (self.to_s - t) / self.ramp_s
        return float(min(1.0, rise, fall))

    def apply(self, frame: np.ndarray, t: float, frame_index: int) -> np.ndarray:
        strength = self.strength(t)
        if strength <= 0:
            return frame
        at = Moment(t - self.from_s, strength, np.random.default_rng([self.seed, frame_index]), self.seed)
        return NUISANCES[self.type](frame, at, **self.params)


def parse_nuisance(item: Any, where: str) -> Nuisance:
    """A declaration (a mapping from the scenario YAML) checked against the transform's
    parameters."""
    if not isinstance(item, dict) or "type" not in item:
        raise NuisanceError(f"{where}: needs a mapping with a type")
    kind = item["type"]
    if kind not in NUISANCES:
        raise NuisanceError(f"{where}: unknown nuisance type {kind!r} (known: {', '.join(sorted(NUISANCES))})")
    params = {k: v for k, v in item.items() if k not in _COMMON_KEYS}
    accepted = set(list(inspect.signature(NUISANCES[kind]).parameters)[2:])  # after frame, at
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise NuisanceError(f"{where}: {kind} has no parameter(s) {unknown} (it takes: {', '.join(sorted(accepted))})")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    nuisance = Nuisance(
        type=kind,
        from_s=float(item.get("from_s", 0.0)),
        to_s=None if item.get("to_s") is None else float(item["to_s"]),
        ramp_s=float(item.get("ramp_s", 0.0)),
        seed=int(item.get("seed", 0)),
        params=params,
    )
    if nuisance.to_s is not None and nuisance.to_s <= nuisance.from_s:
        raise NuisanceError(f"{where}: to_s must be after from_s, got {nuisance.from_s:g}..{nuisance.to_s:g}")
    return nuisance


def apply_all(nuisances: tuple[Nuisance, ...], frame: np.ndarray, t: float, frame_index: int) -> np.ndarray:
    """The frame with every active nuisance applied, in declaration order."""
    for nuisance in nuisances:
        frame = nuisance.apply(frame, t, frame_index)
    return frame
