"""Operator tools: `detector zones | explain | tune` and `replay --report` (docs/operators.md)."""

import argparse
import sys
from datetime import datetime
from pathlib import Path

from detector.cli.common import camera_of, recorded_clip, seconds, site_time, wall_time
from detector.errors import ConfigError, redact_url


def add_commands(commands) -> None:
    zones = commands.add_parser("zones", help="draw and edit a camera's zones in the browser, on a frame of its video")
    zones.add_argument("config", type=Path)
    zones.add_argument("--camera", required=True, help="camera id in the config")
    zones.add_argument("--source", type=recorded_clip, help="clip to show instead of the camera's source")
    zones.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default: 8765; 0: any free port)")
    zones.add_argument("--no-browser", action="store_true", help="only print the address")
    zones.set_defaults(command=_zones)

    explain = commands.add_parser("explain", help="why an alert did or did not fire for a zone in a stream-time range")
    explain.add_argument("config", type=Path)
    explain.add_argument("--camera", required=True, help="camera id in the config")
    explain.add_argument("--zone", required=True, help="zone id")
    explain.add_argument("--type", dest="violation", help="violation type (default: every type of the zone)")
    explain.add_argument("--from", dest="from_s", type=float, default=0.0, help="stream seconds (default: 0)")
    explain.add_argument("--to", dest="to_s", type=float, required=True, help="stream seconds")
    explain.add_argument("--source", type=recorded_clip, help="clip to use instead of the camera's source")
    explain.add_argument("--cache", type=Path, help="detections cache of `detector tune` (default: STORAGE_DIR/cache)")
    explain.add_argument("--start-at", type=wall_time, help="wall-clock time of the first frame (schedules)")
    explain.set_defaults(command=_explain)

    tune = commands.add_parser("tune", help="sweep dwell/score/tracker settings over cached detections against ground truth")
    tune.add_argument("config", type=Path)
    tune.add_argument("--camera", required=True, help="camera id in the config")
    tune.add_argument("--gt", type=Path, action="append", required=True, help="ground-truth YAML (repeat for several clips)")
    tune.add_argument(
        "--set",
        dest="sets",
        action="append",
        required=True,
        metavar="KEY=V1,V2",
        help="values to try: dwell_s, grace_s, clear_s, cooldown_s, update_s, min_score (TYPE.KEY for one type), "
        "track.settle_s, track.tolerance, track.match_iou",
    )
    tune.add_argument(
        "--source", type=recorded_clip, help="clip (with one --gt; default: the ground truth's clip, else the camera's)"
    )
    tune.add_argument("--cache", type=Path, help="detections cache folder (default: STORAGE_DIR/cache)")
    tune.add_argument("--tolerance", type=seconds, default=10.0, help="seconds an alarm may come after a violation ended")
    tune.add_argument("--start-at", type=wall_time, help="wall-clock time of the first frame (schedules; default: fixed)")
    tune.set_defaults(command=_tune)


def report_recorder(args: argparse.Namespace):
    if not (args.report or args.gt):
        return None
    from detector import scoring
    from detector.operator.timeline import TimelineRecorder

    if args.gt is not None:
        try:
            scoring.load_ground_truth(args.gt)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return TimelineRecorder()


def write_report(args, config, camera, summary, recorder) -> Path:
    from detector.operator.report import ReportInputs, write_report

    return write_report(
        ReportInputs(
            out_dir=args.out,
            camera=camera.id,
            clip=str(args.source or camera.source),
            config=str(args.config),
            frames=summary.frames,
            stream_s=summary.stream_s,
            wall_s=summary.wall_s,
            detect_fps=config.detect.fps,
            alerts=summary.alerts,
            events_path=summary.events_path,
            video_path=summary.video_path,
            recorder=recorder,
            ground_truth_path=args.gt,
            paused=summary.paused,
        )
    )


def _zones(args: argparse.Namespace) -> int:
    import webbrowser

    from detector.operator.zone_editor import ZoneEditor, make_server

    editor = ZoneEditor(args.config, args.camera, args.source)
    server = make_server(editor, args.port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"zone editor for camera {args.camera} of {args.config}: {url}  (Ctrl-C to stop)", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("zone editor stopped")
    finally:
        server.server_close()
    return 0


def _explain(args: argparse.Namespace) -> int:
    from datetime import UTC

    from detector.config import load_config
    from detector.operator.explain import explain

    config = load_config(args.config)
    camera = camera_of(config, args.camera)
    cache = args.cache or config.storage_dir / "cache"
    origin = site_time(args.start_at, config) or datetime.now(UTC)
    lines, how = explain(
        config,
        camera,
        args.zone,
        violation=args.violation,
        from_s=args.from_s,
        to_s=args.to_s,
        source=args.source,
        cache_dir=cache,
        origin=origin,
    )
    print(f"camera {camera.id}, {args.from_s:g}-{args.to_s:g} s of stream, from {redact_url(how)}")
    print("\n".join(lines))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from detector.config import load_config
    from detector.operator import sweep

    config = load_config(args.config)
    camera = camera_of(config, args.camera)
    sweeps = sweep.parse_sets(args.sets)
    clips = sweep.resolve_clips(camera, args.gt, args.source)
    cache = args.cache or config.storage_dir / "cache"
    result = sweep.sweep(
        config,
        camera.id,
        sweeps,
        clips,
        cache_dir=cache,
        origin=site_time(args.start_at, config) or sweep.FIXED_ORIGIN,
        tolerance_s=args.tolerance,
    )
    print(
        f"camera {camera.id}: {len(result.rows)} combinations x {len(clips)} clip{'s' if len(clips) != 1 else ''} ({', '.join(c.name for c in clips)})"
    )
    print(sweep.format_table(result))
    model = (
        f"model pass {result.model_s:.1f} s ({result.built} clip{'s' if result.built != 1 else ''})"
        if result.built
        else "detections from the cache"
    )
    print(
        f"{model}; {result.frames} frames; rules-only replays {result.rules_s:.2f} s for {len(result.rows)} combinations",
        file=sys.stderr,
    )
    return 0
