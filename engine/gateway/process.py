"""The REST gateway in a child process of `engine serve`, on a socket the parent bound.

In its own process the gateway works on another core than the gRPC server it fronts, as
grpc-gateway runs beside its server. The parent binds the socket (the providers must know
the port before the engine starts) and hands the file descriptor down to
`engine gateway --listen-fd`.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
from collections.abc import Mapping

from engine.children import ChildProcess


class GatewayProcess:
    """Runs and supervises `engine gateway` as a child process serving `sock`."""

    def __init__(self, sock: socket.socket, upstream: str, settings: Mapping[str, str]) -> None:
        """Serve on the listening socket `sock`, forwarding to the gRPC server at `upstream`.

        `settings` are environment variables the child reads on top of this process's own: the
        engine's settings may not have come from the environment.
        """
        self._socket = sock
        self.port: int = sock.getsockname()[1]
        fd = sock.fileno()
        self.child = ChildProcess(
            "REST gateway",
            ["gateway", "--upstream", upstream, "--listen-fd", str(fd)],
            settings,
            pass_fds=(fd,),
            ready=self._answers_health,
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start the child; return once it answers /healthz on the socket."""
        self.child.start(timeout)

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop the child (it finishes requests in flight), then close the socket."""
        self.child.stop(grace_seconds)
        self._socket.close()

    def _answers_health(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
        """Whether the child answers GET /healthz before it exits or `timeout` passes."""
        host = self._socket.getsockname()[0]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host  # noqa: S104
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline and not self.child.stopping:
            connection = http.client.HTTPConnection(host, self.port, timeout=2)
            try:
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return True
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.05)
        return False
