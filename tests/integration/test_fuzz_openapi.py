"""Property-based fuzzing of the REST gateway from the OpenAPI document it serves (schemathesis).

Every operation of the live `/openapi.json` is fuzzed with schema-valid (positive) and
schema-violating (negative) requests, plus -- where a JSON body has fields the registry
validates -- bodies plausible enough to pass validation and reach the database. Each
operation runs once per credential it documents (the PSK, a freshly registered dashboard's
API key, the master key as `X-API-Key` and as a bearer token) and once without credentials.
Every response must:

* not be a server error (`not_a_server_error`), except the 501 carrying gRPC code 12
  (UNIMPLEMENTED) of the services the engine does not implement yet;
* use a documented status code and content type (`status_code_conformance`,
  `content_type_conformance`);
* match the documented body schema and headers (`response_schema_conformance`,
  `response_headers_conformance`);
* for negative cases, not be a success (`negative_data_rejection`, except for `null`
  field values, which proto3 JSON accepts: see `_has_null_field`); without credentials
  on a secured operation, never be a success either.

Examples per operation and credential: `FUZZ_EXAMPLES` (default 25). Generation is
derandomized, so every run sends the same requests. `pytest --hypothesis-show-statistics`
shows the status codes each test saw.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema

from engine.app import build_engine, openapi_document
from tests.support.constants import MASTER_KEY, PSK, WEBHOOK_SECRET
from tests.support.live import base_settings

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

#: The document the gateway serves, built at collection time to parametrize the tests;
#: `test_every_served_operation_is_fuzzed` checks that it is the one served.
DOCUMENT: dict[str, Any] = json.loads(openapi_document())
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: gRPC status code UNIMPLEMENTED, the `code` of the 501 of a service not implemented yet.
UNIMPLEMENTED = 12

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]

#: Values the registry accepts (or nearly), so that some bodies get past its validation.
_PRINTABLE = st.characters(exclude_categories=("Cc", "Cs"))
PLAUSIBLE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "agencyId": st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    "dashboardName": st.text(_PRINTABLE, min_size=1, max_size=200),
    "dashboardUrl": st.builds(
        "{}://{}.example.com/{}".format,
        st.sampled_from(["https", "http", "ftp"]),
        st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True),
        st.text(_PRINTABLE, max_size=30),
    ),
    "webhookSecret": st.text(_PRINTABLE, min_size=31, max_size=100),
    "gracePeriodSeconds": st.integers(min_value=-1, max_value=700_000).map(str),
}

_agency_numbers = itertools.count(1)


@dataclass(frozen=True)
class Operation:
    """One operation of the document, with what the fuzz needs to know about it."""

    method: str
    path: str
    operation_id: str
    schemes: frozenset[str]
    #: Where the operation takes an `agencyId`: "path", "query" and/or "body".
    agency_id_in: frozenset[str]
    #: The fields of its JSON body that PLAUSIBLE_FIELDS knows.
    plausible_fields: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def _operations() -> list[Operation]:
    schemas = DOCUMENT["components"]["schemas"]
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, definition in item.items():
            if method not in HTTP_METHODS:
                continue
            schemes = frozenset(
                name for requirement in definition.get("security", []) for name in requirement
            )
            agency_id_in = {p["in"] for p in definition.get("parameters", []) if p["name"] == "agencyId"}
            content = definition.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
            properties = schemas.get(ref.rpartition("/")[2], {}).get("properties", {})
            if "agencyId" in properties:
                agency_id_in.add("body")
            plausible = tuple(name for name in properties if name in PLAUSIBLE_FIELDS)
            found.append(
                Operation(
                    method.upper(),
                    path,
                    definition["operationId"],
                    schemes,
                    frozenset(agency_id_in),
                    plausible,
                )
            )
    return found


OPERATIONS = _operations()


def _credentials_for(operation: Operation) -> list[str]:
    """The ways of calling `operation`: each credential it documents, and none at all."""
    ways = []
    if "PSK" in operation.schemes:
        ways.append("psk")
    if "ApiKey" in operation.schemes:
        ways += ["dashboard-key", "master-key"]
    if "MasterBearer" in operation.schemes:
        ways.append("master-bearer")
    ways.append("anonymous")
    return ways


CASES = [
    pytest.param(operation, credential, id=f"{operation.operation_id}-{credential}")
    for operation in OPERATIONS
    for credential in _credentials_for(operation)
]


# -- the live engine ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One engine with its gateway for the whole module, rate limits out of the way."""
    database = tmp_path_factory.mktemp("fuzz") / "engine.db"
    settings = base_settings(f"sqlite:///{database}", rate_limit_rps=1e6, rate_limit_burst=10**9)
    engine = build_engine(settings, serve_http=True)
    engine.start()
    try:
        yield f"http://127.0.0.1:{engine.http_port}"
    finally:
        engine.stop(grace_seconds=0)


@pytest.fixture(scope="module")
def schema(base_url: str) -> OpenApiSchema:
    loaded = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    # The test sends real credentials; random values for the security headers would only
    # be sent alongside them and muddle which credential a call uses.
    loaded.config.generation.update(with_security_parameters=False)
    return loaded


@dataclass
class Dashboard:
    """A dashboard registered for one test; `api_key` follows the rotations the fuzz makes."""

    agency_id: str
    api_key: str


@pytest.fixture
def dashboard(base_url: str) -> Dashboard:
    agency_id = f"fuzz-{next(_agency_numbers)}"
    response = httpx.post(
        f"{base_url}/v1/internal/dashboard/register",
        headers={"Authorization": f"PSK {PSK}"},
        json={
            "agencyId": agency_id,
            "dashboardName": f"Fuzz {agency_id}",
            "dashboardUrl": "https://dashboard.example.com/hooks",
            "webhookSecret": WEBHOOK_SECRET,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return Dashboard(agency_id, response.json()["apiKey"])


def _headers(credential: str, dashboard: Dashboard) -> dict[str, str]:
    return {
        "psk": {"Authorization": f"PSK {PSK}"},
        "dashboard-key": {"X-API-Key": dashboard.api_key},
        "master-key": {"X-API-Key": MASTER_KEY},
        "master-bearer": {"Authorization": f"Bearer {MASTER_KEY}"},
        "anonymous": {},
    }[credential]


# -- strategies -----------------------------------------------------------------------------


def _aimed_at(operation: Operation, agency_id: str, case: Case[Any]) -> Case[Any]:
    """`case`, naming the registered agency wherever the operation takes an `agencyId`."""
    if "path" in operation.agency_id_in:
        case.path_parameters = {**(case.path_parameters or {}), "agencyId": agency_id}
    if "query" in operation.agency_id_in:
        case.query = {**(case.query or {}), "agencyId": agency_id}
    if "body" in operation.agency_id_in and isinstance(case.body, dict):
        case.body = {**case.body, "agencyId": agency_id}
    return case


_strategies: dict[tuple[int, Operation, str], st.SearchStrategy[Case[Any]]] = {}


def _strategy(schema: OpenApiSchema, operation: Operation, agency_id: str) -> st.SearchStrategy[Case[Any]]:
    """Positive and negative cases, plausible bodies; the valid ones also aimed at `agency_id`.

    Negative cases are left as generated: aiming could overwrite the very value that makes
    them invalid, and `negative_data_rejection` would then blame a valid request.
    """
    key = (id(schema), operation, agency_id)
    if key in _strategies:
        return _strategies[key]
    api_operation = schema[operation.path][operation.method]
    valid = [api_operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    if operation.plausible_fields:
        fields = {name: PLAUSIBLE_FIELDS[name] for name in operation.plausible_fields}
        bodies = st.fixed_dictionaries(fields) | st.fixed_dictionaries({}, optional=fields)
        valid.append(bodies.flatmap(lambda body: api_operation.as_strategy(body=body)))
    if operation.agency_id_in:
        valid += [s.map(lambda case: _aimed_at(operation, agency_id, case)) for s in list(valid)]
    strategy = st.one_of(*valid, api_operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    _strategies[key] = strategy
    return strategy


def _is_unimplemented(response: Any) -> bool:
    """A 501 carrying gRPC UNIMPLEMENTED: a service the engine does not serve yet."""
    if response.status_code != 501:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == UNIMPLEMENTED


def _has_null_field(body: Any) -> bool:
    """Whether a JSON body sets some field, at any depth, to `null`.

    The proto3 JSON mapping accepts `null` for every field and reads it as the field's
    default, and so does the gateway; the document types those fields as plain strings,
    so schemathesis counts `null` as invalid data. Such requests are not held to
    `negative_data_rejection` (a documentation gap, not a gateway bug).
    """
    if isinstance(body, dict):
        return any(value is None or _has_null_field(value) for value in body.values())
    return False


# -- the tests ------------------------------------------------------------------------------


def test_every_served_operation_is_fuzzed(schema: OpenApiSchema) -> None:
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results
    served = {result.ok().label for result in results if isinstance(result, Ok)}
    assert served == {operation.label for operation in OPERATIONS}


@pytest.mark.parametrize(("operation", "credential"), CASES)
@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # The fixtures are deliberately shared by every example of a test.
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_fuzz(
    schema: OpenApiSchema,
    base_url: str,
    dashboard: Dashboard,
    operation: Operation,
    credential: str,
    data: st.DataObject,
) -> None:
    case = data.draw(_strategy(schema, operation, dashboard.agency_id), label="case")
    headers = _headers(credential, dashboard)
    response = case.call(base_url=base_url, headers=headers, timeout=10)
    event(f"status {response.status_code}")
    skipped = set()
    if _is_unimplemented(response):
        skipped.add(not_a_server_error)
    if _has_null_field(case.body):
        skipped.add(negative_data_rejection)
    case.validate_response(
        response, checks=[check for check in CHECKS if check not in skipped], headers=headers
    )
    if credential == "anonymous" and operation.schemes:
        assert response.status_code >= 400, f"{operation.label} answered without credentials"
    rotated = operation.operation_id == "RegistryService_RotateApiKey" and response.status_code == 200
    if rotated and response.json()["agencyId"] == dashboard.agency_id:
        dashboard.api_key = response.json()["apiKey"]  # later examples use the new key
