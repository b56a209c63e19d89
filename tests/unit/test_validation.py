"""Field validators and the Violations collector."""

from __future__ import annotations

import pytest

from engine.errors import FieldViolation, InvalidArgument
from engine.validation import (
    MAX_URL_LENGTH,
    Violations,
    agency_id_problem,
    text_problem,
    url_problem,
    webhook_secret_problem,
)

# --- agencyId -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "Z", "7", "_", "-", "agency_1", "ACME-corp_42", "a" * 64])
def test_valid_agency_ids(value: str) -> None:
    assert agency_id_problem(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a" * 65,
        "has space",
        "dot.ted",
        "slash/ed",
        "colon:",
        "agency\n",  # a trailing newline must not slip through `$`
        "\nagency",
        "émile",  # letters means ASCII letters
        "\uff41gency",  # fullwidth a
        "١٢٣",  # Arabic-Indic digits
        "a+b",
        "a%20b",
    ],
)
def test_invalid_agency_ids(value: str) -> None:
    problem = agency_id_problem(value)
    assert problem is not None
    assert "1-64" in problem


# --- URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "http://example.com",
        "https://example.com/",
        "https://dash.example.com:8443/hooks/engine?x=1#frag",
        "http://127.0.0.1:8080/webhook",
        "http://[::1]:9000/hook",
        "HTTPS://EXAMPLE.COM/Path",
        "http://localhost",
    ],
)
def test_valid_urls(value: str) -> None:
    assert url_problem(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "example.com",
        "/relative/path",
        "//example.com/no-scheme",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "mailto:a@example.com",
        "ws://example.com/socket",
        "http://",
        "http:///path-only",
        "https://:443/",
        "http://exa mple.com/",
        "http://example.com/a b",
        " http://example.com",
        "http://example.com ",
        "http://example.com/\t",
        "http://example.com/\nX-Injected: 1",
        "http://example.com:0/",
        "http://example.com:65536/",
        "http://example.com:port/",
        "http://[::1/",
    ],
)
def test_invalid_urls(value: str) -> None:
    assert url_problem(value) in (
        "must be an absolute http or https URL",
        "must not contain control characters",  # tabs and line breaks are control characters
    )


def test_url_length_limit() -> None:
    base = "https://example.com/"
    assert url_problem(base + "a" * (MAX_URL_LENGTH - len(base))) is None
    problem = url_problem(base + "a" * (MAX_URL_LENGTH - len(base) + 1))
    assert problem == f"must be at most {MAX_URL_LENGTH} characters"


@pytest.mark.parametrize("value", ["http://exa\x00mple.com/", "https://example.com/\x00"])
def test_urls_with_control_characters_are_invalid(value: str) -> None:
    assert url_problem(value) is not None


# --- webhook secret -------------------------------------------------------------------------


def test_webhook_secret_length_bounds() -> None:
    assert webhook_secret_problem("s" * 31) == "must be at least 32 characters"
    assert webhook_secret_problem("s" * 32) is None
    assert webhook_secret_problem("s" * 512) is None
    assert webhook_secret_problem("s" * 513) == "must be at most 512 characters"
    assert webhook_secret_problem("") == "must be at least 32 characters"


@pytest.mark.parametrize("value", [" " + "s" * 32, "s" * 32 + " ", "s" * 32 + "\n", "\t" + "s" * 32])
def test_webhook_secret_must_not_have_outer_whitespace(value: str) -> None:
    assert webhook_secret_problem(value) == "must not start or end with whitespace"


def test_webhook_secret_inner_space_is_fine() -> None:
    assert webhook_secret_problem("s" * 16 + " " + "s" * 16) is None


def test_webhook_secret_problem_never_contains_the_secret() -> None:
    for value in ("tooshort-secret", "x" * 600, " padded-secret-value-0123456789abcdef "):
        problem = webhook_secret_problem(value)
        assert problem is not None
        assert value.strip() not in problem


# --- text -----------------------------------------------------------------------------------


def test_text_problem() -> None:
    assert text_problem("Acme dashboard", 200) is None
    assert text_problem("x" * 200, 200) is None
    assert text_problem("x" * 201, 200) == "must be at most 200 characters"
    assert text_problem("", 200) == "must not be empty"
    assert text_problem(" \t\n", 200) == "must not be empty"


# --- Violations -----------------------------------------------------------------------------


def test_violations_without_problems_do_not_raise() -> None:
    violations = Violations()
    violations.check("agencyId", agency_id_problem("ok"))
    violations.check("dashboardUrl", None)
    violations.raise_if_any()


def test_violations_collect_every_bad_field_in_order() -> None:
    violations = Violations()
    violations.check("agencyId", agency_id_problem("not ok!"))
    violations.check("dashboardName", text_problem("fine", 200))
    violations.check("dashboardUrl", url_problem("ftp://example.com"))
    violations.check("webhookSecret", webhook_secret_problem("tiny-secret-value"))
    with pytest.raises(InvalidArgument) as caught:
        violations.raise_if_any()
    error = caught.value
    assert [v.field for v in error.violations] == ["agencyId", "dashboardUrl", "webhookSecret"]
    assert error.violations[1] == FieldViolation("dashboardUrl", "must be an absolute http or https URL")
    for name in ("agencyId", "dashboardUrl", "webhookSecret"):
        assert name in error.message
    assert "dashboardName" not in error.message
    assert "tiny-secret-value" not in error.message


def test_violations_raise_a_snapshot() -> None:
    violations = Violations()
    violations.check("a", "bad")
    with pytest.raises(InvalidArgument) as first:
        violations.raise_if_any()
    violations.check("b", "bad too")
    assert [v.field for v in first.value.violations] == ["a"]
