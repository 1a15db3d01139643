"""Small file-system helpers: atomic writes, so a crash never leaves half a file behind."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import SignlabError


class StorageError(SignlabError):
    """The disk is full or a folder cannot be written (names the path)."""


def storage_error(err: OSError, path: Path) -> StorageError:
    """The clear StorageError for an OSError met while writing ``path`` (full disk, no permission...)."""
    if err.errno == errno.ENOSPC:
        return StorageError(f"{path}: the disk is full; free some space or choose another runs folder")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"{path}: cannot write here (permission denied or read-only); "
                            "choose a writable runs folder")
    return StorageError(f"{path}: cannot write ({err.strerror or err})")


def atomic_write(path: Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` then rename the temporary file onto ``path`` in one step.

    The temporary file sits in the same folder so the rename is atomic on POSIX: readers see the
    old file or the new one, never a torn one.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise storage_error(err, path) from err
    try:
        writer(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise storage_error(err, path) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it is missing or unreadable (never half-parsed)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def read_inside(folder: Path, name: str, max_bytes: int = 1 << 30) -> bytes:
    """The bytes of ``folder/name``, refusing a symbolic link (the file itself, never its target)
    and anything larger than ``max_bytes``: files in a run folder are not trusted to stay in it."""
    from .errors import RunError

    path = Path(folder) / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        raise RunError(f"{path.name}: cannot be read ({'it is a link' if err.errno == errno.ELOOP else err.strerror})") \
            from err
    with os.fdopen(fd, "rb") as f:
        if not os.path.samefile(os.path.dirname(os.path.realpath(path)), os.path.realpath(folder)):
            raise RunError(f"{path.name}: not inside its run folder")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RunError(f"{path.name}: larger than {max_bytes} bytes")
    return data
