"""The OpenAPI document: valid OpenAPI 3.1, in step with docs/openapi.json, and derived from descriptors."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re
from types import ModuleType
from typing import Any

import pytest
from google.api import annotations_pb2, http_pb2, httpbody_pb2
from google.protobuf import (
    descriptor_pb2,
    field_mask_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from openapi_spec_validator import validate

from engine.gateway.openapi import build_openapi, comments_from_files
from engine.gateway.routes import Route, routes_of
from engine.rpc.server import SERVICES
from tests.support.protos import private_pool
from workflow_engine.v1 import options_pb2

ROOT = pathlib.Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "openapi.json"
F = descriptor_pb2.FieldDescriptorProto
# The generated stub types the extension as a plain FieldDescriptor.
ACCESS: Any = options_pb2.access


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_openapi", ROOT / "scripts" / "gen_openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _load_script()


@pytest.fixture(scope="module")
def doc(script: ModuleType) -> dict[str, Any]:
    document: dict[str, Any] = script.generate()
    return document


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _params(operation: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == where}


def _json_schema(doc: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    return _resolve(doc, content["content"]["application/json"]["schema"])


# -- the engine's own document -------------------------------------------------------------------


def test_document_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "Workflow Engine API"
    validate(doc)


def test_docs_file_matches_a_fresh_generation(script: ModuleType, doc: dict[str, Any]) -> None:
    assert DOCS.exists(), "docs/openapi.json is missing: run `make openapi` (python scripts/gen_openapi.py)"
    assert DOCS.read_text(encoding="utf-8") == script.render(doc), (
        "docs/openapi.json is out of date with the protos: run `make openapi` (python scripts/gen_openapi.py)"
    )


def _openapi_path(route: Route) -> str:
    """The expected OpenAPI path of a route, computed independently of the module under test."""

    def name(match: re.Match[str]) -> str:
        camel = [re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), part) for part in match[1].split(".")]
        return "{" + ".".join(camel) + "}"

    return re.sub(r"\{([^}=]+)(?:=[^}]*)?\}", name, route.template.text)


def test_every_route_appears_with_its_method(doc: dict[str, Any]) -> None:
    routes = routes_of(SERVICES)
    assert routes
    operation_ids = []
    for route in routes:
        operation = doc["paths"][_openapi_path(route)][route.http_method.lower()]
        service = route.rpc.containing_service.name
        assert operation["operationId"] == f"{service}_{route.rpc.name}"
        assert operation["tags"] == [service]
        assert operation["summary"]
        assert "default" in operation["responses"]
        operation_ids.append(operation["operationId"])
    count = sum(len(item) for item in doc["paths"].values())
    assert count == len(routes)
    assert len(set(operation_ids)) == len(operation_ids)


def test_register_dashboard(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/v1/internal/dashboard/register"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/workflow_engine.v1.RegisterDashboardRequest"}
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/workflow_engine.v1.RegisterDashboardResponse"}
    response = _resolve(doc, ok)
    assert set(response["properties"]) == {"success", "apiKey", "agencyId"}
    assert response["properties"]["success"]["type"] == "boolean"
    # Proto comments become descriptions.
    assert "Shown only this once" in response["properties"]["apiKey"]["description"]
    request = _resolve(doc, body)
    assert set(request["properties"]) == {"agencyId", "dashboardName", "dashboardUrl", "webhookSecret"}
    error = _resolve(doc, operation["responses"]["default"])
    status = _json_schema(doc, error)
    assert status["properties"]["code"] == {
        "type": "integer",
        "format": "int32",
        "description": status["properties"]["code"]["description"],
    }
    assert status["properties"]["message"]["type"] == "string"
    detail = _resolve(doc, status["properties"]["details"]["items"])
    assert detail["properties"]["@type"]["type"] == "string"
    assert detail["additionalProperties"] is True


def test_list_sessions_query_parameters(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/api/v1/sessions"]["get"]
    assert "requestBody" not in operation
    query = _params(operation, "query")
    assert set(query) == {"agencyId", "tenantId", "status", "pageSize", "pageToken"}
    status = _resolve(doc, query["status"]["schema"])
    assert status["type"] == "string"
    assert status["enum"][0] == "SESSION_STATUS_UNSPECIFIED"
    assert "SESSION_STATUS_WORKING" in status["enum"]
    assert query["pageSize"]["schema"]["type"] == "integer"
    assert not any(p["required"] for p in query.values())


def test_get_session_path_parameter_is_not_repeated_in_the_query(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/api/v1/sessions/{sessionId}"]["get"]
    path = _params(operation, "path")
    assert path["sessionId"]["required"] is True
    assert path["sessionId"]["schema"]["type"] == "string"
    query = _params(operation, "query")
    assert "sessionId" not in query
    assert {"agencyId", "tenantId"} <= set(query)
    assert "404" in operation["responses"]


def test_path_fields_are_left_out_of_a_whole_message_body(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/api/v1/sessions/{sessionId}/messages"]["post"]
    body = _json_schema(doc, operation["requestBody"])
    assert "sessionId" not in body["properties"]
    assert {"agencyId", "tenantId", "to", "text"} <= set(body["properties"])
    assert "parameters" not in operation or not _params(operation, "query")


def test_provider_webhook_takes_a_raw_body(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/v1/webhooks/{provider}"]["post"]
    assert operation["requestBody"]["content"] == {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    assert set(_params(operation, "path")) == {"provider"}
    assert not _params(operation, "query")  # the body field is not offered as a query parameter
    assert operation["security"] == []
    assert "signed by the provider" in operation["description"]


def test_provider_verification_query_and_raw_response(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/v1/webhooks/{provider}"]["get"]
    assert set(_params(operation, "query")) == {"hub.mode", "hub.challenge", "hub.verifyToken"}
    assert operation["responses"]["200"]["content"] == {
        "*/*": {"schema": {"type": "string", "format": "binary"}}
    }
    assert operation["security"] == [{}]  # anonymous
    assert "401" not in operation["responses"]


def test_security_follows_the_access_option(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == {"PSK", "ApiKey", "MasterBearer"}
    assert schemes["PSK"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": schemes["PSK"]["description"],
    }
    assert "PSK <WORKFLOW_ENGINE_INTERNAL_PSK>" in schemes["PSK"]["description"]
    assert (schemes["ApiKey"]["in"], schemes["ApiKey"]["name"]) == ("header", "X-API-Key")
    assert (schemes["MasterBearer"]["type"], schemes["MasterBearer"]["scheme"]) == ("http", "bearer")

    paths = doc["paths"]
    assert paths["/v1/internal/dashboard/register"]["post"]["security"] == [{"PSK": []}]
    assert paths["/v1/internal/dashboard/config"]["get"]["security"] == [{"PSK": []}, {"ApiKey": []}]
    master_only: list[dict[str, list[str]]] = [{"ApiKey": []}, {"MasterBearer": []}]
    for path, item in paths.items():
        if path.startswith("/api/v1/admin/"):
            for operation in item.values():
                assert operation["security"] == master_only, path
    # Dashboard key or master key: the same two schemes.
    assert paths["/api/v1/sessions"]["get"]["security"] == master_only
    assert paths["/api/v1/sessions/{sessionId}"]["delete"]["security"] == master_only


def test_schemas_follow_the_protobuf_json_mapping(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    session = schemas["workflow_engine.v1.Session"]
    assert session["properties"]["createTime"]["format"] == "date-time"
    assert session["properties"]["metadata"]["type"] == "object"
    assert session["properties"]["metadata"]["additionalProperties"] == {"type": "string"}
    assert _resolve(doc, session["properties"]["status"])["type"] == "string"
    conversation = schemas["workflow_engine.v1.Conversation"]
    assert conversation["properties"]["messageCount"]["type"] == "string"
    assert conversation["properties"]["messageCount"]["format"] == "int64"
    qr = schemas["workflow_engine.v1.GetSessionQrResponse"]
    assert qr["properties"]["png"]["format"] == "byte"
    update = schemas["workflow_engine.v1.UpdateDashboardConfigRequest"]
    assert "Optional" in update["properties"]["dashboardName"]["description"]
    event = schemas["workflow_engine.v1.WebhookEvent"]
    assert "oneof `data`" in event["description"]
    assert "messageReceived" in event["properties"]


# -- genericity: a contract the module has never seen ----------------------------------------------


def _field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    type_name: str = "",
    *,
    repeated: bool = False,
    json_name: str = "",
    proto3_optional: bool = False,
) -> descriptor_pb2.FieldDescriptorProto:
    field = message.field.add(
        name=name,
        number=number,
        type=kind,
        label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL,
        json_name=json_name or re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name),
    )
    if type_name:
        field.type_name = type_name
    if proto3_optional:
        field.proto3_optional = True
    return field


def _demo_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="demo/v1/things.proto",
        package="demo.v1",
        syntax="proto3",
        dependency=[
            "google/api/annotations.proto",
            "google/api/httpbody.proto",
            "google/protobuf/timestamp.proto",
            "google/protobuf/field_mask.proto",
            "google/protobuf/wrappers.proto",
            "workflow_engine/v1/options.proto",
        ],
    )
    color = file.enum_type.add(name="Color")
    color.value.add(name="COLOR_UNSPECIFIED", number=0)
    color.value.add(name="COLOR_RED", number=1)

    thing = file.message_type.add(name="Thing")
    part = thing.nested_type.add(name="Part")
    _field(part, "label", 1, F.TYPE_STRING)
    entry = thing.nested_type.add(name="PartsEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, F.TYPE_STRING)
    _field(entry, "value", 2, F.TYPE_MESSAGE, ".demo.v1.Thing.Part")
    _field(thing, "id", 1, F.TYPE_STRING)
    _field(thing, "size_bytes", 2, F.TYPE_INT64)
    _field(thing, "colors", 3, F.TYPE_ENUM, ".demo.v1.Color", repeated=True)
    _field(thing, "parts", 4, F.TYPE_MESSAGE, ".demo.v1.Thing.PartsEntry", repeated=True)
    _field(thing, "parent", 5, F.TYPE_MESSAGE, ".demo.v1.Thing")  # recursive
    _field(thing, "create_time", 6, F.TYPE_MESSAGE, ".google.protobuf.Timestamp")
    kind = thing.oneof_decl.add(name="kind")
    _field(thing, "small", 7, F.TYPE_STRING).oneof_index = 0
    _field(thing, "large", 8, F.TYPE_UINT64).oneof_index = 0
    thing.oneof_decl.add(name="_note")
    _field(thing, "note", 9, F.TYPE_STRING, proto3_optional=True).oneof_index = 1
    assert kind.name == "kind"

    filter_ = file.message_type.add(name="Filter")
    _field(filter_, "text", 1, F.TYPE_STRING)
    _field(filter_, "exact", 2, F.TYPE_BOOL)
    _field(filter_, "next", 3, F.TYPE_MESSAGE, ".demo.v1.Filter")

    get = file.message_type.add(name="GetThingRequest")
    labels = get.nested_type.add(name="LabelsEntry")
    labels.options.map_entry = True
    _field(labels, "key", 1, F.TYPE_STRING)
    _field(labels, "value", 2, F.TYPE_STRING)
    _field(get, "name", 1, F.TYPE_STRING)
    _field(get, "filter", 2, F.TYPE_MESSAGE, ".demo.v1.Filter")
    _field(get, "colors", 3, F.TYPE_ENUM, ".demo.v1.Color", repeated=True)
    _field(get, "min_size", 4, F.TYPE_INT64)
    _field(get, "labels", 5, F.TYPE_MESSAGE, ".demo.v1.GetThingRequest.LabelsEntry", repeated=True)
    _field(get, "limit", 6, F.TYPE_MESSAGE, ".google.protobuf.Int32Value")
    _field(get, "ratio", 7, F.TYPE_DOUBLE)

    response = file.message_type.add(name="GetThingResponse")
    _field(response, "thing", 1, F.TYPE_MESSAGE, ".demo.v1.Thing")
    _field(response, "etag", 2, F.TYPE_STRING)

    update = file.message_type.add(name="UpdateThingRequest")
    _field(update, "thing", 1, F.TYPE_MESSAGE, ".demo.v1.Thing")
    _field(update, "update_mask", 2, F.TYPE_MESSAGE, ".google.protobuf.FieldMask")

    upload = file.message_type.add(name="UploadRequest")
    _field(upload, "name", 1, F.TYPE_STRING)
    _field(upload, "data", 2, F.TYPE_MESSAGE, ".google.api.HttpBody")

    service = file.service.add(name="ThingService")

    method = service.method.add(
        name="GetThing", input_type=".demo.v1.GetThingRequest", output_type=".demo.v1.GetThingResponse"
    )
    rule = method.options.Extensions[annotations_pb2.http]
    rule.get = "/v1/{name=shelves/*/things/*}"
    rule.response_body = "thing"
    rule.additional_bindings.add(get="/v1/things/{name=**}", response_body="thing")

    method = service.method.add(
        name="UpdateThing", input_type=".demo.v1.UpdateThingRequest", output_type=".demo.v1.Thing"
    )
    rule = method.options.Extensions[annotations_pb2.http]
    rule.patch = "/v1/things/{thing.id}"
    rule.body = "thing"
    rule.additional_bindings.add(put="/v1/things/{thing.id}:replace", body="*")
    method.options.Extensions[ACCESS].credentials.append(options_pb2.CREDENTIAL_PSK)

    method = service.method.add(
        name="Upload", input_type=".demo.v1.UploadRequest", output_type=".google.api.HttpBody"
    )
    rule = method.options.Extensions[annotations_pb2.http]
    rule.post = "/v1/{name=uploads/**}:upload"
    rule.body = "data"
    method.options.Extensions[ACCESS].credentials.extend(
        [options_pb2.CREDENTIAL_NONE, options_pb2.CREDENTIAL_MASTER_KEY]
    )
    return file


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    pool = private_pool(
        descriptor_pb2,
        http_pb2,
        annotations_pb2,
        httpbody_pb2,
        timestamp_pb2,
        field_mask_pb2,
        wrappers_pb2,
        options_pb2,
    )
    pool.Add(_demo_file())
    routes = routes_of([pool.FindServiceByName("demo.v1.ThingService")])
    assert len(routes) == 5
    return build_openapi(routes, title="Demo", version="9.9", description="A made-up contract.")


def test_demo_document_is_valid_and_generic(demo: dict[str, Any]) -> None:
    validate(demo)
    assert demo["info"] == {"title": "Demo", "version": "9.9", "description": "A made-up contract."}
    assert "workflow_engine" not in json.dumps(demo)
    assert set(demo["paths"]) == {
        "/v1/{name}",
        "/v1/things/{name}",
        "/v1/things/{thing.id}",
        "/v1/things/{thing.id}:replace",
        "/v1/{name}:upload",
    }
    ids = [op["operationId"] for item in demo["paths"].values() for op in item.values()]
    assert sorted(ids) == [
        "ThingService_GetThing",
        "ThingService_GetThing2",
        "ThingService_UpdateThing",
        "ThingService_UpdateThing2",
        "ThingService_Upload",
    ]
    assert demo["tags"] == [{"name": "ThingService"}]


def test_demo_get_with_response_body_and_query(demo: dict[str, Any]) -> None:
    operation = demo["paths"]["/v1/{name}"]["get"]
    name = _params(operation, "path")["name"]
    assert name["required"] is True
    assert "shelves/*/things/*" in name["description"] and "/" in name["description"]
    query = _params(operation, "query")
    # Nested message fields by dotted JSON path (the recursive `next` stops), no maps, no path field.
    assert set(query) == {"filter.text", "filter.exact", "colors", "minSize", "limit", "ratio"}
    colors = query["colors"]
    assert colors["explode"] is True
    assert colors["schema"]["type"] == "array"
    assert colors["schema"]["items"]["enum"] == ["COLOR_UNSPECIFIED", "COLOR_RED"]
    assert query["minSize"]["schema"] == {"type": "string", "format": "int64"}
    assert query["limit"]["schema"] == {"type": "integer", "format": "int32"}  # wrapper → its scalar
    assert query["filter.exact"]["schema"] == {"type": "boolean"}
    assert query["ratio"]["schema"] == {"type": "number", "format": "double"}
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/demo.v1.Thing"}  # response_body: "thing"
    assert "security" not in operation  # no access option declared
    assert "401" in operation["responses"]
    additional = demo["paths"]["/v1/things/{name}"]["get"]
    assert "**" in _params(additional, "path")["name"]["description"]


def test_demo_message_schemas(demo: dict[str, Any]) -> None:
    schemas = demo["components"]["schemas"]
    thing = schemas["demo.v1.Thing"]
    props = thing["properties"]
    assert props["sizeBytes"] == {"type": "string", "format": "int64"}
    assert props["colors"] == {"type": "array", "items": {"$ref": "#/components/schemas/demo.v1.Color"}}
    assert props["parts"] == {
        "type": "object",
        "additionalProperties": {"$ref": "#/components/schemas/demo.v1.Thing.Part"},
    }
    assert props["parent"] == {"$ref": "#/components/schemas/demo.v1.Thing"}
    assert props["createTime"]["format"] == "date-time"
    assert props["large"]["type"] == "string" and props["large"]["format"] == "uint64"
    assert "oneof `kind`" in props["small"]["description"]
    assert "Optional" in props["note"]["description"]
    assert "oneof `kind`" in thing["description"]
    assert "_note" not in thing["description"]  # proto3 optional is no real oneof
    assert schemas["demo.v1.Color"] == {"type": "string", "enum": ["COLOR_UNSPECIFIED", "COLOR_RED"]}
    assert schemas["demo.v1.Thing.Part"]["properties"] == {"label": {"type": "string"}}
    assert "demo.v1.Filter" not in schemas  # only used as query parameters


def test_demo_body_field_and_whole_body(demo: dict[str, Any]) -> None:
    patch = demo["paths"]["/v1/things/{thing.id}"]["patch"]
    assert set(_params(patch, "path")) == {"thing.id"}
    # body: "thing" → that field's schema; the rest of the request goes to the query.
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/demo.v1.Thing"
    }
    assert set(_params(patch, "query")) == {"updateMask"}
    assert _params(patch, "query")["updateMask"]["schema"]["type"] == "string"
    assert patch["security"] == [{"PSK": []}]

    put = demo["paths"]["/v1/things/{thing.id}:replace"]["put"]
    assert not _params(put, "query")
    body = put["requestBody"]["content"]["application/json"]["schema"]
    # `thing.id` is bound to the path: the rest of `thing` still comes from the body.
    assert set(body["properties"]) == {"thing", "updateMask"}
    thing = body["properties"]["thing"]
    assert "id" not in thing["properties"] and "sizeBytes" in thing["properties"]
    assert "`thing.id`" in body["description"]
    assert put["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/demo.v1.Thing"
    }


def test_demo_raw_bodies_and_security(demo: dict[str, Any]) -> None:
    operation = demo["paths"]["/v1/{name}:upload"]["post"]
    raw = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    assert operation["requestBody"]["content"] == raw
    assert operation["responses"]["200"]["content"] == raw
    assert "uploads/**" in _params(operation, "path")["name"]["description"]
    assert operation["security"] == [{}, {"ApiKey": []}, {"MasterBearer": []}]


def test_comments_from_source_info() -> None:
    file = descriptor_pb2.FileDescriptorProto(name="c.proto", package="c")
    message = file.message_type.add(name="M")
    message.field.add(name="f", number=1, type=F.TYPE_STRING)
    enum = file.enum_type.add(name="E")
    enum.value.add(name="E_A", number=0)
    service = file.service.add(name="S")
    service.method.add(name="Do", input_type=".c.M", output_type=".c.M")
    for path, text in [
        ((4, 0), " A message.\n Two lines.\n"),
        ((4, 0, 2, 0), " The field.\n"),
        ((5, 0, 2, 0), " First value.\n"),
        ((6, 0), " The service.\n"),
        ((6, 0, 2, 0), " Does it.\n"),
    ]:
        file.source_code_info.location.add(path=path, leading_comments=text)
    assert comments_from_files([file]) == {
        "c.M": "A message.\nTwo lines.",
        "c.M.f": "The field.",
        "c.E.E_A": "First value.",
        "c.S": "The service.",
        "c.S.Do": "Does it.",
    }
