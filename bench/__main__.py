"""Entry point of `python -m bench`: runs every benchmark and exits with its status."""

from __future__ import annotations

import sys

from bench.grpc_overhead import main

if __name__ == "__main__":
    sys.exit(main())
