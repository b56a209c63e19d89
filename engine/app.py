"""Wiring: database, services, interceptor and gRPC server, built from Settings."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine import __version__
from engine.admin.service import AdminService
from engine.admin.servicer import AdminServicer
from engine.admin.ui import admin_assets
from engine.auth.credentials import derive_gateway_token, derive_key
from engine.auth.guard import AccessGuard
from engine.children import ChildProcess
from engine.config import Settings
from engine.crypto import SecretCipher
from engine.gateway.app import Gateway, OpsEndpoints
from engine.gateway.openapi import build_openapi
from engine.gateway.process import GatewayProcess
from engine.gateway.routes import routes_of
from engine.gateway.server import GatewayServer, bind
from engine.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from engine.metrics import EngineMetrics
from engine.ratelimit import RateLimiter
from engine.registry.service import RegistryService
from engine.registry.servicer import RegistryServicer
from engine.rpc.interceptor import AccessInterceptor
from engine.rpc.server import SERVICES, GrpcServer, policy_table
from engine.sessions.providers import Provider
from engine.sessions.providers.sandbox import SandboxProvider
from engine.sessions.providers.waha import WahaProvider
from engine.sessions.service import SessionService
from engine.sessions.servicer import SessionsServicer
from engine.store import migrate
from engine.store.base import utcnow
from engine.store.database import Database
from engine.webhooks.deliveries import DeliveryService
from engine.webhooks.dispatcher import Dispatcher, DispatcherConfig
from engine.webhooks.ingress import ProviderIngress
from engine.webhooks.outbox import Outbox
from engine.webhooks.servicer import WebhookServicer
from engine.webhooks.signing import EngineSigner
from engine.work.retry import RetryPolicy

log = logging.getLogger("engine")


@dataclass
class Engine:
    """A running engine: everything `engine serve` starts, and how to stop it."""

    settings: Settings
    database: Database
    registry: RegistryService
    sessions: SessionService
    ingress: ProviderIngress
    providers: dict[str, Provider]
    deliveries: DeliveryService
    guard: AccessGuard
    metrics: EngineMetrics
    grpc: GrpcServer
    dispatcher: Dispatcher | None = None
    http: GatewayServer | GatewayProcess | None = None
    #: `engine worker` as a child process delivering the webhooks (instead of `dispatcher.start()`).
    worker: ChildProcess | None = None
    #: How often gRPC health is brought in line with the database's reachability.
    health_check_seconds: float = 5.0
    _stopping: threading.Event = field(default_factory=threading.Event)

    def children(self) -> list[ChildProcess]:
        """The engine's child processes (gateway, worker), when it runs them."""
        gateway = self.http.child if isinstance(self.http, GatewayProcess) else None
        return [child for child in (gateway, self.worker) if child is not None]

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
        """Start serving gRPC, then the gateway in front of it, then delivering webhooks."""
        self.grpc.start()
        if self.http is not None:
            self.http.start()
        if self.worker is not None:
            self.worker.start()
        elif self.dispatcher is not None and self.settings.run_dispatcher:
            self.dispatcher.start()
        threading.Thread(target=self._follow_database, name="health", daemon=True).start()
        log.info(
            "engine started",
            extra={
                "version": __version__,
                "grpc_port": self.grpc.port,
                "http_port": self.http.port if self.http else None,
                "database": self.database.dialect,
            },
        )

    def _follow_database(self) -> None:
        """Report NOT_SERVING over grpc.health.v1 while the database is unreachable."""
        serving = True
        while not self._stopping.wait(self.health_check_seconds):
            try:
                self.database.ping()
                reachable = True
            except Exception:
                reachable = False
            if reachable != serving:
                serving = reachable
                self.grpc.set_serving(serving)
                log.warning("database reachable again" if serving else "database unreachable: NOT_SERVING")

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting requests, finish those in flight, release the database."""
        self._stopping.set()
        if self.http is not None:
            self.http.stop()
        self.grpc.stop(grace_seconds)
        if self.worker is not None:
            self.worker.stop(grace_seconds)
        if self.dispatcher is not None:
            self.dispatcher.stop(grace_seconds)
        for provider in self.providers.values():
            provider.close()
        self.database.dispose()
        log.info("engine stopped")


def build_engine(settings: Settings, *, serve_http: bool = True, child_processes: bool = False) -> Engine:
    """Create (but do not start) an engine from `settings`; migrates first when configured to.

    With `child_processes` the REST gateway (`engine gateway`) and the dispatcher (`engine
    worker`, woken through its stdin when an event is committed) run as child processes, else
    on threads of this process.
    """
    settings.require_serving_secrets()
    database = Database(settings.database_url)
    if settings.auto_migrate:
        migrate.upgrade(database)
    metrics = EngineMetrics()
    # Bound first: the providers must know the address their webhooks come back to.
    http_socket = bind(settings.http_addr) if serve_http else None
    ingress_base = settings.ingress_base_url(http_socket.getsockname()[1] if http_socket else None)
    registry = RegistryService(
        database,
        SecretCipher(settings.secret_key.get()),
        allow_private_webhook_urls=settings.allow_private_webhook_urls,
    )
    # Always built: SendTestWebhook delivers through it at once, even where `engine worker`
    # processes do the rest; it only runs its claim loop when this process is a dispatcher.
    dispatcher = build_dispatcher(settings, database, registry)
    worker = delivery_worker(settings) if child_processes and settings.run_dispatcher else None
    if worker is not None:
        outbox = Outbox(wake=functools.partial(worker.write, WAKE_UP))
    else:
        outbox = Outbox(wake=dispatcher.wake if settings.run_dispatcher else None)
    providers = build_providers(settings, ingress_base)
    ingress = ProviderIngress(database, providers, publish=outbox.publish, count=metrics.count_provider_event)
    sandbox = providers["sandbox"]
    assert isinstance(sandbox, SandboxProvider)
    sandbox.attach(ingress.accept)
    sessions = SessionService(database, providers, settings.default_provider, publish=outbox.publish)
    deliveries = DeliveryService(database, outbox, deliver_now=dispatcher.deliver)
    guard = AccessGuard(
        psk=settings.internal_psk.get(),
        master_key=settings.master_api_key.get(),
        resolve_key=registry.resolve_api_key,
        limiter=RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst),
        failed_auth_limiter=RateLimiter(settings.rate_limit_rps, settings.rate_limit_burst),
        verify_provider=ingress.verify_request,
    )
    guard.counters.listener = metrics
    registry_servicer = RegistryServicer(registry, settings.rate_limit_rps, settings.rate_limit_burst)
    admin = AdminService(
        database,
        registry,
        sessions,
        deliveries,
        providers,
        lambda: (guard.counters.auth_failures, guard.counters.rate_limit_rejections),
    )
    servicers = {
        "workflow_engine.v1.RegistryService": registry_servicer,
        "workflow_engine.v1.AdminService": AdminServicer(admin, registry_servicer),
        "workflow_engine.v1.SessionsService": SessionsServicer(sessions),
        "workflow_engine.v1.WebhookService": WebhookServicer(ingress, deliveries, engine_signer(settings)),
    }
    gateway_token = derive_gateway_token(settings.secret_key.get())
    server = GrpcServer(
        AccessInterceptor(guard, policy_table(), metrics, gateway_token),
        servicers,
        settings.grpc_addr,
        settings.grpc_workers,
    )
    engine = Engine(
        settings,
        database,
        registry,
        sessions,
        ingress,
        providers,
        deliveries,
        guard,
        metrics,
        server,
        dispatcher,
        worker=worker,
    )
    if http_socket is not None:
        upstream = f"{loopback_host(settings.grpc_addr)}:{server.port}"
        if child_processes:
            engine.http = GatewayProcess(http_socket, upstream, child_environment(settings))
        else:
            ops = OpsEndpoints(
                ready=lambda: _database_ready(database),
                metrics=lambda: (metrics.render(), METRICS_CONTENT_TYPE),
                openapi_json=openapi_document(),
            )
            gateway = rest_gateway(settings, upstream, ops, observe=metrics.observe_http)
            engine.http = GatewayServer(gateway, http_socket)
    return engine


def rest_gateway(
    settings: Settings,
    upstream: str,
    ops: OpsEndpoints,
    observe: Callable[[str, int, float], None] | None = None,
) -> Gateway:
    """The REST gateway in front of the engine's gRPC server at `upstream`."""
    return Gateway(
        upstream,
        routes_of(SERVICES),
        ops,
        gateway_token=derive_gateway_token(settings.secret_key.get()) if settings.secret_key else "",
        max_body_bytes=settings.http_max_body_bytes,
        observe=observe,
        # The providers sign their webhooks in these headers; the ingress checks them.
        forward_headers=SandboxProvider.signature_headers | WahaProvider.signature_headers,
        static=admin_assets(),
    )


#: What the engine writes to its worker's stdin when an event is committed.
WAKE_UP = b"\n"


def delivery_worker(settings: Settings) -> ChildProcess:
    """`engine worker` as a child process, woken through its stdin (`WAKE_UP`)."""
    return ChildProcess(
        "webhook dispatcher", ["worker", "--wake-on-stdin"], child_environment(settings), with_stdin=True
    )


def child_environment(settings: Settings) -> dict[str, str]:
    """What the engine's child processes (gateway, worker) need of `settings`, as the environment
    variables they read: the engine's settings may not have come from the environment."""
    return {
        "ENGINE_API_KEY": settings.master_api_key.get(),
        "WORKFLOW_ENGINE_INTERNAL_PSK": settings.internal_psk.get(),
        "ENGINE_SECRET_KEY": settings.secret_key.get(),
        "ENGINE_DATABASE_URL": settings.database_url,
        "ENGINE_AUTO_MIGRATE": "false",  # the engine migrated before starting it
        "ENGINE_LOG_LEVEL": settings.log_level,
        "ENGINE_HTTP_MAX_BODY_BYTES": str(settings.http_max_body_bytes),
        "ENGINE_WEBHOOK_TIMEOUT_SECONDS": str(settings.webhook_timeout_seconds),
        "ENGINE_WEBHOOK_RETRY_SCHEDULE": ",".join(f"{delay:g}" for delay in settings.webhook_retry_schedule),
        "ENGINE_WEBHOOK_DISABLE_AFTER_HOURS": str(settings.webhook_disable_after_hours),
        "ENGINE_WEBHOOK_CONCURRENCY": str(settings.webhook_concurrency),
        "ENGINE_WEBHOOK_CONCURRENCY_PER_DASHBOARD": str(settings.webhook_concurrency_per_dashboard),
        "ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS": str(settings.allow_private_webhook_urls).lower(),
    }


def engine_signer(settings: Settings) -> EngineSigner:
    """The engine's Ed25519 webhook signing key (derived from ENGINE_SECRET_KEY)."""
    return EngineSigner(derive_key(settings.secret_key.get(), "webhook-ed25519"))


def build_dispatcher(
    settings: Settings,
    database: Database,
    registry: RegistryService,
    clock: Callable[[], datetime] = utcnow,
) -> Dispatcher:
    """The webhook dispatcher configured from `settings` (`engine serve` and `engine worker`)."""
    config = DispatcherConfig(
        policy=RetryPolicy(settings.webhook_retry_schedule),
        timeout_seconds=settings.webhook_timeout_seconds,
        disable_after=timedelta(hours=settings.webhook_disable_after_hours),
        concurrency=settings.webhook_concurrency,
        concurrency_per_dashboard=settings.webhook_concurrency_per_dashboard,
        allow_private_webhook_urls=settings.allow_private_webhook_urls,
    )
    return Dispatcher(
        database,
        registry.delivery_target,
        engine_signer(settings),
        config,
        on_status_change=registry.forget,
        clock=clock,
    )


def build_providers(settings: Settings, ingress_base_url: str) -> dict[str, Provider]:
    """The provider adapters this engine drives: always the sandbox, WAHA when configured."""
    providers: dict[str, Provider] = {
        "sandbox": SandboxProvider(
            derive_key(settings.secret_key.get(), "sandbox-ingress"), settings.sandbox_pairing_seconds
        )
    }
    if settings.waha_url:
        providers["waha"] = WahaProvider(
            settings.waha_url,
            settings.waha_api_key.get(),
            settings.waha_webhook_secret.get(),
            f"{ingress_base_url}/v1/webhooks/waha",
        )
    return providers


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
