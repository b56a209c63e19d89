"""gRPC overhead: the engine's GetDashboardConfig against a bare grpcio echo server.

Both servers run in this process side by side, with the same number of worker
threads, and are measured in alternating rounds. The load generator runs in a
separate (spawned) process so that it does not compete for this process's GIL:
grpc.aio, N unary calls in flight over one channel, raw bytes in and out, the
same code for both targets.

Environment: see bench/README.md (BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONCURRENCY,
BENCH_WARMUP_SECONDS, ENGINE_GRPC_WORKERS).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO

import grpc

from engine.app import Engine, build_engine
from engine.config import SecretStr, Settings
from engine.logs import configure_logging
from workflow_engine.v1 import registry_pb2

ECHO_SERVICE = "bench.Echo"
ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"
ENGINE_METHOD = "/workflow_engine.v1.RegistryService/GetDashboardConfig"
AGENCY_ID = "bench-agency"
TARGET_RATIO = 0.6

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LoadSpec:
    """What the load generator calls, how hard, and for how long."""

    target: str
    method: str
    payload: bytes
    metadata: Metadata
    concurrency: int
    warmup_seconds: float
    seconds: float


@dataclass
class LoadResult:
    """Latencies (seconds) of the calls that completed inside the measured window."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    #: Every call that completed, warm-up included (to divide the server's CPU time by).
    completed: int = 0
    errors: int = 0
    first_error: str = ""
    #: CPU seconds the server process spent during the run (filled in by the server side).
    server_cpu_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        """Completed calls per second."""
        return len(self.latencies) / self.seconds

    @property
    def server_cpu_us_per_call(self) -> float:
        """Server-process CPU time (all threads) per completed call, in microseconds."""
        return self.server_cpu_seconds / self.completed * 1e6 if self.completed else math.nan

    def percentile_ms(self, percent: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds (NaN when there are none)."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(percent / 100 * len(ordered)))
        return ordered[rank - 1] * 1000


# -- load generator (runs in the spawned process) ----------------------------------------


def run_load(spec: LoadSpec) -> LoadResult:
    """Drive `spec.target` for warm-up plus measured time; picklable entry of the client process."""
    return asyncio.run(_drive(spec))


async def _drive(spec: LoadSpec) -> LoadResult:
    result = LoadResult(seconds=spec.seconds)
    async with grpc.aio.insecure_channel(spec.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
        call = channel.unary_unary(spec.method)  # no (de)serializers: bytes in, bytes out
        measure_from = time.perf_counter() + spec.warmup_seconds
        stop_at = measure_from + spec.seconds

        async def caller() -> None:
            while (started := time.perf_counter()) < stop_at:
                try:
                    await call(spec.payload, metadata=spec.metadata)
                except grpc.aio.AioRpcError as error:
                    result.errors += 1
                    result.first_error = result.first_error or f"{error.code().name}: {error.details()}"
                    return
                finished = time.perf_counter()
                result.completed += 1
                if measure_from <= finished <= stop_at:
                    result.latencies.append(finished - started)

        await asyncio.gather(*(caller() for _ in range(spec.concurrency)))
    return result


# -- servers (run in this process) --------------------------------------------------------


def _echo(request: bytes, _context: Any) -> bytes:
    return request


@contextlib.contextmanager
def bare_server(workers: int) -> Iterator[str]:
    """A plain grpcio server with one echo method and no interceptors; yields its address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bare"))
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ECHO_SERVICE, {"Echo": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(1.0).wait()


def bench_settings(workdir: Path) -> Settings:
    """Engine settings: SQLite in `workdir`, random secrets, free ports, a rate limit that never trips."""
    return Settings(
        master_api_key=SecretStr(secrets.token_urlsafe(32)),
        internal_psk=SecretStr(secrets.token_urlsafe(32)),
        secret_key=SecretStr(secrets.token_urlsafe(48)),
        database_url=f"sqlite:///{workdir / 'engine.db'}",
        grpc_addr="127.0.0.1:0",
        http_addr="127.0.0.1:0",  # build_engine starts the REST gateway too: never a fixed port
        rate_limit_rps=1e9,
        rate_limit_burst=10**9,
        auto_migrate=True,
        log_level="INFO",
        grpc_workers=int(_env_number("ENGINE_GRPC_WORKERS", Settings.grpc_workers)),
    )


def engine_cpu_seconds(engine: Engine) -> float:
    """CPU time the engine has used so far: this process and its child processes (gateway, worker)."""
    return time.process_time() + sum(
        process_cpu_seconds(child.pid) for child in engine.children() if child.pid is not None
    )


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all threads), from /proc; NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def engine_server(settings: Settings) -> Iterator[tuple[str, str]]:
    """The real engine with one registered dashboard; yields its address and the dashboard's API key."""
    engine: Engine = build_engine(settings)
    registration = engine.registry.register(
        AGENCY_ID, "Benchmark dashboard", "https://dashboard.example.com/webhook", secrets.token_urlsafe(32)
    )
    engine.start()
    try:
        yield f"127.0.0.1:{engine.grpc_port}", registration.api_key
    finally:
        engine.stop(grace_seconds=1.0)


# -- the benchmark ------------------------------------------------------------------------


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw else default


def _measure(pool: futures.Executor, spec: LoadSpec) -> LoadResult:
    cpu_before = time.process_time()
    result: LoadResult = pool.submit(run_load, spec).result()
    result.server_cpu_seconds = time.process_time() - cpu_before
    return result


def main() -> int:
    """Alternate rounds of both targets; print throughput, p50/p99 and the median ratio; 1 on errors."""
    seconds = _env_number("BENCH_SECONDS", 4.0)
    concurrency = int(_env_number("BENCH_CONCURRENCY", 32))
    warmup = _env_number("BENCH_WARMUP_SECONDS", 1.0)
    rounds = max(1, int(_env_number("BENCH_ROUNDS", 5)))
    payload = registry_pb2.GetDashboardConfigRequest(agency_id=AGENCY_ID).SerializeToString()
    results: list[tuple[LoadResult, LoadResult]] = []

    with (
        tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp,
        futures.ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool,
    ):
        workdir = Path(tmp)
        settings = bench_settings(workdir)
        log_path = workdir / "engine.log"

        def spec(target: str, method: str, metadata: Metadata) -> LoadSpec:
            return LoadSpec(target, method, payload, metadata, concurrency, warmup, seconds)

        with (
            log_path.open("w", encoding="utf-8") as log_stream,
            production_logging_to(log_stream),
            bare_server(settings.grpc_workers) as bare_target,
            engine_server(settings) as (engine_target, api_key),
        ):
            metadata = (("x-api-key", api_key),)
            response_bytes = _probe(engine_target, payload, metadata)
            # Alternating rounds: a noisy neighbour slows both targets of a round alike.
            for _ in range(rounds):
                bare = _measure(pool, spec(bare_target, ECHO_METHOD, ()))
                engine = _measure(pool, spec(engine_target, ENGINE_METHOD, metadata))
                results.append((bare, engine))
        access_lines = log_path.read_text(encoding="utf-8").count('"message": "rpc"')

    print("gRPC overhead: engine GetDashboardConfig vs bare grpcio echo")
    print(
        f"  machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, grpcio {grpc.__version__}; "
        f"{settings.grpc_workers} server threads on both"
    )
    print(
        f"  client: spawned process, grpc.aio, {concurrency} calls in flight on one channel, "
        f"{warmup:g} s warm-up + {seconds:g} s measured per target, {rounds} alternating rounds"
    )
    print(
        f"  request: {len(payload)} bytes (GetDashboardConfigRequest; echoed as is); "
        f"engine response: {response_bytes} bytes"
    )
    print(
        "  engine: SQLite, x-api-key auth + agency scope + rate limit; access log at INFO as JSON "
        f"to a file ({access_lines} lines), so formatting and writing are counted"
    )
    print()
    print(
        f"  {'round':<7}{'target':<18}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'calls':>9}"
        f"{'server CPU us/call':>20}{'ratio':>8}"
    )
    ratios = []
    for number, (bare, engine) in enumerate(results, start=1):
        ratio = engine.throughput / bare.throughput if bare.throughput else 0.0
        ratios.append(ratio)
        for name, result, shown in (("bare grpcio echo", bare, ""), ("engine", engine, f"{ratio:.2f}")):
            print(
                f"  {number:<7}{name:<18}{result.throughput:>10.1f}{result.percentile_ms(50):>10.2f}"
                f"{result.percentile_ms(99):>10.2f}{len(result.latencies):>9}"
                f"{result.server_cpu_us_per_call:>20.0f}{shown:>8}"
            )
    median = statistics.median(ratios)
    print()
    print(f"  ratio engine/bare throughput (median of {rounds} rounds): {median:.2f}")
    print(f"  target: engine >= {TARGET_RATIO} x bare -> {'PASS' if median >= TARGET_RATIO else 'BELOW'}")

    named = [(name, r) for pair in results for name, r in zip(("bare", "engine"), pair, strict=True)]
    failed = [(name, r) for name, r in named if r.errors]
    for name, result in failed:
        print(f"bench: {name}: {result.errors} failed calls, first: {result.first_error}", file=sys.stderr)
    return 1 if failed else 0


@contextlib.contextmanager
def production_logging_to(stream: TextIO) -> Iterator[None]:
    """The engine's own JSON logging at INFO, written to `stream` instead of stderr while open."""
    configure_logging("INFO", stream)
    try:
        yield
    finally:
        configure_logging("INFO")  # back to stderr before `stream` is closed


def _probe(target: str, payload: bytes, metadata: Metadata) -> int:
    """One call before the load, so a misconfiguration fails clearly; returns the response size."""
    with grpc.insecure_channel(target) as channel:
        response: bytes = channel.unary_unary(ENGINE_METHOD)(payload, metadata=metadata, timeout=10)
    return len(response)
