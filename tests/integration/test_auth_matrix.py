"""Every RPC x every kind of credential, against a live server on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.api import httpbody_pb2
from google.protobuf import symbol_database
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from sqlalchemy import update

from engine.auth.policy import rule_of
from engine.registry.models import STATUS_SUSPENDED, DashboardRegistration
from engine.rpc.server import SERVICES
from engine.sessions.providers.sandbox import SandboxProvider
from tests.support.live import LiveEngine
from tests.support.rpc import MASTER_AUTH, PSK_AUTH, Metadata, api_key_auth, detail_of, register
from workflow_engine.v1 import options_pb2, registry_pb2, registry_pb2_grpc, webhook_pb2

DENIALS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def all_methods() -> Iterator[MethodDescriptor]:
    for service in SERVICES:
        yield from service.methods


METHODS = list(all_methods())


@dataclass
class Agencies:
    """Two registered dashboards, and a key of the first that was rotated out."""

    own_key: str
    other_key: str
    rotated_out_key: str


@pytest.fixture
def agencies(live: LiveEngine) -> Agencies:
    rotated_out = register(live.channel, "agency-a").api_key
    own = (
        registry_pb2_grpc.RegistryServiceStub(live.channel)
        .RotateApiKey(
            registry_pb2.RotateApiKeyRequest(agency_id="agency-a", grace_period_seconds=0), metadata=PSK_AUTH
        )
        .api_key
    )
    other = register(live.channel, "agency-b").api_key
    return Agencies(own_key=own, other_key=other, rotated_out_key=rotated_out)


def call(
    live: LiveEngine,
    method: MethodDescriptor,
    metadata: Metadata,
    agency_id: str = "agency-a",
    request: Message | None = None,
) -> grpc.StatusCode:
    """Call `method` with `request` (default: a minimal one naming `agency_id`); return the status code."""
    request_class = symbol_database.Default().GetSymbol(method.input_type.full_name)
    if request is None:
        request = request_class()
        if "agency_id" in method.input_type.fields_by_name:
            request.agency_id = agency_id
    multicallable = live.channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=lambda raw: raw,
    )
    try:
        multicallable(request, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def credential_for(kind: int, agencies: Agencies) -> Metadata | None:
    return {
        options_pb2.CREDENTIAL_PSK: PSK_AUTH,
        options_pb2.CREDENTIAL_DASHBOARD_KEY: api_key_auth(agencies.own_key),
        options_pb2.CREDENTIAL_MASTER_KEY: MASTER_AUTH,
        options_pb2.CREDENTIAL_NONE: (),
    }.get(kind)


def is_public(method: MethodDescriptor) -> bool:
    rule = rule_of(method.containing_service, method.name)
    return rule is not None and rule.allows(options_pb2.CREDENTIAL_NONE)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_no_credential_is_unauthenticated(
    live: LiveEngine, agencies: Agencies, method: MethodDescriptor
) -> None:
    code = call(live, method, ())
    if is_public(method):
        assert code not in DENIALS
    else:
        assert code is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "metadata",
    [
        (("authorization", "PSK wrong-psk"),),
        (("authorization", "Bearer wrong-master"),),
        (("x-api-key", "wfe_" + "x" * 40),),
        (("x-api-key", "garbage"),),
    ],
    ids=["psk", "bearer", "well-formed-key", "garbage"],
)
@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_wrong_credential_is_unauthenticated_without_saying_why(
    live: LiveEngine, agencies: Agencies, method: MethodDescriptor, metadata: Metadata
) -> None:
    code = call(live, method, metadata)
    assert code is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_rotated_out_key_is_unauthenticated(
    live: LiveEngine, agencies: Agencies, method: MethodDescriptor
) -> None:
    assert call(live, method, api_key_auth(agencies.rotated_out_key)) is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_other_agencys_key_is_permission_denied(
    live: LiveEngine, agencies: Agencies, method: MethodDescriptor
) -> None:
    code = call(live, method, api_key_auth(agencies.other_key))
    if is_public(method):
        assert code not in DENIALS  # a public method serves anyone, with or without a key
    else:
        assert code is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_right_credential_passes_the_guard(
    live: LiveEngine, agencies: Agencies, method: MethodDescriptor
) -> None:
    rule = rule_of(method.containing_service, method.name)
    assert rule is not None
    if rule.allows(options_pb2.CREDENTIAL_PROVIDER_SIGNATURE):
        request, metadata = signed_sandbox_webhook(live)
        assert call(live, method, metadata, request=request) not in DENIALS
        return
    usable = [credential_for(kind, agencies) for kind in sorted(rule.credentials)]
    for metadata in usable:
        assert metadata is not None
        assert call(live, method, metadata) not in DENIALS


def signed_sandbox_webhook(live: LiveEngine) -> tuple[Message, Metadata]:
    """A provider webhook with the sandbox provider's valid signature."""
    body = b'{"id":"evt_matrix","event":"session.status","session":"nobody","payload":{"status":"WORKING"}}'
    sandbox = live.engine.providers["sandbox"]
    assert isinstance(sandbox, SandboxProvider)
    request = webhook_pb2.ReceiveProviderWebhookRequest(
        provider="sandbox", body=httpbody_pb2.HttpBody(content_type="application/json", data=body)
    )
    return request, (("x-sandbox-signature", sandbox.sign(body)),)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_credentials_outside_the_policy_are_permission_denied(
    live: LiveEngine, agencies: Agencies, method: MethodDescriptor
) -> None:
    rule = rule_of(method.containing_service, method.name)
    assert rule is not None
    for kind in (
        options_pb2.CREDENTIAL_PSK,
        options_pb2.CREDENTIAL_DASHBOARD_KEY,
        options_pb2.CREDENTIAL_MASTER_KEY,
    ):
        metadata = credential_for(kind, agencies)
        assert metadata is not None
        if is_public(method):
            # Public methods accept any valid credential too: clients that always send theirs work.
            assert call(live, method, metadata) not in DENIALS, kind
        elif not rule.allows(kind):
            assert call(live, method, metadata) is grpc.StatusCode.PERMISSION_DENIED, kind


def test_suspended_dashboard_key_is_permission_denied(live: LiveEngine, agencies: Agencies) -> None:
    with live.engine.database.transaction() as session:
        session.execute(
            update(DashboardRegistration)
            .where(DashboardRegistration.agency_id == "agency-a")
            .values(status=STATUS_SUSPENDED)
        )
    live.engine.registry.invalidate_cache()
    method = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].methods_by_name["GetDashboardConfig"]
    with pytest.raises(grpc.RpcError) as caught:
        registry_pb2_grpc.RegistryServiceStub(live.channel).GetDashboardConfig(
            registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(agencies.own_key)
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "suspended" in caught.value.details()
    assert detail_of(caught.value, error_details_pb2.ErrorInfo).reason == "DASHBOARD_SUSPENDED"
    assert call(live, method, PSK_AUTH) is grpc.StatusCode.OK


def test_unauthenticated_message_does_not_say_which_part_was_wrong(
    live: LiveEngine, agencies: Agencies
) -> None:
    messages = set()
    for metadata in ((), (("x-api-key", "wfe_" + "y" * 40),), (("authorization", "PSK nope"),)):
        try:
            registry_pb2_grpc.RegistryServiceStub(live.channel).ListAgencies(
                registry_pb2.ListAgenciesRequest(), metadata=metadata
            )
        except grpc.RpcError as error:
            messages.add(error.details())
    assert messages == {"missing or invalid credentials"}
