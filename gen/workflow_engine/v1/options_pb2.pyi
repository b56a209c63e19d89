from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Credential(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDENTIAL_UNSPECIFIED: _ClassVar[Credential]
    CREDENTIAL_NONE: _ClassVar[Credential]
    CREDENTIAL_PSK: _ClassVar[Credential]
    CREDENTIAL_DASHBOARD_KEY: _ClassVar[Credential]
    CREDENTIAL_MASTER_KEY: _ClassVar[Credential]
    CREDENTIAL_PROVIDER_SIGNATURE: _ClassVar[Credential]
CREDENTIAL_UNSPECIFIED: Credential
CREDENTIAL_NONE: Credential
CREDENTIAL_PSK: Credential
CREDENTIAL_DASHBOARD_KEY: Credential
CREDENTIAL_MASTER_KEY: Credential
CREDENTIAL_PROVIDER_SIGNATURE: Credential
ACCESS_FIELD_NUMBER: _ClassVar[int]
access: _descriptor.FieldDescriptor

class AccessPolicy(_message.Message):
    __slots__ = ("credentials", "agency_field")
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedScalarFieldContainer[Credential]
    agency_field: str
    def __init__(self, credentials: _Optional[_Iterable[_Union[Credential, str]]] = ..., agency_field: _Optional[str] = ...) -> None: ...
