"""Model backends: ONNX Runtime (default) and Ultralytics for `.pt` files."""

from detector.config.schema import ModelConfig
from detector.detect.base import Detector


def open_model(config: ModelConfig, min_score: float, nms_iou: float) -> Detector:
    """Open the configured model; raises ModelError with the cause."""
    if config.path.suffix == ".pt":
        from detector.detect.ultralytics_backend import UltralyticsDetector

        return UltralyticsDetector(config.path, min_score=min_score, nms_iou=nms_iou, threads=config.threads)
    from detector.detect.onnx_backend import OnnxDetector

    return OnnxDetector(
        config.path,
        min_score=min_score,
        nms_iou=nms_iou,
        threads=config.threads,
        providers=config.providers,
        names_file=config.names,
        imgsz=config.imgsz,
        fit_frame=config.fit_frame,
    )


__all__ = ["Detector", "open_model"]
