"""An OpenAPI 3.1 document for a routing table, derived from the descriptors alone.

The conventions follow grpc-gateway's protoc-gen-openapiv2 (and gnostic's
protoc-gen-openapi), adapted to OpenAPI 3.1 / JSON Schema 2020-12:

* one path per HTTP binding; `{field}` and `{a.b}` become path parameters named by
  the JSON names of the field path; a multi-segment variable (`{name=things/*}`,
  `{x=**}`) becomes a single parameter whose description says it may contain `/`;
* every request field bound neither to the path nor to the body becomes a query
  parameter named by its dotted JSON path (`pageSize`, `hub.verifyToken`);
* request and response bodies use the protobuf JSON mapping (JSON names, 64-bit
  integers as strings, enums by value name, well-known types in their JSON forms);
  `google.api.HttpBody` is a raw body of any media type;
* one schema per message or enum under `components.schemas`, keyed by its full name;
* errors use the `google.rpc.Status` JSON body `{code, message, details}`.

Nothing here knows the engine's services. The only contract-specific knowledge is
the `workflow_engine.v1.access` method option, read in `_security_of` to declare
which credentials an operation accepts.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, MethodDescriptor

from engine.gateway.routes import Route
from workflow_engine.v1 import options_pb2

OPENAPI_VERSION = "3.1.0"

HTTP_BODY = "google.api.HttpBody"
STATUS = "google.rpc.Status"

Schema = dict[str, Any]

_REF_PREFIX = "#/components/schemas/"
_RAW_CONTENT = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
_OPENAPI_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")

_T = FieldDescriptor
_SCALARS: dict[int, Schema] = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    # Unsigned 32-bit values do not fit int32 (grpc-gateway uses int64 as well).
    _T.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    _T.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # The protobuf JSON mapping writes 64-bit integers as decimal strings.
    _T.TYPE_INT64: {"type": "string", "format": "int64"},
    _T.TYPE_SINT64: {"type": "string", "format": "int64"},
    _T.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    _T.TYPE_UINT64: {"type": "string", "format": "uint64"},
    _T.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "format": "byte", "description": "Base64-encoded bytes."},
}

# Well-known types whose JSON form is not an object of their fields.
_WKT: dict[str, Schema] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 timestamp in UTC, e.g. `2024-01-31T12:00:00Z`.",
    },
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "description": "Seconds with up to nine fractional digits, suffixed with `s`, e.g. `1.5s`.",
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths in JSON names, e.g. `displayName,config.url`.",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {
            "@type": {
                "type": "string",
                "description": "Type URL of the embedded message, e.g. "
                "`type.googleapis.com/google.rpc.ErrorInfo`.",
            }
        },
        "required": ["@type"],
        "additionalProperties": True,
        "description": "A message of any type: `@type` names it, its JSON fields follow.",
    },
    "google.protobuf.DoubleValue": dict(_SCALARS[_T.TYPE_DOUBLE]),
    "google.protobuf.FloatValue": dict(_SCALARS[_T.TYPE_FLOAT]),
    "google.protobuf.Int64Value": dict(_SCALARS[_T.TYPE_INT64]),
    "google.protobuf.UInt64Value": dict(_SCALARS[_T.TYPE_UINT64]),
    "google.protobuf.Int32Value": dict(_SCALARS[_T.TYPE_INT32]),
    "google.protobuf.UInt32Value": dict(_SCALARS[_T.TYPE_UINT32]),
    "google.protobuf.BoolValue": dict(_SCALARS[_T.TYPE_BOOL]),
    "google.protobuf.StringValue": dict(_SCALARS[_T.TYPE_STRING]),
    "google.protobuf.BytesValue": dict(_SCALARS[_T.TYPE_BYTES]),
}
# Well-known types that a query parameter or path variable can carry (their JSON form is a scalar).
_SCALAR_WKT = frozenset(
    name for name, schema in _WKT.items() if schema.get("type") in ("string", "number", "integer", "boolean")
)

_STATUS_SCHEMA: Schema = {
    "type": "object",
    "description": "The error body of every failed call: the gRPC status and its details.",
    "properties": {
        "code": {"type": "integer", "format": "int32", "description": "The gRPC status code number."},
        "message": {"type": "string", "description": "A developer-facing error message in English."},
        "details": {
            "type": "array",
            "description": "Error details (`google.rpc.BadRequest`, `RetryInfo`, `ErrorInfo`, ...).",
            "items": {"$ref": _REF_PREFIX + "google.protobuf.Any"},
        },
    },
}

# HTTP status → (components.responses name, description); grpc-gateway's code mapping.
_ERRORS: dict[str, tuple[str, str]] = {
    "400": ("BadRequest", "Invalid argument, failed precondition or out of range."),
    "401": ("Unauthenticated", "Missing or invalid credentials."),
    "403": ("PermissionDenied", "The credentials do not allow this call."),
    "404": ("NotFound", "The resource does not exist."),
    "409": ("Conflict", "The resource already exists, or the call was aborted by a concurrent change."),
    "429": ("TooManyRequests", "Rate limit exceeded; retry after the time given."),
    "default": ("Error", "An unexpected error response."),
}

SECURITY_SCHEMES: dict[str, Schema] = {
    "PSK": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "The pre-shared key, as `PSK <WORKFLOW_ENGINE_INTERNAL_PSK>`.",
    },
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A dashboard's own API key, or the engine's master key.",
    },
    "MasterBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The engine's master key as a bearer token.",
    },
}


def build_openapi(
    routes: Sequence[Route],
    *,
    title: str,
    version: str,
    description: str = "",
    comments: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`.

    `comments` optionally maps full names (of services, methods, messages, fields,
    enums and enum values as `Enum.VALUE`) to their proto comments, which become
    descriptions; see `comments_from_files`. Compiled descriptors carry none.
    """
    builder = _Builder(comments or {})
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    tags: dict[str, dict[str, str]] = {}
    binding_numbers: dict[str, int] = {}
    for route in routes:
        method = route.http_method.lower()
        if method not in _OPENAPI_METHODS:
            raise ValueError(f"{route.rpc.full_name}: HTTP method {route.http_method} has no OpenAPI form")
        path, operation = builder.operation(route)
        binding_numbers[route.rpc.full_name] = binding_numbers.get(route.rpc.full_name, 0) + 1
        operation["operationId"] = _operation_id(
            route.rpc, binding_numbers[route.rpc.full_name], operation_ids
        )
        item = paths.setdefault(path, {})
        if method in item:
            raise ValueError(f"{route.http_method} {path} is bound twice ({route.rpc.full_name})")
        item[method] = operation
        service = route.rpc.containing_service
        if service.name not in tags:
            tags[service.name] = {"name": service.name}
            if text := builder.comment(service.full_name):
                tags[service.name]["description"] = text

    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    builder.schemas.setdefault(STATUS, _STATUS_SCHEMA)
    builder.message_ref_by_name("google.protobuf.Any")
    document = {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "servers": [{"url": "/"}],
        "tags": list(tags.values()),
        "paths": paths,
        "components": {
            "schemas": builder.schemas,
            "responses": {
                name: {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": _REF_PREFIX + STATUS}}},
                    **({"headers": _RETRY_AFTER} if code == "429" else {}),
                }
                for code, (name, text) in _ERRORS.items()
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
    # Constants and shared well-known schemas are in there: hand out a tree of its own.
    return copy.deepcopy(document)


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}


def _security_of(rpc: MethodDescriptor) -> tuple[list[dict[str, list[str]]] | None, str]:
    """Security requirements from the RPC's `workflow_engine.v1.access` option, and a note.

    Requirements are alternatives: any one of them is enough. `{}` means anonymous
    access; None means the RPC declares no access policy (the document says nothing).
    """
    options = rpc.GetOptions()
    extension: Any = options_pb2.access  # the generated stub types it as a plain FieldDescriptor
    if not options.HasExtension(extension):
        return None, ""
    policy: options_pb2.AccessPolicy = options.Extensions[extension]
    schemes: dict[int, list[str]] = {
        options_pb2.CREDENTIAL_NONE: [],  # anonymous: the empty requirement
        options_pb2.CREDENTIAL_PSK: ["PSK"],
        options_pb2.CREDENTIAL_DASHBOARD_KEY: ["ApiKey"],
        options_pb2.CREDENTIAL_MASTER_KEY: ["ApiKey", "MasterBearer"],
    }
    requirements: list[dict[str, list[str]]] = []
    note = ""
    for credential in policy.credentials:
        if credential == options_pb2.CREDENTIAL_PROVIDER_SIGNATURE:
            note = "Requests must be signed by the provider; the signature is checked per provider."
            continue
        names = schemes.get(credential)
        if names is None:
            continue
        alternatives: list[dict[str, list[str]]] = [{name: []} for name in names] if names else [{}]
        for requirement in alternatives:
            if requirement not in requirements:
                requirements.append(requirement)
    return requirements, note


def _operation_id(rpc: MethodDescriptor, binding: int, taken: set[str]) -> str:
    """`Service_Method`, then `Service_Method2`, ... for additional bindings (as grpc-gateway)."""
    base = f"{rpc.containing_service.name}_{rpc.name}"
    candidate = base if binding == 1 else f"{base}{binding}"
    number = binding
    while candidate in taken:
        number += 1
        candidate = f"{base}{number}"
    taken.add(candidate)
    return candidate


def _summary(name: str) -> str:
    """`RegisterDashboard` → `Register dashboard`."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", name) or [name]
    return " ".join(
        [words[0], *(word if word.isupper() and len(word) > 1 else word.lower() for word in words[1:])]
    )


def _resolve(message: Descriptor, path: str) -> list[FieldDescriptor]:
    """The fields named by a dotted path of proto (or JSON) names."""
    chain: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for part in path.split("."):
        field = None
        if current is not None:
            field = current.fields_by_name.get(part) or next(
                (f for f in current.fields if f.json_name == part), None
            )
        if field is None:
            raise ValueError(f"{message.full_name} has no field {path!r}")
        chain.append(field)
        current = field.message_type
    return chain


def _json_path(chain: Iterable[FieldDescriptor]) -> str:
    return ".".join(field.json_name for field in chain)


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _map_value(field: FieldDescriptor) -> FieldDescriptor | None:
    """The value field of a map field's entry; None when the field is no map."""
    entry = field.message_type
    if entry is None or not _is_repeated(field) or not entry.GetOptions().map_entry:
        return None
    return entry.fields_by_name["value"]


def _is_http_body(field: FieldDescriptor) -> bool:
    """A singular google.api.HttpBody field: a raw body when it is the request or response body."""
    message = field.message_type
    return message is not None and message.full_name == HTTP_BODY and not _is_repeated(field)


def _with_description(schema: Schema, *parts: str) -> Schema:
    text = "\n\n".join(part for part in (schema.get("description", ""), *parts) if part)
    return {**schema, "description": text} if text else schema


class _Builder:
    """Collects component schemas while it describes operations."""

    def __init__(self, comments: Mapping[str, str]) -> None:
        self.schemas: dict[str, Schema] = {}
        self._comments = comments

    def comment(self, full_name: str) -> str:
        return self._comments.get(full_name, "").strip()

    # -- operations -----------------------------------------------------------------------------

    def operation(self, route: Route) -> tuple[str, dict[str, Any]]:
        """The OpenAPI path of the route and its operation (without operationId)."""
        rpc = route.rpc
        request = rpc.input_type
        path, parameters, chains = self._path(route)
        bound = {chain[0].name for chain in chains}  # a bound message is left out of the query whole
        if route.body != "*":
            parameters.extend(self._query(request, excluded=bound | {route.body}))

        operation: dict[str, Any] = {"tags": [rpc.containing_service.name], "summary": _summary(rpc.name)}
        security, security_note = _security_of(rpc)
        if text := "\n\n".join(part for part in (self.comment(rpc.full_name), security_note) if part):
            operation["description"] = text
        if parameters:
            operation["parameters"] = parameters
        if route.body:
            operation["requestBody"] = self._request_body(route, chains)
        operation["responses"] = self._responses(route, security, has_path_variables=bool(bound))
        if security is not None:
            operation["security"] = security
        return path, operation

    def _path(self, route: Route) -> tuple[str, list[dict[str, Any]], list[list[FieldDescriptor]]]:
        """OpenAPI path, path parameters, and the request fields they bind."""
        request = route.rpc.input_type
        template = route.template
        variables = list(template.variables)
        matches = list(_VARIABLE.finditer(template.text))
        if len(matches) != len(variables):
            raise ValueError(f"{route.rpc.full_name}: cannot read the variables of {template.text!r}")
        parameters: list[dict[str, Any]] = []
        chains: list[list[FieldDescriptor]] = []
        pieces: list[str] = []
        position = 0
        for variable, match in zip(variables, matches, strict=True):
            chain = _resolve(request, variable.field_path)
            name = _json_path(chain)
            chains.append(chain)
            pieces += [template.text[position : match.start()], "{", name, "}"]
            position = match.end()
            leaf = chain[-1]
            schema = self._parameter_schema(leaf)
            pattern = match.group(2) or "*"
            notes = [self.comment(leaf.full_name)]
            if variable.multi or variable.end is None or variable.end - variable.start > 1:
                notes.append(f"Matches the path pattern `{pattern}`: the value may contain `/`.")
            elif pattern != "*":
                notes.append(f"Matches the path pattern `{pattern}`.")
            parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
            if text := "\n\n".join(note for note in notes if note):
                parameter["description"] = text
            parameters.append(parameter)
        pieces.append(template.text[position:])
        return "".join(pieces), parameters, chains

    def _query(self, request: Descriptor, excluded: set[str]) -> list[dict[str, Any]]:
        """Query parameters for every leaf field of `request` not bound elsewhere."""
        parameters: list[dict[str, Any]] = []

        def walk(message: Descriptor, prefix: str, ancestors: tuple[str, ...]) -> None:
            for field in message.fields:
                if not prefix and field.name in excluded:
                    continue
                if _map_value(field) is not None:
                    continue  # maps cannot be written as query parameters
                name = prefix + field.json_name
                nested = field.message_type
                if nested is not None and nested.full_name not in _SCALAR_WKT:
                    if _is_repeated(field) or nested.full_name in _WKT or nested.full_name == HTTP_BODY:
                        continue  # repeated messages and JSON-only types have no query form
                    if nested.full_name not in ancestors:  # recursion-safe
                        walk(nested, name + ".", (*ancestors, nested.full_name))
                    continue
                schema = self._parameter_schema(field)
                parameter: dict[str, Any] = {"name": name, "in": "query", "required": False}
                if text := self._field_notes(field):
                    parameter["description"] = text
                if _is_repeated(field):
                    parameter.update(schema={"type": "array", "items": schema}, style="form", explode=True)
                else:
                    parameter["schema"] = schema
                parameters.append(parameter)

        walk(request, "", (request.full_name,))
        return parameters

    def _parameter_schema(self, field: FieldDescriptor) -> Schema:
        """Inline schema of one value of a scalar-like field (for path and query parameters)."""
        if field.enum_type is not None:
            return self._enum_schema(field.enum_type)
        if field.message_type is not None:
            if field.message_type.full_name in _SCALAR_WKT:
                return dict(_WKT[field.message_type.full_name])
            raise ValueError(f"{field.full_name}: a message cannot be a path or query parameter")
        return dict(_SCALARS[field.type])

    def _request_body(self, route: Route, chains: list[list[FieldDescriptor]]) -> dict[str, Any]:
        request = route.rpc.input_type
        if route.body == "*":
            if request.full_name == HTTP_BODY:
                return {"required": True, "content": _RAW_CONTENT}
            if not chains:
                schema = self.message_ref(request)
            else:
                schema = self._pruned(request, [[field.name for field in chain] for chain in chains])
                bound = ", ".join(f"`{_json_path(chain)}`" for chain in chains)
                schema = _with_description(schema, f"The fields bound to the path ({bound}) are left out.")
            return {"required": True, "content": {"application/json": {"schema": schema}}}
        field = _resolve(request, route.body)[0]
        if _is_http_body(field):
            body: dict[str, Any] = {"required": True, "content": _RAW_CONTENT}
            if text := self.comment(field.full_name):
                body["description"] = text
            return body
        return {"required": True, "content": {"application/json": {"schema": self.field_schema(field)}}}

    def _pruned(self, message: Descriptor, paths: Sequence[Sequence[str]]) -> Schema:
        """The schema of `message` without the (possibly nested) fields at `paths` (proto names).

        A message holding a bound field is described inline without it: its other fields
        still come from the body, as the path value is merged into it.
        """
        full = self.message_schema(message)
        properties: dict[str, Schema] = {}
        for field in message.fields:
            rest = [path[1:] for path in paths if path[0] == field.name]
            if not rest:
                properties[field.json_name] = full["properties"][field.json_name]
            elif all(rest) and field.message_type is not None and not _is_repeated(field):
                nested = self._pruned(field.message_type, rest)
                note = self._field_notes(field)
                properties[field.json_name] = _with_description(nested, note) if note else nested
        schema: Schema = {"type": "object", "title": message.full_name, "properties": properties}
        return _with_description(schema, full.get("description", ""))

    def _responses(
        self, route: Route, security: list[dict[str, list[str]]] | None, *, has_path_variables: bool
    ) -> dict[str, Any]:
        response = route.rpc.output_type
        ok: dict[str, Any] = {"description": "A successful response."}
        if route.response_body:
            field = _resolve(response, route.response_body)[0]
            if _is_http_body(field):
                ok["content"] = _RAW_CONTENT
            else:
                ok["content"] = {"application/json": {"schema": self.field_schema(field)}}
        elif response.full_name == HTTP_BODY:
            ok["content"] = _RAW_CONTENT
        else:
            ok["content"] = {"application/json": {"schema": self.message_ref(response)}}
        responses: dict[str, Any] = {"200": ok}
        codes = ["400"]
        if security is None or {} not in security:  # some credential is required
            codes += ["401", "403"]
        if has_path_variables:
            codes.append("404")
        if route.body:
            codes.append("409")
        codes += ["429", "default"]
        for code in codes:
            responses[code] = {"$ref": f"#/components/responses/{_ERRORS[code][0]}"}
        return responses

    # -- schemas --------------------------------------------------------------------------------

    def message_ref_by_name(self, full_name: str) -> None:
        """Register a well-known schema that hand-written schemas refer to."""
        if full_name in _WKT:
            self.schemas.setdefault(full_name, dict(_WKT[full_name]))

    def message_ref(self, message: Descriptor) -> Schema:
        """A schema for a message: inline for well-known types, else a `$ref` to its component."""
        if message.full_name in _WKT:
            if message.full_name == "google.protobuf.Any":
                self.message_ref_by_name(message.full_name)
                return {"$ref": _REF_PREFIX + message.full_name}
            return dict(_WKT[message.full_name])
        if message.full_name not in self.schemas:
            self.schemas[message.full_name] = {}  # placeholder: recursive messages terminate here
            self.schemas[message.full_name] = self.message_schema(message)
        return {"$ref": _REF_PREFIX + message.full_name}

    def message_schema(self, message: Descriptor) -> Schema:
        properties = {field.json_name: self.field_schema(field) for field in message.fields}
        schema: Schema = {"type": "object", "properties": properties}
        synthetic = _synthetic_oneofs(message)
        oneofs = [oneof for oneof in message.oneofs if oneof.name not in synthetic]
        notes = [
            f"At most one of {', '.join(f'`{f.json_name}`' for f in oneof.fields)} is set "
            f"(oneof `{oneof.name}`)."
            for oneof in oneofs
        ]
        return _with_description(schema, self.comment(message.full_name), *notes)

    def field_schema(self, field: FieldDescriptor) -> Schema:
        """The schema of a field's JSON value, with its description."""
        if (value := _map_value(field)) is not None:
            schema: Schema = {"type": "object", "additionalProperties": self._value_schema(value)}
        elif _is_repeated(field):
            schema = {"type": "array", "items": self._value_schema(field)}
        else:
            schema = self._value_schema(field)
        # The field's own comment first, then what its type says.
        text = "\n\n".join(part for part in (self._field_notes(field), schema.get("description", "")) if part)
        return {**schema, "description": text} if text else schema

    def _field_notes(self, field: FieldDescriptor) -> str:
        notes = [self.comment(field.full_name)]
        oneof = field.containing_oneof
        if oneof is not None and oneof.name in _synthetic_oneofs(oneof.containing_type):
            notes.append("Optional: leaving it out is distinct from sending its default value.")
        elif oneof is not None:
            notes.append(f"Member of oneof `{oneof.name}`: at most one of its fields is set.")
        return "\n\n".join(note for note in notes if note)

    def _value_schema(self, field: FieldDescriptor) -> Schema:
        """The schema of one value of the field (an element, for repeated fields)."""
        if field.enum_type is not None:
            return self.enum_ref(field.enum_type)
        if field.message_type is not None:
            return self.message_ref(field.message_type)
        return dict(_SCALARS[field.type])

    def enum_ref(self, enum: EnumDescriptor) -> Schema:
        if enum.full_name == "google.protobuf.NullValue":
            return {"type": "null"}
        if enum.full_name not in self.schemas:
            self.schemas[enum.full_name] = self._enum_schema(enum)
        return {"$ref": _REF_PREFIX + enum.full_name}

    def _enum_schema(self, enum: EnumDescriptor) -> Schema:
        schema: Schema = {"type": "string", "enum": [value.name for value in enum.values]}
        documented = [
            f"- `{value.name}`: {text}"
            for value in enum.values
            if (text := " ".join(self.comment(f"{enum.full_name}.{value.name}").split()))
        ]
        return _with_description(schema, self.comment(enum.full_name), "\n".join(documented))


def _synthetic_oneofs(message: Descriptor) -> frozenset[str]:
    """Names of the oneofs that only mark proto3 `optional` fields (descriptors do not say directly)."""
    proto = descriptor_pb2.DescriptorProto()
    message.CopyToProto(proto)
    return frozenset(
        proto.oneof_decl[field.oneof_index].name
        for field in proto.field
        if field.proto3_optional and field.HasField("oneof_index")
    )


def comments_from_files(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> dict[str, str]:
    """Leading (else trailing) comments by full name, from descriptors compiled with source info.

    Keys are the full names of services, methods, messages, fields and enums, and
    `Enum.VALUE` for enum values. `protoc --include_source_info --descriptor_set_out`
    produces such descriptors; generated code drops them.
    """
    comments: dict[str, str] = {}
    for file in files:
        names = _names_by_path(file)
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            text = location.leading_comments or location.trailing_comments
            if name is not None and text.strip():
                comments[name] = _clean_comment(text)
    return comments


def _names_by_path(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Source location path → full name, for every element that can carry a comment we use."""
    names: dict[tuple[int, ...], str] = {}
    package = f"{file.package}." if file.package else ""

    def enum(proto: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], scope: str) -> None:
        full = scope + proto.name
        names[path] = full
        for index, value in enumerate(proto.value):
            names[(*path, 2, index)] = f"{full}.{value.name}"

    def message(proto: descriptor_pb2.DescriptorProto, path: tuple[int, ...], scope: str) -> None:
        full = scope + proto.name
        names[path] = full
        for index, field in enumerate(proto.field):
            names[(*path, 2, index)] = f"{full}.{field.name}"
        for index, nested in enumerate(proto.nested_type):
            message(nested, (*path, 3, index), full + ".")
        for index, nested_enum in enumerate(proto.enum_type):
            enum(nested_enum, (*path, 4, index), full + ".")

    for index, message_proto in enumerate(file.message_type):
        message(message_proto, (4, index), package)
    for index, enum_proto in enumerate(file.enum_type):
        enum(enum_proto, (5, index), package)
    for index, service in enumerate(file.service):
        names[(6, index)] = package + service.name
        for method_index, method in enumerate(service.method):
            names[(6, index, 2, method_index)] = f"{package}{service.name}.{method.name}"
    return names


def _clean_comment(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.strip("\n").split("\n")]
    return "\n".join(line.rstrip() for line in lines).strip()
