"""Access policies declared in the contract, and how they are looked up."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor

from engine.auth.policy import (
    OPEN_INFRASTRUCTURE_SERVICES,
    OPEN_RULE,
    AccessRule,
    build_policy_table,
    lookup,
    method_path,
    rule_of,
)
from engine.rpc.server import SERVICES, policy_table
from workflow_engine.v1 import options_pb2

ALL_METHODS: list[tuple[ServiceDescriptor, MethodDescriptor]] = [
    (service, method) for service in SERVICES for method in service.methods
]
METHOD_IDS = [f"{service.name}.{method.name}" for service, method in ALL_METHODS]
KNOWN_CREDENTIALS = {
    options_pb2.CREDENTIAL_NONE,
    options_pb2.CREDENTIAL_PSK,
    options_pb2.CREDENTIAL_DASHBOARD_KEY,
    options_pb2.CREDENTIAL_MASTER_KEY,
    options_pb2.CREDENTIAL_PROVIDER_SIGNATURE,
}


def test_contract_has_services_and_methods() -> None:
    assert {s.full_name for s in SERVICES} >= {
        "workflow_engine.v1.RegistryService",
        "workflow_engine.v1.SessionsService",
        "workflow_engine.v1.AdminService",
        "workflow_engine.v1.WebhookService",
    }
    assert all(len(service.methods) > 0 for service in SERVICES)


@pytest.mark.parametrize(("service", "method"), ALL_METHODS, ids=METHOD_IDS)
def test_every_rpc_declares_an_access_policy(service: ServiceDescriptor, method: MethodDescriptor) -> None:
    rule = rule_of(service, method.name)
    assert rule is not None, f"{method.full_name} declares no (workflow_engine.v1.access) policy"
    assert rule.credentials, f"{method.full_name} accepts no credential"
    assert rule.credentials <= KNOWN_CREDENTIALS
    assert options_pb2.CREDENTIAL_UNSPECIFIED not in rule.credentials


@pytest.mark.parametrize(("service", "method"), ALL_METHODS, ids=METHOD_IDS)
def test_every_rpc_has_an_http_annotation(service: ServiceDescriptor, method: MethodDescriptor) -> None:
    options = method.GetOptions()
    assert options.HasExtension(annotations_pb2.http), f"{method.full_name} has no google.api.http"
    http: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    pattern = http.WhichOneof("pattern")
    assert pattern in {"get", "put", "post", "delete", "patch"}, f"{method.full_name}: no HTTP verb"
    path = getattr(http, pattern)
    assert path.startswith("/"), f"{method.full_name}: HTTP path {path!r} is not absolute"
    if pattern == "get":
        assert not http.body, f"{method.full_name}: a GET must not have a body"


def test_http_routes_are_unique() -> None:
    routes: dict[tuple[str, str], str] = {}
    for _service, method in ALL_METHODS:
        http = method.GetOptions().Extensions[annotations_pb2.http]
        pattern = http.WhichOneof("pattern")
        route = (pattern, getattr(http, pattern))
        assert route not in routes, f"{method.full_name} and {routes[route]} share {route}"
        routes[route] = method.full_name


def _resolve_field(message: Descriptor, dotted: str) -> FieldDescriptor:
    *parents, leaf = dotted.split(".")
    for name in parents:
        parent = message.fields_by_name.get(name)
        assert parent is not None, f"{message.full_name} has no field {name!r}"
        assert parent.message_type is not None, f"{message.full_name}.{name} is not a message"
        message = parent.message_type
    field = message.fields_by_name.get(leaf)
    assert field is not None, f"{message.full_name} has no field {leaf!r}"
    return field


DASHBOARD_METHODS = [
    (service, method)
    for service, method in ALL_METHODS
    if (rule := rule_of(service, method.name)) is not None
    and rule.allows(options_pb2.CREDENTIAL_DASHBOARD_KEY)
]


def test_some_rpcs_accept_dashboard_keys() -> None:
    assert DASHBOARD_METHODS


@pytest.mark.parametrize(
    ("service", "method"), DASHBOARD_METHODS, ids=[f"{s.name}.{m.name}" for s, m in DASHBOARD_METHODS]
)
def test_dashboard_key_rpcs_name_a_string_agency_field(
    service: ServiceDescriptor, method: MethodDescriptor
) -> None:
    rule = rule_of(service, method.name)
    assert rule is not None
    assert rule.agency_field, f"{method.full_name} accepts dashboard keys but names no agency_field"
    field = _resolve_field(method.input_type, rule.agency_field)
    assert field.type == FieldDescriptor.TYPE_STRING
    assert not field.is_repeated


SCOPED_METHODS = [
    (service, method)
    for service, method in ALL_METHODS
    if (rule := rule_of(service, method.name)) is not None and rule.agency_field
]


@pytest.mark.parametrize(
    ("service", "method"), SCOPED_METHODS, ids=[f"{s.name}.{m.name}" for s, m in SCOPED_METHODS]
)
def test_declared_agency_fields_exist_whoever_may_call(
    service: ServiceDescriptor, method: MethodDescriptor
) -> None:
    rule = rule_of(service, method.name)
    assert rule is not None
    assert _resolve_field(method.input_type, rule.agency_field).type == FieldDescriptor.TYPE_STRING


def test_known_rules_of_the_registry() -> None:
    registry = next(s for s in SERVICES if s.name == "RegistryService")
    assert rule_of(registry, "RegisterDashboard") == AccessRule(frozenset({options_pb2.CREDENTIAL_PSK}))
    assert rule_of(registry, "GetDashboardConfig") == AccessRule(
        frozenset({options_pb2.CREDENTIAL_PSK, options_pb2.CREDENTIAL_DASHBOARD_KEY}), "agency_id"
    )


def test_admin_rpcs_take_only_the_master_key() -> None:
    admin = next(s for s in SERVICES if s.name == "AdminService")
    for method in admin.methods:
        assert rule_of(admin, method.name) == AccessRule(frozenset({options_pb2.CREDENTIAL_MASTER_KEY}))


# --- a synthetic service, built outside the contract ----------------------------------------


def _synthetic_service() -> ServiceDescriptor:
    file = descriptor_pb2.FileDescriptorProto(
        name="unit_test/synthetic.proto", package="unit_test.synthetic", syntax="proto3"
    )
    message = file.message_type.add(name="Req")
    message.field.add(
        name="agency_id",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    service = file.service.add(name="Synthetic")
    req = ".unit_test.synthetic.Req"
    service.method.add(name="NoOptions", input_type=req, output_type=req)
    unrelated = service.method.add(name="UnrelatedOption", input_type=req, output_type=req)
    unrelated.options.deprecated = True
    empty = service.method.add(name="EmptyPolicy", input_type=req, output_type=req)
    empty.options.Extensions[options_pb2.access].agency_field = "agency_id"
    unspecified = service.method.add(name="OnlyUnspecified", input_type=req, output_type=req)
    unspecified.options.Extensions[options_pb2.access].credentials.append(options_pb2.CREDENTIAL_UNSPECIFIED)
    declared = service.method.add(name="Declared", input_type=req, output_type=req)
    policy = declared.options.Extensions[options_pb2.access]
    policy.credentials.extend(
        [options_pb2.CREDENTIAL_UNSPECIFIED, options_pb2.CREDENTIAL_PSK, options_pb2.CREDENTIAL_PSK]
    )
    policy.agency_field = "agency_id"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool.FindServiceByName("unit_test.synthetic.Synthetic")


@pytest.mark.parametrize("method", ["NoOptions", "UnrelatedOption", "EmptyPolicy", "OnlyUnspecified"])
def test_rpc_without_a_usable_policy_yields_none(method: str) -> None:
    assert rule_of(_synthetic_service(), method) is None


def test_synthetic_declared_policy_drops_unspecified() -> None:
    assert rule_of(_synthetic_service(), "Declared") == AccessRule(
        frozenset({options_pb2.CREDENTIAL_PSK}), "agency_id"
    )


def test_unknown_method_name_is_an_error_not_a_rule() -> None:
    with pytest.raises(KeyError):
        rule_of(SERVICES[0], "NoSuchMethod")


def test_policy_table_of_synthetic_service_fails_closed() -> None:
    service = _synthetic_service()
    table = build_policy_table([service])
    assert lookup(table, "/unit_test.synthetic.Synthetic/NoOptions") is None
    assert lookup(table, "/unit_test.synthetic.Synthetic/Declared") == AccessRule(
        frozenset({options_pb2.CREDENTIAL_PSK}), "agency_id"
    )


# --- table and lookup -----------------------------------------------------------------------


def test_method_path() -> None:
    assert method_path(SERVICES[0], "X") == f"/{SERVICES[0].full_name}/X"
    assert method_path(SERVICES[0], "X").startswith("/workflow_engine.v1.")


def test_policy_table_has_every_method_with_its_rule() -> None:
    table = policy_table()
    for service, method in ALL_METHODS:
        path = f"/{service.full_name}/{method.name}"
        assert path in table
        assert lookup(table, path) == rule_of(service, method.name)
        assert lookup(table, path) is not None


@pytest.mark.parametrize(
    "path",
    [
        "/workflow_engine.v1.RegistryService/NoSuchMethod",
        "/workflow_engine.v1.AdminService/",
        "/workflow_engine.v1.NoSuchService/Get",
        "/workflow_engine.v1.RegistryService/RegisterDashboard/extra",
        "/grpc.health.v1.HealthX/Check",
        "/grpc.health.v1/Check",
        "",
        "garbage",
        "/",
    ],
)
def test_lookup_unknown_paths_is_none(path: str) -> None:
    assert lookup(policy_table(), path) is None


@pytest.mark.parametrize(
    "path",
    [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ],
)
def test_lookup_infrastructure_is_open(path: str) -> None:
    rule = lookup(policy_table(), path)
    assert rule is OPEN_RULE
    assert rule.allows(options_pb2.CREDENTIAL_NONE)
    assert not rule.agency_field


def test_open_infrastructure_services_are_only_health_and_reflection() -> None:
    assert set(OPEN_INFRASTRUCTURE_SERVICES) == {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }


def test_lookup_on_an_empty_table_is_none() -> None:
    assert lookup({}, "/grpc.health.v1.Health/Check") is None
    assert lookup({}, "/workflow_engine.v1.RegistryService/RegisterDashboard") is None


def test_access_rule_allows() -> None:
    rule = AccessRule(frozenset({options_pb2.CREDENTIAL_PSK, options_pb2.CREDENTIAL_DASHBOARD_KEY}))
    assert rule.allows(options_pb2.CREDENTIAL_PSK)
    assert rule.allows(options_pb2.CREDENTIAL_DASHBOARD_KEY)
    assert not rule.allows(options_pb2.CREDENTIAL_MASTER_KEY)
    assert not rule.allows(options_pb2.CREDENTIAL_NONE)
    assert OPEN_RULE.credentials == frozenset({options_pb2.CREDENTIAL_NONE})


def test_field_resolution_follows_dots_and_fails_on_unknown_names() -> None:
    from workflow_engine.v1 import registry_pb2

    response = registry_pb2.GetDashboardConfigResponse.DESCRIPTOR
    assert _resolve_field(response, "config.agency_id").full_name == (
        "workflow_engine.v1.DashboardConfig.agency_id"
    )
    with pytest.raises(AssertionError):
        _resolve_field(response, "config.no_such_field")
    with pytest.raises(AssertionError):
        _resolve_field(response, "agency_id")
