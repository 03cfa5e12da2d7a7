"""The exporter helper: sending queue, retries, timeouts and exporter telemetry, shared by
every exporter (the Collector's exporterhelper)."""

from tracehouse.core.exporterhelper.config import ExporterHelperConfig, SendingQueueConfig
from tracehouse.core.exporterhelper.exporter import Exporter, ExportRequest, Health, Sender, TracesExporter

__all__ = ["ExportRequest", "Exporter", "ExporterHelperConfig", "Health", "SendingQueueConfig", "Sender", "TracesExporter"]
