"""Polling for a condition with a deadline, shared by the job, reliability and browser tests."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(cond: Callable[[], Any], timeout: float = 120.0, what: str = "condition", interval: float = 0.2) -> Any:
    """Return ``cond()``'s first truthy value; AssertionError naming ``what`` after ``timeout`` seconds."""
    end = time.time() + timeout
    while time.time() < end:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
