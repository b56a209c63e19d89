"""Delivery throughput: provider webhook in at the ingress → signed webhook out at a dashboard.

Three processes besides this one, so none shares another's GIL:
- **the engine**: `engine serve` as a subprocess (gRPC, REST gateway and the webhook dispatcher, as
  deployed), its `waha` provider pointing at the ingress benchmark's stub WAHA (in this process, used
  only to create sessions). Each WAHA session is created through the sessions API and paired by a
  signed `session.status` webhook through the ingress;
- **the receiver**: the dashboards' webhook endpoint, a small asyncio HTTP/1.1 server (keep-alive)
  started with subprocess from this module (`--receiver`). It answers 204, checks every delivery's
  `v1` signature (Standard Webhooks, HMAC-SHA256 under the dashboard's secret), and records per run
  when each webhook arrived and how long after its ingress POST was sent: the load generator writes
  the send time (`time.time()`) into the message text, which the engine carries into the webhook;
- **the load generator**: a spawned process (asyncio streams, HTTP/1.1 keep-alive, one connection per
  request in flight) posting signed WAHA `message` webhooks with distinct ids, built and signed per
  request as WAHA does, to `POST /v1/webhooks/waha`.

The **ceiling** is the same load generator posting the same requests straight to the receiver: what
the receiver and the load generator manage without the engine. Ceiling and engine alternate in
rounds; the ratio is the median of the per-round ratios.

Measured, per database (SQLite, then PostgreSQL):
1. **sustained delivery**: N requests in flight (closed loop) for a warm-up plus a measured window;
   delivered events/s is the number of webhooks the receiver got inside the window divided by its
   length, next to the events/s the ingress answered. When the dispatcher falls behind the ingress the
   difference piles up: after each run the engine is given time to deliver everything it accepted (this
   is checked), and the rate at which it works the backlog off alone is printed too;
2. **latency at a fixed offered load**: an open-loop schedule of BENCH_DELIVERY_RATE events/s (300);
   p50/p99 from the send of the ingress POST to the webhook's arrival; then the same at
   BENCH_DELIVERY_LOW_RATE (20/s), where nothing queues, for reference.
Then, on SQLite, **isolation**: two dashboards with a session each, the load split evenly between
them; dashboard B's receiver answers after 10 s in one run and at once in the other (fresh engine and
database per run, alternating). The drop of dashboard A's delivered events/s is the figure, measured
after a warm-up long enough for B's backlog to build up (the steady state of a slow dashboard).

Environment: see bench/README.md (BENCH_DELIVERY_*).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import math
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.grpc_overhead import process_cpu_seconds
from bench.ingress_throughput import INGRESS_PATH, post_request, sign, stub_waha, waha_webhook
from bench.rest_overhead import env_number

ACCOUNT = "15550001111"
SENDERS = 100
#: The dashboards' webhook secret (a plain secret: its UTF-8 bytes are the HMAC key).
DASHBOARD_SECRET = "bench-dashboard-webhook-secret-0123456789abcdef"  # noqa: S105 (throwaway)
WAHA_SECRET = "bench-waha-webhook-secret-0123456789abcdefgh"  # noqa: S105 (throwaway)
PSK = "bench-psk-" + "0" * 32
MASTER_KEY = "bench-master-key-" + "0" * 32
SECRET_KEY = "bench-secret-key-" + "0" * 40
#: Receiver paths: dashboards that answer at once, the one that answers late, the ceiling's target.
FAST_PATH = "/hooks"
SLOW_PATH = "/slow"
CEILING_PATH = "/ceiling"
#: The marker the load generator writes into the message text; the receiver finds it in the webhook.
MARK = re.compile(rb"\[bench run=([A-Za-z0-9_-]+) t=([0-9.]+)\]")

TARGET_EVENTS_PER_SECOND = 1000.0
TARGET_P99_MS = 100.0
TARGET_RATIO = 0.5
TARGET_ISOLATION_DROP = 0.10


# -- the receiver (runs in its own process: `python -m bench.delivery_throughput --receiver`) -----


@dataclass
class _Run:
    arrivals: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    bad_signatures: int = 0


class Receiver:
    """The dashboards' endpoint: 204 to every POST, after `slow_seconds` on SLOW_PATH; records per run.

    `GET /_stats/<run>` answers what arrived for that run; `GET /_count/<run>` only how many events.
    """

    def __init__(self, secret: str, slow_seconds: float) -> None:
        self._key = secret.encode("utf-8")
        self._slow = slow_seconds
        self._runs: dict[str, _Run] = {}

    async def serve(self) -> None:
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head[:-4].split(b"\r\n")
                method, path, _ = lines[0].split(b" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                arrived = time.time()
                if method == b"GET" and path.startswith((b"/_stats/", b"/_count/")):
                    run = self._runs.get(path[8:].decode(), _Run())
                    shown = self._stats(run) if path.startswith(b"/_stats/") else {"distinct": len(run.ids)}
                    answer = json.dumps(shown).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(answer), answer)
                    )
                    await writer.drain()
                    continue
                self._record(path, headers, body, arrived)
                if path == SLOW_PATH.encode() and self._slow > 0:
                    await asyncio.sleep(self._slow)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
                if headers.get(b"connection", b"").lower() == b"close":
                    return
        except ConnectionError:
            return
        finally:
            writer.close()

    def _record(self, path: bytes, headers: dict[bytes, bytes], body: bytes, arrived: float) -> None:
        found = MARK.search(body)
        if found is None:
            return
        run = self._runs.setdefault(found.group(1).decode(), _Run())
        run.arrivals.append(arrived)
        run.latencies.append(arrived - float(found.group(2)))
        if path == CEILING_PATH.encode():
            return
        webhook_id = headers.get(b"webhook-id", b"")
        run.ids.add(webhook_id.decode())
        signed = b"%s.%s.%s" % (webhook_id, headers.get(b"webhook-timestamp", b""), body)
        expected = b"v1," + base64.b64encode(hmac.new(self._key, signed, hashlib.sha256).digest())
        given = headers.get(b"webhook-signature", b"").split()
        if not any(hmac.compare_digest(expected, entry) for entry in given):
            run.bad_signatures += 1

    @staticmethod
    def _stats(run: _Run) -> dict[str, Any]:
        return {
            "arrivals": run.arrivals,
            "latencies": run.latencies,
            "distinct": len(run.ids),
            "bad_signatures": run.bad_signatures,
        }


def receiver_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.delivery_throughput --receiver")
    parser.add_argument("--receiver", action="store_true", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--slow-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    asyncio.run(Receiver(args.secret, args.slow_seconds).serve())
    return 0


@dataclass
class ReceiverProcess:
    process: subprocess.Popen[str]
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stats(self, run: str, what: str = "stats") -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", f"/_{what}/{run}")
            return dict(json.loads(connection.getresponse().read()))
        finally:
            connection.close()

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)


@contextlib.contextmanager
def receiver_process(slow_seconds: float) -> Iterator[ReceiverProcess]:
    command = [sys.executable, "-m", "bench.delivery_throughput", "--receiver", "--secret", DASHBOARD_SECRET]
    process = subprocess.Popen(
        [*command, "--slow-seconds", str(slow_seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield ReceiverProcess(process, int(process.stdout.readline()))
    finally:
        # Nothing to flush; some of its requests may still be sleeping through SLOW_PATH.
        process.kill()
        process.wait()


# -- the load generator (runs in the spawned process) ---------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    """Where the load generator posts, what, how hard and for how long."""

    port: int
    path: str
    #: The WAHA sessions the messages are for, in turn; run names are `<tag>-<index of the session>`.
    sessions: tuple[str, ...]
    tag: str
    concurrency: int
    warmup_seconds: float
    seconds: float
    #: 0: closed loop (`concurrency` requests always in flight); else events/s on a fixed schedule.
    rate: float = 0.0


@dataclass
class LoadResult:
    """What the load generator saw; times are time.time() so the receiver's arrivals compare."""

    measure_from: float = 0.0
    stop_at: float = 0.0
    #: Requests answered as expected per session (warm-up included): events the engine took on.
    accepted: list[int] = field(default_factory=list)
    #: Answered as expected inside the measured window.
    accepted_in_window: int = 0
    errors: int = 0
    first_error: str = ""
    #: Open loop: sends that left later than 10 ms after their slot (no free connection).
    late: int = 0
    client_cpu_seconds: float = 0.0


def run_load(spec: LoadSpec) -> LoadResult:
    """Picklable entry of the load generator's process."""
    cpu = time.process_time()
    result = asyncio.run(_drive(spec))
    result.client_cpu_seconds = time.process_time() - cpu
    return result


def message_body(session: str, run: str, number: int) -> bytes:
    """A WAHA `message` webhook whose text carries the run and the send time."""
    sender = f"1555{number % SENDERS:07d}@c.us"
    payload = {
        "id": f"false_{sender}_{run}{number:09d}",
        "timestamp": int(time.time()),
        "from": sender,
        "fromMe": False,
        "source": "app",
        "to": f"{ACCOUNT}@c.us",
        "body": f"[bench run={run} t={time.time():.6f}] hello, is the shop open today?",
        "hasMedia": False,
        "media": None,
        "ack": 1,
        "ackName": "SERVER",
        "vCards": [],
        "_data": {"notifyName": "Bench Contact", "type": "chat"},
    }
    return waha_webhook(session, "message", payload, f"evt_{run}{number:09d}")


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise ValueError(f"not an HTTP/1.1 response head: {head[:80]!r}")
    status = int(head[9:12])
    length = 0
    for line in head[:-4].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
            raise ValueError("the server closed a keep-alive connection")
    return status, await reader.readexactly(length) if length else b""


async def _drive(spec: LoadSpec) -> LoadResult:
    result = LoadResult(accepted=[0] * len(spec.sessions))
    ingress = spec.path == INGRESS_PATH
    connections = [await asyncio.open_connection("127.0.0.1", spec.port) for _ in range(spec.concurrency)]
    started = time.time()
    result.measure_from = started + spec.warmup_seconds
    result.stop_at = result.measure_from + spec.seconds
    numbers = iter(range(10**9))

    async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        number = next(numbers)
        index = number % len(spec.sessions)
        body = message_body(spec.sessions[index], f"{spec.tag}-{index}", number)
        writer.write(post_request("127.0.0.1", spec.port, spec.path, body, WAHA_SECRET))
        try:
            status, answer = await _read_answer(reader)
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError) as error:
            result.errors += 1
            result.first_error = result.first_error or f"{type(error).__name__}: {error}"
            return False
        good = status == 204 if not ingress else status == 200 and json.loads(answer).get("accepted") == 1
        if not good:
            result.errors += 1
            result.first_error = result.first_error or f"HTTP {status}: {answer[:200]!r}"
            return True
        result.accepted[index] += 1
        if result.measure_from <= time.time() <= result.stop_at:
            result.accepted_in_window += 1
        return True

    async def closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while time.time() < result.stop_at:
            if not await post(reader, writer):
                return

    async def opened() -> None:
        free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for connection in connections:
            free.put_nowait(connection)
        tasks: set[asyncio.Task[None]] = set()

        async def one(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
            if await post(*connection):
                free.put_nowait(connection)

        slot = 0
        while (at := started + slot / spec.rate) < result.stop_at:
            await asyncio.sleep(max(0.0, at - time.time()))
            connection = await free.get()
            if time.time() - at > 0.01:
                result.late += 1
            task = asyncio.create_task(one(connection))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            slot += 1
        await asyncio.gather(*tasks)

    try:
        if spec.rate > 0:
            await opened()
        else:
            await asyncio.gather(*(closed(r, w) for r, w in connections))
    finally:
        for _, writer in connections:
            writer.close()
        for _, writer in connections:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return result


# -- the engine as a process ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a running process and of its children (engine serve's gateway and worker)."""
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(child) for child in (task / "children").read_text().split()]
    return process_cpu_seconds(pid) + sum(process_cpu_seconds(child) for child in children)


@dataclass
class EngineProcess:
    process: subprocess.Popen[bytes]
    http_port: int
    sessions: tuple[str, ...]

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)


@contextlib.contextmanager
def engine_process(
    database_url: str, waha_url: str, dashboard_paths: list[str], receiver: ReceiverProcess, log_path: Path
) -> Iterator[EngineProcess]:
    """`engine serve` with one dashboard per path (its webhook URL on the receiver) and one paired WAHA
    session each; killed at the end (a dashboard may still have a backlog)."""
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "WORKFLOW_ENGINE_"))}
    env.update(
        ENGINE_API_KEY=MASTER_KEY,
        WORKFLOW_ENGINE_INTERNAL_PSK=PSK,
        ENGINE_SECRET_KEY=SECRET_KEY,
        ENGINE_DATABASE_URL=database_url,
        ENGINE_GRPC_ADDR=f"127.0.0.1:{free_port()}",
        ENGINE_HTTP_ADDR=f"127.0.0.1:{http_port}",
        ENGINE_WAHA_URL=waha_url,
        ENGINE_WAHA_WEBHOOK_SECRET=WAHA_SECRET,
        ENGINE_RATE_LIMIT_RPS="1000000000",
        ENGINE_RATE_LIMIT_BURST="1000000000",
        ENGINE_LOG_LEVEL="INFO",
        # Renamed from ENGINE_WEBHOOK_ALLOW_PRIVATE_NETWORKS; both, so either engine version works.
        ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS="true",
        ENGINE_WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
    )
    for name in (
        "ENGINE_CHILD_PROCESSES",
        "ENGINE_GRPC_WORKERS",
        "ENGINE_WEBHOOK_CONCURRENCY",
        "ENGINE_WEBHOOK_CONCURRENCY_PER_DASHBOARD",
    ):
        if os.environ.get(name):
            env[name] = os.environ[name]
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "engine", "serve"], env=env, stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{http_port}"
        _wait_ready(base, process, log_path)
        sessions = tuple(
            _dashboard_with_session(base, f"bench-agency-{n}", receiver.url(path))
            for n, path in enumerate(dashboard_paths)
        )
        yield EngineProcess(process, http_port, sessions)
    finally:
        process.kill()
        process.wait()


def _call(base: str, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Any]:
    host, _, port = base.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return response.status, json.loads(raw) if raw else None


def _wait_ready(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"engine serve exited with {process.returncode}:\n{_tail(log_path)}")
        with contextlib.suppress(OSError):
            if _call(base, "GET", "/readyz", None, {})[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"engine serve did not become ready:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _dashboard_with_session(base: str, agency: str, url: str) -> str:
    """Register a dashboard, create its WAHA session, pair it through the ingress; the session id."""
    registration = {
        "agencyId": agency,
        "dashboardName": agency,
        "dashboardUrl": url,
        "webhookSecret": DASHBOARD_SECRET,
    }
    status, answer = _call(
        base,
        "POST",
        "/v1/internal/dashboard/register",
        json.dumps(registration).encode(),
        {"Authorization": f"PSK {PSK}"},
    )
    if status != 200:
        raise RuntimeError(f"register {agency}: HTTP {status}: {answer}")
    key = {"X-API-Key": answer["apiKey"]}
    created = {"tenantId": "bench-tenant", "name": "bench", "provider": "waha"}
    status, answer = _call(base, "POST", "/api/v1/sessions", json.dumps(created).encode(), key)
    if status != 200:
        raise RuntimeError(f"create session: HTTP {status}: {answer}")
    session = str(answer["session"]["sessionId"])
    body = waha_webhook(
        session, "session.status", {"name": session, "status": "WORKING"}, f"evt_pair_{session}"
    )
    headers = {"X-Webhook-Hmac": sign(WAHA_SECRET, body), "X-Webhook-Hmac-Algorithm": "sha512"}
    status, answer = _call(base, "POST", INGRESS_PATH, body, headers)
    if status != 200 or answer != {"accepted": 1, "unroutable": 0}:
        raise RuntimeError(f"pairing webhook: HTTP {status}: {answer}")
    status, answer = _call(base, "GET", f"/api/v1/sessions/{session}", None, key)
    if status != 200 or answer["session"]["status"] != "SESSION_STATUS_WORKING":
        raise RuntimeError(f"the session is not WORKING after pairing: {answer}")
    return session


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One load run and what the receiver got for it."""

    load: LoadResult
    #: Per session (dashboard): the receiver's stats of its run.
    received: list[dict[str, Any]]
    #: CPU seconds of the engine (or, for the ceiling, the receiver) during the run and its backlog.
    server_cpu_seconds: float
    #: Seconds after the load stopped until everything accepted was delivered (NaN: not waited for).
    drain_seconds: float = math.nan

    def delivered_per_second(self, index: int | None = None) -> float:
        """Webhooks that arrived inside the measured window, per second (one session's, or all)."""
        runs = self.received if index is None else [self.received[index]]
        window = self.load.stop_at - self.load.measure_from
        arrived = sum(
            1 for run in runs for t in run["arrivals"] if self.load.measure_from <= t <= self.load.stop_at
        )
        return arrived / window if window > 0 else 0.0

    def drain_per_second(self) -> float:
        """Webhooks that arrived after the load stopped, per second until the last one: the dispatcher
        working off the backlog with the ingress idle (NaN without a backlog worth measuring)."""
        after = sorted(t for run in self.received for t in run["arrivals"] if t > self.load.stop_at)
        if len(after) < 20:
            return math.nan
        return len(after) / (after[-1] - self.load.stop_at)

    def end_to_end_per_second(self) -> float:
        """Every webhook delivered, over the time from the first send to the last arrival."""
        arrivals = [t for run in self.received for t in run["arrivals"]]
        sent = [
            t - latency
            for run in self.received
            for t, latency in zip(run["arrivals"], run["latencies"], strict=True)
        ]
        if len(arrivals) < 2:
            return math.nan
        return len(arrivals) / (max(arrivals) - min(sent))

    @property
    def accepted_per_second(self) -> float:
        return self.load.accepted_in_window / (self.load.stop_at - self.load.measure_from)

    def latencies(self) -> list[float]:
        """End-to-end latencies of the webhooks whose POST left inside the measured window."""
        return sorted(
            latency
            for run in self.received
            for arrived, latency in zip(run["arrivals"], run["latencies"], strict=True)
            if self.load.measure_from <= arrived - latency <= self.load.stop_at
        )

    def percentile_ms(self, percent: float) -> float:
        ordered = self.latencies()
        if not ordered:
            return math.nan
        return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1] * 1000

    @property
    def delivered(self) -> int:
        return sum(run["distinct"] for run in self.received)

    @property
    def accepted(self) -> int:
        return sum(self.load.accepted)

    @property
    def bad_signatures(self) -> int:
        return sum(run["bad_signatures"] for run in self.received)

    def server_cpu_us_per_event(self) -> float:
        return self.server_cpu_seconds / self.accepted * 1e6 if self.accepted else math.nan


class Bench:
    """Runs the load generator and collects the receiver's side of each run."""

    def __init__(self, pool: futures.Executor, receiver: ReceiverProcess, options: dict[str, Any]) -> None:
        self.pool = pool
        self.receiver = receiver
        self.options = options
        self._runs = iter(range(1, 10**6))

    def tag(self) -> str:
        return f"r{next(self._runs):04d}{secrets.token_hex(2)}"

    def ceiling(self, concurrency: int) -> Sample:
        spec = LoadSpec(
            self.receiver.port, CEILING_PATH, ("ses_ceiling",), self.tag(), concurrency,
            self.options["warmup"], self.options["seconds"],
        )  # fmt: skip
        cpu = self.receiver.cpu_seconds()
        load = self.pool.submit(run_load, spec).result()
        return Sample(load, [self.receiver.stats(f"{spec.tag}-0")], self.receiver.cpu_seconds() - cpu)

    def engine(
        self,
        engine: EngineProcess,
        concurrency: int,
        seconds: float,
        rate: float = 0.0,
        drain: bool = True,
        warmup: float | None = None,
    ) -> Sample:
        spec = LoadSpec(
            engine.http_port, INGRESS_PATH, engine.sessions, self.tag(), concurrency,
            self.options["warmup"] if warmup is None else warmup, seconds, rate,
        )  # fmt: skip
        cpu = engine.cpu_seconds()
        load = self.pool.submit(run_load, spec).result()
        names = [f"{spec.tag}-{index}" for index in range(len(engine.sessions))]
        drained = math.nan
        if drain:
            # Everything accepted must arrive (checked by the caller): wait for the backlog.
            deadline = time.time() + self.options["drain_seconds"]
            while time.time() < deadline:
                counts = [self.receiver.stats(name, "count")["distinct"] for name in names]
                if all(got >= accepted for got, accepted in zip(counts, load.accepted, strict=True)):
                    drained = max(0.0, time.time() - load.stop_at)
                    break
                time.sleep(0.2)
        received = [self.receiver.stats(name) for name in names]
        return Sample(load, received, engine.cpu_seconds() - cpu, drained)


@dataclass
class Round:
    ceiling: Sample
    engine: Sample

    @property
    def ratio(self) -> float:
        rate = self.ceiling.delivered_per_second()
        return self.engine.delivered_per_second() / rate if rate else 0.0


@dataclass
class DatabaseRun:
    name: str
    rounds: list[Round]
    #: At BENCH_DELIVERY_RATE events/s offered, and at BENCH_DELIVERY_LOW_RATE (no queueing).
    fixed: Sample
    low: Sample

    @property
    def delivered_per_second(self) -> float:
        return statistics.median(r.engine.delivered_per_second() for r in self.rounds)

    @property
    def ratio(self) -> float:
        return statistics.median(r.ratio for r in self.rounds)

    def samples(self) -> list[tuple[str, Sample]]:
        named = [
            (f"round {n} {kind}", s)
            for n, r in enumerate(self.rounds, 1)
            for kind, s in (("ceiling", r.ceiling), ("engine", r.engine))
        ]
        return [*named, ("fixed load", self.fixed), ("low load", self.low)]


@dataclass
class IsolationRound:
    both_fast: Sample
    one_slow: Sample

    @property
    def drop(self) -> float:
        """How much dashboard A's delivered events/s fell with B slow, as a fraction of the fast run."""
        fast = self.both_fast.delivered_per_second(0)
        return 1 - self.one_slow.delivered_per_second(0) / fast if fast else math.nan


def run_database(name: str, url: str, bench: Bench, waha_url: str, workdir: Path) -> DatabaseRun:
    options = bench.options
    with engine_process(url, waha_url, [FAST_PATH], bench.receiver, workdir / f"engine-{name}.log") as engine:
        # A short unmeasured run first: imports, caches and connection pools warm up.
        bench.engine(engine, options["concurrency"], 0.5)
        rounds = []
        for number in range(options["rounds"]):
            ceiling = bench.ceiling(options["concurrency"])
            with profiled(engine, options, f"{name}.txt", active=number == 0):
                measured = bench.engine(engine, options["concurrency"], options["seconds"])
            rounds.append(Round(ceiling, measured))
        connections, seconds = options["rate_connections"], options["rate_seconds"]
        fixed = bench.engine(engine, connections, seconds, rate=options["rate"])
        low = bench.engine(engine, connections, seconds, rate=options["low_rate"])
    return DatabaseRun(name, rounds, fixed, low)


@contextlib.contextmanager
def profiled(engine: EngineProcess, options: dict[str, Any], suffix: str, active: bool) -> Iterator[None]:
    """With BENCH_DELIVERY_PYSPY=<prefix>: `py-spy record` the engine (raw collapsed stacks) meanwhile."""
    if not active or not options["pyspy"]:
        yield
        return
    output = f"{options['pyspy']}{suffix}"
    pyspy = Path(sys.executable).with_name("py-spy")
    command = [str(pyspy), "record", "--pid", str(engine.process.pid), "--format", "raw", "--output", output]
    recorder = subprocess.Popen(
        [*command, "--rate", "200", "--nonblocking", *options["pyspy_args"]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # attached before the load starts
        yield
    finally:
        recorder.send_signal(2)  # SIGINT: py-spy writes its output and exits
        recorder.wait(30)
        print(f"  py-spy: {output}", file=sys.stderr)


def run_isolation(bench: Bench, waha_url: str, workdir: Path) -> list[IsolationRound]:
    options = bench.options
    rounds = []
    for number in range(1, options["isolation_rounds"] + 1):
        samples = []
        for slow in (False, True):
            url = f"sqlite:///{workdir / f'isolation-{number}-{int(slow)}.db'}"
            paths = [FAST_PATH, SLOW_PATH if slow else FAST_PATH]
            with engine_process(
                url, waha_url, paths, bench.receiver, workdir / "engine-isolation.log"
            ) as engine:
                samples.append(
                    bench.engine(
                        engine,
                        options["concurrency"],
                        options["isolation_seconds"],
                        drain=False,
                        warmup=options["isolation_warmup"],
                    )
                )
        rounds.append(IsolationRound(*samples))
    return rounds


def main() -> int:
    """Both databases, then isolation; print events/s, p50/p99, ratios and the targets; 1 on errors."""
    options: dict[str, Any] = {
        "seconds": env_number("BENCH_DELIVERY_SECONDS", 2.0),
        "rounds": max(1, int(env_number("BENCH_DELIVERY_ROUNDS", 3))),
        "warmup": env_number("BENCH_DELIVERY_WARMUP_SECONDS", 0.5),
        "concurrency": int(env_number("BENCH_DELIVERY_CONCURRENCY", 32)),
        "rate": env_number("BENCH_DELIVERY_RATE", 300.0),
        "rate_seconds": env_number("BENCH_DELIVERY_RATE_SECONDS", 2.0),
        "low_rate": env_number("BENCH_DELIVERY_LOW_RATE", 20.0),
        "rate_connections": int(env_number("BENCH_DELIVERY_RATE_CONNECTIONS", 64)),
        "drain_seconds": env_number("BENCH_DELIVERY_DRAIN_SECONDS", 30.0),
        "isolation_rounds": max(0, int(env_number("BENCH_DELIVERY_ISOLATION_ROUNDS", 2))),
        "isolation_seconds": env_number("BENCH_DELIVERY_ISOLATION_SECONDS", 2.5),
        "isolation_warmup": env_number("BENCH_DELIVERY_ISOLATION_WARMUP_SECONDS", 1.5),
        "slow_seconds": env_number("BENCH_DELIVERY_SLOW_SECONDS", 10.0),
        "pyspy": os.environ.get("BENCH_DELIVERY_PYSPY", ""),
        "pyspy_args": os.environ.get("BENCH_DELIVERY_PYSPY_ARGS", "").split(),
    }
    databases = [d.strip() for d in os.environ.get("BENCH_DELIVERY_DATABASES", "sqlite,postgres").split(",")]
    runs: list[DatabaseRun] = []
    isolation: list[IsolationRound] = []
    notes: list[str] = []
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp,
        futures.ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool,
        stub_waha() as waha_url,
        receiver_process(options["slow_seconds"]) as receiver,
    ):
        workdir = Path(tmp)
        bench = Bench(pool, receiver, options)
        if "sqlite" in databases:
            sqlite_url = f"sqlite:///{workdir / 'engine.db'}"
            runs.append(run_database("sqlite", sqlite_url, bench, waha_url, workdir))
        if "postgres" in databases:
            from tests.support.postgres import ThrowawayPostgres

            server = ThrowawayPostgres()
            if not server.available:
                notes.append("PostgreSQL: skipped, server binaries not found")
            else:
                try:
                    url = server.create_database("engine_bench_delivery")
                    runs.append(run_database("postgres", url, bench, waha_url, workdir))
                finally:
                    server.stop()
        if options["isolation_rounds"]:
            isolation = run_isolation(bench, waha_url, workdir)
    _print_report(runs, isolation, options, notes, time.monotonic() - started)
    return _check(runs, isolation, options)


def _check(runs: list[DatabaseRun], isolation: list[IsolationRound], options: dict[str, Any]) -> int:
    """Report failed calls, bad signatures and undelivered events on stderr; 1 if there were any."""
    problems = []
    named = [(f"{run.name} {name}", sample) for run in runs for name, sample in run.samples()]
    for number, measured in enumerate(isolation, 1):
        named += [
            (f"isolation {number} B fast", measured.both_fast),
            (f"isolation {number} B slow", measured.one_slow),
        ]
    for name, sample in named:
        if sample.load.errors:
            problems.append(f"{name}: {sample.load.errors} failed calls, first: {sample.load.first_error}")
        if sample.bad_signatures:
            problems.append(f"{name}: {sample.bad_signatures} webhooks with a bad signature")
        # Every event the engine accepted must arrive (isolation runs end with a backlog on purpose).
        if "ceiling" not in name and "isolation" not in name and sample.delivered != sample.accepted:
            problems.append(
                f"{name}: {sample.accepted} events accepted, {sample.delivered} delivered"
                f" ({options['drain_seconds']:g} s allowed for the backlog)"
            )
    for problem in problems:
        print(f"bench: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _print_report(
    runs: list[DatabaseRun],
    isolation: list[IsolationRound],
    options: dict[str, Any],
    notes: list[str],
    elapsed: float,
) -> None:
    concurrency = os.environ.get("ENGINE_WEBHOOK_CONCURRENCY", "32")
    per_dashboard = os.environ.get("ENGINE_WEBHOOK_CONCURRENCY_PER_DASHBOARD", "16")
    print("Delivery throughput: WAHA webhooks in at the ingress -> signed webhooks out at a dashboard")
    print(f"  machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        "  engine: `engine serve` subprocess (REST gateway, gRPC, dispatcher with"
        f" {concurrency} in flight, {per_dashboard} per dashboard), access log at INFO to a file"
    )
    print("  receiver: asyncio HTTP/1.1 subprocess answering 204, checks every v1 signature")
    print("  load: spawned asyncio client, signed WAHA `message` webhooks, the send time in the text")
    print(
        f"  {options['rounds']} alternating rounds of the ceiling (the client posting straight to the"
        f" receiver) and the engine,\n  {options['concurrency']} in flight, {options['warmup']:g} s warm-up"
        f" + {options['seconds']:g} s measured; then {options['rate']:g} events/s offered for"
        f" {options['warmup']:g} + {options['rate_seconds']:g} s"
    )
    print(
        "  in: answered events/s; out: webhooks/s arriving in the measured window; drain: webhooks/s after"
        " the load\n  stopped (dispatcher alone); e2e: all webhooks / (first send -> last arrival);"
        " latency: arrival - send"
    )
    header = (
        f"    {'round':<6}{'target':<9}{'in/s':>8}{'out/s':>8}{'drain/s':>9}{'e2e/s':>8}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'events':>8}{'backlog s':>10}{'CPU us/ev':>10}{'ratio':>7}"
    )
    for run in runs:
        print()
        print(f"  {run.name}")
        print(header)
        for number, measured in enumerate(run.rounds, 1):
            print(_row(str(number), "ceiling", measured.ceiling, ""))
            print(_row(str(number), "engine", measured.engine, f"{measured.ratio:.3f}"))
        print(_row("", f"{options['rate']:g}/s", run.fixed, ""))
        print(_row("", f"{options['low_rate']:g}/s", run.low, ""))
        p50 = statistics.median(r.engine.percentile_ms(50) for r in run.rounds)
        p99 = statistics.median(r.engine.percentile_ms(99) for r in run.rounds)
        drain = statistics.median(r.engine.drain_per_second() for r in run.rounds)
        print(
            f"    sustained: {run.delivered_per_second:.1f} webhooks/s delivered with the ingress saturated"
            f" (median of {len(run.rounds)}), p50 {p50:.0f} ms,\n    p99 {p99:.0f} ms; {drain:.1f}/s while"
            f" working off the backlog alone; engine/ceiling ratio {run.ratio:.4f}"
        )
        fixed = run.fixed
        print(
            f"    at {options['rate']:g} events/s offered: {fixed.accepted_per_second:.1f} accepted/s,"
            f" {fixed.delivered_per_second():.1f} delivered/s, p50 {fixed.percentile_ms(50):.0f} ms,"
            f" p99 {fixed.percentile_ms(99):.0f} ms ({fixed.load.late} sends late: no free connection)"
        )
        low = run.low
        print(
            f"    at {options['low_rate']:g} events/s offered (no backlog):"
            f" p50 {low.percentile_ms(50):.1f} ms,"
            f" p99 {low.percentile_ms(99):.1f} ms"
        )
    if isolation:
        print()
        print(
            f"  isolation (sqlite): dashboards A and B, one session each, the load split evenly,"
            f" {options['concurrency']} in flight,\n  {options['isolation_warmup']:g} s warm-up +"
            f" {options['isolation_seconds']:g} s measured;"
            f" B answers at once or after {options['slow_seconds']:g} s; a fresh engine and database per run"
        )
        print(f"    {'round':<6}{'B':<6}{'in/s':>8}{'A out/s':>9}{'B out/s':>9}{'A p99 ms':>10}{'A drop':>8}")
        for number, measured in enumerate(isolation, 1):
            for label, sample in (("fast", measured.both_fast), ("slow", measured.one_slow)):
                a_p99 = Sample(sample.load, sample.received[:1], 0).percentile_ms(99)
                drop = f"{measured.drop:.1%}" if label == "slow" else ""
                print(
                    f"    {number:<6}{label:<6}{sample.accepted_per_second:>8.1f}"
                    f"{sample.delivered_per_second(0):>9.1f}{sample.delivered_per_second(1):>9.1f}"
                    f"{a_p99:>10.0f}{drop:>8}"
                )
    for note in notes:
        print(f"  {note}")
    print()
    print(f"  ({elapsed:.0f} s in all)")
    _print_targets(runs, isolation, options)


def _print_targets(runs: list[DatabaseRun], isolation: list[IsolationRound], options: dict[str, Any]) -> None:
    sqlite = next((run for run in runs if run.name == "sqlite"), None)
    verdicts: list[tuple[str, bool, str]] = []
    if sqlite is not None:
        fixed_p99 = sqlite.fixed.percentile_ms(99)
        verdicts += [
            (
                f">= {TARGET_EVENTS_PER_SECOND:,.0f} events/s delivered on SQLite",
                sqlite.delivered_per_second >= TARGET_EVENTS_PER_SECOND,
                f"{sqlite.delivered_per_second:.1f} events/s",
            ),
            (
                f"p99 <= {TARGET_P99_MS:g} ms at {options['rate']:g} events/s (SQLite)",
                fixed_p99 <= TARGET_P99_MS,
                f"p99 {fixed_p99:.0f} ms",
            ),
            (
                f"engine/ceiling ratio >= {TARGET_RATIO:g} (SQLite)",
                sqlite.ratio >= TARGET_RATIO,
                f"{sqlite.ratio:.4f}",
            ),
        ]
    if isolation:
        drop = statistics.median(r.drop for r in isolation)
        verdicts.append(
            (
                f"isolation: A's delivered events/s drop <= {TARGET_ISOLATION_DROP:.0%} with B slow",
                drop <= TARGET_ISOLATION_DROP,
                f"{drop:.1%}",
            )
        )
    if not verdicts:
        print("  targets: not measured")
    for what, passed, shown in verdicts:
        print(f"  target: {what} -> {'PASS' if passed else 'BELOW'} ({shown})")


def _row(number: str, name: str, sample: Sample, ratio: str) -> str:
    return (
        f"    {number:<6}{name:<9}{sample.accepted_per_second:>8.1f}{sample.delivered_per_second():>8.1f}"
        f"{sample.drain_per_second():>9.1f}{sample.end_to_end_per_second():>8.1f}"
        f"{sample.percentile_ms(50):>9.2f}{sample.percentile_ms(99):>9.2f}{sample.accepted:>8}"
        f"{sample.drain_seconds:>10.2f}{sample.server_cpu_us_per_event():>10.0f}{ratio:>7}"
    )


if __name__ == "__main__":
    if "--receiver" in sys.argv[1:]:
        sys.exit(receiver_main(sys.argv[1:]))
    # Run through the package module, so that what the spawned client unpickles is importable.
    from bench import delivery_throughput

    sys.exit(delivery_throughput.main())
