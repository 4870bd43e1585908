"""Prometheus metrics: what the cache did, scraped over HTTP.

``Metrics`` is a ``StatsSink``: ``Stats`` hands it every event it records, so
a scrape counts exactly what StatsService counts. Each server has its own
``CollectorRegistry`` (several servers share a test process).

    plancache_lookups_total{collection,outcome}          hit | miss | planned
    plancache_lookup_misses_total{collection,reason}     below_threshold, ...
    plancache_lookup_duration_seconds{collection}        histogram
    plancache_template_hits_total{collection,template_id}
    plancache_saved_usd_total{collection}                planning money hits saved
    plancache_saved_tokens_total{collection}             planning tokens hits saved
    plancache_planner_calls_total{collection,model,result}   ok | error
    plancache_planner_tokens_total{collection,model,kind}    input | output | cache_write | cache_read
    plancache_planner_spent_usd_total{collection,model}
    plancache_executor_steps_total{collection,model,result}  model "tool" for tool steps
    plancache_executor_spent_usd_total{collection,model}
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from plancache.errors import ConfigurationError
from plancache.stats import LookupEvent, PlannerEvent, StepEvent

__all__ = ["Metrics", "MetricsEndpoint"]

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
)


class Metrics:
    """The metrics of one server, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.lookups = Counter(
            "plancache_lookups", "Lookups answered, by outcome.", ["collection", "outcome"], registry=r
        )
        self.misses = Counter(
            "plancache_lookup_misses", "Lookups that served nothing, by miss reason.",
            ["collection", "reason"], registry=r,
        )
        self.latency = Histogram(
            "plancache_lookup_duration_seconds", "Time the server took to answer a Lookup.",
            ["collection"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.template_hits = Counter(
            "plancache_template_hits", "Lookups each template served.",
            ["collection", "template_id"], registry=r,
        )
        self.saved_usd = Counter(
            "plancache_saved_usd", "Planning money the hits saved, US dollars.", ["collection"], registry=r
        )
        self.saved_tokens = Counter(
            "plancache_saved_tokens", "Planning tokens the hits saved.", ["collection"], registry=r
        )
        self.planner_calls = Counter(
            "plancache_planner_calls", "Planner calls, by result.",
            ["collection", "model", "result"], registry=r,
        )
        self.planner_tokens = Counter(
            "plancache_planner_tokens", "Planner tokens, by kind.",
            ["collection", "model", "kind"], registry=r,
        )
        self.planner_spent = Counter(
            "plancache_planner_spent_usd", "Money spent on the planner, US dollars.",
            ["collection", "model"], registry=r,
        )
        self.steps = Counter(
            "plancache_executor_steps", "Execution steps run, by model and result.",
            ["collection", "model", "result"], registry=r,
        )
        self.executor_spent = Counter(
            "plancache_executor_spent_usd", "Money spent on execution steps, US dollars.",
            ["collection", "model"], registry=r,
        )

    def lookup(self, event: LookupEvent) -> None:
        self.lookups.labels(event.collection, event.outcome).inc()
        self.latency.labels(event.collection).observe(event.latency_ms / 1000)
        if event.outcome == "hit":
            self.template_hits.labels(event.collection, event.template_id).inc()
            self.saved_usd.labels(event.collection).inc(event.saved_usd)
            self.saved_tokens.labels(event.collection).inc(event.saved_tokens)
        elif event.outcome == "miss":
            self.misses.labels(event.collection, event.miss_reason or "unspecified").inc()

    def planner_call(self, event: PlannerEvent) -> None:
        model = event.model or "unknown"
        self.planner_calls.labels(event.collection, model, "ok" if event.ok else "error").inc()
        for kind, count in (
            ("input", event.input_tokens),
            ("output", event.output_tokens),
            ("cache_write", event.cache_write_tokens),
            ("cache_read", event.cache_read_tokens),
        ):
            self.planner_tokens.labels(event.collection, model, kind).inc(count)
        self.planner_spent.labels(event.collection, model).inc(event.cost_usd)

    def step(self, event: StepEvent) -> None:
        model = event.model or "tool"
        self.steps.labels(event.collection, model, "ok" if event.ok else "error").inc()
        self.executor_spent.labels(event.collection, model).inc(event.cost_usd)


class MetricsEndpoint:
    """An HTTP server in a thread of its own that serves ``/metrics`` of a registry."""

    def __init__(self, metrics: Metrics, listen: str) -> None:
        self.metrics = metrics
        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigurationError(
                f"PLANCACHE_METRICS_LISTEN: {listen!r} is not host:port (e.g. 127.0.0.1:9464)"
            )
        try:
            self._httpd: WSGIServer
            self._httpd, self._thread = start_http_server(
                int(port), addr=host.strip("[]") or "0.0.0.0", registry=metrics.registry
            )
        except OSError as exc:
            raise ConfigurationError(f"cannot serve metrics on {listen!r}: {exc}") from exc
        self.port: int = self._httpd.server_port

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
