"""HTTP request → proto request message, and proto response → HTTP body (protobuf JSON mapping)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from google.api import httpbody_pb2
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from engine.gateway.routes import Route

HTTP_BODY = httpbody_pb2.HttpBody.DESCRIPTOR.full_name
JSON_CONTENT_TYPE = "application/json"

_ENUM_NUMBER = re.compile(r"-?[0-9]{1,10}")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
_INTEGER_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


class BadRequest(Exception):
    """The HTTP request cannot be turned into the RPC's request message; the message says why."""


def _field(message: Descriptor, name: str) -> FieldDescriptor | None:
    """A field by proto name or JSON name."""
    field = message.fields_by_name.get(name)
    if field is not None:
        return field
    for candidate in message.fields:
        if candidate.json_name == name:
            return candidate
    return None


def _resolve(message: Descriptor, path: str) -> list[FieldDescriptor] | None:
    """The chain of fields named by a dotted path (proto or JSON names), or None if it names none."""
    chain: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for part in path.split("."):
        if current is None:
            return None
        field = _field(current, part)
        if field is None:
            return None
        chain.append(field)
        current = field.message_type
    return chain


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _scalar_json(field: FieldDescriptor, raw: str, where: str) -> Any:
    """A text value (from a path or query) as the JSON value the protobuf JSON parser expects."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise BadRequest(f"{where}: {raw!r} is not a boolean (true or false)")
    if field.type == FieldDescriptor.TYPE_ENUM:
        # Enums by name or by number.
        return int(raw) if _ENUM_NUMBER.fullmatch(raw) else raw
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        try:
            number = float(raw)
        except ValueError:
            raise BadRequest(f"{where}: {raw!r} is not a number") from None
        # The JSON mapping spells the non-finite values as strings.
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    if field.type in _INTEGER_TYPES:
        # Strings are the JSON form of 64-bit integers, and the parser accepts them for all integers.
        return raw
    # Strings, bytes (base64) and well-known types written as strings (Timestamp, Duration, FieldMask).
    return raw


def _assign(target: dict[str, Any], chain: list[FieldDescriptor], raw: str, where: str) -> None:
    node = target
    for field in chain[:-1]:
        if _is_repeated(field):
            raise BadRequest(f"{where}: cannot address a field inside the repeated field {field.name!r}")
        node = node.setdefault(field.name, {})
        if not isinstance(node, dict):
            raise BadRequest(f"{where}: {field.name!r} is given twice")
    leaf = chain[-1]
    if leaf.message_type is not None and leaf.message_type.full_name not in _STRING_WKT:
        if leaf.message_type.full_name not in _WRAPPERS:
            raise BadRequest(f"{where}: {leaf.name!r} is a message; name one of its fields")
        leaf_value = _scalar_json(leaf.message_type.fields_by_name["value"], raw, where)
    else:
        leaf_value = _scalar_json(leaf, raw, where)
    if _is_repeated(leaf):
        node.setdefault(leaf.name, []).append(leaf_value)
    else:
        node[leaf.name] = leaf_value


# Well-known types whose JSON form is a string.
_STRING_WKT = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
_WRAPPERS = frozenset(
    f"google.protobuf.{name}"
    for name in (
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "Int32Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    )
)


def build_request(
    route: Route,
    bindings: dict[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
    content_type: str,
) -> Message:
    """The RPC's request message from path variables, query parameters and the body.

    Path variables win over the same fields in the body. Query parameters fill only
    fields not bound by the path or the body; unknown query parameters are ignored
    (as grpc-gateway does), while unknown body fields are an error.
    """
    request_class = message_class(route.rpc.input_type)
    request: Message = request_class()
    descriptor = route.rpc.input_type
    if route.body:
        _parse_body(request, route.body, body, content_type)
    elif body.strip():
        raise BadRequest("this method takes no request body")

    values: dict[str, Any] = {}
    bound: set[str] = set()
    for path, raw in bindings.items():
        chain = _resolve(descriptor, path)
        if chain is None:  # a template naming a field that does not exist: a contract bug
            raise BadRequest(f"path variable {path!r} names no request field")
        _assign(values, chain, raw, f"path variable {path!r}")
        _clear(request, chain)  # the path wins, even when its value is the default
        bound.add(chain[0].name)
    if route.body != "*":
        for name, raw in query:
            chain = _resolve(descriptor, name)
            if chain is None or chain[0].name in bound or chain[0].name == route.body:
                continue
            _assign(values, chain, raw, f"query parameter {name!r}")
    if values:
        overlay = request_class()
        _parse_json(values, overlay, "request")
        request.MergeFrom(overlay)
    return request


def _clear(request: Message, chain: list[FieldDescriptor]) -> None:
    """Clear the field at the end of `chain` if it is set (never creating its parents)."""
    target: Any = request
    for field in chain[:-1]:
        if not target.HasField(field.name):
            return
        target = getattr(target, field.name)
    target.ClearField(chain[-1].name)


def _parse_body(request: Message, body_field: str, body: bytes, content_type: str) -> None:
    field: Any = None
    target_type: Any = request.DESCRIPTOR
    if body_field != "*":
        field = request.DESCRIPTOR.fields_by_name.get(body_field)
        if field is None:
            raise BadRequest(f"body field {body_field!r} names no request field")
        target_type = field.message_type
    if target_type is not None and target_type.full_name == HTTP_BODY:
        # Raw bodies pass through untouched: provider signatures cover these exact bytes.
        raw: Any = request if body_field == "*" else getattr(request, body_field)
        raw.content_type = content_type
        raw.data = body
        return
    if not body.strip():
        return
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise BadRequest(f"request body is not valid JSON: {error}") from None
    if body_field == "*":
        if not isinstance(document, dict):
            raise BadRequest("request body must be a JSON object")
        _parse_json(document, request, "request body")
    else:
        assert field is not None
        if target_type is not None and not field.is_repeated and not isinstance(document, dict):
            raise BadRequest(f"request body must be a JSON object (the {body_field!r} message)")
        # Any kind of body field (message, scalar, repeated, map): parse it as that field.
        _parse_json({body_field: document}, request, "request body")


def _check_json_shapes(document: Any, message: Any, where: str) -> None:
    """Refuse JSON the protobuf parser would quietly accept: `[]` or `""` for a message, 1.5 for an enum."""
    if not isinstance(document, dict):
        return
    for key, value in document.items():
        field = _field(message, key)
        if field is None or value is None:
            continue  # unknown fields are reported by the parser itself
        label = f"{where}.{key}" if where else key
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            if not isinstance(value, dict):
                raise BadRequest(f"{label}: expected a JSON object")
            value_field = entry.fields_by_name["value"]
            for item_key, item in value.items():
                _check_json_value(item, value_field, f"{label}.{item_key}")
        elif field.is_repeated:
            if not isinstance(value, list):
                raise BadRequest(f"{label}: expected a JSON array")
            for index, item in enumerate(value):
                _check_json_value(item, field, f"{label}[{index}]")
        else:
            _check_json_value(value, field, label)


def _check_json_value(value: Any, field: FieldDescriptor, label: str) -> None:
    message = field.message_type
    if message is not None:
        if message.full_name.startswith("google.protobuf."):
            return  # well-known types have JSON forms of their own; the parser checks them
        if not isinstance(value, dict):
            raise BadRequest(f"{label}: expected a JSON object")
        _check_json_shapes(value, message, label)
    elif field.type == FieldDescriptor.TYPE_ENUM and isinstance(value, (bool, float, list, dict)):
        raise BadRequest(f"{label}: expected an enum name or number")


def _parse_json(document: dict[str, Any], target: Message, where: str) -> None:
    _check_json_shapes(document, target.DESCRIPTOR, "")
    try:
        json_format.ParseDict(document, target, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        raise BadRequest(f"{where}: {_clean_parse_error(str(error))}") from None
    except (ValueError, TypeError, RecursionError) as error:
        raise BadRequest(f"{where}: {error}") from None


def _clean_parse_error(text: str) -> str:
    # json_format prefixes messages with the full message type; the field path is what helps.
    return text.replace("Failed to parse ", "").replace(" field: ", ": ")


def render_response(route: Route, response: Message) -> tuple[bytes, str]:
    """The HTTP body and content type of a response (JSON, or raw for google.api.HttpBody)."""
    selected: Any = response
    field = response.DESCRIPTOR.fields_by_name[route.response_body] if route.response_body else None
    if field is not None:
        if field.message_type is None or field.is_repeated:
            # Scalars, lists and maps: their JSON value as it appears within the whole response.
            whole = json_format.MessageToDict(response, always_print_fields_with_no_presence=True)
            return _json_bytes(whole.get(field.json_name)), JSON_CONTENT_TYPE
        selected = getattr(response, field.name)
    if selected.DESCRIPTOR.full_name == HTTP_BODY:
        return bytes(selected.data), selected.content_type or "application/octet-stream"
    document = json_format.MessageToDict(selected, always_print_fields_with_no_presence=True)
    return _json_bytes(document), JSON_CONTENT_TYPE


def _json_bytes(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def message_class(descriptor: Descriptor) -> type[Message]:
    """The generated class of a message descriptor."""
    return message_factory.GetMessageClass(descriptor)  # cached by protobuf itself
