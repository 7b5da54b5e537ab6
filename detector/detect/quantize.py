"""Static INT8 quantisation of an ONNX detection model, kept only when it finds what the float
model finds (`detector quantize`, docs/edge.md).

    frames   calibration and held-back frames spread over the site's own clips or image folders
    cut      an Ultralytics head stops before its decoding (DFL softmax, anchors, sigmoid): the
             detector decodes only the anchors that score (layouts.UltralyticsRawCodec)
    head     the head's decode nodes, found in the graph and kept in float
    gate     the float and the INT8 model through `OnnxDetector` on the held-back frames: boxes
             matched by class and IoU; below the minimum recall nothing is written

Calibration frames go through the float model's own codec (`OnnxDetector.codec.preprocess`), so
they are letterboxed, coloured and scaled exactly as the pipeline feeds the model.
"""

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from detector import __version__
from detector.capture import FileSource
from detector.config.schema import DetectConfig
from detector.detect.base import Detector, file_digest
from detector.detect.layouts import LAYOUT_KEY, UltralyticsRawCodec
from detector.detect.onnx_backend import OnnxDetector
from detector.detections import Detections
from detector.errors import DetectorError, ModelError, OutputError, SourceError
from detector.zones.geometry import box_iou

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MATCH_IOU = 0.5
_QUANTISED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}


class GateRefused(DetectorError):
    """The INT8 model lost too many of the float model's boxes; nothing was written."""


@dataclass(frozen=True)
class SourceFrames:
    """BGR frames of one calibration source, spread over it; `held_back` never calibrates."""

    source: Path
    calibration: list[np.ndarray]
    held_back: list[np.ndarray]


@dataclass(frozen=True)
class GateResult:
    """The INT8 model's boxes against the float model's on the held-back frames.

    Attributes:
        frames: held-back frames compared.
        float_boxes: boxes the float model found on them.
        matched: float boxes with an INT8 box of the same class at IoU >= 0.5 (one each).
        extra: INT8 boxes with no float box.
        score_change: mean INT8 minus float score over the matched boxes (0 when none matched).
    """

    frames: int
    float_boxes: int
    matched: int
    extra: int
    score_change: float

    @property
    def recall(self) -> float:
        return self.matched / self.float_boxes if self.float_boxes else 0.0

    def summary(self) -> str:
        return (
            f"{self.matched}/{self.float_boxes} boxes of the float model matched (recall {self.recall:.3f}), "
            f"mean score change {self.score_change:+.3f}, {self.extra} INT8 boxes without a float box, "
            f"on {self.frames} held-back frames"
        )


def read_frames(sources: Sequence[Path], calibration: int, held_back: int) -> list[SourceFrames]:
    """`calibration` + `held_back` frames shared evenly among `sources` (clips or image folders),
    each source's spread over its whole length, its held-back ones spread among them."""
    if calibration < 1 or held_back < 1:
        raise ValueError("at least one calibration and one held-back frame")
    per_source = [len(part) for part in np.array_split(np.arange(calibration + held_back), len(sources))]
    held_shares = [len(part) for part in np.array_split(np.arange(held_back), len(sources))]
    result = []
    for source, count, held in zip(sources, per_source, held_shares):
        frames = spread_frames(Path(source), count)
        held_at = {int((k + 0.5) * len(frames) / held) for k in range(min(held, len(frames)))}
        result.append(
            SourceFrames(
                source=Path(source),
                calibration=[f for i, f in enumerate(frames) if i not in held_at],
                held_back=[f for i, f in enumerate(frames) if i in held_at],
            )
        )
    return result


def spread_frames(source: Path, count: int) -> list[np.ndarray]:
    """`count` BGR frames evenly spread over a clip (on stream time) or a folder of images (by name)."""
    if count == 0:
        return []
    if source.is_dir():
        images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise SourceError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        taken = min(count, len(images))
        return [_read_image(images[int((k + 0.5) * len(images) / taken)]) for k in range(taken)]
    with FileSource(source, fps=1.0) as clip:
        clip.fps = count / (clip.duration_s or count)  # known once opened: `count` samples over its length
        return [frame.image for _, frame in zip(range(count), clip.frames())]


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: not a readable image")
    return image


def head_decode_nodes(graph) -> list[str]:
    """Names of the head's decode nodes in an ONNX graph: every node after the last Conv of each detection branch
    (walking back from the outputs, up to and not including a Conv).

    They stay in float because one tensor carries both the boxes and the class scores: quantised,
    it gets one scale, set by box coordinates in input pixels, whose step (2.5 at 640, 1.25 at
    320) is coarser than the whole range of a score: at 640 every score rounds to 0 and the model
    finds nothing. A Conv fed by a Softmax is Ultralytics' DFL, an expectation over distance bins
    with fixed weights 0..15: decoding, so the walk goes through it.
    """
    producers = {output: node for node in graph.node for output in node.output}
    tail: dict[str, object] = {}  # by first output: every node has one, not every node a name
    pending = [output.name for output in graph.output]
    while pending:
        node = producers.get(pending.pop())
        if node is None or node.output[0] in tail:
            continue
        feeder = producers.get(node.input[0]) if node.input else None
        if node.op_type == "Conv" and (feeder is None or feeder.op_type != "Softmax"):
            continue
        tail[node.output[0]] = node
        if node.op_type != "Shape":  # a Shape reads only its input's size (a dynamic export's anchor grid)
            pending.extend(node.input)
    if len(tail) == len(graph.node):
        raise ModelError("no Conv layer before the outputs: nothing to quantise")
    if any(not node.name for node in tail.values()):
        raise ModelError("the head has unnamed nodes, which cannot be kept in float")
    return sorted(node.name for node in tail.values())


def decode_inputs(graph) -> tuple[str, str] | None:
    """(distance bins, class logits): the two tensors an Ultralytics head decodes, found by its DFL
    (Reshape, Transpose, Softmax into a Conv) and by the Sigmoid of the scores that feeds the
    output; None for a head without them (YOLOX, an end-to-end model)."""
    producers = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    dfl = [n for n in graph.node if n.op_type == "Softmax" and any(c.op_type == "Conv" for c in consumers.get(n.output[0], []))]
    output = producers.get(graph.output[0].name) if len(graph.output) == 1 else None
    if len(dfl) != 1 or output is None:
        return None
    transpose = producers.get(dfl[0].input[0])
    reshape = producers.get(transpose.input[0]) if transpose is not None and transpose.op_type == "Transpose" else None
    sigmoids = [producers.get(name) for name in output.input]
    sigmoids = [node for node in sigmoids if node is not None and node.op_type == "Sigmoid"]
    if reshape is None or reshape.op_type != "Reshape" or len(sigmoids) != 1:
        return None
    return reshape.input[0], sigmoids[0].input[0]


def cut_before_decode(model):
    """The model with an Ultralytics head's decoding cut off: one output, the distance bins and the
    class logits concatenated ([B, 64+nc, N]), claimed by `UltralyticsRawCodec` through the
    metadata; None for a head that has no such decoding."""
    import onnx

    tensors = decode_inputs(model.graph)
    if tensors is None:
        return None
    graph = model.graph
    raw = onnx.helper.make_node("Concat", list(tensors), ["raw"], name="detector/raw_head", axis=1)
    output = onnx.helper.make_tensor_value_info("raw", onnx.TensorProto.FLOAT, None)
    # what the new output needs, walked back by hand: onnx.utils.Extractor wants the shapes of the
    # cut tensors inferred, which a dynamic export's Reshapes leave unknown
    producers = {name: node for node in [*graph.node, raw] for name in node.output}
    needed, pending = {}, ["raw"]
    while pending:
        node = producers.get(pending.pop())
        if node is not None and node.output[0] not in needed:
            needed[node.output[0]] = node
            pending.extend(node.input)
    nodes = [node for node in [*graph.node, raw] if node.output[0] in needed]  # in the graph's (topological) order
    used = {name for node in nodes for name in node.input}
    cut = onnx.ModelProto()
    cut.CopyFrom(model)
    cut.graph.CopyFrom(
        onnx.helper.make_graph(
            nodes,
            graph.name,
            list(graph.input),
            [output],
            [tensor for tensor in graph.initializer if tensor.name in used],
            value_info=[info for info in graph.value_info if info.name in used],
        )
    )
    onnx.helper.set_model_props(cut, {**{p.key: p.value for p in model.metadata_props}, LAYOUT_KEY: UltralyticsRawCodec.name})
    return cut


def quantize_model(
    source: Path, detector: OnnxDetector, frames: Sequence[np.ndarray], out: Path, *, head_in_float=True
) -> tuple[int, bool]:
    """Write the INT8 QDQ model of `source` (opened as `detector`) to `out`, calibrated on BGR
    `frames`; returns how many nodes of the head were kept in float and whether its decoding was
    cut off. `head_in_float=False` quantises every node of the graph as exported: only to show
    what the gate refuses."""
    try:
        import onnx
    except ImportError:
        raise DetectorError("quantising needs the onnx package: pip install 'detector[quantize]'") from None
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(source))
    if any(node.op_type in _QUANTISED_OPS for node in model.graph.node):
        raise ModelError(f"{source}: already quantised; give the float model")
    cut = cut_before_decode(model) if head_in_float else None
    model = cut or model
    try:
        kept_float = head_decode_nodes(model.graph) if head_in_float else []
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None

    class Blobs(CalibrationDataReader):
        def __init__(self) -> None:
            self.frames = iter(frames)

        def get_next(self) -> dict[str, np.ndarray] | None:
            frame = next(self.frames, None)
            return None if frame is None else {detector.input_name: detector.codec.preprocess([frame])[0]}

    with _without_preprocessing_advice():
        quantize_static(
            model,
            out,
            Blobs(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,  # u8 x s8: onnxruntime's fast x86 kernels; s8 x s8 ran slower than float
            nodes_to_exclude=kept_float,
        )
    return len(kept_float), cut is not None


@contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """onnxruntime advises, on the root logger, its shape pre-processing before quantising;
    measured on yolov8n: no gain in speed or recall, so the advice would only mislead."""

    def advice(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def match_boxes(reference: Detections, candidate: Detections, min_iou: float = MATCH_IOU) -> list[tuple[int, int]]:
    """(reference index, candidate index) pairs of the same class at IoU >= `min_iou`, each box in
    one pair at most, greedily from the highest IoU."""
    if not len(reference.xyxy) or not len(candidate.xyxy):
        return []
    same_class = reference.class_id[:, None] == candidate.class_id[None, :]
    iou = np.where(same_class, box_iou(reference.xyxy, candidate.xyxy), 0.0)
    rows, cols = np.nonzero(iou >= min_iou)
    pairs, used_rows, used_cols = [], set(), set()
    for k in np.argsort(-iou[rows, cols], kind="stable"):
        row, col = int(rows[k]), int(cols[k])
        if row not in used_rows and col not in used_cols:
            pairs.append((row, col))
            used_rows.add(row)
            used_cols.add(col)
    return pairs


def compare_models(reference: Detector, candidate: Detector, frames: Sequence[np.ndarray]) -> GateResult:
    """The candidate's boxes against the reference's on `frames`, through each one's `detect`."""
    float_boxes = matched = extra = 0
    changes: list[float] = []
    for frame in frames:
        expected, found = reference.detect(frame), candidate.detect(frame)
        pairs = match_boxes(expected, found)
        float_boxes += len(expected.xyxy)
        matched += len(pairs)
        extra += len(found.xyxy) - len(pairs)
        changes += [float(found.confidence[j] - expected.confidence[i]) for i, j in pairs]
    return GateResult(len(frames), float_boxes, matched, extra, float(np.mean(changes)) if changes else 0.0)


@dataclass(frozen=True)
class Quantized:
    """What `quantize` wrote: the model, its card, the gate's figures."""

    model: Path
    card: Path
    gate: GateResult


def quantize(
    model: Path,
    sources: Sequence[Path],
    out: Path,
    *,
    frames: int,
    held_back: int,
    min_recall: float,
    command: str,
    head_in_float: bool = True,
) -> Quantized:
    """Quantise `model` on frames of `sources` and write it to `out` with a model card beside it
    (`out` with `.md`), unless the INT8 model matches less than `min_recall` of the float model's
    boxes on the held-back frames: then GateRefused, and nothing is written. `command` is the
    command line that reproduces it, for the card."""
    model, out = Path(model), Path(out)
    if out.resolve() == model.resolve():
        raise OutputError(f"{out}: is the float model itself; give another --out")
    defaults = DetectConfig()
    reference = OnnxDetector(model, min_score=defaults.min_score, nms_iou=defaults.nms_iou)
    samples = read_frames(sources, frames, held_back)
    calibration = [f for s in samples for f in s.calibration]
    held = [f for s in samples for f in s.held_back]
    if not calibration:
        raise SourceError(f"the sources give {len(held)} frames, all held back: none left to calibrate on")
    with _staged(out) as staged:
        kept_float, cut = quantize_model(model, reference, calibration, staged, head_in_float=head_in_float)
        candidate = OnnxDetector(staged, min_score=defaults.min_score, nms_iou=defaults.nms_iou)
        gate = compare_models(reference, candidate, held)
        if gate.float_boxes == 0:
            raise GateRefused(f"{out}: not written: the float model finds nothing on the {len(held)} held-back frames to compare")
        if gate.recall < min_recall:
            raise GateRefused(f"{out}: not written: {gate.summary()}; below the minimum recall {min_recall:g}")
        os.replace(staged, out)
    card = out.with_suffix(".md")
    card.write_text(
        model_card(model, out, samples, gate, min_recall=min_recall, kept_float=kept_float, cut=cut, command=command),
        encoding="utf-8",
    )
    return Quantized(out, card, gate)


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A temporary file beside `out`, moved over it by the caller, removed unless it was."""
    try:
        handle, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".onnx", dir=out.parent)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write there: {exc.strerror}") from None
    os.close(handle)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def model_card(
    model: Path,
    out: Path,
    samples: Sequence[SourceFrames],
    gate: GateResult,
    *,
    min_recall: float,
    kept_float: int,
    cut: bool,
    command: str,
) -> str:
    """The INT8 model's card in the style of models/*.md: files, calibration, gate, how to redo it."""
    import onnxruntime

    defaults = DetectConfig()
    sources = "\n".join(f"| `{s.source}` | {len(s.calibration)} | {len(s.held_back)} |" for s in samples)
    head = (
        f"""The head stops before its decoding (the DFL softmax over distance bins, the anchor grid, the
score sigmoid): its output is the bins and the class logits (`{LAYOUT_KEY}: {UltralyticsRawCodec.name}` in
the metadata), and the detector decodes only the anchors that clear the score. The {kept_float} nodes
after the last Conv of each branch stay in float."""
        if cut
        else f"""The {kept_float} nodes of the head's decoding (after the last Conv of each detection branch)
stay in float: boxes and class scores share one output tensor, and its one quantisation scale, set
by pixel coordinates, is coarser than the whole range of a score."""
    )
    return f"""# Model card: `{out.name}`, static INT8 of `{model.name}`

Written by `detector quantize` (detector {__version__}, onnxruntime {onnxruntime.__version__}) on
{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Class names and the other metadata are the source model's;
so is the licence (see the source model's card).

| file | sha256 |
|---|---|
| `{out.name}` | `{file_digest(out)}` |
| source `{model.name}` | `{file_digest(model)}` |

## Quantisation
ONNX QDQ, INT8 weights per output channel, UINT8 activations, MinMax ranges from the calibration
frames. {head}

| source | calibration frames | held-back frames |
|---|---|---|
{sources}

## Recall gate
The float and the INT8 model through the detector's ONNX backend at `min_score` {defaults.min_score:g},
NMS IoU {defaults.nms_iou:g}; a float box is matched by an INT8 box of the same class at IoU >= {MATCH_IOU:g}.

| held-back frames | float boxes | matched | recall | mean score change | INT8 boxes without a float box |
|---|---|---|---|---|---|
| {gate.frames} | {gate.float_boxes} | {gate.matched} | {gate.recall:.3f} | {gate.score_change:+.3f} | {gate.extra} |

Minimum recall {min_recall:g}: passed.

## Reproduce
The frames are read at fixed positions of each source, so the same sources give the same model:
```sh
{command}
```
"""
