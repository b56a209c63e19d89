"""The routing table: routes_of over google.api.http rules, Router matching, 404/405, conflicts.

The routes come from a synthetic service built in a private descriptor pool, plus a check of the
engine's own contract at the end.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

from engine.gateway.routes import NoRoute, Route, RouteConflictError, Router, routes_of
from engine.gateway.template import PathTemplate
from engine.gateway.transcode import build_request
from engine.rpc.server import SERVICES
from tests.support.protos import http_rule, private_pool

# --- the synthetic services ---------------------------------------------------------------------------

PACKAGE = "routetest.v1"
_F = descriptor_pb2.FieldDescriptorProto


# service → [(method, rule or None)]; every method takes a Req and returns a Sub.
_SERVICES: dict[str, list[tuple[str, http_pb2.HttpRule | None]]] = {
    "ThingService": [
        ("Get", http_rule(get="/v1/things/{id}")),
        ("GetSpecial", http_rule(get="/v1/things/special")),
        ("List", http_rule(get="/v1/things")),
        (
            "Create",
            http_rule(
                post="/v1/things",
                body="*",
                additional=[
                    http_rule(put="/v1/things/{id}", body="*"),
                    http_rule(custom=("head", "/v1/things/{id}")),
                ],
            ),
        ),
        ("Update", http_rule(patch="/v1/things/{thing.id}", body="thing")),
        ("Cancel", http_rule(post="/v1/things/{id}:cancel", body="*")),
        ("Batch", http_rule(post="/v1/things:batch", body="*")),
        ("GetByName", http_rule(get="/v1/{name=things/*}/meta", response_body="thing")),
        ("Read", http_rule(get="/v1/files/{path=**}")),
        ("ReadMeta", http_rule(get="/v1/files/{path=**}:meta")),
        ("NoHttp", None),
    ],
    "BrokenService": [("Bad", http_rule(get="/v1/{id"))],
    "ClashService": [
        ("ById", http_rule(get="/v1/clash/{id}")),
        ("ByName", http_rule(get="/v1/clash/{name=*}")),
        ("Other", http_rule(post="/v1/clash/{id}", body="*")),
    ],
}


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = private_pool(annotations_pb2)
    file = descriptor_pb2.FileDescriptorProto(
        name="routetest/v1/routes.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    sub = file.message_type.add(name="Sub")
    sub.field.add(name="id", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    request = file.message_type.add(name="Req")
    for number, name in enumerate(("id", "name", "path"), start=1):
        request.field.add(name=name, number=number, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    request.field.add(
        name="thing", number=4, type=_F.TYPE_MESSAGE, type_name=f".{PACKAGE}.Sub", label=_F.LABEL_OPTIONAL
    )
    for service_name, methods in _SERVICES.items():
        service = file.service.add(name=service_name)
        for method_name, rule in methods:
            method = service.method.add(
                name=method_name, input_type=f".{PACKAGE}.Req", output_type=f".{PACKAGE}.Sub"
            )
            if rule is not None:
                options = descriptor_pb2.MethodOptions()
                options.Extensions[annotations_pb2.http].CopyFrom(rule)
                method.options.ParseFromString(options.SerializeToString())
    pool.Add(file)
    return pool


POOL = _build_pool()


def _service(name: str) -> ServiceDescriptor:
    return POOL.FindServiceByName(f"{PACKAGE}.{name}")


THINGS = _service("ThingService")
ROUTES = routes_of([THINGS])
ROUTER = Router(ROUTES)
REVERSED_ROUTER = Router(reversed(ROUTES))
GET: MethodDescriptor = THINGS.methods_by_name["Get"]


def _route(http_method: str, template: str, rpc: MethodDescriptor = GET) -> Route:
    return Route(http_method, PathTemplate.parse(template), rpc, "", "")


# --- routes_of ----------------------------------------------------------------------------------------


def test_routes_of_lists_every_binding() -> None:
    found = [(r.rpc.name, r.http_method, r.template.text, r.body, r.response_body) for r in ROUTES]
    assert found == [
        ("Get", "GET", "/v1/things/{id}", "", ""),
        ("GetSpecial", "GET", "/v1/things/special", "", ""),
        ("List", "GET", "/v1/things", "", ""),
        ("Create", "POST", "/v1/things", "*", ""),
        ("Create", "PUT", "/v1/things/{id}", "*", ""),
        ("Create", "HEAD", "/v1/things/{id}", "", ""),
        ("Update", "PATCH", "/v1/things/{thing.id}", "thing", ""),
        ("Cancel", "POST", "/v1/things/{id}:cancel", "*", ""),
        ("Batch", "POST", "/v1/things:batch", "*", ""),
        ("GetByName", "GET", "/v1/{name=things/*}/meta", "", "thing"),
        ("Read", "GET", "/v1/files/{path=**}", "", ""),
        ("ReadMeta", "GET", "/v1/files/{path=**}:meta", "", ""),
    ]
    assert {r.grpc_path for r in ROUTES} >= {
        f"/{PACKAGE}.ThingService/Get",
        f"/{PACKAGE}.ThingService/Create",
    }
    assert {r.rpc.containing_service.full_name for r in ROUTES} == {THINGS.full_name}
    assert "NoHttp" not in {r.rpc.name for r in ROUTES}


def test_routes_of_several_services_and_none() -> None:
    assert routes_of([]) == []
    both = routes_of([THINGS, _service("ClashService")])
    assert [r.rpc.name for r in both][-3:] == ["ById", "ByName", "Other"]
    assert len(both) == len(ROUTES) + 3


def test_routes_of_reports_a_bad_template() -> None:
    with pytest.raises(RouteConflictError, match=r"routetest\.v1\.BrokenService\.Bad.*'/v1/\{id'"):
        routes_of([_service("BrokenService")])


def test_conflicting_rules_of_a_service_stop_the_router() -> None:
    routes = routes_of([_service("ClashService")])
    with pytest.raises(RouteConflictError) as raised:
        Router(routes)
    message = str(raised.value)
    assert "ClashService.ById" in message
    assert "ClashService.ByName" in message
    # Without the clashing GET, the same template serves two methods happily.
    Router([r for r in routes if r.rpc.name != "ByName"])


# --- matching -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("router", [ROUTER, REVERSED_ROUTER], ids=["declared", "reversed"])
@pytest.mark.parametrize(
    ("http_method", "path", "rpc", "template", "bindings"),
    [
        ("GET", "/v1/things/abc", "Get", "/v1/things/{id}", {"id": "abc"}),
        # The most specific template wins: the literal beats the variable.
        ("GET", "/v1/things/special", "GetSpecial", "/v1/things/special", {}),
        ("GET", "/v1/things/sp%65cial", "GetSpecial", "/v1/things/special", {}),
        # ... but only among routes of the request's method.
        ("PATCH", "/v1/things/special", "Update", "/v1/things/{thing.id}", {"thing.id": "special"}),
        ("GET", "/v1/things", "List", "/v1/things", {}),
        ("POST", "/v1/things", "Create", "/v1/things", {}),
        # Additional bindings, a custom HTTP method among them.
        ("PUT", "/v1/things/t1", "Create", "/v1/things/{id}", {"id": "t1"}),
        ("HEAD", "/v1/things/t1", "Create", "/v1/things/{id}", {"id": "t1"}),
        # Custom verbs.
        ("POST", "/v1/things/t1:cancel", "Cancel", "/v1/things/{id}:cancel", {"id": "t1"}),
        ("POST", "/v1/things/a:b:cancel", "Cancel", "/v1/things/{id}:cancel", {"id": "a:b"}),
        # The verb is split off at a real ":" and then compared decoded.
        ("POST", "/v1/things/t1:%63ancel", "Cancel", "/v1/things/{id}:cancel", {"id": "t1"}),
        ("POST", "/v1/things:batch", "Batch", "/v1/things:batch", {}),
        # A template without a verb takes a ":" as part of the value (grpc-gateway does the same).
        ("GET", "/v1/things/t1:cancel", "Get", "/v1/things/{id}", {"id": "t1:cancel"}),
        # Percent-decoding of values, except for "%2F".
        ("GET", "/v1/things/caf%C3%A9", "Get", "/v1/things/{id}", {"id": "café"}),
        ("GET", "/v1/things/a%2Fb", "Get", "/v1/things/{id}", {"id": "a%2Fb"}),
        ("GET", "/v1/things/%41", "Get", "/v1/things/{id}", {"id": "A"}),
        # Multi-segment variables.
        ("GET", "/v1/things/t1/meta", "GetByName", "/v1/{name=things/*}/meta", {"name": "things/t1"}),
        ("GET", "/v1/files/a/b/c", "Read", "/v1/files/{path=**}", {"path": "a/b/c"}),
        ("GET", "/v1/files/a", "Read", "/v1/files/{path=**}", {"path": "a"}),
        ("GET", "/v1/files", "Read", "/v1/files/{path=**}", {"path": ""}),
        ("GET", "/v1/files/a//b/", "Read", "/v1/files/{path=**}", {"path": "a//b/"}),
        ("GET", "/v1/files/a/b:meta", "ReadMeta", "/v1/files/{path=**}:meta", {"path": "a/b"}),
        ("GET", "/v1/files:meta", "ReadMeta", "/v1/files/{path=**}:meta", {"path": ""}),
        ("GET", "/v1/files/a/b:other", "Read", "/v1/files/{path=**}", {"path": "a/b:other"}),
    ],
)
def test_match(
    router: Router, http_method: str, path: str, rpc: str, template: str, bindings: dict[str, str]
) -> None:
    match = router.match(http_method, path)
    assert (match.route.rpc.name, match.route.http_method, match.route.template.text) == (
        rpc,
        http_method,
        template,
    )
    assert match.bindings == bindings
    # The chosen route is the most specific of the routes of that method that match the path.
    candidates = [
        r for r in router.routes if r.http_method == http_method and r.template.match(path) is not None
    ]
    assert match.route.template.specificity == max(r.template.specificity for r in candidates)


@pytest.mark.parametrize("router", [ROUTER, REVERSED_ROUTER], ids=["declared", "reversed"])
@pytest.mark.parametrize(
    ("http_method", "path", "allowed"),
    [
        # 405: the path is served, by other methods.
        ("DELETE", "/v1/things/t1", {"GET", "PUT", "HEAD", "PATCH"}),
        ("POST", "/v1/things/special", {"GET", "PUT", "HEAD", "PATCH"}),
        ("DELETE", "/v1/things", {"GET", "POST"}),
        ("GET", "/v1/things:batch", {"POST"}),
        # An encoded ":" is data, not the start of a verb.
        ("POST", "/v1/things/t1%3Acancel", {"GET", "PUT", "HEAD", "PATCH"}),
        ("POST", "/v1/files/a/b", {"GET"}),
        ("POST", "/v1/files/x:meta", {"GET"}),
        # HTTP methods are case-sensitive.
        ("get", "/v1/things", {"GET", "POST"}),
        # 404: nothing serves the path at all.
        ("GET", "/v1/nothing", set()),
        ("GET", "/v2/things", set()),
        ("GET", "/v1/things/", set()),
        ("GET", "/v1/things/a/b", set()),
        ("GET", "/v1/things/t1/meta/x", set()),
        ("GET", "/v1/things/%zz", set()),
        ("GET", "/v1/things/%C3", set()),
        ("GET", "v1/things", set()),
        ("GET", "", set()),
        ("GET", "/", set()),
        ("POST", "/v1/things:unknown", set()),
    ],
)
def test_no_route(router: Router, http_method: str, path: str, allowed: set[str]) -> None:
    with pytest.raises(NoRoute) as raised:
        router.match(http_method, path)
    assert set(raised.value.allowed) == allowed
    assert len(raised.value.allowed) == len(allowed)  # each method once
    assert isinstance(raised.value.allowed, tuple)


@pytest.mark.parametrize(
    ("templates", "path", "winner"),
    [
        (["/v1/things/{id}", "/v1/things/special"], "/v1/things/special", "/v1/things/special"),
        (["/v1/things/{id}", "/v1/things/special"], "/v1/things/other", "/v1/things/{id}"),
        (["/v1/{a}/b", "/v1/a/{b}"], "/v1/a/b", "/v1/a/{b}"),
        (["/v1/files/{p=**}", "/v1/files/{name}"], "/v1/files/x", "/v1/files/{name}"),
        (["/v1/files/{p=**}", "/v1/files/{name}"], "/v1/files/x/y", "/v1/files/{p=**}"),
        (["/v1/files/{p=**}", "/v1/files"], "/v1/files", "/v1/files"),
        (["/v1/**", "/v1/files/**"], "/v1/files/x", "/v1/files/**"),
        (["/v1/**", "/v1/files/**"], "/v1/other/x", "/v1/**"),
        (["/v1/{id}", "/v1/{id}:run"], "/v1/x:run", "/v1/{id}:run"),
        (["/v1/{id}", "/v1/{id}:run"], "/v1/x", "/v1/{id}"),
        (["/v1/{p=**}", "/v1/{p=**}:run"], "/v1/a/b:run", "/v1/{p=**}:run"),
        (["/{p=**}", "/v1/{name=things/*}"], "/v1/things/x", "/v1/{name=things/*}"),
    ],
)
def test_most_specific_template_wins(templates: list[str], path: str, winner: str) -> None:
    for ordered in (templates, templates[::-1]):
        router = Router([_route("GET", template) for template in ordered])
        assert router.match("GET", path).route.template.text == winner


# --- conflicts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/v1/things/{id}", "/v1/things/{name=*}"),
        ("/v1/things/{id}", "/v1/things/*"),
        ("/v1/things/{id}", "/v1/things/{id}"),
        ("/v1/things/A", "/v1/things/%41"),
        ("/v1/caf%C3%A9", "/v1/caf%c3%a9"),
        ("/v1/{name=things/*}/meta", "/v1/things/{id}/meta"),
        ("/v1/files/{path=**}", "/v1/files/**"),
        ("/v1/{path=**}", "/v1/{name=**}"),
        ("/v1/{id}:run", "/v1/{name=*}:run"),
        ("/v1/x:run", "/v1/x:%72un"),
        ("/v1/{a}/{b}", "/v1/{b}/{a}"),
    ],
)
def test_equivalent_templates_of_one_method_conflict(first: str, second: str) -> None:
    other = THINGS.methods_by_name["List"]
    for routes in (
        [_route("GET", first), _route("GET", second, other)],
        [_route("GET", second, other), _route("GET", first)],
    ):
        with pytest.raises(RouteConflictError) as raised:
            Router(routes)
        message = str(raised.value)
        assert f"{PACKAGE}.ThingService.Get" in message
        assert f"{PACKAGE}.ThingService.List" in message
    assert PathTemplate.parse(first).shape() == PathTemplate.parse(second).shape()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/v1/things/{id}", "/v1/things/special"),
        ("/v1/things/{id}", "/v1/things/{id}:cancel"),
        ("/v1/things/{id}:a", "/v1/things/{id}:b"),
        ("/v1/things/*", "/v1/things/**"),
        ("/v1/things", "/v1/things/{id}"),
        ("/v1/things", "/v1/Things"),
        ("/v1/{a}/b", "/v1/a/{b}"),
        ("/v1/%2A", "/v1/*"),
    ],
)
def test_different_templates_do_not_conflict(first: str, second: str) -> None:
    router = Router([_route("GET", first), _route("GET", second)])
    assert len(router.routes) == 2


@pytest.mark.parametrize(
    "methods",
    [("GET", "POST"), ("GET", "PUT", "PATCH", "DELETE", "POST", "HEAD")],
)
def test_one_template_for_several_methods_does_not_conflict(methods: tuple[str, ...]) -> None:
    router = Router([_route(method, "/v1/things/{id}") for method in methods])
    for method in methods:
        assert router.match(method, "/v1/things/x").route.http_method == method
    with pytest.raises(NoRoute) as raised:
        router.match("OPTIONS", "/v1/things/x")
    assert set(raised.value.allowed) == set(methods)


# --- the engine's own contract ------------------------------------------------------------------------

ENGINE_ROUTES = routes_of(SERVICES)


def test_engine_contract_builds_a_router() -> None:
    router = Router(ENGINE_ROUTES)
    assert len(router.routes) == len(ENGINE_ROUTES) > 0
    assert {route.rpc.containing_service.full_name for route in ENGINE_ROUTES} == {
        service.full_name for service in SERVICES
    }


def _leaf(route: Route, field_path: str) -> FieldDescriptor:
    message: Descriptor | None = route.rpc.input_type
    field: FieldDescriptor | None = None
    for part in field_path.split("."):
        assert message is not None, f"{field_path} goes through a scalar"
        field = message.fields_by_name[part]
        message = field.message_type
    assert field is not None
    return field


def _sample_value(field: FieldDescriptor, index: int) -> str:
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "true"
    if field.enum_type is not None:
        return field.enum_type.values[-1].name
    if field.cpp_type in (
        FieldDescriptor.CPPTYPE_INT32,
        FieldDescriptor.CPPTYPE_INT64,
        FieldDescriptor.CPPTYPE_UINT32,
        FieldDescriptor.CPPTYPE_UINT64,
    ):
        return str(index + 7)
    if field.cpp_type in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return f"{index + 7}.5"
    return f"sample-{index}"


def _sample_path(route: Route) -> tuple[str, dict[str, str]]:
    """A request path the route's template matches, and the bindings it should produce."""
    template = route.template
    owner: dict[int, str] = {}
    for variable in template.variables:
        end = len(template.segments) if variable.end is None else variable.end
        for index in range(variable.start, end):
            owner[index] = variable.field_path
    pieces: list[str] = []
    for index, segment in enumerate(template.segments):
        field_path = owner.get(index)
        if segment == "**":
            pieces.append(f"deep-{index}/more-{index}")
        elif segment == "*":
            pieces.append(_sample_value(_leaf(route, field_path), index) if field_path else f"any-{index}")
        else:
            pieces.append(segment)
    path = "/" + "/".join(pieces) + (f":{template.verb}" if template.verb else "")
    bindings: dict[str, str] = {}
    for variable in template.variables:
        end = len(pieces) if variable.end is None else variable.end
        bindings[variable.field_path] = "/".join(pieces[variable.start : end])
    return path, bindings


@pytest.fixture(scope="module")
def engine_router() -> Router:
    return Router(ENGINE_ROUTES)


def _ids(routes: Iterable[Route]) -> list[str]:
    return [f"{route.http_method} {route.template.text}" for route in routes]


@pytest.mark.parametrize("route", ENGINE_ROUTES, ids=_ids(ENGINE_ROUTES))
def test_engine_route_serves_its_sample_path(route: Route, engine_router: Router) -> None:
    path, bindings = _sample_path(route)
    assert route.template.match(path) == bindings
    match = engine_router.match(route.http_method, path)
    assert match.route == route
    assert match.bindings == bindings
    # The bound values land in the request message's fields.
    request = build_request(route, match.bindings, [], b"", "application/json")
    for field_path, value in bindings.items():
        target = request
        *parents, leaf = field_path.split(".")
        for part in parents:
            target = getattr(target, part)
        field = _leaf(route, field_path)
        actual = getattr(target, leaf)
        if field.enum_type is not None:
            actual = field.enum_type.values_by_number[actual].name
        elif field.type == FieldDescriptor.TYPE_BOOL:
            actual = str(actual).lower()
        assert str(actual) == value
