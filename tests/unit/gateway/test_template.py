"""google.api.http path templates: parsing, matching, shapes and specificity."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.gateway.template import PathTemplate, TemplateError, Variable

PROTO_DIR = Path(__file__).resolve().parents[3] / "proto" / "workflow_engine" / "v1"


# --- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "segments", "verb", "variables"),
    [
        ("/v1/things", ("v1", "things"), "", ()),
        ("/v1/things/{id}", ("v1", "things", "*"), "", (Variable("id", 2, 3, False),)),
        ("/v1/things/{id=*}", ("v1", "things", "*"), "", (Variable("id", 2, 3, False),)),
        (
            "/v1/{name=shelves/*/books/*}",
            ("v1", "shelves", "*", "books", "*"),
            "",
            (Variable("name", 1, 5, False),),
        ),
        ("/v1/files/{path=**}", ("v1", "files", "**"), "", (Variable("path", 2, None, True),)),
        ("/v1/{name=files/**}", ("v1", "files", "**"), "", (Variable("name", 1, None, True),)),
        ("/v1/{a.b}", ("v1", "*"), "", (Variable("a.b", 1, 2, False),)),
        ("/v1/{a.b_c.d9}/x", ("v1", "*", "x"), "", (Variable("a.b_c.d9", 1, 2, False),)),
        ("/v1/things:batchGet", ("v1", "things"), "batchGet", ()),
        ("/v1/{name=things/*}:cancel", ("v1", "things", "*"), "cancel", (Variable("name", 1, 3, False),)),
        ("/v1/{id}:cancel", ("v1", "*"), "cancel", (Variable("id", 1, 2, False),)),
        ("/v1/*:run", ("v1", "*"), "run", ()),
        ("/v1/**:run", ("v1", "**"), "run", ()),
        ("/v1/{path=**}:run", ("v1", "**"), "run", (Variable("path", 1, None, True),)),
        ("/*", ("*",), "", ()),
        ("/**", ("**",), "", ()),
        ("/v1/*/x/**", ("v1", "*", "x", "**"), "", ()),
        (
            "/v1/{parent=projects/*}/{child}",
            ("v1", "projects", "*", "*"),
            "",
            (Variable("parent", 1, 3, False), Variable("child", 3, 4, False)),
        ),
        # A ":" before the last segment, or inside a variable, is an ordinary literal character.
        ("/v1/a:b/c", ("v1", "a:b", "c"), "", ()),
        ("/v1/{x=a:b}", ("v1", "a:b"), "", (Variable("x", 1, 2, False),)),
        # The verb is split off at the last ":" of the last segment.
        ("/v1/a:b:c", ("v1", "a:b"), "c", ()),
        # Literals keep their spelling; escapes and RFC 3986 sub-delims are allowed.
        ("/v1/caf%C3%A9", ("v1", "caf%C3%A9"), "", ()),
        ("/v1/a-b.c_d~e!$&'()+,;=@", ("v1", "a-b.c_d~e!$&'()+,;=@"), "", ()),
        ("/v1/%2A", ("v1", "%2A"), "", ()),
    ],
)
def test_parse(text: str, segments: tuple[str, ...], verb: str, variables: tuple[Variable, ...]) -> None:
    template = PathTemplate.parse(text)
    assert template.text == text
    assert template.segments == segments
    assert template.verb == verb
    assert template.variables == variables


@pytest.mark.parametrize(
    ("text", "reason", "position"),
    [
        ("", "must start with '/'", 0),
        ("v1/things", "must start with '/'", 0),
        ("/", "empty segment", 1),
        ("/v1/", "empty segment", 4),
        ("/v1//things", "empty segment", 4),
        ("/v1/{x=}", "empty segment", 7),
        ("/v1/{x=a//b}", "empty segment", 9),
        ("/v1/:verb", "empty segment", 4),
        ("/v1/things:", "empty verb", 11),
        ("/v1/*:", "empty verb", 6),
        ("/v1/{id}:", "empty verb", 9),
        ("/v1/{id}:a:b", "may not contain ':'", 10),
        ("/v1/*:run/x", "verb must end", 9),
        ("/v1/{id}:a{b}", "verb must end", 10),
        ("/v1/{id}:{b}", "unexpected '{' in the verb", 9),
        ("/v1/*:a*", "verb must end", 7),
        ("/v1/{id", "missing '}'", 7),
        ("/v1/{id=a/*", "missing '}'", 11),
        ("/v1/id}", "unbalanced '}'", 6),
        ("/v1/}", "unbalanced '}'", 4),
        ("/v1/{}", "expected a field name", 5),
        ("/v1/{=*}", "expected a field name", 5),
        ("/v1/{1x}", "expected a field name", 5),
        ("/v1/{a.}", "unexpected '.' in a variable", 6),
        ("/v1/{a..b}", "unexpected '.' in a variable", 6),
        ("/v1/{a-b}", "unexpected '-' in a variable", 6),
        ("/v1/{a=b{c}}", "variables may not nest", 8),
        ("/v1/{a={b}}", "variables may not nest", 7),
        ("/v1/{a=x/{b}}", "variables may not nest", 9),
        ("/v1/a{b}", "variable must be a whole segment", 5),
        ("/v1/{a}{b}", "variable must be a whole segment", 7),
        ("/v1/{a}b", "unexpected 'b'", 7),
        ("/v1/{a}/{a}", "bound twice", 8),
        ("/v1/{a.b}/{a.b=x/*}", "bound twice", 10),
        ("/v1/{a}/{a.b}", "overlaps 'a'", 8),
        ("/v1/{a.b.c}/{a.b}", "overlaps 'a.b.c'", 12),
        ("/v1/**/x", "'**' must be the last segment", 4),
        ("/**/**", "'**' must be the last segment", 1),
        ("/v1/{path=**}/x", "'**' must be the last segment", 10),
        ("/v1/{path=**/x}", "'**' must be the last segment", 10),
        ("/v1/*.txt", "must be whole segments", 4),
        ("/v1/***", "must be whole segments", 4),
        ("/v1/a*", "'*' must be a whole segment", 5),
        ("/v1/{x=a*}", "'*' must be a whole segment", 8),
        ("/v1/{x=*:v}", "must be whole segments", 7),
        ("/v1/a b", "unexpected ' '", 5),
        ("/v1/things?x=1", "unexpected '?'", 10),
        ("/v1/caf\u00e9", "unexpected 'é'", 7),
        ("/v1/%zz", "'%' must start an escape", 4),
        ("/v1/a%4", "'%' must start an escape", 5),
        ("/v1/%FF", "escapes must decode to UTF-8", 4),
    ],
)
def test_parse_rejects(text: str, reason: str, position: int) -> None:
    with pytest.raises(TemplateError) as caught:
        PathTemplate.parse(text)
    assert reason in caught.value.reason
    assert caught.value.position == position
    assert caught.value.text == text
    # The message alone says what and where.
    assert str(caught.value) == f"{caught.value.reason} at offset {position} of {text!r}"


def test_template_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty segment"):
        PathTemplate.parse("/v1//x")


# --- matching --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        # Literals only.
        ("/v1/things", "/v1/things", {}),
        ("/v1/things", "/v1/thing", None),
        ("/v1/things", "/v1/things/x", None),
        ("/v1/things", "/v1", None),
        ("/v1/things", "v1/things", None),
        ("/v1/things", "", None),
        ("/v1/things", "/v1/things/", None),
        ("/v1/things", "/v1//things", None),
        # Single-segment variables.
        ("/v1/things/{id}", "/v1/things/42", {"id": "42"}),
        ("/v1/things/{id=*}", "/v1/things/42", {"id": "42"}),
        ("/v1/things/{id}", "/v1/things", None),
        ("/v1/things/{id}", "/v1/things/", None),  # trailing "/": an empty segment is not a "*"
        ("/v1/things/{id}", "/v1/things/42/", None),
        ("/v1/things/{id}", "/v1/things/42/x", None),
        ("/v1/things/{id}", "/v1/other/42", None),
        ("/v1/{a.b}", "/v1/x", {"a.b": "x"}),
        ("/v1/{parent=projects/*}/{child}", "/v1/projects/p/c", {"parent": "projects/p", "child": "c"}),
        ("/*", "/x", {}),
        ("/*", "/", None),
        # Multi-segment variables.
        ("/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books/b2", {"name": "shelves/s1/books/b2"}),
        ("/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books", None),
        ("/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/papers/b2", None),
        ("/v1/{name=shelves/*/books/*}", "/v1/shelves//books/b2", None),
        # "**" takes zero, one or many segments, empty ones included.
        ("/v1/files/{path=**}", "/v1/files", {"path": ""}),
        ("/v1/files/{path=**}", "/v1/files/", {"path": ""}),
        ("/v1/files/{path=**}", "/v1/files/a", {"path": "a"}),
        ("/v1/files/{path=**}", "/v1/files/a/b/c", {"path": "a/b/c"}),
        ("/v1/files/{path=**}", "/v1/files/a//b/", {"path": "a//b/"}),
        ("/v1/files/{path=**}", "/v1/file", None),
        ("/v1/files/{path=**}", "/v1", None),
        ("/v1/{name=files/**}", "/v1/files", {"name": "files"}),
        ("/v1/{name=files/**}", "/v1/files/a/b", {"name": "files/a/b"}),
        ("/v1/**", "/v1/a/b", {}),
        ("/**", "/", {}),
        ("/**", "/a/b", {}),
        ("/v1/*/**", "/v1", None),
        ("/v1/*/**", "/v1/a", {}),
        # Verbs.
        ("/v1/things:batchGet", "/v1/things:batchGet", {}),
        ("/v1/things:batchGet", "/v1/things", None),
        ("/v1/things:batchGet", "/v1/things:batchget", None),
        ("/v1/things:batchGet", "/v1/things:batchGetX", None),
        ("/v1/things:batchGet", "/v1/things:batchGet/", None),
        ("/v1/things:batchGet", "/v1/things/:batchGet", None),
        ("/v1/things:batchGet", "/v1/things%3AbatchGet", None),  # an encoded ":" is data
        ("/v1/things:batchGet", "/v1/things:batch%47et", {}),  # the verb compares decoded
        ("/v1/{name=things/*}:cancel", "/v1/things/t1:cancel", {"name": "things/t1"}),
        ("/v1/{name=things/*}:cancel", "/v1/things/t1", None),
        ("/v1/{name=things/*}:cancel", "/v1/things/:cancel", None),
        ("/v1/{name=things/*}:cancel", "/v1/things/a:b:cancel", {"name": "things/a:b"}),
        ("/v1/{name=things/*}:cancel", "/v1/things/t1:cancel:cancel", {"name": "things/t1:cancel"}),
        ("/v1/{name=things/*}:cancel", "/v1/thi:ngs/t1", None),  # the verb is in the last segment only
        ("/v1/{path=**}:run", "/v1:run", {"path": ""}),
        ("/v1/{path=**}:run", "/v1/a:x/b:run", {"path": "a:x/b"}),
        # Without a verb in the template, a ":" is ordinary text.
        ("/v1/things/{id}", "/v1/things/a:b", {"id": "a:b"}),
        ("/v1/a:b/{id}", "/v1/a:b/c", {"id": "c"}),
        ("/v1/a:b/{id}", "/v1/a%3Ab/c", {"id": "c"}),
        # Literals compare decoded.
        ("/v1/things", "/v1/%74hings", {}),
        ("/v1/caf%C3%A9", "/v1/caf%c3%a9", {}),
        ("/v1/caf%C3%A9", "/v1/caf\u00e9", {}),
        ("/v1/a%2Fb", "/v1/a%2fb", {}),
        ("/v1/a%2Fb", "/v1/a/b", None),
        ("/v1/%2A", "/v1/*", {}),
        ("/v1/%2A", "/v1/x", None),
        # Variable values are decoded, except for an encoded "/".
        ("/v1/things/{id}", "/v1/things/a%20b", {"id": "a b"}),
        ("/v1/things/{id}", "/v1/things/caf%C3%A9", {"id": "caf\u00e9"}),
        ("/v1/things/{id}", "/v1/things/a%2Fb", {"id": "a%2Fb"}),
        ("/v1/things/{id}", "/v1/things/a%2fb", {"id": "a%2fb"}),
        ("/v1/things/{id}", "/v1/things/%252F", {"id": "%2F"}),
        ("/v1/things/{id}", "/v1/things/a+b", {"id": "a+b"}),
        ("/v1/files/{path=**}", "/v1/files/a%2Fb/c%20d", {"path": "a%2Fb/c d"}),
        ("/v1/files/{path=**}", "/v1/files/%E2%98%83%2F%E2%98%83", {"path": "\u2603%2F\u2603"}),
        # Malformed escapes or non-UTF-8 anywhere: no match rather than an error.
        ("/v1/things/{id}", "/v1/things/%zz", None),
        ("/v1/things/{id}", "/v1/things/%4", None),
        ("/v1/things/{id}", "/v1/things/a%", None),
        ("/v1/things/{id}", "/v1/things/%FF", None),
        ("/v1/things/{id}", "/v1/things/%C3", None),
        ("/v1/*/{id}", "/v1/%zz/x", None),
        ("/v1/files/{path=**}", "/v1/files/a/%G0", None),
    ],
)
def test_match(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert PathTemplate.parse(template).match(path) == expected


# --- shape and specificity -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/v1/{x}", "/v1/{y=*}"),
        ("/v1/{x}", "/v1/*"),
        ("/v1/{name=things/*}", "/v1/things/{id}"),
        ("/v1/{path=**}", "/v1/**"),
        ("/v1/{a}/{b=**}", "/v1/{c=*/**}"),
        ("/v1/{name=things/*}:cancel", "/v1/things/*:cancel"),
        ("/v1/things", "/v1/%74hings"),
        ("/v1/caf%C3%A9", "/v1/caf%c3%a9"),
        ("/v1/a:b/x", "/v1/a%3Ab/x"),
        ("/v1/x:batchGet", "/v1/x:batch%47et"),
    ],
)
def test_equal_shapes(first: str, second: str) -> None:
    assert PathTemplate.parse(first).shape() == PathTemplate.parse(second).shape()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/v1/{x}", "/v1/{x=**}"),
        ("/v1/{x}", "/v1/x"),
        ("/v1/%2A", "/v1/*"),  # an encoded "*" is a literal, never a wildcard
        ("/v1/%2A%2A", "/v1/**"),
        ("/v1/a%2Fb", "/v1/a/b"),
        ("/v1/{x}", "/v1/{x}:run"),
        ("/v1/{x}:run", "/v1/{x}:stop"),
        ("/v1/things", "/v1/Things"),
    ],
)
def test_different_shapes(first: str, second: str) -> None:
    assert PathTemplate.parse(first).shape() != PathTemplate.parse(second).shape()


def test_shape_value() -> None:
    template = PathTemplate.parse("/v1/{name=things/*}/x%41/{rest=**}:do")
    assert template.shape() == (("v1", "things", "*", "xA", "**"), "do")


@pytest.mark.parametrize(
    ("more", "less"),
    [
        ("/v1/sessions/stats", "/v1/sessions/{id}"),
        ("/v1/sessions/{id}", "/v1/sessions/{rest=**}"),
        ("/v1/sessions/stats", "/v1/{rest=**}"),
        ("/v1/sessions/{id}:cancel", "/v1/sessions/{id}"),
        ("/v1/{name=sessions/*}:cancel", "/v1/sessions/{id}"),
        ("/v1/{path=**}:run", "/v1/{path=**}"),
        ("/v1/a/{b}", "/v1/{a}/b"),  # the leftmost difference decides
        ("/v1/*", "/v1/*/**"),  # ending here beats "**" taking zero segments
        ("/v1/*/*", "/v1/**"),
        ("/v1/x/**", "/v1/**"),
    ],
)
def test_specificity_order(more: str, less: str) -> None:
    assert PathTemplate.parse(more).specificity > PathTemplate.parse(less).specificity


def test_most_specific_of_overlapping_templates_is_chosen() -> None:
    templates = [
        PathTemplate.parse(text)
        for text in (
            "/v1/{rest=**}",
            "/v1/sessions/{id}",
            "/v1/sessions/stats",
            "/v1/sessions/{id}:cancel",
            "/v1/{name=sessions/*}/**",
        )
    ]
    ordered = sorted(templates, key=lambda t: t.specificity, reverse=True)

    def first_match(path: str) -> str:
        return next(t.text for t in ordered if t.match(path) is not None)

    assert first_match("/v1/sessions/stats") == "/v1/sessions/stats"
    assert first_match("/v1/sessions/s1") == "/v1/sessions/{id}"
    assert first_match("/v1/sessions/s1:cancel") == "/v1/sessions/{id}:cancel"
    assert first_match("/v1/sessions/s1/x") == "/v1/{name=sessions/*}/**"
    assert first_match("/v1/other") == "/v1/{rest=**}"


# --- the engine's own routes -----------------------------------------------------------------------

# `get: "/path"` and friends, plus `path: "/path"` of custom bindings, inside google.api.http options.
_HTTP_PATH = re.compile(r'\b(?:get|put|post|delete|patch|path)\s*:\s*"([^"]*)"')
ENGINE_ROUTES = sorted(
    {
        (proto.name, found.group(1))
        for proto in PROTO_DIR.glob("*.proto")
        for found in _HTTP_PATH.finditer(proto.read_text(encoding="utf-8"))
    }
)


def test_engine_routes_were_found() -> None:
    assert len(ENGINE_ROUTES) >= 20


def _sample_path(template: PathTemplate) -> str:
    """A concrete path for `template`: each "*" becomes "x", a "**" the two segments "y/z"."""
    parts = ["x" if s == "*" else "y/z" if s == "**" else s for s in template.segments]
    return "/" + "/".join(parts) + (f":{template.verb}" if template.verb else "")


@pytest.mark.parametrize(("proto", "text"), ENGINE_ROUTES)
def test_engine_route_parses_and_matches(proto: str, text: str) -> None:
    template = PathTemplate.parse(text)
    bindings = template.match(_sample_path(template))
    assert bindings is not None
    assert set(bindings) == {v.field_path for v in template.variables}
