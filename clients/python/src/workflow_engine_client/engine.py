"""EngineClient: the SessionsService and the dashboard side of the WebhookService."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, NamedTuple, TypeAlias, cast

from workflow_engine.v1 import common_pb2, sessions_pb2, webhook_pb2
from workflow_engine_client._transport import DEFAULT_TIMEOUT, Transport, enum_value, paginate
from workflow_engine_client.retry import RetryConfig

_SESSIONS = sessions_pb2.DESCRIPTOR.services_by_name["SessionsService"]
_WEBHOOKS = webhook_pb2.DESCRIPTOR.services_by_name["WebhookService"]

#: A session status: its number (`common_pb2.SESSION_STATUS_WORKING`) or name (`"WORKING"`).
SessionStatusLike: TypeAlias = int | str
#: A delivery status: its number (`webhook_pb2.DELIVERY_STATUS_FAILED`) or name (`"FAILED"`).
DeliveryStatusLike: TypeAlias = int | str


def _path(service: Any, name: str) -> str:
    return f"/{service.full_name}/{service.methods_by_name[name].name}"


def session_status_name(status: int) -> str:
    """`WORKING` for SESSION_STATUS_WORKING, and so on."""
    return str(common_pb2.SessionStatus.Name(status)).removeprefix("SESSION_STATUS_")


class SessionQr(NamedTuple):
    """A session's pairing QR code: the raw value it encodes and the code as a PNG image."""

    value: str
    png: bytes


class EngineClient:
    """A dashboard's client of the engine, authenticated with its API key (`x-api-key`).

    `agency_id` may stay empty: the engine fills in the key's own agency. With the engine's
    master key, name the agency to act for. `tenant_id` is given per call; an empty one
    means any tenant of the agency (lists) or does not check the tenant (single resources).

    Every method returns the proto messages of `workflow_engine.v1` and raises an
    `EngineError` subclass on failure. Listing methods return iterators that fetch one page
    at a time (`page_size` per request); errors surface while iterating. Retries follow
    `retry` (see `RetryConfig`); `timeout` bounds each attempt, in seconds.
    """

    def __init__(
        self,
        target: str,
        api_key: str,
        agency_id: str = "",
        *,
        retry: RetryConfig | None = None,
        channel: Any | None = None,
        channel_credentials: Any | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self.agency_id = agency_id
        self._transport = Transport(
            target,
            (("x-api-key", api_key),),
            channel=channel,
            channel_credentials=channel_credentials,
            retry=retry or RetryConfig(),
            timeout=timeout,
        )

    def close(self) -> None:
        """Close the channel (unless it was passed in)."""
        self._transport.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- sessions ------------------------------------------------------------------------------

    def list_sessions(
        self,
        tenant_id: str = "",
        status: SessionStatusLike | None = None,
        *,
        page_size: int | None = None,
    ) -> Iterator[common_pb2.Session]:
        """ListSessions: the agency's sessions, newest first, optionally of one tenant and status
        (`common_pb2.SESSION_STATUS_WORKING`, `"WORKING"`, ...)."""
        status_number = cast(
            common_pb2.SessionStatus, enum_value(common_pb2.SessionStatus, status, "SESSION_STATUS_")
        )

        def fetch(token: str) -> sessions_pb2.ListSessionsResponse:
            return self._transport.call(
                _path(_SESSIONS, "ListSessions"),
                sessions_pb2.ListSessionsRequest(
                    agency_id=self.agency_id,
                    tenant_id=tenant_id,
                    status=status_number,
                    page_size=page_size or 0,
                    page_token=token,
                ),
                sessions_pb2.ListSessionsResponse,
                idempotent=True,
            )

        return paginate(fetch, lambda page: page.sessions)

    def create_session(
        self,
        tenant_id: str,
        name: str = "",
        provider: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> common_pb2.Session:
        """CreateSession: a new STOPPED session for `tenant_id` (provider: the engine's default)."""
        response = self._transport.call(
            _path(_SESSIONS, "CreateSession"),
            sessions_pb2.CreateSessionRequest(
                agency_id=self.agency_id,
                tenant_id=tenant_id,
                name=name,
                provider=provider,
                metadata=dict(metadata or {}),
            ),
            sessions_pb2.CreateSessionResponse,
            idempotent=False,
        )
        return response.session

    def get_session(self, session_id: str, tenant_id: str = "") -> common_pb2.Session:
        """GetSession: one session (NotFound if it is another agency's or tenant's)."""
        response = self._transport.call(
            _path(_SESSIONS, "GetSession"),
            sessions_pb2.GetSessionRequest(
                agency_id=self.agency_id, tenant_id=tenant_id, session_id=session_id
            ),
            sessions_pb2.GetSessionResponse,
            idempotent=True,
        )
        return response.session

    def start_session(self, session_id: str, tenant_id: str = "") -> common_pb2.Session:
        """StartSession: STOPPED/FAILED -> STARTING -> SCAN_QR_CODE -> WORKING."""
        response = self._transport.call(
            _path(_SESSIONS, "StartSession"),
            sessions_pb2.StartSessionRequest(
                agency_id=self.agency_id, tenant_id=tenant_id, session_id=session_id
            ),
            sessions_pb2.StartSessionResponse,
            idempotent=False,
        )
        return response.session

    def stop_session(self, session_id: str, tenant_id: str = "") -> common_pb2.Session:
        """StopSession: stop the session; it stays paired."""
        response = self._transport.call(
            _path(_SESSIONS, "StopSession"),
            sessions_pb2.StopSessionRequest(
                agency_id=self.agency_id, tenant_id=tenant_id, session_id=session_id
            ),
            sessions_pb2.StopSessionResponse,
            idempotent=False,
        )
        return response.session

    def logout_session(self, session_id: str, tenant_id: str = "") -> common_pb2.Session:
        """LogoutSession: log out of the WhatsApp account; it must be paired again."""
        response = self._transport.call(
            _path(_SESSIONS, "LogoutSession"),
            sessions_pb2.LogoutSessionRequest(
                agency_id=self.agency_id, tenant_id=tenant_id, session_id=session_id
            ),
            sessions_pb2.LogoutSessionResponse,
            idempotent=False,
        )
        return response.session

    def delete_session(self, session_id: str, tenant_id: str = "") -> common_pb2.Session:
        """DeleteSession: remove the session (its conversations and messages stay listable)."""
        response = self._transport.call(
            _path(_SESSIONS, "DeleteSession"),
            sessions_pb2.DeleteSessionRequest(
                agency_id=self.agency_id, tenant_id=tenant_id, session_id=session_id
            ),
            sessions_pb2.DeleteSessionResponse,
            idempotent=False,
        )
        return response.session

    def get_session_qr(self, session_id: str, tenant_id: str = "") -> SessionQr:
        """GetSessionQr: `(value, png)` of the pairing QR code, while the session is SCAN_QR_CODE."""
        response = self._transport.call(
            _path(_SESSIONS, "GetSessionQr"),
            sessions_pb2.GetSessionQrRequest(
                agency_id=self.agency_id, tenant_id=tenant_id, session_id=session_id
            ),
            sessions_pb2.GetSessionQrResponse,
            idempotent=True,
        )
        return SessionQr(response.value, response.png)

    def send_message(self, session_id: str, to: str, text: str, tenant_id: str = "") -> common_pb2.Message:
        """SendMessage: send `text` to `to` (a phone number or chat id) from a WORKING session.

        Not retried on UNAVAILABLE (unless `RetryConfig.retry_non_idempotent`): the engine
        stores the message before the provider sees it, so a retry could send it twice.
        """
        response = self._transport.call(
            _path(_SESSIONS, "SendMessage"),
            sessions_pb2.SendMessageRequest(
                agency_id=self.agency_id, tenant_id=tenant_id, session_id=session_id, to=to, text=text
            ),
            sessions_pb2.SendMessageResponse,
            idempotent=False,
        )
        return response.message

    def simulate_inbound_message(
        self, session_id: str, sender: str, text: str, tenant_id: str = ""
    ) -> common_pb2.Message:
        """SimulateInboundMessage: make a sandbox session receive `text` from `sender`."""
        request = sessions_pb2.SimulateInboundMessageRequest(
            agency_id=self.agency_id, tenant_id=tenant_id, session_id=session_id, text=text
        )
        setattr(request, "from", sender)  # `from` is a Python keyword
        response = self._transport.call(
            _path(_SESSIONS, "SimulateInboundMessage"),
            request,
            sessions_pb2.SimulateInboundMessageResponse,
            idempotent=False,
        )
        return response.message

    def list_conversations(
        self, tenant_id: str = "", session_id: str = "", *, page_size: int | None = None
    ) -> Iterator[common_pb2.Conversation]:
        """ListConversations: conversations, newest first, optionally of one tenant or session."""

        def fetch(token: str) -> sessions_pb2.ListConversationsResponse:
            return self._transport.call(
                _path(_SESSIONS, "ListConversations"),
                sessions_pb2.ListConversationsRequest(
                    agency_id=self.agency_id,
                    tenant_id=tenant_id,
                    session_id=session_id,
                    page_size=page_size or 0,
                    page_token=token,
                ),
                sessions_pb2.ListConversationsResponse,
                idempotent=True,
            )

        return paginate(fetch, lambda page: page.conversations)

    def list_messages(
        self, conversation_id: str, tenant_id: str = "", *, page_size: int | None = None
    ) -> Iterator[common_pb2.Message]:
        """ListMessages: a conversation's messages, newest first."""

        def fetch(token: str) -> sessions_pb2.ListMessagesResponse:
            return self._transport.call(
                _path(_SESSIONS, "ListMessages"),
                sessions_pb2.ListMessagesRequest(
                    agency_id=self.agency_id,
                    tenant_id=tenant_id,
                    conversation_id=conversation_id,
                    page_size=page_size or 0,
                    page_token=token,
                ),
                sessions_pb2.ListMessagesResponse,
                idempotent=True,
            )

        return paginate(fetch, lambda page: page.messages)

    def wait_for_status(
        self,
        session_id: str,
        status: SessionStatusLike,
        timeout: float = 30.0,
        *,
        tenant_id: str = "",
        poll_interval: float = 0.2,
    ) -> common_pb2.Session:
        """Poll GetSession until the session is in `status`; return it.

        Raises TimeoutError (naming the last status seen) after `timeout` seconds.
        """
        wanted = enum_value(common_pb2.SessionStatus, status, "SESSION_STATUS_")
        deadline = time.monotonic() + timeout
        while True:
            session = self.get_session(session_id, tenant_id)
            if session.status == wanted:
                return session
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"session {session_id} is {session_status_name(session.status)} after {timeout} s, "
                    f"not {session_status_name(wanted)}"
                )
            time.sleep(min(poll_interval, left))

    # -- webhooks ------------------------------------------------------------------------------

    def get_webhook_signing_key(self) -> str:
        """GetWebhookSigningKey: the engine's Ed25519 public key (`whpk_...`), for
        `verify_webhook_ed25519`. Called without the API key: the RPC is public."""
        response = self._transport.call(
            _path(_WEBHOOKS, "GetWebhookSigningKey"),
            webhook_pb2.GetWebhookSigningKeyRequest(),
            webhook_pb2.GetWebhookSigningKeyResponse,
            idempotent=True,
            public=True,  # the engine refuses credentials on this credential-less RPC
        )
        return response.public_key

    def list_deliveries(
        self,
        status: DeliveryStatusLike | None = None,
        event_type: str = "",
        *,
        since: datetime | None = None,
        page_size: int | None = None,
    ) -> Iterator[webhook_pb2.Delivery]:
        """ListDeliveries: the webhooks delivered (or to be delivered) to this dashboard,
        optionally of one status (`"FAILED"`, ...), event type (`"message.received"`) and since a time."""
        status_number = cast(
            webhook_pb2.DeliveryStatus, enum_value(webhook_pb2.DeliveryStatus, status, "DELIVERY_STATUS_")
        )

        def fetch(token: str) -> webhook_pb2.ListDeliveriesResponse:
            return self._transport.call(
                _path(_WEBHOOKS, "ListDeliveries"),
                _with_since(
                    webhook_pb2.ListDeliveriesRequest(
                        agency_id=self.agency_id,
                        status=status_number,
                        event_type=event_type,
                        page_size=page_size or 0,
                        page_token=token,
                    ),
                    since,
                ),
                webhook_pb2.ListDeliveriesResponse,
                idempotent=True,
            )

        return paginate(fetch, lambda page: page.deliveries)

    def get_delivery(self, delivery_id: str) -> webhook_pb2.Delivery:
        """GetDelivery: one delivery with every attempt."""
        response = self._transport.call(
            _path(_WEBHOOKS, "GetDelivery"),
            webhook_pb2.GetDeliveryRequest(agency_id=self.agency_id, delivery_id=delivery_id),
            webhook_pb2.GetDeliveryResponse,
            idempotent=True,
        )
        return response.delivery

    def redeliver_webhook(self, delivery_id: str) -> webhook_pb2.Delivery:
        """RedeliverWebhook: send a delivered or failed webhook again, with the same event id."""
        response = self._transport.call(
            _path(_WEBHOOKS, "RedeliverWebhook"),
            webhook_pb2.RedeliverWebhookRequest(agency_id=self.agency_id, delivery_id=delivery_id),
            webhook_pb2.RedeliverWebhookResponse,
            idempotent=False,
        )
        return response.delivery

    def redeliver_failed_webhooks(self, since: datetime | None = None) -> int:
        """RedeliverFailedWebhooks: send every FAILED delivery (created since `since`, or all) again;
        returns how many were queued."""
        request = webhook_pb2.RedeliverFailedWebhooksRequest(agency_id=self.agency_id)
        if since is not None:
            request.since.FromDatetime(since)
        response = self._transport.call(
            _path(_WEBHOOKS, "RedeliverFailedWebhooks"),
            request,
            webhook_pb2.RedeliverFailedWebhooksResponse,
            idempotent=True,
        )
        return int(response.redelivered)

    def send_test_webhook(self, note: str = "") -> webhook_pb2.Delivery:
        """SendTestWebhook: send a `webhook.test` event (carrying `note`) to this dashboard."""
        response = self._transport.call(
            _path(_WEBHOOKS, "SendTestWebhook"),
            webhook_pb2.SendTestWebhookRequest(agency_id=self.agency_id, note=note),
            webhook_pb2.SendTestWebhookResponse,
            idempotent=False,
        )
        return response.delivery


def _with_since(
    request: webhook_pb2.ListDeliveriesRequest, since: datetime | None
) -> webhook_pb2.ListDeliveriesRequest:
    if since is not None:
        request.since.FromDatetime(since)
    return request
