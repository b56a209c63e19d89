"""Prometheus metrics of the engine, in a registry of its own (served at /metrics).

Under `engine serve` the gRPC server and the REST gateway are two processes: both then write
their values to files in PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, set
before the library is imported) and /metrics adds the files of every process up.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from engine.config import METRICS_DIR_VARIABLE

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Latency buckets in seconds: sub-millisecond resolution where the engine spends its time.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


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
        self._auth_failures = Counter(
            "engine_auth_failures", "Calls refused for missing or invalid credentials", registry=self.registry
        )
        self._rate_limit_rejections = Counter(
            "engine_rate_limit_rejections", "Calls refused by a rate limit", registry=self.registry
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

    def count_auth_failure(self) -> None:
        """Count one call refused for missing or invalid credentials."""
        self._auth_failures.inc()

    def count_rejection(self) -> None:
        """Count one call refused by a rate limit."""
        self._rate_limit_rejections.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (of every process, in multiprocess mode)."""
        directory = os.environ.get(METRICS_DIR_VARIABLE)
        if not directory:
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
