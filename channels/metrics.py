"""Prometheus metrics of the channels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge("billswitch_connections", "Open acquirer connections", ["channel"])
BAD_FRAMES = Counter("billswitch_bad_frames_total", "Frames that could not be read", ["channel"])
