"""The admin API over REST (the seed's `/api/v1/admin/...` paths), on SQLite and PostgreSQL.

The same essentials as tests/integration/test_admin.py, seen as a browser or curl sees them:
JSON in camelCase, enums by name, int64 as strings, and grpc-gateway's status codes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from engine import __version__
from engine.sessions.providers.sandbox import SIGNATURE_HEADER, SandboxProvider
from tests.support.constants import BACKENDS, MASTER_KEY, PSK, WEBHOOK_SECRET
from tests.support.live import LiveEngine
from tests.support.receiver import WebhookReceiver
from tests.support.waiting import eventually

MASTER = {"X-API-Key": MASTER_KEY}
PSK_HEADERS = {"Authorization": f"PSK {PSK}"}
NOWHERE = "https://dashboard.example.com/hooks"

#: Every admin route: method, path (with {agencyId}), body.
ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/admin/dashboards", None),
    ("GET", "/api/v1/admin/dashboards/{agencyId}", None),
    ("GET", "/api/v1/admin/dashboards/{agencyId}/sessions", None),
    ("POST", "/api/v1/admin/dashboards/{agencyId}/suspend", {"reason": "checking"}),
    ("POST", "/api/v1/admin/dashboards/{agencyId}/activate", {}),
    ("PUT", "/api/v1/admin/dashboards/{agencyId}/rate-limit", {"rateLimit": {}}),
    ("POST", "/api/v1/admin/dashboards/{agencyId}/deliveries/recover", {}),
    ("GET", "/api/v1/admin/health", None),
    ("GET", "/api/v1/admin/sessions", None),
    ("GET", "/api/v1/admin/deliveries", None),
]


# -- helpers ------------------------------------------------------------------------------------


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    return response.json()


@pytest.fixture
def http(live_http: LiveEngine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_http.base_url, timeout=10) as client:
        yield client


def register(http: httpx.Client, agency_id: str, url: str = NOWHERE) -> dict[str, str]:
    """Register a dashboard over REST; the headers that present its API key."""
    body = ok(
        http.post(
            "/v1/internal/dashboard/register",
            headers=PSK_HEADERS,
            json={
                "agencyId": agency_id,
                "dashboardName": f"Dashboard {agency_id}",
                "dashboardUrl": url,
                "webhookSecret": WEBHOOK_SECRET,
            },
        )
    )
    return {"X-API-Key": body["apiKey"]}


def create_session(http: httpx.Client, key: dict[str, str], tenant_id: str) -> dict[str, Any]:
    session: dict[str, Any] = ok(
        http.post("/api/v1/sessions", headers=key, json={"tenantId": tenant_id, "name": "Front desk"})
    )["session"]
    return session


def working_session(http: httpx.Client, key: dict[str, str], tenant_id: str) -> dict[str, Any]:
    session = create_session(http, key, tenant_id)
    ok(http.post(f"/api/v1/sessions/{session['sessionId']}/start", headers=key, json={}))
    return eventually(
        lambda: ok(http.get(f"/api/v1/sessions/{session['sessionId']}", headers=key))["session"],
        lambda s: s["status"] == "SESSION_STATUS_WORKING",
        "a WORKING session",
    )


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def error_reason(response: httpx.Response) -> str:
    for detail in response.json()["details"]:
        if detail.get("@type", "").endswith("google.rpc.ErrorInfo"):
            return str(detail["reason"])
    return ""


def violated_fields(response: httpx.Response) -> set[str]:
    assert response.status_code == 400, response.text
    fields: set[str] = set()
    for detail in response.json()["details"]:
        if detail.get("@type", "").endswith("google.rpc.BadRequest"):
            fields.update(v["field"] for v in detail["fieldViolations"])
    return fields


# -- the seed's admin paths -----------------------------------------------------------------------


def test_seed_admin_paths(http: httpx.Client) -> None:
    key = register(http, "agency_abc123")
    register(http, "agency_other")
    stopped = create_session(http, key, "tenant_xyz789")
    working = working_session(http, key, "tenant_xyz789")

    listed = ok(http.get("/api/v1/admin/dashboards", headers=MASTER))
    assert listed["nextPageToken"] == ""
    assert [d["agencyId"] for d in listed["dashboards"]] == ["agency_abc123", "agency_other"]
    mine = listed["dashboards"][0]
    assert {
        "agencyId",
        "dashboardName",
        "dashboardUrl",
        "status",
        "createTime",
        "sessionCounts",
        "deliveries24h",
    } <= set(mine)
    assert mine["status"] == "DASHBOARD_STATUS_ACTIVE"
    assert mine["dashboardUrl"] == NOWHERE
    assert mine["sessionCounts"] == {"stopped": 1, "starting": 0, "scanQrCode": 0, "working": 1, "failed": 0}
    assert set(mine["deliveries24h"]) == {"succeeded", "failed", "pending", "held"}

    def ids(**params: Any) -> list[str]:
        return [
            d["agencyId"]
            for d in ok(http.get("/api/v1/admin/dashboards", params=params, headers=MASTER))["dashboards"]
        ]

    assert ids(query="ABC123") == ["agency_abc123"]
    assert ids(query="dashboard.EXAMPLE") == ["agency_abc123", "agency_other"]
    assert ids(query="%") == []
    assert ids(status="DASHBOARD_STATUS_SUSPENDED") == []
    first = ok(http.get("/api/v1/admin/dashboards", params={"pageSize": 1}, headers=MASTER))
    assert [d["agencyId"] for d in first["dashboards"]] == ["agency_abc123"] and first["nextPageToken"]
    second = ok(
        http.get(
            "/api/v1/admin/dashboards",
            params={"pageSize": 1, "pageToken": first["nextPageToken"]},
            headers=MASTER,
        )
    )
    assert [d["agencyId"] for d in second["dashboards"]] == ["agency_other"] and second["nextPageToken"] == ""

    shown = http.get("/api/v1/admin/dashboards/agency_abc123", headers=MASTER)
    dashboard = ok(shown)["dashboard"]
    assert dashboard["summary"]["agencyId"] == "agency_abc123"
    assert dashboard["summary"]["sessionCounts"]["working"] == 1
    assert dashboard["config"]["webhookSecretSet"] is True
    assert dashboard["config"]["webhookSecretHint"] == WEBHOOK_SECRET[-4:]
    assert "webhookSecret" not in dashboard["config"]
    (api_key,) = dashboard["apiKeys"]
    assert key["X-API-Key"].startswith(api_key["prefix"]) and len(api_key["prefix"]) < len(key["X-API-Key"])
    assert dashboard["statusHistory"] == []
    assert key["X-API-Key"] not in shown.text and WEBHOOK_SECRET not in shown.text

    sessions = ok(http.get("/api/v1/admin/dashboards/agency_abc123/sessions", headers=MASTER))["sessions"]
    assert {s["sessionId"] for s in sessions} == {stopped["sessionId"], working["sessionId"]}
    assert {(s["agencyId"], s["tenantId"]) for s in sessions} == {("agency_abc123", "tenant_xyz789")}
    only_working = ok(
        http.get(
            "/api/v1/admin/dashboards/agency_abc123/sessions",
            params={"status": "SESSION_STATUS_WORKING"},
            headers=MASTER,
        )
    )["sessions"]
    assert [s["sessionId"] for s in only_working] == [working["sessionId"]]

    before = datetime.now(UTC)
    suspended = ok(
        http.post(
            "/api/v1/admin/dashboards/agency_abc123/suspend",
            headers=MASTER,
            json={"reason": "unpaid invoice"},
        )
    )["dashboard"]
    assert suspended["summary"]["status"] == "DASHBOARD_STATUS_SUSPENDED"
    (change,) = suspended["statusHistory"]
    assert {k: change[k] for k in ("status", "actor", "reason")} == {
        "status": "DASHBOARD_STATUS_SUSPENDED",
        "actor": "admin",
        "reason": "unpaid invoice",
    }
    changed = datetime.fromisoformat(change["changeTime"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= changed <= datetime.now(UTC)
    assert ids(status="DASHBOARD_STATUS_SUSPENDED") == ["agency_abc123"]

    refused = http.get("/api/v1/sessions", params={"tenantId": "tenant_xyz789"}, headers=key)
    assert refused.status_code == 403
    assert error_reason(refused) == "DASHBOARD_SUSPENDED"
    twice = http.post(
        "/api/v1/admin/dashboards/agency_abc123/suspend", headers=MASTER, json={"reason": "again"}
    )
    assert twice.status_code == 400
    assert twice.json()["code"] == 9  # FAILED_PRECONDITION

    activated = ok(http.post("/api/v1/admin/dashboards/agency_abc123/activate", headers=MASTER, json={}))[
        "dashboard"
    ]
    assert activated["summary"]["status"] == "DASHBOARD_STATUS_ACTIVE"
    assert [c["status"] for c in activated["statusHistory"]] == [
        "DASHBOARD_STATUS_ACTIVE",
        "DASHBOARD_STATUS_SUSPENDED",
    ]
    assert activated["statusHistory"][0]["actor"] == "admin"
    ok(http.get("/api/v1/sessions", params={"tenantId": "tenant_xyz789"}, headers=key))
    again = http.post("/api/v1/admin/dashboards/agency_abc123/activate", headers=MASTER, json={})
    assert again.status_code == 400 and again.json()["code"] == 9


def test_admin_sessions_across_agencies(http: httpx.Client) -> None:
    key_a = register(http, "agency-a")
    key_b = register(http, "agency-b")
    idle_a = create_session(http, key_a, "t1")
    working_a = working_session(http, key_a, "t2")
    working_b = working_session(http, key_b, "t1")

    def listed(**params: Any) -> list[dict[str, Any]]:
        sessions: list[dict[str, Any]] = ok(
            http.get("/api/v1/admin/sessions", params=params, headers=MASTER)
        )["sessions"]
        return sessions

    assert [s["sessionId"] for s in listed(agencyId="agency-a", status="SESSION_STATUS_WORKING")] == [
        working_a["sessionId"]
    ]
    assert {s["sessionId"] for s in listed(status="SESSION_STATUS_WORKING")} == {
        working_a["sessionId"],
        working_b["sessionId"],
    }
    everything = listed()
    assert {s["sessionId"]: (s["agencyId"], s["tenantId"]) for s in everything} == {
        idle_a["sessionId"]: ("agency-a", "t1"),
        working_a["sessionId"]: ("agency-a", "t2"),
        working_b["sessionId"]: ("agency-b", "t1"),
    }
    assert {s["sessionId"] for s in listed(tenantId="t1")} == {idle_a["sessionId"], working_b["sessionId"]}
    assert len(listed(provider="sandbox")) == 3
    assert listed(provider="waha") == []

    first = ok(http.get("/api/v1/admin/sessions", params={"pageSize": 2}, headers=MASTER))
    rest = ok(
        http.get(
            "/api/v1/admin/sessions",
            params={"pageSize": 2, "pageToken": first["nextPageToken"]},
            headers=MASTER,
        )
    )
    assert len(first["sessions"]) == 2 and len(rest["sessions"]) == 1 and rest["nextPageToken"] == ""
    assert [s["sessionId"] for s in first["sessions"] + rest["sessions"]] == [
        s["sessionId"] for s in everything
    ]

    unknown = http.get("/api/v1/admin/sessions", params={"agencyId": "nobody"}, headers=MASTER)
    assert unknown.status_code == 404


def test_admin_health_over_rest(live_http: LiveEngine, http: httpx.Client) -> None:
    first = ok(http.get("/api/v1/admin/health", headers=MASTER))
    assert first["databaseOk"] is True
    assert first["databaseLatencyMs"] > 0
    assert first["version"] == __version__
    assert first["providerStatus"] == {"sandbox": "ok"}
    # int64 fields are JSON strings (proto3 JSON mapping); every field is emitted.
    assert first["outbox"] == {"due": "0", "retrying": "0", "held": "0", "failed": "0"}
    assert int(first["uptimeSeconds"]) >= 0
    assert first["deliverySuccessRate5m"] == 1
    for name in ("authFailures", "rateLimitRejections", "unroutableProviderEvents"):
        assert isinstance(first[name], str)

    assert http.get("/api/v1/admin/health", headers={"X-API-Key": "wfe_" + "z" * 40}).status_code == 401
    assert (
        http.get("/v1/internal/dashboard/agencies", headers={"Authorization": "PSK wrong"}).status_code == 401
    )
    sandbox = live_http.engine.providers["sandbox"]
    assert isinstance(sandbox, SandboxProvider)
    event = {"id": f"evt_{uuid.uuid4().hex}", "event": "session.status", "session": "nobody"}
    body = json.dumps({**event, "payload": {"status": "WORKING"}}).encode()
    unroutable = http.post(
        "/v1/webhooks/sandbox",
        content=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sandbox.sign(body)},
    )
    assert unroutable.status_code == 202, unroutable.text

    now = ok(http.get("/api/v1/admin/health", headers=MASTER))
    assert int(now["authFailures"]) - int(first["authFailures"]) == 2
    assert int(now["unroutableProviderEvents"]) - int(first["unroutableProviderEvents"]) == 1
    assert now["rateLimitRejections"] == first["rateLimitRejections"]


def test_rate_limit_over_rest(http: httpx.Client) -> None:
    key = register(http, "agency-a")
    other = register(http, "agency-b")
    ok(http.get("/v1/internal/dashboard/config", headers=key))
    shown = ok(
        http.put(
            "/api/v1/admin/dashboards/agency-a/rate-limit",
            headers=MASTER,
            json={"rateLimit": {"requestsPerSecond": 0.5, "burst": 2}},
        )
    )["dashboard"]
    assert shown["rateLimit"] == {"requestsPerSecond": 0.5, "burst": 2}
    assert (
        ok(http.get("/api/v1/admin/dashboards/agency-a", headers=MASTER))["dashboard"]["rateLimit"]
        == shown["rateLimit"]
    )
    codes = [http.get("/v1/internal/dashboard/config", headers=key) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert int(codes[-1].headers["retry-after"]) >= 1
    assert all(http.get("/v1/internal/dashboard/config", headers=other).status_code == 200 for _ in range(4))

    bad = http.put(
        "/api/v1/admin/dashboards/agency-a/rate-limit",
        headers=MASTER,
        json={"rateLimit": {"requestsPerSecond": -1, "burst": 2}},
    )
    assert violated_fields(bad) == {"rateLimit.requestsPerSecond"}
    assert bad.json()["code"] == 3  # INVALID_ARGUMENT
    unknown = http.put(
        "/api/v1/admin/dashboards/nobody/rate-limit", headers=MASTER, json={"rateLimit": {"burst": 1}}
    )
    assert unknown.status_code == 404
    # The limit in force is unchanged by the refused attempts.
    assert (
        ok(http.get("/api/v1/admin/dashboards/agency-a", headers=MASTER))["dashboard"]["rateLimit"]
        == shown["rateLimit"]
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_deliveries_and_recovery_over_rest(
    backend: str, start_engine: Callable[..., LiveEngine]
) -> None:
    live = start_engine(backend, http=True, webhook_retry_schedule=())
    with (
        WebhookReceiver() as receiver_a,
        WebhookReceiver() as receiver_b,
        httpx.Client(base_url=live.base_url, timeout=10) as http,
    ):
        key_a = register(http, "agency-a", receiver_a.url)
        key_b = register(http, "agency-b", receiver_b.url)
        receiver_a.respond(500)
        receiver_b.respond(500)
        sent_a = ok(http.post("/api/v1/webhooks/test", headers=key_a, json={"note": "a"}))["delivery"]
        sent_b = ok(http.post("/api/v1/webhooks/test", headers=key_b, json={"note": "b"}))["delivery"]

        def failed(**params: Any) -> set[tuple[str, str]]:
            found = ok(
                http.get(
                    "/api/v1/admin/deliveries",
                    params={"status": "DELIVERY_STATUS_FAILED", **params},
                    headers=MASTER,
                )
            )["deliveries"]
            assert all(d["status"] == "DELIVERY_STATUS_FAILED" for d in found)
            return {(d["agencyId"], d["deliveryId"]) for d in found}

        both = {("agency-a", sent_a["deliveryId"]), ("agency-b", sent_b["deliveryId"])}
        eventually(failed, lambda found: found == both, "both deliveries FAILED")
        assert failed(agencyId="agency-a") == {("agency-a", sent_a["deliveryId"])}
        assert failed(eventType="session.status") == set()
        assert ok(http.get("/api/v1/admin/health", headers=MASTER))["outbox"]["failed"] == "2"

        receiver_a.respond(200)
        receiver_b.respond(200)
        recover_a = "/api/v1/admin/dashboards/agency-a/deliveries/recover"
        later = rfc3339(datetime.now(UTC) + timedelta(hours=1))
        assert ok(http.post(recover_a, headers=MASTER, json={"since": later})) == {"recovered": 0}
        assert ok(http.post(recover_a, headers=MASTER, json={"since": sent_a["createTime"]})) == {
            "recovered": 1
        }
        eventually(failed, lambda found: found == {("agency-b", sent_b["deliveryId"])}, "agency-a recovered")
        receiver_a.wait_for(2)
        eventually(
            lambda: [
                d["deliveryId"]
                for d in ok(
                    http.get(
                        "/api/v1/admin/deliveries",
                        params={"status": "DELIVERY_STATUS_SUCCEEDED"},
                        headers=MASTER,
                    )
                )["deliveries"]
            ],
            lambda found: found == [sent_a["deliveryId"]],
            "agency-a's delivery SUCCEEDED",
        )
        assert len(receiver_b.requests) == 1

        assert ok(
            http.post("/api/v1/admin/dashboards/agency-b/deliveries/recover", headers=MASTER, json={})
        ) == {"recovered": 1}
        eventually(failed, lambda found: found == set(), "nothing FAILED")
        receiver_b.wait_for(2)
        missing = http.post("/api/v1/admin/dashboards/nobody/deliveries/recover", headers=MASTER, json={})
        assert missing.status_code == 404


# -- status codes ---------------------------------------------------------------------------------


def test_admin_routes_are_the_seeds(live_http: LiveEngine, http: httpx.Client) -> None:
    document = ok(http.get("/openapi.json"))
    served = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/api/v1/admin")
        for method in operations
    }
    assert served == {(method, path) for method, path, _ in ADMIN_ROUTES}


def test_admin_status_codes(http: httpx.Client) -> None:
    key = register(http, "agency-a")

    def send(
        method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str], agency: str = "agency-a"
    ) -> httpx.Response:
        return http.request(method, path.replace("{agencyId}", agency), json=body, headers=headers)

    for method, path, body in ADMIN_ROUTES:
        with_key = send(method, path, body, key)
        assert with_key.status_code == 403, (method, path, with_key.text)
        assert error_reason(with_key) == "CREDENTIAL_NOT_ALLOWED"
        assert send(method, path, body, PSK_HEADERS).status_code == 403, (method, path)
        anonymous = send(method, path, body, {})
        assert anonymous.status_code == 401, (method, path)
        assert "www-authenticate" in anonymous.headers
        assert send(method, path, body, {"X-API-Key": "not-the-master-key"}).status_code == 401, (
            method,
            path,
        )
        if "{agencyId}" in path:
            assert send(method, path, body, MASTER, agency="nobody").status_code == 404, (method, path)
    # Nothing the refused calls asked for happened.
    shown = ok(http.get("/api/v1/admin/dashboards/agency-a", headers=MASTER))["dashboard"]
    assert shown["summary"]["status"] == "DASHBOARD_STATUS_ACTIVE" and shown["statusHistory"] == []

    # The master key, by X-API-Key or as a bearer token, passes every route.
    for headers in (MASTER, {"Authorization": f"Bearer {MASTER_KEY}"}):
        for method, path, body in ADMIN_ROUTES:
            response = send(method, path, body, headers)
            assert response.status_code == 200, (method, path, response.text)

    assert http.get("/api/v1/admin/dashboards/nobody", headers=MASTER).json()["code"] == 5  # NOT_FOUND
    suspend = "/api/v1/admin/dashboards/agency-a/suspend"
    ok(http.post(suspend, headers=MASTER, json={"reason": "first"}))
    twice = http.post(suspend, headers=MASTER, json={"reason": "second"})
    assert twice.status_code == 400 and twice.json()["code"] == 9
    ok(http.post("/api/v1/admin/dashboards/agency-a/activate", headers=MASTER, json={}))
    assert violated_fields(http.post(suspend, headers=MASTER, json={"reason": "x" * 501})) == {"reason"}
