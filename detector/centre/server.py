"""`detector centre`: migrations, then ingest and the web pages (waitress, a pure-Python WSGI
server) in one process until SIGTERM or Ctrl-C. Several processes may run against one database
and broker (`--no-web` / `--no-ingest` split the two roles)."""

import logging
import signal
import threading

from detector.centre.config import CentreConfig
from detector.errors import ConfigError, DetectorError

log = logging.getLogger("detector.centre")
MIGRATION_LOCK = 7_301_337  # PostgreSQL advisory lock: instances starting together migrate one at a time


class DatabaseUnreachable(DetectorError):
    exit_code = 7


def setup(config: CentreConfig) -> None:
    """Configure Django for this config and apply the migrations; DatabaseUnreachable (one line,
    never the password) when the database cannot be reached."""
    from django.core.management import call_command
    from django.db import DatabaseError, connection

    from detector.centre.settings import configure

    configure(config)
    try:
        connection.ensure_connection()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
        try:
            call_command("migrate", interactive=False, verbosity=0)
        finally:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
    except DatabaseError as exc:
        raise DatabaseUnreachable(f"{describe_database(config)}: {str(exc).strip().splitlines()[0]}") from None


def describe_database(config: CentreConfig) -> str:
    db = config.database
    if db.engine == "sqlite":
        return f"database {db.path}"
    return f"database postgresql {db.user}@{db.host}:{db.port}/{db.name}"


def serve(config: CentreConfig, *, web: bool = True, ingest: bool = True, port: int | None = None) -> int:
    if not (web or ingest):
        raise ConfigError("nothing to run: --no-web and --no-ingest together")
    setup(config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    receiver = None
    if ingest:
        from detector.centre.ingest import Ingest

        receiver = Ingest(config)
        receiver.start()
        print(f"centre: ingest from mqtt {receiver.endpoint.name} as {config.mqtt.client_id}", flush=True)
    if web:
        from django.core.wsgi import get_wsgi_application
        from waitress.server import create_server

        server = create_server(
            get_wsgi_application(),
            host=config.web.host,
            port=config.web.port if port is None else port,
            threads=config.web.threads,
            ident="detector-centre",
        )
        threading.Thread(target=server.run, name="centre-web", daemon=True).start()
        print(f"centre: web pages on http://{config.web.host}:{server.effective_port}/", flush=True)
    stop.wait()
    if receiver is not None:
        receiver.close()
    print("centre: stopped", flush=True)
    return 0
