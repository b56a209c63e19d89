"""Business rules of messaging sessions, conversations and messages. No gRPC or HTTP types here.

Every call names an agency (the interceptor has already checked that the caller may act for
it); a session, conversation or message of another agency — or of another tenant when a
tenantId is given — is NOT_FOUND, never "forbidden", so nothing reveals that it exists.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select

from engine.errors import FailedPrecondition, NotFound, Unavailable, invalid
from engine.ids import new_id
from engine.pagination import decode_token, encode_token, page_size, token_position
from engine.registry.models import DashboardRegistration
from engine.sessions import lifecycle
from engine.sessions.models import OUTBOUND, Conversation, SessionBinding, StoredMessage
from engine.sessions.notices import Publisher, publish_nowhere
from engine.sessions.providers import Provider, ProviderError, ProviderSession, SentMessage
from engine.sessions.providers.sandbox import SandboxProvider
from engine.sessions.qr import PNG_MIME_TYPE, qr_png
from engine.sessions.store import (
    change_message_status,
    change_session_status,
    find_session,
    take_deferred_ack,
    upsert_conversation,
)
from engine.sessions.views import (
    ConversationView,
    MessageView,
    SessionView,
    conversation_view,
    message_view,
    session_view,
)
from engine.store.base import utcnow
from engine.store.database import Database
from engine.validation import CONTROL_CHARACTERS, Violations, agency_id_problem, text_problem

log = logging.getLogger("engine.sessions")

MAX_SESSION_NAME = 200
MAX_TEXT = 4096
MAX_METADATA_ENTRIES = 32
MAX_METADATA_VALUE = 512
_METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class NewSession:
    """The fields of CreateSession."""

    agency_id: str
    tenant_id: str
    name: str = ""
    provider: str = ""
    metadata: Mapping[str, str] | None = None


@dataclass(frozen=True)
class QrCode:
    """A pairing QR code: its raw value and a PNG image of it."""

    value: str
    png: bytes
    mime_type: str = PNG_MIME_TYPE


class SessionService:
    """Sessions' lifecycle at their provider, and the conversations and messages they carry."""

    def __init__(
        self,
        database: Database,
        providers: Mapping[str, Provider],
        default_provider: str,
        *,
        publish: Publisher = publish_nowhere,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = database
        self._providers = providers
        self._default_provider = default_provider
        self._publish = publish
        self._clock = clock

    # -- sessions --------------------------------------------------------------------------------

    def create(self, request: NewSession) -> SessionView:
        """Create a STOPPED session at its provider, bound to the agency and tenant."""
        provider_name = request.provider or self._default_provider
        metadata = dict(request.metadata or {})
        violations = Violations()
        violations.check("agencyId", _id_problem(request.agency_id))
        violations.check("tenantId", _id_problem(request.tenant_id))
        if request.name:
            violations.check("name", text_problem(request.name, MAX_SESSION_NAME))
        if provider_name not in self._providers:
            violations.check("provider", f"must be one of {', '.join(sorted(self._providers))}")
        violations.check("metadata", _metadata_problem(metadata))
        violations.raise_if_any()
        now = self._clock()
        session_id = new_id("ses")
        with self._db.transaction() as tx:
            if tx.get(DashboardRegistration, request.agency_id) is None:
                raise NotFound(f"agency {request.agency_id!r} is not registered")
            binding = SessionBinding(
                session_id=session_id,
                agency_id=request.agency_id,
                tenant_id=request.tenant_id,
                name=request.name or session_id,
                provider=provider_name,
                provider_session=session_id,
                status=lifecycle.STOPPED,
                account_id="",
                metadata_json=json.dumps(metadata, sort_keys=True),
                created_at=now,
                updated_at=now,
            )
            tx.add(binding)
            tx.flush()
            view = session_view(binding)
        try:
            self._providers[provider_name].create(_provider_session(binding))
        except ProviderError as error:
            # Nothing half-made: the session exists at both ends or at neither.
            with self._db.transaction() as tx:
                tx.execute(delete(SessionBinding).where(SessionBinding.session_id == session_id))
            raise _unavailable(provider_name, error) from None
        return view

    def get(self, agency_id: str, tenant_id: str, session_id: str) -> SessionView:
        """One live session."""
        with self._db.reader() as tx:
            return session_view(find_session(tx, agency_id, tenant_id, session_id))

    def list_sessions(
        self,
        agency_id: str | None,
        tenant_id: str,
        status: str,
        requested_page_size: int,
        page_token: str,
        provider: str = "",
    ) -> tuple[list[SessionView], str]:
        """Live sessions of `agency_id` (None: of every agency, for the admins), newest first,
        optionally of one tenant, status and provider."""
        if status and status not in lifecycle.SESSION_STATUSES:
            raise invalid("status", "is not a session status")
        limit = page_size(requested_page_size)
        query = select(SessionBinding).where(SessionBinding.deleted_at.is_(None))
        for column, value in (
            (SessionBinding.agency_id, agency_id),
            (SessionBinding.tenant_id, tenant_id),
            (SessionBinding.status, status),
            (SessionBinding.provider, provider),
        ):
            if value:
                query = query.where(column == value)
        position = token_position(page_token, "before")
        if position is not None:
            query = query.where(SessionBinding.session_id < position)
        query = query.order_by(SessionBinding.session_id.desc()).limit(limit + 1)
        with self._db.reader() as tx:
            rows = list(tx.scalars(query))
        next_token = encode_token({"before": rows[limit - 1].session_id}) if len(rows) > limit else ""
        return [session_view(row) for row in rows[:limit]], next_token

    def delete(self, agency_id: str, tenant_id: str, session_id: str) -> SessionView:
        """Remove the session from its provider and from the API; its history is kept."""
        binding = self._peek(agency_id, tenant_id, session_id)
        self._at_provider(binding, "delete")
        with self._db.transaction() as tx:
            live = find_session(tx, agency_id, tenant_id, session_id, for_update=True)
            now = self._clock()
            change_session_status(tx, live, lifecycle.STOPPED, now, self._publish)
            live.deleted_at = now
            live.updated_at = now
            return session_view(live)

    def start(self, agency_id: str, tenant_id: str, session_id: str) -> SessionView:
        """STOPPED/FAILED → STARTING; the provider then reports SCAN_QR_CODE or WORKING."""
        with self._db.transaction() as tx:
            binding = find_session(tx, agency_id, tenant_id, session_id, for_update=True)
            lifecycle.require_startable(binding.status)
            change_session_status(tx, binding, lifecycle.STARTING, self._clock(), self._publish)
            view = session_view(binding)
        # The provider is called after STARTING is committed: what it reports must land after it.
        try:
            self._providers[binding.provider].start(
                _provider_session(binding), paired=bool(binding.account_id)
            )
        except ProviderError as error:
            with self._db.transaction() as tx:
                failed = find_session(tx, agency_id, tenant_id, session_id, for_update=True)
                change_session_status(tx, failed, lifecycle.FAILED, self._clock(), self._publish)
            raise _unavailable(binding.provider, error) from None
        return view

    def stop(self, agency_id: str, tenant_id: str, session_id: str) -> SessionView:
        """Stop a running session; it stays paired."""
        binding = self._peek(agency_id, tenant_id, session_id)
        lifecycle.require_stoppable(binding.status)
        self._at_provider(binding, "stop")
        return self._settle_stopped(agency_id, tenant_id, session_id, account_id=None)

    def logout(self, agency_id: str, tenant_id: str, session_id: str) -> SessionView:
        """Unpair the session's account and stop it; starting again shows a new QR code."""
        binding = self._peek(agency_id, tenant_id, session_id)
        lifecycle.require_logged_in(binding.status, binding.account_id)
        self._at_provider(binding, "logout")
        return self._settle_stopped(agency_id, tenant_id, session_id, account_id="")

    def qr_code(self, agency_id: str, tenant_id: str, session_id: str) -> QrCode:
        """The pairing QR code; only while the session is in SCAN_QR_CODE."""
        binding = self._peek(agency_id, tenant_id, session_id)
        lifecycle.require_status("show a QR code for", binding.status, lifecycle.SCAN_QR_CODE)
        value = self._at_provider(binding, "qr_value")
        return QrCode(value, qr_png(value))

    # -- messages --------------------------------------------------------------------------------

    def send_text(self, agency_id: str, tenant_id: str, session_id: str, to: str, text: str) -> MessageView:
        """Send a text from a WORKING session; the provider reports its progress later."""
        chat_id = lifecycle.chat_id_of(to)
        violations = Violations()
        if chat_id is None:
            violations.check("to", "must be a phone number or a WhatsApp chat id")
        violations.check("text", _message_text_problem(text))
        violations.raise_if_any()
        assert chat_id is not None
        now = self._clock()
        with self._db.transaction() as tx:
            binding = find_session(tx, agency_id, tenant_id, session_id, for_update=True)
            lifecycle.require_status("send from", binding.status, lifecycle.WORKING)
            conversation_id = upsert_conversation(
                tx, binding.session_id, binding.agency_id, binding.tenant_id, chat_id, text, now
            )
            message = StoredMessage(
                message_id=new_id("msg"),
                conversation_id=conversation_id,
                session_id=binding.session_id,
                agency_id=binding.agency_id,
                tenant_id=binding.tenant_id,
                direction=OUTBOUND,
                sender=lifecycle.chat_id_of(binding.account_id) or binding.account_id,
                recipient=chat_id,
                text=text,
                status=lifecycle.PENDING,
                created_at=now,
                updated_at=now,
            )
            tx.add(message)
        # The message is stored before the provider sees it, so a crash never loses a sent message.
        try:
            sent = self._providers[binding.provider].send_text(_provider_session(binding), chat_id, text)
        except ProviderError as error:
            self._update_message(message.message_id, status=lifecycle.MESSAGE_FAILED)
            raise _unavailable(binding.provider, error) from None
        return self._record_sent(binding.session_id, message.message_id, sent)

    def simulate_inbound(
        self, agency_id: str, tenant_id: str, session_id: str, sender: str, text: str
    ) -> MessageView:
        """Have the sandbox deliver a message from `sender` through the provider ingress."""
        chat_id = lifecycle.chat_id_of(sender)
        violations = Violations()
        if chat_id is None:
            violations.check("from", "must be a phone number or a WhatsApp chat id")
        violations.check("text", _message_text_problem(text))
        violations.raise_if_any()
        assert chat_id is not None
        binding = self._peek(agency_id, tenant_id, session_id)
        provider = self._providers[binding.provider]
        if not isinstance(provider, SandboxProvider):
            raise FailedPrecondition(
                f"only sandbox sessions can simulate messages; this one uses {provider.name}"
            )
        lifecycle.require_status("receive messages on", binding.status, lifecycle.WORKING)
        provider_message_id = provider.simulate_inbound(_provider_session(binding), chat_id, text)
        with self._db.reader() as tx:
            stored = tx.scalars(
                select(StoredMessage).where(
                    StoredMessage.session_id == binding.session_id,
                    StoredMessage.provider_message_id == provider_message_id,
                )
            ).one()
            return message_view(stored)

    def list_conversations(
        self, agency_id: str, tenant_id: str, session_id: str, requested_page_size: int, page_token: str
    ) -> tuple[list[ConversationView], str]:
        """Conversations with the most recent message first, optionally of one tenant or session."""
        limit = page_size(requested_page_size)
        query = select(Conversation).where(Conversation.agency_id == agency_id)
        if tenant_id:
            query = query.where(Conversation.tenant_id == tenant_id)
        if session_id:
            query = query.where(Conversation.session_id == session_id)
        position = decode_token(page_token)
        if position is not None:
            at, before = _position(position)
            query = query.where(
                or_(
                    Conversation.last_message_at < at,
                    and_(Conversation.last_message_at == at, Conversation.conversation_id < before),
                )
            )
        query = query.order_by(Conversation.last_message_at.desc(), Conversation.conversation_id.desc())
        with self._db.reader() as tx:
            rows = list(tx.scalars(query.limit(limit + 1)))
        next_token = ""
        if len(rows) > limit:
            last = rows[limit - 1]
            next_token = encode_token(
                {"at": last.last_message_at.isoformat(), "before": last.conversation_id}
            )
        return [conversation_view(row) for row in rows[:limit]], next_token

    def list_messages(
        self, agency_id: str, tenant_id: str, conversation_id: str, requested_page_size: int, page_token: str
    ) -> tuple[list[MessageView], str]:
        """A conversation's messages, newest first."""
        limit = page_size(requested_page_size)
        position = token_position(page_token, "before")
        with self._db.reader() as tx:
            conversation = tx.get(Conversation, conversation_id)
            if (
                conversation is None
                or conversation.agency_id != agency_id
                or (tenant_id and conversation.tenant_id != tenant_id)
            ):
                raise NotFound(f"conversation {conversation_id!r} not found")
            query = select(StoredMessage).where(StoredMessage.conversation_id == conversation_id)
            if position is not None:
                query = query.where(StoredMessage.message_id < position)
            rows = list(tx.scalars(query.order_by(StoredMessage.message_id.desc()).limit(limit + 1)))
        next_token = encode_token({"before": rows[limit - 1].message_id}) if len(rows) > limit else ""
        return [message_view(row) for row in rows[:limit]], next_token

    # -- helpers ---------------------------------------------------------------------------------

    def _peek(self, agency_id: str, tenant_id: str, session_id: str) -> SessionBinding:
        with self._db.reader() as tx:
            return find_session(tx, agency_id, tenant_id, session_id)

    def _at_provider(self, binding: SessionBinding, action: str) -> Any:
        """Call `action` of the session's provider; UNAVAILABLE if the provider fails."""
        try:
            return getattr(self._providers[binding.provider], action)(_provider_session(binding))
        except ProviderError as error:
            raise _unavailable(binding.provider, error) from None

    def _settle_stopped(
        self, agency_id: str, tenant_id: str, session_id: str, account_id: str | None
    ) -> SessionView:
        """Record STOPPED after the provider did its part. The provider's own report may have
        landed first (its webhook racing our answer): then there is nothing left to change."""
        with self._db.transaction() as tx:
            live = find_session(tx, agency_id, tenant_id, session_id, for_update=True)
            change_session_status(
                tx, live, lifecycle.STOPPED, self._clock(), self._publish, account_id=account_id
            )
            return session_view(live)

    def _record_sent(self, session_id: str, message_id: str, sent: SentMessage) -> MessageView:
        """Name the message as the provider does, with what it (and any early ack) reported."""
        now = self._clock()
        with self._db.transaction() as tx:
            # The session row lock orders this against the ingress recording an ack for it.
            tx.scalars(
                select(SessionBinding.session_id)
                .where(SessionBinding.session_id == session_id)
                .with_for_update()
            ).one()
            message = tx.get(StoredMessage, message_id, with_for_update=True)
            assert message is not None
            message.provider_message_id = sent.provider_message_id
            message.updated_at = now
            change_message_status(tx, message, sent.status, now, self._publish)
            early = take_deferred_ack(tx, session_id, sent.provider_message_id)
            if early is not None:
                change_message_status(tx, message, early, now, self._publish)
            return message_view(message)

    def _update_message(self, message_id: str, **changes: Any) -> MessageView:
        with self._db.transaction() as tx:
            message = tx.get(StoredMessage, message_id, with_for_update=True)
            assert message is not None
            for name, value in changes.items():
                setattr(message, name, value)
            message.updated_at = self._clock()
            return message_view(message)


def _provider_session(binding: SessionBinding) -> ProviderSession:
    return ProviderSession(
        session_id=binding.session_id,
        provider_session=binding.provider_session,
        agency_id=binding.agency_id,
        tenant_id=binding.tenant_id,
        metadata=json.loads(binding.metadata_json),
    )


def _unavailable(provider: str, error: ProviderError) -> Unavailable:
    log.warning("provider call failed", extra={"provider": provider, "error": str(error)})
    return Unavailable(f"the {provider} provider failed: {error}")


def _id_problem(value: str) -> str | None:
    return "is required" if not value else agency_id_problem(value)


def _message_text_problem(text: str) -> str | None:
    if not text.strip():
        return "must not be empty"
    if len(text) > MAX_TEXT:
        return f"must be at most {MAX_TEXT} characters"
    if "\x00" in text:
        return "must not contain NUL characters"
    return None


def _metadata_problem(metadata: Mapping[str, str]) -> str | None:
    if len(metadata) > MAX_METADATA_ENTRIES:
        return f"must have at most {MAX_METADATA_ENTRIES} entries"
    for key, value in metadata.items():
        if not _METADATA_KEY.fullmatch(key):
            return "keys must be 1-64 characters of letters, digits, '_', '.' or '-'"
        if len(value) > MAX_METADATA_VALUE or CONTROL_CHARACTERS.search(value):
            return f"values must be at most {MAX_METADATA_VALUE} characters without control characters"
    return None


def _position(position: dict[str, Any]) -> tuple[datetime, str]:
    try:
        return datetime.fromisoformat(str(position["at"])), str(position["before"])
    except (KeyError, ValueError):
        raise invalid("pageToken", "is not a token returned by this API") from None
