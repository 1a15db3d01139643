"""The dataset: the bundled copy, the label map, checksums, the parsed cache, the sources a user
may give (folder, TRAIN,TEST, plain or gzipped, http) and one clear DataError per malformed file."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import re

import numpy as np
import pytest

from signlab import data, labels
from signlab.data import load_dataset, load_split, parse_csv, resolve_source
from signlab.errors import DataError
from signlab.paths import BUNDLED_DATA_DIR
from tests._local import LocalHTTPServer


def _parsed_files(cache):
    folder = cache / "parsed"
    return sorted(folder.glob("*.npz")) if folder.is_dir() else []


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SIGNLAB_CACHE", str(folder))
    return folder


# --------------------------------------------------------------------------- the bundled copy
def test_bundled_dataset_shapes(dataset):
    assert dataset.train.images.shape == (27455, 28, 28)
    assert dataset.test.images.shape == (7172, 28, 28)
    assert dataset.train.images.dtype == np.uint8 and dataset.test.images.dtype == np.uint8
    assert len(dataset.train) == 27455 and len(dataset.test) == 7172
    assert (data.TRAIN_ROWS, data.TEST_ROWS) == (len(dataset.train), len(dataset.test))  # the estimates' counts
    for split in (dataset.train, dataset.test):
        assert split.targets.min() == 0 and split.targets.max() == 23
        assert set(np.unique(split.targets).tolist()) == set(range(24))
    assert (data.class_counts(dataset.train) > 0).all()
    assert data.class_counts(dataset.test).sum() == 7172
    means = data.mean_images(dataset.test)
    assert means.shape == (24, 28, 28) and 0 < means.mean() < 255


def test_bundled_copy_is_listed_in_its_sha256sums():
    for name in ("sign_mnist_train.csv.gz", "sign_mnist_test.csv.gz"):
        path = BUNDLED_DATA_DIR / name
        expected = data._expected_sha256(path)
        assert expected is not None, f"SHA256SUMS has no entry for {name}"
        assert expected == hashlib.sha256(path.read_bytes()).hexdigest()


def test_label_map():
    assert labels.NUM_CLASSES == 24 and len(labels.LETTERS) == 24
    assert "J" not in labels.LETTERS and "Z" not in labels.LETTERS
    assert labels.raw_labels_to_index(np.array([0, 8, 10, 24])).tolist() == [0, 8, 9, 23]
    assert labels.letter(9) == "K" and labels.letter(23) == "Y"
    assert labels.raw_labels_to_index(np.array([9]))[0] == -1  # 9 (J) is not a class
    assert 9 not in labels.VALID_RAW_LABELS and 25 not in labels.VALID_RAW_LABELS
    assert len(labels.VALID_RAW_LABELS) == 24


def test_csv_labels_are_mapped(csvs):
    rows = [[raw] + [0] * 784 for raw in (0, 8, 10, 24)]
    split = parse_csv(csvs.text(rows).encode(), "x.csv")
    assert split.targets.tolist() == [0, 8, 9, 23]
    assert split.images.shape == (4, 28, 28)


def test_pixels_keep_row_major_order(csvs):
    row = [3] + list(range(0, 784 % 256)) + list(range(256)) * 3  # 784 pixel values
    row = row[:785]
    split = parse_csv(csvs.text([row]).encode(), "x.csv")
    assert split.images[0].reshape(-1).tolist() == row[1:]
    assert split.images[0, 0, 1] == row[2] and split.images[0, 1, 0] == row[1 + 28]


# --------------------------------------------------------------------------- checksums
def test_sha256sums_accepts_a_good_copy_and_refuses_a_damaged_one(tmp_path, cache):
    src = BUNDLED_DATA_DIR / "sign_mnist_test.csv.gz"
    raw = src.read_bytes()
    good_dir, bad_dir = tmp_path / "good", tmp_path / "bad"
    good_dir.mkdir()
    bad_dir.mkdir()
    digest = hashlib.sha256(raw).hexdigest()
    for d in (good_dir, bad_dir):
        (d / "SHA256SUMS").write_text(f"{digest}  sign_mnist_test.csv.gz\n")
    (good_dir / "sign_mnist_test.csv.gz").write_bytes(raw)
    damaged = bytearray(raw)
    damaged[len(damaged) // 2] ^= 0xFF
    (bad_dir / "sign_mnist_test.csv.gz").write_bytes(bytes(damaged))

    with pytest.raises(DataError) as err:
        load_split(str(bad_dir / "sign_mnist_test.csv.gz"))
    msg = str(err.value)
    assert "sign_mnist_test.csv.gz" in msg and "SHA256SUMS" in msg and "damaged" in msg
    assert _parsed_files(cache) == []  # refused before anything was parsed or cached

    split = load_split(str(good_dir / "sign_mnist_test.csv.gz"))
    assert len(split) == 7172


def test_sha256sums_lists_other_files_only(csvs, cache):
    path = csvs.write("train.csv")
    (path.parent / "SHA256SUMS").write_text("0" * 64 + "  other.csv\n# comment\n")
    assert len(load_split(str(path))) == 5  # no entry for this file: nothing to check


# --------------------------------------------------------------------------- the parsed cache
def test_cold_then_warm_load_of_the_real_test_split(cache, monkeypatch):
    loc = str(BUNDLED_DATA_DIR / "sign_mnist_test.csv.gz")
    cold = load_split(loc)
    digest = hashlib.sha256((BUNDLED_DATA_DIR / "sign_mnist_test.csv.gz").read_bytes()).hexdigest()
    files = _parsed_files(cache)
    assert [f.name for f in files] == [f"v{data.CACHE_VERSION}-{digest}.npz"]

    def no_parse(*a, **k):
        raise AssertionError("a warm load must not parse the CSV")

    monkeypatch.setattr(data, "parse_csv", no_parse)
    warm = load_split(loc)
    assert np.array_equal(cold.images, warm.images)
    assert np.array_equal(cold.targets, warm.targets)


def test_cache_is_keyed_by_content(csvs, cache, monkeypatch):
    path = csvs.write("train.csv", rows=csvs.rows(4, seed=1))
    first = load_split(str(path))
    assert len(_parsed_files(cache)) == 1
    # same name, other content: a new cache entry, never the stale arrays
    csvs.write("train.csv", rows=csvs.rows(6, seed=2))
    second = load_split(str(path))
    assert len(second) == 6 and len(first) == 4
    assert len(_parsed_files(cache)) == 2
    # the same content under another name shares the entry
    other = csvs.write("copy.csv", text=path.read_bytes())
    calls = []
    real = data.parse_csv
    monkeypatch.setattr(data, "parse_csv", lambda *a, **k: calls.append(1) or real(*a, **k))
    third = load_split(str(other))
    assert calls == [] and np.array_equal(third.images, second.images)


def test_damaged_cache_file_is_rebuilt(csvs, cache):
    path = csvs.write("train.csv")
    good = load_split(str(path))
    (entry,) = _parsed_files(cache)
    entry.write_bytes(b"not an npz file")
    again = load_split(str(path))
    assert np.array_equal(good.images, again.images)
    (entry,) = _parsed_files(cache)
    assert entry.stat().st_size > 100


# --------------------------------------------------------------------------- sources
def test_resolve_source_default_is_bundled():
    train, test = resolve_source(None)
    assert train.endswith("sign_mnist_train.csv.gz") and test.endswith("sign_mnist_test.csv.gz")
    assert resolve_source("") == (train, test)


def test_a_folder_url_with_a_hash_is_refused_not_dropped():
    """``--data https://host/dir/#sha256=HEX``: the hash was dropped unsaid and the files downloaded
    unchecked. A folder names two files, which one hash cannot check: the two-URL form can."""
    with pytest.raises(DataError, match="a folder URL takes no #fragment; .*TRAIN_URL#sha256=HEX,TEST_URL#sha256=HEX"):
        resolve_source("http://127.0.0.1:9/data/#sha256=00ab")
    assert resolve_source("http://127.0.0.1:9/data")[0] == "http://127.0.0.1:9/data/sign_mnist_train.csv"


def test_folder_source_plain_and_gzipped(csvs, cache):
    train_rows, test_rows = csvs.rows(6, seed=3), csvs.rows(3, seed=4)
    csvs.write("sign_mnist_train.csv", rows=train_rows)
    csvs.write("sign_mnist_test.csv.gz", rows=test_rows, gz=True)
    ds = load_dataset(str(csvs.folder))
    assert len(ds.train) == 6 and len(ds.test) == 3
    assert ds.train.images[0].reshape(-1).tolist() == train_rows[0][1:]
    assert ds.test.images[2].reshape(-1).tolist() == test_rows[2][1:]


def test_folder_source_missing_file(csvs):
    csvs.write("sign_mnist_train.csv")
    with pytest.raises(DataError, match="sign_mnist_test.csv"):
        load_dataset(str(csvs.folder))


def test_pair_source_and_gzip_equivalence(csvs, cache):
    rows = csvs.rows(5, seed=5)
    plain = csvs.write("a.csv", rows=rows)
    gz = csvs.write("b.csv.gz", rows=rows, gz=True)
    ds = load_dataset(f"{plain}, {gz}")
    assert np.array_equal(ds.train.images, ds.test.images)
    assert np.array_equal(ds.train.targets, ds.test.targets)
    assert ds.train.source == str(plain) and ds.test.source == str(gz)


@pytest.mark.parametrize("source, said", [("a.csv,", "give two locations as TRAIN,TEST"),
                                          (",b.csv", "give two locations as TRAIN,TEST"),
                                          ("a.csv,b.csv,c.csv", "give two locations as TRAIN,TEST"),
                                          ("/no/such/folder", "/no/such/folder")])
def test_bad_sources(source, said, csvs, monkeypatch):
    """The files exist (with the pair's check gone, these loaded or failed for another reason): each
    source is refused for its shape, with the words that say so."""
    for name in ("a.csv", "b.csv", "c.csv"):
        csvs.write(name)
    monkeypatch.chdir(csvs.folder)
    with pytest.raises(DataError, match=said):
        load_dataset(source)


def test_missing_file_in_pair(csvs):
    good = csvs.write("a.csv")
    with pytest.raises(DataError, match="no such file"):
        load_dataset(f"{good},{csvs.folder / 'missing.csv'}")


class _Server(LocalHTTPServer):
    """A local http.server thread on 127.0.0.1 that counts its requests."""

    def __init__(self, folder, lie_about_length: bool = False):
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=str(folder), **k)

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                if lie_about_length:
                    body = (folder / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body) + 1000))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()

        super().__init__(Handler)


def test_http_source_downloads_once(csvs, cache):
    csvs.write("sign_mnist_train.csv", rows=csvs.rows(4, seed=6))
    csvs.write("sign_mnist_test.csv", rows=csvs.rows(2, seed=7))
    with _Server(csvs.folder) as server:
        ds = load_dataset(server.url)
        assert len(ds.train) == 4 and len(ds.test) == 2
        assert sorted(server.requests) == ["/sign_mnist_test.csv", "/sign_mnist_train.csv"]
        assert len(list((cache / "downloads").iterdir())) == 2
        again = load_dataset(server.url.rstrip("/"))  # a folder URL without the slash too
        assert len(server.requests) == 2, "the second load must come from the download cache"
        assert np.array_equal(again.train.images, ds.train.images)


def test_http_source_errors(csvs, cache):
    csvs.write("sign_mnist_train.csv")
    with _Server(csvs.folder) as server:
        with pytest.raises(DataError, match="download failed"):
            load_split(server.url + "missing.csv")
    assert not (cache / "downloads").exists() or not list((cache / "downloads").iterdir())


def test_http_incomplete_download_is_not_kept(csvs, cache):
    csvs.write("sign_mnist_train.csv")
    with _Server(csvs.folder, lie_about_length=True) as server:
        with pytest.raises(DataError, match="incomplete"):
            load_split(server.url + "sign_mnist_train.csv")
    assert not (cache / "downloads").exists() or not list((cache / "downloads").iterdir())


# --------------------------------------------------------------------------- malformed files
def _good_rows():
    raw = [r for r in range(25) if r != 9]
    return [[raw[i], *([i * 10] * 784)] for i in range(4)]


def _with(row_index, col, value):
    rows = _good_rows()
    rows[row_index][col] = value
    return rows


HEADER = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
_GOOD = "\n".join([HEADER] + [",".join(map(str, r)) for r in _good_rows()]) + "\n"

MALFORMED = {
    # name: (file text, regex the message must match, besides the file name)
    "no_label_column": ("pixel0," + HEADER.split(",", 1)[1] + "\n" + "1," * 784 + "1\n",
                        r"line 1: no 'label' column"),
    "label_not_first": (",".join(HEADER.split(",")[1:2] + ["label"] + HEADER.split(",")[2:]) + "\n",
                        r"line 1: 'label' must be the first column"),
    "too_few_pixel_columns": (HEADER.rsplit(",", 1)[0] + "\n", r"line 1: expected 1 label and 784 pixel columns, found 783"),
    "too_many_pixel_columns": (HEADER + ",pixel785\n", r"line 1: .*found 785 pixel columns"),
    "row_with_extra_value": (_GOOD + "3," + "0," * 784 + "0\n", r"line 6\b"),
    "non_numeric_cell": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(1, 5, "abc")]) + "\n",
                         r"line 3, column 6 \(pixel5\): 'abc' is not a whole number"),
    "fractional_cell": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(2, 784, "1.5")]) + "\n",
                        r"line 4, column 785 \(pixel784\).*not a whole number"),
    "value_above_255": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(0, 100, 256)]) + "\n",
                        r"line 2, column 101 \(pixel100\): value 256 is outside 0-255"),
    "negative_pixel": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(3, 1, -1)]) + "\n",
                       r"line 5, column 2 \(pixel1\): value -1 is outside 0-255"),
    "label_9": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(2, 0, 9)]) + "\n",
                r"line 4, column 1 \(label\): label 9 is not one of the 24 letters"),
    "label_25": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(1, 0, 25)]) + "\n",
                 r"line 3, column 1 \(label\): label 25 "),
    "label_negative": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(0, 0, -3)]) + "\n",
                       r"line 2, column 1 \(label\): label -3 "),
    "label_missing": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(1, 0, "")]) + "\n",
                      r"line 3, column 1 \(label\).*missing"),
    # too big for 64 bits, and 300.0 (whole numbers as floats): "could not read the values as integers", no place named
    "huge_pixel": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(1, 7, "9" * 23)]) + "\n",
                   r"line 3, column 8 \(pixel7\): '9{23}' is far outside 0-255"),
    "huge_label": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(0, 0, "9" * 23)]) + "\n",
                   r"line 2, column 1 \(label\): '9{23}' is far outside 0-24 without 9"),
    "float_above_255": ("\n".join([HEADER] + [",".join(map(str, r)) for r in _with(2, 3, "300.0")]) + "\n",
                        r"line 4, column 4 \(pixel3\): value 300 is outside 0-255"),
    "empty_file": ("", r"empty"),
    "blank_lines_only": ("\n\n  \n", r"empty"),
    "header_only": (HEADER + "\n", r"header but no data rows"),
    "truncated_row": (_GOOD + "3," + ",".join(["7"] * 400), r"line 6, column 402 \(pixel401\).*missing"),
    # every row one value longer than the header (an exporter's trailing column): the label was read
    # from pixel1, every pixel shifted by one, and the run trained on it
    "every_row_one_value_more": ("\n".join([HEADER] + [",".join(map(str, [*r, 0])) for r in _good_rows()]) + "\n",
                                 r"line 2: 786 values, where the header names 785"),
    # a column of True/False: pandas kept it boolean and its abs() overflowed (a traceback)
    "boolean_column": ("\n".join([HEADER] + [",".join(map(str, r)) for r in
                                             [[x[0], "True", *x[2:]] for x in _good_rows()]]) + "\n",
                       r"line 2, column 2 \(pixel1\): 'True' is not a whole number"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_csv_is_refused_with_file_and_place(case, csvs, cache):
    text, pattern = MALFORMED[case]
    path = csvs.write(f"{case}.csv", text=text)
    with pytest.raises(DataError) as err:
        load_split(str(path))
    msg = str(err.value)
    assert str(path) in msg, msg
    assert re.search(pattern, msg), msg
    assert "\n" not in msg  # one line a person can act on
    assert _parsed_files(cache) == []  # nothing half-read is cached


@pytest.mark.parametrize("case", ["value_above_255", "label_9", "truncated_row"])
def test_malformed_gzipped_csv_names_the_same_place(case, csvs, cache):
    text, pattern = MALFORMED[case]
    path = csvs.write(f"{case}.csv.gz", text=text, gz=True)
    with pytest.raises(DataError, match=pattern):
        load_split(str(path))
    assert _parsed_files(cache) == []


def test_whole_numbers_written_with_a_decimal_point_are_read(csvs, cache):
    """A CSV saved by a spreadsheet as 3.0,128.0,…: refused as "could not read the values as
    integers", though every value is a whole number in range."""
    rows = _good_rows()
    text = "\n".join([HEADER] + [",".join(f"{v}.0" for v in r) for r in rows]) + "\n"
    split = load_split(str(csvs.write("floats.csv", text=text)))
    assert split.images[:, 0, 0].tolist() == [r[1] for r in rows] and split.images.dtype == np.uint8
    assert split.targets.tolist() == [0, 1, 2, 3]


def test_truncated_gzip(csvs, cache):
    whole = gzip.compress(_GOOD.encode())
    path = csvs.write("cut.csv.gz", text=whole[: len(whole) // 2])
    with pytest.raises(DataError) as err:
        load_split(str(path))
    assert str(path) in str(err.value) and "truncated or corrupt" in str(err.value)
    assert _parsed_files(cache) == []


def test_good_file_after_bad_one_is_cached(csvs, cache):
    bad = csvs.write("bad.csv", text=MALFORMED["label_9"][0])
    with pytest.raises(DataError):
        load_split(str(bad))
    good = csvs.write("good.csv", text=_GOOD)
    split = load_split(str(good))
    assert split.targets.tolist() == [0, 1, 2, 3]
    assert len(_parsed_files(cache)) == 1


def test_a_header_written_with_quotes_is_read():
    """R's write.csv and Python's QUOTE_ALL quote every name: "label","pixel1",... was refused as
    having no 'label' column."""
    quoted = ",".join(f'"{h}"' for h in HEADER.split(","))
    split = parse_csv(_GOOD.replace(HEADER, quoted).encode(), "quoted.csv")
    plain = parse_csv(_GOOD.encode(), "plain.csv")
    assert np.array_equal(split.images, plain.images) and np.array_equal(split.targets, plain.targets)


@pytest.mark.parametrize("damage", ["truncated", "wrong_shape"])
def test_a_truncated_or_foreign_cache_file_is_rebuilt(csvs, cache, damage):
    """A cache file cut short (a full disk, a killed writer) raised zipfile.BadZipFile, which was not
    caught: every later load of that CSV failed until the cache was deleted by hand."""
    path = csvs.write("train.csv")
    good = load_split(str(path))
    (entry,) = _parsed_files(cache)
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    else:  # a readable npz of other arrays: used as it was, the shapes went wrong later
        np.savez(entry.with_suffix(""), images=np.zeros((2, 5), np.uint8), targets=np.zeros(7, np.int64))
    again = load_split(str(path))
    assert np.array_equal(good.images, again.images) and np.array_equal(good.targets, again.targets)


def test_parse_csv_accepts_crlf_and_bom():
    text = ("\ufeff" + _GOOD).replace("\n", "\r\n").encode("utf-8")
    split = parse_csv(text, "crlf.csv")
    assert len(split) == 4 and split.images[3].max() == 30


def test_unreadable_path_is_a_data_error(tmp_path):
    with pytest.raises(DataError):
        load_split(str(tmp_path))  # a folder, not a file


def test_an_empty_cache_setting_is_the_default_not_the_current_folder(monkeypatch):
    from signlab import paths

    monkeypatch.setenv("SIGNLAB_CACHE", "")  # the caches were written into whatever folder the command ran in
    assert paths.cache_dir() == paths.PROJECT_ROOT / ".cache"
