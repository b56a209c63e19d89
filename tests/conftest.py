"""Shared fixtures: a live engine on a free port, on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import grpc
import pytest

from engine.app import Engine, build_engine
from engine.config import SecretStr, Settings
from tests.support.postgres import ThrowawayPostgres

PSK = "test-psk-0123456789abcdefghijklmnop"
MASTER_KEY = "test-master-key-0123456789abcdefghij"
SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"
WEBHOOK_SECRET = "whsec-test-0123456789abcdefghijklmnopqrstuv"

BACKENDS = ["sqlite", "postgres"]
_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ThrowawayPostgres]:
    """One throwaway PostgreSQL server for the whole run, started on first use."""
    server = ThrowawayPostgres()
    if not server.available:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries are missing; .ci/run should have installed them")
        pytest.skip("PostgreSQL binaries not found")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], str]:
    """Returns a function giving the URL of a new, empty database on the named backend."""

    def make(backend: str) -> str:
        number = next(_database_numbers)
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('db') / f'engine{number}.db'}"
        server: ThrowawayPostgres = request.getfixturevalue("postgres_server")
        return server.create_database(f"engine_test_{number}")

    return make


def base_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for a test engine on a free port with the test credentials."""
    settings = Settings(
        master_api_key=SecretStr(MASTER_KEY),
        internal_psk=SecretStr(PSK),
        secret_key=SecretStr(SECRET_KEY),
        database_url=database_url,
        grpc_addr="127.0.0.1:0",
        http_addr="127.0.0.1:0",
        rate_limit_rps=1000.0,
        rate_limit_burst=10_000,
        grpc_workers=8,
        # Sandbox sessions pair at once unless a test asks otherwise.
        sandbox_pairing_seconds=0.0,
        # Test dashboards listen on loopback; unreachable example URLs fail fast.
        allow_private_webhook_urls=True,
        webhook_timeout_seconds=2.0,
    )
    return replace(settings, **overrides)  # type: ignore[arg-type]


@dataclass
class LiveEngine:
    """A started engine and a channel to it."""

    engine: Engine
    channel: grpc.Channel
    backend: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.engine.grpc_port}"

    @property
    def base_url(self) -> str:
        """The REST gateway's URL (engines started with http=True)."""
        return f"http://127.0.0.1:{self.engine.http_port}"


@pytest.fixture
def start_engine(fresh_database_url: Callable[[str], str]) -> Iterator[Callable[..., LiveEngine]]:
    """Factory: start an engine on `backend` with optional Settings overrides; all stopped at teardown."""
    started: list[LiveEngine] = []

    def start(backend: str = "sqlite", http: bool = False, **overrides: object) -> LiveEngine:
        engine = build_engine(base_settings(fresh_database_url(backend), **overrides), serve_http=http)
        engine.start()
        live = LiveEngine(engine, grpc.insecure_channel(f"127.0.0.1:{engine.grpc_port}"), backend)
        started.append(live)
        return live

    yield start
    for live in started:
        live.channel.close()
        live.engine.stop(grace_seconds=0)


@pytest.fixture(params=BACKENDS)
def live(request: pytest.FixtureRequest, start_engine: Callable[..., LiveEngine]) -> LiveEngine:
    """A live engine (gRPC only), once on SQLite and once on PostgreSQL."""
    return start_engine(request.param)


@pytest.fixture(params=BACKENDS)
def live_http(request: pytest.FixtureRequest, start_engine: Callable[..., LiveEngine]) -> LiveEngine:
    """A live engine with its REST gateway, once on SQLite and once on PostgreSQL."""
    return start_engine(request.param, http=True)
