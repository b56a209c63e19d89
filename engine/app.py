"""Wiring: database, services, interceptor and gRPC server, built from Settings."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from dataclasses import dataclass

from engine import __version__
from engine.auth.credentials import derive_gateway_token
from engine.auth.guard import AccessGuard
from engine.config import Settings
from engine.crypto import SecretCipher
from engine.gateway.app import Gateway, OpsEndpoints
from engine.gateway.openapi import build_openapi
from engine.gateway.routes import routes_of
from engine.gateway.server import GatewayServer
from engine.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from engine.metrics import EngineMetrics
from engine.ratelimit import RateLimiter
from engine.registry.service import RegistryService
from engine.registry.servicer import RegistryServicer
from engine.rpc.interceptor import AccessInterceptor
from engine.rpc.server import SERVICES, GrpcServer, policy_table
from engine.store import migrate
from engine.store.database import Database

log = logging.getLogger("engine")


@dataclass
class Engine:
    """A running engine: everything `engine serve` starts, and how to stop it."""

    settings: Settings
    database: Database
    registry: RegistryService
    guard: AccessGuard
    metrics: EngineMetrics
    grpc: GrpcServer
    http: GatewayServer | None = None

    @property
    def grpc_port(self) -> int:
        """The port the gRPC server listens on (useful with port 0)."""
        return int(self.grpc.port)

    @property
    def http_port(self) -> int:
        """The port the REST gateway listens on."""
        if self.http is None:
            raise RuntimeError("this engine runs without the REST gateway")
        return self.http.port

    def start(self) -> None:
        """Start serving gRPC, then the gateway in front of it."""
        self.grpc.start()
        if self.http is not None:
            self.http.start()
        log.info(
            "engine started",
            extra={
                "version": __version__,
                "grpc_port": self.grpc.port,
                "http_port": self.http.port if self.http else None,
                "database": self.database.dialect,
            },
        )

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting requests, finish those in flight, release the database."""
        if self.http is not None:
            self.http.stop()
        self.grpc.stop(grace_seconds)
        self.database.dispose()
        log.info("engine stopped")


def build_engine(settings: Settings, *, serve_http: bool = True) -> Engine:
    """Create (but do not start) an engine from `settings`; migrates first when configured to."""
    settings.require_serving_secrets()
    database = Database(settings.database_url)
    if settings.auto_migrate:
        migrate.upgrade(database)
    registry = RegistryService(database, SecretCipher(settings.secret_key.get()))
    guard = AccessGuard(
        psk=settings.internal_psk.get(),
        master_key=settings.master_api_key.get(),
        resolve_key=registry.resolve_api_key,
        limiter=RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst),
        failed_auth_limiter=RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst),
    )
    metrics = EngineMetrics()
    metrics.watch_guard(lambda: (guard.counters.auth_failures, guard.counters.rate_limit_rejections))
    servicers = {
        "workflow_engine.v1.RegistryService": RegistryServicer(
            registry, settings.rate_limit_rps, settings.rate_limit_burst
        ),
    }
    gateway_token = derive_gateway_token(settings.secret_key.get())
    server = GrpcServer(
        AccessInterceptor(guard, policy_table(), metrics, gateway_token),
        servicers,
        settings.grpc_addr,
        settings.grpc_workers,
    )
    engine = Engine(settings, database, registry, guard, metrics, server)
    if serve_http:
        ops = OpsEndpoints(
            ready=lambda: _database_ready(database),
            metrics=lambda: (metrics.render(), METRICS_CONTENT_TYPE),
            openapi_json=openapi_document(),
        )
        upstream = f"{loopback_host(settings.grpc_addr)}:{server.port}"
        gateway = Gateway(
            upstream,
            routes_of(SERVICES),
            ops,
            gateway_token=gateway_token,
            max_body_bytes=settings.http_max_body_bytes,
            observe=metrics.observe_http,
        )
        engine.http = GatewayServer(gateway, settings.http_addr)
    return engine


async def _database_ready(database: Database) -> bool:
    try:
        await asyncio.to_thread(database.ping)
    except Exception:
        log.warning("database is not reachable", exc_info=True)
        return False
    return True


def loopback_host(address: str) -> str:
    """The host to reach a server listening on `address` from this machine."""
    host = address.rpartition(":")[0].strip("[]")
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 (a wildcard, not a bind)


@functools.cache
def openapi_document() -> bytes:
    """The OpenAPI document of the engine's routes, as served at /openapi.json.

    Built once per process: the descriptors it is derived from never change at run time.
    """
    document = build_openapi(routes_of(SERVICES), title="Workflow Engine API", version=__version__)
    return json.dumps(document, separators=(",", ":")).encode()
