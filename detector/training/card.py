"""The trained model's card, in the style of models/*.md and of `detector quantize`'s card."""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from detector import __version__
from detector.detect.base import file_digest
from detector.rules.violations import ROLES
from detector.training.batchnorm import CHECK_SCORE, Check, Recalibration
from detector.training.evaluate import ClassAP, Evaluation

if TYPE_CHECKING:
    from detector.training.train import Int8Copy


@dataclass(frozen=True)
class TrainingFacts:
    """What the card says about the run, gathered by `train`."""

    dataset: Path
    dataset_digest: str
    counts: dict[str, int]
    names: tuple[str, ...]
    base: Path
    base_digest: str
    epochs: int
    imgsz: int
    batch: int
    device: str
    epoch_s: Sequence[float]  # the training part of each epoch (no validation)
    total_s: float
    recalibration: Recalibration
    check: Check
    work: Path
    inherited: tuple[str, ...]  # classes whose row of the class layer starts from the base model's (same name)
    versions: str  # Ultralytics and torch
    command: str


def model_card(
    model: Path,
    facts: TrainingFacts,
    evaluation: Evaluation,
    int8: "Int8Copy",
) -> str:
    """The card written beside `model` (`.md`); `int8`'s fields are None without --int8."""
    per_epoch = sum(facts.epoch_s) / len(facts.epoch_s) if facts.epoch_s else 0.0
    files = [f"| `{model.name}` | `{file_digest(model)}` | ONNX, float32, opset 17 | `images` [batch, 3, height, width] |"]
    if int8.model is not None:
        files.append(
            f"| `{int8.model.name}` | `{file_digest(int8.model)}` | ONNX QDQ INT8 (`detector quantize`; its own card beside it) | the same |"
        )
    classes = ", ".join(f"{i} `{name}`" for i, name in enumerate(facts.names))
    return f"""# Model card: `{model.name}`, `{facts.base.name}` fine-tuned on `{facts.dataset.name}`

Written by `detector train` (detector {__version__}, {facts.versions}) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.
Weights are never committed; this card says how to make them again.

| file | sha256 | format | input |
|---|---|---|---|
{chr(10).join(files)}

Output `output0` [batch, 4 + {len(facts.names)}, anchors] (Ultralytics layout, class names in the metadata). The
input's batch, height and width are free (`dynamic=True`): the detector shapes it to each frame, long
side `model.imgsz`; the model was trained at {facts.imgsz}, so give it that.

## Classes
{classes}: the rules' roles, each played by the class of the same name (the `roles` snippet below).

## Data
| dataset | sha256 of its images and labels | train images | val images |
|---|---|---:|---:|
| `{facts.dataset}` | `{facts.dataset_digest}` | {facts.counts.get("train", 0)} | {facts.counts.get("val", 0)} |

## Training
| base model | sha256 | epochs | imgsz | batch | device | training time per epoch | whole run |
|---|---|---:|---:|---:|---|---:|---:|
| `{facts.base}` | `{facts.base_digest}` | {facts.epochs} | {facts.imgsz} | {facts.batch} | {facts.device} | {per_epoch:.1f} s | {facts.total_s:.0f} s |

- **Trainer**: Ultralytics' own (`YOLO(...).train`: its default optimiser, augmentation and schedule), offline.
- **BatchNorm**: the base model's {facts.recalibration.layers} BatchNorm layers ({facts.recalibration.identity} of them identity, as a fused export leaves them) recalibrated on {facts.recalibration.frames} train frames: each keeps its function at inference and takes its input's real statistics, so train mode (batch statistics) does not collapse the model.
- **Checked before training**: the raw output moved by at most {facts.recalibration.box_shift:.2g} px and {facts.recalibration.score_change:.2g} in score; {facts.check.summary()} (Ultralytics predict, score >= {CHECK_SCORE:g}).
- **Weights**: {_class_layer(facts)}
- **Checkpoint**: the epoch Ultralytics found best on the val split (its fitness: mAP50-95 in Ultralytics 8.4), so the figures below lean a little to the optimistic side.
- **Time**: training time per epoch is the training pass alone, without the epoch's validation; the whole run includes recalibration, validation and export.
- **Run**: checkpoints and `results.csv` in `{facts.work}`.

## Accuracy on the val split
`detector eval` on the exported ONNX through the pipeline's backend: input long side
{evaluation.imgsz}, min_score {evaluation.min_score:g}, NMS IoU {evaluation.nms_iou:g}, COCO AP (pycocotools), {evaluation.images} images.

{evaluation.table()}
{_int8_section(evaluation, int8.evaluation, int8.note)}
## Deploy
```yaml
model: {{path: {_yaml_text(str(model))}, imgsz: {facts.imgsz}}}
roles:
{_roles(facts.names)}
```

## Licence
**AGPL-3.0**: the weights derive from Ultralytics' YOLOv8n weights (AGPL-3.0, https://ultralytics.com/license);
using them in a product that is not AGPL needs an Ultralytics Enterprise licence.

## Reproduce
Ultralytics seeds its trainer (seed 0, deterministic), so the same command on the same dataset
gives the same model on the same machine:
```sh
{facts.command}
```
"""


def _class_layer(facts: TrainingFacts) -> str:
    """Which rows of the new class layer start from the base model's."""
    if not facts.inherited:
        return f"the class layer is new ({len(facts.names)} classes); every other weight starts as the base model's."
    return (
        f"the class layer is new ({len(facts.names)} classes) but for the rows of the classes the base model has by name "
        f"({', '.join(facts.inherited)}: Ultralytics' `cls_remap`); every other weight starts as the base model's."
    )


def _int8_section(evaluation: Evaluation, int8: Evaluation | None, note: str) -> str:
    if int8 is None:
        return f"\n{note}\n" if note else ""
    rows = [
        "| class | AP50 float | AP50 INT8 | change | AP50-95 float | AP50-95 INT8 | change |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    pairs = [(f, int8.of(f.name)) for f in evaluation.classes] + [(_mean(evaluation), _mean(int8))]
    for f, q in pairs:
        if f.ap50 is None or q.ap50 is None:
            continue
        rows.append(
            f"| {f.name} | {f.ap50:.3f} | {q.ap50:.3f} | {q.ap50 - f.ap50:+.3f} "
            f"| {f.ap50_95:.3f} | {q.ap50_95:.3f} | {q.ap50_95 - f.ap50_95:+.3f} |"
        )
    return f"""
### INT8
{note}

{chr(10).join(rows)}
"""


def _mean(evaluation: Evaluation) -> ClassAP:
    boxes = sum(c.boxes for c in evaluation.measured)
    return ClassAP("**mean**", evaluation.images, boxes, False, evaluation.mean_ap50, evaluation.mean_ap50_95)


def _yaml_text(text: str) -> str:
    """`text` as a YAML scalar: plain where it is a plain path, else double-quoted (JSON's quoting is YAML's)."""
    return text if re.fullmatch(r"[A-Za-z0-9_./][A-Za-z0-9_./-]*", text) else json.dumps(text)


def _roles(names: Sequence[str]) -> str:
    return "\n".join(
        f"  {role.name}: [{role.name}]" if role.name in names else f"  {role.name}: []  # the model has no class of this name"
        for role in ROLES
    )
