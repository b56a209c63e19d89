"""Property-based fuzzing of the REST gateway from the OpenAPI document it serves (schemathesis).

Every operation of the live `/openapi.json` is fuzzed with schema-valid (positive) and
schema-violating (negative) requests, once per credential it documents -- the PSK, a
registered dashboard's API key, the master key -- and once without credentials. Every
response must:

* not be a server error (`not_a_server_error`), except the 501 + gRPC code 12
  (UNIMPLEMENTED) of services the engine does not implement yet;
* use a documented status code and content type (`status_code_conformance`,
  `content_type_conformance`);
* match the documented schema and headers (`response_schema_conformance`,
  `response_headers_conformance`).

Examples per operation and credential: `FUZZ_EXAMPLES` (default 25); `make fuzz` runs more.
Generation is derandomized, so a run is reproducible and CI-stable.
"""

from __future__ import annotations

import itertools
import collections
STATS={}
SAMPLES={}
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from engine.app import build_engine, openapi_document
from tests.conftest import MASTER_KEY, PSK, WEBHOOK_SECRET, LiveEngine, base_settings

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

#: The document the gateway serves, read at collection time to parametrize the tests;
#: `test_every_served_operation_is_fuzzed` checks it against the live one.
DOCUMENT: dict[str, Any] = json.loads(openapi_document())
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: gRPC status code UNIMPLEMENTED: the 501 of services the engine does not serve yet.
UNIMPLEMENTED = 12

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

_agency_numbers = itertools.count(1)


@dataclass(frozen=True)
class Operation:
    """One operation of the document, with what the fuzz needs to know about it."""

    method: str
    path: str
    operation_id: str
    schemes: frozenset[str]
    agency_id_in: frozenset[str]  # "path", "query", "body": where an `agencyId` can be aimed

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
            body = definition.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "")
            if "agencyId" in schemas.get(ref.rpartition("/")[2], {}).get("properties", {}):
                agency_id_in.add("body")
            found.append(
                Operation(method.upper(), path, definition["operationId"], schemes, frozenset(agency_id_in))
            )
    return found


OPERATIONS = _operations()


def _credentials_for(operation: Operation) -> list[str]:
    """The ways of calling `operation`: each credential it documents, and none at all."""
    ways = []
    if "PSK" in operation.schemes:
        ways.append("psk")
    if "ApiKey" in operation.schemes:
        ways.append("dashboard-key")
    if "MasterBearer" in operation.schemes or "ApiKey" in operation.schemes:
        ways.append("master-key")
    ways.append("anonymous")
    return ways


CASES = [
    pytest.param(operation, credential, id=f"{operation.operation_id}-{credential}")
    for operation in OPERATIONS
    for credential in _credentials_for(operation)
]


# -- the live engine ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEngine]:
    """One engine with its gateway for the whole module, with rate limits out of the way."""
    database = tmp_path_factory.mktemp("fuzz") / "engine.db"
    settings = base_settings(f"sqlite:///{database}", rate_limit_rps=1e6, rate_limit_burst=10**9)
    engine = build_engine(settings, serve_http=True)
    engine.start()
    try:
        yield LiveEngine(engine, channel=None, backend="sqlite")  # type: ignore[arg-type]
    finally:
        engine.stop(grace_seconds=0)


@pytest.fixture(scope="module")
def schema(fuzz_engine: LiveEngine) -> OpenApiSchema:
    loaded = schemathesis.openapi.from_url(f"{fuzz_engine.base_url}/openapi.json")
    # Credentials are sent by the test, not generated as random security headers.
    loaded.config.generation.update(with_security_parameters=False)
    return loaded


@dataclass
class Dashboard:
    """A dashboard registered for one test; `api_key` follows rotations made by the fuzz."""

    agency_id: str
    api_key: str


@pytest.fixture
def dashboard(fuzz_engine: LiveEngine) -> Dashboard:
    agency_id = f"fuzz-{next(_agency_numbers)}"
    response = httpx.post(
        f"{fuzz_engine.base_url}/v1/internal/dashboard/register",
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


def _headers(credential: str, operation: Operation, dashboard: Dashboard) -> dict[str, str]:
    if credential == "psk":
        return {"Authorization": f"PSK {PSK}"}
    if credential == "dashboard-key":
        return {"X-API-Key": dashboard.api_key}
    if credential == "master-key":
        if "MasterBearer" in operation.schemes:
            return {"Authorization": f"Bearer {MASTER_KEY}"}
        return {"X-API-Key": MASTER_KEY}
    return {}


# -- strategies -----------------------------------------------------------------------------


def _aimed_at(operation: Operation, agency_id: str, case: Case) -> Case:
    """`case`, naming the registered agency wherever the operation takes an `agencyId`."""
    if "path" in operation.agency_id_in:
        case.path_parameters = {**(case.path_parameters or {}), "agencyId": agency_id}
    if "query" in operation.agency_id_in:
        case.query = {**(case.query or {}), "agencyId": agency_id}
    if "body" in operation.agency_id_in and isinstance(case.body, dict):
        case.body = {**case.body, "agencyId": agency_id}
    return case


def _strategy(schema: OpenApiSchema, operation: Operation, dashboard: Dashboard) -> st.SearchStrategy[Case]:
    api_operation = schema[operation.path][operation.method]
    generated = st.one_of(
        api_operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        api_operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    if not operation.agency_id_in:
        return generated
    return st.one_of(generated, generated.map(lambda case: _aimed_at(operation, dashboard.agency_id, case)))


# -- the tests ------------------------------------------------------------------------------


def test_every_served_operation_is_fuzzed(schema: OpenApiSchema) -> None:
    served = {result.ok().label for result in schema.get_all_operations()}
    assert served == {operation.label for operation in OPERATIONS}


def _is_unimplemented(response: Any) -> bool:
    """A 501 carrying gRPC UNIMPLEMENTED: a service the engine does not serve yet."""
    if response.status_code != 501:
        return False
    try:
        return bool(response.json().get("code") == UNIMPLEMENTED)
    except ValueError:
        return False


@pytest.mark.parametrize(("operation", "credential"), CASES)
def test_fuzz(
    schema: OpenApiSchema,
    fuzz_engine: LiveEngine,
    dashboard: Dashboard,
    operation: Operation,
    credential: str,
) -> None:
    @settings(
        max_examples=FUZZ_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(schema, operation, dashboard))
    def fuzz(case: Case) -> None:
        headers = _headers(credential, operation, dashboard)
        response = case.call(base_url=fuzz_engine.base_url, headers=headers, timeout=10)
        checks = CHECKS
        if _is_unimplemented(response):
            checks = [check for check in CHECKS if check is not not_a_server_error]
        case.validate_response(response, checks=checks, headers=headers)
        STATS.setdefault((operation.operation_id, credential), collections.Counter())[response.status_code] += 1
        SAMPLES.setdefault((operation.operation_id, credential, response.status_code), (case.method, case.formatted_path, case.query, case.headers, str(case.body)[:150], response.text[:200]))
        if (
            operation.operation_id == "RegistryService_RotateApiKey"
            and response.status_code == 200
            and credential == "dashboard-key"
        ):
            dashboard.api_key = response.json()["apiKey"]

    fuzz()


def test_zz_dump():
    for k, v in sorted(STATS.items()):
        print(k, dict(v))
    for k, v in sorted(SAMPLES.items()):
        print(k, v)
