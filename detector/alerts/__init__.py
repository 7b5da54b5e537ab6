"""Alerts as values, their factory, which are open, evidence snapshots and the sinks they go to."""

from detector.alerts.alert import SCHEMA, Alert, AlertEvent, AlertObject, ModelStamp, Snapshot
from detector.alerts.evidence import EvidenceWriter
from detector.alerts.factory import AlertFactory, Provenance, iso_utc
from detector.alerts.open_alerts import OpenAlert, OpenAlerts
from detector.alerts.sinks import ConsoleSink, JsonlSink, LogSink, Sink, format_alert

__all__ = [
    "SCHEMA",
    "Alert",
    "AlertEvent",
    "AlertFactory",
    "AlertObject",
    "ConsoleSink",
    "EvidenceWriter",
    "JsonlSink",
    "LogSink",
    "ModelStamp",
    "OpenAlert",
    "OpenAlerts",
    "Provenance",
    "Sink",
    "Snapshot",
    "format_alert",
    "iso_utc",
]
