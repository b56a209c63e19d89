"""Runs the gateway under uvicorn in a background thread, on a socket bound up front."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from engine.gateway.app import Gateway


def bind(address: str) -> socket.socket:
    """A listening TCP socket on HOST:PORT (port 0 picks a free one)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio enables TCP_NODELAY on accepted connections only for
    # sockets created with it, and without it each response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class GatewayServer:
    """uvicorn serving a Gateway; start() returns once it accepts connections."""

    def __init__(self, gateway: Gateway, address: str | socket.socket) -> None:
        """Serve `gateway` on `address` (HOST:PORT) or on a socket already bound with `bind`."""
        self._socket = bind(address) if isinstance(address, str) else address
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            gateway,
            http="httptools",
            lifespan="on",
            access_log=False,  # the engine logs every call itself
            # X-Forwarded-For is not trusted: per-client limits use the real peer address.
            proxy_headers=False,
            log_level="warning",
            timeout_graceful_shutdown=10,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self, timeout: float = 10.0) -> None:
        """Start serving in the background."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the REST gateway did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Finish requests in flight, then stop."""
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()
