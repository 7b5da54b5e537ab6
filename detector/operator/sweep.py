"""`detector tune`: every combination of settings over cached detections, scored against ground truth.

    detector tune CONFIG --camera ID --gt GT [--gt GT2 ...] --set dwell_s=20,40,60 --set min_score=0.3,0.4

The model runs once per clip (detector/operator/cache.py, at the lowest threshold any
combination needs); each combination then replays only the rules (detector/operator/rules_only.py)
with a fresh tracker, engine and debouncers. Combinations are taken in the order given (the
first --set varies slowest), so the same inputs print the same table.
"""

import itertools
import math
import statistics
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from detector import scoring
from detector.config import AppConfig, CameraConfig
from detector.config.schema import VIOLATION_KEYS, TrackConfig, ViolationSettings, ViolationType
from detector.errors import ConfigError
from detector.operator.cache import cached_detections
from detector.operator.rules_only import replay_rules

TRACK_KEYS = ("settle_s", "tolerance", "match_iou")
FIXED_ORIGIN = datetime(2000, 1, 3, 12, 0, tzinfo=UTC)  # a Monday noon: irrelevant without schedules


@dataclass(frozen=True)
class Sweep:
    key: str  # "dwell_s", "illegal_parking.dwell_s", "track.settle_s"
    values: tuple[float, ...]


@dataclass(frozen=True)
class Clip:
    path: Path
    ground_truth: scoring.GroundTruth
    name: str


@dataclass(frozen=True)
class SweepRow:
    settings: tuple[tuple[str, float], ...]
    total: scoring.TypeScore  # summed over clips

    @property
    def rank_key(self) -> tuple:
        """Best first: highest F1, then lowest median latency."""
        f1 = -1.0 if self.total.f1 is None else self.total.f1
        latency = math.inf if self.total.latency_median_s is None else self.total.latency_median_s
        return (-f1, latency)


@dataclass(frozen=True)
class SweepResult:
    rows: list[SweepRow]
    best: int
    frames: int
    model_s: float  # building caches (0 when every clip was cached)
    rules_s: float  # all rules-only replays together
    built: int  # clips whose detections had to be computed


def parse_sets(items: list[str]) -> list[Sweep]:
    sweeps = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not text.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=V1,V2,... (e.g. dwell_s=20,40,60)")
        _check_key(key)
        values = []
        for raw in text.split(","):
            try:
                values.append(float(raw))
            except ValueError:
                raise ConfigError(f"--set {key}: {raw.strip()!r} is not a number") from None
        if len(set(values)) != len(values):
            raise ConfigError(f"--set {key}: a value is listed twice")
        if any(s.key == key for s in sweeps):
            raise ConfigError(f"--set {key}: given twice")
        sweeps.append(Sweep(key, tuple(values)))
    if not sweeps:
        raise ConfigError("give at least one --set KEY=V1,V2,...")
    return sweeps


def _check_key(key: str) -> None:
    allowed = (
        f"{', '.join(VIOLATION_KEYS)} (all types, or TYPE.KEY with TYPE one of "
        f"{', '.join(t.value for t in ViolationType)}), {', '.join('track.' + k for k in TRACK_KEYS)}"
    )
    head, _, tail = key.rpartition(".")
    if not head and tail in VIOLATION_KEYS:
        return
    if head == "track" and tail in TRACK_KEYS:
        return
    if head in {t.value for t in ViolationType} and tail in VIOLATION_KEYS:
        return
    raise ConfigError(f"--set {key}: not a settable key; use one of {allowed}")


def apply(config: AppConfig, camera_id: str, settings: dict[str, float]) -> tuple[AppConfig, CameraConfig]:
    """The config with `settings` applied to every zone of the camera (validated like the YAML)."""
    try:
        for key, value in settings.items():
            config = _apply_one(config, camera_id, key, value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"--set {key}={value:g}: {problems}") from None
    return config, config.camera(camera_id)


def _apply_one(config: AppConfig, camera_id: str, key: str, value: float) -> AppConfig:
    head, _, name = key.rpartition(".")
    if head == "track":
        track = TrackConfig.model_validate({**config.track.model_dump(), name: value})
        return config.model_copy(update={"track": track})
    types = [ViolationType(head)] if head else list(ViolationType)
    defaults = config.violations
    for violation in types:
        current = getattr(defaults, violation.value)
        updated = ViolationSettings.model_validate({**current.model_dump(), name: value})
        defaults = defaults.model_copy(update={violation.value: updated})
    cameras = []
    for camera in config.cameras:
        if camera.id == camera_id:
            camera = camera.model_copy(update={"zones": tuple(_zone_with(z, head, name, value) for z in camera.zones)})
        cameras.append(camera)
    return config.model_copy(update={"violations": defaults, "cameras": tuple(cameras)})


def _zone_with(zone, head: str, name: str, value: float):
    """A zone-level value overrides the type defaults for all the zone's types, so it is set too."""
    if head and getattr(zone, name) is None:
        return zone  # the type default set above applies
    if head and set(v.value for v in zone.violations) != {head}:
        raise ConfigError(
            f"zone {zone.id} sets {name} for all of its types ({', '.join(v.value for v in zone.violations)}); "
            f"sweep {name} without a type prefix"
        )
    return type(zone).model_validate({**zone.model_dump(), name: value})


def combinations(sweeps: list[Sweep]) -> list[dict[str, float]]:
    keys = [s.key for s in sweeps]
    return [dict(zip(keys, values)) for values in itertools.product(*(s.values for s in sweeps))]


def resolve_clips(camera: CameraConfig, gt_paths: list[Path], source: Path | None) -> list[Clip]:
    """Each ground-truth file with its clip: --source (one --gt only), else the file's `clip:`
    (relative to the working directory or to the file), else the camera's source."""
    if source is not None and len(gt_paths) != 1:
        raise ConfigError("--source goes with exactly one --gt (with several, each ground-truth file names its clip)")
    clips = []
    for gt_path in gt_paths:
        try:
            truth = scoring.load_ground_truth(gt_path)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if source is not None:
            path = Path(source)
        elif truth.clip:
            path = Path(truth.clip)
            if not path.is_file() and (Path(gt_path).parent / truth.clip).is_file():
                path = Path(gt_path).parent / truth.clip
        elif camera.is_file:
            path = Path(camera.source)
        else:
            raise ConfigError(f"{gt_path}: names no clip and camera {camera.id} is a live source; give --source")
        if not path.is_file():
            raise ConfigError(f"{gt_path}: clip not found: {path}")
        # every alarm of this run is the tuned camera's: score them whatever camera the file names
        clips.append(Clip(path, replace(truth, camera=None), Path(gt_path).name))
    return clips


def sweep(
    config: AppConfig,
    camera_id: str,
    sweeps: list[Sweep],
    clips: list[Clip],
    *,
    cache_dir: Path,
    origin: datetime = FIXED_ORIGIN,
    tolerance_s: float = scoring.DEFAULT_TOLERANCE_S,
    progress=None,
) -> SweepResult:
    config.camera(camera_id)  # KeyError -> the CLI's ConfigError
    combos = combinations(sweeps)
    variants = [apply(config, camera_id, combo) for combo in combos]
    threshold = min(c.model_threshold for c, _ in variants)  # the cache must cover every combination
    started = time.perf_counter()
    caches, built = [], 0
    for clip in clips:
        cache, was_built = cached_detections(config, config.camera(camera_id), clip.path, threshold, cache_dir, progress=progress)
        caches.append(cache)
        built += was_built
    model_s = time.perf_counter() - started if built else 0.0
    started = time.perf_counter()
    rows = []
    for combo, (variant, camera) in zip(combos, variants):
        scores = []
        for clip, cache in zip(clips, caches):
            alerts = replay_rules(variant, camera, cache, origin=origin)
            scores.append(scoring.score(alerts, clip.ground_truth, tolerance_s=tolerance_s))
        rows.append(SweepRow(tuple(combo.items()), _total(scores)))
    rules_s = time.perf_counter() - started
    best = min(range(len(rows)), key=lambda i: (rows[i].rank_key, i))
    return SweepResult(rows, best, sum(len(c) for c in caches), model_s, rules_s, built)


def _total(scores: list[scoring.Score]) -> scoring.TypeScore:
    rows = [s.overall for s in scores]
    latencies = [m.latency_s for s in scores for m in s.matches]
    return scoring.TypeScore(
        type="all",
        ground_truth=sum(r.ground_truth for r in rows),
        alarms=sum(r.alarms for r in rows),
        tp=sum(r.tp for r in rows),
        fp=sum(r.fp for r in rows),
        fn=sum(r.fn for r in rows),
        latency_median_s=statistics.median(latencies) if latencies else None,
        latency_max_s=max(latencies) if latencies else None,
    )


def format_table(result: SweepResult) -> str:
    """Fixed-width table, one row per combination in sweep order; `*` marks the best."""
    keys = [k for k, _ in result.rows[0].settings]
    header = ["", *keys, "alarms", "tp", "fp", "fn", "precision", "recall", "f1", "lat_med_s"]
    body = []
    for i, row in enumerate(result.rows):
        t = row.total
        body.append(
            [
                "*" if i == result.best else "",
                *(f"{v:g}" for _, v in row.settings),
                str(t.alarms),
                str(t.tp),
                str(t.fp),
                str(t.fn),
                _ratio(t.precision),
                _ratio(t.recall),
                _ratio(t.f1),
                "-" if t.latency_median_s is None else f"{t.latency_median_s:.1f}",
            ]
        )
    widths = [max(len(r[c]) for r in [header, *body]) for c in range(len(header))]
    lines = [
        "  ".join(cell.rjust(w) if c else cell.ljust(w) for c, (cell, w) in enumerate(zip(r, widths))) for r in [header, *body]
    ]
    lines.insert(1, "-" * len(lines[0]))
    best = result.rows[result.best]
    described = ", ".join(f"{k}={v:g}" for k, v in best.settings)
    lines.append(f"* best (F1, then latency): {described}")
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
