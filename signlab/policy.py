"""The class settings (quotas, instructors, whether students see classmates' runs) and their check
in the environment: what :mod:`signlab.access` enforces, in a module of their own that imports no
torch. Every command checks the environment first (``check_environment``), and a command refused
for a setting then answers without loading torch (about 2 s).
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, fields, replace
from typing import Any, Callable

from .errors import SignlabError
from .numbers import whole_number


@dataclass(frozen=True)
class Policy:
    """The class settings. Defaults suit one CPU server and a class of about 30."""

    show_classmates: bool = False  # students see classmates' runs read-only
    max_active_per_user: int = 3  # queued plus training runs of one user (sweep trials included)
    max_runs_per_user: int = 200
    max_disk_per_user_mb: int = 1000
    max_disk_total_mb: int = 50_000
    max_run_memory_mb: int = 4000  # the largest run one user may start (estimated training memory)
    # a paused run keeps its worker process (the model and the data in memory) but gives up its slot:
    # after this long paused it stops, keeping its last finished epoch (Continue trains on); 0: never
    max_pause_minutes: int = 60
    instructors: tuple[str, ...] = ()

    # each quota as the instructors' form names it, in its order (the Runs page wrote them again)
    LIMIT_LABELS = {"max_active_per_user": "Runs queued or training at once, per student",
                    "max_runs_per_user": "Runs kept, per student",
                    "max_disk_per_user_mb": "Disk per student (MB)",
                    "max_disk_total_mb": "Disk for the whole runs folder (MB)",
                    "max_run_memory_mb": "Largest run one student may start (MB of training memory)",
                    "max_pause_minutes": "Minutes a paused run may wait before it stops, keeping its last "
                                         "finished epoch (0: no limit)"}
    LIMITS = tuple(LIMIT_LABELS)
    CLASSMATES_LABEL = "Students see classmates' runs (read-only)"  # show_classmates, as the form names it
    LIMIT_MAX = 10**9  # a quota is a whole number from 0 to this

    def role_of(self, user_id: str) -> str:
        return "instructor" if user_id.lower() in {i.lower() for i in self.instructors} else "student"

    def with_changes(self, changes: dict[str, Any], named: Callable[[str], str] = str) -> "Policy":
        """A copy with ``changes`` (from the environment or the settings table), each checked; a
        refusal names the setting as ``named`` gives it (the environment's variable, say)."""
        known = {f.name: f for f in fields(self)}
        out: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                continue
            if key == "instructors":
                items = value.split(",") if isinstance(value, str) else value
                if not isinstance(items, (list, tuple)):
                    raise SignlabError(f"{named(key)}: give a list of user ids (e-mail addresses)")
                out[key] = tuple(str(i).strip() for i in items if str(i).strip())
            elif key == "show_classmates":
                out[key] = value if isinstance(value, bool) else _yes_no(named(key), value)
            else:
                out[key] = _limit(named(key), value)
        return replace(self, **out)


def _yes_no(name: str, value: Any) -> bool:
    """A switch from outside: true/yes/1/on or false/no/0/off (any case). "maybe" silently meant no."""
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SignlabError(f"{name}: {str(value)[:20]!r} is not a yes or a no; give true or false")


def _limit(name: str, value: Any) -> int:
    """A quota from outside: a whole number from 0 to Policy.LIMIT_MAX, checked before conversion
    (``name``: the setting as the message names it)."""
    text = str(value).strip()
    number = None if isinstance(value, bool) else whole_number(text, 10)
    if number is None or number > Policy.LIMIT_MAX:
        raise SignlabError(f"{name}: {text[:20]!r} is not a whole number from 0 to {Policy.LIMIT_MAX}")
    return number


def _env_name(key: str) -> str:
    """The environment variable of a class setting: max_pause_minutes -> SIGNLAB_MAX_PAUSE_MINUTES."""
    return f"SIGNLAB_{key.upper()}"


def _env_settings() -> dict[str, Any]:
    env = {k: os.environ.get(_env_name(k)) for k in ("instructors", "show_classmates", *Policy.LIMITS)}
    return {k: v for k, v in env.items() if v is not None}


def check_names(settings: dict[str, Any], named: Callable[[str], str] = str) -> None:
    """SignlabError naming the first key of ``settings`` (the secrets' ``[signlab]`` table) that is no
    class setting, with the one it may have meant: ``instructor = [...]`` was ignored without a word,
    and the teacher it named signed in as a student."""
    known = [f.name for f in fields(Policy)]
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]}?" if close else "the class settings are " + ", ".join(known)
            raise SignlabError(f"{named(key)}: signlab has no such setting; {hint}")


def check_environment() -> None:
    """SignlabError naming the variable when a class setting in the environment (``SIGNLAB_MAX_…``,
    ``SIGNLAB_INSTRUCTORS``, ``SIGNLAB_SHOW_CLASSMATES``) is not valid. Every command and the
    dashboard check it before anything else: ``SIGNLAB_MAX_ACTIVE_PER_USER=-3`` put a traceback on
    every page, and ``runs`` and ``train --queue`` went on with it."""
    Policy().with_changes(_env_settings(), named=_env_name)
