"""The one container that flows through the pipeline: a frozen struct of arrays.

Every stage takes a `Detections` and returns a new one (mask indexing, `with_data`); nothing
mutates its input. Boxes are pixels of the frame the model saw, `[x1, y1, x2, y2]`.
"""

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Detections:
    """`n` detections.

    Attributes:
        xyxy: (n, 4) float32 boxes in frame pixels.
        confidence: (n,) float32 scores in 0..1.
        class_id: (n,) int32 indices into the pipeline's label list.
        tracker_id: (n,) int64 track ids once a tracker has run, else None.
        data: extra per-detection arrays of length n (e.g. `stationary`, `settled_since`).
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must have shape (n, 4), got {self.xyxy.shape}")
        arrays = {"confidence": self.confidence, "class_id": self.class_id, "tracker_id": self.tracker_id}
        arrays.update({f"data[{k!r}]": v for k, v in self.data.items()})
        for name, array in arrays.items():
            if array is not None and array.shape[:1] != (n,):
                raise ValueError(f"{name} must have length {n}, got shape {array.shape}")

    @classmethod
    def empty(cls) -> "Detections":
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int32),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice | int) -> "Detections":
        """Select by boolean mask, index array or slice; always returns `Detections`."""
        if isinstance(index, int):
            index = np.array([index])
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
            data={k: v[index] for k, v in self.data.items()},
        )

    def with_data(self, **arrays: np.ndarray) -> "Detections":
        return replace(self, data={**self.data, **arrays})

    @staticmethod
    def merge(parts: "list[Detections]") -> "Detections":
        """Concatenate detections (data keys must agree; tracker ids are kept when every part has them)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty()
        if len(parts) == 1:
            return parts[0]
        keys = set(parts[0].data)
        tracked = all(p.tracker_id is not None for p in parts)
        return Detections(
            xyxy=np.concatenate([p.xyxy for p in parts]).astype(np.float32),
            confidence=np.concatenate([p.confidence for p in parts]).astype(np.float32),
            class_id=np.concatenate([p.class_id for p in parts]).astype(np.int32),
            tracker_id=np.concatenate([p.tracker_id for p in parts]).astype(np.int64) if tracked else None,
            data={k: np.concatenate([p.data[k] for p in parts]) for k in keys},
        )
