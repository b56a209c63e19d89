"""Structured logging: one JSON object per line on stderr, written in batches."""

from __future__ import annotations

import atexit
import collections
import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else passed via `extra=` is emitted as a field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as a single JSON line with its `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class BatchingStreamHandler(logging.Handler):
    """Formats on the calling thread, writes in batches from one background thread.

    An RPC thread only appends a line to a list, so it never blocks on the stream (a
    write releases the GIL, and sixteen threads queueing behind one lock cost more
    than the logging itself). The writer flushes every `interval` seconds, when many
    lines are pending, and on close.
    """

    def __init__(self, stream: TextIO, interval: float = 0.1, max_pending: int = 1000) -> None:
        super().__init__()
        self._stream = stream
        self._interval = interval
        self._max_pending = max_pending
        # Formatted lines, or access entries (dicts) that the writer encodes itself.
        self._pending: collections.deque[str | dict[str, Any]] = collections.deque()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.submit(line)

    def submit(self, item: str | dict[str, Any]) -> None:
        """Queue a formatted line, or an access entry to encode on the writer thread."""
        self._pending.append(item)  # deque appends and pops are thread-safe
        if len(self._pending) >= self._max_pending:
            self._wake.set()

    def flush(self) -> None:
        """Write every pending line now."""
        lines = []
        while self._pending:
            item = self._pending.popleft()
            lines.append(item if isinstance(item, str) else _encode_access(item))
        if lines:
            with self._write_lock:  # not self.lock: emit() takes that one on every record
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._writer.join(timeout=5)
        self.flush()
        super().close()


_handler: BatchingStreamHandler | None = None
_access_logger = logging.getLogger("engine.access")


def log_access(fields: dict[str, Any]) -> None:
    """Log one RPC (an `engine.access` INFO line) with `fields`.

    Called on every RPC, so it skips LogRecord creation when the engine's own handler
    is installed: the entry is encoded on the writer thread.
    """
    if not _access_logger.isEnabledFor(logging.INFO):
        return
    handler = _handler
    if handler is None:
        _access_logger.info("rpc", extra=fields)
        return
    fields["_created"] = time.time()
    handler.submit(fields)


def _encode_access(fields: dict[str, Any]) -> str:
    created = fields.pop("_created")
    entry = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": "info",
        "logger": _access_logger.name,
        "message": "rpc",
        **fields,
    }
    return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every log record to `stream` (default stderr) as JSON lines (idempotent)."""
    global _handler
    shutdown_logging()
    root = logging.getLogger()
    _handler = BatchingStreamHandler(sys.stderr if stream is None else stream)
    _handler.setFormatter(JsonFormatter())
    root.addHandler(_handler)
    root.setLevel(level)
    # Alembic narrates every migration step at INFO; only its problems matter in the engine's log.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))


def shutdown_logging() -> None:
    """Write out every pending line and stop the writer thread (safe to call twice)."""
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler.close()
        _handler = None


atexit.register(shutdown_logging)
