"""HTTP ↔ proto transcoding against a synthetic service built in a private descriptor pool.

Nothing here uses the engine's own contract: the service below is assembled in code, with
google.api.http rules covering the mapping features of google/api/http.proto, so the tests pin
the generic gateway behaviour (grpc-gateway conventions) rather than any one API.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qsl

import pytest
from google.api import annotations_pb2, http_pb2, httpbody_pb2
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    field_mask_pb2,
    message_factory,
    text_format,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import Message

from engine.gateway.routes import Route, Router, routes_of
from engine.gateway.transcode import BadRequest, build_request, render_response
from tests.support.protos import http_rule, private_pool

# --- the synthetic service -------------------------------------------------------------------------

PACKAGE = "gwtest.v1"
_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint64": _F.TYPE_UINT64,
    "sint32": _F.TYPE_SINT32,
    "double": _F.TYPE_DOUBLE,
    "float": _F.TYPE_FLOAT,
}
_ENUMS = frozenset({"Kind"})

# (message name, [(field name, type)]); field numbers follow the order. Types are scalar names,
# local enum/message names, or fully qualified names of imported messages; "repeated " prefixes.
_MESSAGES: list[tuple[str, list[tuple[str, str]]]] = [
    ("Filter", [("kind", "Kind"), ("text", "string")]),
    (
        "Thing",
        [
            ("id", "string"),
            ("display_name", "string"),
            ("count", "int64"),
            ("kind", "Kind"),
            ("tags", "repeated string"),
            ("created", "google.protobuf.Timestamp"),
            ("ttl", "google.protobuf.Duration"),
            ("limit", "google.protobuf.Int32Value"),
            ("filter", "Filter"),
        ],
    ),
    (
        "GetThingRequest",
        [
            ("id", "string"),
            ("name", "string"),
            ("page_size", "int32"),
            ("big", "int64"),
            ("ubig", "uint64"),
            ("flag", "bool"),
            ("score", "double"),
            ("kind", "Kind"),
            ("tags", "repeated string"),
            ("kinds", "repeated Kind"),
            ("filter", "Filter"),
            ("since", "google.protobuf.Timestamp"),
            ("timeout", "google.protobuf.Duration"),
            ("limit", "google.protobuf.Int32Value"),
            ("mask", "google.protobuf.FieldMask"),
            ("ratio", "float"),
            ("filters", "repeated Filter"),
            ("strict", "google.protobuf.BoolValue"),
            ("label", "google.protobuf.StringValue"),
            ("blob", "bytes"),
            ("delta", "sint32"),
            ("extra", "google.protobuf.Any"),
        ],
    ),
    ("CreateThingRequest", [("shelf", "string"), ("thing", "Thing"), ("request_id", "string")]),
    ("UpdateThingRequest", [("thing", "Thing"), ("update_mask", "google.protobuf.FieldMask")]),
    ("CancelThingRequest", [("id", "string"), ("reason", "string")]),
    ("UploadRequest", [("upload_id", "string"), ("raw", "google.api.HttpBody"), ("checksum", "string")]),
    ("NameRequest", [("name", "string"), ("inline", "bool")]),
    ("FileRequest", [("path", "string"), ("follow", "bool"), ("content", "string")]),
    ("CounterRequest", [("value", "int64"), ("note", "string")]),
    ("NoteRequest", [("note", "string"), ("tags", "repeated string")]),
    ("ListThingsRequest", [("page_size", "int32"), ("page_token", "string")]),
    ("ListThingsResponse", [("things", "repeated Thing"), ("next_page_token", "string")]),
    ("ThingEnvelope", [("thing", "Thing"), ("etag", "string"), ("content", "google.api.HttpBody")]),
]


# (method, request, response, rule)
_METHODS: list[tuple[str, str, str, http_pb2.HttpRule]] = [
    ("GetThing", "GetThingRequest", "Thing", http_rule(get="/v1/things/{id}")),
    ("GetSpecialThing", "GetThingRequest", "Thing", http_rule(get="/v1/things/special")),
    ("ListThings", "ListThingsRequest", "ListThingsResponse", http_rule(get="/v1/things")),
    ("SearchThings", "ListThingsRequest", "ListThingsResponse", http_rule(custom=("search", "/v1/things"))),
    (
        "ListThingItems",
        "ListThingsRequest",
        "ListThingsResponse",
        http_rule(get="/v1/things:items", response_body="things"),
    ),
    (
        "CreateThing",
        "CreateThingRequest",
        "Thing",
        http_rule(
            post="/v1/shelves/{shelf}/things",
            body="*",
            additional=[http_rule(post="/v1/things", body="thing")],
        ),
    ),
    ("UpdateThing", "UpdateThingRequest", "Thing", http_rule(patch="/v1/things/{thing.id}", body="thing")),
    ("LookupThing", "UpdateThingRequest", "Thing", http_rule(get="/v1/lookup/{thing.id}")),
    ("DeleteThing", "CancelThingRequest", "Thing", http_rule(delete="/v1/things/{id}")),
    ("CancelThing", "CancelThingRequest", "Thing", http_rule(post="/v1/things/{id}:cancel", body="*")),
    (
        "GetThingSummary",
        "CancelThingRequest",
        "ThingEnvelope",
        http_rule(
            get="/v1/things/{id}/summary",
            response_body="thing",
            additional=[http_rule(get="/v1/things/{id}/attachment", response_body="content")],
        ),
    ),
    ("UploadThing", "UploadRequest", "Thing", http_rule(post="/v1/uploads/{upload_id}", body="raw")),
    ("Echo", "google.api.HttpBody", "google.api.HttpBody", http_rule(post="/v1/echo", body="*")),
    ("DownloadThing", "NameRequest", "google.api.HttpBody", http_rule(get="/v1/{name=things/*}/content")),
    ("ReadFile", "FileRequest", "google.api.HttpBody", http_rule(get="/v1/files/{path=**}")),
    ("WriteFile", "FileRequest", "Thing", http_rule(post="/v1/files/{path=**}", body="*")),
    ("SetCounter", "CounterRequest", "Thing", http_rule(post="/v1/counters/{value}:set", body="*")),
    ("SetNote", "NoteRequest", "Thing", http_rule(post="/v1/notes", body="note")),
    ("TagNote", "NoteRequest", "Thing", http_rule(post="/v1/notes:tag", body="tags")),
]


def _type_name(name: str) -> str:
    return f".{name}" if "." in name else f".{PACKAGE}.{name}"


def _file_proto() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="gwtest/v1/things.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=[
            "google/protobuf/timestamp.proto",
            "google/protobuf/duration.proto",
            "google/protobuf/wrappers.proto",
            "google/protobuf/field_mask.proto",
            "google/protobuf/any.proto",
            "google/api/annotations.proto",
            "google/api/httpbody.proto",
        ],
    )
    kind = file.enum_type.add(name="Kind")
    for number, value in enumerate(("KIND_UNSPECIFIED", "KIND_A", "KIND_B")):
        kind.value.add(name=value, number=number)
    for message_name, fields in _MESSAGES:
        message = file.message_type.add(name=message_name)
        for number, (field_name, field_type) in enumerate(fields, start=1):
            repeated = field_type.startswith("repeated ")
            field_type = field_type.removeprefix("repeated ")
            field = message.field.add(
                name=field_name,
                number=number,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if field_type in _SCALARS:
                field.type = _SCALARS[field_type]
            else:
                field.type = _F.TYPE_ENUM if field_type in _ENUMS else _F.TYPE_MESSAGE
                field.type_name = _type_name(field_type)
    service = file.service.add(name="ThingService")
    for method_name, request, response, rule in _METHODS:
        options = descriptor_pb2.MethodOptions()
        options.Extensions[annotations_pb2.http].CopyFrom(rule)
        service.method.add(
            name=method_name,
            input_type=_type_name(request),
            output_type=_type_name(response),
            options=descriptor_pb2.MethodOptions.FromString(options.SerializeToString()),
        )
    return file


def _build_service() -> tuple[descriptor_pool.DescriptorPool, ServiceDescriptor]:
    pool = private_pool(
        timestamp_pb2,
        duration_pb2,
        wrappers_pb2,
        field_mask_pb2,
        annotations_pb2,
        httpbody_pb2,
    )
    pool.Add(_file_proto())
    return pool, pool.FindServiceByName(f"{PACKAGE}.ThingService")


POOL, SERVICE = _build_service()
ROUTES = routes_of([SERVICE])
ROUTER = Router(ROUTES)


def _type(name: str) -> Descriptor:
    return POOL.FindMessageTypeByName(name if "." in name else f"{PACKAGE}.{name}")


def _new(name: str, text: str = "") -> Message:
    """A message of the synthetic pool from its text format."""
    return text_format.Parse(text, message_factory.GetMessageClass(_type(name))())


def _route(rpc: str, template: str) -> Route:
    [route] = [r for r in ROUTES if r.rpc.name == rpc and r.template.text == template]
    return route


def _request(
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    content_type: str = "application/json",
) -> Message:
    """Routes `method path?query` and builds the request message, as the gateway app does."""
    match = ROUTER.match(method, path)
    return build_request(
        match.route, match.bindings, parse_qsl(query, keep_blank_values=True), body, content_type
    )


def _text(message: Message) -> str:
    return text_format.MessageToString(message, as_one_line=True)


def _assert_message(actual: Message, type_name: str, expected_text: str) -> None:
    expected = _new(type_name, expected_text)
    assert actual.DESCRIPTOR.full_name == expected.DESCRIPTOR.full_name
    assert _text(actual) == _text(expected)


# --- the descriptor itself -----------------------------------------------------------------------------


def test_every_rule_becomes_a_route() -> None:
    found = {(r.rpc.name, r.http_method, r.template.text, r.body, r.response_body) for r in ROUTES}
    assert found == {
        ("GetThing", "GET", "/v1/things/{id}", "", ""),
        ("GetSpecialThing", "GET", "/v1/things/special", "", ""),
        ("ListThings", "GET", "/v1/things", "", ""),
        ("SearchThings", "SEARCH", "/v1/things", "", ""),
        ("ListThingItems", "GET", "/v1/things:items", "", "things"),
        ("CreateThing", "POST", "/v1/shelves/{shelf}/things", "*", ""),
        ("CreateThing", "POST", "/v1/things", "thing", ""),
        ("UpdateThing", "PATCH", "/v1/things/{thing.id}", "thing", ""),
        ("LookupThing", "GET", "/v1/lookup/{thing.id}", "", ""),
        ("DeleteThing", "DELETE", "/v1/things/{id}", "", ""),
        ("CancelThing", "POST", "/v1/things/{id}:cancel", "*", ""),
        ("GetThingSummary", "GET", "/v1/things/{id}/summary", "", "thing"),
        ("GetThingSummary", "GET", "/v1/things/{id}/attachment", "", "content"),
        ("UploadThing", "POST", "/v1/uploads/{upload_id}", "raw", ""),
        ("Echo", "POST", "/v1/echo", "*", ""),
        ("DownloadThing", "GET", "/v1/{name=things/*}/content", "", ""),
        ("ReadFile", "GET", "/v1/files/{path=**}", "", ""),
        ("WriteFile", "POST", "/v1/files/{path=**}", "*", ""),
        ("SetCounter", "POST", "/v1/counters/{value}:set", "*", ""),
        ("SetNote", "POST", "/v1/notes", "note", ""),
        ("TagNote", "POST", "/v1/notes:tag", "tags", ""),
    }
    assert len(ROUTES) == len(found)
    for route in ROUTES:
        assert route.grpc_path == f"/{PACKAGE}.ThingService/{route.rpc.name}"


# --- query parameters (GET, no body) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", 'id: "t1"'),
        # Proto names and JSON names alike.
        ("name=n&page_size=5", 'id: "t1" name: "n" page_size: 5'),
        ("pageSize=5", 'id: "t1" page_size: 5'),
        ("pageSize=-7", 'id: "t1" page_size: -7'),
        ("delta=-3", 'id: "t1" delta: -3'),
        # 64-bit integers keep every digit.
        ("big=9007199254740993", 'id: "t1" big: 9007199254740993'),
        ("big=-9223372036854775808", 'id: "t1" big: -9223372036854775808'),
        ("ubig=18446744073709551615", 'id: "t1" ubig: 18446744073709551615'),
        # Booleans: true/false, any case, and 1/0.
        ("flag=true", 'id: "t1" flag: true'),
        ("flag=True", 'id: "t1" flag: true'),
        ("flag=1", 'id: "t1" flag: true'),
        ("flag=false&page_size=1", 'id: "t1" page_size: 1'),
        ("flag=0", 'id: "t1"'),
        # Floating point.
        ("score=1.5", 'id: "t1" score: 1.5'),
        ("score=-2e3", 'id: "t1" score: -2000'),
        ("score=7", 'id: "t1" score: 7'),
        ("ratio=0.25", 'id: "t1" ratio: 0.25'),
        # Enums by name or by number.
        ("kind=KIND_B", 'id: "t1" kind: KIND_B'),
        ("kind=1", 'id: "t1" kind: KIND_A'),
        # Repeated fields as repeated keys, order kept, names and numbers mixed for enums.
        ("tags=a&tags=b&tags=a", 'id: "t1" tags: ["a", "b", "a"]'),
        ("kinds=KIND_A&kinds=2", 'id: "t1" kinds: [KIND_A, KIND_B]'),
        # Nested message fields by dotted path, proto or JSON names.
        ("filter.kind=KIND_A&filter.text=x", 'id: "t1" filter { kind: KIND_A text: "x" }'),
        ("filter.kind=2", 'id: "t1" filter { kind: KIND_B }'),
        # Well-known types in their JSON string forms.
        ("since=2024-01-02T03:04:05Z", 'id: "t1" since { seconds: 1704164645 }'),
        (
            "since=2024-01-02T03:04:05.5%2B01:00",
            'id: "t1" since { seconds: 1704161045 nanos: 500000000 }',
        ),
        ("timeout=1.5s", 'id: "t1" timeout { seconds: 1 nanos: 500000000 }'),
        ("timeout=30s", 'id: "t1" timeout { seconds: 30 }'),
        ("limit=5", 'id: "t1" limit { value: 5 }'),
        # A wrapper distinguishes an explicit zero from an absent value.
        ("limit=0", 'id: "t1" limit { }'),
        ("strict=false", 'id: "t1" strict { }'),
        ("strict=1", 'id: "t1" strict { value: true }'),
        ("label=hello", 'id: "t1" label { value: "hello" }'),
        ("mask=displayName,filter.kind", 'id: "t1" mask { paths: ["display_name", "filter.kind"] }'),
        ("blob=aGk%3D", 'id: "t1" blob: "hi"'),
        # Unknown parameters, and dotted paths through scalars, are ignored.
        ("unknown=1&name.x=2&filter.nope=3&id2=z", 'id: "t1"'),
        # The path wins: a query parameter for a path-bound field is ignored.
        ("id=other", 'id: "t1"'),
        # The last of several values of a singular field is kept.
        ("name=a&name=b", 'id: "t1" name: "b"'),
        # Blank values are the field's zero value for strings.
        ("name=", 'id: "t1"'),
    ],
)
def test_query_parameters(query: str, expected: str) -> None:
    _assert_message(_request("GET", "/v1/things/t1", query), "GetThingRequest", expected)


def test_all_query_parameters_at_once() -> None:
    query = (
        "name=n&pageSize=5&big=-12&ubig=12&flag=true&score=0.5&kind=KIND_A&tags=x&tags=y"
        "&kinds=1&kinds=KIND_B&filter.kind=KIND_B&since=1970-01-01T00:00:01Z&timeout=2s"
        "&limit=-1&mask=a,b.c&ratio=2&strict=true&label=l&delta=9"
    )
    _assert_message(
        _request("GET", "/v1/things/abc", query),
        "GetThingRequest",
        'id: "abc" name: "n" page_size: 5 big: -12 ubig: 12 flag: true score: 0.5 kind: KIND_A'
        ' tags: ["x", "y"] kinds: [KIND_A, KIND_B] filter { kind: KIND_B } since { seconds: 1 }'
        ' timeout { seconds: 2 } limit { value: -1 } mask { paths: ["a", "b.c"] } ratio: 2'
        ' strict { value: true } label { value: "l" } delta: 9',
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("score=NaN", 'id: "t1" score: nan'),
        ("score=Infinity", 'id: "t1" score: inf'),
        ("score=-Infinity", 'id: "t1" score: -inf'),
    ],
)
def test_query_non_finite_doubles(query: str, expected: str) -> None:
    _assert_message(_request("GET", "/v1/things/t1", query), "GetThingRequest", expected)


@pytest.mark.parametrize(
    ("query", "naming"),
    [
        ("flag=yes", "flag"),
        ("flag=", "flag"),
        ("flag=2", "flag"),
        ("pageSize=abc", "page_size"),
        ("pageSize=1.5", "page_size"),
        ("page_size=99999999999", "page_size"),
        ("big=12x", "big"),
        ("ubig=-1", "ubig"),
        ("score=abc", "score"),
        ("score=", "score"),
        ("ratio=1e39", "ratio"),
        ("kind=KIND_C", "kind"),
        ("kind=kind_a", "kind"),
        ("kinds=KIND_A&kinds=NOPE", "kinds"),
        ("filter.kind=NOPE", "kind"),
        ("since=yesterday", "since"),
        ("timeout=5", "timeout"),
        ("limit=many", "limit"),
        ("strict=maybe", "strict"),
        ("blob=a", "blob"),
        # Message-typed parameters that are neither wrappers nor string-valued well-known types.
        ("filter=x", "filter"),
        ("extra=x", "extra"),
        # Repeated message fields cannot be addressed from the query string.
        ("filters.kind=KIND_A", "filters"),
        ("filters=x", "filters"),
    ],
)
def test_bad_query_parameters(query: str, naming: str) -> None:
    with pytest.raises(BadRequest) as raised:
        _request("GET", "/v1/things/t1", query)
    assert naming in str(raised.value)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("filter=x", "query parameter 'filter'"),
        ("extra=x", "query parameter 'extra'"),
        ("flag=yes", "query parameter 'flag'"),
        ("score=abc", "query parameter 'score'"),
        ("filters.kind=KIND_A", "query parameter 'filters.kind'"),
    ],
)
def test_bad_query_parameter_messages_say_which_parameter(query: str, expected: str) -> None:
    with pytest.raises(BadRequest, match=expected):
        _request("GET", "/v1/things/t1", query)


@pytest.mark.parametrize("query", ["kind=--1", "kind=%C2%B2", "kinds=%C2%B9", "filter.kind=--2"])
def test_malformed_enum_numbers_are_bad_requests(query: str) -> None:
    with pytest.raises(BadRequest):
        _request("GET", "/v1/things/t1", query)


def test_unencoded_plus_in_a_query_timestamp_is_a_bad_request() -> None:
    # A raw "+" in a query string is a space (form encoding), so offsets must arrive as %2B;
    # an unencoded one is a malformed timestamp, reported as such rather than misread.
    with pytest.raises(BadRequest, match="since"):
        _request("GET", "/v1/things/t1", "since=2024-01-02T03:04:05+01:00")


# --- path variables, bodies and query parameters together ----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "content_type", "type_name", "expected"),
    [
        pytest.param(
            "POST",
            "/v1/shelves/s1/things",
            "",
            b'{"shelf": "body", "thing": {"id": "x", "displayName": "D", "count": "12"}, "requestId": "r"}',
            "application/json",
            "CreateThingRequest",
            'shelf: "s1" thing { id: "x" display_name: "D" count: 12 } request_id: "r"',
            id="body-star-path-wins",
        ),
        pytest.param(
            "POST",
            "/v1/shelves/s1/things",
            "requestId=q&shelf=z&thing.id=z&thing.count=3",
            b'{"thing": {"id": "x"}}',
            "application/json",
            "CreateThingRequest",
            'shelf: "s1" thing { id: "x" }',
            id="body-star-ignores-query",
        ),
        pytest.param(
            "POST",
            "/v1/shelves/s1/things",
            "",
            b'{"request_id": "r", "thing": {"display_name": "snake", "tags": ["a", "b"]}}',
            "application/json",
            "CreateThingRequest",
            'shelf: "s1" thing { display_name: "snake" tags: ["a", "b"] } request_id: "r"',
            id="body-star-proto-names",
        ),
        pytest.param(
            "POST",
            "/v1/shelves/s1/things",
            "",
            b"",
            "application/json",
            "CreateThingRequest",
            'shelf: "s1"',
            id="body-star-empty-body",
        ),
        pytest.param(
            "POST",
            "/v1/shelves/s1/things",
            "",
            b'{"thing": {"created": "2024-01-02T03:04:05.5Z", "ttl": "1.5s", "limit": 3, "kind": 2,'
            b' "count": 9007199254740993, "filter": {"kind": "KIND_A", "text": null}}}',
            "application/json",
            "CreateThingRequest",
            'shelf: "s1" thing { count: 9007199254740993 kind: KIND_B'
            " created { seconds: 1704164645 nanos: 500000000 } ttl { seconds: 1 nanos: 500000000 }"
            " limit { value: 3 } filter { kind: KIND_A } }",
            id="body-star-well-known-types",
        ),
        pytest.param(
            "POST",
            "/v1/things",
            "shelf=s9&requestId=q&thing.id=z&thing.displayName=zz&unknown=1",
            b'{"id": "x", "display_name": "n"}',
            "application/json",
            "CreateThingRequest",
            'shelf: "s9" thing { id: "x" display_name: "n" } request_id: "q"',
            id="additional-binding-body-field-plus-query",
        ),
        pytest.param(
            "POST",
            "/v1/things",
            "shelf=s9",
            b"",
            "application/json",
            "CreateThingRequest",
            'shelf: "s9"',
            id="body-field-empty-body",
        ),
        pytest.param(
            "PATCH",
            "/v1/things/t1",
            "updateMask=displayName,count&thing.count=5",
            b'{"id": "body", "displayName": "x", "count": "3"}',
            "application/json",
            "UpdateThingRequest",
            'thing { id: "t1" display_name: "x" count: 3 } update_mask { paths: ["display_name", "count"] }',
            id="nested-path-variable-wins-inside-body-field",
        ),
        pytest.param(
            "PATCH",
            "/v1/things/t1",
            "update_mask=tags",
            b"",
            "application/json",
            "UpdateThingRequest",
            'thing { id: "t1" } update_mask { paths: "tags" }',
            id="nested-path-variable-without-body",
        ),
        pytest.param(
            # The path binds `thing.id`, and the whole of `thing` is then left out of the query
            # (as the OpenAPI document describes it), so `thing.displayName` is ignored.
            "GET",
            "/v1/lookup/t1",
            "thing.displayName=x&updateMask=a",
            b"",
            "application/json",
            "UpdateThingRequest",
            'thing { id: "t1" } update_mask { paths: "a" }',
            id="nested-path-variable-get",
        ),
        pytest.param(
            "POST",
            "/v1/things/t1:cancel",
            "reason=q",
            b'{"reason": "r", "id": "o"}',
            "application/json",
            "CancelThingRequest",
            'id: "t1" reason: "r"',
            id="custom-verb",
        ),
        pytest.param(
            "POST",
            "/v1/things/a%3Ab:cancel",
            "",
            b"{}",
            "application/json",
            "CancelThingRequest",
            'id: "a:b"',
            id="custom-verb-encoded-colon-in-value",
        ),
        pytest.param(
            "POST",
            "/v1/things/a:b:cancel",
            "",
            b"{}",
            "application/json",
            "CancelThingRequest",
            'id: "a:b"',
            id="custom-verb-split-at-last-colon",
        ),
        pytest.param(
            "DELETE",
            "/v1/things/t1",
            "reason=gone&id=x",
            b"",
            "application/json",
            "CancelThingRequest",
            'id: "t1" reason: "gone"',
            id="delete-with-query",
        ),
        pytest.param(
            "GET",
            "/v1/things/special",
            "id=x&name=n",
            b"",
            "application/json",
            "GetThingRequest",
            'id: "x" name: "n"',
            id="literal-route-query-fills-unbound-id",
        ),
        pytest.param(
            "GET",
            "/v1/things/caf%C3%A9%20x",
            "",
            b"",
            "application/json",
            "GetThingRequest",
            'id: "café x"',
            id="path-variable-percent-decoded",
        ),
        pytest.param(
            "GET",
            "/v1/things/a%2Fb",
            "",
            b"",
            "application/json",
            "GetThingRequest",
            'id: "a%2Fb"',
            id="path-variable-keeps-encoded-slash",
        ),
        pytest.param(
            "SEARCH",
            "/v1/things",
            "pageSize=3&page_token=p",
            b"",
            "application/json",
            "ListThingsRequest",
            'page_size: 3 page_token: "p"',
            id="custom-http-method",
        ),
        pytest.param(
            "POST",
            "/v1/uploads/u1",
            "checksum=abc&upload_id=zz&raw.data=x&raw.contentType=y",
            b"\x00\xffraw",
            "application/octet-stream; charset=x",
            "UploadRequest",
            r'upload_id: "u1" raw { content_type: "application/octet-stream; charset=x" data: "\000\377raw" }'
            ' checksum: "abc"',
            id="httpbody-body-field-raw-plus-query",
        ),
        pytest.param(
            "POST",
            "/v1/uploads/u1",
            "",
            b'{"upload_id": "body"}',
            "application/json",
            "UploadRequest",
            'upload_id: "u1" raw { content_type: "application/json" data: "{\\"upload_id\\": \\"body\\"}" }',
            id="httpbody-body-field-json-is-not-parsed",
        ),
        pytest.param(
            "POST",
            "/v1/uploads/u1",
            "",
            b"",
            "",
            "UploadRequest",
            'upload_id: "u1" raw { }',
            id="httpbody-body-field-empty",
        ),
        pytest.param(
            "POST",
            "/v1/echo",
            "a=b&data=x",
            b"<xml/>  \n",
            "text/xml",
            "google.api.HttpBody",
            'content_type: "text/xml" data: "<xml/>  \\n"',
            id="httpbody-request-message",
        ),
        pytest.param(
            "GET",
            "/v1/things/a/content",
            "inline=true&name=other",
            b"",
            "application/json",
            "NameRequest",
            'name: "things/a" inline: true',
            id="multi-segment-variable",
        ),
        pytest.param(
            "GET",
            "/v1/files/a/b%2Fc/d%20e.txt",
            "follow=1",
            b"",
            "application/json",
            "FileRequest",
            'path: "a/b%2Fc/d e.txt" follow: true',
            id="double-star-variable",
        ),
        pytest.param(
            "GET",
            "/v1/files",
            "",
            b"",
            "application/json",
            "FileRequest",
            "",
            id="double-star-variable-no-segments",
        ),
        pytest.param(
            "POST",
            "/v1/files/x/y",
            "",
            b'{"path": "etc/passwd", "content": "c"}',
            "application/json",
            "FileRequest",
            'path: "x/y" content: "c"',
            id="double-star-variable-wins-over-body",
        ),
        pytest.param(
            "POST",
            "/v1/counters/3:set",
            "",
            b'{"value": "7", "note": "n"}',
            "application/json",
            "CounterRequest",
            'value: 3 note: "n"',
            id="int64-path-variable-wins-over-body",
        ),
        pytest.param(
            "POST",
            "/v1/counters/-9223372036854775808:set",
            "",
            b"",
            "application/json",
            "CounterRequest",
            "value: -9223372036854775808",
            id="int64-path-variable",
        ),
    ],
)
def test_requests(
    method: str,
    path: str,
    query: str,
    body: bytes,
    content_type: str,
    type_name: str,
    expected: str,
) -> None:
    _assert_message(_request(method, path, query, body, content_type), type_name, expected)


@pytest.mark.parametrize(
    ("path", "body", "type_name", "expected"),
    [
        ("/v1/files/", b'{"path": "etc/passwd", "content": "c"}', "FileRequest", 'content: "c"'),
        ("/v1/files", b'{"path": "etc/passwd"}', "FileRequest", ""),
        ("/v1/counters/0:set", b'{"value": "7", "note": "n"}', "CounterRequest", 'note: "n"'),
    ],
)
def test_path_variables_win_even_with_default_values(
    path: str, body: bytes, type_name: str, expected: str
) -> None:
    _assert_message(_request("POST", path, "", body), type_name, expected)


@pytest.mark.parametrize(
    ("path", "body", "type_name", "expected"),
    [
        ("/v1/notes", b'"hello"', "NoteRequest", 'note: "hello"'),
        ("/v1/notes:tag", b'["a", "b"]', "NoteRequest", 'tags: ["a", "b"]'),
    ],
)
def test_scalar_and_repeated_body_fields(path: str, body: bytes, type_name: str, expected: str) -> None:
    _assert_message(_request("POST", path, "", body), type_name, expected)


# --- bad requests -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        # Not JSON at all.
        ("POST", "/v1/things/t1:cancel", b"not json", "not valid JSON"),
        ("POST", "/v1/things/t1:cancel", b'{"reason": "r"', "not valid JSON"),
        ("POST", "/v1/things/t1:cancel", b'{"reason": "\xe9"}', "not valid JSON"),
        ("POST", "/v1/things/t1:cancel", b"\xff\xfe", "not valid JSON"),
        ("POST", "/v1/things", b"<thing/>", "not valid JSON"),
        # JSON, but not an object.
        ("POST", "/v1/things/t1:cancel", b"[1]", "must be a JSON object"),
        ("POST", "/v1/things/t1:cancel", b"[]", "must be a JSON object"),
        ("POST", "/v1/things/t1:cancel", b'"s"', "must be a JSON object"),
        ("POST", "/v1/things/t1:cancel", b"null", "must be a JSON object"),
        ("POST", "/v1/things/t1:cancel", b"1", "must be a JSON object"),
        ("PATCH", "/v1/things/t1", b'[{"id": "x"}]', "must be a JSON object"),
        # Unknown fields, at the top level, nested and inside a body field.
        ("POST", "/v1/things/t1:cancel", b'{"nope": 1}', "nope"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"nope": 1}}', "nope"),
        ("PATCH", "/v1/things/t1", b'{"id": "x", "nope": 2}', "nope"),
        ("PATCH", "/v1/things/t1", b'{"thing": {"id": "x"}}', "thing"),
        # A body for a method that takes none.
        ("GET", "/v1/things/t1", b"{}", "no request body"),
        ("GET", "/v1/things/t1", b'{"name": "n"}', "no request body"),
        ("DELETE", "/v1/things/t1", b'{"reason": "x"}', "no request body"),
        ("GET", "/v1/files/x", b"raw", "no request body"),
        # Values of the wrong JSON type.
        ("POST", "/v1/things/t1:cancel", b'{"reason": 5}', "reason"),
        ("POST", "/v1/things/t1:cancel", b'{"reason": ["a"]}', "reason"),
        ("POST", "/v1/things/t1:cancel", b'{"reason": {}}', "reason"),
        ("POST", "/v1/shelves/s/things", b'{"requestId": true}', "requestId"),
        ("POST", "/v1/shelves/s/things", b'{"thing": 5}', "thing"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"count": 1.5}}', "count"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"count": true}}', "count"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"count": "x"}}', "count"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"tags": "a"}}', "tags"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"tags": [1]}}', "tags"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"tags": {}}}', "tags"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"kind": "NOPE"}}', "kind"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"created": "x"}}', "created"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"created": 5}}', "created"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"ttl": 5}}', "ttl"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"limit": "x"}}', "limit"),
        ("POST", "/v1/shelves/s/things", b'{"thing": {"limit": {}}}', "limit"),
        ("PATCH", "/v1/things/t1", b'{"count": {}}', "count"),
    ],
)
def test_bad_bodies(method: str, path: str, body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as raised:
        _request(method, path, "", body)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "body",
    [
        b'{"thing": []}',
        b'{"thing": ""}',
        b'{"thing": {"filter": []}}',
        b'{"thing": {"kind": 1.5}}',
    ],
)
def test_wrong_json_types_the_parser_lets_through(body: bytes) -> None:
    with pytest.raises(BadRequest):
        _request("POST", "/v1/shelves/s/things", "", body)


@pytest.mark.parametrize("body", [b"[" * 5000, b'{"a": ' * 5000, b'{"thing": ' * 5000])
def test_deeply_nested_bodies_are_bad_requests(body: bytes) -> None:
    with pytest.raises(BadRequest):
        _request("POST", "/v1/shelves/s/things", "", body)


# --- responses ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rpc", "template", "type_name", "text", "expected"),
    [
        pytest.param(
            "GetThing",
            "/v1/things/{id}",
            "Thing",
            'id: "a" display_name: "D" count: 9007199254740993 kind: KIND_B tags: ["x", "y"]'
            " created { seconds: 1704164645 nanos: 500000000 } ttl { seconds: 1 nanos: 500000000 }"
            ' limit { value: 0 } filter { text: "f" }',
            {
                "id": "a",
                "displayName": "D",
                "count": "9007199254740993",
                "kind": "KIND_B",
                "tags": ["x", "y"],
                "created": "2024-01-02T03:04:05.500Z",
                "ttl": "1.500s",
                "limit": 0,
                "filter": {"kind": "KIND_UNSPECIFIED", "text": "f"},
            },
            id="json-mapping",
        ),
        pytest.param(
            "GetThing",
            "/v1/things/{id}",
            "Thing",
            "count: -1 kind: KIND_A created { seconds: 0 } ttl { seconds: -2 } limit { value: -5 }",
            {
                "id": "",
                "displayName": "",
                "count": "-1",
                "kind": "KIND_A",
                "tags": [],
                "created": "1970-01-01T00:00:00Z",
                "ttl": "-2s",
                "limit": -5,
            },
            id="negative-values-and-epoch",
        ),
        pytest.param(
            "ListThings",
            "/v1/things",
            "ListThingsResponse",
            'things { id: "a" } things { id: "b" tags: "t" } next_page_token: "n"',
            {
                "things": [
                    {"id": "a", "displayName": "", "count": "0", "kind": "KIND_UNSPECIFIED", "tags": []},
                    {"id": "b", "displayName": "", "count": "0", "kind": "KIND_UNSPECIFIED", "tags": ["t"]},
                ],
                "nextPageToken": "n",
            },
            id="repeated-messages",
        ),
        pytest.param(
            "ListThings",
            "/v1/things",
            "ListThingsResponse",
            "",
            {"things": [], "nextPageToken": ""},
            id="empty-response",
        ),
        pytest.param(
            "GetThingSummary",
            "/v1/things/{id}/summary",
            "ThingEnvelope",
            'thing { id: "a" count: 2 } etag: "e" content { data: "x" }',
            {"id": "a", "displayName": "", "count": "2", "kind": "KIND_UNSPECIFIED", "tags": []},
            id="response-body-field",
        ),
        pytest.param(
            "GetThingSummary",
            "/v1/things/{id}/summary",
            "ThingEnvelope",
            'etag: "e"',
            {"id": "", "displayName": "", "count": "0", "kind": "KIND_UNSPECIFIED", "tags": []},
            id="response-body-field-unset",
        ),
    ],
)
def test_json_responses(rpc: str, template: str, type_name: str, text: str, expected: dict[str, Any]) -> None:
    body, content_type = render_response(_route(rpc, template), _new(type_name, text))
    assert content_type == "application/json"
    assert json.loads(body) == expected


def test_unpopulated_scalar_and_repeated_fields_are_emitted() -> None:
    body, _ = render_response(_route("GetThing", "/v1/things/{id}"), _new("Thing"))
    document = json.loads(body)
    assert {key: document[key] for key in ("id", "displayName", "count", "kind", "tags")} == {
        "id": "",
        "displayName": "",
        "count": "0",
        "kind": "KIND_UNSPECIFIED",
        "tags": [],
    }
    # Proto field names never appear: the output is lowerCamelCase throughout.
    assert "display_name" not in document


def test_doubles_render_in_json_form() -> None:
    # render_response only reads the route's response_body, so any message can be rendered.
    message: Any = _new("GetThingRequest", "score: 1.5 ratio: 0.25")
    message.filter.text = "f"
    body, _ = render_response(_route("GetThing", "/v1/things/{id}"), message)
    document = json.loads(body)
    assert (document["score"], document["ratio"], document["filter"]) == (
        1.5,
        0.25,
        {"kind": "KIND_UNSPECIFIED", "text": "f"},
    )
    for value, rendered in ((math.inf, "Infinity"), (-math.inf, "-Infinity"), (math.nan, "NaN")):
        message.score = value
        body, _ = render_response(_route("GetThing", "/v1/things/{id}"), message)
        assert json.loads(body)["score"] == rendered


@pytest.mark.parametrize(
    ("rpc", "template", "type_name", "text", "expected_body", "expected_type"),
    [
        pytest.param(
            "DownloadThing",
            "/v1/{name=things/*}/content",
            "google.api.HttpBody",
            r'content_type: "text/plain; charset=utf-8" data: "h\303\251"',
            "hé".encode(),
            "text/plain; charset=utf-8",
            id="httpbody-response",
        ),
        pytest.param(
            "ReadFile",
            "/v1/files/{path=**}",
            "google.api.HttpBody",
            r'content_type: "application/json" data: "{not json\377"',
            b"{not json\xff",
            "application/json",
            id="httpbody-response-bytes-untouched",
        ),
        pytest.param(
            "Echo",
            "/v1/echo",
            "google.api.HttpBody",
            r'data: "\000\001"',
            b"\x00\x01",
            "application/octet-stream",
            id="httpbody-response-without-content-type",
        ),
        pytest.param(
            "Echo",
            "/v1/echo",
            "google.api.HttpBody",
            "",
            b"",
            "application/octet-stream",
            id="httpbody-response-empty",
        ),
        pytest.param(
            "GetThingSummary",
            "/v1/things/{id}/attachment",
            "ThingEnvelope",
            r'thing { id: "a" } etag: "e" content { content_type: "image/png" data: "\211PNG" }',
            b"\x89PNG",
            "image/png",
            id="response-body-httpbody-field",
        ),
        pytest.param(
            "GetThingSummary",
            "/v1/things/{id}/attachment",
            "ThingEnvelope",
            'etag: "e"',
            b"",
            "application/octet-stream",
            id="response-body-httpbody-field-unset",
        ),
    ],
)
def test_raw_responses(
    rpc: str, template: str, type_name: str, text: str, expected_body: bytes, expected_type: str
) -> None:
    assert render_response(_route(rpc, template), _new(type_name, text)) == (expected_body, expected_type)


def test_repeated_response_body_renders_a_json_array() -> None:
    response = _new("ListThingsResponse", 'things { id: "a" } next_page_token: "n"')
    body, content_type = render_response(_route("ListThingItems", "/v1/things:items"), response)
    assert content_type == "application/json"
    assert json.loads(body) == [
        {"id": "a", "displayName": "", "count": "0", "kind": "KIND_UNSPECIFIED", "tags": []}
    ]
