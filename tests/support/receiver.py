"""A real webhook receiver for tests: an HTTP server on a free loopback port, in a thread.

`WebhookReceiver` records every request it gets (method, path, headers lower-cased, the exact
body bytes, when it arrived) and answers as the test tells it, even mid-test:

    with WebhookReceiver() as receiver:
        register(channel, "acme", dashboard_url=receiver.url)
        receiver.respond(500)                         # every answer from now on
        receiver.enqueue(Reply(503, retry_after="2"))  # the next answer only, then the default again
        receiver.respond_with(lambda request: ...)     # decide per request (None: fall through)
        requests = receiver.wait_for(3)                # at least 3 requests, or the test fails

A `Reply` is a status code with optional `Retry-After`, `Location` (for redirects), body and
a delay before answering. Delays end early on `release()` and on close, so a test never waits
for a hanging receiver at teardown. The request is recorded when it arrives, before any delay;
`completed` counts answers written (or abandoned because the caller hung up).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest

#: How often the server looks for a shutdown request (the stdlib default 0.5 s slows every teardown).
_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    retry_after: str | None = None
    location: str | None = None
    body: bytes = b"ok"
    #: Seconds to wait before answering (the caller may time out meanwhile).
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    method: str
    path: str
    #: Header names lower-cased; a repeated header keeps its last value.
    headers: dict[str, str]
    body: bytes
    #: time.monotonic() when the request (headers and body) had arrived.
    arrived_at: float
    #: What the receiver answered (or was about to, if the caller hung up).
    reply: Reply = field(default_factory=Reply)

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def signatures(self) -> list[str]:
        """The entries of `webhook-signature` (`v1,...`, `v1a,...`)."""
        return self.headers.get("webhook-signature", "").split()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Do not wait for handlers still sleeping through a delay when closing.
    block_on_close = False
    # Dispatchers open many connections at once; the default backlog of 5 resets some of them.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A caller that timed out closes its end; the late answer then fails to write. Expected.
        pass


class WebhookReceiver:
    """Records webhook requests and answers them as configured. Use as a context manager."""

    def __init__(self, path: str = "/hooks") -> None:
        self.path = path
        self._lock = threading.Condition()
        self._requests: list[Received] = []
        self._default = Reply()
        self._queued: deque[Reply] = deque()
        self._responder: Callable[[Received], Reply | None] | None = None
        self._released = threading.Event()
        self._completed = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                receiver._handle(self)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(_POLL_SECONDS,), name="webhook-receiver", daemon=True
        )
        self._thread.start()

    # -- where and how -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The URL to register as a dashboard's webhook URL."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    def respond(
        self,
        status: int = 200,
        *,
        retry_after: str | None = None,
        location: str | None = None,
        delay: float = 0.0,
        body: bytes = b"ok",
    ) -> None:
        """Answer every later request like this (unless a queued reply or the responder decides)."""
        with self._lock:
            self._default = Reply(status, retry_after, location, body, delay)

    def enqueue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, one each, then with the default again."""
        with self._lock:
            self._queued.extend(replies)

    def respond_with(self, responder: Callable[[Received], Reply | None] | None) -> None:
        """Decide each answer from the request; a None answer falls through to queued/default."""
        with self._lock:
            self._responder = responder

    def release(self) -> None:
        """End every delay now (current and later ones)."""
        self._released.set()

    # -- what arrived ------------------------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        """A snapshot of every request so far, in order of arrival."""
        with self._lock:
            return list(self._requests)

    @property
    def completed(self) -> int:
        """Requests whose handling (delay included) has finished."""
        with self._lock:
            return self._completed

    def count_by_id(self) -> Counter[str]:
        """How many requests arrived per `webhook-id`."""
        return Counter(request.webhook_id for request in self.requests)

    def of_id(self, webhook_id: str) -> list[Received]:
        """The requests carrying this `webhook-id`."""
        return [request for request in self.requests if request.webhook_id == webhook_id]

    def wait_until(
        self, done: Callable[[list[Received]], bool], timeout: float = 5.0, what: str = "requests"
    ) -> list[Received]:
        """Wait until `done(requests)`; fail the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not done(list(self._requests)):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        f"timed out after {timeout} s waiting for {what}; "
                        f"got {len(self._requests)} request(s): {[r.webhook_id for r in self._requests]}"
                    )
                self._lock.wait(min(left, 0.05))
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait until at least `count` requests arrived; fail the test after `timeout` seconds."""
        return self.wait_until(lambda got: len(got) >= count, timeout, f"{count} request(s)")

    def wait_for_id(self, webhook_id: str, count: int = 1, timeout: float = 5.0) -> list[Received]:
        """Wait until `count` requests with this `webhook-id` arrived; return them."""
        self.wait_until(
            lambda got: sum(r.webhook_id == webhook_id for r in got) >= count,
            timeout,
            f"{count} request(s) with webhook-id {webhook_id}",
        )
        return self.of_id(webhook_id)

    def wait_completed(self, count: int, timeout: float = 5.0) -> None:
        """Wait until at least `count` requests were answered."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._completed < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"timed out waiting for {count} answered request(s); {self._completed} were")
                self._lock.wait(min(left, 0.05))

    def stays_at(self, count: int, seconds: float) -> bool:
        """True if, for `seconds`, no more than `count` requests arrive (to check nothing is sent)."""
        deadline = time.monotonic() + seconds
        with self._lock:
            while True:
                if len(self._requests) > count:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                self._lock.wait(min(left, 0.05))

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- serving -----------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        request = Received(handler.command, handler.path, headers, body, time.monotonic())
        with self._lock:
            reply = self._responder(request) if self._responder is not None else None
            if reply is None:
                reply = self._queued.popleft() if self._queued else self._default
            request = Received(request.method, request.path, headers, body, request.arrived_at, reply)
            self._requests.append(request)
            self._lock.notify_all()
        try:
            if reply.delay > 0:
                self._released.wait(reply.delay)
            handler.send_response(reply.status)
            if reply.retry_after is not None:
                handler.send_header("Retry-After", reply.retry_after)
            if reply.location is not None:
                handler.send_header("Location", reply.location)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            handler.wfile.write(reply.body)
            handler.wfile.flush()
        except OSError:
            pass  # the caller gave up (timed out) before the answer
        finally:
            with self._lock:
                self._completed += 1
                self._lock.notify_all()
