"""Property tests (hypothesis): whatever bytes arrive, preprocessing and CSV parsing either succeed
with a well-formed result or raise their own error type; nothing else escapes."""
from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from signlab.data import parse_csv
from signlab.errors import DataError, ImageError
from signlab.preprocess import Crop, prepare

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HEADER = "label," + ",".join(f"pixel{i}" for i in range(1, 785))


def _check_prepared(prep):
    x = prep.image28
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert np.isfinite(x).all() and 0 <= x.min() and x.max() <= 1


# --------------------------------------------------------------------------- images
def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (12, 9, 3), dtype=np.uint8))
    out = []
    for fmt, mode in (("PNG", "RGBA"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "CMYK"),
                      ("WEBP", "RGB")):
        buf = io.BytesIO()
        img.convert(mode).save(buf, fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seed_images()


@SETTINGS
@given(st.binary(max_size=4096))
def test_prepare_arbitrary_bytes(data):
    try:
        _check_prepared(prepare(data, "blob"))
    except ImageError as err:
        assert str(err).startswith("blob: ")


@SETTINGS
@given(st.sampled_from(range(len(SEEDS))), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                      max_size=8),
       st.integers(0, 10_000))
def test_prepare_mutated_image_files(which, flips, cut):
    data = bytearray(SEEDS[which])
    for pos, value in flips:
        data[pos % len(data)] = value
    data = bytes(data[: max(cut, 8)] if cut < len(data) else data)
    try:
        _check_prepared(prepare(data, "mutated"))
    except ImageError as err:
        assert str(err).startswith("mutated: ")  # one line that names the file, as for any bad upload


def test_the_unmutated_seed_files_prepare():
    """The mutations start from files that prepare: a prepare that refused everything would pass the
    property tests above on their ImageError branch alone."""
    assert SEEDS
    for i, data in enumerate(SEEDS):
        _check_prepared(prepare(data, f"seed {i}"))


FORMATS = {
    "RGB": ["PNG", "JPEG", "BMP", "TIFF", "WEBP"], "RGBA": ["PNG", "TIFF", "WEBP"], "L": ["PNG", "JPEG", "GIF", "TIFF"],
    "LA": ["PNG"], "P": ["PNG", "GIF", "BMP"], "I;16": ["PNG", "TIFF"], "I": ["TIFF"], "F": ["TIFF"],
    "CMYK": ["JPEG", "TIFF"], "1": ["PNG", "BMP", "TIFF"],
}


@st.composite
def images(draw):
    mode = draw(st.sampled_from(sorted(FORMATS)))
    fmt = draw(st.sampled_from(FORMATS[mode]))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    elif mode == "I":
        img = Image.fromarray(rng.integers(-(2**31), 2**31 - 1, (h, w), dtype=np.int32)
                              >> draw(st.integers(0, 31)))
    elif mode == "F":
        scale = draw(st.sampled_from([1.0, 255.0, 1e6, -1.0]))
        a = (rng.random((h, w)) * scale).astype(np.float32)
        if draw(st.booleans()):
            a[0, 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0]))
        img = Image.fromarray(a)
    else:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA").convert(mode)
    buf = io.BytesIO()
    kw = {"transparency": 0} if mode == "P" and draw(st.booleans()) else {}
    img.save(buf, fmt, **kw)
    return mode, fmt, buf.getvalue()


@SETTINGS
@given(images(), st.floats(0.5, 8), st.floats(-1, 2), st.floats(-1, 2), st.floats(0, 1))
def test_prepare_random_small_images(image, zoom, cx, cy, background):
    mode, fmt, data = image
    try:
        prep = prepare(data, f"{mode}.{fmt}", Crop(zoom, cx, cy), background)
    except ImageError as err:
        # only non-finite float pixels are a reason to refuse a well-formed file
        assert mode == "F", (mode, fmt, err)
        return
    _check_prepared(prep)
    left, top, right, bottom = prep.box
    assert 0 <= left < right <= prep.gray.shape[1] and 0 <= top < bottom <= prep.gray.shape[0]


# --------------------------------------------------------------------------- CSV
def _valid_csv(rows: int = 3) -> str:
    lines = [HEADER] + [",".join([str([0, 5, 10, 24][i % 4])] + [str((i * 31 + j) % 256) for j in range(784)])
                        for i in range(rows)]
    return "\n".join(lines) + "\n"


VALID = _valid_csv()


def _check_split(split):
    n = len(split)
    assert n >= 1
    assert split.images.shape == (n, 28, 28) and split.images.dtype == np.uint8
    assert split.targets.shape == (n,) and split.targets.min() >= 0 and split.targets.max() <= 23


@SETTINGS
@given(st.binary(max_size=4096))
def test_parse_csv_arbitrary_bytes(data):
    try:
        _check_split(parse_csv(data, "blob.csv"))
    except DataError as err:
        assert str(err).startswith("blob.csv")


@SETTINGS
@given(st.binary(max_size=300))
def test_parse_csv_arbitrary_body_after_a_good_header(body):
    try:
        _check_split(parse_csv(HEADER.encode() + b"\n" + body, "body.csv"))
    except DataError as err:
        assert str(err).startswith("body.csv")


CELL = st.one_of(st.integers(-(2**70), 2**70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.text(max_size=6), st.sampled_from(["", " ", "NA", "nan", "True", "1e3", "0x10", '"', "'", "\t",
                                                       "1,2", "\r", "\x00", "３"]))


MUTATIONS = ["cell", "cell", "delete", "insert", "truncate", "extra_field", "short_row", "raw_bytes", "quote",
             "blank_line"]


@st.composite
def mutated_csv(draw) -> bytes:
    """A valid 3-row CSV with 1-3 random mutations, from harmless to fatal."""
    lines = VALID.encode().split(b"\n")  # [header, row, row, row, b""]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        r = draw(st.integers(0, len(lines) - 1))
        if kind == "cell":
            cells = lines[r].split(b",")
            c = draw(st.integers(0, max(len(cells) - 1, 0)))
            cells[c] = draw(CELL).encode("utf-8", "surrogatepass")
            lines[r] = b",".join(cells)
        elif kind == "extra_field":
            lines[r] += b"," + draw(CELL).encode("utf-8", "surrogatepass")
        elif kind == "short_row":
            lines[r] = b",".join(lines[r].split(b",")[: draw(st.integers(0, 784))])
        elif kind == "quote":
            lines[r] = b'"' + lines[r]
        elif kind == "blank_line":
            lines.insert(r, draw(st.sampled_from([b"", b" ", b",,,", b"\r"])))
        elif kind == "raw_bytes":
            a = draw(st.integers(0, len(lines[r])))
            lines[r] = lines[r][:a] + draw(st.binary(min_size=1, max_size=4)) + lines[r][a:]
        else:
            text = b"\n".join(lines)
            a = draw(st.integers(0, len(text)))
            if kind == "delete":
                text = text[:a] + text[a + draw(st.integers(1, 50)):]
            elif kind == "insert":
                text = text[:a] + draw(st.text(max_size=10)).encode("utf-8", "surrogatepass") + text[a:]
            else:
                text = text[:a]
            lines = text.split(b"\n")
    return b"\n".join(lines)


@SETTINGS
@given(mutated_csv())
def test_parse_csv_mutated_text(data):
    try:
        split = parse_csv(data, "mutated.csv")
    except DataError as err:
        msg = str(err)
        assert msg.startswith("mutated.csv") and "\n" not in msg, msg
        return
    _check_split(split)


@st.composite
def pixel_rows(draw):
    kind = draw(st.sampled_from(["random", "zeros", "max", "edges"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    px = {"random": lambda: rng.integers(0, 256, 784), "zeros": lambda: np.zeros(784, int),
          "max": lambda: np.full(784, 255), "edges": lambda: rng.choice([0, 1, 254, 255], 784)}[kind]()
    return draw(st.sampled_from(sorted(set(range(25)) - {9}))), px.tolist()


@SETTINGS
@given(st.lists(pixel_rows(), min_size=1, max_size=4))
def test_parse_csv_round_trip(rows):
    text = "\n".join([HEADER] + [",".join(map(str, [lab, *px])) for lab, px in rows]) + "\n"
    split = parse_csv(text.encode(), "ok.csv")
    assert split.images.reshape(len(rows), -1).tolist() == [px for _, px in rows]
    assert split.targets.tolist() == [lab if lab < 9 else lab - 1 for lab, _ in rows]


def test_mutations_do_reach_the_error_paths():
    # a guard that the strategies above are not trivially valid: some mutations must be refused
    bad = [VALID.replace("\n0,", "\n9,", 1), VALID[: len(VALID) // 2], VALID.replace(",31,", ",x,", 1)]
    for text in bad:
        with pytest.raises(DataError):
            parse_csv(text.encode(), "m.csv")
    with pytest.raises(DataError):
        parse_csv(gzip.compress(VALID.encode()), "gz-bytes.csv")  # parse_csv takes text, not gzip
