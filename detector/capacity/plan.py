"""From measured figures to cameras per box: the levers there are, one row per combination.

A camera's CPU is its decode figure plus its detect + rules figure (measured apart: see
measure.py), so every combination of a model and a decoding is a sum, not another run. Cameras
per box = floor(target load x usable cores / CPU per camera), from the medians; the low-high
range of the repeats says how far to trust it.
"""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from detector.capture.keyframes import DecodeChoice
from detector.config.schema import ModelConfig
from detector.detect import open_model
from detector.errors import ModelError

AS_CONFIGURED = "as configured"
INT8 = "INT8"
FRAME_SHAPED = "input shaped to the frame"
KEYFRAMES = "keyframes only"


@dataclass(frozen=True)
class Figure:
    """A measured figure in cores: the median of its repeats and the lowest and highest (the noise)."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Figure":
        return cls(statistics.median(values), min(values), max(values))

    @classmethod
    def mean(cls, figures: Sequence["Figure"]) -> "Figure":
        """The mean camera of several."""
        return cls(*(statistics.fmean(getattr(f, part) for f in figures) for part in ("median", "low", "high")))

    def __add__(self, other: "Figure") -> "Figure":
        return Figure(self.median + other.median, self.low + other.low, self.high + other.high)

    def text(self) -> str:
        digits = 3 if self.low >= 0.01 else 4  # keyframe-only decoding of a small stream is under 0.001 cores
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"

    def as_dict(self) -> dict[str, float]:
        return {"median": round(self.median, 4), "low": round(self.low, 4), "high": round(self.high, 4)}


@dataclass(frozen=True)
class ModelOption:
    """A model to measure: the configured one, or one of its levers (`lever` names it)."""

    lever: str
    model: ModelConfig


@dataclass(frozen=True)
class Skipped:
    """A lever not measured, and why."""

    lever: str
    why: str


def model_options(configured: ModelConfig, *, int8: Path | None, dynamic: Path | None) -> tuple[list[ModelOption], list[Skipped]]:
    """The configured model and the model levers that exist on this box: an INT8 model (`int8`,
    else MODEL_int8.onnx beside it), input shaped to the frame (the configured model where it
    has a dynamic input, else `dynamic` or MODEL_dynamic.onnx) and the INT8 of that. Each is
    opened once here: a bad model is a ModelError before anything is measured."""
    options, skipped = [ModelOption(AS_CONFIGURED, configured)], []
    if int8 is None and configured.path.stem.endswith("_int8"):
        skipped.append(Skipped(INT8, f"the configured model {configured.path.name} is INT8 already"))
    else:
        path = int8 or _beside(configured.path, "_int8")
        hint = f"make it with `{_quantize(configured.path)}`, or give --int8 PATH"
        _add(options, skipped, INT8, configured, path, given=int8 is not None, hint=hint)
    if _shapes_input_to_frame(configured):
        skipped.append(Skipped(FRAME_SHAPED, f"the configured model {configured.path.name} has it already"))
        return options, skipped
    frame_shaped = configured.model_copy(update={"fit_frame": True})
    if not configured.fit_frame and _shapes_input_to_frame(frame_shaped):  # a dynamic-shape model, fit_frame: false
        options.append(ModelOption(FRAME_SHAPED, frame_shaped))
        return options, skipped
    path = dynamic or _beside(configured.path, "_dynamic")
    hint = "a dynamic-shape export of the model, or give --dynamic PATH"
    if _add(options, skipped, FRAME_SHAPED, frame_shaped, path, given=dynamic is not None, hint=hint):
        hint = f"make it with `{_quantize(path)}`"
        _add(options, skipped, f"{INT8} + {FRAME_SHAPED}", frame_shaped, _beside(path, "_int8"), given=False, hint=hint)
    return options, skipped


def _add(options: list, skipped: list, lever: str, base: ModelConfig, path: Path, *, given: bool, hint: str) -> bool:
    """`base` with the model at `path` as `lever`, if the file is there (else skipped: no file,
    and the `hint`); a path given on the command line must be, and a frame-shaped lever's model
    must have a dynamic input (ModelError otherwise)."""
    if not path.is_file() and not given:
        skipped.append(Skipped(lever, f"no {path} ({hint})"))
        return False
    model = base.model_copy(update={"path": path})
    if not _shapes_input_to_frame(model) and lever.endswith(FRAME_SHAPED):  # opened first: a broken file is ModelError
        raise ModelError(f"{path}: its input has a fixed size: not a dynamic-shape model")
    options.append(ModelOption(lever, model))
    return True


def _quantize(model: Path) -> str:
    return f"detector quantize {model} --calib CLIP"


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.stem}{suffix}.onnx")


def _shapes_input_to_frame(model: ModelConfig) -> bool:
    """Opens the model (ModelError if it cannot be): does its input follow each frame's shape?"""
    return bool(getattr(open_model(model, 0.5, 0.5), "fits_frame", False))  # only the ONNX backend can


@dataclass(frozen=True)
class CameraFigures:
    """One measured camera (or the clip standing for all).

    Attributes:
        id: the camera's id.
        clip: what was measured; size: (width, height); nominal_fps: its frame rate;
            stream_s: seconds of its stream per measurement.
        decode: "full" and "keyframes" -> cores to decode it so.
        auto: what `decode: auto` chooses for it at the detect fps, and why.
        detect: lever -> cores of detect + rules with that model.
        input_hw: lever -> the model input (height, width) its frames get (None: not known).
    """

    id: str
    clip: str
    size: tuple[int, int]
    nominal_fps: float
    stream_s: float
    decode: dict[str, Figure]
    auto: DecodeChoice
    detect: dict[str, Figure]
    input_hw: dict[str, tuple[int, int] | None]

    def cores(self, lever: str, keyframes: bool) -> Figure:
        """Decode + detect + rules; keyframes only where auto would choose them."""
        return self.decode["keyframes" if keyframes and self.auto.mode == "keyframes" else "full"] + self.detect[lever]


@dataclass(frozen=True)
class Lever:
    """One row of the table: a model and a decoding, and what a camera costs with them.

    Attributes:
        name: the levers pulled ("as configured", "INT8 + keyframes only", ...).
        model: the model file.
        decode: "every frame", "keyframes only", or "keyframes only on k of n cameras".
        cpu: cores per camera (the mean of the cameras measured).
        cameras: cameras per box at the target load, from cpu.median.
        memory_mb: peak RSS of a worker-like process with this model.
    """

    name: str
    model: Path
    decode: str
    cpu: Figure
    cameras: int
    memory_mb: float


def cameras_per_box(cpu_per_camera: float, cores: int, target_load: float) -> int:
    """How many cameras of `cpu_per_camera` cores fit in `target_load` of `cores`."""
    return math.floor(target_load * cores / cpu_per_camera + 1e-9)  # 0.75 * 2 / 0.25 is 6, not 5.999...


def levers(
    options: Sequence[ModelOption],
    cameras: Sequence[CameraFigures],
    memory_mb: dict[str, float],
    cores: int,
    target_load: float,
) -> tuple[list[Lever], list[Skipped]]:
    """Every model option with every decoding; keyframe-only rows only where some camera's GOP
    allows them at the detect fps (decode: auto's rule), else skipped with each camera's reason."""
    keyframe_cameras = sum(c.auto.mode == "keyframes" for c in cameras)
    decodings = [(False, "every frame")]
    skipped = []
    if keyframe_cameras:
        share = "" if keyframe_cameras == len(cameras) else f" on {keyframe_cameras} of {len(cameras)} cameras"
        decodings.append((True, KEYFRAMES + share))
    else:
        skipped.append(Skipped(KEYFRAMES, "; ".join(f"camera {c.id}: {c.auto.reason}" for c in cameras)))
    rows = []
    for option in options:
        for keyframes, decode in decodings:
            cpu = Figure.mean([c.cores(option.lever, keyframes) for c in cameras])
            name = " + ".join(([] if option.lever == AS_CONFIGURED else [option.lever]) + ([KEYFRAMES] if keyframes else []))
            rows.append(
                Lever(
                    name or AS_CONFIGURED,
                    option.model.path,
                    decode,
                    cpu,
                    cameras_per_box(cpu.median, cores, target_load),
                    memory_mb[option.lever],
                )
            )
    return rows, skipped
