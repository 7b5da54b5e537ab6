"""Drawing shared by evidence snapshots and annotated videos (BGR images, in place)."""

import cv2
import numpy as np

RED = (40, 40, 230)
AMBER = (0, 190, 255)
GREEN = (80, 200, 80)
WHITE = (255, 255, 255)
GREY = (150, 150, 150)
CYAN = (230, 200, 0)
BLACK = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def zone(image: np.ndarray, polygon_px: np.ndarray, label: str, colour: tuple[int, int, int], *, dashed: bool = False) -> None:
    """A zone, filled lightly; `dashed`: outline only, dashed (a zone that does not apply now)."""
    points = np.round(polygon_px).astype(np.int32)
    if dashed:
        for start, end in zip(points, np.roll(points, -1, axis=0)):
            dashed_line(image, start, end, colour)
    else:
        overlay = image.copy()
        cv2.fillPoly(overlay, [points], colour)
        cv2.addWeighted(overlay, 0.15, image, 0.85, 0, dst=image)
        cv2.polylines(image, [points], True, colour, 2, cv2.LINE_AA)
    (width, _), _ = cv2.getTextSize(label, FONT, 0.45, 1)
    x = min(int(points[:, 0].min()) + 3, image.shape[1] - width - 3)
    text(image, label, (max(x, 0), int(points[:, 1].min()) + 16), colour)


def dashed_line(image: np.ndarray, start, end, colour: tuple[int, int, int], dash_px: int = 10) -> None:
    """start -> end (pixels) as dashes and gaps of about dash_px each, a dash at both ends."""
    length = float(np.hypot(*np.subtract(end, start, dtype=np.float64)))
    pieces = int(length // dash_px) | 1  # odd: dash, gap, ..., dash
    points = np.round(np.linspace(start, end, pieces + 1)).astype(int)
    for a, b in zip(points[0::2], points[1::2]):
        cv2.line(image, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), colour, 2, cv2.LINE_AA)


def box(image: np.ndarray, xyxy, label: str, colour: tuple[int, int, int], thickness: int = 2) -> None:
    x1, y1, x2, y2 = (int(round(v)) for v in xyxy)
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
    if label:
        text(image, label, (x1, max(y1 - 4, 12)), colour)


def text(image: np.ndarray, label: str, origin: tuple[int, int], colour: tuple[int, int, int], scale: float = 0.45) -> None:
    """Text with a dark outline so it reads on any background."""
    cv2.putText(image, label, origin, FONT, scale, BLACK, 3, cv2.LINE_AA)
    cv2.putText(image, label, origin, FONT, scale, colour, 1, cv2.LINE_AA)


def banner(image: np.ndarray, lines: list[str], colour: tuple[int, int, int] = RED) -> None:
    """Alert banner across the top of the frame, one line per alert."""
    height = 22 * len(lines) + 6
    cv2.rectangle(image, (0, 0), (image.shape[1], height), colour, -1)
    for i, line in enumerate(lines):
        cv2.putText(image, line, (8, 20 + 22 * i), FONT, 0.55, WHITE, 1, cv2.LINE_AA)
