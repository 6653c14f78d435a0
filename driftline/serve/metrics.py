"""Prometheus metrics of one gateway, in a registry of its own (no process-wide state)."""

from __future__ import annotations

from collections.abc import Callable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServeMetrics:
    """Requests, errors, latency per variant, the loaded model, the log queue and dropped rows."""

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "driftline_serve_requests",
            "Prediction requests answered, by variant and status.",
            ["variant", "status"],
            registry=r,
        )
        self.errors = Counter(
            "driftline_serve_errors", "Prediction requests refused or failed, by reason.", ["reason"], registry=r
        )
        self.records = Counter("driftline_serve_records_scored", "Records scored, by variant.", ["variant"], registry=r)
        self.latency = Histogram(
            "driftline_serve_request_latency_seconds",
            "Time from request to answer of scored requests, by variant.",
            ["variant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model = Gauge(
            "driftline_serve_model_info", "1 for the model version being served.", ["model", "version"], registry=r
        )
        self.model_version = Gauge(
            "driftline_serve_model_version", "Version number being served (0 before a model is loaded).", registry=r
        )
        self.reload_failures = Counter(
            "driftline_serve_reload_failures", "Champion versions that could not be loaded.", registry=r
        )
        depth = Gauge("driftline_serve_log_queue_depth", "Rows accepted and not yet in the store.", registry=r)
        depth.set_function(queue_depth)
        self.written = Counter("driftline_serve_log_rows_written", "Rows written to the predictions log.", registry=r)
        self.dropped = Counter(
            "driftline_serve_log_rows_dropped", "Accepted rows that never reached the store (must stay 0).", registry=r
        )
        self.shadow_skipped = Counter(
            "driftline_serve_shadow_skipped",
            "Requests not shadow-scored because the shadow queue was full.",
            registry=r,
        )
        self.canary_share = Gauge(
            "driftline_serve_canary_share", "Percent of entities the challenger serves.", registry=r
        )
        self.quarantined = Counter(
            "driftline_serve_log_rows_quarantined",
            "Logged rows the store's checks refused, kept in quarantine with a reason (expected 0).",
            registry=r,
        )

    def serving(self, model: str, version: str) -> None:
        """Record that ``version`` of ``model`` is now the one served."""
        self.model.clear()
        self.model.labels(model=model, version=version).set(1)
        try:
            self.model_version.set(float(version))
        except ValueError:
            self.model_version.set(0)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
