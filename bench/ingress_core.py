"""Ingress core: the engine-side cost of storing signed WAHA `message` webhooks, without HTTP or gRPC.

The engine is built as `engine serve` builds it (`build_engine`, without the REST gateway and
without starting the gRPC server), with one dashboard and one WAHA session created through a stub
WAHA and paired by a signed `session.status` webhook, as in `bench.ingress_throughput`. Then N
threads do what the gRPC server does for each `ReceiveProviderWebhook` call once it has the
request: the AccessGuard's signature check (`ProviderIngress.verify_request`) and the servicer's
`ProviderIngress.receive` (parse, one transaction per event). Bodies are built and signed before
the clock starts, so only the engine's work is measured.

Printed per database and thread count: events/s and the process's CPU time per event (all
threads; steadier than events/s on a busy machine). Afterwards every event must be in the
database exactly once (exit status 1 otherwise).

Environment: BENCH_CORE_SECONDS (default 3), BENCH_CORE_THREADS (default 1,4,16),
BENCH_CORE_DATABASES (default sqlite,postgres).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.api import httpbody_pb2

from bench.ingress_throughput import (
    AGENCY_ID,
    DASHBOARD_PATH,
    TENANT_ID,
    message_webhook,
    sign,
    stored_messages,
    stub_waha,
    waha_settings,
    waha_webhook,
)
from bench.rest_overhead import env_number
from engine.app import Engine, build_engine
from engine.auth.guard import CallCredentials
from engine.config import Settings
from engine.sessions.service import NewSession
from workflow_engine.v1 import webhook_pb2

#: Bodies built ahead per thread and round (more than one thread stores in a measured run).
BATCH = 500


@dataclass(frozen=True)
class Signed:
    """One webhook as the servicer and the guard see it."""

    request: webhook_pb2.ReceiveProviderWebhookRequest
    credentials: CallCredentials


@dataclass(frozen=True)
class Run:
    """One measured run: thread count, events stored, wall and CPU seconds."""

    threads: int
    events: int
    seconds: float
    cpu_seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.events * 1e6


def signed_webhook(body: bytes, secret: str) -> Signed:
    """The request and metadata of a webhook as WAHA posts it, signed with `secret`."""
    metadata = (("x-webhook-hmac", sign(secret, body)), ("x-webhook-hmac-algorithm", "sha512"))
    request = webhook_pb2.ReceiveProviderWebhookRequest(
        provider="waha", body=httpbody_pb2.HttpBody(content_type="application/json", data=body)
    )
    return Signed(request, CallCredentials(metadata=lambda: metadata))


@contextlib.contextmanager
def core_engine(settings: Settings) -> Iterator[tuple[Engine, str]]:
    """The engine (no gateway, gRPC not started) with a dashboard and a paired WAHA session."""
    engine = build_engine(settings, serve_http=False)
    try:
        engine.registry.register(
            AGENCY_ID, "Benchmark dashboard", settings.waha_url + DASHBOARD_PATH, secrets.token_urlsafe(32)
        )
        session = engine.sessions.create(NewSession(AGENCY_ID, TENANT_ID, name="bench", provider="waha"))
        secret = settings.waha_webhook_secret.get()
        body = waha_webhook(session.session_id, "session.status", {"status": "WORKING"}, "evt_pair")
        pairing = signed_webhook(body, secret)
        result = engine.ingress.accept("waha", body, dict(pairing.credentials.metadata()))
        if (
            result.accepted != 1
            or engine.sessions.get(AGENCY_ID, TENANT_ID, session.session_id).status != "WORKING"
        ):
            raise RuntimeError(f"pairing the WAHA session failed: {result}")
        yield engine, session.session_id
    finally:
        engine.stop(grace_seconds=0.5)


def store_events(engine: Engine, webhooks: list[Signed]) -> None:
    """What the gRPC server does per call: the guard's signature check, then the servicer's receive."""
    ingress = engine.ingress
    for webhook in webhooks:
        if not ingress.verify_request(webhook.request, webhook.credentials):
            raise RuntimeError("signature refused")
        result = ingress.receive(webhook.request.provider, webhook.request.body.data)
        if result.accepted != 1 or result.unroutable:
            raise RuntimeError(f"not stored: {result}")


def measure(engine: Engine, session: str, secret: str, threads: int, seconds: float, tag: str) -> Run:
    """Rounds of BATCH pre-signed webhooks per thread until `seconds` have passed."""
    events = 0
    wall = cpu = 0.0
    round_number = 0
    while wall < seconds:
        batches = [
            [
                signed_webhook(message_webhook(session, f"{tag}{round_number:03d}t{t:02d}", n), secret)
                for n in range(BATCH)
            ]
            for t in range(threads)
        ]
        workers = [threading.Thread(target=store_events, args=(engine, batch)) for batch in batches]
        started, cpu_before = time.perf_counter(), time.process_time()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        wall += time.perf_counter() - started
        cpu += time.process_time() - cpu_before
        events += threads * BATCH
        round_number += 1
    return Run(threads, events, wall, cpu)


def run_database(name: str, settings: Settings, threads: list[int], seconds: float) -> tuple[list[Run], bool]:
    """Every thread count on one database; True when the database holds exactly the events stored."""
    with core_engine(settings) as (engine, session):
        secret = settings.waha_webhook_secret.get()
        # Warm-up (one round): statement caches, connection pool, first conversations.
        warmup = measure(engine, session, secret, 1, 1e-9, "wu")
        runs = [measure(engine, session, secret, n, seconds, f"{name[:2]}{n:02d}") for n in threads]
        expected = warmup.events + sum(run.events for run in runs)
        return runs, stored_messages(engine, session) == expected


def main() -> int:
    """Measure on each database; print events/s and CPU us/event; 1 if an event went missing."""
    seconds = env_number("BENCH_CORE_SECONDS", 3.0)
    threads = [int(n) for n in os.environ.get("BENCH_CORE_THREADS", "1,4,16").split(",") if n.strip()]
    databases = [d.strip() for d in os.environ.get("BENCH_CORE_DATABASES", "sqlite,postgres").split(",")]
    results: list[tuple[str, list[Run], bool]] = []
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp, stub_waha() as waha_url:
        base = waha_settings(Path(tmp), waha_url, run_dispatcher=False)
        if "sqlite" in databases:
            results.append(("sqlite", *run_database("sqlite", base, threads, seconds)))
        if "postgres" in databases:
            from tests.support.postgres import ThrowawayPostgres

            server = ThrowawayPostgres()
            if server.available:
                try:
                    settings = dataclasses.replace(base, database_url=server.create_database("engine_core"))
                    results.append(("postgres", *run_database("postgres", settings, threads, seconds)))
                finally:
                    server.stop()
    print(f"Ingress core: verify_request + receive per signed WAHA `message` webhook, {os.cpu_count()} CPUs")
    print(f"  {'database':<10}{'threads':>8}{'events':>9}{'events/s':>11}{'CPU us/event':>14}")
    for name, runs, complete in results:
        for run in runs:
            print(
                f"  {name:<10}{run.threads:>8}{run.events:>9}{run.events_per_second:>11.1f}"
                f"{run.cpu_us_per_event:>14.0f}"
            )
        print(f"  {name}: stored exactly once: {'yes' if complete else 'NO'}")
    return 0 if all(complete for _, _, complete in results) else 1


if __name__ == "__main__":
    sys.exit(main())
