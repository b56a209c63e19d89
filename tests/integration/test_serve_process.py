"""`engine serve` and `engine migrate` as real processes: configuration, logs, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.constants import MASTER_KEY, PSK, SECRET_KEY, WEBHOOK_SECRET
from tests.support.rpc import PSK_AUTH, api_key_auth, register
from workflow_engine.v1 import (
    registry_pb2,
    registry_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    webhook_pb2,
    webhook_pb2_grpc,
)

ENGINE = [sys.executable, "-m", "engine"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engine_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "WORKFLOW_ENGINE_"))}
    env.update(
        ENGINE_API_KEY=MASTER_KEY,
        WORKFLOW_ENGINE_INTERNAL_PSK=PSK,
        ENGINE_SECRET_KEY=SECRET_KEY,
        ENGINE_DATABASE_URL=f"sqlite:///{tmp_path / 'engine.db'}",
    )
    env.update(extra)
    return env


@pytest.mark.parametrize("missing", ["ENGINE_API_KEY", "WORKFLOW_ENGINE_INTERNAL_PSK", "ENGINE_SECRET_KEY"])
def test_missing_required_secret_stops_with_one_line(tmp_path: Path, missing: str) -> None:
    env = engine_env(tmp_path)
    del env[missing]
    result = subprocess.run(
        [*ENGINE, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert missing in lines[0]


def test_short_secret_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    env = engine_env(tmp_path, ENGINE_SECRET_KEY="too-short-secret")
    result = subprocess.run(
        [*ENGINE, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "ENGINE_SECRET_KEY" in result.stderr
    assert "too-short-secret" not in result.stderr


def test_migrate_command_creates_the_schema(tmp_path: Path) -> None:
    env = engine_env(tmp_path)
    result = subprocess.run(
        [*ENGINE, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert (tmp_path / "engine.db").exists()


def wait_serving(channel: grpc.Channel, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            time.sleep(0.1)
    pytest.fail("engine did not become healthy")


def test_serve_logs_json_without_secrets_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    env = engine_env(
        tmp_path, ENGINE_GRPC_ADDR=f"127.0.0.1:{port}", ENGINE_HTTP_ADDR=f"127.0.0.1:{http_port}"
    )
    process = subprocess.Popen(
        [*ENGINE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_serving(channel, process)
            key = register(channel, "proc_agency").api_key
            registry_pb2_grpc.RegistryServiceStub(channel).GetDashboardConfig(
                registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(key)
            )
            with pytest.raises(grpc.RpcError):
                registry_pb2_grpc.RegistryServiceStub(channel).ListAgencies(
                    registry_pb2.ListAgenciesRequest(), metadata=(("authorization", "PSK wrong"),)
                )
            registry_pb2_grpc.RegistryServiceStub(channel).ListAgencies(
                registry_pb2.ListAgenciesRequest(), metadata=PSK_AUTH
            )
        rest = httpx.get(
            f"http://127.0.0.1:{http_port}/v1/internal/dashboard/config", headers={"X-API-Key": key}
        )
        assert rest.status_code == 200
        assert rest.json()["config"]["agencyId"] == "proc_agency"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    output = stdout + stderr
    for secret in (MASTER_KEY, PSK, SECRET_KEY, WEBHOOK_SECRET, key):
        assert secret not in output
    access = [json.loads(line) for line in stderr.splitlines() if line.startswith("{") and '"rpc"' in line]
    by_method = {(entry["method"].rsplit("/", 1)[1], entry["code"]) for entry in access}
    assert ("RegisterDashboard", "OK") in by_method
    assert ("GetDashboardConfig", "OK") in by_method
    assert ("ListAgencies", "UNAUTHENTICATED") in by_method
    config_line = next(e for e in access if e["method"].endswith("GetDashboardConfig"))
    assert config_line["agency_id"] == "proc_agency"
    assert config_line["request_id"].startswith("req_")
    assert config_line["duration_ms"] >= 0
    assert "shutdown requested" in stderr
    assert "engine stopped" in stderr
    rest_line = next(e for e in access if e["transport"] == "rest")
    assert rest_line["method"].endswith("GetDashboardConfig")


def test_sigterm_while_still_starting_is_a_graceful_stop(tmp_path: Path) -> None:
    """gRPC answers before `engine serve` has started its children; a SIGTERM then still stops
    it gracefully (exit 0) rather than killing it, so no child or lease is left behind."""
    port = free_port()
    env = engine_env(tmp_path, ENGINE_GRPC_ADDR=f"127.0.0.1:{port}", ENGINE_HTTP_ADDR="127.0.0.1:0")
    process = subprocess.Popen(
        [*ENGINE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_serving(channel, process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "shutdown requested" in stderr
    assert "engine stopped" in stderr


def test_gateway_alone_forwards_to_a_running_engine(tmp_path: Path) -> None:
    port, http_port, gateway_port = free_port(), free_port(), free_port()
    env = engine_env(
        tmp_path, ENGINE_GRPC_ADDR=f"127.0.0.1:{port}", ENGINE_HTTP_ADDR=f"127.0.0.1:{http_port}"
    )
    engine = subprocess.Popen(
        [*ENGINE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    gateway_env = {**env, "ENGINE_HTTP_ADDR": f"127.0.0.1:{gateway_port}"}
    gateway = subprocess.Popen(
        [*ENGINE, "gateway", "--upstream", f"127.0.0.1:{port}"],
        env=gateway_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_serving(channel, engine)
        base = f"http://127.0.0.1:{gateway_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "standalone gateway did not become ready"
            time.sleep(0.1)
        response = httpx.post(
            f"{base}/v1/internal/dashboard/register",
            headers={"Authorization": f"PSK {PSK}"},
            json={
                "agencyId": "via-gateway",
                "dashboardName": "Standalone",
                "dashboardUrl": "https://standalone.example",
                "webhookSecret": WEBHOOK_SECRET,
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["agencyId"] == "via-gateway"
        engine.send_signal(signal.SIGTERM)
        engine.communicate(timeout=30)
        # With the engine gone, the gateway reports not ready and answers 503 for calls.
        assert httpx.get(f"{base}/readyz").status_code == 503
        down = httpx.get(f"{base}/v1/internal/dashboard/agencies", headers={"Authorization": f"PSK {PSK}"})
        assert down.status_code == 503
        gateway.send_signal(signal.SIGTERM)
        gateway.communicate(timeout=30)
        assert gateway.returncode == 0
    finally:
        for process in (engine, gateway):
            if process.poll() is None:
                process.kill()


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        _Recorder.received.append(self.headers["webhook-id"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_worker_alone_delivers_what_a_serve_without_dispatcher_queued(tmp_path: Path) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    _Recorder.received = []
    port, http_port = free_port(), free_port()
    env = engine_env(
        tmp_path,
        ENGINE_GRPC_ADDR=f"127.0.0.1:{port}",
        ENGINE_HTTP_ADDR=f"127.0.0.1:{http_port}",
        ENGINE_DISPATCHER="false",
        ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS="true",
        ENGINE_SANDBOX_PAIRING_SECONDS="0",
    )
    engine = subprocess.Popen(
        [*ENGINE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    worker = None
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            wait_serving(channel, engine)
            key = register(
                channel, "worker_agency", dashboard_url=f"http://127.0.0.1:{receiver.server_port}/hooks"
            ).api_key
            # Starting a sandbox session queues session.status events (STARTING, SCAN_QR_CODE, WORKING).
            sessions = sessions_pb2_grpc.SessionsServiceStub(channel)
            session = sessions.CreateSession(
                sessions_pb2.CreateSessionRequest(tenant_id="t1"), metadata=api_key_auth(key)
            ).session
            sessions.StartSession(
                sessions_pb2.StartSessionRequest(session_id=session.session_id), metadata=api_key_auth(key)
            )
            deliveries = webhook_pb2_grpc.WebhookServiceStub(channel)
            deadline = time.monotonic() + 30
            while True:
                queued = deliveries.ListDeliveries(
                    webhook_pb2.ListDeliveriesRequest(), metadata=api_key_auth(key)
                ).deliveries
                if len(queued) == 3:
                    break
                assert time.monotonic() < deadline, "the session's events were not queued"
                time.sleep(0.1)
        time.sleep(1.0)
        assert _Recorder.received == []  # queued, but nobody delivers yet
        worker = subprocess.Popen(
            [*ENGINE, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        expected = {delivery.event_id for delivery in queued}
        deadline = time.monotonic() + 30
        while set(_Recorder.received) != expected:
            assert worker.poll() is None, worker.communicate()[1]
            assert time.monotonic() < deadline, "the worker did not deliver"
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
        assert worker.returncode == 0
        assert sorted(_Recorder.received) == sorted(expected)
    finally:
        receiver.shutdown()
        for process in (engine, worker):
            if process is not None and process.poll() is None:
                process.kill()
