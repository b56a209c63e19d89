"""gRPC adapter of the sessions domain: proto in, domain call, proto out."""

from __future__ import annotations

from typing import Any

from engine.rpc.convert import enum_suffix
from engine.sessions.protos import (
    SESSION_STATUS_PREFIX,
    conversation_message,
    message_message,
    session_message,
)
from engine.sessions.service import NewSession, SessionService
from workflow_engine.v1 import common_pb2, sessions_pb2, sessions_pb2_grpc


class SessionsServicer(sessions_pb2_grpc.SessionsServiceServicer):  # type: ignore[misc]
    """Implements workflow_engine.v1.SessionsService."""

    def __init__(self, service: SessionService) -> None:
        self._service = service

    def CreateSession(
        self, request: sessions_pb2.CreateSessionRequest, context: Any
    ) -> sessions_pb2.CreateSessionResponse:
        view = self._service.create(
            NewSession(
                agency_id=request.agency_id,
                tenant_id=request.tenant_id,
                name=request.name,
                provider=request.provider,
                metadata=dict(request.metadata),
            )
        )
        return sessions_pb2.CreateSessionResponse(session=session_message(view))

    def ListSessions(
        self, request: sessions_pb2.ListSessionsRequest, context: Any
    ) -> sessions_pb2.ListSessionsResponse:
        status = enum_suffix(common_pb2.SessionStatus, request.status, SESSION_STATUS_PREFIX, "status")
        views, next_token = self._service.list_sessions(
            request.agency_id, request.tenant_id, status, request.page_size, request.page_token
        )
        return sessions_pb2.ListSessionsResponse(
            sessions=[session_message(v) for v in views], next_page_token=next_token
        )

    def GetSession(
        self, request: sessions_pb2.GetSessionRequest, context: Any
    ) -> sessions_pb2.GetSessionResponse:
        view = self._service.get(request.agency_id, request.tenant_id, request.session_id)
        return sessions_pb2.GetSessionResponse(session=session_message(view))

    def DeleteSession(
        self, request: sessions_pb2.DeleteSessionRequest, context: Any
    ) -> sessions_pb2.DeleteSessionResponse:
        view = self._service.delete(request.agency_id, request.tenant_id, request.session_id)
        return sessions_pb2.DeleteSessionResponse(session=session_message(view))

    def StartSession(
        self, request: sessions_pb2.StartSessionRequest, context: Any
    ) -> sessions_pb2.StartSessionResponse:
        view = self._service.start(request.agency_id, request.tenant_id, request.session_id)
        return sessions_pb2.StartSessionResponse(session=session_message(view))

    def StopSession(
        self, request: sessions_pb2.StopSessionRequest, context: Any
    ) -> sessions_pb2.StopSessionResponse:
        view = self._service.stop(request.agency_id, request.tenant_id, request.session_id)
        return sessions_pb2.StopSessionResponse(session=session_message(view))

    def LogoutSession(
        self, request: sessions_pb2.LogoutSessionRequest, context: Any
    ) -> sessions_pb2.LogoutSessionResponse:
        view = self._service.logout(request.agency_id, request.tenant_id, request.session_id)
        return sessions_pb2.LogoutSessionResponse(session=session_message(view))

    def GetSessionQr(
        self, request: sessions_pb2.GetSessionQrRequest, context: Any
    ) -> sessions_pb2.GetSessionQrResponse:
        qr = self._service.qr_code(request.agency_id, request.tenant_id, request.session_id)
        return sessions_pb2.GetSessionQrResponse(value=qr.value, png=qr.png, mime_type=qr.mime_type)

    def SendMessage(
        self, request: sessions_pb2.SendMessageRequest, context: Any
    ) -> sessions_pb2.SendMessageResponse:
        view = self._service.send_text(
            request.agency_id, request.tenant_id, request.session_id, request.to, request.text
        )
        return sessions_pb2.SendMessageResponse(message=message_message(view))

    def SimulateInboundMessage(
        self, request: sessions_pb2.SimulateInboundMessageRequest, context: Any
    ) -> sessions_pb2.SimulateInboundMessageResponse:
        sender = getattr(request, "from")  # `from` is a Python keyword
        view = self._service.simulate_inbound(
            request.agency_id, request.tenant_id, request.session_id, sender, request.text
        )
        return sessions_pb2.SimulateInboundMessageResponse(message=message_message(view))

    def ListConversations(
        self, request: sessions_pb2.ListConversationsRequest, context: Any
    ) -> sessions_pb2.ListConversationsResponse:
        views, next_token = self._service.list_conversations(
            request.agency_id, request.tenant_id, request.session_id, request.page_size, request.page_token
        )
        return sessions_pb2.ListConversationsResponse(
            conversations=[conversation_message(v) for v in views], next_page_token=next_token
        )

    def ListMessages(
        self, request: sessions_pb2.ListMessagesRequest, context: Any
    ) -> sessions_pb2.ListMessagesResponse:
        views, next_token = self._service.list_messages(
            request.agency_id,
            request.tenant_id,
            request.conversation_id,
            request.page_size,
            request.page_token,
        )
        return sessions_pb2.ListMessagesResponse(
            messages=[message_message(v) for v in views], next_page_token=next_token
        )
