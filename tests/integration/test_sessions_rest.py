"""The sessions API over REST (the seed's routes), on SQLite and PostgreSQL, with the sandbox provider."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.constants import BACKENDS, PSK
from tests.support.live import LiveEngine
from tests.support.waiting import eventually

PSK_HEADERS = {"Authorization": f"PSK {PSK}"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SESSION_FIELDS = {
    "sessionId",
    "agencyId",
    "tenantId",
    "name",
    "provider",
    "status",
    "metadata",
    "createTime",
    "updateTime",
    "accountId",
}
MESSAGE_FIELDS = {
    "messageId",
    "conversationId",
    "sessionId",
    "agencyId",
    "tenantId",
    "direction",
    "from",
    "to",
    "text",
    "status",
    "createTime",
    "updateTime",
    "providerMessageId",
}
CONVERSATION_FIELDS = {
    "conversationId",
    "agencyId",
    "tenantId",
    "sessionId",
    "peer",
    "lastMessageTime",
    "lastMessageText",
    "messageCount",
}


class Dashboard:
    """A dashboard calling the REST API with its X-API-Key."""

    def __init__(self, http: httpx.Client, agency_id: str) -> None:
        response = http.post(
            "/v1/internal/dashboard/register",
            headers=PSK_HEADERS,
            json={
                "agencyId": agency_id,
                "dashboardName": f"Dashboard {agency_id}",
                # Nothing listens there: webhook deliveries fail at once.
                "dashboardUrl": "http://127.0.0.1:9/hooks",
                "webhookSecret": "very-long-secret-string-min-32-chars",
            },
        )
        assert response.status_code == 200, response.text
        self.http = http
        self.agency_id = agency_id
        self.headers = {"X-API-Key": response.json()["apiKey"]}

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(path, params=params, headers=self.headers)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post(path, json={} if body is None else body, headers=self.headers)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path, headers=self.headers)

    def ok(self, response: httpx.Response) -> Any:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()

    def create(self, tenant_id: str = "t1", **fields: Any) -> dict[str, Any]:
        body = self.ok(self.post("/api/v1/sessions", {"tenantId": tenant_id, **fields}))
        assert set(body) == {"session"}
        session: dict[str, Any] = body["session"]
        assert set(session) == SESSION_FIELDS
        return session

    def session(self, session_id: str) -> dict[str, Any]:
        session: dict[str, Any] = self.ok(self.get(f"/api/v1/sessions/{session_id}"))["session"]
        return session

    def act(self, session_id: str, action: str) -> dict[str, Any]:
        session: dict[str, Any] = self.ok(self.post(f"/api/v1/sessions/{session_id}/{action}"))["session"]
        return session

    def wait_status(self, session_id: str, status: str) -> dict[str, Any]:
        return eventually(
            lambda: self.session(session_id),
            lambda s: s["status"] == f"SESSION_STATUS_{status}",
            f"session {session_id} to be {status}",
        )

    def working(self, tenant_id: str = "t1") -> dict[str, Any]:
        session_id = self.create(tenant_id)["sessionId"]
        self.act(session_id, "start")
        return self.wait_status(session_id, "WORKING")

    def messages(self, conversation_id: str, **params: str) -> dict[str, Any]:
        body: dict[str, Any] = self.ok(
            self.get(f"/api/v1/conversations/{conversation_id}/messages", **params)
        )
        assert set(body) == {"messages", "nextPageToken"}
        return body


def error_of(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """The JSON error body of a refused call, checked against the expected HTTP status and gRPC code."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code, body
    return body


def violated_fields(response: httpx.Response) -> set[str]:
    body = error_of(response, 400, 3)
    (detail,) = [d for d in body["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    return {v["field"] for v in detail["fieldViolations"]}


@pytest.fixture
def http(live_http: LiveEngine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_http.base_url, timeout=10) as client:
        yield client


# -- the seed ---------------------------------------------------------------------------------


def test_seed_list_sessions_by_agency_and_tenant(http: httpx.Client) -> None:
    a = Dashboard(http, "agency_abc123")
    created = a.create("tenant_xyz789", name="Front desk", metadata={"branch": "north"})
    a.create("tenant_other")

    assert created["agencyId"] == "agency_abc123"
    assert created["tenantId"] == "tenant_xyz789"
    assert created["name"] == "Front desk"
    assert created["metadata"] == {"branch": "north"}
    assert created["provider"] == "sandbox"
    assert created["status"] == "SESSION_STATUS_STOPPED"
    assert created["accountId"] == ""  # unpopulated fields are emitted
    assert created["sessionId"].startswith("ses_")
    assert created["createTime"].endswith("Z")

    listed = a.ok(a.get("/api/v1/sessions", agencyId="agency_abc123", tenantId="tenant_xyz789"))
    assert set(listed) == {"sessions", "nextPageToken"}
    assert listed == {"sessions": [created], "nextPageToken": ""}
    assert len(a.ok(a.get("/api/v1/sessions"))["sessions"]) == 2
    assert a.ok(a.get("/api/v1/sessions", tenantId="nobody"))["sessions"] == []
    by_status = a.ok(a.get("/api/v1/sessions", tenantId="tenant_xyz789", status="SESSION_STATUS_STOPPED"))
    assert by_status["sessions"] == [created]
    assert a.ok(a.get("/api/v1/sessions", status="SESSION_STATUS_WORKING"))["sessions"] == []


def test_snake_case_bodies_and_query_parameters_are_accepted(http: httpx.Client) -> None:
    a = Dashboard(http, "agency-a")
    session = a.ok(a.post("/api/v1/sessions", {"tenant_id": "t9"}))["session"]
    assert session["tenantId"] == "t9"
    listed = a.ok(a.get("/api/v1/sessions", tenant_id="t9", page_size="1"))
    assert [s["sessionId"] for s in listed["sessions"]] == [session["sessionId"]]


# -- lifecycle ----------------------------------------------------------------------------------


def test_lifecycle_over_rest(http: httpx.Client) -> None:
    a = Dashboard(http, "agency-a")
    sid = a.create("t1")["sessionId"]

    assert a.act(sid, "start")["status"] == "SESSION_STATUS_STARTING"
    account = a.wait_status(sid, "WORKING")["accountId"]
    assert account

    stopped = a.act(sid, "stop")
    assert (stopped["status"], stopped["accountId"]) == ("SESSION_STATUS_STOPPED", account)
    a.act(sid, "start")
    assert a.wait_status(sid, "WORKING")["accountId"] == account  # still paired

    logged_out = a.act(sid, "logout")
    assert (logged_out["status"], logged_out["accountId"]) == ("SESSION_STATUS_STOPPED", "")
    a.act(sid, "start")
    assert a.wait_status(sid, "WORKING")["accountId"] not in ("", account)

    deleted = a.ok(a.delete(f"/api/v1/sessions/{sid}"))
    assert set(deleted) == {"session"} and deleted["session"]["sessionId"] == sid
    error_of(a.get(f"/api/v1/sessions/{sid}"), 404, 5)
    error_of(a.delete(f"/api/v1/sessions/{sid}"), 404, 5)
    assert a.ok(a.get("/api/v1/sessions"))["sessions"] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_qr_code_over_rest(start_engine: Callable[..., LiveEngine], backend: str) -> None:
    live = start_engine(backend, http=True, sandbox_pairing_seconds=30.0)
    with httpx.Client(base_url=live.base_url, timeout=10) as http:
        a = Dashboard(http, "agency-a")
        sid = a.create("t1")["sessionId"]
        refused = error_of(a.get(f"/api/v1/sessions/{sid}/qr"), 400, 9)
        assert "STOPPED" in refused["message"]

        a.act(sid, "start")
        a.wait_status(sid, "SCAN_QR_CODE")
        qr = a.ok(a.get(f"/api/v1/sessions/{sid}/qr"))
        assert set(qr) == {"value", "png", "mimeType"}
        assert qr["value"]
        assert qr["mimeType"] == "image/png"
        assert base64.b64decode(qr["png"], validate=True).startswith(PNG_SIGNATURE)

        # A bad transition is 400 FAILED_PRECONDITION naming the status.
        refused = error_of(a.post(f"/api/v1/sessions/{sid}/start"), 400, 9)
        assert "SCAN_QR_CODE" in refused["message"]
        refused = error_of(
            a.post(f"/api/v1/sessions/{sid}/messages", {"to": "15550002222", "text": "x"}), 400, 9
        )
        assert "SCAN_QR_CODE" in refused["message"]


# -- messages and conversations -------------------------------------------------------------------


def test_messages_and_conversations_over_rest(http: httpx.Client) -> None:
    a = Dashboard(http, "agency-a")
    session = a.working("t1")
    sid = session["sessionId"]

    sent = a.ok(a.post(f"/api/v1/sessions/{sid}/messages", {"to": "+1 555 000 2222", "text": "Hello"}))
    assert set(sent) == {"message"}
    message = sent["message"]
    assert set(message) == MESSAGE_FIELDS
    assert message["direction"] == "MESSAGE_DIRECTION_OUTBOUND"
    assert message["status"] == "MESSAGE_STATUS_PENDING"
    assert message["to"] == "15550002222@c.us"
    assert message["from"] == f"{session['accountId']}@c.us"
    assert message["providerMessageId"]
    cid = message["conversationId"]
    eventually(
        lambda: a.messages(cid)["messages"],
        lambda ms: [m["status"] for m in ms] == ["MESSAGE_STATUS_READ"],
        "the message to be read",
    )

    time.sleep(0.002)  # a later millisecond: the inbound message sorts after the sent one
    received = a.ok(
        a.post(f"/api/v1/sessions/{sid}/simulate-inbound", {"from": "15550002222", "text": "Hi!"})
    )
    inbound = received["message"]
    assert set(inbound) == MESSAGE_FIELDS
    assert inbound["direction"] == "MESSAGE_DIRECTION_INBOUND"
    assert inbound["status"] == "MESSAGE_STATUS_RECEIVED"
    assert inbound["from"] == "15550002222@c.us"
    assert inbound["conversationId"] == cid

    listed = a.ok(a.get("/api/v1/conversations", tenantId="t1"))
    assert set(listed) == {"conversations", "nextPageToken"}
    (conversation,) = listed["conversations"]
    assert set(conversation) == CONVERSATION_FIELDS
    assert conversation["conversationId"] == cid
    assert conversation["peer"] == "15550002222@c.us"
    assert conversation["messageCount"] == "2"  # int64 is a JSON string
    assert conversation["lastMessageText"] == "Hi!"
    assert a.ok(a.get("/api/v1/conversations", sessionId=sid))["conversations"] == [conversation]
    assert a.ok(a.get("/api/v1/conversations", tenantId="t2"))["conversations"] == []

    first = a.messages(cid, pageSize="1")
    assert [m["messageId"] for m in first["messages"]] == [inbound["messageId"]]
    assert first["nextPageToken"]
    second = a.messages(cid, pageSize="1", pageToken=first["nextPageToken"])
    assert [m["messageId"] for m in second["messages"]] == [message["messageId"]]
    assert second["nextPageToken"] == ""


def test_delete_keeps_the_history_over_rest(http: httpx.Client) -> None:
    a = Dashboard(http, "agency-a")
    sid = a.working()["sessionId"]
    received = a.ok(a.post(f"/api/v1/sessions/{sid}/simulate-inbound", {"from": "15550002222", "text": "Hi"}))
    cid = received["message"]["conversationId"]

    a.ok(a.delete(f"/api/v1/sessions/{sid}"))

    error_of(a.get(f"/api/v1/sessions/{sid}"), 404, 5)
    error_of(a.post(f"/api/v1/sessions/{sid}/messages", {"to": "15550002222", "text": "x"}), 404, 5)
    conversations = a.ok(a.get("/api/v1/conversations", sessionId=sid))["conversations"]
    assert [c["conversationId"] for c in conversations] == [cid]
    assert [m["text"] for m in a.messages(cid)["messages"]] == ["Hi"]


# -- errors -------------------------------------------------------------------------------------


def test_status_codes(http: httpx.Client) -> None:
    a = Dashboard(http, "agency-a")
    b = Dashboard(http, "agency-b")
    session = a.working()
    sid = session["sessionId"]
    cid = a.ok(a.post(f"/api/v1/sessions/{sid}/simulate-inbound", {"from": "15550002222", "text": "Hi"}))[
        "message"
    ]["conversationId"]

    # Another agency's objects do not exist for b.
    for response in (
        b.get(f"/api/v1/sessions/{sid}"),
        b.get(f"/api/v1/sessions/{sid}/qr"),
        b.post(f"/api/v1/sessions/{sid}/stop"),
        b.post(f"/api/v1/sessions/{sid}/messages", {"to": "15550002222", "text": "x"}),
        b.delete(f"/api/v1/sessions/{sid}"),
        b.get(f"/api/v1/conversations/{cid}/messages"),
    ):
        error_of(response, 404, 5)
    # Naming another agency is refused outright.
    for response in (
        b.get("/api/v1/sessions", agencyId="agency-a"),
        b.get(f"/api/v1/sessions/{sid}", agencyId="agency-a"),
        b.post(f"/api/v1/sessions/{sid}/stop", {"agencyId": "agency-a"}),
        b.post("/api/v1/sessions", {"agencyId": "agency-a", "tenantId": "t1"}),
        b.get("/api/v1/conversations", agencyId="agency-a"),
    ):
        body = error_of(response, 403, 7)
        assert body["details"][0]["reason"] == "AGENCY_MISMATCH"
    assert a.session(sid) == session  # nothing b tried changed anything

    # Wrong credentials.
    assert http.get("/api/v1/sessions").status_code == 401
    assert http.get("/api/v1/sessions", headers={"X-API-Key": "wfe_not_a_key"}).status_code == 401

    # A bad transition is 400 FAILED_PRECONDITION naming the status.
    refused = error_of(a.post(f"/api/v1/sessions/{sid}/start"), 400, 9)
    assert "WORKING" in refused["message"]
    stopped = a.create("t1")["sessionId"]
    for action in ("stop", "logout"):
        assert "STOPPED" in error_of(a.post(f"/api/v1/sessions/{stopped}/{action}"), 400, 9)["message"]

    # Invalid input is 400 INVALID_ARGUMENT naming the camelCase fields.
    assert violated_fields(a.post("/api/v1/sessions", {})) == {"tenantId"}
    assert violated_fields(
        a.post("/api/v1/sessions", {"tenantId": "t1", "provider": "pigeon", "metadata": {"a b": "c"}})
    ) == {"provider", "metadata"}
    assert violated_fields(a.post(f"/api/v1/sessions/{sid}/messages", {"to": "nobody", "text": ""})) == {
        "to",
        "text",
    }
    assert violated_fields(
        a.post(f"/api/v1/sessions/{sid}/messages", {"to": "15550002222", "text": "x" * 4097})
    ) == {"text"}
    assert violated_fields(
        a.post(f"/api/v1/sessions/{sid}/simulate-inbound", {"from": "?", "text": "x"})
    ) == {"from"}
    assert violated_fields(a.get("/api/v1/sessions", pageToken="not-a-token!")) == {"pageToken"}
    assert violated_fields(a.get("/api/v1/conversations", pageToken="not-a-token!")) == {"pageToken"}
    assert violated_fields(a.get(f"/api/v1/conversations/{cid}/messages", pageSize="-1")) == {"pageSize"}
    # Bodies the transcoder cannot read are 400 too.
    error_of(a.post("/api/v1/sessions", {"tenantId": "t1", "surprise": 1}), 400, 3)
    error_of(a.get("/api/v1/sessions", status="SESSION_STATUS_SLEEPING"), 400, 3)


def test_undefined_status_number_is_400(http: httpx.Client) -> None:
    a = Dashboard(http, "agency-a")
    assert violated_fields(a.get("/api/v1/sessions", status="99")) == {"status"}
