"""The management centre: `detector centre`, `detector centre-user`, `detector centre-manage`.
Django and the rest of the extra `[centre]` are imported only inside these commands."""

import argparse
import getpass
import os
from pathlib import Path

from detector.errors import ConfigError, DetectorError, OutputError


class CentreMissing(DetectorError):
    exit_code = 2


def add_commands(commands) -> None:
    centre = commands.add_parser(
        "centre", help="the management centre: MQTT ingest into cases, the dispatcher's, officer's, fleet and figures pages"
    )
    centre.add_argument("config", type=Path, help="the centre's YAML config (docs/centre.md)")
    centre.add_argument("--no-web", action="store_true", help="ingest only (another instance serves the pages)")
    centre.add_argument("--no-ingest", action="store_true", help="web pages only")
    centre.add_argument("--port", type=int, help="web port instead of the config's web.port (0: any free one)")
    centre.set_defaults(command=_centre)

    user = commands.add_parser("centre-user", help="create or update a centre user with a role (and an officer's unit)")
    user.add_argument("config", type=Path)
    user.add_argument("username")
    user.add_argument("--role", required=True, choices=("admin", "dispatcher", "officer", "viewer"))
    user.add_argument("--unit", help="an officer's unit (created when new)")
    user.add_argument(
        "--password-env", metavar="VAR", help="read the password from this environment variable (default: ask twice)"
    )
    user.set_defaults(command=_user)

    false_alarms = commands.add_parser(
        "centre-false-alarms", help="the alerts of rejected cases as events.jsonl + feedback.jsonl (for `detector feedback`)"
    )
    false_alarms.add_argument("config", type=Path)
    false_alarms.add_argument("--out", type=Path, required=True, help="folder for events.jsonl and feedback.jsonl")
    false_alarms.set_defaults(command=_false_alarms)

    manage = commands.add_parser(
        "centre-manage", help="Django's management commands on the centre's database (makemigrations, changepassword, ...)"
    )
    manage.add_argument("config", type=Path)
    manage.add_argument("args", nargs=argparse.REMAINDER, help="the command and its arguments")
    manage.set_defaults(command=_manage)


def _config(path: Path):
    try:
        import django  # noqa: F401

        from detector.centre.config import load_centre_config
    except ImportError as exc:
        raise CentreMissing(f"the centre needs the extra [centre] ({exc.name} is missing): pip install -e '.[centre]'") from None
    return load_centre_config(path)


def _centre(args: argparse.Namespace) -> int:
    from detector.centre.server import serve

    return serve(_config(args.config), web=not args.no_web, ingest=not args.no_ingest, port=args.port)


def _user(args: argparse.Namespace) -> int:
    from detector.centre.server import setup

    config = _config(args.config)
    if args.role == "officer" and not args.unit:
        raise ConfigError("an officer needs --unit (he sees only his unit's cases)")
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise ConfigError(f"--password-env: the environment variable {args.password_env} is not set")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
        if password != getpass.getpass("again: "):
            raise ConfigError("the two passwords differ")
    setup(config)
    from detector.centre.accounts import save_user

    save_user(args.username, password, args.role, args.unit)
    print(f"{args.username}: {args.role}{f' of {args.unit}' if args.unit else ''}")
    return 0


def _false_alarms(args: argparse.Namespace) -> int:
    from detector.centre.server import setup

    setup(_config(args.config))
    from detector.centre.false_alarms import export

    try:
        count = export(args.out)
    except OSError as exc:
        raise OutputError(f"--out {args.out}: cannot write there: {exc.strerror or exc}") from None
    print(f"{count} false alarm{'s' if count != 1 else ''} -> {args.out}/events.jsonl, {args.out}/feedback.jsonl")
    return 0


def _manage(args: argparse.Namespace) -> int:
    from django.core.management import execute_from_command_line

    from detector.centre.settings import configure

    configure(_config(args.config))
    execute_from_command_line(["detector centre-manage", *args.args])
    return 0
