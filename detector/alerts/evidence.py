"""Evidence snapshots: the frame of an alert's start with its zone and offending boxes drawn."""

import hashlib
from pathlib import Path

import cv2
import numpy as np

from detector import draw
from detector.alerts.alert import Snapshot
from detector.rules.debounce import Candidate

JPEG_QUALITY = 88


class EvidenceWriter:
    """Writes `<root>/evidence/<alert_id>.jpg`; the payload names it relative to `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "evidence").mkdir(parents=True, exist_ok=True)

    def write(
        self, alert_id: str, image: np.ndarray, polygon_px: np.ndarray, title: str, objects: tuple[Candidate, ...]
    ) -> Snapshot:
        canvas = image.copy()
        height, width = canvas.shape[:2]
        draw.zone(canvas, polygon_px, title, draw.AMBER)
        scale = np.array([width, height, width, height])
        for obj in objects:
            draw.box(canvas, np.array(obj.box) * scale, f"{obj.label} {obj.score:.2f}", draw.RED)
        _, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        data = encoded.tobytes()
        relative = Path("evidence") / f"{alert_id}.jpg"
        (self.root / relative).write_bytes(data)
        return Snapshot(relative.as_posix(), hashlib.sha256(data).hexdigest())
