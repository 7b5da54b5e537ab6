"""`detector listen | outbox` (docs/mqtt.md)."""

import argparse
from pathlib import Path

from detector.errors import ConfigError


def add_commands(commands) -> None:
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
    from detector.config.schema import ID_MAX_LENGTH
    from detector.mqtt.connection import Endpoint
    from detector.mqtt.listen import listen
    from detector.mqtt.topics import prefix_problem

    base, prefix = Endpoint(host="localhost"), "detector"
    if args.config is not None:
        config = load_config(args.config)
        if config.mqtt is None:
            raise ConfigError(f"{args.config}: no mqtt section")
        base, prefix = Endpoint.from_config(config.mqtt), config.mqtt.topic_prefix
    prefix = args.prefix or prefix
    problem = prefix_problem(prefix, ID_MAX_LENGTH)
    if problem:
        raise ConfigError(f"--prefix: the topic prefix {problem}")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: a port is 1..65535")
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
    return listen(endpoint, prefix, as_json=args.json, health=args.health, count=args.count, timeout_s=args.timeout)


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
