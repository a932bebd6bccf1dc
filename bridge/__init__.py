"""The /metrics/stream bridge: samples a registry, a scraped /metrics or a Prometheus server into
category-grouped JSON for WebSocket subscribers (docs/METRICS_STREAMING.md).

Depends on prometheus-client, numpy and starlette only, never on ``fakeai`` or ``exporter``: what to
read is a ``bridge.categories.Mapping`` of family names, given by whoever builds the hub.
"""
