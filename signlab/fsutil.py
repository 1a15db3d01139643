"""Small file-system helpers: atomic writes, so a crash never leaves half a file behind, and reads
and appends inside a run folder that never follow a planted symlink."""
from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from .errors import SignlabError


class StorageError(SignlabError):
    """The disk is full or a folder cannot be written (names the path)."""


def storage_error(err: OSError, path: Path, elsewhere: str = "another runs folder") -> StorageError:
    """The clear StorageError for an OSError met while writing ``path`` (full disk, no permission...).
    ``elsewhere``: where else to write, for the advice ("--out" for an export's own path)."""
    if err.errno == errno.ENOSPC:
        return StorageError(f"{path}: the disk is full; free some space or choose {elsewhere}")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"{path}: cannot write here (permission denied or read-only); choose {elsewhere}")
    return StorageError(f"{path}: cannot write ({err.strerror or err})")


def _read_umask() -> int:
    """The process's umask: from /proc where Linux gives it (reading it with os.umask means setting it,
    for a moment, under every other thread), else that way, once, at import."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: Path, writer: Callable[[Path], None], parents: bool = True,
                 elsewhere: str = "another runs folder") -> None:
    """Call ``writer(tmp_path)`` then rename the temporary file onto ``path`` in one step.

    The temporary file sits in the same folder so the rename is atomic on POSIX: readers see the
    old file or the new one, never a torn one. The folder is made if missing; with ``parents=False``
    only the folder itself, never the ones above it (a cache inside a run folder that was deleted
    meanwhile must not make the run folder again: FileNotFoundError's storage error instead).
    ``elsewhere``: where a refusal's advice says to write instead (:func:`storage_error`).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=parents, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        # the mode an open() would give (0644 under the usual umask), not mkstemp's 0600: a dashboard
        # and workers running as different users on one shared runs folder (a cluster) could not
        # read each other's config.json and weights, while metrics.jsonl, appended, was readable
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)
        except OSError:  # a file system without modes (some FUSE or CIFS mounts): mkstemp's stays
            pass
        os.close(fd)
    except OSError as err:
        raise storage_error(err, path, elsewhere) from err
    try:
        writer(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise storage_error(err, path, elsewhere) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_safetensors(path: Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (torch) to ``path`` as safetensors, atomically. Serialised in memory and written
    by Python: safetensors' own file writer raised its SafetensorError on a full disk, which is no
    OSError, so the disk-full message became a traceback."""
    from safetensors.torch import save  # here: most users of this module never touch torch

    atomic_write_bytes(path, save(tensors, metadata=metadata))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_npz(path: Path, arrays: dict[str, Any], compressed: bool = True, parents: bool = True) -> None:
    """Write ``arrays`` to one .npz file at ``path`` atomically (:func:`atomic_write`'s ``parents``)."""
    import numpy as np  # here: the rest of this module is read by code that never needs numpy

    save = np.savez_compressed if compressed else np.savez

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: numpy would add ".npz" to a bare path
            save(f, **arrays)

    atomic_write(path, write, parents=parents)


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it is missing or unreadable (never half-parsed)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


# --------------------------------------------------------------------------- files that may be planted
# A run folder is written by signlab, but on a class server anyone who can write the runs folder
# (a worker, a copied-in run) can leave a symlink there: ``model.safetensors -> /etc/passwd`` would
# be served as a download, and ``metrics.jsonl -> ~/.bashrc`` appended to by a worker. So every file
# inside a run folder is opened component by component with O_NOFOLLOW, relative to the folder's
# own descriptor: no name can lead outside the folder, and no check can be raced by a rename.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a planted FIFO must not hang the server on open()
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UnsafeFileError(SignlabError):
    """A file inside a run folder is a symlink, not a regular file, outside the folder or too large."""


def _parts(name: str | Path) -> list[str]:
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise UnsafeFileError(f"{name}: not a plain name inside the folder")
    return list(parts)


def _raise_refusal(folder: Path | str, name: str | Path, err: OSError) -> None:
    # ELOOP: the last component is a symlink; ENOTDIR: a component on the way is a symlink or a file
    # (EMLINK is what FreeBSD says for O_NOFOLLOW on a link); anything else (ENOENT…) is raised as is
    if err.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR):
        raise UnsafeFileError(f"{Path(folder) / name}: refused: a symbolic link (signlab never follows "
                              "links inside a run folder)") from err
    raise err


def open_inside(folder: Path | str, name: str | Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """An fd for ``folder/name`` opened without following any symlink below ``folder``.

    ``name`` may have several components (``kernels/epoch_0001.safetensors``); each folder on the
    way is opened with O_NOFOLLOW relative to the one before. The result is always a regular file.
    Raises UnsafeFileError for a link or a non-regular file, and the OSError (FileNotFoundError…)
    of a missing one.
    """
    parts = _parts(name)
    dir_fd = os.open(folder, os.O_RDONLY | _DIRECTORY | _CLOEXEC)  # the folder itself is trusted
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
            except OSError as err:
                _raise_refusal(folder, name, err)
            os.close(dir_fd)
            dir_fd = nxt
        try:
            fd = os.open(parts[-1], flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC, mode, dir_fd=dir_fd)
        except OSError as err:
            _raise_refusal(folder, name, err)
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeFileError(f"{Path(folder) / name}: refused: not a regular file")
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return fd


def read_bytes_inside(folder: Path | str, name: str | Path, max_bytes: int, offset: int = 0) -> bytes:
    """The bytes of ``folder/name`` from ``offset`` on, read as :func:`open_inside` opens it.

    More than ``max_bytes`` is refused (UnsafeFileError) before anything is read: a planted file
    cannot make the server hold gigabytes in memory.
    """
    fd = open_inside(folder, name)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size - offset > max_bytes:
            raise UnsafeFileError(f"{Path(folder) / name}: refused: {size - offset:,} bytes, over the limit "
                                  f"of {max_bytes:,}")
        f.seek(offset)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while we read it
        raise UnsafeFileError(f"{Path(folder) / name}: refused: over the limit of {max_bytes:,} bytes")
    return data


def read_tail_inside(folder: Path | str, name: str | Path, max_bytes: int) -> bytes:
    """The last ``max_bytes`` of ``folder/name``, opened as :func:`open_inside` does (for logs)."""
    with os.fdopen(open_inside(folder, name), "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - max_bytes))
        return f.read(max_bytes)


def read_json_inside(folder: Path | str, name: str | Path, default: Any = None,
                     max_bytes: int = 16 * 2**20) -> Any:
    """Read a JSON file as :func:`read_bytes_inside` does; ``default`` when it is missing,
    unreadable, unsafe or not JSON (never half-parsed, never through a link)."""
    try:
        return json.loads(read_bytes_inside(folder, name, max_bytes))
    except (OSError, ValueError, RecursionError, UnsafeFileError):  # "[" * 200000 is no JSON a run wrote
        return default


def nofollow_opener(path: str | Path, flags: int) -> int:
    """An ``opener`` for :func:`open`: ``open(p, "a", opener=nofollow_opener)`` opens ``p`` as
    :func:`open_inside` does (the last component never followed, always a regular file)."""
    path = Path(path)
    return open_inside(path.parent, path.name, flags, 0o644)


def open_append_nofollow(path: Path | str, text: bool = False) -> IO[Any]:
    """``path`` opened to append (created if missing), never through a symlink, always a regular file.

    For logs a worker or the server appends to (``metrics.jsonl``, ``workers.log``): a link planted
    in their place must not turn the append into a write to another file.
    """
    return open(path, "a" if text else "ab", opener=nofollow_opener)


def list_dir_inside(folder: Path | str, name: str) -> list[str]:
    """Names in the subfolder ``folder/name``, which must be a real folder, not a link; [] if missing."""
    try:
        parent = os.open(folder, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except OSError:
        return []
    try:
        fd = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=parent)
    except OSError:
        return []
    finally:
        os.close(parent)
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)
