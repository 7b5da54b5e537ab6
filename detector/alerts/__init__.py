"""Alert payloads, evidence snapshots and the sinks they go to."""

from detector.alerts.evidence import EvidenceWriter
from detector.alerts.payload import SCHEMA, AlertFactory, Provenance
from detector.alerts.sinks import ConsoleSink, JsonlSink, Sink, format_alert

__all__ = ["SCHEMA", "AlertFactory", "ConsoleSink", "EvidenceWriter", "JsonlSink", "Provenance", "Sink", "format_alert"]
