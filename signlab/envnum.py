"""The server's numbers that come from its environment (the operator's settings), declared once:
how many runs train at a time, how long a claim lives without a heartbeat, how long an idle worker
waits for the next run, whether the dashboard starts workers on its own machine, and the size limits
on data from outside.

Where they are read while something runs (a heartbeat thread, a job manager's tick), a bad value
falls back to the default or to the nearest bound: a thread must not die of it. Every command checks
them first (:func:`check`), so a typo is one clear line and exit 2, not a silent default
(``SIGNLAB_JOB_LIMIT=abc`` meant 1) or a traceback in a thread (``SIGNLAB_LEASE_SECONDS=inf``).
"""
from __future__ import annotations

import math
import os

from .errors import ConfigError

# name: (lowest, highest, whole numbers only, what it counts)
SERVER_NUMBERS: dict[str, tuple[float, float, bool, str]] = {
    "SIGNLAB_JOB_LIMIT": (1, 1024, True, "runs training at a time"),
    "SIGNLAB_LEASE_SECONDS": (1, 86_400, False, "seconds"),
    "SIGNLAB_WORKER_LINGER": (0, 86_400, False, "seconds"),
    # 0: this dashboard server only queues; workers on other machines train (a cluster)
    "SIGNLAB_LOCAL_WORKERS": (0, 1, True, "1: the dashboard starts workers here, 0: it only queues"),
    # checked where data is read too (signlab.data): were they read only there, a typo surfaced at the
    # first download, an hour into a class
    "SIGNLAB_MAX_DOWNLOAD_MB": (1, 1_000_000, True, "MB"),
    "SIGNLAB_MAX_CSV_MB": (1, 1_000_000, True, "MB"),
}


def parse(name: str) -> float | None:
    """The variable's number, None when it is unset, empty or not a finite number (out of range
    values are returned as they are: the caller clamps them or :func:`check` refuses them)."""
    raw = os.environ.get(name, "").strip()
    if not raw or len(raw) > 32 or not raw.isascii():  # float("٣") is 3.0
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or (SERVER_NUMBERS[name][2] and not value.is_integer()):
        return None
    return value


def within(name: str) -> float | None:
    """The variable's number when it is set and within its range, else None."""
    low, high = SERVER_NUMBERS[name][:2]
    value = parse(name)
    return value if value is not None and low <= value <= high else None


def clamped(name: str, default: float) -> float:
    """The variable's number held within its range, or ``default`` when unset or unreadable."""
    low, high = SERVER_NUMBERS[name][:2]
    value = parse(name)
    return default if value is None else min(max(value, low), high)


def check_one(name: str) -> None:
    """ConfigError naming ``name`` when it is set to something outside its range."""
    raw = os.environ.get(name, "").strip()
    if raw and within(name) is None:
        low, high, whole, unit = SERVER_NUMBERS[name]
        if whole and (low, high) == (0, 1):  # a switch: "a whole number of (1: …) from 0 to 1" read oddly
            raise ConfigError(f"{name}: {raw[:24]!r} is not 0 or 1 ({unit})")
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"{name}: {raw[:24]!r} is not {kind} of {unit} from {low:.10g} to {high:.10g}")


def check() -> None:
    """ConfigError naming the first variable that is set to something outside its range."""
    for name in SERVER_NUMBERS:
        check_one(name)
