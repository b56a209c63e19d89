"""The webhook connection pool: keep-alive reuse, stale connections, pooling by checked destination."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme

from engine.webhooks.connections import EXCERPT_BYTES, ConnectionPool
from engine.webhooks.targets import Destination


class KeepAliveServer(ThreadingHTTPServer):
    """HTTP/1.1 with keep-alive; records the client port of every request (one per connection)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.client_ports: list[int] = []
        self.hosts: list[str] = []
        self.body = b"ok"
        self.close_after_answer = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                server.client_ports.append(self.client_address[1])
                server.hosts.append(self.headers["host"])
                self.send_response(200)
                self.send_header("content-length", str(len(server.body)))
                self.send_header("retry-after", "7")
                self.end_headers()
                self.wfile.write(server.body)
                self.close_connection = server.close_after_answer

            def log_message(self, *_args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up before the whole answer is read (on purpose, in some tests)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks?x=1"


@pytest.fixture
def server() -> Iterator[KeepAliveServer]:
    server = KeepAliveServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    pool = ConnectionPool(timeout_seconds=2.0)
    yield pool
    pool.close()


def test_requests_to_one_destination_reuse_the_connection(
    server: KeepAliveServer, pool: ConnectionPool
) -> None:
    destination = Destination(server.url)
    answers = [pool.post(destination, b"{}", {"content-type": "application/json"}) for _ in range(3)]
    assert [(a.status, a.excerpt, a.retry_after) for a in answers] == [(200, "ok", "7")] * 3
    assert len(set(server.client_ports)) == 1


def test_a_connection_the_server_closed_is_replaced(server: KeepAliveServer, pool: ConnectionPool) -> None:
    destination = Destination(server.url)
    pool.post(destination, b"{}", {})
    # Closed behind the pool's back, as a server's idle timeout does.
    (idle,) = next(iter(pool._idle.values()))
    idle.shutdown(socket.SHUT_RDWR)
    assert pool.post(destination, b"{}", {}).status == 200
    assert len(server.client_ports) == 2 and len(set(server.client_ports)) == 2


def test_a_connection_closed_by_the_answer_is_not_kept(server: KeepAliveServer, pool: ConnectionPool) -> None:
    server.close_after_answer = True
    destination = Destination(server.url)
    pool.post(destination, b"{}", {})
    pool.post(destination, b"{}", {})
    assert len(set(server.client_ports)) == 2


def test_a_long_answer_is_cut(server: KeepAliveServer, pool: ConnectionPool) -> None:
    server.body = b"x" * (EXCERPT_BYTES * 3)
    destination = Destination(server.url)
    assert pool.post(destination, b"{}", {}).excerpt == "x" * EXCERPT_BYTES
    assert pool.post(destination, b"{}", {}).status == 200
    # Read to its end with the excerpt, the answer leaves the connection fit for the next request.
    assert len(set(server.client_ports)) == 1


def test_an_answer_not_read_to_its_end_drops_its_connection(
    server: KeepAliveServer, pool: ConnectionPool
) -> None:
    server.body = b"x" * (8 * 1024 * 1024)  # more than one read takes: the rest is left unread
    destination = Destination(server.url)
    assert pool.post(destination, b"{}", {}).excerpt == "x" * EXCERPT_BYTES
    assert pool.post(destination, b"{}", {}).status == 200
    assert len(set(server.client_ports)) == 2


def test_the_host_header_names_the_dashboard_and_pools_apart_by_name(
    server: KeepAliveServer, pool: ConnectionPool
) -> None:
    # Two dashboard names on one checked address: the Host header is each one's own, and a
    # connection opened (and, with TLS, verified) for one name never carries the other's request.
    port = server.server_address[1]
    first = Destination(server.url, host_header=f"a.example.com:{port}", server_name="a.example.com")
    second = Destination(server.url, host_header=f"b.example.com:{port}", server_name="b.example.com")
    pool.post(first, b"{}", {})
    pool.post(second, b"{}", {})
    pool.post(first, b"{}", {})
    assert server.hosts == [f"a.example.com:{port}", f"b.example.com:{port}", f"a.example.com:{port}"]
    assert server.client_ports[0] == server.client_ports[2] != server.client_ports[1]


def test_no_answer_raises(pool: ConnectionPool) -> None:
    with pytest.raises(OSError):
        pool.post(Destination("http://127.0.0.1:9/hooks"), b"{}", {})


# -- answers as they come on the wire ------------------------------------------------------------


class ScriptedServer:
    """Answers each request with the next of `answers` (raw bytes); closes after it when told to."""

    def __init__(self, *answers: bytes, close: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self._answers = list(answers)
        self._close = close
        self._tls = tls
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            if self._tls is not None:
                try:
                    connection = self._tls.wrap_socket(connection, server_side=True)
                except (OSError, ssl.SSLError):
                    continue  # the client refused the certificate
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            if not self._answers:
                while connection.recv(65536):
                    pass  # reads, never answers, until the client hangs up
            while self._answers:
                request = b""
                while b"\r\n\r\n" not in request:
                    data = connection.recv(65536)
                    if not data:
                        return
                    request += data
                head, _, body = request.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                while len(body) < length:
                    body += connection.recv(65536)
                self.requests.append(head)
                connection.sendall(self._answers.pop(0))
                if self._close:
                    return

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/hooks"

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(*answers: bytes, **options: Any) -> ScriptedServer:
        servers.append(ScriptedServer(*answers, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_an_interim_answer_is_skipped_for_the_final_one(
    scripted: Callable[..., ScriptedServer], pool: ConnectionPool
) -> None:
    server = scripted(
        b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"
        b"HTTP/1.1 202 Accepted\r\ncontent-length: 4\r\nretry-after: 3\r\n\r\ndone"
    )
    answer = pool.post(Destination(server.url()), b"{}", {})
    assert (answer.status, answer.excerpt, answer.retry_after) == (202, "done", "3")


def test_a_chunked_answer_is_read_and_its_connection_kept(
    scripted: Callable[..., ScriptedServer], pool: ConnectionPool
) -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    server = scripted(chunked, chunked)
    destination = Destination(server.url())
    assert [pool.post(destination, b"{}", {}).excerpt for _ in range(2)] == ["abcde", "abcde"]


def test_an_answer_ended_by_closing_the_connection_is_taken(
    scripted: Callable[..., ScriptedServer], pool: ConnectionPool
) -> None:
    server = scripted(b"HTTP/1.0 500 Internal Server Error\r\n\r\nboom", close=True)
    answer = pool.post(Destination(server.url()), b"{}", {})
    assert (answer.status, answer.excerpt) == (500, "boom")
    assert all(not idle for idle in pool._idle.values()), "a closed connection was kept"


def test_a_garbled_answer_raises(scripted: Callable[..., ScriptedServer], pool: ConnectionPool) -> None:
    server = scripted(b"SMTP ready\r\n\r\n", close=True)
    with pytest.raises(http.client.HTTPException):
        pool.post(Destination(server.url()), b"{}", {})


def test_no_answer_in_time_raises_timeout(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted()  # reads the request, never answers
    pool = ConnectionPool(timeout_seconds=0.3)
    try:
        with pytest.raises(TimeoutError):
            pool.post(Destination(server.url()), b"{}", {})
    finally:
        pool.close()


def test_values_that_would_break_the_request_are_refused(
    server: KeepAliveServer, pool: ConnectionPool
) -> None:
    with pytest.raises(http.client.HTTPException):
        pool.post(Destination(server.url), b"{}", {"webhook-id": "evt_1\r\nx-injected: 1"})
    with pytest.raises(http.client.HTTPException):
        pool.post(Destination(server.url), b"{}", {"webhook-id": "evt_\u00e9"})
    for path in ("/ho oks", "/h\u00f6oks"):
        with pytest.raises(http.client.InvalidURL):
            pool.post(Destination(server.url.replace("/hooks", path)), b"{}", {})
    assert server.client_ports == []


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def _tls_server(scripted: Callable[..., ScriptedServer], authority: trustme.CA, name: str) -> ScriptedServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(name).configure_cert(context)
    return scripted(b"HTTP/1.1 204 No Content\r\n\r\n", tls=context)


@pytest.fixture
def trusting(authority: trustme.CA) -> Iterator[ConnectionPool]:
    """A pool that trusts the test authority."""
    context = ssl.create_default_context()
    authority.configure_trust(context)
    pool = ConnectionPool(timeout_seconds=2.0, tls=context)
    yield pool
    pool.close()


def test_tls_goes_to_the_checked_address_verified_for_the_dashboards_name(
    scripted: Callable[..., ScriptedServer], authority: trustme.CA, trusting: ConnectionPool
) -> None:
    server = _tls_server(scripted, authority, "hooks.example.com")
    # As check_destination pins it: the checked address in the URL, the dashboard's name for the
    # Host header, SNI and the certificate check.
    destination = Destination(
        server.url("https"), host_header=f"hooks.example.com:{server.port}", server_name="hooks.example.com"
    )
    assert trusting.post(destination, b"{}", {}).status == 204
    assert server.requests[0].split(b"\r\n")[1] == f"host: hooks.example.com:{server.port}".encode()


def test_tls_refuses_a_certificate_for_another_name(
    scripted: Callable[..., ScriptedServer], authority: trustme.CA, trusting: ConnectionPool
) -> None:
    server = _tls_server(scripted, authority, "other.example.com")
    with pytest.raises(ssl.SSLCertVerificationError):
        trusting.post(Destination(server.url("https"), server_name="hooks.example.com"), b"{}", {})
    assert server.requests == []


def test_tls_refuses_a_certificate_of_an_unknown_authority(
    scripted: Callable[..., ScriptedServer], authority: trustme.CA, pool: ConnectionPool
) -> None:
    server = _tls_server(scripted, authority, "hooks.example.com")
    with pytest.raises(ssl.SSLCertVerificationError):
        pool.post(Destination(server.url("https"), server_name="hooks.example.com"), b"{}", {})
