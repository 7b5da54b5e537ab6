"""What every model backend offers the worker."""

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from detector.detect.letterbox import Letterbox
from detector.detect.regions import Region
from detector.detections import Detections
from detector.errors import ModelError


class Detector(ABC):
    """A model: BGR frame in, `Detections` (frame pixels, score >= min_score, after NMS) out.

    Attributes set by implementations: `names` (class names by id), `digest` (sha256 of the
    weights), `path`.
    """

    names: list[str]
    digest: str
    path: Path

    @abstractmethod
    def detect(self, image: np.ndarray) -> Detections: ...

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """One `Detections` per frame, in order; frames may differ in size. Backends that can run
        several frames as one batch override this; by default they run one at a time."""
        return [self.detect(image) for image in images]

    def detect_regions(self, image: np.ndarray, regions: Sequence[Region]) -> list[Detections]:
        """One `Detections` per region of `image` (frame pixels): the model run on each crop. A
        backend with a frame-shaped input scales each crop to its `long_side`; others see the crop
        as they see a frame."""
        return [shifted(self.detect(image[r.y1 : r.y2, r.x1 : r.x2]), r.x1, r.y1) for r in regions]

    def input_hw_for(self, frame_hw: tuple[int, int]) -> tuple[int, int] | None:
        """The model input (height, width) frames of `frame_hw` get; None where the backend does not say."""
        return None

    def shaped_input(self) -> tuple[int, int] | None:
        """(long side, stride) of an input that follows the image's shape, so crops can run at any
        scale (regions); None for a fixed input size."""
        return None

    def input_fit(self, frame_hw: tuple[int, int]) -> tuple[Letterbox, tuple[int, int]]:
        """With a shaped input: how a whole frame of `frame_hw` fits it, and its (height, width)."""
        raise NotImplementedError(f"{type(self).__name__} has no input shaped to the frame")


def shifted(detections: Detections, dx: int, dy: int) -> Detections:
    """Boxes found in a crop whose top-left corner is (dx, dy), in the frame's pixels."""
    if not (dx or dy) or not len(detections):
        return detections
    return replace(detections, xyxy=detections.xyxy + np.array([dx, dy, dx, dy], np.float32))


def file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_names_file(path: Path) -> list[str]:
    """One class name per line; blank lines and `#` comments are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read names file {path}: {exc.strerror}") from None
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise ModelError(f"names file {path} lists no class names")
    return names
