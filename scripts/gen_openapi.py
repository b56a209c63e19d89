"""Write the OpenAPI 3.1 document of the engine's REST gateway (docs/openapi.json by default).

The document is derived from the service descriptors (engine.gateway.openapi); the proto
comments become its descriptions, read from proto/ compiled with source info by grpcio-tools.
Usage: python scripts/gen_openapi.py [OUT]
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
from typing import Any

import google.api  # googleapis-common-protos ships its .proto files beside the modules
import grpc_tools  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

import engine
from engine.gateway.openapi import build_openapi, comments_from_files
from engine.gateway.routes import routes_of
from engine.rpc.server import SERVICES

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
DEFAULT_OUT = ROOT / "docs" / "openapi.json"

TITLE = "Workflow Engine API"
DESCRIPTION = (
    "The REST gateway of the Workflow Engine. Every route transcodes to a gRPC method of the "
    "same contract (`proto/workflow_engine/v1`), with the protobuf JSON mapping: lowerCamelCase "
    "field names, 64-bit integers as strings, enums by value name, timestamps in RFC 3339.\n\n"
    "Errors are JSON bodies `{code, message, details}` where `code` is the gRPC status code and "
    "`details` carries `google.rpc` details such as `BadRequest`, `RetryInfo` and `ErrorInfo`."
)


def proto_comments() -> dict[str, str]:
    """The comments of proto/, by full name, from a descriptor set compiled with source info."""
    googleapis_root = pathlib.Path(google.api.__path__[0]).parent.parent
    wkt_root = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as scratch:
        out = pathlib.Path(scratch) / "descriptors.binpb"
        code = protoc.main(
            [
                "protoc",
                f"-I{PROTO_ROOT}",
                f"-I{googleapis_root}",
                f"-I{wkt_root}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                *sources,
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed with exit code {code}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return comments_from_files(files.file)


def generate() -> dict[str, Any]:
    """The OpenAPI document of the engine's services."""
    return build_openapi(
        routes_of(SERVICES),
        title=TITLE,
        version=engine.__version__,
        description=DESCRIPTION,
        comments=proto_comments(),
    )


def render(document: dict[str, Any]) -> str:
    """Pretty, stable JSON: indent 2, sorted keys, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(out: pathlib.Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(generate()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
