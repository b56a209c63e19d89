"""What happened in a session that its dashboard should hear about.

Notices are published inside the transaction that records the change, so whatever the
publisher writes (the webhook outbox) commits or rolls back together with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from engine.sessions.views import MessageView, SessionView

MESSAGE_RECEIVED = "message.received"
MESSAGE_STATUS = "message.status"
SESSION_STATUS = "session.status"


@dataclass(frozen=True)
class Notice:
    """One event for a dashboard: a message arrived, a message's or a session's status changed."""

    type: str
    agency_id: str
    tenant_id: str
    session_id: str
    session: SessionView | None = None
    message: MessageView | None = None
    previous_status: str = ""


#: Called with the open transaction and each notice.
Publisher = Callable[[Session, Notice], None]


def publish_nowhere(_session: Session, _notice: Notice) -> None:
    """The publisher used when no outbox is attached."""
