"""What every model backend offers the worker."""

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

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

    def input_hw_for(self, frame_hw: tuple[int, int]) -> tuple[int, int] | None:
        """The model input (height, width) frames of `frame_hw` get; None where the backend does not say."""
        return None


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
