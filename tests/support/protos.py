"""Building synthetic protos for generic-gateway tests: private pools and HttpRules."""

from __future__ import annotations

from typing import Any

from google.api import http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor


def _add_file(pool: descriptor_pool.DescriptorPool, file: FileDescriptor, added: set[str]) -> None:
    """Copy a file of the default pool, dependencies first, into `pool` (once)."""
    if file.name in added:
        return
    for dependency in file.dependencies:
        _add_file(pool, dependency, added)
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb))
    added.add(file.name)


def private_pool(*modules: Any) -> descriptor_pool.DescriptorPool:
    """A new descriptor pool holding the files of the given generated modules and their dependencies."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    for module in modules:
        _add_file(pool, module.DESCRIPTOR, added)
    return pool


def http_rule(**fields: Any) -> http_pb2.HttpRule:
    """An HttpRule; `custom=(kind, path)` and `additional=[rule, ...]` besides its own fields."""
    custom = fields.pop("custom", None)
    additional = fields.pop("additional", ())
    rule = http_pb2.HttpRule(**fields)
    if custom is not None:
        rule.custom.kind, rule.custom.path = custom
    rule.additional_bindings.extend(additional)
    return rule
