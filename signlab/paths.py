"""Where things live: the bundled dataset, the cache and the default runs folder.

Environment variables override the defaults so that a classroom server (or a test) can put runs
and caches elsewhere without code changes.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
BUNDLED_DATA_DIR: Path = PROJECT_ROOT / "data" / "sign-mnist"


def cache_dir() -> Path:
    """Folder for parsed-dataset and download caches (``SIGNLAB_CACHE`` or ``<project>/.cache``)."""
    # empty counts as unset, as for SIGNLAB_RUNS_DIR: Path("") is the current folder, which got the caches
    return Path(os.environ.get("SIGNLAB_CACHE") or PROJECT_ROOT / ".cache").expanduser()


def default_runs_dir() -> Path:
    """Folder holding run directories (``SIGNLAB_RUNS_DIR`` or ``<project>/runs``)."""
    return Path(_runs_dir_variable() or PROJECT_ROOT / "runs").expanduser()


def runs_root(runs_dir: str | Path | None = None) -> Path:
    """The runs folder a caller names, else :func:`default_runs_dir`."""
    return Path(runs_dir) if runs_dir else default_runs_dir()


def _runs_dir_variable() -> str | None:
    """``SIGNLAB_RUNS_DIR`` as set, or None where it is unset, empty or blank: "" made the current folder
    the runs folder (and a signlab.db in it), and "   " a folder named three spaces there."""
    value = os.environ.get("SIGNLAB_RUNS_DIR")
    return value if value and value.strip() else None


def runs_dir_problem(given: str | Path | None = None, must_exist: bool = False) -> str | None:
    """What is wrong with the runs folder (``given``, as ``--runs-dir``; else ``SIGNLAB_RUNS_DIR``), named
    as the user set it, or None: a file there read "<file>/signlab.db: cannot write (File exists)", the
    database's path inside it, in every command and on every page. One that does not exist yet is
    made by what writes to it; ``must_exist`` (a command that only reads, ``runs``) refuses it: a typo
    must not read as "no runs"."""
    name, value = ("--runs-dir", given) if given is not None else ("SIGNLAB_RUNS_DIR", _runs_dir_variable())
    if value is None:
        return None
    path = Path(value).expanduser()
    try:
        if path.exists() and not path.is_dir():
            return f"{name}: {value} is not a folder"
        if must_exist and not path.exists():
            return f"{name}: {value} does not exist"
    except OSError as err:  # a name over 255 bytes: every page and command would stop on it
        return f"{name}: {value}: {err.strerror}"
    return None
