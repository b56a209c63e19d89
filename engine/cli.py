"""Command line: `engine serve | migrate | worker | gateway | dev-credentials`."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from engine import __version__
from engine.config import METRICS_DIR_VARIABLE, ConfigError, Settings
from engine.logs import configure_logging, shutdown_logging

log = logging.getLogger("engine")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `engine` console script."""
    parser = argparse.ArgumentParser(prog="engine", description="Workflow Engine")
    parser.add_argument("--version", action="version", version=f"engine {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gRPC server (migrates first unless ENGINE_AUTO_MIGRATE=false)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    worker = commands.add_parser(
        "worker", help="only deliver webhooks (the dispatcher role of `engine serve`)"
    )
    # How `engine serve` runs its worker child: woken by a line on stdin when an event is committed.
    worker.add_argument("--wake-on-stdin", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    gateway = commands.add_parser(
        "gateway", help="run only the REST gateway, in front of a running gRPC server"
    )
    gateway.add_argument("--upstream", required=True, metavar="HOST:PORT", help="the engine's gRPC address")
    # How `engine serve` runs its gateway child: on the socket it bound, dying with it.
    gateway.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    gateway.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    dev = commands.add_parser("dev-credentials", help="create a git-ignored file of random dev credentials")
    dev.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        if args.command == "serve":
            return serve(settings)
        if args.command == "migrate":
            return migrate_database(settings)
        if args.command == "gateway":
            return serve_gateway(settings, args.upstream, args.listen_fd, args.parent_pid)
        if args.command == "worker":
            return run_worker(settings, args.wake_on_stdin, args.parent_pid)
        return write_dev_credentials(args.path)
    except ConfigError as error:
        print(f"engine: configuration error: {error}", file=sys.stderr)
        return 2


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    if settings.child_processes:
        share_metrics_with_children()
    from engine.app import build_engine

    stopping = _catch_stop_signals()
    engine = build_engine(settings, child_processes=settings.child_processes)
    engine.start()
    print(f"engine: gRPC listening on {settings.grpc_addr.rpartition(':')[0]}:{engine.grpc_port}", flush=True)
    print(
        f"engine: REST listening on http://{settings.http_addr.rpartition(':')[0]}:{engine.http_port}",
        flush=True,
    )
    stopping.wait()
    engine.stop()
    shutdown_logging()
    return 0


def run_worker(settings: Settings, wake_on_stdin: bool = False, parent_pid: int | None = None) -> int:
    """Deliver webhooks until SIGTERM or SIGINT; any number of workers may share one database.

    As `engine serve`'s child it ends with its parent and looks for due rows whenever a line
    arrives on stdin (the parent commits an event), besides polling.
    """
    from engine.app import build_dispatcher
    from engine.children import die_with_parent
    from engine.crypto import SecretCipher
    from engine.registry.service import RegistryService
    from engine.store import migrate
    from engine.store.database import Database

    settings.require_serving_secrets()
    stopping = _catch_stop_signals()
    database = Database(settings.database_url)
    if settings.auto_migrate:
        migrate.upgrade(database)
    if parent_pid is not None:
        die_with_parent(parent_pid)
    registry = RegistryService(database, SecretCipher(settings.secret_key.get()))
    dispatcher = build_dispatcher(settings, database, registry)
    dispatcher.start()
    if wake_on_stdin:
        threading.Thread(target=_wake_on_lines, args=(dispatcher.wake,), name="wake", daemon=True).start()
    else:
        print("engine: delivering webhooks", flush=True)
    stopping.wait()
    dispatcher.stop()
    database.dispose()
    shutdown_logging()
    return 0


def _wake_on_lines(wake: Callable[[], None]) -> None:
    """Call `wake` for every read of stdin that brings lines, until it is closed."""
    while os.read(sys.stdin.fileno(), 4096):
        wake()


def share_metrics_with_children() -> None:
    """Put prometheus-client in multiprocess mode, with a fresh directory for this run.

    Must run before prometheus-client is first imported; the child processes inherit it. A
    directory given in PROMETHEUS_MULTIPROC_DIR is emptied of a previous run's files (as the
    library requires); otherwise a temporary one is made and removed at exit.
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess mode was set")
    given = os.environ.get(METRICS_DIR_VARIABLE)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="engine-metrics-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ[METRICS_DIR_VARIABLE] = str(directory)


def serve_gateway(
    settings: Settings, upstream: str, listen_fd: int | None = None, parent_pid: int | None = None
) -> int:
    """Run the REST gateway alone, forwarding to the gRPC server at `upstream`.

    Under `engine serve` it serves the socket `listen_fd` its parent bound and ends with it.
    """
    import socket

    from engine.app import openapi_document, rest_gateway
    from engine.children import die_with_parent
    from engine.gateway.app import OpsEndpoints
    from engine.gateway.server import GatewayServer
    from engine.metrics import CONTENT_TYPE, EngineMetrics

    async def upstream_serving() -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        async with grpc.aio.insecure_channel(upstream) as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
            except grpc.aio.AioRpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    stopping = _catch_stop_signals()
    if parent_pid is not None:
        die_with_parent(parent_pid)
    # /metrics only where the engine's own metrics are in reach: a directory shared with it.
    metrics = EngineMetrics() if os.environ.get(METRICS_DIR_VARIABLE) else None
    ops = OpsEndpoints(
        ready=upstream_serving,
        metrics=(lambda: (metrics.render(), CONTENT_TYPE)) if metrics else None,
        openapi_json=openapi_document(),
    )
    gateway = rest_gateway(settings, upstream, ops, observe=metrics.observe_http if metrics else None)
    address = socket.socket(fileno=listen_fd) if listen_fd is not None else settings.http_addr
    server = GatewayServer(gateway, address)
    server.start()
    if listen_fd is None:
        host = settings.http_addr.rpartition(":")[0]
        print(f"engine: REST gateway on http://{host}:{server.port} -> {upstream}", flush=True)
    stopping.wait()
    server.stop()
    shutdown_logging()
    return 0


def _catch_stop_signals() -> threading.Event:
    """Turn SIGTERM and SIGINT into the returned event, from now on.

    Called before anything starts serving: a signal that arrives while the engine is still
    starting (its port may already answer) must stop it gracefully, not kill it outright.
    """
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("shutdown requested", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stopping


def migrate_database(settings: Settings) -> int:
    """Apply every pending migration."""
    from engine.store import migrate
    from engine.store.database import Database

    database = Database(settings.database_url)
    migrate.upgrade(database)
    database.dispose()
    print("engine: database is up to date", flush=True)
    return 0


def write_dev_credentials(path: Path) -> int:
    """Create `path` with random credentials and print them, the first time only."""
    if path.exists():
        print(f"engine: using the dev credentials in {path}")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {
        "ENGINE_API_KEY": "wfa_" + secrets.token_urlsafe(32),
        "WORKFLOW_ENGINE_INTERNAL_PSK": "psk_" + secrets.token_urlsafe(24),
        "ENGINE_SECRET_KEY": secrets.token_urlsafe(48),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# Development credentials, generated once by `make run`. Never commit this file.\n")
        out.writelines(f"{name}={value}\n" for name, value in values.items())
    print(f"engine: generated development credentials in {path} (shown this once):")
    for name in ("ENGINE_API_KEY", "WORKFLOW_ENGINE_INTERNAL_PSK"):
        print(f"  {name}={values[name]}")
    return 0
