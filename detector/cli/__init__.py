"""Command line (see README.md). One module per group of commands; each adds its subparsers
with `add_commands(commands)` and sets `command` to the function that runs it."""

import argparse
import sys

from detector import __version__, logs
from detector.cli import capacity, centre, core, dataset, edge, models, mqtt, operator, training
from detector.errors import DetectorError, redact_url


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(args.log_format, args.verbose, camera=args.camera if getattr(args, "log_camera", False) else None)
    try:
        return args.command(args) or 0
    except DetectorError as exc:
        print(f"detector: error: {redact_url(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("detector: interrupted", file=sys.stderr)
        return 130


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="detector", description="Violation detector for city surveillance feeds.")
    root.add_argument("--version", action="version", version=f"detector {__version__}")
    root.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    root.add_argument(
        "--log-format", choices=("text", "kv"), default="text", help="stderr log lines: text, or kv (key=value, for journals)"
    )
    commands = root.add_subparsers(required=True, metavar="COMMAND")
    for group in (core, mqtt, edge, capacity, operator, models, dataset, training, centre):
        group.add_commands(commands)
    return root
