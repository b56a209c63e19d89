"""The REST gateway against a live engine: the seed's REST contract, errors, headers, ops endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.constants import MASTER_KEY, PSK, WEBHOOK_SECRET
from tests.support.live import LiveEngine

PSK_HEADERS = {"Authorization": f"PSK {PSK}"}
REGISTRATION = {
    "agencyId": "agency_abc123",
    "dashboardName": "My SaaS Platform",
    "dashboardUrl": "https://myapp.com",
    "webhookSecret": "very-long-secret-string-min-32-chars",
}


@pytest.fixture
def http(live_http: LiveEngine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_http.base_url, timeout=10) as client:
        yield client


def register(http: httpx.Client, **overrides: str) -> str:
    response = http.post(
        "/v1/internal/dashboard/register", headers=PSK_HEADERS, json={**REGISTRATION, **overrides}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["apiKey"])


# -- the seed, exactly --------------------------------------------------------------------


def test_register_answers_exactly_the_seed_shape(http: httpx.Client) -> None:
    response = http.post("/v1/internal/dashboard/register", headers=PSK_HEADERS, json=REGISTRATION)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"success", "apiKey", "agencyId"}
    assert body["success"] is True
    assert body["agencyId"] == "agency_abc123"
    assert body["apiKey"].startswith("wfe_")


def test_config_by_query_agency_id_with_psk_and_by_api_key(http: httpx.Client) -> None:
    key = register(http)

    by_psk = http.get(
        "/v1/internal/dashboard/config", params={"agencyId": "agency_abc123"}, headers=PSK_HEADERS
    )
    by_key = http.get("/v1/internal/dashboard/config", headers={"X-API-Key": key})

    assert by_psk.status_code == by_key.status_code == 200
    assert by_psk.json() == by_key.json()
    config = by_psk.json()["config"]
    assert config["agencyId"] == "agency_abc123"
    assert config["dashboardUrl"] == "https://myapp.com"
    assert config["webhookSecretSet"] is True
    assert config["status"] == "DASHBOARD_STATUS_ACTIVE"
    assert REGISTRATION["webhookSecret"] not in by_psk.text


def test_patch_config_changes_only_what_is_sent(http: httpx.Client) -> None:
    key = register(http)
    response = http.patch(
        "/v1/internal/dashboard/config", headers={"X-API-Key": key}, json={"dashboardName": "New"}
    )
    assert response.status_code == 200, response.text
    config = response.json()["config"]
    assert config["dashboardName"] == "New"
    assert config["dashboardUrl"] == "https://myapp.com"


def test_snake_case_input_is_accepted(http: httpx.Client) -> None:
    body = {
        "agency_id": "snake",
        "dashboard_name": "Snake",
        "dashboard_url": "https://s.example",
        "webhook_secret": WEBHOOK_SECRET,
    }
    response = http.post("/v1/internal/dashboard/register", headers=PSK_HEADERS, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["agencyId"] == "snake"


def test_list_agencies_emits_unpopulated_fields_and_paginates(http: httpx.Client) -> None:
    for name in ("a1", "a2", "a3"):
        register(http, agencyId=name)
    first = http.get("/v1/internal/dashboard/agencies", params={"pageSize": "2"}, headers=PSK_HEADERS).json()
    assert [a["agencyId"] for a in first["agencies"]] == ["a1", "a2"]
    assert first["nextPageToken"]
    second = http.get(
        "/v1/internal/dashboard/agencies",
        params={"page_size": "2", "pageToken": first["nextPageToken"]},
        headers=PSK_HEADERS,
    ).json()
    assert [a["agencyId"] for a in second["agencies"]] == ["a3"]
    assert second["nextPageToken"] == ""  # unpopulated fields are emitted


def test_rotate_key_over_rest(http: httpx.Client) -> None:
    old = register(http)
    response = http.post(
        "/v1/internal/dashboard/rotate-key", headers={"X-API-Key": old}, json={"gracePeriodSeconds": 0}
    )
    assert response.status_code == 200, response.text
    new = response.json()["apiKey"]
    assert http.get("/v1/internal/dashboard/config", headers={"X-API-Key": old}).status_code == 401
    assert http.get("/v1/internal/dashboard/config", headers={"X-API-Key": new}).status_code == 200


def test_seed_admin_paths_answer_with_the_master_key(http: httpx.Client) -> None:
    master = {"X-API-Key": MASTER_KEY}
    key = register(http)
    created = http.post(
        "/api/v1/sessions", headers={"X-API-Key": key}, json={"tenantId": "tenant_xyz789", "name": "Desk"}
    )
    assert created.status_code == 200, created.text

    listed = http.get("/api/v1/admin/dashboards", headers=master)
    assert listed.status_code == 200, listed.text
    assert [d["agencyId"] for d in listed.json()["dashboards"]] == ["agency_abc123"]
    detail = http.get("/api/v1/admin/dashboards/agency_abc123", headers=master)
    assert detail.json()["dashboard"]["summary"]["sessionCounts"]["stopped"] == 1
    sessions = http.get("/api/v1/admin/dashboards/agency_abc123/sessions", headers=master)
    assert [s["tenantId"] for s in sessions.json()["sessions"]] == ["tenant_xyz789"]
    seed_sessions = http.get(
        "/api/v1/sessions",
        params={"agencyId": "agency_abc123", "tenantId": "tenant_xyz789"},
        headers={"X-API-Key": key},
    )
    assert [s["name"] for s in seed_sessions.json()["sessions"]] == ["Desk"]

    suspended = http.post(
        "/api/v1/admin/dashboards/agency_abc123/suspend", headers=master, json={"reason": "unpaid invoice"}
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["dashboard"]["summary"]["status"] == "DASHBOARD_STATUS_SUSPENDED"
    refused = http.get("/v1/internal/dashboard/config", headers={"X-API-Key": key})
    assert refused.status_code == 403
    assert refused.json()["details"][0]["reason"] == "DASHBOARD_SUSPENDED"
    activated = http.post("/api/v1/admin/dashboards/agency_abc123/activate", headers=master, json={})
    assert activated.json()["dashboard"]["summary"]["status"] == "DASHBOARD_STATUS_ACTIVE"
    assert http.get("/v1/internal/dashboard/config", headers={"X-API-Key": key}).status_code == 200
    # A dashboard key may not use the admin routes.
    assert http.get("/api/v1/admin/dashboards", headers={"X-API-Key": key}).status_code == 403


# -- errors -------------------------------------------------------------------------------


def test_invalid_argument_is_400_with_bad_request_details(http: httpx.Client) -> None:
    response = http.post(
        "/v1/internal/dashboard/register",
        headers=PSK_HEADERS,
        json={**REGISTRATION, "webhookSecret": "short"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 3
    assert "webhookSecret" in body["message"]
    (detail,) = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["fieldViolations"][0]["field"] == "webhookSecret"
    assert "short" not in response.text


def test_unauthenticated_is_401_with_www_authenticate(http: httpx.Client) -> None:
    response = http.get("/v1/internal/dashboard/agencies", headers={"Authorization": "PSK wrong"})
    assert response.status_code == 401
    assert "PSK" in response.headers["www-authenticate"]
    assert response.json() == {"code": 16, "message": "missing or invalid credentials", "details": []}


def test_permission_denied_not_found_already_exists(http: httpx.Client) -> None:
    key = register(http)
    register(http, agencyId="other")
    other = http.get(
        "/v1/internal/dashboard/config", params={"agencyId": "other"}, headers={"X-API-Key": key}
    )
    assert other.status_code == 403
    assert other.json()["details"][0]["reason"] == "AGENCY_MISMATCH"
    missing = http.get("/v1/internal/dashboard/config", params={"agencyId": "nobody"}, headers=PSK_HEADERS)
    assert missing.status_code == 404
    duplicate = http.post("/v1/internal/dashboard/register", headers=PSK_HEADERS, json=REGISTRATION)
    assert duplicate.status_code == 409


def test_rate_limit_is_429_with_retry_after_and_ratelimit_headers(
    start_engine: Callable[..., LiveEngine],
) -> None:
    live = start_engine(http=True, rate_limit_rps=0.1, rate_limit_burst=2)
    with httpx.Client(base_url=live.base_url, timeout=10) as http:
        codes = [http.get("/v1/internal/dashboard/agencies", headers=PSK_HEADERS) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    refused = codes[-1]
    assert refused.headers["retry-after"] == "10"
    assert refused.headers["ratelimit-policy"] == '"credential";q=2;w=20'
    assert refused.headers["ratelimit"] == '"credential";r=0;t=10'
    detail_types = [d["@type"] for d in refused.json()["details"]]
    assert "type.googleapis.com/google.rpc.RetryInfo" in detail_types


def test_unknown_path_is_404_and_wrong_method_is_405(http: httpx.Client) -> None:
    missing = http.get("/v1/nothing/here")
    assert missing.status_code == 404
    assert missing.json()["code"] == 5
    wrong = http.delete("/v1/internal/dashboard/register", headers=PSK_HEADERS)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert wrong.json()["message"] == "method not allowed"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"agencyId": 5}', "agencyId"),
        (b'{"agencyId": "x", "surprise": 1}', "surprise"),
        (b'{"dashboardName": {"nested": true}}', "dashboardName"),
    ],
)
def test_malformed_bodies_are_400_naming_the_problem(http: httpx.Client, body: bytes, needle: str) -> None:
    response = http.post(
        "/v1/internal/dashboard/register",
        headers={**PSK_HEADERS, "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == 400, response.text
    assert needle in response.json()["message"]
    assert "Traceback" not in response.text


def test_wrong_query_type_is_400(http: httpx.Client) -> None:
    response = http.get("/v1/internal/dashboard/agencies", params={"pageSize": "many"}, headers=PSK_HEADERS)
    assert response.status_code == 400
    assert "pageSize" in response.json()["message"] or "page_size" in response.json()["message"]


def test_oversized_body_is_413(start_engine: Callable[..., LiveEngine]) -> None:
    live = start_engine(http=True, http_max_body_bytes=1000)
    with httpx.Client(base_url=live.base_url, timeout=10) as http:
        response = http.post(
            "/v1/internal/dashboard/register",
            headers=PSK_HEADERS,
            json={**REGISTRATION, "dashboardName": "x" * 2000},
        )
    assert response.status_code == 413
    assert response.json()["code"] == 3


# -- headers and metadata -----------------------------------------------------------------


def test_request_id_is_passed_through_or_generated(http: httpx.Client) -> None:
    given = http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = http.get("/v1/internal/dashboard/agencies", headers=PSK_HEADERS)
    assert generated.headers["x-request-id"].startswith("req_")
    failed = http.get("/v1/internal/dashboard/agencies", headers={"X-Request-Id": "trace-9"})
    assert failed.status_code == 401
    assert failed.headers["x-request-id"] == "trace-9"


def test_grpc_metadata_headers_become_metadata(http: httpx.Client) -> None:
    key = register(http)
    response = http.get("/v1/internal/dashboard/config", headers={"Grpc-Metadata-X-Api-Key": key})
    assert response.status_code == 200


def test_grpc_timeout_is_accepted_and_bad_values_are_400(http: httpx.Client) -> None:
    # Expiry is tested against a slow stand-in server in test_gateway_upstream.py.
    ok = http.get("/v1/internal/dashboard/agencies", headers={**PSK_HEADERS, "Grpc-Timeout": "5S"})
    assert ok.status_code == 200
    bad = http.get("/v1/internal/dashboard/agencies", headers={**PSK_HEADERS, "Grpc-Timeout": "soon"})
    assert bad.status_code == 400
    assert "Grpc-Timeout" in bad.json()["message"]


# -- operations endpoints -----------------------------------------------------------------


def test_healthz_readyz_and_metrics(live_http: LiveEngine, http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").status_code == 200
    http.get("/v1/internal/dashboard/agencies", headers=PSK_HEADERS)
    http.get("/v1/internal/dashboard/agencies")
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert (
        'engine_rpc_requests_total{code="OK",method="/workflow_engine.v1.RegistryService/ListAgencies",'
        'transport="rest"} 1.0' in text
    )
    assert "engine_rpc_duration_seconds_bucket" in text
    assert "engine_auth_failures_total 1.0" in text
    assert "engine_rate_limit_rejections_total 0.0" in text
    assert 'engine_http_requests_total{route="GET /v1/internal/dashboard/agencies",status="401"} 1.0' in text
    assert "engine_http_request_duration_seconds_bucket" in text


def test_readyz_follows_the_database(
    live_http: LiveEngine, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable() -> float:
        raise ConnectionError("database down")

    monkeypatch.setattr(live_http.engine.database, "ping", unreachable)
    response = http.get("/readyz")
    assert response.status_code == 503
    assert http.get("/healthz").status_code == 200


def test_openapi_document_is_served(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert "/v1/internal/dashboard/register" in document["paths"]


def test_bad_metadata_headers_are_400_and_bad_request_ids_are_replaced(http: httpx.Client) -> None:
    weird_id = http.get("/v1/internal/dashboard/agencies", headers={**PSK_HEADERS, "X-Request-Id": "x" * 500})
    assert weird_id.status_code == 200
    assert weird_id.headers["x-request-id"].startswith("req_")
    binary = http.get(
        "/v1/internal/dashboard/agencies", headers={**PSK_HEADERS, "Grpc-Metadata-Thing-Bin": "AAAA"}
    )
    assert binary.status_code == 400
    assert "Grpc-Metadata-Thing-Bin".lower() in binary.json()["message"]
    non_ascii = http.get(
        "/v1/internal/dashboard/agencies",
        headers=[*PSK_HEADERS.items(), ("Grpc-Metadata-Note", "caf\u00e9".encode())],
    )
    assert non_ascii.status_code == 400


def test_client_cannot_pose_as_the_gateway(http: httpx.Client) -> None:
    # Grpc-Metadata-X-Engine-Gateway is dropped, so the call is still attributed to REST via the real gateway.
    response = http.get(
        "/v1/internal/dashboard/agencies",
        headers={
            **PSK_HEADERS,
            "Grpc-Metadata-X-Engine-Gateway": "forged",
            "Grpc-Metadata-X-Forwarded-For": "ipv4:1.2.3.4:1",
        },
    )
    assert response.status_code == 200
