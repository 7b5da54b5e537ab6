"""The figures a district is judged by (docs/centre.md#figures), over violation cases opened
since a moment:

- cases per day and type;
- closure rate: CLOSED ÷ the cases that needed an officer (opened − REJECTED − SELF_RESOLVED);
- false-alarm rate: REJECTED ÷ opened;
- time to dispatch: first dispatch − opened (median, 90th percentile);
- on-time rate: handled by the due time ÷ handled;

in total, per type, per camera and per zone; with two plots (matplotlib, inline SVG)."""

import io
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from django.utils import timezone

from detector.centre.models import Case


@dataclass
class Row:
    key: str
    opened: int = 0
    rejected: int = 0
    self_resolved: int = 0
    closed: int = 0
    handled: int = 0
    on_time: int = 0
    dispatch_s: list[float] = field(default_factory=list)

    def add(self, case: dict) -> None:
        self.opened += 1
        self.rejected += case["state"] == "REJECTED"
        self.self_resolved += case["state"] == "SELF_RESOLVED"
        self.closed += case["state"] == "CLOSED"
        if case["dispatched_at"] is not None:
            self.dispatch_s.append((case["dispatched_at"] - case["opened_at"]).total_seconds())
        if case["handled_at"] is not None:
            self.handled += 1
            self.on_time += case["due_at"] is None or case["handled_at"] <= case["due_at"]

    @property
    def needing_action(self) -> int:
        return self.opened - self.rejected - self.self_resolved

    @property
    def closure_rate(self) -> float | None:
        return self.closed / self.needing_action if self.needing_action else None

    @property
    def false_alarm_rate(self) -> float | None:
        return self.rejected / self.opened if self.opened else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.handled if self.handled else None

    @property
    def dispatch_median_s(self) -> float | None:
        return statistics.median(self.dispatch_s) if self.dispatch_s else None

    @property
    def dispatch_p90_s(self) -> float | None:
        if not self.dispatch_s:
            return None
        ordered = sorted(self.dispatch_s)
        return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


@dataclass
class Report:
    since: datetime
    total: Row
    by_type: list[Row]
    by_camera: list[Row]
    by_zone: list[Row]
    per_day: dict[date, dict[str, int]]
    types: list[str]

    @property
    def day_rows(self) -> list[tuple[date, list[int]]]:
        """(day, cases of each of `types`) for the per-day table."""
        return [(day, [counts.get(t, 0) for t in self.types]) for day, counts in self.per_day.items()]


def compute(since: datetime) -> Report:
    fields = ("state", "type", "zone", "camera__site", "camera__camera", "opened_at", "dispatched_at", "handled_at", "due_at")
    cases = Case.objects.filter(kind=Case.VIOLATION, opened_at__gte=since).values(*fields)
    total = Row("all")
    groups: dict[str, dict[str, Row]] = {"type": {}, "camera": {}, "zone": {}}
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for case in cases.iterator():
        camera = f"{case['camera__site']}/{case['camera__camera']}"
        keys = {"type": case["type"], "camera": camera, "zone": f"{camera} {case['zone']}"}
        total.add(case)
        for group, key in keys.items():
            groups[group].setdefault(key, Row(key)).add(case)
        per_day[timezone.localtime(case["opened_at"]).date()][case["type"]] += 1

    def ordered(rows: dict[str, Row]) -> list[Row]:
        return sorted(rows.values(), key=lambda r: (-r.opened, r.key))

    return Report(
        since=since,
        total=total,
        by_type=ordered(groups["type"]),
        by_camera=ordered(groups["camera"]),
        by_zone=ordered(groups["zone"]),
        per_day=dict(sorted(per_day.items())),
        types=sorted(groups["type"]),
    )


def plots(report: Report) -> dict[str, str]:
    """SVG of cases per day and type (stacked) and of the time to dispatch; {} when no case."""
    if not report.total.opened:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # a type name with $ is text, not TeX
    matplotlib.rcParams["svg.fonttype"] = "none"
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    days = list(report.per_day)
    figure = Figure(figsize=(8, 3))
    axes = figure.subplots()
    bottom = [0] * len(days)
    for kind in report.types:
        counts = [report.per_day[d].get(kind, 0) for d in days]
        axes.bar(days, counts, width=0.8, bottom=bottom, label=kind)
        bottom = [b + c for b, c in zip(bottom, counts)]
    locator = AutoDateLocator(maxticks=10)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("cases opened")
    axes.legend(fontsize="small")
    figure.tight_layout()
    out = {"per_day": _svg(figure)}
    if report.total.dispatch_s:
        figure = Figure(figsize=(8, 2.5))
        axes = figure.subplots()
        axes.hist([s / 60 for s in report.total.dispatch_s], bins=20)
        axes.set_xlabel("minutes from opened to dispatched")
        axes.set_ylabel("cases")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        figure.tight_layout()
        out["dispatch"] = _svg(figure)
    return out


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: without the XML prolog and DOCTYPE
