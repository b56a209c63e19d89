"""Provider ingress throughput: signed WAHA `message` webhooks stored per second, SQLite and PostgreSQL.

One engine at a time runs in this process with its REST gateway (as `engine serve` runs it), its
`waha` provider pointing at a tiny stub WAHA (it only answers `POST /api/sessions` with 201, so the
session is created through the real SessionService path). A signed `session.status` WORKING webhook
then pairs the session through the ingress, as WAHA would. The load is WAHA-format `message`
webhooks with distinct event and message ids, signed with HMAC-SHA512 as WAHA signs them
(`X-Webhook-Hmac`), posted to `POST /v1/webhooks/waha`; each one stores a receipt and a message and
updates a conversation (100 senders in turn) in one transaction.

The load generator runs in a separate (spawned) process, as in the other benchmarks: an asyncio
HTTP/1.1 client with N keep-alive connections and one request in flight on each, which builds and
signs every body itself. The ceiling is the same client doing `GET /healthz` on the same gateway:
what uvicorn and the gateway's routing cost without the gRPC hop, the signature check and the
database. The two targets alternate in rounds; the reported ratio is the median per-round ratio.
Before the rounds a short sweep on each database picks the number in flight with the highest
throughput. After the load the messages in the database are counted: every answered event must
be there, exactly once.

Environment: see bench/README.md (BENCH_INGRESS_SECONDS, BENCH_INGRESS_ROUNDS,
BENCH_INGRESS_WARMUP_SECONDS, BENCH_INGRESS_CONCURRENCY, BENCH_INGRESS_SWEEP,
BENCH_INGRESS_SWEEP_SECONDS, BENCH_INGRESS_DATABASES, ENGINE_GRPC_WORKERS).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import http.client
import json
import math
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import grpc
import uvicorn
from sqlalchemy import func, select

from bench.grpc_overhead import LoadResult, bench_settings, engine_cpu_seconds, production_logging_to
from bench.rest_overhead import env_number, read_response
from engine.app import Engine, build_engine
from engine.config import SecretStr, Settings
from engine.sessions.models import StoredMessage
from engine.sessions.service import NewSession

AGENCY_ID = "bench-agency"
TENANT_ID = "bench-tenant"
INGRESS_PATH = "/v1/webhooks/waha"
CEILING_PATH = "/healthz"
DASHBOARD_PATH = "/dashboard/webhooks"
ACCOUNT = "15550001111"
SENDERS = 100
TARGET_EVENTS_PER_SECOND = 1000.0
EXPECTED_ANSWER = {"accepted": 1, "unroutable": 0}


@dataclass(frozen=True)
class IngressLoadSpec:
    """What the load generator posts (or gets), how hard, and for how long."""

    host: str
    port: int
    #: True: signed WAHA `message` webhooks to INGRESS_PATH; False: GET CEILING_PATH.
    ingress: bool
    session: str
    webhook_secret: str
    #: Makes event and message ids unique across runs against the same database.
    run_tag: str
    concurrency: int
    warmup_seconds: float
    seconds: float


@dataclass
class Sample:
    """One measured run: the load result, and the events the client saw stored (warm-up included)."""

    load: LoadResult
    stored: int
    client_cpu_seconds: float

    @property
    def client_cpu_us_per_call(self) -> float:
        completed = self.load.completed
        return self.client_cpu_seconds / completed * 1e6 if completed else math.nan


@dataclass
class Round:
    """The ceiling and the ingress, measured back to back."""

    ceiling: Sample
    ingress: Sample

    @property
    def ratio(self) -> float:
        """Ingress events/s over ceiling calls/s."""
        rate = self.ceiling.load.throughput
        return self.ingress.load.throughput / rate if rate else 0.0


@dataclass
class DatabaseRun:
    """Everything measured on one database."""

    name: str
    sweep: list[tuple[int, Sample]]
    concurrency: int
    rounds: list[Round]
    #: The ingress pipeline alone: ProviderIngress.receive called in-process by one thread.
    in_process: tuple[float, float]
    answered: int
    in_database: int
    access_lines: int

    @property
    def events_per_second(self) -> float:
        return statistics.median(r.ingress.load.throughput for r in self.rounds)

    @property
    def ratio(self) -> float:
        return statistics.median(r.ratio for r in self.rounds)

    def samples(self) -> list[tuple[str, Sample]]:
        named = [(f"sweep {n} in flight", sample) for n, sample in self.sweep]
        for number, measured in enumerate(self.rounds, start=1):
            named += [
                (f"round {number} ceiling", measured.ceiling),
                (f"round {number} ingress", measured.ingress),
            ]
        return named


# -- WAHA's webhook format ------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """X-Webhook-Hmac: the hex HMAC-SHA512 of the body under the webhook secret (WAHA's scheme)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha512).hexdigest()


def waha_webhook(session: str, event: str, payload: dict[str, Any], event_id: str) -> bytes:
    """A webhook body as WAHA sends it (compact JSON, like JavaScript's JSON.stringify)."""
    envelope = {
        "id": event_id,
        "timestamp": int(time.time() * 1000),
        "event": event,
        "session": session,
        "metadata": {"agencyId": AGENCY_ID, "tenantId": TENANT_ID, "sessionId": session},
        "me": {"id": f"{ACCOUNT}@c.us", "pushName": "Bench"},
        "payload": payload,
        "engine": "WEBJS",
        "environment": {"version": "2025.1.1", "engine": "WEBJS", "tier": "CORE", "browser": None},
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def message_webhook(session: str, tag: str, number: int) -> bytes:
    """The `number`-th inbound text message of a run: distinct event and message ids."""
    sender = f"1555{number % SENDERS:07d}@c.us"
    payload = {
        "id": f"false_{sender}_{tag}{number:010d}",
        "timestamp": int(time.time()),
        "from": sender,
        "fromMe": False,
        "source": "app",
        "to": f"{ACCOUNT}@c.us",
        "body": f"Benchmark message {number}: hello, is the shop open today?",
        "hasMedia": False,
        "media": None,
        "ack": 1,
        "ackName": "SERVER",
        "vCards": [],
        "_data": {"notifyName": "Bench Contact", "type": "chat"},
    }
    return waha_webhook(session, "message", payload, f"evt_{tag}{number:010d}")


def post_request(host: str, port: int, path: str, body: bytes, secret: str) -> bytes:
    """The complete HTTP/1.1 request of one signed webhook."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: WAHA/2025.1.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Webhook-Request-Id: {secrets.token_hex(13)}\r\nX-Webhook-Timestamp: {int(time.time() * 1000)}\r\n"
        f"X-Webhook-Hmac: {sign(secret, body)}\r\nX-Webhook-Hmac-Algorithm: sha512\r\n\r\n"
    )
    return head.encode("latin-1") + body


# -- load generator (runs in the spawned process) -------------------------------------------------


def run_client(spec: IngressLoadSpec) -> tuple[LoadResult, int, float]:
    """Drive one target; picklable entry of the client process. Returns result, stored, CPU time."""
    cpu_before = time.process_time()
    result, stored = asyncio.run(_drive(spec))
    return result, stored, time.process_time() - cpu_before


async def _drive(spec: IngressLoadSpec) -> tuple[LoadResult, int]:
    result = LoadResult(seconds=spec.seconds)
    stored = 0
    ceiling = f"GET {CEILING_PATH} HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\n\r\n".encode("latin-1")
    connections = [await asyncio.open_connection(spec.host, spec.port) for _ in range(spec.concurrency)]
    measure_from = time.perf_counter() + spec.warmup_seconds
    stop_at = measure_from + spec.seconds

    async def caller(index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal stored
        number = index
        while (started := time.perf_counter()) < stop_at:
            if spec.ingress:
                body = message_webhook(spec.session, spec.run_tag, number)
                number += spec.concurrency
                writer.write(post_request(spec.host, spec.port, INGRESS_PATH, body, spec.webhook_secret))
            else:
                writer.write(ceiling)
            try:
                status, answer, closing = await read_response(reader)
            except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as error:
                result.errors += 1
                result.first_error = result.first_error or f"{type(error).__name__}: {error}"
                return
            finished = time.perf_counter()
            result.completed += 1
            good = status == 200 and (not spec.ingress or json.loads(answer) == EXPECTED_ANSWER)
            if not good:
                result.errors += 1
                result.first_error = result.first_error or f"HTTP {status}: {answer[:200]!r}"
            else:
                stored += spec.ingress
                if measure_from <= finished <= stop_at:
                    result.latencies.append(finished - started)
            if closing:
                result.errors += 1
                result.first_error = result.first_error or "the server closed a keep-alive connection"
                return

    try:
        await asyncio.gather(*(caller(i, r, w) for i, (r, w) in enumerate(connections)))
    finally:
        for _, writer in connections:
            writer.close()
        for _, writer in connections:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return result, stored


# -- server side (this process) -------------------------------------------------------------------


@contextlib.contextmanager
def stub_waha() -> Iterator[str]:
    """A stand-in WAHA that creates sessions (POST /api/sessions → 201) and refuses the rest."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b"{}"
            if self.path == DASHBOARD_PATH:
                # The dashboard's webhook endpoint (only used with BENCH_INGRESS_DISPATCHER=1).
                self.send_response(204)
                self.end_headers()
                return
            if self.path != "/api/sessions":
                self.send_error(404)
                return
            name = json.loads(body).get("name", "")
            answer = json.dumps({"name": name, "status": "STOPPED"}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="stub-waha", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def ingress_engine(settings: Settings) -> Iterator[tuple[Engine, str]]:
    """The engine with its gateway, one dashboard and one WAHA session paired through the ingress."""
    engine: Engine = build_engine(settings, serve_http=True, child_processes=True)
    # The dashboard's webhooks go to the stub (delivered only when the dispatcher runs).
    engine.registry.register(
        AGENCY_ID, "Benchmark dashboard", settings.waha_url + DASHBOARD_PATH, secrets.token_urlsafe(32)
    )
    engine.start()
    try:
        session = engine.sessions.create(NewSession(AGENCY_ID, TENANT_ID, name="bench", provider="waha"))
        pair_through_ingress(engine, session.session_id, settings.waha_webhook_secret.get())
        yield engine, session.session_id
    finally:
        engine.stop(grace_seconds=1.0)


def pair_through_ingress(engine: Engine, session: str, secret: str) -> None:
    """Post WAHA's signed `session.status` WORKING; the session must become WORKING (the probe)."""
    body = waha_webhook(session, "session.status", {"name": session, "status": "WORKING"}, "evt_pair")
    connection = http.client.HTTPConnection("127.0.0.1", engine.http_port, timeout=10)
    try:
        connection.request(
            "POST",
            INGRESS_PATH,
            body=body,
            headers={
                "Content-Type": "application/json",
                "X-Webhook-Hmac": sign(secret, body),
                "X-Webhook-Hmac-Algorithm": "sha512",
            },
        )
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    if response.status != 200 or json.loads(answer) != EXPECTED_ANSWER:
        raise RuntimeError(f"POST {INGRESS_PATH} (pairing): HTTP {response.status}: {answer[:300]!r}")
    status = engine.sessions.get(AGENCY_ID, TENANT_ID, session).status
    if status != "WORKING":
        raise RuntimeError(f"the WAHA session is {status} after the pairing webhook, not WORKING")


def stored_messages(engine: Engine, session: str) -> int:
    with engine.database.reader() as tx:
        return int(
            tx.scalar(
                select(func.count()).select_from(StoredMessage).where(StoredMessage.session_id == session)
            )
            or 0
        )


def _measure(engine: Engine, pool: futures.Executor, spec: IngressLoadSpec) -> Sample:
    cpu_before = engine_cpu_seconds(engine)
    result, stored, client_cpu = pool.submit(run_client, spec).result()
    result.server_cpu_seconds = engine_cpu_seconds(engine) - cpu_before
    return Sample(result, stored, client_cpu)


def run_database(
    name: str, settings: Settings, pool: futures.Executor, workdir: Path, options: dict[str, Any]
) -> DatabaseRun:
    """Sweep, then alternating rounds (ceiling, ingress) on one database; then count what was stored."""
    log_path = workdir / f"engine-{name}.log"
    with (
        log_path.open("w", encoding="utf-8") as log_stream,
        production_logging_to(log_stream),
        ingress_engine(settings) as (engine, session),
    ):
        secret = settings.waha_webhook_secret.get()
        runs = iter(range(1, 10**6))

        def spec(ingress: bool, in_flight: int, warmup: float, seconds: float) -> IngressLoadSpec:
            tag = f"{name[:2]}{next(runs):03d}"
            return IngressLoadSpec(
                "127.0.0.1", engine.http_port, ingress, session, secret, tag, in_flight, warmup, seconds
            )

        sweep: list[tuple[int, Sample]] = []
        concurrency = options["concurrency"]
        if not concurrency:
            for in_flight in options["sweep"]:
                sample = _measure(
                    engine, pool, spec(True, in_flight, options["sweep_warmup"], options["sweep_seconds"])
                )
                sweep.append((in_flight, sample))
            concurrency = max(sweep, key=lambda item: item[1].load.throughput)[0]
        rounds = []
        for _ in range(options["rounds"]):
            ceiling = _measure(engine, pool, spec(False, concurrency, options["warmup"], options["seconds"]))
            ingress = _measure(engine, pool, spec(True, concurrency, options["warmup"], options["seconds"]))
            rounds.append(Round(ceiling, ingress))
        in_process, stored_in_process = pipeline_alone(engine, session, options["in_process_seconds"])
        answered = sum(s.stored for _, s in sweep) + sum(r.ingress.stored for r in rounds) + stored_in_process
        in_database = stored_messages(engine, session)
    access_lines = log_path.read_text(encoding="utf-8").count('"message": "rpc"')
    return DatabaseRun(name, sweep, concurrency, rounds, in_process, answered, in_database, access_lines)


def pipeline_alone(engine: Engine, session: str, seconds: float) -> tuple[tuple[float, float], int]:
    """Events/s and CPU us/event of ProviderIngress.receive called directly by one thread.

    No HTTP, no gRPC, no signature check: parsing and the database transaction only, which
    tells how much of the end-to-end cost is the recording itself. Returns the rate, the CPU
    per event and the number of events stored.
    """
    stored = 0
    started, cpu_before = time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        for number in range(stored, stored + 50):
            result = engine.ingress.receive("waha", message_webhook(session, "in", number))
            if result.accepted != 1 or result.unroutable:
                raise RuntimeError(f"in-process receive: {result}")
        stored += 50
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    return (stored / elapsed, cpu / stored * 1e6), stored


def waha_settings(workdir: Path, waha_url: str, *, run_dispatcher: bool) -> Settings:
    """The benchmark engine's settings, its WAHA provider at the stub `waha_url`."""
    return dataclasses.replace(
        bench_settings(workdir),
        waha_url=waha_url,
        waha_api_key=SecretStr(secrets.token_urlsafe(24)),
        waha_webhook_secret=SecretStr(secrets.token_urlsafe(32)),
        run_dispatcher=run_dispatcher,
        allow_private_webhook_urls=True,
    )


def main() -> int:
    """Both databases: sweep, rounds, stored-count check; print events/s, p50/p99, ratio; 1 on errors."""
    options: dict[str, Any] = {
        "seconds": env_number("BENCH_INGRESS_SECONDS", 2.0),
        "rounds": max(1, int(env_number("BENCH_INGRESS_ROUNDS", 3))),
        "warmup": env_number("BENCH_INGRESS_WARMUP_SECONDS", 0.5),
        "concurrency": int(env_number("BENCH_INGRESS_CONCURRENCY", 0)),
        "sweep": [int(n) for n in os.environ.get("BENCH_INGRESS_SWEEP", "1,4,16,64").split(",") if n.strip()],
        "sweep_seconds": env_number("BENCH_INGRESS_SWEEP_SECONDS", 1.0),
        "sweep_warmup": 0.3,
        "in_process_seconds": env_number("BENCH_INGRESS_IN_PROCESS_SECONDS", 1.0),
    }
    dispatcher = env_number("BENCH_INGRESS_DISPATCHER", 0) > 0
    databases = [d.strip() for d in os.environ.get("BENCH_INGRESS_DATABASES", "sqlite,postgres").split(",")]
    runs: list[DatabaseRun] = []
    notes: list[str] = []

    with (
        tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp,
        futures.ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool,
        stub_waha() as waha_url,
    ):
        workdir = Path(tmp)
        # Deliveries to the dashboard are another path: by default they are left to a worker
        # (`engine worker`), and only written to the outbox here, in the ingress transaction.
        base = waha_settings(workdir, waha_url, run_dispatcher=dispatcher)
        if "sqlite" in databases:
            runs.append(run_database("sqlite", base, pool, workdir, options))
        if "postgres" in databases:
            from tests.support.postgres import ThrowawayPostgres

            server = ThrowawayPostgres()
            if not server.available:
                notes.append("PostgreSQL: skipped, server binaries not found")
            else:
                try:
                    url = server.create_database("engine_bench")
                    settings = dataclasses.replace(base, database_url=url)
                    runs.append(run_database("postgres", settings, pool, workdir, options))
                finally:
                    server.stop()

    _print_report(runs, base, options, notes, dispatcher)
    failed = [(f"{run.name} {name}", s.load) for run in runs for name, s in run.samples() if s.load.errors]
    for name, result in failed:
        print(f"bench: {name}: {result.errors} failed calls, first: {result.first_error}", file=sys.stderr)
    lost = [run for run in runs if run.in_database != run.answered]
    for run in lost:
        print(
            f"bench: {run.name}: {run.answered} events answered as stored, {run.in_database} in the database",
            file=sys.stderr,
        )
    return 1 if failed or lost else 0


def _print_report(
    runs: list[DatabaseRun], settings: Settings, options: dict[str, Any], notes: list[str], dispatcher: bool
) -> None:
    print("Ingress throughput: signed WAHA `message` webhooks stored, vs. GET /healthz on the same gateway")
    print(
        f"  machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, grpcio {grpc.__version__}, "
        f"uvicorn {uvicorn.__version__}; {settings.grpc_workers} gRPC server threads"
    )
    print(
        "  client: spawned process, asyncio streams, HTTP/1.1 keep-alive, one connection per call in flight;"
    )
    print(
        "          it builds and signs (HMAC-SHA512) every body; distinct event and message ids, 100 senders"
    )
    print(
        "  engine: REST gateway -> gRPC -> ingress; the WAHA session is created through a stub WAHA"
        " (POST /api/sessions)\n          and paired by a signed session.status webhook;"
        " access log at INFO as JSON to a file"
    )
    delivering = (
        "in this process, to a stub dashboard" if dispatcher else "off (outbox rows written, not sent)"
    )
    print(f"  dispatcher: {delivering}")
    print(
        f"  {options['rounds']} alternating rounds of {options['warmup']:g} s warm-up + "
        f"{options['seconds']:g} s measured per target; sweep {options['sweep_seconds']:g} s per level "
        f"(in flight: {', '.join(map(str, options['sweep']))})"
    )
    for run in runs:
        print()
        print(f"  {run.name}")
        if run.sweep:
            print(
                f"    sweep (ingress only){'':<6}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
                f"{'server CPU us/ev':>18}"
            )
            for in_flight, sample in run.sweep:
                mark = "  <- chosen" if in_flight == run.concurrency else ""
                print(
                    f"    {in_flight:>4} in flight{'':<13}{sample.load.throughput:>10.1f}"
                    f"{sample.load.percentile_ms(50):>9.2f}{sample.load.percentile_ms(99):>9.2f}"
                    f"{sample.load.server_cpu_us_per_call:>18.0f}{mark}"
                )
        print(
            f"    {'round':<7}{'target':<18}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'calls':>8}"
            f"{'server CPU us/call':>20}{'client CPU us/call':>20}{'ratio':>8}"
        )
        for number, measured in enumerate(run.rounds, start=1):
            rows = (
                ("GET /healthz", measured.ceiling, ""),
                ("ingress", measured.ingress, f"{measured.ratio:.2f}"),
            )
            for name, sample, shown in rows:
                result = sample.load
                print(
                    f"    {number:<7}{name:<18}{result.throughput:>10.1f}{result.percentile_ms(50):>9.2f}"
                    f"{result.percentile_ms(99):>9.2f}{len(result.latencies):>8}"
                    f"{result.server_cpu_us_per_call:>20.0f}{sample.client_cpu_us_per_call:>20.0f}{shown:>8}"
                )
        p50 = statistics.median(r.ingress.load.percentile_ms(50) for r in run.rounds)
        p99 = statistics.median(r.ingress.load.percentile_ms(99) for r in run.rounds)
        print(
            f"    {run.concurrency} in flight: {run.events_per_second:.1f} events/s stored "
            f"(median of {len(run.rounds)} rounds), p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
            f"ingress/ceiling ratio {run.ratio:.2f}"
        )
        rate, cpu = run.in_process
        print(
            f"    for reference: the ingress pipeline alone (ProviderIngress.receive in-process, one thread, "
            f"no HTTP/gRPC):\n      {rate:.1f} events/s, {cpu:.0f} us CPU per event"
        )
        print(
            f"    verified: {run.answered} events answered stored, {run.in_database} messages in the database"
            f" ({'match' if run.answered == run.in_database else 'MISMATCH'});"
            f" {run.access_lines} access-log lines"
        )
    for note in notes:
        print(f"  {note}")
    sqlite = next((run for run in runs if run.name == "sqlite"), None)
    print()
    if sqlite is None:
        print(f"  target: >= {TARGET_EVENTS_PER_SECOND:,.0f} events/s stored on SQLite -> not measured")
        return
    verdict = "PASS" if sqlite.events_per_second >= TARGET_EVENTS_PER_SECOND else "BELOW"
    print(
        f"  target: >= {TARGET_EVENTS_PER_SECOND:,.0f} events/s stored on SQLite -> {verdict} "
        f"({sqlite.events_per_second:.1f} events/s)"
    )


if __name__ == "__main__":
    # Run through the package module, so that what the spawned client unpickles is importable.
    from bench import ingress_throughput

    sys.exit(ingress_throughput.main())
