"""The throwaway PostgreSQL harness itself: start, two databases, real queries, clean stop."""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tests.support.postgres import ThrowawayPostgres, find_pg_bin

pytestmark = pytest.mark.postgres


@pytest.fixture
def server() -> Iterator[ThrowawayPostgres]:
    """A private server (not the suite-wide one), so that stop() can be checked."""
    pg = ThrowawayPostgres()
    if not pg.available:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries are missing")
        pytest.skip("PostgreSQL binaries not found")
    yield pg
    pg.stop()


def test_find_pg_bin_honours_override(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("ENGINE_TEST_PG_BIN", str(tmp_path))
    assert find_pg_bin() == tmp_path
    assert not ThrowawayPostgres().available


def test_two_databases_query_and_clean_stop(server: ThrowawayPostgres) -> None:
    started = time.perf_counter()
    server.start()
    server.start()  # idempotent
    print(f"start() took {time.perf_counter() - started:.2f}s")
    data_dir = server.data_dir
    assert data_dir is not None and (data_dir / "PG_VERSION").is_file()

    urls = [server.create_database("harness_one"), server.create_database("harness_two")]
    assert urls[0] == f"postgresql+psycopg2://postgres@127.0.0.1:{server.port}/harness_one"
    for number, (name, url) in enumerate(zip(["harness_one", "harness_two"], urls, strict=True)):
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                assert connection.execute(text("SELECT current_database()")).scalar_one() == name
                connection.execute(text("CREATE TABLE item (id serial PRIMARY KEY, label text NOT NULL)"))
                connection.execute(
                    text("INSERT INTO item (label) VALUES (:a), (:b)"), {"a": f"x{number}", "b": f"y{number}"}
                )
            with engine.connect() as connection:
                rows = connection.execute(text("SELECT id, label FROM item ORDER BY id")).all()
                assert [tuple(row) for row in rows] == [(1, f"x{number}"), (2, f"y{number}")]
        finally:
            engine.dispose()

    server.stop()
    assert not data_dir.exists()
    assert server.port is None and server.data_dir is None
    server.stop()  # safe twice


def test_base_dir_under_private_tmp_path(server: ThrowawayPostgres, tmp_path: pathlib.Path) -> None:
    """pytest's tmp dirs are 0700 root; the harness must still come up (falling back if needed)."""
    server.base_dir = tmp_path  # before start(): where the work dir goes
    url = server.create_database("harness_tmp")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 40 + 2")).scalar_one() == 42
    finally:
        engine.dispose()
