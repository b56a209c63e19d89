"""Waiting for something the engine does in the background: one poll-until helper for every test."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

#: How long a test waits for background work before it fails (generous: CI machines are busy).
WAIT_SECONDS = 8.0


def eventually(
    probe: Callable[[], Any],
    done: Callable[[Any], bool],
    what: str,
    timeout: float = WAIT_SECONDS,
    interval: float = 0.02,
) -> Any:
    """Call `probe` every `interval` seconds until `done(result)` and return that result; fail
    after `timeout` seconds naming `what` and the last result seen."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}; last seen: {result}")
        time.sleep(interval)
