"""Sign Language MNIST: find, download, verify, parse, validate and cache the two CSV files.

``load_dataset()`` with no argument reads the copy bundled in ``data/sign-mnist/`` (checked
against ``SHA256SUMS``), so nothing needs the network. A user may point ``source`` at a folder,
at ``"TRAIN,TEST"`` (two paths or URLs, plain or gzipped) or at a folder URL. Parsing the 83 MB
train CSV takes seconds, so the parsed arrays are cached as ``.npz`` keyed by the file's SHA-256:
a warm load is a hash plus a memory read. Only a fully validated file is ever cached.

On a class server a run's ``data`` setting comes from a student, so :func:`check_source_allowed`
admits only the bundled copy and the folders and URL prefixes the operator lists in
``SIGNLAB_DATA_SOURCES``. Downloads stream to a file under a size cap (``SIGNLAB_MAX_DOWNLOAD_MB``),
are checked against a SHA-256 where one is known (``URL#sha256=HEX``), and gzip is decompressed
under a bound (``SIGNLAB_MAX_CSV_MB``), so no source can make the server hold unbounded data.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import http.client
import io
import os
import posixpath
import re
import sys
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import envnum, labels
from .errors import ConfigError, DataError
from .fsutil import StorageError, atomic_write, atomic_write_npz
from .numbers import whole_number
from .paths import BUNDLED_DATA_DIR, cache_dir

TRAIN_NAME = "sign_mnist_train.csv"
TEST_NAME = "sign_mnist_test.csv"
TRAIN_ROWS, TEST_ROWS = 27_455, 7_172  # the bundled CSVs' images (tests/test_data.py checks them)
CACHE_VERSION = 2  # bump when the cached arrays change: their layout, or how a file is read (2: a CSV with a
# trailing extra column, misread before, is refused; its cached misreading must not be served)
# the train CSV is 83 MB uncompressed and 24 MB gzipped: generous caps that still bound memory
DEFAULT_MAX_DOWNLOAD_MB = 200
DEFAULT_MAX_CSV_MB = 500
SOURCES_ENV = "SIGNLAB_DATA_SOURCES"


def _env_mb(name: str, default: int) -> int:
    """A size limit in bytes from the environment (the operator's, in MB), checked: ConfigError names it."""
    envnum.check_one(name)
    return int(envnum.within(name) or default) * 2**20


def max_download_bytes() -> int:
    """The largest download accepted (``SIGNLAB_MAX_DOWNLOAD_MB``, default 200 MB)."""
    return _env_mb("SIGNLAB_MAX_DOWNLOAD_MB", DEFAULT_MAX_DOWNLOAD_MB)


def max_csv_bytes() -> int:
    """The largest CSV accepted, after decompression (``SIGNLAB_MAX_CSV_MB``, default 500 MB)."""
    return _env_mb("SIGNLAB_MAX_CSV_MB", DEFAULT_MAX_CSV_MB)


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
        if urllib.parse.urlsplit(s).fragment:
            # a folder's URL names two files: one hash cannot check both, and it was dropped unsaid
            raise DataError(f"{s}: a folder URL takes no #fragment; to check the files' SHA-256, give them "
                            "as TRAIN_URL#sha256=HEX,TEST_URL#sha256=HEX")
        base = s if s.endswith("/") else s + "/"
        return urllib.parse.urljoin(base, TRAIN_NAME), urllib.parse.urljoin(base, TEST_NAME)
    folder = Path(s).expanduser()
    if folder.is_dir():
        return str(_find_in_folder(folder, TRAIN_NAME)), str(_find_in_folder(folder, TEST_NAME))
    raise DataError(f"{s}: not a folder, URL or TRAIN,TEST pair")


def absolute_source(source: str | None) -> str | None:
    """``source`` with its local paths made absolute (URLs as given): a run keeps its data setting
    in config.json, and a relative one (``--data data/x``) was read from whatever folder a worker, a
    resume or an evaluation later ran in: refused there, or another folder's files read unsaid."""
    if source is None or str(source).strip() == "":
        return source
    parts = [p.strip() for p in str(source).split(",")]
    return ",".join(p if _is_url(p) or not p else os.path.abspath(os.path.expanduser(p)) for p in parts)


# --------------------------------------------------------------------------- allowed sources
def allowed_sources() -> list[str]:
    """The folders and URL prefixes of ``SIGNLAB_DATA_SOURCES`` (comma-separated; empty: none)."""
    return [a.strip() for a in os.environ.get(SOURCES_ENV, "").split(",") if a.strip()]


def _url_under(location: str, prefix: str) -> bool:
    """Whether URL ``location`` lies under URL ``prefix``: same scheme and host (and port, and user),
    and a path at or below the prefix's once ``..`` and %-escapes are resolved."""
    a, b = urllib.parse.urlparse(location), urllib.parse.urlparse(prefix)
    if a.scheme.lower() != b.scheme.lower() or a.netloc.lower() != b.netloc.lower():
        return False
    pa = posixpath.normpath(urllib.parse.unquote(a.path) or "/")
    pb = posixpath.normpath(urllib.parse.unquote(b.path) or "/")
    return pa == pb or pa.startswith(pb.rstrip("/") + "/")


def _path_under(location: str, folder: str | Path) -> bool:
    """Whether ``location`` (after symlinks) lies in ``folder`` (after symlinks)."""
    try:
        Path(location).expanduser().resolve().relative_to(Path(folder).expanduser().resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def check_source_allowed(source: str | Path | None) -> None:
    """Raise ConfigError unless ``source`` is the bundled dataset (None) or lies in a folder or
    under a URL prefix of ``SIGNLAB_DATA_SOURCES``.

    A queued run is trained by a worker on the server, so its ``data`` must never make the server
    read any path or fetch any URL a student chooses. (``train --data`` in a terminal is not
    checked: that user has a shell already.)
    """
    if source is None or str(source).strip() == "":
        return
    text = str(source).strip()
    allowed = [*allowed_sources(), str(BUNDLED_DATA_DIR)]
    locations = [p.strip() for p in text.split(",")] if "," in text else [text]
    for loc in locations:
        if _is_url(loc):
            ok = any(_is_url(a) and _url_under(loc.split("#", 1)[0], a) for a in allowed)
        else:
            ok = bool(loc) and any(not _is_url(a) and _path_under(loc, a) for a in allowed)
        if not ok:
            shown = text if len(text) <= 120 else text[:117] + "..."
            raise ConfigError(f"data: {shown!r} is not an allowed dataset source on this server; use the "
                              f"bundled dataset, or have the operator add it to {SOURCES_ENV}")


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
def url_sha256(url: str) -> str | None:
    """The SHA-256 a URL names in its fragment (``…/train.csv.gz#sha256=HEX``), else None."""
    frag = urllib.parse.urlparse(url).fragment
    if not frag.lower().startswith("sha256="):
        return None
    m = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", frag, re.IGNORECASE)
    if not m:  # a checksum written wrong must not leave the file unchecked
        raise DataError(f"{url}: #{frag[:80]} is not a SHA-256 (64 hexadecimal digits)")
    return m[1].lower()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, progress: Callable[[int, int], None] | None = None,
             sha256: str | None = None) -> Path:
    """Fetch ``url`` into the cache once; later calls reuse the file.

    The download streams to a temporary file (never all in memory), stops past
    ``max_download_bytes()``, has its length checked against Content-Length and its SHA-256
    against ``sha256`` (or the URL's ``#sha256=``) when one is known; only then is it renamed into
    place, so an interrupted or wrong download is never mistaken for a good one.
    """
    sha256 = (sha256 or url_sha256(url) or "").lower() or None
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    target = cache_dir() / "downloads" / f"{key}-{name}"
    if target.is_file():
        if sha256 is None or _sha256_file(target) == sha256:
            return target
        target.unlink(missing_ok=True)  # a damaged cached copy is fetched again, never trusted
    progress = progress or _stderr_progress(url)
    cap = max_download_bytes()
    too_big = f"{url}: the download is over the limit of {cap // 2**20} MB (SIGNLAB_MAX_DOWNLOAD_MB); refused"

    def fetch(tmp: Path) -> None:
        digest, done, total = hashlib.sha256(), 0, 0
        try:
            with urllib.request.urlopen(url.split("#", 1)[0], timeout=60) as resp, open(tmp, "wb") as out:
                length = str(resp.headers.get("Content-Length") or "0").strip()
                total = whole_number(length, 18) or 0
                if total > cap:  # refused before a byte is read
                    raise DataError(too_big)
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    done += len(chunk)
                    if done > cap:
                        raise DataError(too_big)
                    digest.update(chunk)
                    out.write(chunk)
                    progress(done, total)
        except http.client.IncompleteRead as err:
            raise DataError(f"{url}: download incomplete ({done + len(err.partial)} of {total} bytes)") from err
        except (OSError, http.client.HTTPException) as err:  # URLError and HTTPError are OSErrors
            raise DataError(f"{url}: download failed ({err})") from err
        if total and done != total:
            raise DataError(f"{url}: download incomplete ({done} of {total} bytes)")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DataError(f"{url}: SHA-256 {digest.hexdigest()[:12]}… does not match the expected "
                            f"{sha256[:12]}…; the download is damaged or not the file named")

    atomic_write(target, fetch)
    return target


def _stderr_progress(url: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        pct = f"{100 * done / total:5.1f}%" if total else ""
        end = "\n" if total and done >= total else ""
        print(f"\rdownloading {Path(url).name}: {done / 1e6:6.1f} MB {pct}", end=end, file=sys.stderr)

    return show


# --------------------------------------------------------------------------- parsing
def _read_text(path: Path, raw: bytes | None = None) -> bytes:
    """The CSV bytes of ``path`` (``raw``, if already read), gunzipped under ``max_csv_bytes()``:
    a small gzip bomb stops at the bound with a DataError instead of filling the memory."""
    bound = max_csv_bytes()
    if raw is None:
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise DataError(f"{path}: cannot read ({err.strerror or err})") from err
    if raw[:2] != b"\x1f\x8b":
        if len(raw) > bound:
            raise DataError(f"{path}: {len(raw) / 2**20:.0f} MB is over the CSV limit of {bound // 2**20} MB "
                            "(SIGNLAB_MAX_CSV_MB)")
        return raw
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
            text = gz.read(bound + 1)  # never more than the bound (plus one byte to notice it)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path}: the gzip data is truncated or corrupt ({err})") from err
    if len(text) > bound:
        raise DataError(f"{path}: decompresses to over {bound // 2**20} MB (SIGNLAB_MAX_CSV_MB); refused "
                        "(not a Sign Language MNIST CSV, or a gzip bomb)")
    return text


def parse_csv(text: bytes, name: str) -> Split:
    """Parse and validate one CSV (``label,pixel1..pixel784``); DataError names row and column.

    Rows are numbered as lines of the file: the header is line 1, the first image line 2.
    """
    import pandas as pd  # heavy import, only needed on a cold load

    if not text.strip():
        raise DataError(f"{name}: the file is empty")
    header_line = text.split(b"\n", 1)[0].decode("utf-8", "replace").strip().lstrip("\ufeff")
    # as CSV, quotes and all: R's write.csv and Python's QUOTE_ALL write "label","pixel1",…, which was
    # refused as having no 'label' column
    header = [h.strip() for h in _csv_fields(header_line)]
    if "label" not in header:
        raise DataError(f"{name}: line 1: no 'label' column in the header")
    if header[0] != "label":
        raise DataError(f"{name}: line 1: 'label' must be the first column, found {header[0]!r}")
    if len(header) != 1 + labels.NUM_PIXELS:
        raise DataError(f"{name}: line 1: expected 1 label and {labels.NUM_PIXELS} pixel columns, "
                        f"found {len(header) - 1} pixel columns")
    _check_first_row_width(text, name, len(header))
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
    values = df.to_numpy()  # (N, 785)
    # whole numbers written as 1.0 (or too big for 64 bits) arrive as floats: read, and checked below
    # before any cast, rather than refused with no cell named
    if values.dtype.kind not in "iuf" or (values.dtype.kind == "f"
                                          and not (np.isfinite(values) & (values == np.round(values))).all()):
        _raise_first_bad_cell(df, name)

    def shown(v) -> str:
        return f"{int(v)}" if abs(v) < 2**53 else f"{v:g}"

    bad = (values[:, 1:] < 0) | (values[:, 1:] > 255)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{name}: line {r + 2}, column {c + 2} ({header[c + 1]}): "
                        f"value {shown(values[r, c + 1])} is outside 0-255")
    ok = np.isin(values[:, 0], sorted(labels.VALID_RAW_LABELS))
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        raise DataError(f"{name}: line {r + 2}, column 1 (label): label {shown(values[r, 0])} is not one of "
                        "the 24 letters (0-24 without 9)")
    arr = values.astype(np.int64, copy=False)  # every value is now a whole number in range
    images = arr[:, 1:].astype(np.uint8).reshape(-1, labels.IMAGE_SIZE, labels.IMAGE_SIZE)
    return Split(images=images, targets=labels.raw_labels_to_index(arr[:, 0]), source=name)


def _csv_fields(line: str) -> list[str]:
    """One line's fields as CSV reads them (quotes and all); split at commas where the csv module
    refuses the line (a carriage return or a NUL inside it: not a data file, which the checks after
    this then say in one line)."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return line.split(",")


def _check_first_row_width(text: bytes, name: str, width: int) -> None:
    """DataError when the first data line holds more values than the header names. With every row one
    longer (an exporter's trailing column), pandas takes the first column for an index without a word:
    the label was read from pixel1, each pixel shifted by one, and a run trained on it. (Rows of
    differing lengths pandas refuses itself, naming the line.)"""
    start, line_no = text.find(b"\n") + 1, 2
    while 0 < start < len(text):
        end = text.find(b"\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end].strip()
        if line:
            values = _csv_fields(line.decode("utf-8", "replace"))
            if len(values) > width:
                raise DataError(f"{name}: line {line_no}: {len(values)} values, where the header names {width} "
                                f"(a label and {labels.NUM_PIXELS} pixels); remove the extra column")
            return
        start, line_no = end + 1, line_no + 1


def _raise_first_bad_cell(df, name: str) -> None:
    """Find the first missing or non-integer cell and raise a DataError naming it."""
    import pandas as pd

    for c, col in enumerate(df.columns):
        series = df[col]
        if series.dtype.kind in "iu":
            continue
        # as text: a column of True/False stayed boolean, and its abs() below overflowed (a traceback)
        numeric = pd.to_numeric(series.astype(str) if series.dtype.kind == "b" else series, errors="coerce")
        missing = series.isna().to_numpy()
        nonnum = numeric.isna().to_numpy() & ~missing
        frac = (numeric.notna() & (numeric != numeric.round())).to_numpy()
        huge = (numeric.abs() >= 2**63).to_numpy()  # beyond 64 bits: pandas keeps the column as text
        rows = np.flatnonzero(missing | nonnum | frac | huge)
        if len(rows):
            r = int(rows[0])
            where = f"{name}: line {r + 2}, column {c + 1} ({col})"
            if missing[r]:
                raise DataError(f"{where}: the value is missing (the row is short or the file truncated)")
            if huge[r]:
                allowed = "0-24 without 9" if c == 0 else "0-255"
                raise DataError(f"{where}: {str(series.iloc[r])[:24]!r} is far outside {allowed}")
            raise DataError(f"{where}: {str(series.iloc[r])[:24]!r} is not a whole number")  # '1.5', not np.float64(1.5)
    raise DataError(f"{name}: could not read the values as integers")


# --------------------------------------------------------------------------- loading with cache
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_split(location: str) -> Split:
    """Load one CSV (path or URL), from the parsed cache when its content was seen before."""
    path = download(location) if _is_url(location) else Path(location).expanduser()
    if not path.is_file():
        raise DataError(f"{location}: no such file")
    limit = max(max_csv_bytes(), max_download_bytes())
    try:
        if path.stat().st_size > limit:  # before reading: a huge local file is refused, not loaded
            raise DataError(f"{path}: {path.stat().st_size / 2**20:.0f} MB is over the limit of "
                            f"{limit // 2**20} MB (SIGNLAB_MAX_CSV_MB)")
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
                images, targets = z["images"], z["targets"]
            if images.dtype == np.uint8 and images.shape[1:] == (labels.IMAGE_SIZE, labels.IMAGE_SIZE) \
                    and targets.shape == (len(images),):
                return Split(images=images, targets=targets, source=str(location))
            cached.unlink(missing_ok=True)  # not what this version writes: rebuilt
        # BadZipFile and EOFError: a truncated file (a full disk, a killed writer of an older version)
        # ended every later load of the CSV, until the cache was deleted by hand
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            cached.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    split = parse_csv(_read_text(path, raw), str(location))
    split = Split(split.images, split.targets, str(location))
    try:
        atomic_write_npz(cached, {"images": split.images, "targets": split.targets}, compressed=False)
    except (OSError, StorageError):  # atomic_write names what failed as a StorageError
        pass  # an unwritable cache only costs speed
    return split


def load_dataset(source: str | Path | None = None) -> Dataset:
    """Load train and test; ``source`` as in :func:`resolve_source` (None: the bundled copy)."""
    train_loc, test_loc = resolve_source(source)
    return Dataset(train=load_split(train_loc), test=load_split(test_loc))


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
