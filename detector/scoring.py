"""Score alert events against ground truth: precision, recall, F1 and alarm latency per type.

Rules (see sample_videos/README.md for the ground-truth format):

- only `start` events are alarms (`update`/`end` belong to an alarm already counted);
- an alarm matches a ground-truth event of the same type (and zone, when the event names one)
  when `begin_s <= alarm.stream_time_s <= (end_s or +inf) + tolerance_s`;
- each ground-truth event is matched at most once, by its earliest matching alarm; alarms are
  taken in stream-time order and each goes to the open event that began earliest;
- alarms left unmatched are false alarms (a second alarm for one event included); events left
  unmatched are misses;
- latency of a match = alarm.stream_time_s - begin_s.

Undefined ratios are None (printed `-`): precision with no alarms, recall with no ground-truth
events, F1 when precision or recall is undefined or both are 0. A clip with no events and no
alarms therefore scores TP 0, FP 0, FN 0 and `-` everywhere: nothing to find, nothing raised.
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.alerts.alert import Alert, AlertEvent
from detector.config.load import read_yaml
from detector.rules.violations import RULE_TYPES

VIOLATION_TYPES = tuple(rule.type for rule in RULE_TYPES)
DEFAULT_TOLERANCE_S = 10.0


# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class GroundTruthEvent:
    type: str
    begin_s: float
    end_s: float | None = None  # None: lasts past the end of the clip
    zone: str | None = None  # None: any zone of the camera matches
    note: str = ""

    def accepts(self, alarm: Alarm, tolerance_s: float) -> bool:
        if alarm.type != self.type or (self.zone is not None and alarm.zone != self.zone):
            return False
        end = math.inf if self.end_s is None else self.end_s
        return self.begin_s <= alarm.stream_time_s <= end + tolerance_s

    def describe(self) -> str:
        end = "end" if self.end_s is None else f"{self.end_s:g}s"
        zone = self.zone or "any zone"
        return f"{self.type} @ {zone} {self.begin_s:g}s-{end}" + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class GroundTruth:
    events: tuple[GroundTruthEvent, ...]
    camera: str | None = None
    clip: str | None = None
    nuisances: tuple[str, ...] = ()  # the nuisance types of a robustness clip (detector/suite_scoring.py)


@dataclass(frozen=True)
class Alarm:
    type: str
    zone: str | None
    stream_time_s: float
    camera: str | None = None
    id: str | None = None

    @classmethod
    def from_alert(cls, alert: Alert) -> Alarm:
        return cls(type=alert.type, zone=alert.zone, stream_time_s=float(alert.stream_time_s), camera=alert.camera, id=alert.id)

    def describe(self) -> str:
        ident = f" [{self.id}]" if self.id else ""
        return f"{self.type} @ {self.zone or '?'} {self.stream_time_s:g}s{ident}"


def _as_float(value: Any, where: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    # not `math.isfinite`: it raises OverflowError for an integer beyond any float
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) <= sys.float_info.max:
        kind = "a number or null" if allow_none else "a number"
        raise ValueError(f"{where}: must be {kind}, got {value!r}")
    return float(value)


_EVENT_KEYS = {"type", "zone", "begin_s", "end_s", "note"}
_TOP_KEYS = {"clip", "camera", "events", "note", "nuisances"}


def parse_ground_truth(data: Any, source: str = "ground truth") -> GroundTruth:
    """Validate a parsed ground-truth document; ValueError names the file and the problem."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping with an `events` list, got {type(data).__name__}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    if "events" not in data:
        raise ValueError(f"{source}: missing key `events` (use `events: []` for a clip with no violation)")
    raw_events = data["events"]
    if raw_events is None:
        raw_events = []
    if not isinstance(raw_events, list):
        raise ValueError(f"{source}: `events` must be a list, got {type(raw_events).__name__}")
    events = []
    for i, item in enumerate(raw_events):
        where = f"{source}: events[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a mapping, got {item!r}")
        unknown = sorted(set(item) - _EVENT_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_EVENT_KEYS))})")
        kind = item.get("type")
        if kind not in VIOLATION_TYPES:
            raise ValueError(f"{where}.type: must be one of {', '.join(VIOLATION_TYPES)}, got {kind!r}")
        if "begin_s" not in item:
            raise ValueError(f"{where}: missing key `begin_s`")
        begin = _as_float(item["begin_s"], f"{where}.begin_s")
        end = _as_float(item.get("end_s"), f"{where}.end_s", allow_none=True)
        if begin < 0:
            raise ValueError(f"{where}.begin_s: must be >= 0, got {begin:g}")
        if end is not None and end < begin:
            raise ValueError(f"{where}.end_s: {end:g} is before begin_s {begin:g}")
        zone = item.get("zone")
        if zone is not None and not isinstance(zone, str):
            raise ValueError(f"{where}.zone: must be a zone id (string) or omitted, got {zone!r}")
        events.append(GroundTruthEvent(kind, begin, end, zone or None, str(item.get("note") or "")))
    nuisances = data.get("nuisances")
    if nuisances is None:
        nuisances = []
    if not isinstance(nuisances, list) or not all(isinstance(n, str) and n for n in nuisances):
        raise ValueError(f"{source}: `nuisances` must be a list of nuisance types (strings), got {nuisances!r}")
    camera = data.get("camera")
    clip = data.get("clip")
    return GroundTruth(
        tuple(events), None if camera is None else str(camera), None if clip is None else str(clip), tuple(nuisances)
    )


def load_ground_truth(path: str | Path) -> GroundTruth:
    """Read and validate a ground-truth file (ConfigError if unreadable, ValueError if invalid)."""
    return parse_ground_truth(read_yaml(path, "ground truth"), str(path))


def load_events(path: str | Path, *, strict: bool = False, warnings: list[str] | None = None) -> list[Alert]:
    """The alerts of an events.jsonl, in file order.

    Blank lines are ignored. A line that is not a detector.alert/1 payload is skipped and
    described in `warnings` (when a list is given); with `strict=True` it raises ValueError
    instead. A missing or unreadable file raises ValueError.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValueError(f"events file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read events {path}: {exc}") from None
    alerts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            alerts.append(Alert.from_bytes(line.encode()))
        except ValueError as exc:
            message = f"{path}:{number}: {exc}"
            if strict:
                raise ValueError(message) from None
            if warnings is not None:
                warnings.append(message + " (line skipped)")
    return alerts


def load_alerts(path: str | Path, warnings: list[str]) -> list[Alert]:
    """`load_events` for scoring: ValueError for a file none of whose lines is an alert (scored,
    it would show every violation as missed); the lines skipped go to `warnings`."""
    skipped: list[str] = []
    alerts = load_events(path, warnings=skipped)
    if skipped and not alerts:
        raise ValueError(f"{path}: not an events file: none of its {len(skipped)} lines is a detector.alert/1 payload")
    warnings.extend(skipped)
    return alerts


# ---------------------------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True)
class Match:
    alarm: Alarm
    event: GroundTruthEvent

    @property
    def latency_s(self) -> float:
        return self.alarm.stream_time_s - self.event.begin_s


@dataclass(frozen=True)
class TypeScore:
    type: str  # a violation type, or "all"
    ground_truth: int
    alarms: int
    tp: int
    fp: int
    fn: int
    latency_median_s: float | None
    latency_max_s: float | None

    @property
    def precision(self) -> float | None:
        return None if self.alarms == 0 else self.tp / self.alarms

    @property
    def recall(self) -> float | None:
        return None if self.ground_truth == 0 else self.tp / self.ground_truth

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None
        return 2 * p * r / (p + r)

    def cells(self) -> tuple[str, ...]:
        """gt, alarms, tp, fp, fn, precision, recall, f1, latency median and max, as printed."""
        counts = (self.ground_truth, self.alarms, self.tp, self.fp, self.fn)
        ratios = (_ratio(self.precision), _ratio(self.recall), _ratio(self.f1))
        return (*map(str, counts), *ratios, _seconds(self.latency_median_s), _seconds(self.latency_max_s))


@dataclass(frozen=True)
class Score:
    rows: tuple[TypeScore, ...]  # one per violation type, then "all"
    matches: tuple[Match, ...]
    misses: tuple[GroundTruthEvent, ...]
    false_alarms: tuple[Alarm, ...]
    tolerance_s: float
    ignored_cameras: tuple[str, ...] = field(default=())  # alarms of other cameras, not scored

    def row(self, kind: str) -> TypeScore:
        for row in self.rows:
            if row.type == kind:
                return row
        raise KeyError(kind)

    @property
    def overall(self) -> TypeScore:
        return self.row("all")


def score(alarms: list[Alarm | Alert], ground_truth: GroundTruth, tolerance_s: float = DEFAULT_TOLERANCE_S) -> Score:
    """Match alarms to ground truth. `alarms` may be Alarm objects or alerts (only `start`
    events count). When the ground truth names a camera, alarms of other cameras are left out
    (and listed in `ignored_cameras`)."""
    if tolerance_s < 0:
        raise ValueError(f"tolerance must be >= 0 seconds, got {tolerance_s:g}")
    converted: list[Alarm] = []
    for item in alarms:
        if isinstance(item, Alarm):
            converted.append(item)
        elif item.event is AlertEvent.START:
            converted.append(Alarm.from_alert(item))
    ignored: set[str] = set()
    if ground_truth.camera is not None:
        kept = []
        for alarm in converted:
            if alarm.camera is not None and alarm.camera != ground_truth.camera:
                ignored.add(alarm.camera)
            else:
                kept.append(alarm)
        converted = kept
    ordered = sorted(converted, key=lambda a: a.stream_time_s)
    events = sorted(ground_truth.events, key=lambda e: e.begin_s)
    open_events = list(range(len(events)))
    matches: list[Match] = []
    false_alarms: list[Alarm] = []
    for alarm in ordered:
        for position, index in enumerate(open_events):
            if events[index].accepts(alarm, tolerance_s):
                matches.append(Match(alarm, events[index]))
                del open_events[position]
                break
        else:
            false_alarms.append(alarm)
    misses = [events[i] for i in open_events]

    kinds = list(VIOLATION_TYPES) + sorted({a.type for a in ordered} - set(VIOLATION_TYPES))
    rows = [
        _row(
            k, [e for e in events if e.type == k], [a for a in ordered if a.type == k], [m for m in matches if m.event.type == k]
        )
        for k in kinds
    ]
    rows.append(_row("all", events, ordered, matches))
    return Score(tuple(rows), tuple(matches), tuple(misses), tuple(false_alarms), tolerance_s, tuple(sorted(ignored)))


def _row(kind: str, events: list, alarms: list, matches: list[Match]) -> TypeScore:
    latencies = [m.latency_s for m in matches]
    return TypeScore(
        type=kind,
        ground_truth=len(events),
        alarms=len(alarms),
        tp=len(matches),
        fp=len(alarms) - len(matches),
        fn=len(events) - len(matches),
        latency_median_s=statistics.median(latencies) if latencies else None,
        latency_max_s=max(latencies) if latencies else None,
    )


# ---------------------------------------------------------------------------------------------
# Report


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_report(result: Score) -> str:
    """A fixed-width table per type and overall, then the matches, misses and false alarms."""
    header = ("type", "gt", "alarms", "tp", "fp", "fn", "precision", "recall", "f1", "lat_med_s", "lat_max_s")
    widths = (16, 4, 7, 4, 4, 4, 10, 7, 5, 10, 10)
    lines = ["".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("-" * sum(widths))
    for row in result.rows:
        if row.type == "all":
            lines.append("-" * sum(widths))
        cells = (row.type, *row.cells())
        lines.append("".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    lines.append(f"(alarm = `start` event; matched within [begin_s, end_s + {result.tolerance_s:g} s])")
    if result.matches:
        lines.append("")
        lines.append("matches:")
        for m in sorted(result.matches, key=lambda m: m.alarm.stream_time_s):
            lines.append(f"  {m.alarm.describe()}  <-  {m.event.describe()}  latency {m.latency_s:.1f} s")
    if result.misses:
        lines.append("")
        lines.append("misses (no alarm):")
        lines.extend(f"  {e.describe()}" for e in result.misses)
    if result.false_alarms:
        lines.append("")
        lines.append("false alarms:")
        lines.extend(f"  {a.describe()}" for a in result.false_alarms)
    if result.ignored_cameras:
        lines.append("")
        lines.append(f"ignored alarms of other cameras: {', '.join(result.ignored_cameras)}")
    return "\n".join(lines)
