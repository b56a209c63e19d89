"""The dispatcher alone, in process: deliveries/s and CPU per delivery, and commit→arrival latency.

`.venv/bin/python -m bench.dispatch_core` (about 20 s). An engine is built on SQLite in a temp dir
(`BENCH_DISPATCH_DATABASE_URL` for another database) without its servers; `BENCH_DISPATCH_DASHBOARDS`
dashboards are registered with the delivery bench's receiver (a separate process, so its CPU is not
counted) as their URL. Two measurements:

1. **drain**: `BENCH_DISPATCH_ROWS` webhook.test rows are written into the outbox (the dashboards in
   turn) while the dispatcher is stopped; then it starts, and the time and this process's CPU time
   (`time.process_time`, all threads) until the receiver has every one give deliveries/s and CPU µs
   per delivery;
2. **steady rate**: a thread publishes `BENCH_DISPATCH_RATE` events/s (one per transaction, as the
   ingress does) for `BENCH_DISPATCH_RATE_SECONDS` with the dispatcher running; each event carries
   the time just before its commit, and the receiver its arrival: p50/p99 of commit→arrival.

The dispatcher has the engine's default limits (`ENGINE_WEBHOOK_CONCURRENCY`,
`ENGINE_WEBHOOK_CONCURRENCY_PER_DASHBOARD` override them).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

from bench.delivery_throughput import DASHBOARD_SECRET, FAST_PATH, ReceiverProcess, receiver_process
from bench.rest_overhead import env_number
from engine.app import Engine, build_engine
from engine.config import Settings
from engine.webhooks.outbox import Outbox
from workflow_engine.v1 import webhook_pb2

SECRET_KEY = "bench-secret-key-" + "0" * 40


def settings_for(database_url: str) -> Settings:
    """An engine's settings as deployed, on `database_url`, allowed to deliver to loopback."""
    settings = Settings.from_env(
        {
            "ENGINE_API_KEY": "bench-master-key-" + "0" * 32,
            "WORKFLOW_ENGINE_INTERNAL_PSK": "bench-psk-" + "0" * 32,
            "ENGINE_SECRET_KEY": SECRET_KEY,
            "ENGINE_DATABASE_URL": database_url,
            "ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS": "true",
            **{k: v for k, v in os.environ.items() if k.startswith("ENGINE_WEBHOOK_")},
        }
    )
    return replace(settings, grpc_addr="127.0.0.1:0")


def queue_events(engine: Engine, outbox: Outbox, agencies: list[str], run: str, count: int) -> None:
    """Write `count` webhook.test rows, the agencies in turn, 100 per transaction."""
    for start in range(0, count, 100):
        with engine.database.transaction() as tx:
            for n in range(start, min(count, start + 100)):
                outbox.add(tx, test_event(agencies[n % len(agencies)], run))


def test_event(agency_id: str, run: str) -> webhook_pb2.WebhookEvent:
    """A webhook.test event whose note carries the receiver's run marker and the time now."""
    event = webhook_pb2.WebhookEvent(type="webhook.test", agency_id=agency_id)
    event.test.note = f"[bench run={run} t={time.time():.6f}]"
    return event


def wait_arrived(receiver: ReceiverProcess, run: str, count: int, timeout: float = 120.0) -> None:
    """Until the receiver has `count` distinct events of `run` (fails after `timeout`)."""
    deadline = time.monotonic() + timeout
    while receiver.stats(run, "count")["distinct"] < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {receiver.stats(run, 'count')['distinct']} of {count} arrived")
        time.sleep(0.02)


def drain(engine: Engine, outbox: Outbox, agencies: list[str], receiver: ReceiverProcess, rows: int) -> None:
    """Measure how fast a stopped dispatcher's backlog of `rows` is delivered once it starts."""
    run = uuid.uuid4().hex[:8]
    queue_events(engine, outbox, agencies, run, rows)
    assert engine.dispatcher is not None
    wall, cpu = time.perf_counter(), time.process_time()
    engine.dispatcher.start()
    wait_arrived(receiver, run, rows)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = receiver.stats(run)
    assert stats["bad_signatures"] == 0, stats["bad_signatures"]
    print(
        f"drain: {rows} deliveries in {wall:.2f} s = {rows / wall:,.0f}/s, "
        f"CPU {cpu / rows * 1e6:,.0f} us per delivery ({cpu / wall:.0%} of one core)"
    )


def steady(
    engine: Engine,
    outbox: Outbox,
    agencies: list[str],
    receiver: ReceiverProcess,
    rate: float,
    seconds: float,
) -> None:
    """Publish `rate` events/s, one per transaction, and report commit→arrival latency."""
    run = uuid.uuid4().hex[:8]
    total = int(rate * seconds)
    started = time.perf_counter()
    cpu = time.process_time()
    for n in range(total):
        pause = started + n / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        with engine.database.transaction() as tx:
            outbox.add(tx, test_event(agencies[n % len(agencies)], run))
    wait_arrived(receiver, run, total)
    cpu = time.process_time() - cpu
    latencies = sorted(receiver.stats(run)["latencies"])
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(
        f"steady {rate:g}/s for {seconds:g} s: commit->arrival p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms; CPU {cpu / total * 1e6:,.0f} us per event (publishing included)"
    )


def main() -> int:
    rows = int(env_number("BENCH_DISPATCH_ROWS", 3000))
    dashboards = int(env_number("BENCH_DISPATCH_DASHBOARDS", 4))
    rate = env_number("BENCH_DISPATCH_RATE", 300.0)
    rate_seconds = env_number("BENCH_DISPATCH_RATE_SECONDS", 3.0)
    with tempfile.TemporaryDirectory() as workdir, receiver_process(slow_seconds=0) as receiver:
        url = os.environ.get("BENCH_DISPATCH_DATABASE_URL", f"sqlite:///{Path(workdir) / 'engine.db'}")
        engine = build_engine(settings_for(url), serve_http=False)
        assert engine.dispatcher is not None
        agencies = [f"bench-{n}" for n in range(dashboards)]
        for agency in agencies:
            engine.registry.register(agency, agency, receiver.url(FAST_PATH), DASHBOARD_SECRET)
        outbox = Outbox(wake=engine.dispatcher.wake)
        print(
            f"{dashboards} dashboards, {engine.settings.webhook_concurrency} in flight, "
            f"{engine.settings.webhook_concurrency_per_dashboard} per dashboard; {url.split(':')[0]}"
        )
        try:
            drain(engine, outbox, agencies, receiver, rows)
            steady(engine, outbox, agencies, receiver, rate, rate_seconds)
        finally:
            engine.dispatcher.stop()
            engine.database.dispose()
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
