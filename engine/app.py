"""Wiring: database, services, interceptor and gRPC server, built from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from engine import __version__
from engine.auth.guard import AccessGuard
from engine.config import Settings
from engine.crypto import SecretCipher
from engine.ratelimit import RateLimiter
from engine.registry.service import RegistryService
from engine.registry.servicer import RegistryServicer
from engine.rpc.interceptor import AccessInterceptor
from engine.rpc.server import GrpcServer, policy_table
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
    grpc: GrpcServer

    @property
    def grpc_port(self) -> int:
        """The port the gRPC server listens on (useful with port 0)."""
        return int(self.grpc.port)

    def start(self) -> None:
        """Start serving."""
        self.grpc.start()
        log.info(
            "engine started",
            extra={"version": __version__, "grpc_port": self.grpc.port, "database": self.database.dialect},
        )

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting calls, finish those in flight, release the database."""
        self.grpc.stop(grace_seconds)
        self.database.dispose()
        log.info("engine stopped")


def build_engine(settings: Settings) -> Engine:
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
    servicers = {
        "workflow_engine.v1.RegistryService": RegistryServicer(
            registry, settings.rate_limit_rps, settings.rate_limit_burst
        ),
    }
    server = GrpcServer(
        AccessInterceptor(guard, policy_table()), servicers, settings.grpc_addr, settings.grpc_workers
    )
    return Engine(settings=settings, database=database, registry=registry, guard=guard, grpc=server)
