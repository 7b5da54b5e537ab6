"""paho client setup, the CONNACK handshake (publisher and `detector listen`), and error messages
(one line, naming host:port, never a credential)."""

import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from detector.errors import PublishError, redact_url

CONNACK_TIMEOUT_S = 10.0
LOOP_TIMEOUT_S = 0.02
# OpenSSL's reasons when the answer to a ClientHello is not TLS (an MQTT or HTTP server talking plain)
_NOT_TLS_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")


class Refused(PublishError):
    """The broker answered CONNACK with a failure (credentials, not authorised, ...)."""


@dataclass(frozen=True)
class Endpoint:
    """What a connection needs; built from MqttConfig or from `detector listen` options."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_insecure: bool = False
    use_tls: bool = False
    keepalive_s: int = 30

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_config(cls, mqtt_config) -> "Endpoint":
        tls = mqtt_config.tls
        return cls(
            host=mqtt_config.host,
            port=mqtt_config.port,
            username=mqtt_config.username,
            password=mqtt_config.password.get_secret_value() if mqtt_config.password else None,
            tls_ca=tls.ca if tls else None,
            tls_cert=tls.cert if tls else None,
            tls_key=tls.key if tls else None,
            tls_insecure=tls.insecure if tls else False,
            use_tls=tls is not None,
            keepalive_s=mqtt_config.keepalive_s,
        )

    def __repr__(self) -> str:  # dataclass repr would show the password
        return f"Endpoint({self.name}, user={self.username!r}, tls={self.use_tls})"


def tls_context(endpoint: Endpoint) -> ssl.SSLContext | None:
    """Built once, so a bad CA or key file is one clear error at start, not one per reconnect."""
    if not endpoint.use_tls:
        return None
    for what, path in (("ca", endpoint.tls_ca), ("cert", endpoint.tls_cert), ("key", endpoint.tls_key)):
        if path is not None and not Path(path).is_file():
            raise PublishError(f"mqtt tls {what}: file not found: {path}")
    try:
        context = ssl.create_default_context(cafile=str(endpoint.tls_ca) if endpoint.tls_ca else None)
        if endpoint.tls_cert:
            context.load_cert_chain(str(endpoint.tls_cert), str(endpoint.tls_key) if endpoint.tls_key else None)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise PublishError(f"mqtt tls: cannot load the CA/certificate/key: {_ssl_reason(exc)}") from None
    if endpoint.tls_insecure:
        context.check_hostname = False
    return context


def new_client(
    endpoint: Endpoint,
    client_id: str,
    context: ssl.SSLContext | None,
    will: tuple[str, str] | None = None,
    max_in_flight: int = 16,
) -> mqtt.Client:
    """A fresh client per connection attempt: paho's in-memory queue of a dead connection is
    dropped with it, and the outbox (not paho) decides what is sent again."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username, endpoint.password)
    if context is not None:
        client.tls_set_context(context)
        client.tls_insecure_set(endpoint.tls_insecure)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.max_inflight_messages_set(max_in_flight)
    return client


def handshake(client: mqtt.Client, endpoint: Endpoint) -> None:
    """Connect and wait for the CONNACK (the publisher and `detector listen` alike): returns once
    the broker accepted; raises Refused, PublishError (closed before answering), TimeoutError, or
    the socket / ssl error (describe_error turns it into one line). Sets `client.on_connect`."""
    answer = []
    client.on_connect = lambda c, u, flags, reason, props: answer.append(reason)
    try:
        client.connect(endpoint.host, endpoint.port, endpoint.keepalive_s)  # TCP, and the TLS handshake
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        if endpoint.use_tls and _not_tls(exc):
            raise PublishError(
                f"mqtt broker {endpoint.name}: TLS handshake failed: the broker did not answer TLS "
                "(a plain MQTT port? TLS is usually 8883)"
            ) from None
        raise
    deadline = time.monotonic() + CONNACK_TIMEOUT_S
    while not answer:
        if client.loop(LOOP_TIMEOUT_S) != mqtt.MQTT_ERR_SUCCESS and not answer:
            hint = "" if endpoint.use_tls else " (a TLS port? then configure mqtt.tls)"
            raise PublishError(f"mqtt broker {endpoint.name} closed the connection before accepting it{hint}")
        if time.monotonic() > deadline:
            raise TimeoutError()
    if answer[0].is_failure:
        raise Refused(refusal_message(endpoint, answer[0]))


def describe_error(endpoint: Endpoint, exc: BaseException) -> str:
    """socket / ssl / paho failure -> one line for a person."""
    where = f"mqtt broker {endpoint.name}"
    if isinstance(exc, PublishError):
        return str(exc)
    if isinstance(exc, socket.gaierror):
        return f"{where}: unknown host"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{where}: TLS certificate verification failed: {exc.verify_message or _ssl_reason(exc)}"
    if isinstance(exc, ssl.SSLError):
        return f"{where}: TLS handshake failed: {_ssl_reason(exc)}"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} unreachable: connection refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"{where} unreachable: timed out"
    if isinstance(exc, OSError):
        return f"{where} unreachable: {exc.strerror or type(exc).__name__}"
    detail = redact_url(str(exc)).rstrip(".")  # paho's own words ("Invalid host.") without a URL's credentials
    return f"{where}: {type(exc).__name__}: {detail}" if detail else f"{where}: {type(exc).__name__}"


def refusal_message(endpoint: Endpoint, reason_code) -> str:
    """CONNACK failure, e.g. `... refused the connection: bad user name or password`."""
    return f"mqtt broker {endpoint.name} refused the connection: {str(reason_code).lower()}"


def _not_tls(exc: BaseException) -> bool:
    """Whether a failed TLS handshake means the other end does not speak TLS: it hung up on the
    ClientHello (mosquitto's plain listener does), or answered with bytes that are no TLS record."""
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return True
    return getattr(exc, "reason", None) in _NOT_TLS_REASONS


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return str(reason).replace("_", " ").lower()
