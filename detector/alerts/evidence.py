"""Evidence snapshots: the frame of an alert's start with its zone and offending boxes drawn."""

import hashlib
from contextlib import suppress
from pathlib import Path

import cv2
import numpy as np

from detector import draw
from detector.alerts.alert import Snapshot
from detector.rules.debounce import Candidate
from detector.storage import Storage

JPEG_QUALITY = 88


class EvidenceSkipped(Exception):
    """The JPEG could not be written; `state` (disk_full | read_only | error) goes into the
    alert's `snapshot_error` and the alert goes on without it."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


class EvidenceWriter:
    """Writes `<root>/<folder>/<alert_id>.jpg`; the payload names it relative to `root`.

    `detector run` keeps one folder per camera (`evidence/{camera}`, which retention sweeps) and
    gives a `storage`: a JPEG the disk cannot take is then skipped (EvidenceSkipped). Without
    one (a replay) the OSError goes up: the command stops with one line naming the file."""

    def __init__(self, root: Path, folder: str = "evidence", storage: Storage | None = None) -> None:
        self.root = Path(root)
        self.folder = Path(folder)
        self.storage = storage
        (self.root / self.folder).mkdir(parents=True, exist_ok=True)

    def write(
        self, alert_id: str, image: np.ndarray, polygon_px: np.ndarray, title: str, objects: tuple[Candidate, ...]
    ) -> Snapshot:
        """EvidenceSkipped (with a storage) when the file cannot be written: no half JPEG is left."""
        canvas = image.copy()
        height, width = canvas.shape[:2]
        draw.zone(canvas, polygon_px, title, draw.AMBER)
        scale = np.array([width, height, width, height])
        for obj in objects:
            draw.box(canvas, np.array(obj.box) * scale, f"{obj.label} {obj.score:.2f}", draw.RED)
        _, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        data = encoded.tobytes()
        relative = self.folder / f"{alert_id}.jpg"
        path = self.root / relative
        try:
            path.write_bytes(data)
        except OSError as exc:
            with suppress(OSError):
                path.unlink(missing_ok=True)  # on a full disk, part of it may be there
            if self.storage is None:
                raise
            raise EvidenceSkipped(self.storage.failed("evidence", path, exc)) from None
        if self.storage is not None:
            self.storage.succeeded("evidence")
        return Snapshot(relative.as_posix(), hashlib.sha256(data).hexdigest())
