"""REST overhead: the same authenticated call over the REST gateway and over gRPC, same engine.

One engine runs in this process with its REST gateway (uvicorn, in front of the
engine's own gRPC server). The call is GetDashboardConfig with the dashboard's API
key: over gRPC as `x-api-key` metadata, over REST as `GET /v1/internal/dashboard/config`
with an `X-API-Key` header. Both send an empty request (the key scopes the call to its
agency), so the engine does the same work behind both.

The load generator runs in a separate (spawned) process, as in grpc_overhead: grpc.aio
for gRPC (N calls in flight on one channel), and for REST a lean asyncio HTTP/1.1 client
(N keep-alive connections with one request in flight each, Content-Length framing), so
that the client is not what limits REST. Two phases per round, each alternating the two
transports: throughput with N calls in flight, then unloaded latency with one call in
flight (at N in flight p50 is mostly queueing and only restates throughput). The
reported ratios are medians of the per-round values.

Environment: see bench/README.md (BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONCURRENCY,
BENCH_WARMUP_SECONDS, BENCH_LATENCY_SECONDS, BENCH_LATENCY_CONCURRENCY, ENGINE_GRPC_WORKERS).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import json
import math
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import grpc
import uvicorn

from bench.grpc_overhead import (
    AGENCY_ID,
    ENGINE_METHOD,
    LoadResult,
    LoadSpec,
    Metadata,
    bench_settings,
    engine_cpu_seconds,
    production_logging_to,
    run_load,
)
from engine.app import Engine, build_engine
from engine.config import Settings
from workflow_engine.v1 import registry_pb2

REST_PATH = "/v1/internal/dashboard/config"
TARGET_RATIO = 0.5
TARGET_ADDED_P50_MS = 1.0
#: Longest response head the HTTP client accepts (uvicorn's heads are a few hundred bytes).
MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class HttpLoadSpec:
    """What the HTTP load generator requests, how hard, and for how long."""

    host: str
    port: int
    path: str
    headers: tuple[tuple[str, str], ...]
    concurrency: int
    warmup_seconds: float
    seconds: float

    def request_bytes(self) -> bytes:
        """The complete HTTP/1.1 GET request, sent as is on every call."""
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Sample:
    """One measured run of one transport: the load result and the CPU both sides spent on it."""

    load: LoadResult
    #: CPU seconds of the load generator process during the run (its own measure).
    client_cpu_seconds: float

    @property
    def client_cpu_us_per_call(self) -> float:
        """Client-process CPU time per completed call, in microseconds."""
        completed = self.load.completed
        return self.client_cpu_seconds / completed * 1e6 if completed else math.nan


@dataclass
class Round:
    """Both transports in both phases of one round."""

    grpc_loaded: Sample
    rest_loaded: Sample
    grpc_unloaded: Sample
    rest_unloaded: Sample

    def samples(self) -> list[tuple[str, Sample]]:
        """Every sample of the round with its name."""
        return [(field.name, getattr(self, field.name)) for field in dataclasses.fields(self)]

    @property
    def ratio(self) -> float:
        """REST throughput over gRPC throughput with N calls in flight."""
        grpc_rate = self.grpc_loaded.load.throughput
        return self.rest_loaded.load.throughput / grpc_rate if grpc_rate else 0.0

    @property
    def added_p50_ms(self) -> float:
        """REST p50 minus gRPC p50 in the latency phase (one call in flight by default), in ms."""
        return self.rest_unloaded.load.percentile_ms(50) - self.grpc_unloaded.load.percentile_ms(50)

    @property
    def added_server_cpu_us(self) -> float:
        """Server-process CPU per call of REST minus that of gRPC, N in flight, in microseconds."""
        return self.rest_loaded.load.server_cpu_us_per_call - self.grpc_loaded.load.server_cpu_us_per_call

    @property
    def added_p50_loaded_ms(self) -> float:
        """REST p50 minus gRPC p50 with N calls in flight (queueing included), in milliseconds."""
        return self.rest_loaded.load.percentile_ms(50) - self.grpc_loaded.load.percentile_ms(50)


# -- load generator (runs in the spawned process) ----------------------------------------


def run_client(spec: LoadSpec | HttpLoadSpec) -> tuple[LoadResult, float]:
    """Drive one target; picklable entry of the client process. Returns the result and its CPU time."""
    cpu_before = time.process_time()
    result = run_load(spec) if isinstance(spec, LoadSpec) else asyncio.run(_drive_http(spec))
    return result, time.process_time() - cpu_before


async def _drive_http(spec: HttpLoadSpec) -> LoadResult:
    result = LoadResult(seconds=spec.seconds)
    request = spec.request_bytes()
    connections = [await asyncio.open_connection(spec.host, spec.port) for _ in range(spec.concurrency)]
    measure_from = time.perf_counter() + spec.warmup_seconds
    stop_at = measure_from + spec.seconds

    async def caller(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (started := time.perf_counter()) < stop_at:
            writer.write(request)
            try:
                status, body, closing = await read_response(reader)
            except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as error:
                # The connection is unusable after a transport or framing error: this caller stops.
                result.errors += 1
                result.first_error = result.first_error or f"{type(error).__name__}: {error}"
                return
            finished = time.perf_counter()
            result.completed += 1
            if status != 200:
                result.errors += 1
                result.first_error = result.first_error or f"HTTP {status}: {body[:200]!r}"
            elif measure_from <= finished <= stop_at:
                result.latencies.append(finished - started)
            if closing:
                result.errors += 1
                result.first_error = result.first_error or "the server closed a keep-alive connection"
                return

    try:
        await asyncio.gather(*(caller(reader, writer) for reader, writer in connections))
    finally:
        for _, writer in connections:
            writer.close()
        for _, writer in connections:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return result


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and "connection: close" of one HTTP/1.1 response framed by Content-Length.

    Raises ValueError for anything else (no Content-Length, chunked, a malformed head), which
    this server never sends; asyncio.IncompleteReadError (an EOFError) when the peer closes.
    """
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD_BYTES or not head.startswith(b"HTTP/1.1 "):
        raise ValueError(f"not an HTTP/1.1 response head: {head[:80]!r}")
    status = int(head[9:12])
    length = -1
    closing = False
    for line in head[:-4].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            closing = value.strip().lower() == b"close"
        elif name == b"transfer-encoding":
            raise ValueError(f"unsupported transfer-encoding: {value.strip()!r}")
    if length < 0:
        raise ValueError("response without Content-Length")
    return status, await reader.readexactly(length), closing


# -- server (runs in this process) --------------------------------------------------------


@contextlib.contextmanager
def gateway_engine(settings: Settings) -> Iterator[tuple[Engine, str]]:
    """The real engine with its REST gateway and one registered dashboard; yields it and the key."""
    engine: Engine = build_engine(settings, serve_http=True, child_processes=True)
    registration = engine.registry.register(
        AGENCY_ID, "Benchmark dashboard", "https://dashboard.example.com/webhook", secrets.token_urlsafe(32)
    )
    engine.start()
    try:
        yield engine, registration.api_key
    finally:
        engine.stop(grace_seconds=1.0)


def probe(engine: Engine, payload: bytes, api_key: str) -> tuple[int, int]:
    """One call over each transport before the load: both must answer the same dashboard.

    Compares the identifying fields only (the JSON mapping itself is the gateway tests' job).
    Returns the response sizes (protobuf bytes, JSON bytes); raises RuntimeError otherwise.
    """
    with grpc.insecure_channel(f"127.0.0.1:{engine.grpc_port}") as channel:
        raw: bytes = channel.unary_unary(ENGINE_METHOD)(
            payload, metadata=(("x-api-key", api_key),), timeout=10
        )
    config = registry_pb2.GetDashboardConfigResponse.FromString(raw).config
    expected = {"agencyId": config.agency_id, "dashboardName": config.dashboard_name}
    connection = http.client.HTTPConnection("127.0.0.1", engine.http_port, timeout=10)
    try:
        connection.request("GET", REST_PATH, headers={"X-API-Key": api_key})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {REST_PATH}: HTTP {response.status}: {body[:300]!r}")
    document = json.loads(body)
    answered = document.get("config", {}) if isinstance(document, dict) else {}
    if config.agency_id != AGENCY_ID or {key: answered.get(key) for key in expected} != expected:
        raise RuntimeError(f"GET {REST_PATH} answers {body[:300]!r}, gRPC answers {expected!r}")
    return len(raw), len(body)


# -- the benchmark ------------------------------------------------------------------------


def env_number(name: str, default: float) -> float:
    """A number from the environment, `default` when unset or empty."""
    raw = os.environ.get(name, "")
    return float(raw) if raw else default


def _measure(engine: Engine, pool: futures.Executor, spec: LoadSpec | HttpLoadSpec) -> Sample:
    cpu_before = engine_cpu_seconds(engine)
    result, client_cpu = pool.submit(run_client, spec).result()
    result.server_cpu_seconds = engine_cpu_seconds(engine) - cpu_before
    return Sample(result, client_cpu)


def main() -> int:
    """Alternate gRPC and REST in rounds; print throughput, p50/p99, ratio and added p50; 1 on errors."""
    seconds = env_number("BENCH_SECONDS", 4.0)
    concurrency = int(env_number("BENCH_CONCURRENCY", 32))
    warmup = env_number("BENCH_WARMUP_SECONDS", 1.0)
    rounds = max(1, int(env_number("BENCH_ROUNDS", 5)))
    latency_seconds = env_number("BENCH_LATENCY_SECONDS", min(seconds, 2.0))
    latency_concurrency = int(env_number("BENCH_LATENCY_CONCURRENCY", 1))
    # Empty: the dashboard key scopes the call to its agency, as it does for the REST GET.
    payload = registry_pb2.GetDashboardConfigRequest().SerializeToString()
    results: list[Round] = []

    with (
        tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp,
        futures.ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool,
    ):
        workdir = Path(tmp)
        settings = bench_settings(workdir)
        log_path = workdir / "engine.log"
        with (
            log_path.open("w", encoding="utf-8") as log_stream,
            production_logging_to(log_stream),
            gateway_engine(settings) as (engine, api_key),
        ):
            grpc_target = f"127.0.0.1:{engine.grpc_port}"
            metadata: Metadata = (("x-api-key", api_key),)
            proto_bytes, json_bytes = probe(engine, payload, api_key)

            def grpc_spec(in_flight: int, measured: float) -> LoadSpec:
                return LoadSpec(grpc_target, ENGINE_METHOD, payload, metadata, in_flight, warmup, measured)

            def rest_spec(in_flight: int, measured: float) -> HttpLoadSpec:
                headers = (("X-API-Key", api_key),)
                return HttpLoadSpec(
                    "127.0.0.1", engine.http_port, REST_PATH, headers, in_flight, warmup, measured
                )

            # Alternating rounds: a noisy neighbour slows both transports of a round alike.
            for _ in range(rounds):
                grpc_loaded = _measure(engine, pool, grpc_spec(concurrency, seconds))
                rest_loaded = _measure(engine, pool, rest_spec(concurrency, seconds))
                grpc_unloaded = _measure(engine, pool, grpc_spec(latency_concurrency, latency_seconds))
                rest_unloaded = _measure(engine, pool, rest_spec(latency_concurrency, latency_seconds))
                results.append(Round(grpc_loaded, rest_loaded, grpc_unloaded, rest_unloaded))
        access_lines = log_path.read_text(encoding="utf-8").count('"message": "rpc"')

    print("REST overhead: GetDashboardConfig over the REST gateway vs. over gRPC, one engine")
    print(
        f"  machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, grpcio {grpc.__version__}, "
        f"uvicorn {uvicorn.__version__} (httptools); {settings.grpc_workers} gRPC server threads"
    )
    print("  client: spawned process; gRPC: grpc.aio, all calls in flight on one channel;")
    print("          REST: asyncio streams, HTTP/1.1 keep-alive, one connection per call in flight")
    print(f"  call: dashboard API key, empty request; gRPC {ENGINE_METHOD} (x-api-key)")
    print(f"        vs. REST GET {REST_PATH} (X-API-Key), through the gateway to the same gRPC server")
    print(
        f"  response: {proto_bytes} bytes protobuf / {json_bytes} bytes JSON; "
        f"access log at INFO as JSON to a file ({access_lines} lines)"
    )
    print(
        f"  {rounds} rounds of: {concurrency} in flight ({warmup:g} s warm-up + {seconds:g} s measured "
        f"per transport), then {latency_concurrency} in flight ({warmup:g} s + {latency_seconds:g} s)"
    )
    _print_phase(
        f"throughput, {concurrency} in flight",
        "REST/gRPC",
        [(r.grpc_loaded, r.rest_loaded, f"{r.ratio:.2f}") for r in results],
    )
    _print_phase(
        f"latency, {latency_concurrency} in flight",
        "+p50 ms",
        [(r.grpc_unloaded, r.rest_unloaded, f"{r.added_p50_ms:.2f}") for r in results],
    )

    ratio = statistics.median(r.ratio for r in results)
    added = statistics.median(r.added_p50_ms for r in results)
    added_loaded = statistics.median(r.added_p50_loaded_ms for r in results)
    gateway_cpu = statistics.median(r.added_server_cpu_us for r in results)
    print()
    print(f"  ratio REST/gRPC throughput, {concurrency} in flight (median of {rounds} rounds): {ratio:.2f}")
    print(f"  target: REST >= {TARGET_RATIO} x gRPC -> {'PASS' if ratio >= TARGET_RATIO else 'BELOW'}")
    print(
        f"  added p50 latency REST - gRPC, {latency_concurrency} in flight "
        f"(median of {rounds} rounds): {added:.2f} ms"
    )
    print(
        f"  target: added p50 <= {TARGET_ADDED_P50_MS:g} ms -> "
        f"{'PASS' if added <= TARGET_ADDED_P50_MS else 'BELOW'}"
    )
    print(
        f"  for reference (medians): added p50 at {concurrency} in flight, queueing included, "
        f"{added_loaded:.2f} ms; server CPU added per call by the gateway {gateway_cpu:.0f} us"
    )

    failed = [
        (f"round {number} {name}", sample.load)
        for number, measured in enumerate(results, start=1)
        for name, sample in measured.samples()
        if sample.load.errors
    ]
    for name, result in failed:
        print(f"bench: {name}: {result.errors} failed calls, first: {result.first_error}", file=sys.stderr)
    return 1 if failed else 0


def _print_phase(title: str, last_column: str, rows: list[tuple[Sample, Sample, str]]) -> None:
    """One table: a gRPC and a REST line per round, the REST line with the round's comparison."""
    print()
    print(f"  {title}")
    print(
        f"  {'round':<7}{'transport':<11}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'calls':>9}"
        f"{'server CPU us/call':>20}{'client CPU us/call':>20}{last_column:>11}"
    )
    for number, (grpc_sample, rest_sample, comparison) in enumerate(rows, start=1):
        for name, sample, shown in (("gRPC", grpc_sample, ""), ("REST", rest_sample, comparison)):
            result = sample.load
            print(
                f"  {number:<7}{name:<11}{result.throughput:>10.1f}{result.percentile_ms(50):>9.2f}"
                f"{result.percentile_ms(99):>9.2f}{len(result.latencies):>9}"
                f"{result.server_cpu_us_per_call:>20.0f}{sample.client_cpu_us_per_call:>20.0f}{shown:>11}"
            )
