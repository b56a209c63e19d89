"""Access policies, read from the `workflow_engine.v1.access` method option of each RPC."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from workflow_engine.v1 import options_pb2

# Infrastructure services that are not ours to annotate; they answer anyone.
OPEN_INFRASTRUCTURE_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


@dataclass(frozen=True)
class AccessRule:
    """Who may call one RPC, and which request field names the agency it acts on."""

    credentials: frozenset[int]
    agency_field: str = ""

    def allows(self, credential: int) -> bool:
        """True when `credential` (an options_pb2.Credential value) may call the RPC."""
        return credential in self.credentials


OPEN_RULE = AccessRule(frozenset({options_pb2.CREDENTIAL_NONE}))


def method_path(service: ServiceDescriptor, method_name: str) -> str:
    """The gRPC path of a method: `/package.Service/Method`."""
    return f"/{service.full_name}/{method_name}"


def rule_of(service: ServiceDescriptor, method_name: str) -> AccessRule | None:
    """The declared rule of one RPC, or None when it declares none (or an empty one)."""
    options = service.methods_by_name[method_name].GetOptions()
    extension: Any = options_pb2.access
    if not options.HasExtension(extension):
        return None
    declared: options_pb2.AccessPolicy = options.Extensions[extension]
    credentials = frozenset(c for c in declared.credentials if c != options_pb2.CREDENTIAL_UNSPECIFIED)
    if not credentials:
        return None
    return AccessRule(credentials, declared.agency_field)


def build_policy_table(services: Iterable[ServiceDescriptor]) -> Mapping[str, AccessRule | None]:
    """Map every method path of `services` to its rule (None where none is declared)."""
    table: dict[str, AccessRule | None] = {}
    for service in services:
        for method in service.methods:
            table[method_path(service, method.name)] = rule_of(service, method.name)
    for name in OPEN_INFRASTRUCTURE_SERVICES:
        table[f"/{name}/"] = OPEN_RULE
    return table


def lookup(table: Mapping[str, AccessRule | None], path: str) -> AccessRule | None:
    """The rule for `path`; infrastructure services match by service prefix. None: refuse."""
    if path in table:
        return table[path]
    service_prefix = path[: path.rfind("/") + 1]
    return table.get(service_prefix)
