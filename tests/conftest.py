"""Shared fixtures: a live engine on a free port, on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import grpc
import pytest

from engine.app import build_engine
from tests.support.constants import BACKENDS
from tests.support.live import LiveEngine, base_settings
from tests.support.postgres import ThrowawayPostgres

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
