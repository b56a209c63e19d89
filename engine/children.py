"""Child processes of `engine serve`: supervised, started again should they die, dying with it.

One Python process has one GIL. `engine serve` therefore runs its REST gateway and its webhook
dispatcher as child processes (`engine gateway`, `engine worker`), each on a core of its own,
while the engine's process serves gRPC. A child that dies is started again with backoff; a
child whose parent dies (even by SIGKILL) ends too, so no orphan keeps a port or a lease.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger("engine")

#: Wait before starting a child again after it died, doubled up to the maximum.
RESTART_DELAY_SECONDS = 0.5
MAX_RESTART_DELAY_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


class ChildProcess:
    """Runs `engine <arguments>` as a supervised child process."""

    def __init__(
        self,
        name: str,
        arguments: Sequence[str],
        environment: Mapping[str, str],
        *,
        pass_fds: Sequence[int] = (),
        ready: Callable[[subprocess.Popen[bytes]], bool] = lambda _process: True,
        with_stdin: bool = False,
    ) -> None:
        """`environment` is added to this process's own; `ready(process)` says when a start
        succeeded (False: it failed); `with_stdin` gives the child a pipe to `write` to."""
        self.name = name
        self._command = [
            *(sys.executable, "-m", "engine", *arguments),
            *("--parent-pid", str(os.getpid())),
        ]
        self._environment = {**os.environ, **environment}
        self._pass_fds = tuple(pass_fds)
        self._ready = ready
        self._with_stdin = with_stdin
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._failure: str | None = None
        self._supervisor = threading.Thread(target=self._supervise, name=f"{name}-supervisor", daemon=True)

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        return self._process.pid if self._process else None

    @property
    def stopping(self) -> bool:
        """Whether stop() was called."""
        return self._stopping.is_set()

    def start(self, timeout: float = 30.0) -> None:
        """Start the child; return once it is ready."""
        # Spawned from the supervisor thread: the child's parent-death signal follows the
        # thread that forked it, and this thread lives as long as the child is wanted.
        self._supervisor.start()
        if not self._started.wait(timeout) or self._failure:
            self.stop()
            raise RuntimeError(f"the {self.name} did not start: {self._failure or 'timed out'}")

    def write(self, data: bytes) -> None:
        """Write to the child's stdin without blocking; dropped when the pipe is full or gone."""
        process = self._process
        if process is None or process.stdin is None:
            return
        # OSError covers a full pipe (BlockingIOError: the child has wake-ups enough) and a gone one.
        with contextlib.suppress(OSError, ValueError):
            os.write(process.stdin.fileno(), data)

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop the child with SIGTERM (it finishes its work in flight); SIGKILL after the grace."""
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

    def _supervise(self) -> None:
        delay = RESTART_DELAY_SECONDS
        while not self._stopping.is_set():
            began = time.monotonic()
            self._process = self._spawn()
            if not self._started.is_set():
                if not self._ready(self._process):
                    self._failure = f"exited with status {self._process.poll()}"
                    self._started.set()
                    return
                self._started.set()
            status = self._process.wait()
            if self._stopping.is_set():
                return
            log.error(f"{self.name} process exited; starting it again", extra={"status": status})
            # A child that keeps dying right away is started again ever more slowly.
            delay = RESTART_DELAY_SECONDS if time.monotonic() - began > 60 else delay
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, MAX_RESTART_DELAY_SECONDS)

    def _spawn(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(  # noqa: S603 (our own command)
            self._command,
            pass_fds=self._pass_fds,
            env=self._environment,
            stdin=subprocess.PIPE if self._with_stdin else subprocess.DEVNULL,
            # A session of its own: a Ctrl-C in the terminal reaches the parent, which stops the child.
            start_new_session=True,
        )
        if process.stdin is not None:
            os.set_blocking(process.stdin.fileno(), False)
        return process


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when `parent_pid`, its parent, does, even by SIGKILL.

    An orphan would keep its port or its leases for a server that is gone. Linux's
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
