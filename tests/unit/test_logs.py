"""JSON logging: batched writes, access entries encoded on the writer thread, flush on shutdown."""

from __future__ import annotations

import io
import json
import logging

from engine.logs import configure_logging, log_access, shutdown_logging


def lines_of(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_records_and_access_entries_become_json_lines() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    try:
        logging.getLogger("engine").info("engine started", extra={"grpc_port": 1234})
        log_access({"method": "/x.Y/Z", "code": "OK", "agency_id": "a1", "request_id": "req_1"})
        logging.getLogger("engine").debug("not at INFO")
    finally:
        shutdown_logging()  # flushes what is pending

    started, access = lines_of(stream)
    assert started["message"] == "engine started"
    assert started["grpc_port"] == 1234
    assert started["level"] == "info"
    assert access["logger"] == "engine.access"
    assert access["message"] == "rpc"
    assert access["method"] == "/x.Y/Z"
    assert access["agency_id"] == "a1"
    assert "_created" not in access
    assert str(access["time"]).endswith("+00:00")


def test_access_entries_are_dropped_above_info() -> None:
    stream = io.StringIO()
    configure_logging("WARNING", stream)
    try:
        log_access({"method": "/x.Y/Z", "code": "OK"})
        logging.getLogger("engine").warning("kept")
    finally:
        shutdown_logging()
    assert [entry["message"] for entry in lines_of(stream)] == ["kept"]


def test_exceptions_are_rendered() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("engine").exception("failed")
    finally:
        shutdown_logging()
    (entry,) = lines_of(stream)
    assert "ValueError: boom" in str(entry["exception"])


def test_many_entries_from_many_threads_are_all_written() -> None:
    import threading

    stream = io.StringIO()
    configure_logging("INFO", stream)
    try:

        def burst(n: int) -> None:
            for i in range(500):
                log_access({"method": "m", "thread": n, "i": i})

        threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        shutdown_logging()
    entries = lines_of(stream)
    assert len(entries) == 4000
    assert {(e["thread"], e["i"]) for e in entries} == {(n, i) for n in range(8) for i in range(500)}
