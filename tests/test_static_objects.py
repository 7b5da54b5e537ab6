"""The static-new-object detector on synthetic scenes: what arrives and stays is reported;
what was there from the start, what moves, what leaves (a ghost), and what only the light
changed (a cloud, an exposure jump, a shadow, with paving slabs that brighten and darken on
their own) is not; a change of the whole scene is rejected as such, and a bag dropped during
a cloud is still found."""

import cv2
import numpy as np
import pytest
from conftest import asset

from detector.config.schema import StaticObjectsConfig
from detector.detect.static_objects import Rejection, StaticObjectDetector
from detector.detections import Detections
from detector.operator.explain import describe_static

SIZE = (240, 320)  # height, width: the detector's work width, so boxes map 1:1
FPS = 2
SLABS = [(x, y) for x in range(20, 320, 80) for y in range(20, 240, 80)]  # bright 20 px squares


def ground(seed: int) -> np.ndarray:
    """Dark ground textured in 8 px cells (a seed per camera view)."""
    cells = np.random.default_rng(seed).integers(30, 50, (SIZE[0] // 8, SIZE[1] // 8), dtype=np.uint8)
    return np.kron(cells, np.ones((8, 8), np.uint8))


GROUND = ground(1)
TURNED = np.kron(np.indices((SIZE[0] // 8, SIZE[1] // 8)).sum(axis=0) % 2 * 120 + 30, np.ones((8, 8))).astype(
    np.uint8
)  # a brick wall


def scene(t: float, objects, light=None, view=GROUND) -> np.ndarray:
    """The ground with slabs and bright objects (x, y, from_s, until_s), lit by `light(t)`: a
    gain, scalar or per pixel."""
    rng = np.random.default_rng(int(t * FPS))  # fresh sensor noise per frame
    image = (view + rng.integers(0, 6, SIZE, dtype=np.uint8)).astype(np.float32)
    for x, y in SLABS:
        image[y : y + 20, x : x + 20] = 170
    for x, y, start, stop in objects:
        if start <= t < stop:
            image[y : y + 16, x : x + 24] = 160
    if light is not None:
        image *= light(t)
    return np.repeat(np.clip(image, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def cloud(t: float, start=12.0, ramp=3.0, hold=12.0, depth=0.4) -> float:
    """The gain of a cloud: down by `depth` over `ramp` s, held `hold` s, back over `ramp` s."""
    fall, rise = (t - start) / ramp, (start + 2 * ramp + hold - t) / ramp
    return 1 - depth * float(np.clip(min(fall, rise), 0, 1))


def exposure_jump(t: float) -> float:
    return 1.0 if t < 20 else 1.35


def shadow(t: float, falls=True) -> np.ndarray:
    """The shadow of a building over the left 40 % of the frame, falling (or lifting) over 2 s
    from 15 s on."""
    edge = np.clip((128 - np.arange(SIZE[1])) / 10, 0, 1)  # a 10 px penumbra
    darkness = min(max(t - 15, 0) / 2, 1)
    return 1 - 0.5 * (darkness if falls else 1 - darkness) * edge[None, :]


def shadow_lifts(t: float) -> np.ndarray:
    return shadow(t, falls=False)


def run(objects, seconds=40.0, model_boxes=(), light=None, views=lambda t: GROUND, camera=None):
    """{box: first ts} of every static object found, and the detector's report of each frame.
    `camera(t, image) -> image`: what the camera does to the scene (a knock, fog)."""
    detector = StaticObjectDetector(StaticObjectsConfig(), class_id=80)
    found, reports = {}, {}
    for i in range(int(seconds * FPS)):
        t = i / FPS
        boxes = np.array(model_boxes, np.float32).reshape(-1, 4)
        model = Detections(boxes, np.ones(len(boxes), np.float32), np.zeros(len(boxes), np.int32))
        image = scene(t, objects(t) if callable(objects) else objects, light, views(t))
        image = image if camera is None else camera(t, image)
        for box in detector.update(image, t, model).xyxy:
            found.setdefault(tuple(int(v) for v in box), t)
        reports[t] = detector.last
    return found, reports


@pytest.mark.parametrize(
    "light",
    [None, cloud, exposure_jump, shadow, shadow_lifts],
    ids=[
        "steady light",
        "dropped during a cloud",
        "dropped after an exposure jump",
        "shadow falls beside",
        "shadow lifts beside",
    ],
)
def test_object_that_arrives_and_stays_is_found_within_seconds(light):
    found, _ = run([(150, 120, 15, 99)], light=light)
    # one object: its box may grow over a frame or two and move by a pixel as the light changes
    assert all(147 <= x1 and 117 <= y1 and x2 <= 177 and y2 <= 139 for x1, y1, x2, y2 in found)
    assert any(x1 <= 153 and y1 <= 123 and 171 <= x2 and 133 <= y2 for x1, y1, x2, y2 in found)
    assert 15 < min(found.values()) <= 25


@pytest.mark.parametrize(
    "objects, light",
    [
        ([(150, 120, 0, 99)], None),  # part of the scene from the first frame
        ([(150, 120, 0, 20)], None),  # there at the start, then taken away: a ghost
        (lambda t: [(int(10 + 8 * t), 120, 0, 99)], None),  # moving across the scene
        ([(150, 120, 15, 17)], None),  # dropped and picked up at once
        ([], cloud),  # the whole scene dims by 40 % over 3 s for 12 s, then clears
        ([], exposure_jump),  # auto-exposure: 35 % brighter from one frame to the next
        ([], shadow),  # a shadow halves the light on part of the frame
        ([], shadow_lifts),  # ... or lifts from it
    ],
    ids=[
        "present from the start",
        "removed (ghost)",
        "moving",
        "brief",
        "cloud",
        "exposure jump",
        "shadow falls",
        "shadow lifts",
    ],
)
def test_not_new_or_not_static_is_not_reported(objects, light):
    assert run(objects, light=light)[0] == {}


def test_area_the_model_already_reports_is_masked():
    found, reports = run([(150, 120, 15, 99)], model_boxes=[(140, 110, 190, 150)])
    assert found == {}
    assert reports[39.5].counts() == {Rejection.OCCUPIED: 1}


@pytest.mark.parametrize(
    "light, views, at_s, reason, brightness",
    [
        (cloud, lambda t: GROUND, 24.0, Rejection.LIGHTING, 0.6),  # mid-cloud: the slabs
        (None, lambda t: GROUND if t < 20 else TURNED, 20.0, Rejection.SCENE_CHANGE, 1.0),  # camera turned
    ],
    ids=["cloud", "camera turned"],
)
def test_rejected_blobs_say_why(light, views, at_s, reason, brightness):
    """From `at_s` on (for 5 s), blobs are rejected for `reason`, at the scene's `brightness`."""
    found, reports = run([], seconds=at_s + 5, light=light, views=views)
    assert found == {}
    assert any(reason in reports[t].counts() for t in reports if t >= at_s)
    assert reports[at_s].brightness == pytest.approx(brightness, abs=0.1)


def test_explain_says_why_blobs_were_rejected():
    _, reports = run([], seconds=25, light=cloud)
    lines = describe_static(sorted(reports.items())[1:])  # the first frame only starts the models
    assert len(lines) == 1 and lines[0].startswith("  static-object detector: up to 12 blobs rejected in ")
    head, brightness = lines[0].removesuffix(" %)").split("scene brightness ")
    assert head.endswith(": lighting (the light changed: ")
    assert -45 <= int(brightness) <= -30  # a 40 % cloud, seen on dark ground (GAIN_DARK evens out noise)


def test_real_footage_under_a_cloud_raises_no_static_object():
    """vtest (2 fps) under a 40 % cloud from 15 s: before relighting, 14 blobs at once across the
    frame and two in the empty grass of the scenario garbage zone."""
    capture = cv2.VideoCapture(str(asset("sample_videos/clips/vtest.avi")))
    detector = StaticObjectDetector(StaticObjectsConfig(), class_id=80)
    most, in_zone, index = 0, 0, 0
    while (frame := capture.read()[1]) is not None:
        t = index / 10
        if index % 5 == 0:
            image = np.clip(frame * cloud(t, start=15.0), 0, 255).astype(np.uint8)
            boxes = detector.update(image, t, Detections.empty()).xyxy / [768, 576, 768, 576]
            most = max(most, len(boxes))
            in_zone += int(((boxes[:, 0] >= 0.70) & (boxes[:, 3] >= 0.83)).sum())  # garbage zone, bottom right
        index += 1
    assert in_zone == 0 and most <= 3  # what remains are people standing: the model masks them


def knocked(t: float, image: np.ndarray, at_s=20.0, dx=7, dy=3) -> np.ndarray:
    """The camera knocked at `at_s`: the whole view shifted by (dx, dy) px for good."""
    if t < at_s:
        return image
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def fogged(t: float, image: np.ndarray, start=70.0, stop=100.0, density=0.8) -> np.ndarray:
    """Fog from `start` to `stop`: the scene washed towards grey, its contrast down to a fifth."""
    if not start <= t < stop:
        return image
    return np.clip(image * (1 - density) + 110 * density, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "objects, camera, seconds, expected",
    [
        # the scene's slabs and an object there from the start, all shifted by 7, 3 px: nothing new
        ([(150, 120, 0, 999)], knocked, 60, {}),
        # a bag dropped after the knock is still found, where it lies
        ([(150, 120, 30, 999)], knocked, 60, {"found from": 30}),
        # fog washes out the object that was always there; when it clears, it is not new
        ([(150, 120, 0, 999)], fogged, 130, {}),
        # a bag dropped during the fog (as washed out as the rest: under the threshold) is found
        # once the fog lifts at 100 s
        ([(150, 120, 80, 999)], fogged, 130, {"found from": 100}),
    ],
    ids=["knock", "bag after a knock", "fog clears", "bag dropped in fog"],
)
def test_the_camera_knocked_or_fogged_makes_nothing_new(objects, camera, seconds, expected):
    found, reports = run(objects, seconds=seconds, camera=camera)
    if not expected:
        assert found == {}
        return
    assert found and all(140 <= x1 and 110 <= y1 and x2 <= 190 and y2 <= 150 for x1, y1, x2, y2 in found)
    assert expected["found from"] < min(found.values()) <= expected["found from"] + 10


def test_fog_clearing_says_the_blobs_were_there_before():
    _, reports = run([(150, 120, 0, 999)], seconds=130, camera=fogged)
    assert any(Rejection.KNOWN in r.counts() for t, r in reports.items() if 100 <= t < 115)
