import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from workflow_engine.v1 import common_pb2 as _common_pb2
from workflow_engine.v1 import options_pb2 as _options_pb2
from workflow_engine.v1 import registry_pb2 as _registry_pb2
from workflow_engine.v1 import webhook_pb2 as _webhook_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionCounts(_message.Message):
    __slots__ = ("stopped", "starting", "scan_qr_code", "working", "failed")
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    STARTING_FIELD_NUMBER: _ClassVar[int]
    SCAN_QR_CODE_FIELD_NUMBER: _ClassVar[int]
    WORKING_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    stopped: int
    starting: int
    scan_qr_code: int
    working: int
    failed: int
    def __init__(self, stopped: _Optional[int] = ..., starting: _Optional[int] = ..., scan_qr_code: _Optional[int] = ..., working: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class DeliveryCounts(_message.Message):
    __slots__ = ("succeeded", "failed", "pending", "held")
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    succeeded: int
    failed: int
    pending: int
    held: int
    def __init__(self, succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., pending: _Optional[int] = ..., held: _Optional[int] = ...) -> None: ...

class DashboardSummary(_message.Message):
    __slots__ = ("agency_id", "dashboard_name", "dashboard_url", "status", "create_time", "session_counts", "deliveries_24h", "last_successful_delivery_time")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_NAME_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_URL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SESSION_COUNTS_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_24H_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESSFUL_DELIVERY_TIME_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    dashboard_name: str
    dashboard_url: str
    status: _common_pb2.DashboardStatus
    create_time: _timestamp_pb2.Timestamp
    session_counts: SessionCounts
    deliveries_24h: DeliveryCounts
    last_successful_delivery_time: _timestamp_pb2.Timestamp
    def __init__(self, agency_id: _Optional[str] = ..., dashboard_name: _Optional[str] = ..., dashboard_url: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.DashboardStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session_counts: _Optional[_Union[SessionCounts, _Mapping]] = ..., deliveries_24h: _Optional[_Union[DeliveryCounts, _Mapping]] = ..., last_successful_delivery_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ApiKeyInfo(_message.Message):
    __slots__ = ("prefix", "create_time", "expire_time")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, prefix: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StatusChange(_message.Message):
    __slots__ = ("status", "actor", "reason", "change_time")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    status: _common_pb2.DashboardStatus
    actor: str
    reason: str
    change_time: _timestamp_pb2.Timestamp
    def __init__(self, status: _Optional[_Union[_common_pb2.DashboardStatus, str]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DashboardDetail(_message.Message):
    __slots__ = ("summary", "config", "api_keys", "rate_limit", "status_history", "rate_limit_custom")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    API_KEYS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATUS_HISTORY_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_CUSTOM_FIELD_NUMBER: _ClassVar[int]
    summary: DashboardSummary
    config: _registry_pb2.DashboardConfig
    api_keys: _containers.RepeatedCompositeFieldContainer[ApiKeyInfo]
    rate_limit: _common_pb2.RateLimit
    status_history: _containers.RepeatedCompositeFieldContainer[StatusChange]
    rate_limit_custom: bool
    def __init__(self, summary: _Optional[_Union[DashboardSummary, _Mapping]] = ..., config: _Optional[_Union[_registry_pb2.DashboardConfig, _Mapping]] = ..., api_keys: _Optional[_Iterable[_Union[ApiKeyInfo, _Mapping]]] = ..., rate_limit: _Optional[_Union[_common_pb2.RateLimit, _Mapping]] = ..., status_history: _Optional[_Iterable[_Union[StatusChange, _Mapping]]] = ..., rate_limit_custom: _Optional[bool] = ...) -> None: ...

class ListDashboardsRequest(_message.Message):
    __slots__ = ("status", "query", "page_size", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: _common_pb2.DashboardStatus
    query: str
    page_size: int
    page_token: str
    def __init__(self, status: _Optional[_Union[_common_pb2.DashboardStatus, str]] = ..., query: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDashboardsResponse(_message.Message):
    __slots__ = ("dashboards", "next_page_token")
    DASHBOARDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dashboards: _containers.RepeatedCompositeFieldContainer[DashboardSummary]
    next_page_token: str
    def __init__(self, dashboards: _Optional[_Iterable[_Union[DashboardSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDashboardRequest(_message.Message):
    __slots__ = ("agency_id",)
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    def __init__(self, agency_id: _Optional[str] = ...) -> None: ...

class GetDashboardResponse(_message.Message):
    __slots__ = ("dashboard",)
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    dashboard: DashboardDetail
    def __init__(self, dashboard: _Optional[_Union[DashboardDetail, _Mapping]] = ...) -> None: ...

class ListDashboardSessionsRequest(_message.Message):
    __slots__ = ("agency_id", "tenant_id", "status", "page_size", "page_token")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    tenant_id: str
    status: _common_pb2.SessionStatus
    page_size: int
    page_token: str
    def __init__(self, agency_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.SessionStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDashboardSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[_common_pb2.Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SuspendDashboardRequest(_message.Message):
    __slots__ = ("agency_id", "reason")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    reason: str
    def __init__(self, agency_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SuspendDashboardResponse(_message.Message):
    __slots__ = ("dashboard",)
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    dashboard: DashboardDetail
    def __init__(self, dashboard: _Optional[_Union[DashboardDetail, _Mapping]] = ...) -> None: ...

class ActivateDashboardRequest(_message.Message):
    __slots__ = ("agency_id",)
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    def __init__(self, agency_id: _Optional[str] = ...) -> None: ...

class ActivateDashboardResponse(_message.Message):
    __slots__ = ("dashboard",)
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    dashboard: DashboardDetail
    def __init__(self, dashboard: _Optional[_Union[DashboardDetail, _Mapping]] = ...) -> None: ...

class GetSystemHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class OutboxBacklog(_message.Message):
    __slots__ = ("due", "retrying", "held", "failed")
    DUE_FIELD_NUMBER: _ClassVar[int]
    RETRYING_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    due: int
    retrying: int
    held: int
    failed: int
    def __init__(self, due: _Optional[int] = ..., retrying: _Optional[int] = ..., held: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class GetSystemHealthResponse(_message.Message):
    __slots__ = ("database_ok", "database_latency_ms", "uptime_seconds", "version", "outbox", "delivery_success_rate_5m", "delivery_p95_latency_ms_5m", "rate_limit_rejections", "auth_failures", "unroutable_provider_events", "provider_status", "delivery_attempts_5m")
    class ProviderStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATABASE_OK_FIELD_NUMBER: _ClassVar[int]
    DATABASE_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_SUCCESS_RATE_5M_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_P95_LATENCY_MS_5M_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    AUTH_FAILURES_FIELD_NUMBER: _ClassVar[int]
    UNROUTABLE_PROVIDER_EVENTS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_STATUS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ATTEMPTS_5M_FIELD_NUMBER: _ClassVar[int]
    database_ok: bool
    database_latency_ms: float
    uptime_seconds: int
    version: str
    outbox: OutboxBacklog
    delivery_success_rate_5m: float
    delivery_p95_latency_ms_5m: float
    rate_limit_rejections: int
    auth_failures: int
    unroutable_provider_events: int
    provider_status: _containers.ScalarMap[str, str]
    delivery_attempts_5m: int
    def __init__(self, database_ok: _Optional[bool] = ..., database_latency_ms: _Optional[float] = ..., uptime_seconds: _Optional[int] = ..., version: _Optional[str] = ..., outbox: _Optional[_Union[OutboxBacklog, _Mapping]] = ..., delivery_success_rate_5m: _Optional[float] = ..., delivery_p95_latency_ms_5m: _Optional[float] = ..., rate_limit_rejections: _Optional[int] = ..., auth_failures: _Optional[int] = ..., unroutable_provider_events: _Optional[int] = ..., provider_status: _Optional[_Mapping[str, str]] = ..., delivery_attempts_5m: _Optional[int] = ...) -> None: ...

class ListAllSessionsRequest(_message.Message):
    __slots__ = ("agency_id", "tenant_id", "status", "provider", "page_size", "page_token")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    tenant_id: str
    status: _common_pb2.SessionStatus
    provider: str
    page_size: int
    page_token: str
    def __init__(self, agency_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.SessionStatus, str]] = ..., provider: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAllSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[_common_pb2.Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetDashboardRateLimitRequest(_message.Message):
    __slots__ = ("agency_id", "rate_limit")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    rate_limit: _common_pb2.RateLimit
    def __init__(self, agency_id: _Optional[str] = ..., rate_limit: _Optional[_Union[_common_pb2.RateLimit, _Mapping]] = ...) -> None: ...

class SetDashboardRateLimitResponse(_message.Message):
    __slots__ = ("dashboard",)
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    dashboard: DashboardDetail
    def __init__(self, dashboard: _Optional[_Union[DashboardDetail, _Mapping]] = ...) -> None: ...

class ListAllDeliveriesRequest(_message.Message):
    __slots__ = ("agency_id", "status", "event_type", "page_size", "page_token")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    status: _webhook_pb2.DeliveryStatus
    event_type: str
    page_size: int
    page_token: str
    def __init__(self, agency_id: _Optional[str] = ..., status: _Optional[_Union[_webhook_pb2.DeliveryStatus, str]] = ..., event_type: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAllDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[_webhook_pb2.Delivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[_webhook_pb2.Delivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecoverFailedDeliveriesRequest(_message.Message):
    __slots__ = ("agency_id", "since")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    since: _timestamp_pb2.Timestamp
    def __init__(self, agency_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecoverFailedDeliveriesResponse(_message.Message):
    __slots__ = ("recovered",)
    RECOVERED_FIELD_NUMBER: _ClassVar[int]
    recovered: int
    def __init__(self, recovered: _Optional[int] = ...) -> None: ...
