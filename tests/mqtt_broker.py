"""A real mosquitto for the MQTT tests (issue 3): started on a free loopback port with a generated
config (anonymous, password file, or TLS with a CA made at test time by the openssl CLI), plus a
paho subscriber that records what arrives. Import the fixtures (broker_fixture, ...; used as `broker`, ...) from here.
"""

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
USER, PASSWORD = "camera", "s3cret-Pa55"

# skipped on a developer machine without mosquitto; in CI (CI=true) a missing broker fails instead
needs_mosquitto = pytest.mark.skipif(
    not os.environ.get("CI") and (not Path(MOSQUITTO).exists() or not shutil.which("mosquitto_passwd")),
    reason="mosquitto is not installed (apt-get install mosquitto; scripts/test.sh does it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """`mode`: anonymous | password | tls. stop()/start() keep the port (outage tests)."""

    def __init__(self, folder: Path, mode: str = "anonymous") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.mode = mode
        self.port = free_port()
        self.host = "127.0.0.1"
        self.process: subprocess.Popen | None = None
        # persistence: the collector's persistent session survives a broker restart (outage tests)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.folder}/",
            "user root",
            f"log_dest file {self.folder / 'mosquitto.log'}",
            "log_type all",
        ]
        if mode == "password":
            passwd = self.folder / "passwd"
            subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), USER, PASSWORD], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        elif mode == "tls":
            self.certs = make_certs(self.folder / "certs")
            c = self.certs
            lines += [
                "allow_anonymous true",
                f"cafile {c['ca']}",
                f"certfile {c['server_cert']}",
                f"keyfile {c['server_key']}",
                "require_certificate true",
            ]
        else:
            lines += ["allow_anonymous true"]
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> "Mosquitto":
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.process.stderr.read().decode()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not open its port in 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def mqtt_section(self, **extra) -> dict:
        """The `mqtt:` config section for this broker."""
        section = {
            "host": self.host,
            "port": self.port,
            "topic_prefix": "city",
            "keepalive_s": 5,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            "health_interval_s": 1.0,
        }
        if self.mode == "password":
            section |= {"username": USER, "password": "${TEST_MQTT_PASSWORD}"}
        if self.mode == "tls":
            section["tls"] = {
                "ca": str(self.certs["ca"]),
                "cert": str(self.certs["client_cert"]),
                "key": str(self.certs["client_key"]),
            }
        return section | extra


def make_certs(folder: Path) -> dict[str, Path]:
    """Test CA, a server certificate for 127.0.0.1/localhost and a client certificate (EC P-256)."""
    folder.mkdir(parents=True, exist_ok=True)
    p = {
        k: folder / f"{k.replace('_', '.')}.pem"
        for k in ("ca", "ca_key", "server_cert", "server_key", "client_cert", "client_key")
    }
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(p["ca_key"]),
        "-out",
        str(p["ca"]),
        "-days",
        "2",
        "-subj",
        "/CN=detector test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    for who, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        csr, extfile = folder / f"{who}.csr", folder / f"{who}.ext"
        extfile.write_text(
            ext + "\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
        )
        run("req", *ec, "-keyout", str(p[f"{who}_key"]), "-out", str(csr), "-subj", f"/CN=detector test {who}")
        run(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(p["ca"]),
            "-CAkey",
            str(p["ca_key"]),
            "-CAcreateserial",
            "-out",
            str(p[f"{who}_cert"]),
            "-days",
            "2",
            "-extfile",
            str(extfile),
        )
    return p


class Collector:
    """Subscribes to `topic` (QoS 1) and records (topic, payload bytes, retain) in arrival order."""

    def __init__(self, broker: Mosquitto, topic: str = "city/#") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        # a persistent session (clean_session=False), as a management centre should use: what arrives
        # while it reconnects after a broker restart is kept for it
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"collector-{time.monotonic_ns()}", clean_session=False
        )
        if broker.mode == "password":
            self.client.username_pw_set(USER, PASSWORD)
        if broker.mode == "tls":
            c = broker.certs
            self.client.tls_set(ca_certs=str(c["ca"]), certfile=str(c["client_cert"]), keyfile=str(c["client_key"]))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()
        assert self._subscribed.wait(10), "collector could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def on(self, suffix: str) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return [m for m in self.messages if m[0].endswith(suffix)]

    def alerts(self) -> list[dict]:
        return [json.loads(m[1]) for m in self.on("/alert")]

    def wait(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(name="broker")
def broker_fixture(tmp_path):
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture(name="password_broker")
def password_broker_fixture(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_MQTT_PASSWORD", PASSWORD)
    b = Mosquitto(tmp_path / "broker", "password").start()
    yield b
    b.stop()


@pytest.fixture(name="tls_broker")
def tls_broker_fixture(tmp_path):
    b = Mosquitto(tmp_path / "broker", "tls").start()
    yield b
    b.stop()
