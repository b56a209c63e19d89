"""Generate Python code for proto/ into gen/ with grpcio-tools.

Third-party protos (google/api, google/rpc) come from the installed
googleapis-common-protos package; well-known types from grpcio-tools itself.
Usage: python scripts/gen_proto.py [OUTPUT_DIR]
"""

from __future__ import annotations

import pathlib
import shutil
import sys

import google.api  # googleapis-common-protos ships its .proto files beside the modules
import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = pathlib.Path("workflow_engine") / "v1"


def main(out_dir: pathlib.Path) -> int:
    """Regenerate `out_dir/workflow_engine/v1` from `proto/workflow_engine/v1`."""
    googleapis_root = pathlib.Path(google.api.__path__[0]).parent.parent
    wkt_root = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    target = out_dir / PACKAGE
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{googleapis_root}",
        f"-I{wkt_root}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *sources,
    ]
    code = protoc.main(args)
    if code != 0:
        return int(code)
    (out_dir / "workflow_engine" / "__init__.py").write_text(
        '"""Generated code for the workflow_engine protos."""\n'
    )
    (target / "__init__.py").write_text(
        '"""Generated code for workflow_engine.v1 (do not edit; run `make gen`)."""\n'
    )
    (out_dir / "workflow_engine" / "py.typed").write_text("")
    return 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "gen"))
