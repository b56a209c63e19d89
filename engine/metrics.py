"""Prometheus metrics of the engine, in a registry of its own (served at /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Latency buckets in seconds: sub-millisecond resolution where the engine spends its time.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _GuardCountersCollector(Collector):
    """Exports the access guard's own counters, so nothing is counted twice."""

    def __init__(self, read: Callable[[], tuple[int, int]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        auth_failures, rejections = self._read()
        yield CounterMetricFamily(
            "engine_auth_failures", "Calls refused for missing or invalid credentials", value=auth_failures
        )
        yield CounterMetricFamily(
            "engine_rate_limit_rejections", "Calls refused by a rate limit", value=rejections
        )


class EngineMetrics:
    """RPC counters and latency histograms by method, code and transport (grpc or rest)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "engine_rpc_requests",
            "RPCs handled, by method, status code and transport",
            ("method", "code", "transport"),
            registry=self.registry,
        )
        self._latency = Histogram(
            "engine_rpc_duration_seconds",
            "Time spent serving an RPC, by method and transport",
            ("method", "transport"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._http_requests = Counter(
            "engine_http_requests",
            "REST gateway requests, by route template and HTTP status",
            ("route", "status"),
            registry=self.registry,
        )
        self._http_latency = Histogram(
            "engine_http_request_duration_seconds",
            "Time spent serving a REST request, gRPC call included, by route template",
            ("route",),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._provider_events = Counter(
            "engine_provider_events",
            "Provider webhook events, by provider and outcome (stored, duplicate, unroutable, ignored)",
            ("provider", "outcome"),
            registry=self.registry,
        )
        # labels() is comparatively slow; the children per label set never change.
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def observe_rpc(self, method: str, code: str, transport: str, seconds: float) -> None:
        """Count one RPC and record its duration."""
        key = (method, code, transport)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(method, code, transport),
                self._latency.labels(method, transport),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_http(self, route: str, status: int, seconds: float) -> None:
        """Count one REST request and record its duration."""
        key = ("http", route, str(status))
        children = self._children.get(key)
        if children is None:
            children = (self._http_requests.labels(route, str(status)), self._http_latency.labels(route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_provider_event(self, provider: str, outcome: str) -> None:
        """Count one provider event by what recording it did."""
        self._provider_events.labels(provider, outcome).inc()

    def watch_guard(self, read: Callable[[], tuple[int, int]]) -> None:
        """Export (auth failures, rate-limit rejections) as read from the guard at scrape time."""
        self.registry.register(_GuardCountersCollector(read))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return bytes(generate_latest(self.registry))
