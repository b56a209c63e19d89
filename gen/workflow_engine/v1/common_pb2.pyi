import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DashboardStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DASHBOARD_STATUS_UNSPECIFIED: _ClassVar[DashboardStatus]
    DASHBOARD_STATUS_ACTIVE: _ClassVar[DashboardStatus]
    DASHBOARD_STATUS_SUSPENDED: _ClassVar[DashboardStatus]
    DASHBOARD_STATUS_WEBHOOKS_DISABLED: _ClassVar[DashboardStatus]

class SessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATUS_UNSPECIFIED: _ClassVar[SessionStatus]
    SESSION_STATUS_STOPPED: _ClassVar[SessionStatus]
    SESSION_STATUS_STARTING: _ClassVar[SessionStatus]
    SESSION_STATUS_SCAN_QR_CODE: _ClassVar[SessionStatus]
    SESSION_STATUS_WORKING: _ClassVar[SessionStatus]
    SESSION_STATUS_FAILED: _ClassVar[SessionStatus]

class MessageDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_DIRECTION_UNSPECIFIED: _ClassVar[MessageDirection]
    MESSAGE_DIRECTION_INBOUND: _ClassVar[MessageDirection]
    MESSAGE_DIRECTION_OUTBOUND: _ClassVar[MessageDirection]

class MessageStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_STATUS_UNSPECIFIED: _ClassVar[MessageStatus]
    MESSAGE_STATUS_PENDING: _ClassVar[MessageStatus]
    MESSAGE_STATUS_SENT: _ClassVar[MessageStatus]
    MESSAGE_STATUS_DELIVERED: _ClassVar[MessageStatus]
    MESSAGE_STATUS_READ: _ClassVar[MessageStatus]
    MESSAGE_STATUS_FAILED: _ClassVar[MessageStatus]
    MESSAGE_STATUS_RECEIVED: _ClassVar[MessageStatus]
DASHBOARD_STATUS_UNSPECIFIED: DashboardStatus
DASHBOARD_STATUS_ACTIVE: DashboardStatus
DASHBOARD_STATUS_SUSPENDED: DashboardStatus
DASHBOARD_STATUS_WEBHOOKS_DISABLED: DashboardStatus
SESSION_STATUS_UNSPECIFIED: SessionStatus
SESSION_STATUS_STOPPED: SessionStatus
SESSION_STATUS_STARTING: SessionStatus
SESSION_STATUS_SCAN_QR_CODE: SessionStatus
SESSION_STATUS_WORKING: SessionStatus
SESSION_STATUS_FAILED: SessionStatus
MESSAGE_DIRECTION_UNSPECIFIED: MessageDirection
MESSAGE_DIRECTION_INBOUND: MessageDirection
MESSAGE_DIRECTION_OUTBOUND: MessageDirection
MESSAGE_STATUS_UNSPECIFIED: MessageStatus
MESSAGE_STATUS_PENDING: MessageStatus
MESSAGE_STATUS_SENT: MessageStatus
MESSAGE_STATUS_DELIVERED: MessageStatus
MESSAGE_STATUS_READ: MessageStatus
MESSAGE_STATUS_FAILED: MessageStatus
MESSAGE_STATUS_RECEIVED: MessageStatus

class Session(_message.Message):
    __slots__ = ("session_id", "agency_id", "tenant_id", "name", "provider", "status", "metadata", "create_time", "update_time", "account_id")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    agency_id: str
    tenant_id: str
    name: str
    provider: str
    status: SessionStatus
    metadata: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    account_id: str
    def __init__(self, session_id: _Optional[str] = ..., agency_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., provider: _Optional[str] = ..., status: _Optional[_Union[SessionStatus, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., account_id: _Optional[str] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("conversation_id", "agency_id", "tenant_id", "session_id", "peer", "last_message_time", "last_message_text", "message_count")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    agency_id: str
    tenant_id: str
    session_id: str
    peer: str
    last_message_time: _timestamp_pb2.Timestamp
    last_message_text: str
    message_count: int
    def __init__(self, conversation_id: _Optional[str] = ..., agency_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., session_id: _Optional[str] = ..., peer: _Optional[str] = ..., last_message_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_message_text: _Optional[str] = ..., message_count: _Optional[int] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("message_id", "conversation_id", "session_id", "agency_id", "tenant_id", "direction", "to", "text", "status", "create_time", "update_time", "provider_message_id")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    conversation_id: str
    session_id: str
    agency_id: str
    tenant_id: str
    direction: MessageDirection
    to: str
    text: str
    status: MessageStatus
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    provider_message_id: str
    def __init__(self, message_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., session_id: _Optional[str] = ..., agency_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., direction: _Optional[_Union[MessageDirection, str]] = ..., to: _Optional[str] = ..., text: _Optional[str] = ..., status: _Optional[_Union[MessageStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider_message_id: _Optional[str] = ..., **kwargs) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("requests_per_second", "burst")
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    requests_per_second: float
    burst: int
    def __init__(self, requests_per_second: _Optional[float] = ..., burst: _Optional[int] = ...) -> None: ...
