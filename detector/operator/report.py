"""`detector replay --report`: DIR/report.html, one self-contained page per replay.

Alerts with their evidence snapshots (relative links, so the folder can be zipped and mailed),
the stretches the camera's view was paused (moved or blocked: nothing judged, timers held), a
timeline per (zone, type) of what the rule saw, and, with ground truth, the score: matches,
misses and false alarms with the same table `detector score` prints (detector.scoring).
"""

import os
import shlex
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from detector import scoring
from detector.alerts import Alert, AlertEvent
from detector.errors import redact_url
from detector.operator.timeline import GT_COLOUR, LANES, PAUSED_COLOUR, PAUSED_OPACITY, TimelineRecorder, timeline_svg
from detector.replay import PausedStretch

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eee} td.num{text-align:right;font-variant-numeric:tabular-nums}
img.snapshot{max-width:320px;display:block}
code.feedback{user-select:all;font-size:.85em;overflow-wrap:anywhere}
.legend span{display:inline-block;width:1em;height:.8em;margin:0 .3em 0 1em;vertical-align:middle}
.miss{color:#a50f15} .fa{color:#a50f15} .match{color:#31a354}
"""


@dataclass(frozen=True)
class ReportInputs:
    out_dir: Path
    camera: str
    clip: str
    config: str
    frames: int
    stream_s: float
    wall_s: float
    detect_fps: float
    alerts: list[Alert]
    events_path: Path
    video_path: Path | None
    recorder: TimelineRecorder
    ground_truth_path: Path | None = None
    tolerance_s: float = scoring.DEFAULT_TOLERANCE_S
    paused: list[PausedStretch] = field(default_factory=list)  # the view's pauses (ReplaySummary.paused)


def write_report(inputs: ReportInputs) -> Path:
    """Writes DIR/report.html (atomically) and returns its path."""
    out_dir = Path(inputs.out_dir)
    ground_truth = None
    if inputs.ground_truth_path is not None:
        ground_truth = scoring.load_ground_truth(inputs.ground_truth_path)  # ValueError -> CLI ConfigError
    html = render(inputs, ground_truth)
    path = out_dir / "report.html"
    temporary = path.with_suffix(".html.tmp")
    temporary.write_text(html, encoding="utf-8")
    os.replace(temporary, path)
    return path


def render(inputs: ReportInputs, ground_truth: scoring.GroundTruth | None) -> str:
    out_dir = Path(inputs.out_dir)
    end_s = inputs.stream_s + 1.0 / inputs.detect_fps
    starts = [a for a in inputs.alerts if a.event is AlertEvent.START]
    speed = inputs.stream_s / inputs.wall_s if inputs.wall_s else 0.0
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Replay report: {escape(inputs.camera)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Replay report: camera {escape(inputs.camera)}</h1>",
        "<table class='summary'>",
        _row("clip", escape(redact_url(inputs.clip))),
        _row("config", escape(inputs.config)),
        _row(
            "frames",
            f"{inputs.frames} at {inputs.detect_fps:g} fps, {inputs.stream_s:.1f} s of stream in {inputs.wall_s:.1f} s ({speed:.1f}x real time)",
        ),
        _row("alerts", f"<span id='alert-count'>{len(starts)}</span> ({len(inputs.alerts)} events)"),
        _row("events", _link(out_dir, inputs.events_path)),
    ]
    if inputs.paused:
        parts.append(_row("view", "<br>".join(f"<span class='view-paused'>{escape(p.describe())}</span>" for p in inputs.paused)))
    if inputs.video_path is not None:
        parts.append(_row("annotated video", _link(out_dir, inputs.video_path)))
    parts.append("</table>")
    if inputs.video_path is not None:
        parts.append(f"<video controls width='640' src='{escape(_relative(out_dir, inputs.video_path))}'></video>")
    parts += _alerts_section(inputs.alerts, inputs.events_path)
    parts += _timeline_section(inputs, ground_truth, end_s)
    if ground_truth is not None:
        result = scoring.score(inputs.alerts, ground_truth, tolerance_s=inputs.tolerance_s)
        parts += _score_section(result, inputs.ground_truth_path)
    parts.append("</body></html>")
    return "\n".join(parts)


def _alerts_section(alerts: list[Alert], events_path: Path) -> list[str]:
    """A row per alert, and under it the `detector feedback` command line that marks it a false
    alarm, to copy (a static page cannot write feedback.jsonl itself)."""
    parts = ["<h2>Alerts</h2>"]
    by_id: dict[str, list[Alert]] = {}
    for alert in alerts:
        by_id.setdefault(alert.id, []).append(alert)
    if not by_id:
        return parts + ["<p>No alerts.</p>"]
    parts.append(
        "<table class='alerts'><tr><th>snapshot</th><th>type</th><th>zone</th><th>settled (first_seen_s)</th>"
        "<th>start (stream s)</th><th>end (stream s)</th><th>confidence</th><th>objects</th><th>id</th></tr>"
    )
    for alert_id, events in by_id.items():
        start = next((e for e in events if e.event is AlertEvent.START), events[0])
        end = next((e for e in events if e.event is AlertEvent.END), None)
        image = (
            f"<a href='{escape(start.snapshot.path)}'><img class='snapshot' src='{escape(start.snapshot.path)}' "
            f"alt='evidence {escape(alert_id)}'></a>"
            if start.snapshot
            else "-"
        )
        ended = "-" if end is None else f"{end.stream_time_s:.1f} ({escape(end.reason or '')})"
        objects = "<br>".join(
            f"{escape(o.label)} {o.score:.2f} #{'?' if o.track_id is None else o.track_id}" for o in start.objects
        )
        mark = shlex.join(["detector", "feedback", str(events_path), alert_id, "--false-alarm"])
        parts.append(
            f"<tr class='alert'><td>{image}</td><td>{escape(start.type)}</td><td>{escape(start.zone)}</td>"
            f"<td class='num'>{start.first_seen_s:.1f}</td><td class='num start'>{start.stream_time_s:.1f}<br>"
            f"<small>{escape(start.at)}</small></td><td class='num'>{ended}</td>"
            f"<td class='num'>{start.confidence:.2f}</td><td>{objects}</td><td><small>{escape(alert_id)}</small></td></tr>"
            f"<tr class='feedback'><td colspan='9'>false alarm? <code class='feedback'>{escape(mark)}</code></td></tr>"
        )
    parts.append(
        "</table><p><small>A false alarm: run the line under it from the folder the replay ran in (the mark goes to "
        "feedback.jsonl beside the events); add <code>--dataset DS --config CONFIG</code> to put its frame into a "
        "training dataset as a hard negative.</small></p>"
    )
    return parts


def _timeline_section(inputs: ReportInputs, ground_truth: scoring.GroundTruth | None, end_s: float) -> list[str]:
    legend = "".join(f"<span style='background:{c}'></span>{n}" for n, c in LANES)
    if ground_truth is not None:
        legend += f"<span style='background:{GT_COLOUR}'></span>ground truth"
    if inputs.paused:
        legend += (
            f"<span style='background:{PAUSED_COLOUR};opacity:{PAUSED_OPACITY}'></span>view paused (not judged, states held)"
        )
    parts = [
        "<h2>Timeline</h2>",
        f"<p class='legend'>{legend} &nbsp; red line: alert start, grey line: end. "
        "<i>present</i>: objects of the type's classes in the zone scoring at least min_score; "
        "<i>stationary</i>: those that are also stationary (the rule's candidates).</p>",
    ]
    for track in inputs.recorder.tracks:
        alerts = [a for a in inputs.alerts if a.key == (track.zone, track.violation)]
        truth = []
        if ground_truth is not None:
            truth = [
                (e.begin_s, end_s if e.end_s is None else e.end_s)
                for e in ground_truth.events
                if e.type == track.violation and e.zone in (None, track.zone)
            ]
        parts.append(f"<h3>{escape(track.zone)} · {escape(track.violation)}</h3>")
        parts.append(timeline_svg(track, end_s, alerts=alerts, ground_truth=truth, paused=inputs.paused))
    return parts


def _score_section(result: scoring.Score, path: Path | None) -> list[str]:
    parts = [f"<h2>Score against {escape(str(path))}</h2>", "<table class='score'><tr>"]
    header = ("type", "gt", "alarms", "TP", "FP", "FN", "precision", "recall", "F1", "latency median s", "latency max s")
    parts.append("".join(f"<th>{h}</th>" for h in header) + "</tr>")
    for row in result.rows:
        cells = row.cells()
        parts.append(
            f"<tr data-type='{escape(row.type)}'><th>{escape(row.type)}</th>"
            + "".join(f"<td class='num'>{c}</td>" for c in cells)
            + "</tr>"
        )
    parts.append(
        f"</table><p><small>alarm = `start` event; matched within [begin_s, end_s + {result.tolerance_s:g} s]</small></p>"
    )
    parts.append("<h3>Matches</h3><ul>")
    parts += [
        f"<li class='match'>{escape(m.alarm.describe())} &larr; {escape(m.event.describe())}, latency {m.latency_s:.1f} s</li>"
        for m in sorted(result.matches, key=lambda m: m.alarm.stream_time_s)
    ] or ["<li>none</li>"]
    parts.append("</ul><h3>Misses (no alarm)</h3><ul>")
    parts += [f"<li class='miss'>{escape(e.describe())}</li>" for e in result.misses] or ["<li>none</li>"]
    parts.append("</ul><h3>False alarms</h3><ul>")
    parts += [f"<li class='fa'>{escape(a.describe())}</li>" for a in result.false_alarms] or ["<li>none</li>"]
    parts.append("</ul>")
    return parts


def _row(name: str, value: str) -> str:
    return f"<tr><th>{escape(name)}</th><td>{value}</td></tr>"


def _relative(out_dir: Path, path: Path) -> str:
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(path).resolve().as_uri()


def _link(out_dir: Path, path: Path) -> str:
    target = _relative(out_dir, path)
    return f"<a href='{escape(target)}'>{escape(target)}</a>"
