"""The gateway in front of a stand-in gRPC server: response metadata, deadlines, raw bodies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import httpx
import pytest
from google.api import httpbody_pb2

from engine.gateway.app import Gateway, OpsEndpoints
from engine.gateway.routes import routes_of
from engine.gateway.server import GatewayServer
from engine.rpc.server import SERVICES
from workflow_engine.v1 import registry_pb2, webhook_pb2

seen_metadata: list[dict[str, str]] = []


def get_config(request: registry_pb2.GetDashboardConfigRequest, context: Any) -> Any:
    seen_metadata.append(dict(context.invocation_metadata()))
    context.send_initial_metadata((("x-trace", "abc123"),))
    remaining = context.time_remaining()
    name = "slow" if remaining is not None and remaining < 1 else "fast"
    if request.agency_id == "sleepy":
        time.sleep(0.5)
    return registry_pb2.GetDashboardConfigResponse(
        config=registry_pb2.DashboardConfig(agency_id=request.agency_id, dashboard_name=name)
    )


def receive_webhook(request: webhook_pb2.ReceiveProviderWebhookRequest, context: Any) -> Any:
    seen_metadata.append(dict(context.invocation_metadata()))
    # The provider name picks the HTTP status the servicer asks for (x-http-code).
    if request.provider.startswith("status-"):
        context.send_initial_metadata((("x-http-code", request.provider.removeprefix("status-")),))
    # Echo what arrived so the test can check the bytes were untouched.
    context.set_trailing_metadata((("x-body-length", str(len(request.body.data))),))
    return webhook_pb2.ReceiveProviderWebhookResponse(accepted=len(request.body.data))


def verify_webhook(request: webhook_pb2.VerifyProviderWebhookRequest, context: Any) -> Any:
    return webhook_pb2.VerifyProviderWebhookResponse(
        body=httpbody_pb2.HttpBody(content_type="text/plain", data=request.hub.challenge.encode())
    )


@pytest.fixture
def gateway() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "workflow_engine.v1.RegistryService": {
            "GetDashboardConfig": grpc.unary_unary_rpc_method_handler(
                get_config,
                request_deserializer=registry_pb2.GetDashboardConfigRequest.FromString,
                response_serializer=registry_pb2.GetDashboardConfigResponse.SerializeToString,
            )
        },
        "workflow_engine.v1.WebhookService": {
            "ReceiveProviderWebhook": grpc.unary_unary_rpc_method_handler(
                receive_webhook,
                request_deserializer=webhook_pb2.ReceiveProviderWebhookRequest.FromString,
                response_serializer=webhook_pb2.ReceiveProviderWebhookResponse.SerializeToString,
            ),
            "VerifyProviderWebhook": grpc.unary_unary_rpc_method_handler(
                verify_webhook,
                request_deserializer=webhook_pb2.VerifyProviderWebhookRequest.FromString,
                response_serializer=webhook_pb2.VerifyProviderWebhookResponse.SerializeToString,
            ),
        },
    }
    for service, methods in handlers.items():
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, methods),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    async def ready() -> bool:
        return True

    ops = OpsEndpoints(ready=ready, metrics=None, openapi_json=b"{}")
    http = GatewayServer(
        Gateway(
            f"127.0.0.1:{port}",
            routes_of(SERVICES),
            ops,
            gateway_token="t" * 16,
            forward_headers=("X-Webhook-Hmac",),
        ),
        "127.0.0.1:0",
    )
    http.start()
    seen_metadata.clear()
    yield f"http://127.0.0.1:{http.port}"
    http.stop()
    server.stop(0)


def test_response_metadata_comes_back_as_grpc_metadata_headers(gateway: str) -> None:
    response = httpx.get(f"{gateway}/v1/internal/dashboard/config", params={"agencyId": "a1"})
    assert response.status_code == 200
    assert response.headers["grpc-metadata-x-trace"] == "abc123"
    assert response.json()["config"]["agencyId"] == "a1"


def test_request_headers_reach_the_server_as_metadata(gateway: str) -> None:
    httpx.get(
        f"{gateway}/v1/internal/dashboard/config",
        params={"agencyId": "a1"},
        headers={"X-API-Key": "k", "Grpc-Metadata-Tenant": "t9", "X-Request-Id": "rid-1", "Cookie": "secret"},
    )
    (metadata,) = seen_metadata
    assert metadata["x-api-key"] == "k"
    assert metadata["tenant"] == "t9"
    assert metadata["x-request-id"] == "rid-1"
    assert metadata["x-engine-gateway"] == "t" * 16
    assert metadata["x-forwarded-for"].startswith("ipv4:127.0.0.1:")
    assert "cookie" not in metadata  # only mapped headers travel


def test_grpc_timeout_becomes_the_deadline(gateway: str) -> None:
    short = httpx.get(
        f"{gateway}/v1/internal/dashboard/config", params={"agencyId": "a1"}, headers={"Grpc-Timeout": "900m"}
    )
    assert short.json()["config"]["dashboardName"] == "slow"  # the server saw less than 1 s left
    unbounded = httpx.get(f"{gateway}/v1/internal/dashboard/config", params={"agencyId": "a1"})
    assert unbounded.json()["config"]["dashboardName"] == "fast"
    expired = httpx.get(
        f"{gateway}/v1/internal/dashboard/config",
        params={"agencyId": "sleepy"},
        headers={"Grpc-Timeout": "100m"},
    )
    assert expired.status_code == 504
    assert expired.json()["code"] == 4


def test_raw_bodies_pass_through_untouched_both_ways(gateway: str) -> None:
    raw = b'{"event": "message",  "payload": {"id": "x"}}\n\x00\xff'
    response = httpx.post(
        f"{gateway}/v1/webhooks/waha", content=raw, headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == len(raw)
    challenge = httpx.get(
        f"{gateway}/v1/webhooks/meta", params={"hub.challenge": "12345", "hub.mode": "subscribe"}
    )
    assert challenge.status_code == 200
    assert challenge.headers["content-type"] == "text/plain"
    assert challenge.content == b"12345"


def test_forward_headers_reach_the_server_and_others_do_not(gateway: str) -> None:
    httpx.post(
        f"{gateway}/v1/webhooks/waha",
        content=b"{}",
        headers={"X-Webhook-Hmac": "abc", "X-Other-Signature": "def"},
    )
    (metadata,) = seen_metadata
    assert metadata["x-webhook-hmac"] == "abc"
    assert "x-other-signature" not in metadata


@pytest.mark.parametrize(
    ("asked", "answered"), [("202", 202), ("201", 201), ("204", 200), ("500", 200), ("abc", 200)]
)
def test_servicer_chooses_a_2xx_status_with_x_http_code(gateway: str, asked: str, answered: int) -> None:
    response = httpx.post(f"{gateway}/v1/webhooks/status-{asked}", content=b"{}")
    assert response.status_code == answered
    assert "grpc-metadata-x-http-code" not in response.headers
