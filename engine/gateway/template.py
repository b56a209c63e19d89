"""google.api.http path templates: parsing and matching request paths against them.

The grammar is the one in google/api/http.proto::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

Where http.proto leaves room, this module settles it as follows:

* A LITERAL is one or more RFC 3986 path characters (unreserved, sub-delims, ":", "@") or
  percent escapes, except "*": a "*" inside a literal reads like a glob ("*.txt") that would
  never match, so it must be written "%2A".
* The verb is split off the last top-level segment at its last ":"; a ":" anywhere else is an
  ordinary literal character. A verb may not contain ":" (the matcher could not find it again).
* "**" may only be the last segment, inside a variable or not.
* A field path may be bound once; "a" and "a.b" together are rejected too, since a field cannot
  be both a path value and a message with sub-fields.

Matching takes the request path as received (percent-encoded, without the query string):

* Literals and the verb compare after percent-decoding, so "%41" matches a literal "A".
* "*" matches exactly one non-empty segment; "**" matches all remaining segments (zero or more,
  empty ones included), as in grpc-gateway and Envoy.
* Variable values are the covered raw segments joined with "/" and percent-decoded, except that
  "%2F"/"%2f" stay encoded: a "/" in a value is then always a real path separator.
* A path with a malformed escape ("%zz", "%4") or escapes that are not UTF-8 matches nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import quote, unquote, unquote_to_bytes

__all__ = ["PathTemplate", "TemplateError", "Variable"]

# RFC 3986 pchar without "%" (escapes are checked separately) and without "*" (see above).
_LITERAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()+,;=:@")
# A literal as written: its characters and its escapes, checked once the run is read.
_RUN_CHARS = _LITERAL_CHARS | {"%"}
# What `quote` may leave as is when building a canonical literal; "*" is absent so that no
# literal's canonical form can be mistaken for a wildcard in `PathTemplate.shape`.
_CANONICAL_SAFE = "-._~!$&'()+,;=:@"
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_SLASH = re.compile(r"(%2[Ff])")

# Specificity ranks of one position of a template (see `PathTemplate.specificity`).
_RANK_DOUBLE_STAR = 1
_RANK_STAR = 2
_RANK_LITERAL = 3
_RANK_END = 4


class TemplateError(ValueError):
    """A path template that does not follow the grammar; says what is wrong and where."""

    def __init__(self, text: str, position: int, reason: str) -> None:
        super().__init__(f"{reason} at offset {position} of {text!r}")
        self.text = text
        self.position = position
        self.reason = reason


@dataclass(frozen=True)
class Variable:
    """A `{field.path=pattern}` of a template, located by the path segments it covers."""

    #: The request field it binds: "name" or nested "a.b.c".
    field_path: str
    #: Index of the first path segment it covers.
    start: int
    #: Index one past its last segment; None when it ends with "**" (it runs to the end of the path).
    end: int | None
    #: True when its pattern contains "**".
    multi: bool


@dataclass(frozen=True)
class _Plan:
    """What `PathTemplate.match` needs, worked out once per template rather than per request."""

    #: (segment index, decoded literal) for every literal segment.
    literals: tuple[tuple[int, str], ...]
    #: Indexes of the "*" segments, which must not be empty.
    stars: tuple[int, ...]
    #: Number of segments before a trailing "**" (all of them when there is none).
    fixed: int
    #: Whether the template ends with "**".
    open_ended: bool
    #: The decoded verb, "" for none.
    verb: str
    #: (field path, start, end) of each variable.
    variables: tuple[tuple[str, int, int | None], ...]


@dataclass(frozen=True)
class PathTemplate:
    """A parsed google.api.http path template; build it with `PathTemplate.parse`."""

    #: The template as written.
    text: str
    #: Each a literal (as written, escapes and all), "*" or "**"; variables are expanded to their
    #: patterns, `{x}` being `{x=*}`.
    segments: tuple[str, ...]
    #: The custom verb without its ":"; "" when there is none.
    verb: str
    variables: tuple[Variable, ...]
    _plan: _Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        literals = tuple(
            (index, unquote(segment, errors="strict"))
            for index, segment in enumerate(self.segments)
            if segment not in ("*", "**")
        )
        open_ended = bool(self.segments) and self.segments[-1] == "**"
        plan = _Plan(
            literals=literals,
            stars=tuple(index for index, segment in enumerate(self.segments) if segment == "*"),
            fixed=len(self.segments) - 1 if open_ended else len(self.segments),
            open_ended=open_ended,
            verb=unquote(self.verb, errors="strict"),
            variables=tuple((v.field_path, v.start, v.end) for v in self.variables),
        )
        # The dataclass is frozen; this is its one write, made while it is being built.
        object.__setattr__(self, "_plan", plan)

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        """Parse `text`; raise TemplateError if it does not follow the grammar."""
        return _Parser(text).template()

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The variable values bound by the percent-encoded `raw_path`, or None if it does not match."""
        plan = self._plan
        if not raw_path.startswith("/"):
            return None
        path = raw_path[1:]
        if plan.verb:
            # The verb can only be in the last segment; a ":" before the last "/" is data.
            colon = path.rfind(":")
            if colon <= path.rfind("/") or unquote(path[colon + 1 :]) != plan.verb:
                return None
            path = path[:colon]
        parts = path.split("/")
        if len(parts) < plan.fixed or (not plan.open_ended and len(parts) != plan.fixed):
            return None
        for index, literal in plan.literals:
            part = parts[index]
            if (unquote(part) if "%" in part else part) != literal:
                return None
        for index in plan.stars:
            if not parts[index]:
                return None
        # Checked for the whole path, and only once the cheap tests have passed (a router tries
        # many templates): a malformed path matches nothing, whichever segments a template binds.
        # (The lenient decoding above may let a malformed path past a literal, never past this.)
        if "%" in raw_path and not _decodes(raw_path):
            return None
        return {
            field_path: _decode_keeping_slashes("/".join(parts[start:end]))
            for field_path, start, end in plan.variables
        }

    def shape(self) -> tuple[tuple[str, ...], str]:
        """(segments, verb) with variables erased and literals in one canonical spelling.

        Two templates have equal shapes exactly when they match the same paths, which is how
        duplicate routes are found. Literals are decoded and re-encoded so that "%41" and "A" agree.
        """
        segments = tuple(
            segment if segment in ("*", "**") else _canonical(segment) for segment in self.segments
        )
        return segments, _canonical(self.verb) if self.verb else ""

    @property
    def specificity(self) -> tuple[int, ...]:
        """Sort key, higher = more specific, for choosing among templates that match the same path.

        Positions compare left to right: a literal beats "*", which beats "**"; a template that
        ends where another continues with "**" beats it (it matches fewer paths). The verb is the
        last tie-break: with one beats without. Two overlapping templates with equal keys have
        equal shapes.
        """
        ranks = [
            _RANK_DOUBLE_STAR if segment == "**" else _RANK_STAR if segment == "*" else _RANK_LITERAL
            for segment in self.segments
        ]
        if not self._plan.open_ended:
            ranks.append(_RANK_END)
        ranks.append(1 if self.verb else 0)
        return tuple(ranks)


def _decodes(raw: str) -> bool:
    """True when every "%" in `raw` starts a well-formed escape and the result is UTF-8."""
    if _BAD_ESCAPE.search(raw):
        return False
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode_keeping_slashes(raw: str) -> str:
    """Percent-decode `raw` (already checked by `_decodes`) except for "%2F" and "%2f"."""
    if "%" not in raw:
        return raw
    # Splitting on an encoded "/" cannot cut a UTF-8 sequence in two: 0x2F is never part of one.
    pieces = _ENCODED_SLASH.split(raw)
    return "".join(
        piece if index % 2 else unquote(piece, errors="strict") for index, piece in enumerate(pieces)
    )


def _canonical(literal: str) -> str:
    """One spelling for all ways of writing the same decoded literal."""
    return quote(unquote(literal, errors="strict"), safe=_CANONICAL_SAFE)


class _Parser:
    """Recursive descent over the template text, one instance per template."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.segments: list[str] = []
        self.variables: list[Variable] = []
        # Offsets of the "**" read so far, with the segment index each became, for the
        # "last segment only" check once the whole template is known.
        self.double_stars: list[tuple[int, int]] = []

    def fail(self, reason: str, position: int | None = None) -> NoReturn:
        raise TemplateError(self.text, self.pos if position is None else position, reason)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def template(self) -> PathTemplate:
        if not self.text.startswith("/"):
            self.fail("a template must start with '/'", 0)
        self.pos = 1
        verb = ""
        while True:
            if self.peek() == "{":
                self.variable()
            else:
                start = self.pos
                segment = self.segment(in_variable=False)
                if self.pos == len(self.text) and segment not in ("*", "**") and ":" in segment:
                    # A literal that ends the template carries the verb after its last ":".
                    cut = segment.rindex(":")
                    segment, verb = segment[:cut], segment[cut + 1 :]
                    if not segment:
                        self.fail("empty segment before the verb", start)
                    if not verb:
                        self.fail("empty verb", start + cut + 1)
                self.segments.append(segment)
            next_char = self.peek()
            if next_char == "/":
                self.pos += 1
            elif next_char == "":
                break
            elif next_char == ":":
                # Only after a wildcard or a variable: a literal's run takes its colons along.
                verb = self.verb()
                break
            elif next_char == "{":
                self.fail("a variable must be a whole segment")
            elif next_char == "*":
                self.fail("'*' must be a whole segment (write '%2A' for a literal '*')")
            elif next_char == "}":
                self.fail("unbalanced '}'")
            else:
                self.fail(f"unexpected {next_char!r}")
        last = len(self.segments) - 1
        for index, position in self.double_stars:
            if index != last:
                self.fail("'**' must be the last segment", position)
        return PathTemplate(self.text, tuple(self.segments), verb, tuple(self.variables))

    def segment(self, *, in_variable: bool) -> str:
        """A "*", "**" or literal; the caller handles "{" and what follows the segment."""
        start = self.pos
        if self.peek() == "*":
            self.pos += 1
            if self.peek() == "*":
                self.pos += 1
                self.double_stars.append((len(self.segments), start))
            if self.peek() not in ("", "/", "}") and not (self.peek() == ":" and not in_variable):
                self.fail("'*' and '**' must be whole segments", start)
            return self.text[start : self.pos]
        literal = self.literal()
        if not literal:
            next_char = self.peek()
            if next_char in ("", "/", ":") or (next_char == "}" and in_variable):
                self.fail("empty segment")
            if next_char == "{":
                self.fail("variables may not nest" if in_variable else "a variable must be a whole segment")
            if next_char == "}":
                self.fail("unbalanced '}'")
            self.fail(f"unexpected {next_char!r}")
        return literal

    def literal(self) -> str:
        """The longest run of literal characters here (possibly empty), escapes checked."""
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _RUN_CHARS:
            self.pos += 1
        run = self.text[start : self.pos]
        bad = _BAD_ESCAPE.search(run)
        if bad:
            self.fail("'%' must start an escape of two hex digits", start + bad.start())
        if "%" in run and not _decodes(run):
            self.fail("escapes must decode to UTF-8", start)
        return run

    def verb(self) -> str:
        self.pos += 1  # the ":"
        start = self.pos
        verb = self.literal()
        if not verb:
            self.fail("empty verb" if self.peek() in ("", "/") else f"unexpected {self.peek()!r} in the verb")
        if ":" in verb:
            self.fail("a verb may not contain ':'", start + verb.index(":"))
        if self.pos != len(self.text):
            self.fail("the verb must end the template")
        return verb

    def variable(self) -> None:
        """A `{field.path=pattern}`; appends its pattern to the segments and records it."""
        start = self.pos
        self.pos += 1  # the "{"
        found = _FIELD_PATH.match(self.text, self.pos)
        if found is None:
            self.fail("expected a field name")
        field_path = found.group()
        self.pos = found.end()
        for other in self.variables:
            if field_path == other.field_path:
                self.fail(f"field {field_path!r} is bound twice", start)
            if field_path.startswith(other.field_path + ".") or other.field_path.startswith(field_path + "."):
                self.fail(f"field {field_path!r} overlaps {other.field_path!r}", start)
        first = len(self.segments)
        if self.peek() == "=":
            self.pos += 1
            while True:
                if self.peek() == "{":
                    self.fail("variables may not nest")
                self.segments.append(self.segment(in_variable=True))
                if self.peek() != "/":
                    break
                self.pos += 1
        else:
            self.segments.append("*")
        if self.peek() == "{":
            self.fail("variables may not nest")
        if self.peek() == "*":
            self.fail("'*' must be a whole segment (write '%2A' for a literal '*')")
        if self.peek() != "}":
            self.fail("missing '}'" if self.peek() == "" else f"unexpected {self.peek()!r} in a variable")
        self.pos += 1
        multi = "**" in self.segments[first:]
        end = None if self.segments[-1] == "**" else len(self.segments)
        self.variables.append(Variable(field_path, first, end, multi))
