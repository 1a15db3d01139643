"""The one process launcher: start ``python -m signlab …`` in the background, in its own session.

The dashboard's job workers and its sweep workers both start here. A child in its own process
session (``start_new_session``) outlives the server that started it and never receives the
server's signals; its output goes to a log file (:func:`spawn`), or through pipes to a parent that
passes it on (:func:`spawn_piped`, a multi-slot worker's children).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from .fsutil import open_append_nofollow, storage_error
from .paths import PROJECT_ROOT

_CHILDREN: list[subprocess.Popen] = []  # started by this process, reaped as they end
_LOCK = threading.Lock()


def cpu_share(processes: int) -> dict[str, str]:
    """Thread settings for one of ``processes`` training processes sharing this machine's cores:
    oversubscribed torch threads spin and slow every process down many times over."""
    if processes <= 1:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}


def worker_args(runs_dir: Path, limit: int, *, db: str | None = None, device: str | None = None,
                exit_when_idle: bool = True, linger: float = 0.0) -> list[str]:
    """The ``python -m signlab`` arguments of one single-slot worker for ``runs_dir`` (the job
    manager's and a multi-slot worker's children are started alike)."""
    args = ["worker", "--runs-dir", str(Path(runs_dir).resolve()), "--slots", "1", "--limit", str(limit)]
    if db:
        args += ["--db", db]
    if device:
        args += ["--device", device]
    if exit_when_idle:
        args += ["--exit-when-idle"]
    if linger:
        args += ["--linger", f"{linger:g}"]
    return args


def spawn(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m signlab ARGS`` detached, appending its output to ``log``.

    ``log`` is opened without following a symlink (UnsafeFileError if one is planted there)."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        # never through a link: a workers.log planted as a symlink must not make the server's
        # children append to a file of the server's user (UnsafeFileError, one line)
        out = open_append_nofollow(log)
    except OSError as err:
        raise storage_error(err, log) from err
    with out:
        return _start(args, env, stdout=out, stderr=subprocess.STDOUT)


def spawn_piped(args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m signlab ARGS`` with its standard output and error as text pipes, for a parent
    that passes on what the child prints (a multi-slot worker's children)."""
    return _start(args, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _start(args: Sequence[str], env: dict[str, str] | None, **streams: Any) -> subprocess.Popen:
    """``python -m signlab ARGS`` in a session of its own, remembered as this process's child."""
    proc = subprocess.Popen([sys.executable, "-m", "signlab", *args], cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True, **streams)
    with _LOCK:
        _CHILDREN.append(proc)
    return proc


def live_children(command: str | None = None) -> list[subprocess.Popen]:
    """The processes this one started that are still running (finished ones are reaped); with
    ``command``, only those running ``python -m signlab COMMAND`` ("worker", "sweep")."""
    with _LOCK:
        _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]
        return [p for p in _CHILDREN if command is None or p.args[3:4] == [command]]
