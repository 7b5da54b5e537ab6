"""Ultralytics without a network (../shared/assets/MANIFEST.md, "Ultralytics offline").

    YOLO_OFFLINE=1          no network checks, analytics or auto-installs
    YOLO_CONFIG_DIR=WORK    Ultralytics' settings.json in the work folder, not in ~/.config
    fonts                   training and validation call check_font, which downloads Arial.ttf
                            and Arial.Unicode.ttf unless they are in the settings folder: any
                            TTF will do, so matplotlib's DejaVuSans.ttf is copied under both names
    data.yaml               a copy with the dataset's absolute path: Ultralytics resolves a
                            relative `path` (ours is `.`) against the working directory, not
                            against the file
    label caches            Ultralytics writes DS/labels/{split}.cache; removed again, so
                            training leaves the dataset (and its digest) as it found it

Ultralytics reads both variables once, when it is first imported; a process that imported it
earlier keeps its settings folder, and the fonts go there instead.
"""

import importlib
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import yaml

from detector.dataset.yolo import SPLITS, YoloDataset
from detector.errors import DetectorError, OutputError

EXTRA = "pip install 'detector[ultralytics]'"
FONTS = ("Arial.ttf", "Arial.Unicode.ttf")


class MissingExtra(DetectorError):
    """The optional extra `[ultralytics]` (Ultralytics, torch, onnx, pycocotools) is not installed."""


def require(module: str, what: str) -> ModuleType:
    """`module` imported, or MissingExtra naming the command that needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module
        raise MissingExtra(f"{what} needs the optional extra ({missing} is not installed): {EXTRA}") from None


def ultralytics(work: Path) -> ModuleType:
    """The `ultralytics` package, set up to run offline with its settings under `work`."""
    if "ultralytics" not in sys.modules:
        os.environ["YOLO_OFFLINE"] = "1"
        os.environ["YOLO_CONFIG_DIR"] = str(work)
    package = require("ultralytics", "training")
    require("torch", "training")
    require("onnx", "exporting the trained model")
    from ultralytics.utils import checks

    install_fonts(Path(checks.USER_CONFIG_DIR))
    return package


def install_fonts(folder: Path) -> None:
    """Any TTF under the names check_font looks for, so it never downloads them."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in FONTS:
            if not (folder / name).exists():
                shutil.copyfile(source, folder / name)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot put Ultralytics' fonts there: {exc.strerror}") from None


def data_yaml(dataset: YoloDataset, work: Path) -> Path:
    """`work/data.yaml`: the dataset's splits and names with its absolute path."""
    data = {"path": str(dataset.root.resolve()), "train": "images/train", "val": "images/val"}
    data["names"] = dict(enumerate(dataset.names))
    path = work / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def label_caches_removed(dataset: YoloDataset) -> Iterator[None]:
    """Removes the label caches Ultralytics writes into the dataset, unless they were there before."""
    caches = [dataset.root / "labels" / f"{split}.cache" for split in SPLITS]
    before = {cache for cache in caches if cache.exists()}
    try:
        yield
    finally:
        for cache in caches:
            if cache not in before:
                cache.unlink(missing_ok=True)
