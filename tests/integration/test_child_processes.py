"""`engine serve` runs its REST gateway and its dispatcher as child processes: metrics, delivery,
supervision, dying together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from engine.config import METRICS_DIR_VARIABLE
from tests.integration.test_serve_process import ENGINE, engine_env, free_port, wait_serving
from tests.support.receiver import WebhookReceiver
from tests.support.rpc import api_key_auth, register
from workflow_engine.v1 import registry_pb2, registry_pb2_grpc, sessions_pb2, sessions_pb2_grpc


class Served:
    """A running `engine serve` and its addresses."""

    def __init__(self, process: subprocess.Popen[str], grpc_port: int, http_port: int) -> None:
        self.process = process
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        self.base = f"http://127.0.0.1:{http_port}"
        self.http_port = http_port

    def children(self) -> list[int]:
        """Process ids of the engine's child processes (Linux: the children of all its threads)."""
        children: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            children += [int(pid) for pid in (task / "children").read_text().split()]
        return children

    def child(self, command: str) -> int:
        """The process id of the one child running `engine <command>`."""
        (pid,) = [pid for pid in self.children() if _command_of(pid)[1:2] == [command]]
        return pid

    def commands(self) -> list[str]:
        """The `engine` commands the children run, sorted (a child not yet exec'd shows "serve")."""
        return sorted((_command_of(pid)[1:2] or ["?"])[0] for pid in self.children())


def _command_of(pid: int) -> list[str]:
    """The arguments after `python -m`: ["engine", "<command>", ...] ([] once it has exited)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []
    return arguments[arguments.index("-m") + 1 :] if "-m" in arguments else arguments


def _serve(tmp_path: Path, **extra: str) -> Served:
    grpc_port, http_port = free_port(), free_port()
    env = engine_env(
        tmp_path,
        ENGINE_GRPC_ADDR=f"127.0.0.1:{grpc_port}",
        ENGINE_HTTP_ADDR=f"127.0.0.1:{http_port}",
        ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS="true",
        ENGINE_SANDBOX_PAIRING_SECONDS="0",
        **extra,
    )
    env.pop(METRICS_DIR_VARIABLE, None)
    process = subprocess.Popen(
        [*ENGINE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    served = Served(process, grpc_port, http_port)
    with grpc.insecure_channel(served.grpc_target) as channel:
        wait_serving(channel, process)
    _wait_for(lambda: _answers(served.base), "the REST gateway to answer")
    # A child counts once it runs its command: before its exec it still shows the parent's.
    children = [] if extra.get("ENGINE_CHILD_PROCESSES") == "false" else ["gateway", "worker"]
    _wait_for(lambda: served.commands() == children, f"the child processes {children}")
    return served


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    engine = _serve(tmp_path)
    try:
        yield engine
    finally:
        _stop(engine)


def _stop(served: Served) -> str:
    """SIGTERM, wait; the engine's stderr."""
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
    try:
        return served.process.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        served.process.kill()
        return served.process.communicate()[1]


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _metric(text: str, prefix: str) -> float:
    """The value of the one sample line starting with `prefix`."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)]
    assert len(values) == 1, (prefix, text)
    return values[0]


def test_gateway_and_worker_are_child_processes_and_metrics_cover_them(served: Served) -> None:
    assert served.commands() == ["gateway", "worker"]
    with grpc.insecure_channel(served.grpc_target) as channel:
        key = register(channel, "split_agency").api_key
        registry_pb2_grpc.RegistryServiceStub(channel).GetDashboardConfig(
            registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(key)
        )
    for _ in range(3):
        rest = httpx.get(f"{served.base}/v1/internal/dashboard/config", headers={"X-API-Key": key})
        assert rest.status_code == 200
        assert rest.json()["config"]["agencyId"] == "split_agency"
    refused = httpx.get(f"{served.base}/v1/internal/dashboard/config", headers={"X-API-Key": "wfe_wrong"})
    assert refused.status_code == 401

    text = httpx.get(f"{served.base}/metrics").text
    method = 'method="/workflow_engine.v1.RegistryService/GetDashboardConfig"'
    # Counted by the engine's process ...
    assert _metric(text, f'engine_rpc_requests_total{{code="OK",{method},transport="grpc"}}') == 1
    assert _metric(text, f'engine_rpc_requests_total{{code="OK",{method},transport="rest"}}') == 3
    assert _metric(text, "engine_auth_failures_total") == 1
    assert _metric(text, "engine_rate_limit_rejections_total") == 0
    # ... and by the gateway's.
    route = 'route="GET /v1/internal/dashboard/config"'
    assert _metric(text, f'engine_http_requests_total{{{route},status="200"}}') == 3
    assert _metric(text, f'engine_http_requests_total{{{route},status="401"}}') == 1


def test_the_worker_child_delivers(served: Served) -> None:
    with WebhookReceiver() as receiver, grpc.insecure_channel(served.grpc_target) as channel:
        key = register(channel, "worker_agency", dashboard_url=receiver.url).api_key
        sessions = sessions_pb2_grpc.SessionsServiceStub(channel)
        auth = api_key_auth(key)
        session = sessions.CreateSession(
            sessions_pb2.CreateSessionRequest(agency_id="worker_agency", tenant_id="t1"), metadata=auth
        ).session
        sessions.StartSession(
            sessions_pb2.StartSessionRequest(
                agency_id="worker_agency", tenant_id="t1", session_id=session.session_id
            ),
            metadata=auth,
        )
        # Delivered by the worker process (the engine's own dispatcher is not started).
        receiver.wait_for(1, timeout=10)
    assert {request.json["type"] for request in receiver.requests} == {"session.status"}


@pytest.mark.parametrize("command", ["gateway", "worker"])
def test_a_child_that_dies_is_started_again(served: Served, command: str) -> None:
    first = served.child(command)
    os.kill(first, signal.SIGKILL)
    _wait_for(
        lambda: first not in served.children() and served.commands() == ["gateway", "worker"],
        f"a new {command}",
    )
    _wait_for(lambda: _answers(served.base), "the new gateway to answer")
    assert httpx.get(f"{served.base}/readyz").status_code == 200
    stderr = _stop(served)
    assert served.process.returncode == 0
    name = "REST gateway" if command == "gateway" else "webhook dispatcher"
    assert f"{name} process exited; starting it again" in stderr


def test_the_children_die_with_a_killed_engine_and_free_the_port(tmp_path: Path) -> None:
    served = _serve(tmp_path)
    children = served.children()
    assert len(children) == 2
    served.process.kill()
    served.process.communicate(timeout=30)
    _wait_for(lambda: not any(_alive(child) for child in children), "the orphans to exit", timeout=10)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", served.http_port))  # free again: nobody listens on it


def test_gateway_and_dispatcher_on_threads_when_configured(tmp_path: Path) -> None:
    served = _serve(tmp_path, ENGINE_CHILD_PROCESSES="false")
    try:
        assert served.children() == []
        assert "engine_auth_failures_total 0.0" in httpx.get(f"{served.base}/metrics").text
    finally:
        _stop(served)
