"""Small conversions between domain values and proto messages."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from engine.errors import invalid
from engine.registry.models import STATUS_ACTIVE, STATUS_SUSPENDED, STATUS_WEBHOOKS_DISABLED
from workflow_engine.v1 import common_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DASHBOARD_STATUS_TO_PROTO: dict[str, common_pb2.DashboardStatus] = {
    STATUS_ACTIVE: common_pb2.DASHBOARD_STATUS_ACTIVE,
    STATUS_SUSPENDED: common_pb2.DASHBOARD_STATUS_SUSPENDED,
    STATUS_WEBHOOKS_DISABLED: common_pb2.DASHBOARD_STATUS_WEBHOOKS_DISABLED,
}


def timestamp(value: datetime | None) -> Timestamp | None:
    """A proto Timestamp for an aware datetime (None stays None, leaving the field unset)."""
    if value is None:
        return None
    # Exact integer arithmetic; Timestamp.FromDatetime goes through time tuples and is several times slower.
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


_DASHBOARD_STATUS_NAMES: dict[int, str] = {number: name for name, number in DASHBOARD_STATUS_TO_PROTO.items()}


def dashboard_status_name(value: int) -> str:
    """The stored status of a DashboardStatus filter (0 → ""); INVALID_ARGUMENT if undefined."""
    if value and value not in _DASHBOARD_STATUS_NAMES:
        raise invalid("status", f"{value} is not a valid value")
    return _DASHBOARD_STATUS_NAMES.get(value, "")


def optional_datetime(message: Message, field: str) -> datetime | None:
    """The aware UTC datetime of an optional Timestamp field; None when it is not set."""
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC)


def dashboard_status(value: str) -> common_pb2.DashboardStatus:
    """The proto enum for a stored dashboard status."""
    return DASHBOARD_STATUS_TO_PROTO.get(value, common_pb2.DASHBOARD_STATUS_UNSPECIFIED)


def enum_suffix(enum_type: EnumTypeWrapper, value: int, prefix: str, field: str) -> str:
    """The stored name of an enum filter (`SESSION_STATUS_WORKING` → `WORKING`; 0 → "").

    Proto3 accepts any number for an enum; one the contract does not define is INVALID_ARGUMENT.
    """
    if not value:
        return ""
    try:
        return str(enum_type.Name(value)).removeprefix(prefix)
    except ValueError:
        raise invalid(field, f"{value} is not a valid value") from None
