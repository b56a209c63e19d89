import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from workflow_engine.v1 import common_pb2 as _common_pb2
from workflow_engine.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterDashboardRequest(_message.Message):
    __slots__ = ("agency_id", "dashboard_name", "dashboard_url", "webhook_secret")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_NAME_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    dashboard_name: str
    dashboard_url: str
    webhook_secret: str
    def __init__(self, agency_id: _Optional[str] = ..., dashboard_name: _Optional[str] = ..., dashboard_url: _Optional[str] = ..., webhook_secret: _Optional[str] = ...) -> None: ...

class RegisterDashboardResponse(_message.Message):
    __slots__ = ("success", "api_key", "agency_id")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    success: bool
    api_key: str
    agency_id: str
    def __init__(self, success: _Optional[bool] = ..., api_key: _Optional[str] = ..., agency_id: _Optional[str] = ...) -> None: ...

class DashboardConfig(_message.Message):
    __slots__ = ("agency_id", "dashboard_name", "dashboard_url", "webhook_secret_set", "webhook_secret_hint", "status", "create_time", "update_time", "rate_limit")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_NAME_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_SET_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_HINT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    dashboard_name: str
    dashboard_url: str
    webhook_secret_set: bool
    webhook_secret_hint: str
    status: _common_pb2.DashboardStatus
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    rate_limit: _common_pb2.RateLimit
    def __init__(self, agency_id: _Optional[str] = ..., dashboard_name: _Optional[str] = ..., dashboard_url: _Optional[str] = ..., webhook_secret_set: _Optional[bool] = ..., webhook_secret_hint: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.DashboardStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rate_limit: _Optional[_Union[_common_pb2.RateLimit, _Mapping]] = ...) -> None: ...

class GetDashboardConfigRequest(_message.Message):
    __slots__ = ("agency_id",)
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    def __init__(self, agency_id: _Optional[str] = ...) -> None: ...

class GetDashboardConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: DashboardConfig
    def __init__(self, config: _Optional[_Union[DashboardConfig, _Mapping]] = ...) -> None: ...

class UpdateDashboardConfigRequest(_message.Message):
    __slots__ = ("agency_id", "dashboard_name", "dashboard_url", "webhook_secret")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_NAME_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    dashboard_name: str
    dashboard_url: str
    webhook_secret: str
    def __init__(self, agency_id: _Optional[str] = ..., dashboard_name: _Optional[str] = ..., dashboard_url: _Optional[str] = ..., webhook_secret: _Optional[str] = ...) -> None: ...

class UpdateDashboardConfigResponse(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: DashboardConfig
    def __init__(self, config: _Optional[_Union[DashboardConfig, _Mapping]] = ...) -> None: ...

class Agency(_message.Message):
    __slots__ = ("agency_id", "dashboard_name", "dashboard_url", "status", "create_time")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_NAME_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_URL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    dashboard_name: str
    dashboard_url: str
    status: _common_pb2.DashboardStatus
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, agency_id: _Optional[str] = ..., dashboard_name: _Optional[str] = ..., dashboard_url: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.DashboardStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAgenciesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAgenciesResponse(_message.Message):
    __slots__ = ("agencies", "next_page_token")
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agencies: _containers.RepeatedCompositeFieldContainer[Agency]
    next_page_token: str
    def __init__(self, agencies: _Optional[_Iterable[_Union[Agency, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RotateApiKeyRequest(_message.Message):
    __slots__ = ("agency_id", "grace_period_seconds")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    grace_period_seconds: int
    def __init__(self, agency_id: _Optional[str] = ..., grace_period_seconds: _Optional[int] = ...) -> None: ...

class RotateApiKeyResponse(_message.Message):
    __slots__ = ("api_key", "agency_id", "previous_key_expire_time")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_KEY_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    agency_id: str
    previous_key_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, api_key: _Optional[str] = ..., agency_id: _Optional[str] = ..., previous_key_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
