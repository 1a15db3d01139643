"""Sign Language MNIST: find, download, verify, parse, validate and cache the two CSV files.

``load_dataset()`` with no argument reads the copy bundled in ``data/sign-mnist/`` (checked
against ``SHA256SUMS``), so nothing needs the network. A user may point ``source`` at a folder,
at ``"TRAIN,TEST"`` (two paths or URLs, plain or gzipped) or at a folder URL. Parsing the 83 MB
train CSV takes seconds, so the parsed arrays are cached as ``.npz`` keyed by the file's SHA-256:
a warm load is a hash plus a memory read. Only a fully validated file is ever cached.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import re
import sys
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import labels
from .errors import DataError
from .fsutil import atomic_write, atomic_write_bytes
from .paths import BUNDLED_DATA_DIR, cache_dir

TRAIN_NAME = "sign_mnist_train.csv"
TEST_NAME = "sign_mnist_test.csv"
CACHE_VERSION = 1  # bump when the cached array layout changes


@dataclass(frozen=True)
class Split:
    """One split: uint8 images (N, 28, 28) and class indices 0..23 (N,)."""

    images: np.ndarray  # (N, 28, 28) uint8
    targets: np.ndarray  # (N,) int64, class index
    source: str  # the file it came from, for messages

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclass(frozen=True)
class Dataset:
    """The train and test splits."""

    train: Split
    test: Split


# --------------------------------------------------------------------------- locating files
def _is_url(s: str) -> bool:
    return urllib.parse.urlparse(str(s)).scheme in ("http", "https")


def _find_in_folder(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder}: no {name} or {name}.gz in this folder")


def resolve_source(source: str | Path | None) -> tuple[str, str]:
    """Turn a user's ``source`` into (train, test) locations: local paths or URLs."""
    if source is None or str(source).strip() == "":
        return str(BUNDLED_DATA_DIR / (TRAIN_NAME + ".gz")), str(BUNDLED_DATA_DIR / (TEST_NAME + ".gz"))
    s = str(source).strip()
    if "," in s:
        parts = [p.strip() for p in s.split(",")]
        if len(parts) != 2 or not all(parts):
            raise DataError(f"{s}: give two locations as TRAIN,TEST")
        return parts[0], parts[1]
    if _is_url(s):
        base = s if s.endswith("/") else s + "/"
        return urllib.parse.urljoin(base, TRAIN_NAME), urllib.parse.urljoin(base, TEST_NAME)
    folder = Path(s).expanduser()
    if folder.is_dir():
        return str(_find_in_folder(folder, TRAIN_NAME)), str(_find_in_folder(folder, TEST_NAME))
    raise DataError(f"{s}: not a folder, URL or TRAIN,TEST pair")


def _expected_sha256(path: Path) -> str | None:
    """The checksum listed in a SHA256SUMS beside ``path``, if any."""
    sums = path.parent / "SHA256SUMS"
    if not sums.is_file():
        return None
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and parts[1].lstrip("*") == path.name:
            return parts[0].lower()
    return None


# --------------------------------------------------------------------------- downloads
def download(url: str, progress: Callable[[int, int], None] | None = None) -> Path:
    """Fetch ``url`` into the cache once; later calls reuse the file.

    The download goes to a temporary file, its length is checked against Content-Length, and only
    then is it renamed into place, so an interrupted download is never mistaken for a good one.
    """
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    target = cache_dir() / "downloads" / f"{key}-{name}"
    if target.is_file():
        return target
    progress = progress or _stderr_progress(url)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            chunks, done = [], 0
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                done += len(chunk)
                progress(done, total)
    except OSError as err:  # URLError and HTTPError are OSErrors
        raise DataError(f"{url}: download failed ({err})") from err
    if total and done != total:
        raise DataError(f"{url}: download incomplete ({done} of {total} bytes)")
    atomic_write_bytes(target, b"".join(chunks))
    return target


def _stderr_progress(url: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        pct = f"{100 * done / total:5.1f}%" if total else ""
        end = "\n" if total and done >= total else ""
        print(f"\rdownloading {Path(url).name}: {done / 1e6:6.1f} MB {pct}", end=end, file=sys.stderr)

    return show


# --------------------------------------------------------------------------- parsing
def _read_text(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from err
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise DataError(f"{path}: the gzip data is truncated or corrupt ({err})") from err
    return raw


def parse_csv(text: bytes, name: str) -> Split:
    """Parse and validate one CSV (``label,pixel1..pixel784``); DataError names row and column.

    Rows are numbered as lines of the file: the header is line 1, the first image line 2.
    """
    import pandas as pd  # heavy import, only needed on a cold load

    if not text.strip():
        raise DataError(f"{name}: the file is empty")
    header_line = text.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lstrip("\ufeff")
    header = [h.strip() for h in header_line.split(",")]
    if "label" not in header:
        raise DataError(f"{name}: line 1: no 'label' column in the header")
    if header[0] != "label":
        raise DataError(f"{name}: line 1: 'label' must be the first column, found {header[0]!r}")
    if len(header) != 1 + labels.NUM_PIXELS:
        raise DataError(f"{name}: line 1: expected 1 label and {labels.NUM_PIXELS} pixel columns, "
                        f"found {len(header) - 1} pixel columns")
    try:
        df = pd.read_csv(io.BytesIO(text), header=0, skip_blank_lines=True, low_memory=False)
    except ValueError as err:  # ParserError, EmptyDataError and UnicodeDecodeError are ValueErrors
        msg = " ".join(str(err).split())  # pandas' messages end in a newline: keep one line
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
        if m:
            raise DataError(f"{name}: line {m[2]}: expected {m[1]} values (a label and "
                            f"{labels.NUM_PIXELS} pixels), found {m[3]}") from err
        raise DataError(f"{name}: cannot parse the CSV ({msg})") from err
    if len(df) == 0:
        raise DataError(f"{name}: the file has a header but no data rows")
    values = df.to_numpy()
    if values.dtype.kind not in "iu":
        _raise_first_bad_cell(df, name)
    arr = values.astype(np.int64, copy=False)  # (N, 785)
    bad = (arr[:, 1:] < 0) | (arr[:, 1:] > 255)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{name}: line {r + 2}, column {c + 2} ({header[c + 1]}): "
                        f"value {arr[r, c + 1]} is outside 0-255")
    raw_labels = arr[:, 0]
    ok = np.isin(raw_labels, sorted(labels.VALID_RAW_LABELS))
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        raise DataError(f"{name}: line {r + 2}, column 1 (label): label {raw_labels[r]} is not one of "
                        "the 24 letters (0-24 without 9)")
    images = arr[:, 1:].astype(np.uint8).reshape(-1, labels.IMAGE_SIZE, labels.IMAGE_SIZE)
    return Split(images=images, targets=labels.raw_labels_to_index(raw_labels), source=name)


def _raise_first_bad_cell(df, name: str) -> None:
    """Find the first missing or non-integer cell and raise a DataError naming it."""
    import pandas as pd

    for c, col in enumerate(df.columns):
        series = df[col]
        if series.dtype.kind in "iu":
            continue
        numeric = pd.to_numeric(series, errors="coerce")
        missing = series.isna().to_numpy()
        nonnum = numeric.isna().to_numpy() & ~missing
        frac = (numeric.notna() & (numeric != numeric.round())).to_numpy()
        rows = np.flatnonzero(missing | nonnum | frac)
        if len(rows):
            r = int(rows[0])
            where = f"{name}: line {r + 2}, column {c + 1} ({col})"
            if missing[r]:
                raise DataError(f"{where}: the value is missing (the row is short or the file truncated)")
            raise DataError(f"{where}: {series.iloc[r]!r} is not a whole number")
    raise DataError(f"{name}: could not read the values as integers")


# --------------------------------------------------------------------------- loading with cache
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _save_npz(path: Path, split: Split) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a bare path
        np.savez(f, images=split.images, targets=split.targets)


def load_split(location: str, progress: Callable[[int, int], None] | None = None) -> Split:
    """Load one CSV (path or URL), from the parsed cache when its content was seen before."""
    path = download(location, progress) if _is_url(location) else Path(location).expanduser()
    if not path.is_file():
        raise DataError(f"{location}: no such file")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from err
    digest = _sha256(raw)
    expected = _expected_sha256(path)
    if expected is not None and expected != digest:
        raise DataError(f"{path}: SHA-256 {digest[:12]}… does not match SHA256SUMS ({expected[:12]}…); "
                        "the file is damaged")
    cached = cache_dir() / "parsed" / f"v{CACHE_VERSION}-{digest}.npz"
    if cached.is_file():
        try:
            with np.load(cached) as z:
                return Split(images=z["images"], targets=z["targets"], source=str(location))
        except (OSError, ValueError, KeyError):
            cached.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    split = parse_csv(_read_text(path), str(location))
    split = Split(split.images, split.targets, str(location))
    try:
        atomic_write(cached, lambda p: _save_npz(p, split))
    except OSError:
        pass  # an unwritable cache only costs speed
    return split


def load_dataset(source: str | Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Dataset:
    """Load train and test; ``source`` as in :func:`resolve_source` (None: the bundled copy)."""
    train_loc, test_loc = resolve_source(source)
    return Dataset(train=load_split(train_loc, progress), test=load_split(test_loc, progress))


def class_counts(split: Split) -> np.ndarray:
    """Images per class, (24,)."""
    return np.bincount(split.targets, minlength=labels.NUM_CLASSES)


def mean_images(split: Split) -> np.ndarray:
    """The mean image of each letter, (24, 28, 28) float in 0..255."""
    out = np.zeros((labels.NUM_CLASSES, labels.IMAGE_SIZE, labels.IMAGE_SIZE))
    for k in range(labels.NUM_CLASSES):
        sel = split.images[split.targets == k]
        if len(sel):
            out[k] = sel.mean(axis=0)
    return out
