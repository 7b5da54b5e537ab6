"""Tracking built for stationary objects.

Why not a library tracker: ByteTrack/norfair/SORT predict motion with a Kalman filter and
forget a lost track after a number of *frames*. What we need is the opposite: an object that
stopped keeps its identity and its settle time for `memory_s` *seconds* of stream time without
any detection (a pedestrian in front of a parked car, a bus passing a stall), and it is matched
back by overlap with where it settled, not by a predicted motion that would drift while it is
hidden. That fits in a greedy IoU matcher with a per-track settle point; supervision's ByteTrack
(the nearest fit) would also pull matplotlib and friends onto edge boxes.
"""

from collections import Counter
from dataclasses import dataclass

import numpy as np

from detector.detections import Detections
from detector.zones.geometry import box_centres, box_containment, box_iou, box_size

SAME_CLASS_BONUS = 0.2  # prefer continuing a track of the same class when overlaps are close
MAX_TRACKS = 1000  # a hard cap so a pathological scene cannot grow memory without bound
OCCLUDED_CONTAINMENT = 0.85  # a box mostly inside the settled box is its visible part
# A stationary object is seen in at least this share of the frames since it settled. Sparse
# detections of *different* objects passing one spot (a queue of cars far up a road, each
# caught in one frame out of several) would otherwise chain into one "parked" track.
MIN_PRESENCE = 0.5


@dataclass
class Track:
    id: int
    box: np.ndarray
    class_votes: Counter
    last_seen: float
    settled_box: np.ndarray
    settled_since: float
    score_sum: float = 0.0
    hits: int = 0
    frames_since_settle: int = 0
    hits_since_settle: int = 0

    @property
    def mean_score(self) -> float:
        return self.score_sum / max(self.hits, 1)

    @property
    def presence(self) -> float:
        return self.hits_since_settle / max(self.frames_since_settle, 1)


class StationaryTracker:
    """`update(detections, ts) -> Detections` with `tracker_id` and, in `data`:

    - `settled_since` (float seconds): when the object came to rest where it is now;
    - `stationary` (bool): it has stayed put for at least `settle_s`, seen in at least
      MIN_PRESENCE of the frames since;
    - `mean_score` (float): its average confidence over the track.

    Only detections of this frame are returned; a track that is not seen is kept (and can be
    matched again) for `memory_s`.
    """

    def __init__(self, *, settle_s: float, tolerance: float, match_iou: float, memory_s: float) -> None:
        self.settle_s = settle_s
        self.tolerance = tolerance
        self.match_iou = match_iou
        self.memory_s = memory_s
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, detections: Detections, ts: float) -> Detections:
        self.tracks = [t for t in self.tracks if ts - t.last_seen <= self.memory_s]
        for track in self.tracks:
            track.frames_since_settle += 1
        matches = self._match(detections)
        ids = np.zeros(len(detections), np.int64)
        settled = np.zeros(len(detections), np.float64)
        scores = np.zeros(len(detections), np.float32)
        present = np.zeros(len(detections), bool)
        for i in range(len(detections)):
            box = detections.xyxy[i]
            track = matches.get(i) or self._new_track(box, ts)
            self._observe(track, box, int(detections.class_id[i]), float(detections.confidence[i]), ts)
            ids[i], settled[i], scores[i] = track.id, track.settled_since, track.mean_score
            present[i] = track.presence >= MIN_PRESENCE
        if len(self.tracks) > MAX_TRACKS:
            self.tracks.sort(key=lambda t: t.last_seen)
            del self.tracks[: len(self.tracks) - MAX_TRACKS]
        stationary = (ts - settled >= self.settle_s - 1e-9) & present
        tracked = Detections(detections.xyxy, detections.confidence, detections.class_id, ids, dict(detections.data))
        return tracked.with_data(settled_since=settled, stationary=stationary, mean_score=scores)

    def _match(self, detections: Detections) -> dict[int, Track]:
        """Greedy assignment by IoU with the track's last box (plus a same-class bonus)."""
        if not self.tracks or not len(detections):
            return {}
        track_boxes = np.stack([t.box for t in self.tracks])
        iou = box_iou(detections.xyxy, track_boxes)
        majority = np.array([t.class_votes.most_common(1)[0][0] for t in self.tracks])
        affinity = iou + SAME_CLASS_BONUS * (detections.class_id[:, None] == majority[None, :])
        affinity[iou < self.match_iou] = -1
        matches: dict[int, Track] = {}
        used: set[int] = set()
        for flat in np.argsort(-affinity, axis=None):
            d, t = np.unravel_index(flat, affinity.shape)
            if affinity[d, t] < 0:
                break
            if d in matches or t in used:
                continue
            matches[int(d)] = self.tracks[t]
            used.add(int(t))
        return matches

    def _new_track(self, box: np.ndarray, ts: float) -> Track:
        track = Track(id=self._next_id, box=box, class_votes=Counter(), last_seen=ts, settled_box=box, settled_since=ts,
                      frames_since_settle=1)
        self._next_id += 1
        self.tracks.append(track)
        return track

    def _observe(self, track: Track, box: np.ndarray, class_id: int, score: float, ts: float) -> None:
        track.box = box
        track.last_seen = ts
        track.class_votes[class_id] += 1
        track.score_sum += score
        track.hits += 1
        track.hits_since_settle += 1
        if not self._in_place(box, track.settled_box):
            track.settled_box = box
            track.settled_since = ts
            track.frames_since_settle = track.hits_since_settle = 1

    def _in_place(self, box: np.ndarray, settled: np.ndarray) -> bool:
        """Still where it settled: its centre drifted less than `tolerance` x its size, or the
        box is the visible part of the settled one (partly occluded by a passer-by)."""
        pair = np.stack([box, settled])
        centres = box_centres(pair)
        drift = float(np.linalg.norm(centres[0] - centres[1])) / float(box_size(settled[None])[0])
        if drift <= self.tolerance:
            return True
        return float(box_containment(box[None], settled[None])[0, 0]) >= OCCLUDED_CONTAINMENT
