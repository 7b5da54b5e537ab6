"""Per-frame state of every (zone, type) rule over a replay, and its plot as inline SVG.

The recorder is fed once per processed frame (replay's `on_frame` hook) and keeps four small
numbers per rule: objects present in the zone, candidates (present and stationary), and the
state machine's state. The plot is drawn here in plain SVG so the report needs no plotting
library and opens in any browser offline. A stretch the camera's view was paused (moved or
blocked) is a grey band across every lane: the rule was not judged there, its state was held.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from detector.alerts import Alert
from detector.operator.observe import view_rules
from detector.replay import PausedStretch
from detector.worker import FrameResult

LANES = (  # (label, colour); a lane is "on" while its condition holds
    ("present", "#9ecae1"),
    ("stationary", "#fdae6b"),
    ("pending", "#f16913"),
    ("active", "#cb181d"),
)
GT_COLOUR = "#31a354"
PAUSED_COLOUR, PAUSED_OPACITY = "#969696", 0.45  # translucent: the held states show through


@dataclass
class RuleTrack:
    zone: str
    violation: str
    ts: list[float] = field(default_factory=list)
    present: list[int] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)
    state: list[str] = field(default_factory=list)

    def lane(self, name: str) -> list[bool]:
        if name == "present":
            return [n > 0 for n in self.present]
        if name == "stationary":
            return [n > 0 for n in self.candidates]
        return [s == name for s in self.state]


class TimelineRecorder:
    """`observe(result)` after each frame; `tracks` holds one RuleTrack per rule."""

    def __init__(self) -> None:
        self.tracks: list[RuleTrack] = []
        self.end_s = 0.0

    def observe(self, result: FrameResult) -> None:
        views = view_rules(result, with_objects=False)
        if not self.tracks:
            self.tracks = [RuleTrack(v.zone, v.violation) for v in views]
        ts = result.frame.ts
        for track, view in zip(self.tracks, views):
            track.ts.append(ts)
            track.present.append(view.present)
            track.candidates.append(view.candidates)
            track.state.append(view.state)
        self.end_s = ts


def runs(ts: list[float], on: list[bool], end_s: float) -> list[tuple[float, float]]:
    """[(from, to)] stream-time intervals where `on` holds; a frame lasts until the next one."""
    intervals: list[tuple[float, float]] = []
    start = None
    for i, value in enumerate(on):
        if value and start is None:
            start = ts[i]
        if not value and start is not None:
            intervals.append((start, ts[i]))
            start = None
    if start is not None:
        intervals.append((start, end_s))
    return intervals


def nice_step(span_s: float, ticks: int = 10) -> float:
    raw = max(span_s / ticks, 1e-9)
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if step >= raw:
            return float(step)
    return 3600.0 * (raw // 3600 + 1)


def timeline_svg(
    track: RuleTrack,
    end_s: float,
    *,
    alerts: Sequence[Alert] = (),
    ground_truth: list[tuple[float, float]] = (),
    paused: Sequence[PausedStretch] = (),
    width: int = 960,
) -> str:
    """One rule's lanes over [0, end_s]: present, stationary, pending, active, then ground truth
    (when given) with alert starts (red) and ends (grey) as vertical lines, and the view's paused
    stretches as grey bands across the lanes."""
    left, right, lane_h, gap = 90, 12, 14, 4
    lanes = [(name, colour, runs(track.ts, track.lane(name), end_s)) for name, colour in LANES]
    if ground_truth:
        lanes.append(("ground truth", GT_COLOUR, [(b, min(e, end_s)) for b, e in ground_truth]))
    axis_y = len(lanes) * (lane_h + gap) + 4
    height = axis_y + 22
    span = max(end_s, 1e-6)
    plot_w = width - left - right

    def x(t: float) -> float:
        return round(left + plot_w * min(max(t, 0.0), span) / span, 2)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" data-zone="{escape(track.zone)}" data-type="{escape(track.violation)}">',
        f'<rect x="{left}" y="0" width="{plot_w}" height="{axis_y}" fill="#f7f7f7"/>',
    ]
    for row, (name, colour, intervals) in enumerate(lanes):
        y = row * (lane_h + gap) + 2
        out.append(
            f'<text x="{left - 6}" y="{y + lane_h - 3}" text-anchor="end" font-size="11" font-family="sans-serif">{name}</text>'
        )
        for begin, end in intervals:
            w = max(x(end) - x(begin), 1.0)
            out.append(
                f'<rect class="lane-{name.replace(" ", "-")}" x="{x(begin)}" y="{y}" width="{round(w, 2)}" height="{lane_h}" '
                f'fill="{colour}"><title>{name} {begin:.1f}-{end:.1f} s</title></rect>'
            )
    for stretch in paused:
        to_s = end_s if stretch.to_s is None else stretch.to_s
        out.append(
            f'<rect class="view-paused" x="{x(stretch.from_s)}" y="0" width="{round(max(x(to_s) - x(stretch.from_s), 1.0), 2)}" '
            f'height="{axis_y}" fill="{PAUSED_COLOUR}" fill-opacity="{PAUSED_OPACITY}"><title>{escape(stretch.describe())}</title></rect>'
        )
    for alert in alerts:
        colour = {"start": "#a50f15", "end": "#636363"}.get(alert.event)
        if colour:
            t = float(alert.stream_time_s)
            out.append(
                f'<line class="alert-{alert.event}" x1="{x(t)}" x2="{x(t)}" y1="0" y2="{axis_y}" stroke="{colour}" '
                f'stroke-width="2"><title>{alert.event} {t:.1f} s</title></line>'
            )
    step = nice_step(span)
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}" stroke="#333"/>')
    tick = 0.0
    while tick <= span + 1e-9:
        out.append(f'<line x1="{x(tick)}" x2="{x(tick)}" y1="{axis_y}" y2="{axis_y + 4}" stroke="#333"/>')
        out.append(
            f'<text x="{x(tick)}" y="{axis_y + 16}" text-anchor="middle" font-size="10" font-family="sans-serif">{tick:g}s</text>'
        )
        tick += step
    out.append("</svg>")
    return "\n".join(out)
