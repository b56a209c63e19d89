"""The REST gateway in a child process of `engine serve`, on a socket the parent bound.

One Python process has one GIL: a gateway thread and the gRPC worker threads take turns on
one core. In its own process the gateway uses another core, as grpc-gateway runs beside the
server it fronts. The parent binds the socket (the providers must know the port before the
engine starts) and hands the file descriptor down; the child is `engine gateway --listen-fd`,
and a supervisor thread starts it again should it die. The child dies with its parent.
"""

from __future__ import annotations

import ctypes
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

log = logging.getLogger("engine.gateway")

#: Wait before starting a gateway again after it died, doubled up to the maximum.
RESTART_DELAY_SECONDS = 0.5
MAX_RESTART_DELAY_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


class GatewayProcess:
    """Runs and supervises `engine gateway` as a child process serving `sock`."""

    def __init__(self, sock: socket.socket, upstream: str, settings: Mapping[str, str]) -> None:
        """Serve on the listening socket `sock`, forwarding to the gRPC server at `upstream`.

        `settings` are environment variables the child reads on top of this process's own: the
        engine's settings may not have come from the environment.
        """
        self._socket = sock
        self._upstream = upstream
        self._environment = {**os.environ, **settings}
        self.port: int = sock.getsockname()[1]
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._failure: str | None = None
        self._supervisor = threading.Thread(target=self._supervise, name="gateway-supervisor", daemon=True)

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        return self._process.pid if self._process else None

    def cpu_seconds(self) -> float:
        """CPU time the current child has used so far (Linux; 0.0 where /proc is missing)."""
        pid = self.pid
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except (OSError, TypeError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def start(self, timeout: float = 30.0) -> None:
        """Start the child; return once it answers /healthz on the socket."""
        # Spawned from the supervisor thread: the child's parent-death signal follows the
        # thread that forked it, and this thread lives as long as the gateway is wanted.
        self._supervisor.start()
        if not self._started.wait(timeout) or self._failure:
            self.stop()
            raise RuntimeError(f"the REST gateway did not start: {self._failure or 'timed out'}")

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop the child (SIGTERM: it finishes requests in flight), then close the socket."""
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace_seconds + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._supervisor.is_alive():
            self._supervisor.join(timeout=5)
        self._socket.close()

    def _supervise(self) -> None:
        delay = RESTART_DELAY_SECONDS
        while not self._stopping.is_set():
            began = time.monotonic()
            self._process = self._spawn()
            if not self._started.is_set():
                if not self._await_health(self._process):
                    self._failure = f"exited with status {self._process.poll()}"
                    self._started.set()
                    return
                self._started.set()
            status = self._process.wait()
            if self._stopping.is_set():
                return
            log.error("REST gateway process exited; starting it again", extra={"status": status})
            # A child that keeps dying right away is restarted ever more slowly.
            delay = RESTART_DELAY_SECONDS if time.monotonic() - began > 60 else delay
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, MAX_RESTART_DELAY_SECONDS)

    def _spawn(self) -> subprocess.Popen[bytes]:
        fd = self._socket.fileno()
        command = [
            *(sys.executable, "-m", "engine", "gateway", "--upstream", self._upstream),
            *("--listen-fd", str(fd), "--parent-pid", str(os.getpid())),
        ]
        # A session of its own: a Ctrl-C in the terminal reaches the parent, which stops the child.
        return subprocess.Popen(command, pass_fds=(fd,), env=self._environment, start_new_session=True)  # noqa: S603 (our own command)

    def _await_health(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
        """Whether the child answers GET /healthz before it exits or `timeout` passes."""
        host = self._socket.getsockname()[0]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host  # noqa: S104
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline and not self._stopping.is_set():
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


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when `parent_pid`, its parent, does, even by SIGKILL.

    An orphaned gateway would keep the port and forward to a server that is gone. Linux's
    parent-death signal does it at once; elsewhere a thread polls the parent's id.
    """
    try:
        armed = ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0
    except (OSError, AttributeError):
        armed = False
    # The parent may have died before the signal was armed.
    if os.getppid() != parent_pid:
        os._exit(1)
    if not armed:
        watch = threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), name="parent-watch")
        watch.daemon = True
        watch.start()


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)
