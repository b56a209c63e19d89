"""Every RPC with a route is reachable over REST and answers as it does over gRPC."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import grpc
import httpx
import pytest
from google.protobuf import json_format

from engine.auth.policy import rule_of
from engine.gateway.errors import HTTP_STATUS
from engine.gateway.routes import Route, routes_of
from engine.gateway.transcode import build_request, message_class
from engine.rpc.server import SERVICES
from tests.support.constants import MASTER_KEY, PSK
from tests.support.live import LiveEngine
from tests.support.rpc import register
from workflow_engine.v1 import options_pb2

ROUTES = routes_of(SERVICES)
SAMPLE_VALUES = {"agency_id": "agency-a", "provider": "waha"}
#: Calls whose second run answers differently (suspending twice fails): REST acts on a twin agency.
TWIN_AGENCY_RPCS = frozenset({"SuspendDashboard"})
#: Fields that change between two calls by nature (timings).
VOLATILE_FIELDS = frozenset({"databaseLatencyMs", "uptimeSeconds"})


def steady(document: object) -> object:
    """`document` without the fields that differ between any two calls."""
    if isinstance(document, dict):
        return {k: steady(v) for k, v in document.items() if k not in VOLATILE_FIELDS}
    return document


def sample_path(route: Route, agency_id: str = "agency-a") -> tuple[str, dict[str, str]]:
    """A concrete path for the route's template, and the bindings it carries."""
    bindings: dict[str, str] = {}
    values = {**SAMPLE_VALUES, "agency_id": agency_id}

    def fill(match: re.Match[str]) -> str:
        field = match.group(1).split("=")[0]
        value = values.get(field.rsplit(".", 1)[-1], "sample-1")
        bindings[field] = value
        return value

    return re.sub(r"\{([^}]+)\}", fill, route.template.text), bindings


def credential_headers(route: Route, dashboard_key: str) -> dict[str, str]:
    rule = rule_of(route.rpc.containing_service, route.rpc.name)
    assert rule is not None
    if rule.allows(options_pb2.CREDENTIAL_DASHBOARD_KEY):
        return {"x-api-key": dashboard_key}
    if rule.allows(options_pb2.CREDENTIAL_PSK):
        return {"authorization": f"PSK {PSK}"}
    if rule.allows(options_pb2.CREDENTIAL_MASTER_KEY):
        return {"x-api-key": MASTER_KEY}
    return {}


@pytest.fixture
def setup(live_http: LiveEngine) -> Iterator[tuple[LiveEngine, str, httpx.Client]]:
    key = register(live_http.channel, "agency-a").api_key
    register(live_http.channel, "agency-twin")
    with httpx.Client(base_url=live_http.base_url, timeout=10) as client:
        yield live_http, key, client


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.http_method} {r.template.text}")
def test_route_answers_like_grpc(setup: tuple[LiveEngine, str, httpx.Client], route: Route) -> None:
    live, key, client = setup
    path, bindings = sample_path(route)
    headers = credential_headers(route, key)
    query: list[tuple[str, str]] = []
    body = b""
    if route.body == "*":
        body = b"{}"
    elif (
        not route.body and "agency_id" in route.rpc.input_type.fields_by_name and "agency_id" not in bindings
    ):
        query = [("agencyId", "agency-a")]
    request = build_request(route, bindings, query, body, "application/json")

    grpc_code = grpc.StatusCode.OK
    grpc_body = None
    try:
        response = live.channel.unary_unary(
            route.grpc_path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=message_class(route.rpc.output_type).FromString,
        )(request, metadata=tuple(headers.items()), timeout=10)
        grpc_body = json_format.MessageToDict(response, always_print_fields_with_no_presence=True)
    except grpc.RpcError as error:
        grpc_code = error.code()

    if route.rpc.name in TWIN_AGENCY_RPCS:
        path, _ = sample_path(route, agency_id="agency-twin")
    http_response = client.request(
        route.http_method,
        path,
        params=query,
        headers={**headers, "content-type": "application/json"},
        content=body or None,
    )

    assert http_response.status_code == HTTP_STATUS[grpc_code], http_response.text
    if grpc_code is grpc.StatusCode.OK and route.http_method == "GET" and not route.response_body:
        assert steady(http_response.json()) == steady(grpc_body)
    elif grpc_code is not grpc.StatusCode.OK:
        assert json.loads(http_response.content)["code"] == grpc_code.value[0]
