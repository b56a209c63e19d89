"""Keep-alive HTTP/1.1 connections to checked webhook destinations.

A delivery is one small POST. The request is written here and the answer is parsed by
httptools (the C parser uvicorn uses, already a dependency of the gateway): about a third of
the CPU of the standard library's `http.client`, whose header parsing goes through the email
package (measured: ~32 µs against ~108 µs per request, and httpx ~360 µs).

A connection is pooled under everything that makes it what it is: scheme, the address it was
opened to (the one the SSRF guard checked and pinned), port and TLS server name. So a request
only ever reuses a connection to the same checked address, verified for the same name; the
guard's guarantee holds for pooled connections as for new ones.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import httptools

from engine.webhooks.targets import Destination

#: How much of a dashboard's answer is kept with the attempt, for diagnosis.
EXCERPT_BYTES = 1024
#: A stale keep-alive connection (closed by the server while idle) fails with one of these
#: before any answer: the request is then sent once more on a new connection.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
_RECEIVE_BYTES = 65536

_PoolKey = tuple[str, str, int, str]


@dataclass(frozen=True)
class Answer:
    """What a destination answered: status, the start of the body, Retry-After if any."""

    status: int
    excerpt: str
    retry_after: str | None


class _Reading:
    """httptools callbacks: the answer as it is parsed."""

    __slots__ = ("complete", "excerpt", "headers_done", "keep_alive", "parser", "retry_after")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.excerpt = bytearray()
        self.retry_after: str | None = None
        self.headers_done = False
        self.complete = False
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self.retry_after = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        room = EXCERPT_BYTES - len(self.excerpt)
        if room > 0:
            self.excerpt += body[:room]

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            # An interim answer (103 Early Hints, say): the real one follows on the same stream.
            self.headers_done = False
            self.retry_after = None
            self.excerpt.clear()
            return
        self.complete = True
        # Asked now: once the message is over, the parser has moved on to the next one.
        self.keep_alive = self.parser.should_keep_alive()

    @property
    def excerpt_full(self) -> bool:
        return len(self.excerpt) >= EXCERPT_BYTES


class ConnectionPool:
    """Posts to destinations over reused connections (thread-safe; one request per connection at a time)."""

    def __init__(
        self, timeout_seconds: float, max_idle_per_destination: int = 32, tls: ssl.SSLContext | None = None
    ) -> None:
        """`tls` verifies dashboards' certificates; by default against certifi's CA bundle."""
        self._timeout = timeout_seconds
        self._max_idle = max_idle_per_destination
        self._tls = tls or ssl.create_default_context(cafile=certifi.where())
        self._idle: dict[_PoolKey, list[socket.socket]] = {}
        self._lock = threading.Lock()

    def post(self, destination: Destination, body: bytes, headers: dict[str, str]) -> Answer:
        """POST `body` to the destination (never following redirects); raise OSError or
        http.client.HTTPException when no answer arrives (TimeoutError after the timeout)."""
        parts = urlsplit(destination.connect_url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        key = (
            parts.scheme,
            parts.hostname or "",
            parts.port or (443 if parts.scheme == "https" else 80),
            destination.server_name or parts.hostname or "",
        )
        request = _request(path, destination.host_header or parts.netloc, headers, body)
        connection, reused = self._checkout(key)
        try:
            answer, keep = self._exchange(connection, request)
        except _STALE_CONNECTION:
            connection.close()
            if not reused:
                raise
            connection = self._connect(key)
            try:
                answer, keep = self._exchange(connection, request)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        if keep:
            self._checkin(key, connection)
        else:
            connection.close()
        return answer

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _exchange(self, connection: socket.socket, request: bytes) -> tuple[Answer, bool]:
        """Send the request and read the answer; the answer, and whether the connection can
        carry another request."""
        deadline = time.monotonic() + self._timeout
        connection.settimeout(self._timeout)
        connection.sendall(request)
        reading = _Reading()
        received = False
        # A body longer than the excerpt is not read to its end: the connection is dropped.
        while not (reading.complete or (reading.headers_done and reading.excerpt_full)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer within the timeout")
            connection.settimeout(remaining)
            data = connection.recv(_RECEIVE_BYTES)
            if not data:
                if not received:
                    raise http.client.RemoteDisconnected("the connection closed without an answer")
                if not reading.headers_done:
                    raise http.client.IncompleteRead(b"", None)
                break  # a body that ends with the connection
            received = True
            try:
                reading.parser.feed_data(data)
            except httptools.HttpParserError as error:
                raise http.client.HTTPException(f"the answer is not HTTP/1.1: {error}") from None
        status = reading.parser.get_status_code()
        answer = Answer(status, reading.excerpt.decode("utf-8", errors="replace"), reading.retry_after)
        return answer, reading.keep_alive

    def _checkout(self, key: _PoolKey) -> tuple[socket.socket, bool]:
        """An idle connection for `key` (True: reused), else a new one."""
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        return self._connect(key), False

    def _connect(self, key: _PoolKey) -> socket.socket:
        """TCP to the checked address; with https, TLS verified for the dashboard's name (and SNI)."""
        scheme, address, port, server_name = key
        connection = socket.create_connection((address, port), timeout=self._timeout)
        try:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                return self._tls.wrap_socket(connection, server_hostname=server_name)
        except BaseException:
            connection.close()
            raise
        return connection

    def _checkin(self, key: _PoolKey, connection: socket.socket) -> None:
        """Keep the connection for the next request, unless enough are idle."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._max_idle:
                idle.append(connection)
                return
        connection.close()


def _request(path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of a POST; refuses what would let a value end a line or split the request line."""
    if not path.isascii() or any(character <= " " or character == "\x7f" for character in path):
        raise http.client.InvalidURL(f"the URL's path has characters HTTP does not allow: {path!r}")
    lines = [f"POST {path} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
    head = "\r\n".join(lines)
    if not head.isascii() or any("\n" in line or "\r" in line for line in lines):
        raise http.client.HTTPException("a header holds a line break or a character outside ASCII")
    return (head + "\r\n\r\n").encode("ascii") + body
