"""Score a suite of replays at once: one row per clip, totals, and a table per nuisance type.

A suite is a folder of replays, `<camera>/events.jsonl` (what `detector replay --out` and
scripts/robustness.py write), and a folder of ground truth, `<camera>.gt.yaml`. Each clip is
scored by detector.scoring; on top of its matches, misses and false alarms a clip fails when

- an alarm comes later than its type's `max_latency_s` after the violation began (**late**), or
- a violation's alert ended and started again (**restarted**): the event accepts more than one
  `start` (the second is a false alarm too), or an alert it accepts sends its `end` before the
  event's `end_s` (for an event lasting past the clip: any `end`).

A clip's nuisance types come from its ground truth (`nuisances:`, written by
scripts/make_scenarios.py); the per-nuisance table counts a clip under each of its types.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from detector.alerts.alert import Alert, AlertEvent
from detector.scoring import (
    DEFAULT_TOLERANCE_S,
    Alarm,
    GroundTruth,
    GroundTruthEvent,
    Match,
    Score,
    load_alerts,
    load_ground_truth,
    score,
)

NO_NUISANCE = "(none)"  # the per-nuisance row of clips whose ground truth names no nuisance


@dataclass(frozen=True)
class ClipScore:
    clip: str
    ground_truth: GroundTruth
    score: Score
    late: tuple[Match, ...]
    restarted: tuple[GroundTruthEvent, ...]

    @property
    def nuisances(self) -> tuple[str, ...]:
        return self.ground_truth.nuisances or (NO_NUISANCE,)

    @property
    def passed(self) -> bool:
        return not (self.score.false_alarms or self.score.misses or self.late or self.restarted)

    def problems(self) -> list[str]:
        """One line per false alarm, miss, late alarm and restarted violation."""
        return (
            [f"false: {self.clip}: {alarm.describe()}" for alarm in self.score.false_alarms]
            + [f"missed: {self.clip}: {event.describe()}" for event in self.score.misses]
            + [f"late: {self.clip}: {m.alarm.describe()} {m.latency_s:.1f} s after {m.event.describe()}" for m in self.late]
            + [f"restarted: {self.clip}: {event.describe()}" for event in self.restarted]
        )


def score_clip(
    clip: str,
    alerts: list[Alert],
    ground_truth: GroundTruth,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    max_latency_s: Mapping[str, float] | None = None,
) -> ClipScore:
    """Score one replay's alerts (every event: `end`s count for restarts). `max_latency_s` is per
    violation type; a type it leaves out is never late."""
    result = score(alerts, ground_truth, tolerance_s)
    limits = max_latency_s or {}
    late = tuple(m for m in result.matches if m.latency_s > limits.get(m.event.type, math.inf))
    starts = [m.alarm for m in result.matches] + list(result.false_alarms)  # the camera's starts, as score() kept them
    ends = [Alarm.from_alert(a) for a in alerts if a.event is AlertEvent.END]  # matched to starts by id
    restarted = tuple(e for e in ground_truth.events if _ended_and_restarted(e, starts, ends, tolerance_s))
    return ClipScore(clip, ground_truth, result, late, restarted)


def _ended_and_restarted(event: GroundTruthEvent, starts: list[Alarm], ends: list[Alarm], tolerance_s: float) -> bool:
    accepted = [a for a in starts if event.accepts(a, tolerance_s)]
    ids = {a.id for a in accepted}
    end_s = math.inf if event.end_s is None else event.end_s
    return len(accepted) > 1 or any(e.id in ids and e.stream_time_s < end_s for e in ends)


def load_suite(
    out_dir: Path,
    ground_truth_dir: Path,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    max_latency_s: Mapping[str, float] | None = None,
    warnings: list[str] | None = None,
) -> list[ClipScore]:
    """Score every `<out_dir>/<camera>/events.jsonl` against `<ground_truth_dir>/<camera>.gt.yaml`.
    ValueError (naming the file) when a ground truth is missing or invalid, or an events file
    is not one; skipped lines of an events file go to `warnings`."""
    events_files = sorted(Path(out_dir).glob("*/events.jsonl"))
    if not events_files:
        raise ValueError(f"{out_dir}: no <camera>/events.jsonl in it (the folders `detector replay --out` writes)")
    results = []
    for events_path in events_files:
        clip = events_path.parent.name
        truth_path = Path(ground_truth_dir) / f"{clip}.gt.yaml"
        if not truth_path.is_file():
            raise ValueError(f"{truth_path}: no ground truth for {events_path}")
        alerts = load_alerts(events_path, [] if warnings is None else warnings)
        truth = load_ground_truth(truth_path)
        results.append(score_clip(clip, alerts, truth, tolerance_s=tolerance_s, max_latency_s=max_latency_s))
    return results


# ---------------------------------------------------------------------------------------------
# Report


def format_suite(results: list[ClipScore]) -> str:
    """The per-clip table, the totals, the per-nuisance table, then every problem, one a line."""
    clip_rows = [_clip_cells(r) for r in results]
    header = ("clip", "nuisances", "expected", "false alerts", "TP/FN", "latency s", "restarted")
    lines = _table(header, clip_rows)
    lines += [
        "",
        f"clips: {len(results)}, passed: {sum(r.passed for r in results)}",
        f"false alerts: {sum(r.score.overall.fp for r in results)}",
        f"recall: {_recall(results)}",
        f"worst latency: {_seconds(_latency_max(results))} s",
        f"late: {sum(len(r.late) for r in results)}, restarted: {sum(len(r.restarted) for r in results)}",
        "",
    ]
    by_nuisance: dict[str, list[ClipScore]] = {}
    for r in results:
        for kind in r.nuisances:
            by_nuisance.setdefault(kind, []).append(r)
    nuisance_rows = [
        (kind, str(len(group)), str(sum(r.score.overall.fp for r in group)), _recall(group), _seconds(_latency_max(group)))
        for kind, group in sorted(by_nuisance.items())
    ]
    lines += _table(("nuisance", "clips", "false alerts", "recall", "latency max s"), nuisance_rows)
    problems = [line for r in results for line in r.problems()]
    if problems:
        lines += ["", *problems]
    return "\n".join(lines)


def format_comparison(suites: Mapping[str, list[ClipScore]]) -> str:
    """Suites of the same clips side by side (a model against another, `detector score --versus`):
    per clip, false alerts and TP/FN of each; per violation type, recall and false alerts of each."""
    names = list(suites)
    by_clip = [{r.clip: r for r in results} for results in suites.values()]
    clips = sorted(set().union(*by_clip))
    header = ("clip", "expected", *(f"{name}: {cell}" for name in names for cell in ("false", "TP/FN", "latency s")))
    rows = []
    for clip in clips:
        expected = _expected(next(results[clip].ground_truth for results in by_clip if clip in results))
        cells: list[str] = []
        for results in by_clip:
            overall = results[clip].score.overall if clip in results else None
            cells += (
                ["-", "-", "-"]
                if overall is None
                else [str(overall.fp), f"{overall.tp}/{overall.fn}", _seconds(overall.latency_max_s)]
            )
        rows.append((clip, expected, *cells))
    lines = _table(header, rows)
    kinds = sorted({row.type for results in suites.values() for r in results for row in r.score.rows if row.type != "all"})
    type_rows = []
    for kind in [*kinds, "all"]:
        cells = []
        for results in suites.values():
            rows_of = [r.score.row(kind) for r in results]
            found, events = sum(row.tp for row in rows_of), sum(row.ground_truth for row in rows_of)
            cells += ["-" if events == 0 else f"{found / events:.2f} ({found}/{events})", str(sum(row.fp for row in rows_of))]
        type_rows.append((kind, *cells))
    lines += ["", *_table(("type", *(f"{name}: {cell}" for name in names for cell in ("recall", "false alerts"))), type_rows)]
    return "\n".join(lines)


def _clip_cells(result: ClipScore) -> tuple[str, ...]:
    overall = result.score.overall
    return (
        result.clip,
        ",".join(result.ground_truth.nuisances) or "-",
        _expected(result.ground_truth),
        str(overall.fp),
        f"{overall.tp}/{overall.fn}",
        _seconds(overall.latency_max_s),
        str(len(result.restarted)),
    )


def _expected(truth: GroundTruth) -> str:
    return ", ".join(f"{e.type}@{e.begin_s:g}s" for e in truth.events) or "none"


def _recall(results: list[ClipScore]) -> str:
    found = sum(r.score.overall.tp for r in results)
    events = sum(r.score.overall.ground_truth for r in results)
    return "-" if events == 0 else f"{found / events:.2f} ({found}/{events})"


def _latency_max(results: list[ClipScore]) -> float | None:
    return max((r.score.overall.latency_max_s for r in results if r.score.overall.latency_max_s is not None), default=None)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns as wide as their widest cell, a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines
