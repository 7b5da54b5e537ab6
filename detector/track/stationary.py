"""Tracking built for stationary objects.

Why not a library tracker: ByteTrack/norfair/SORT predict motion with a Kalman filter and
forget a lost track after a number of *frames*. What we need is the opposite: an object that
stopped keeps its identity and its settle time for `memory_s` *seconds* of stream time without
any detection (a pedestrian in front of a parked car, a bus passing a stall), and it is matched
back by overlap with where it settled, not by a predicted motion that would drift while it is
hidden. That fits in a greedy IoU matcher with a per-track settle point; supervision's ByteTrack
(the nearest fit) would also pull matplotlib and friends onto edge boxes.

Identity (detector/track/appearance.py): when detections carry `data["appearance"]` signatures,
a stationary object keeps the look it had when it became stationary. A box on its place that looks
different is another object (the parked car left, another parked): it does not continue the track,
and once stationary it says which object it replaced (`replaces`), so the rules end the old alert
and give the newcomer its own dwell. A box that looks the same is the same object, whatever its
box did meanwhile.

Occlusion: a stationary object that is not seen while another detected object covers most of its
place (a bus at a stop in front of a parked car) is reported as `hidden` at its settled box for up
to OCCLUSION_MAX_S, so that its timers neither pass nor reset as they would for an object gone.

Not looked at (motion gating, detector/detect/focus.py): a track whose place lies in a region the
model skipped this frame is *carried* at its last box, flagged `carried`, if it was seen when its
place was last looked at: nothing moved there, so it is where it was. The frame does not count
for or against its presence (it was neither seen nor missed). Looked at and not seen, it is
missed as ever.
"""

from collections import Counter
from dataclasses import dataclass

import numpy as np

from detector.detections import Detections
from detector.track.appearance import same_object
from detector.zones.geometry import Coverage, box_centres, box_containment, box_iou, box_size

SAME_CLASS_BONUS = 0.2  # prefer continuing a track of the same class when overlaps are close
MAX_TRACKS = 1000  # a hard cap so a pathological scene cannot grow memory without bound
OCCLUDED_CONTAINMENT = 0.85  # a box mostly inside the settled box is its visible part
# A stationary object is seen in at least this share of the frames since it settled. Sparse
# detections of *different* objects passing one spot (a queue of cars far up a road, each
# caught in one frame out of several) would otherwise chain into one "parked" track.
MIN_PRESENCE = 0.5
COMPARABLE_IOU = 0.5  # boxes overlapping this much show one place: their looks can be compared
OCCLUDER_COVER = 0.6  # an unseen stationary object with this much of its place under another box is hidden
OCCLUSION_MAX_S = 120.0  # a bus at a stop, a delivery truck; longer, and the place is judged anew


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
    stationary: bool = False
    appearance: np.ndarray | None = None  # its look when it became stationary (needs signatures)
    replaces: int = 0  # the differently-looking stationary object whose place it took
    hidden_since: float | None = None
    missed: bool = False  # its place was looked at and it was not seen there

    @property
    def mean_score(self) -> float:
        return self.score_sum / max(self.hits, 1)

    @property
    def presence(self) -> float:
        return self.hits_since_settle / max(self.frames_since_settle, 1)

    @property
    def label(self) -> int:
        return self.class_votes.most_common(1)[0][0]


@dataclass(frozen=True)
class _FormerPlace:
    """Where a stationary object stood before it moved off, and how it looked there."""

    box: np.ndarray
    appearance: np.ndarray
    track_id: int
    until: float


class StationaryTracker:
    """`update(detections, ts) -> Detections` with `tracker_id` and, in `data`:

    - `settled_since` (float seconds): when the object came to rest where it is now;
    - `stationary` (bool): it has stayed put for at least `settle_s`, seen in at least
      MIN_PRESENCE of the frames since;
    - `mean_score` (float): its average confidence over the track;
    - `replaces` (int): once stationary, the id of a stationary object whose place it took and
      which looked different (0: none, the same look, or no appearance signatures);
    - `hidden` (bool): not a detection of this frame but a stationary object hidden behind one
      (its settled box, after the frame's detections);
    - `carried` (bool): not a detection of this frame but an object where the model did not look
      (its last box, after the frame's detections and the hidden ones).

    A track that is not seen is kept (and can be matched again) for `memory_s`; the place and look
    of a stationary object that left, for `places_s` (default memory_s; the rules' longest cooldown,
    so that another object on that place is not silenced as if it were the one that left).
    """

    def __init__(
        self, *, settle_s: float, tolerance: float, match_iou: float, memory_s: float, places_s: float | None = None
    ) -> None:
        self.settle_s = settle_s
        self.tolerance = tolerance
        self.match_iou = match_iou
        self.memory_s = memory_s
        self.places_s = memory_s if places_s is None else places_s
        self.tracks: list[Track] = []
        self._former: list[_FormerPlace] = []
        self._next_id = 1

    def update(self, detections: Detections, ts: float, coverage: Coverage | None = None) -> Detections:
        """The frame's tracks; `coverage`: where the model looked (None: the whole frame)."""
        self._forget(ts)
        unlooked = self._unlooked(coverage)
        for track in self.tracks:
            if track.id not in unlooked:
                track.frames_since_settle += 1
        looks = detections.data.get("appearance")
        matches = self._match(detections, looks)
        n = len(detections)
        ids, replaces = np.zeros(n, np.int64), np.zeros(n, np.int64)
        settled, scores = np.zeros(n, np.float64), np.zeros(n, np.float32)
        stationary = np.zeros(n, bool)
        for i in range(n):
            box = detections.xyxy[i]
            track = matches.get(i) or self._new_track(box, ts)
            self._observe(track, box, int(detections.class_id[i]), float(detections.confidence[i]), ts)
            if looks is not None and track.stationary and track.appearance is None:
                track.appearance = looks[i]
                track.replaces = self._replaced(track, ts)
                if track.replaces == track.id:  # it followed one object off and another onto its place
                    track.id, self._next_id = self._next_id, self._next_id + 1
            ids[i], settled[i], scores[i], replaces[i] = track.id, track.settled_since, track.mean_score, track.replaces
            stationary[i] = track.stationary
        if len(self.tracks) > MAX_TRACKS:
            self.tracks.sort(key=lambda t: t.last_seen)
            del self.tracks[: len(self.tracks) - MAX_TRACKS]
        tracked = Detections(detections.xyxy, detections.confidence, detections.class_id, ids, dict(detections.data))
        tracked = tracked.with_data(
            settled_since=settled,
            stationary=stationary,
            mean_score=scores,
            replaces=replaces,
            hidden=np.zeros(n, bool),
            carried=np.zeros(n, bool),
        )
        seen = set(ids.tolist())
        hidden = self._hidden(detections, seen | unlooked, ts)
        carried = self._carried(unlooked - seen, ts)
        accounted = seen | unlooked | {t.id for t in hidden}
        for track in self.tracks:
            track.missed = track.missed or track.id not in accounted
        unseen = [self._unseen(tracks, detections, flag) for tracks, flag in ((hidden, "hidden"), (carried, "carried")) if tracks]
        return Detections.merge([tracked, *unseen]) if unseen else tracked

    def _forget(self, ts: float) -> None:
        self.tracks = [t for t in self.tracks if ts - t.last_seen <= self.memory_s]
        self._former = [p for p in self._former if p.until >= ts]

    def _match(self, detections: Detections, looks: np.ndarray | None) -> dict[int, Track]:
        """Greedy assignment by overlap (plus a same-class bonus) with where the track is now or
        where it settled: a box that jumped back (a headlight sweep, a shadow over a bag, the car
        seen whole again after a bus) finds its stationary object, and so does a box of the same
        class inside the settled one (its visible part), at the lowest affinity that matches. A
        box on a stationary object's place that looks like another object does not continue it."""
        if not self.tracks or not len(detections):
            return {}
        last = box_iou(detections.xyxy, np.stack([t.box for t in self.tracks]))
        settled_boxes = np.stack([t.settled_box for t in self.tracks])
        on_place = box_iou(detections.xyxy, settled_boxes)
        iou = np.maximum(last, on_place)
        same_class = detections.class_id[:, None] == np.array([t.label for t in self.tracks])[None, :]
        visible_part = same_class & (box_containment(detections.xyxy, settled_boxes) >= OCCLUDED_CONTAINMENT)
        iou = np.where(visible_part, np.maximum(iou, self.match_iou), iou)
        affinity = iou + SAME_CLASS_BONUS * same_class
        affinity[iou < self.match_iou] = -1
        # a box of another class continues a stationary object only on its very place (a label
        # flicker), not by grazing it (a lorry stopping in front of a parked car)
        still = np.array([t.stationary for t in self.tracks])
        affinity[~same_class & still[None, :] & (iou < COMPARABLE_IOU)] = -1
        if looks is not None:
            for d, t in zip(*np.nonzero((affinity >= 0) & (on_place >= COMPARABLE_IOU))):
                known = self.tracks[t].appearance
                if known is not None and not same_object(known, looks[d]):
                    affinity[d, t] = -1
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
        track = Track(
            id=self._next_id,
            box=box,
            class_votes=Counter(),
            last_seen=ts,
            settled_box=box,
            settled_since=ts,
            frames_since_settle=1,
        )
        self._next_id += 1
        self.tracks.append(track)
        return track

    def _observe(self, track: Track, box: np.ndarray, class_id: int, score: float, ts: float) -> None:
        track.box = box
        track.last_seen = ts
        track.hidden_since = None
        track.missed = False
        track.class_votes[class_id] += 1
        track.score_sum += score
        track.hits += 1
        track.hits_since_settle += 1
        if not self._in_place(box, track.settled_box):
            if track.appearance is not None:  # it leaves its place: remember how it looked there
                self._former.append(_FormerPlace(track.settled_box, track.appearance, track.id, ts + self.places_s))
                del self._former[:-MAX_TRACKS]
            track.settled_box = box
            track.settled_since = ts
            track.frames_since_settle = track.hits_since_settle = 1
            track.appearance, track.replaces = None, 0
        self._settle(track, ts)

    def _settle(self, track: Track, ts: float) -> None:
        track.stationary = ts - track.settled_since >= self.settle_s - 1e-9 and track.presence >= MIN_PRESENCE

    def _replaced(self, track: Track, ts: float) -> int:
        """The stationary object that stood on this track's place (left, or not seen now, or this
        very track before it moved: a tracker at a few frames a second can follow one car off and
        pick up another arriving), when this one looks different from every such object; else 0
        (one that looks the same is this object, re-identified; none: a free place)."""
        others = [
            (t.settled_box, t.appearance, t.id)
            for t in self.tracks
            if t is not track and t.appearance is not None and t.last_seen < ts
        ]
        others += [(p.box, p.appearance, p.track_id) for p in self._former]
        best, replaced = COMPARABLE_IOU, 0
        for box, look, track_id in others:
            overlap = float(box_iou(track.settled_box[None], box[None])[0, 0])
            if overlap < COMPARABLE_IOU:
                continue
            if same_object(look, track.appearance):
                return 0
            if overlap >= best:
                best, replaced = overlap, track_id
        return replaced

    def _hidden(self, detections: Detections, seen: set[int], ts: float) -> list[Track]:
        """Stationary objects not seen now whose place is mostly under one of this frame's boxes."""
        hidden = []
        for track in self.tracks if len(detections) else ():
            if track.id in seen or not track.stationary:
                continue
            if box_containment(track.settled_box[None], detections.xyxy)[0].max() < OCCLUDER_COVER:
                track.hidden_since = None
                continue
            if track.hidden_since is None:
                track.hidden_since = ts
            if ts - track.hidden_since > OCCLUSION_MAX_S:
                continue
            # present, as far as anyone can tell: its presence and memory count from now
            track.last_seen = ts
            track.hits_since_settle += 1
            hidden.append(track)
        return hidden

    def _unlooked(self, coverage: Coverage | None) -> set[int]:
        """Ids of the tracks whose last box lies where the model did not look this frame."""
        if coverage is None or not self.tracks:
            return set()
        outside = coverage.not_looked_at(np.stack([t.box for t in self.tracks]))
        return {t.id for t, out in zip(self.tracks, outside) if out}

    def _carried(self, unlooked: set[int], ts: float) -> list[Track]:
        """Tracks not looked at that were seen when their place was last looked at: still there
        as far as anyone can tell (their memory counts from now; their presence stands)."""
        carried = [t for t in self.tracks if t.id in unlooked and not t.missed]
        for track in carried:
            track.last_seen = ts
            self._settle(track, ts)  # its time in place passes
        return carried

    @staticmethod
    def _unseen(tracks: list[Track], detections: Detections, flag: str) -> Detections:
        """Tracks not detected this frame as rows after the detections (`flag` set): a hidden one
        at its settled box, a carried one at its last box."""
        if not tracks:
            return Detections.empty()
        count = len(tracks)
        boxes = [t.settled_box if flag == "hidden" else t.box for t in tracks]
        return Detections(
            xyxy=np.stack(boxes).astype(np.float32),
            confidence=np.array([t.mean_score for t in tracks], np.float32),
            class_id=np.array([t.label for t in tracks], np.int32),
            tracker_id=np.array([t.id for t in tracks], np.int64),
            data={
                **{k: np.zeros((count, *v.shape[1:]), v.dtype) for k, v in detections.data.items()},
                "settled_since": np.array([t.settled_since for t in tracks], np.float64),
                "stationary": np.array([t.stationary for t in tracks], bool),
                "mean_score": np.array([t.mean_score for t in tracks], np.float32),
                "replaces": np.array([t.replaces for t in tracks], np.int64),
                "hidden": np.full(count, flag == "hidden"),
                "carried": np.full(count, flag == "carried"),
            },
        )

    def _in_place(self, box: np.ndarray, settled: np.ndarray) -> bool:
        """Still where it settled: its centre drifted less than `tolerance` x its size, or the
        box is the visible part of the settled one (partly occluded by a passer-by)."""
        pair = np.stack([box, settled])
        centres = box_centres(pair)
        drift = float(np.linalg.norm(centres[0] - centres[1])) / float(box_size(settled[None])[0])
        if drift <= self.tolerance:
            return True
        return float(box_containment(box[None], settled[None])[0, 0]) >= OCCLUDED_CONTAINMENT
