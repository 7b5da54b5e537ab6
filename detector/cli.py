"""Command line: `detector replay | check | score` (see README.md)."""

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path

from detector import __version__
from detector.errors import ConfigError, DetectorError, PublishError, redact_url

log = logging.getLogger("detector")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.command(args) or 0
    except DetectorError as exc:
        print(f"detector: error: {redact_url(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("detector: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detector", description="Violation detector for city surveillance feeds.")
    parser.add_argument("--version", action="version", version=f"detector {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    replay = commands.add_parser("replay", help="run one camera over a recorded clip as fast as possible")
    replay.add_argument("config", type=Path)
    replay.add_argument("--camera", required=True, help="camera id in the config")
    replay.add_argument("--source", type=Path, help="clip to use instead of the camera's source")
    replay.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    replay.add_argument("--annotate", action="store_true", help="also write an annotated MP4")
    replay.add_argument(
        "--start-at",
        type=datetime.fromisoformat,
        help="wall-clock time of the clip's first frame (ISO 8601; default: now); drives schedules and `at`",
    )
    replay.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    replay.set_defaults(command=_replay)

    check = commands.add_parser("check", help="validate a config and open its model and sources")
    check.add_argument("config", type=Path)
    check.set_defaults(command=_check)

    score = commands.add_parser("score", help="precision, recall, F1 and alarm latency of alerts against ground truth")
    score.add_argument("events", type=Path, help="events.jsonl written by replay or run")
    score.add_argument("ground_truth", type=Path, help="ground-truth YAML (sample_videos/README.md)")
    score.add_argument("--tolerance", type=float, default=10.0, help="seconds an alarm may come after a violation ended")
    score.set_defaults(command=_score)
    _add_mqtt_commands(commands)
    return parser


def _replay(args: argparse.Namespace) -> int:
    from detector.config import check_files, load_config
    from detector.replay import replay

    config = load_config(args.config)
    if args.source is None:
        check_files(config)
    camera = _camera(config, args.camera)
    summary = replay(
        config,
        camera.id,
        out_dir=args.out,
        source=args.source,
        annotate=args.annotate,
        start_at=args.start_at,
        progress=args.progress,
    )
    starts = sum(1 for a in summary.alerts if a["event"] == "start")
    speed = summary.stream_s / summary.wall_s if summary.wall_s else 0.0
    print(
        f"{summary.frames} frames, {summary.stream_s:.1f} s of stream in {summary.wall_s:.1f} s ({speed:.1f}x real time); "
        f"{starts} alerts, {len(summary.alerts)} events -> {summary.events_path}"
    )
    if summary.video_path:
        print(f"annotated video -> {summary.video_path}")
    if summary.publish_problem:  # after the summary: the replay itself went fine
        raise PublishError(summary.publish_problem)
    return 0


def _check(args: argparse.Namespace) -> int:
    from detector.capture import FileSource
    from detector.config import check_files, load_config
    from detector.detect import open_model
    from detector.replay import model_threshold
    from detector.rules import RoleMap

    config = load_config(args.config)
    check_files(config)
    zones = sum(len(c.zones) for c in config.cameras)
    print(f"config ok: site {config.site}, {len(config.cameras)} cameras, {zones} zones")
    model = open_model(config.model, model_threshold(config), config.detect.nms_iou)
    print(f"model ok: {model.path} ({len(model.names)} classes, sha256 {model.digest[:12]})")
    for unknown in RoleMap.build(model.names, config.roles).unknown:
        print(f"  warning: {unknown} is not a class of this model")
    for camera in config.cameras:
        if not camera.is_file:
            print(f"camera {camera.id}: {redact_url(camera.source)} (live sources are opened by `detector run`)")
            continue
        clip = FileSource(camera.source)
        frames = sum(1 for _ in clip.frames(fps=1.0))
        print(
            f"camera {camera.id}: {camera.source} {clip.width}x{clip.height} @ {clip.nominal_fps:.1f} fps, "
            f"{clip.duration_s or 0:.1f} s, decodes ({frames} frames at 1 fps)"
        )
    return 0


def _score(args: argparse.Namespace) -> int:
    from detector import scoring

    try:
        ground_truth = scoring.load_ground_truth(args.ground_truth)
        alarms = scoring.load_events(args.events)
    except FileNotFoundError as exc:
        raise ConfigError(f"file not found: {exc.filename}") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(scoring.format_report(scoring.score(alarms, ground_truth, tolerance_s=args.tolerance)))
    return 0


def _camera(config, camera_id: str):
    try:
        return config.camera(camera_id)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None


# --- MQTT: `detector listen`, `detector outbox` (issue 3; docs/mqtt.md) ---


def _add_mqtt_commands(commands) -> None:
    listen = commands.add_parser("listen", help="print what detectors publish over MQTT (alerts, status, zone states)")
    listen.add_argument("--config", type=Path, help="take broker, credentials and prefix from this config's mqtt section")
    listen.add_argument("--host", help="broker host (default: localhost)")
    listen.add_argument("--port", type=int, help="broker port (default: 1883, 8883 with TLS)")
    listen.add_argument("--prefix", help="topic prefix (default: detector)")
    listen.add_argument("--username")
    listen.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    listen.add_argument("--tls", action="store_true", help="TLS with the system CAs (implied by --tls-ca)")
    listen.add_argument("--tls-ca", type=Path, help="CA certificate file")
    listen.add_argument("--tls-cert", type=Path, help="client certificate file")
    listen.add_argument("--tls-key", type=Path, help="client key file")
    listen.add_argument("--tls-insecure", action="store_true", help="skip the server hostname check (testing only)")
    listen.add_argument("--json", action="store_true", help="one JSON object per message: topic, retain, payload")
    listen.add_argument("--health", action="store_true", help="also print health messages")
    listen.add_argument("--count", type=int, help="exit after this many alerts")
    listen.add_argument("--timeout", type=float, help="exit after this many seconds")
    listen.set_defaults(command=_listen)

    outbox = commands.add_parser("outbox", help="list the alerts waiting in the local outbox (or send them)")
    outbox.add_argument("config", type=Path)
    action = outbox.add_mutually_exclusive_group()
    action.add_argument("--drain", action="store_true", help="send them to the configured broker now")
    action.add_argument("--purge", action="store_true", help="delete them without sending")
    outbox.add_argument("--timeout", type=float, help="with --drain: seconds to wait (default: mqtt.drain_timeout_s)")
    outbox.set_defaults(command=_outbox)


def _listen(args: argparse.Namespace) -> int:
    import os

    from detector.config import load_config
    from detector.mqtt.connection import Endpoint
    from detector.mqtt.listen import listen

    base, prefix = Endpoint(host="localhost"), "detector"
    if args.config is not None:
        config = load_config(args.config)
        if config.mqtt is None:
            raise ConfigError(f"{args.config}: no mqtt section")
        base, prefix = Endpoint.from_config(config.mqtt), config.mqtt.topic_prefix
    password = base.password
    if args.password_env:
        if args.password_env not in os.environ:
            raise ConfigError(f"--password-env: environment variable {args.password_env} is not set")
        password = os.environ[args.password_env]
    use_tls = base.use_tls or args.tls or any(v is not None for v in (args.tls_ca, args.tls_cert, args.tls_key))
    endpoint = Endpoint(
        host=args.host or base.host,
        port=args.port or (base.port if args.config else (8883 if use_tls else 1883)),
        username=args.username or base.username,
        password=password,
        tls_ca=args.tls_ca or base.tls_ca,
        tls_cert=args.tls_cert or base.tls_cert,
        tls_key=args.tls_key or base.tls_key,
        tls_insecure=args.tls_insecure or base.tls_insecure,
        use_tls=use_tls,
    )
    return listen(
        endpoint, args.prefix or prefix, as_json=args.json, health=args.health, count=args.count, timeout_s=args.timeout
    )


def _outbox(args: argparse.Namespace) -> int:
    from detector.config import load_config
    from detector.mqtt import backlog

    config = load_config(args.config)
    if args.purge:
        from detector.mqtt.outbox import Outbox

        for camera, path in backlog.outbox_files(config):
            outbox = Outbox(path)
            print(f"{camera}: deleted {outbox.clear()} waiting entries")
            outbox.close()
        return 0
    lines = backlog.drain(config, args.timeout) if args.drain else backlog.describe(config)
    print("\n".join(lines))
    return 0
