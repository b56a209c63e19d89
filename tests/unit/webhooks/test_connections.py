"""The webhook connection pool: keep-alive reuse, stale connections, pooling by checked destination."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

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
    assert idle.sock is not None
    idle.sock.shutdown(2)
    assert pool.post(destination, b"{}", {}).status == 200
    assert len(server.client_ports) == 2 and len(set(server.client_ports)) == 2


def test_a_connection_closed_by_the_answer_is_not_kept(server: KeepAliveServer, pool: ConnectionPool) -> None:
    server.close_after_answer = True
    destination = Destination(server.url)
    pool.post(destination, b"{}", {})
    pool.post(destination, b"{}", {})
    assert len(set(server.client_ports)) == 2


def test_a_long_answer_is_cut_and_its_connection_dropped(
    server: KeepAliveServer, pool: ConnectionPool
) -> None:
    server.body = b"x" * (EXCERPT_BYTES * 3)
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
