"""Names shared by the harness and the report: the ceilings, the scenarios of issue 20's
targets (each named by its fraction of a ceiling), and the defaults used when a ceiling was
not measured (--skip-ceilings)."""

from __future__ import annotations

C = "envoy_noop_http"  # the run's Envoy -> no-op HTTP ceiling, req/s
U = "grpc_noop_direct"  # the run's no-op unary gRPC ceiling (direct), req/s

# When a ceiling was not measured: the slow-day figures of issue 20 (2026-12-01), stated
# in the table as "NOT MEASURED" so no ratio passes for a measured one.
DEFAULT_CEILINGS = {C: 3_632.0, U: 3_766.0}

# Fractions of the ceilings (issue 20).
BATCH_U = 1.0
FIXED_C = 0.12
SERIES_C = 0.03
SOAK_C = 0.25

BATCH_MAX = "grpc-batch-max"
BATCH = f"grpc-batch-{BATCH_U:.1f}U"
HTTP_MAX = "http-max"
HTTP_FIXED = f"http-{FIXED_C:g}C"
MQTT_FIXED = f"mqtt-{FIXED_C:g}C"
QUERY = f"query-{FIXED_C:g}C"
SERIES = f"series-{SERIES_C:g}C"
# What the series scenario asks for: the console chart's read, the average of each bucket.
SERIES_AGGREGATES = "avg"
SOAK = f"soak-{SOAK_C:g}C"
MQTT_DEVICES = 200
