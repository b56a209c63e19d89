"""Entry point of `python -m bench`: runs every benchmark in turn and exits 1 if any call failed."""

from __future__ import annotations

import sys

from bench import grpc_overhead, rest_overhead


def main() -> int:
    """grpc_overhead, then rest_overhead; the worst exit status of the two."""
    statuses: list[int] = []
    for number, benchmark in enumerate((grpc_overhead, rest_overhead)):
        if number:
            print()
            print("-" * 100)
            print()
        sys.stdout.flush()
        statuses.append(benchmark.main())
        sys.stdout.flush()
    return max(statuses)


if __name__ == "__main__":
    sys.exit(main())
