"""Training data in the Ultralytics YOLO dataset layout, which CVAT and Label Studio import and
export, so operators correct labels in the tools they already know (issue 12):

    DS/data.yaml                 train, val, names (class id -> name)
    DS/images/{train,val}/N.jpg  the frames
    DS/labels/{train,val}/N.txt  one line per box: class cx cy w h, normalised to the image
    DS/sources.jsonl             where each image came from (camera, source, stream time, kind)

The classes are the rules' roles (vehicle, person, vendor, garbage, ...; detector/rules/
violations.py): a model trained on them plays each role with the class of the same name, and a
COCO model's boxes map onto them through the config's `roles` section.
"""

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from detector.errors import OutputError, SourceError
from detector.rules.violations import ROLES

CLASSES: tuple[str, ...] = tuple(role.name for role in ROLES)
SPLITS = ("train", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Labels:
    """An image's boxes: class ids (k,) int32 and x1, y1, x2, y2 (k, 4) float32 in image pixels."""

    class_id: np.ndarray
    xyxy: np.ndarray

    @classmethod
    def empty(cls) -> "Labels":
        return cls(np.zeros(0, np.int32), np.zeros((0, 4), np.float32))

    def __len__(self) -> int:
        return len(self.class_id)

    def to_text(self, image_hw: tuple[int, int]) -> str:
        height, width = image_hw
        xyxy = np.clip(self.xyxy, 0, [width, height, width, height]) / [width, height, width, height]
        centre, size = (xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]
        keep = (size > 0).all(axis=1)  # a box clipped to nothing is no box
        rows = np.concatenate([centre, size], axis=1)[keep]
        return "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, (x, y, w, h) in zip(self.class_id[keep], rows))

    @classmethod
    def from_text(cls, text: str, image_hw: tuple[int, int], where: str) -> "Labels":
        height, width = image_hw
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                class_id, values = int(parts[0]), [float(v) for v in parts[1:]]
            except (ValueError, IndexError):
                raise SourceError(f"{where}:{number}: not a YOLO label line (class cx cy w h): {line.strip()[:80]!r}") from None
            if len(values) != 4:  # a polygon (segmentation) line has more: not a detection label
                raise SourceError(f"{where}:{number}: {len(values)} numbers after the class; a box has 4 (cx cy w h)")
            rows.append((class_id, *values))
        if not rows:
            return cls.empty()
        array = np.array(rows, np.float64)
        centre, size = array[:, 1:3] * [width, height], array[:, 3:5] * [width, height]
        xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        return cls(array[:, 0].astype(np.int32), xyxy.astype(np.float32))


@dataclass(frozen=True)
class Source:
    """Where an image came from: `kind` harvest | negative | synthetic."""

    image: str  # relative to the dataset root
    kind: str
    camera: str
    source: str
    stream_time_s: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Item:
    split: str
    image: Path
    label: Path

    def read(self, names: Sequence[str]) -> tuple[np.ndarray, Labels]:
        image = cv2.imread(str(self.image), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{self.image}: not a readable image")
        text = self.label.read_text(encoding="utf-8") if self.label.exists() else ""  # no label file: no objects
        labels = Labels.from_text(text, image.shape[:2], str(self.label))
        if len(labels) and (labels.class_id.min() < 0 or labels.class_id.max() >= len(names)):
            raise SourceError(f"{self.label}: class {labels.class_id.max()} is not one of the {len(names)} in data.yaml")
        return image, labels


class YoloDataset:
    """A dataset folder: `create` a new one (or add to one of the same classes), `open` one."""

    def __init__(self, root: Path, names: Sequence[str]) -> None:
        self.root = Path(root)
        self.names = tuple(names)

    @classmethod
    def create(cls, root: Path, names: Sequence[str] = CLASSES) -> "YoloDataset":
        root = Path(root)
        if (root / "data.yaml").exists():
            existing = cls.open(root)
            if existing.names != tuple(names):
                raise OutputError(f"{root}: a dataset of other classes ({', '.join(existing.names)}); give another folder")
            return existing
        try:
            for split in SPLITS:
                (root / "images" / split).mkdir(parents=True, exist_ok=True)
                (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{root}: cannot write there: {exc.strerror}") from None
        # no `path`: Ultralytics then takes the folder of data.yaml (`path: .` would be the working directory)
        data = {"train": "images/train", "val": "images/val", "names": dict(enumerate(names))}
        (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return cls(root, names)

    @classmethod
    def open(cls, root: Path) -> "YoloDataset":
        root = Path(root)
        path = root / "data.yaml"
        if not path.is_file():
            raise SourceError(f"{root}: not a dataset (no data.yaml; `detector dataset harvest` makes one)")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SourceError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict) and sorted(names) == list(range(len(names))):
            names = [names[i] for i in range(len(names))]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise SourceError(f"{path}: `names` must list the class names (or map 0, 1, ... to them)")
        return cls(root, names)

    def add(self, split: str, stem: str, image: np.ndarray, labels: Labels, source: Source | None = None) -> Item:
        """Write one image and its labels (replacing an item of the same name)."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        item = Item(split, self.root / "images" / split / f"{stem}.jpg", self.root / "labels" / split / f"{stem}.txt")
        if not cv2.imwrite(str(item.image), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OutputError(f"{item.image}: cannot write the image")
        item.label.write_text(labels.to_text(image.shape[:2]), encoding="utf-8")
        if source is not None:
            with (self.root / "sources.jsonl").open("a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(source) | {"image": str(item.image.relative_to(self.root))}) + "\n")
        return item

    def items(self, split: str) -> list[Item]:
        folder = self.root / "images" / split
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        return [Item(split, image, self.root / "labels" / split / f"{image.stem}.txt") for image in images]

    def __iter__(self) -> Iterator[Item]:
        for split in SPLITS:
            yield from self.items(split)

    def counts(self) -> dict[str, int]:
        """Images per split."""
        return {split: len(self.items(split)) for split in SPLITS}

    def digest(self) -> str:
        """sha256 over every image and label file (names and contents), for a model card; not
        the `labels/*.cache` files Ultralytics leaves beside the labels."""
        digest = hashlib.sha256()
        images = sorted(p for p in (self.root / "images").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in images + sorted((self.root / "labels").rglob("*.txt")):
            digest.update(str(path.relative_to(self.root)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


def split_by_time(stream_time_s: float, block_s: float, val_every: int) -> str:
    """Adjacent frames look alike: a split frame by frame would put near-copies of the val
    frames in train. Stream time is cut into blocks of `block_s`; every `val_every`-th block
    (the 2nd, the 2nd + val_every, ...) goes to val, the rest to train."""
    return "val" if int(stream_time_s // block_s) % val_every == 1 % val_every else "train"
