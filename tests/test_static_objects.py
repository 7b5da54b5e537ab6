"""The static-new-object detector on synthetic scenes: what arrives and stays is reported;
what was there from the start, what moves, and what leaves (a ghost) is not."""

import numpy as np
import pytest

from detector.config.schema import StaticObjectsConfig
from detector.detect.static_objects import StaticObjectDetector
from detector.detections import Detections

SIZE = (240, 320)  # height, width: the detector's work width, so boxes map 1:1
FPS = 2


def scene(t: float, objects) -> np.ndarray:
    """Textured grey ground with bright squares: objects are (x, y, from_s, until_s)."""
    rng = np.random.default_rng(int(t * FPS))  # fresh sensor noise per frame
    image = np.full((*SIZE, 3), 90, np.uint8) + rng.integers(0, 6, (*SIZE, 1), dtype=np.uint8)
    for x, y, start, stop in objects:
        if start <= t < stop:
            image[y : y + 16, x : x + 24] = 220
    return image


def run(objects, seconds=40.0, model_boxes=()):
    detector = StaticObjectDetector(StaticObjectsConfig(), class_id=80)
    found = {}
    for i in range(int(seconds * FPS)):
        t = i / FPS
        boxes = np.array(model_boxes, np.float32).reshape(-1, 4)
        model = Detections(boxes, np.ones(len(boxes), np.float32), np.zeros(len(boxes), np.int32))
        for box in detector.update(scene(t, objects(t) if callable(objects) else objects), t, model).xyxy:
            found.setdefault(tuple(int(v) for v in box), t)
    return found


def test_object_that_arrives_and_stays_is_found_within_seconds():
    found = run([(150, 120, 15, 99)])
    assert len(found) == 1
    (x1, y1, x2, y2), first = next(iter(found.items()))
    assert abs(x1 - 150) <= 3 and abs(y1 - 120) <= 3 and abs(x2 - 174) <= 3 and abs(y2 - 136) <= 3
    assert 15 < first <= 25


@pytest.mark.parametrize(
    "objects",
    [
        [(150, 120, 0, 99)],  # part of the scene from the first frame
        [(150, 120, 0, 20)],  # there at the start, then taken away: a ghost
        lambda t: [(int(10 + 8 * t), 120, 0, 99)],  # moving across the scene
        [(150, 120, 15, 17)],  # dropped and picked up at once
    ],
    ids=["present from the start", "removed (ghost)", "moving", "brief"],
)
def test_not_new_or_not_static_is_not_reported(objects):
    assert run(objects) == {}


def test_area_the_model_already_reports_is_masked():
    assert run([(150, 120, 15, 99)], model_boxes=[(140, 110, 190, 150)]) == {}
