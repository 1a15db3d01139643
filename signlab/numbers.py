"""How the app writes numbers for people to read, and reads whole numbers and user text from outside.

Percentages follow one rule, shared by the pages, the guided tour and the view models
(``views.percent``): rounding never makes a figure that is short of 100% read "100%" (or one above
0% read "0%"). A letter with one mistake in 248 test images is at 99.6%, and a run with one mistake
in 7,172 at 99.99%; a student who reads 100% beside "1 mistake" is told two different things.
"""
from __future__ import annotations

import math
import re
from numbers import Real
from statistics import median
from typing import Any, Iterable

WIDEST = 2  # the decimals a figure is widened to, so as not to read 100% (or 0%), unless more are asked


def percent_text(fraction: float, digits: int = 1) -> str:
    """``fraction`` (0..1) as ``"99.6%"`` with ``digits`` decimals, more where fewer would round a
    figure short of 100% up to 100% (or one above 0% down to 0%)."""
    p = 100.0 * float(fraction)
    if not math.isfinite(p):
        return f"{p}%"
    d = max(0, digits)
    # widened to two decimals at most (or as many as asked): a model's 0.999998 read "W (99.9998%)",
    # and 1 - 1e-9 "C (100.0000%)"; past that, "over 99.99%" (or "under 0.01%") says as much without
    # false precision. Two, not two more than asked: one probability read "over 99.99%" in Classify's
    # verdict and "over 99.999%" in its top-5 bars and its Why line, asked with 0 and 1 decimals
    most = max(d, WIDEST)
    while d < most and ((p < 100 and round(p, d) >= 100) or (p > 0 and round(p, d) <= 0)):
        d += 1
    if p < 100 and round(p, d) >= 100:
        return f"over {100 - 10 ** -d:.{d}f}%"
    if p > 0 and round(p, d) <= 0:
        return f"under {10 ** -d:.{d}f}%"
    return f"{p:.{d}f}%"


def count_text(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` in the right number: ``"1 photo"``, ``"3 photos"``, ``"1,200 images"``;
    ``plural`` where adding "s" is wrong (``count_text(2, "mouse", "mice")``). A verb that agrees
    with the count ("is"/"are") is the caller's."""
    word = noun if n == 1 else (plural or f"{noun}s")
    return f"{n:,} {word}" if isinstance(n, int) else f"{n} {word}"


def and_list(words: Iterable[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``: words joined as a sentence lists them."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}" if words else ""


DASH = "—"  # a figure not known
LEGEND_SEP = " · "  # between a run's name and what sets it apart, in a legend name (signlab.compare)


def finite(value: Any) -> float | None:
    """A finite number as a float, else None: missing, NaN, infinite, text, a bool, or a 400-digit int
    from an untrusted file. numpy's scalars count (a model's probabilities are float32)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


# control characters (a terminal's escape sequences, a bell), the marks that reorder text on screen, and
# lone surrogates (a shell argument that is not UTF-8 reaches Python as them, and writing one failed)
_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def plain_line(text: Any, limit: int) -> str:
    """User text kept as one plain line (a run's name, a user id): control characters and
    direction marks dropped, runs of spaces collapsed, cut to ``limit`` characters. A name holding
    ``ESC [31m`` recoloured the terminal of an instructor listing runs with ``signlab runs``."""
    return " ".join(_UNSHOWN.sub(" ", str(text)).split())[:limit]


def whole_number(text: str, max_digits: int) -> int | None:
    """``text`` as a whole number when it is 1 to ``max_digits`` ASCII digits, else None. str.isdigit()
    alone lets "²" and "٣" through, and int("²") then raised a ValueError (a traceback for an
    environment variable, a 500 from the live feed)."""
    if not (text.isascii() and text.isdigit()) or len(text) > max_digits:
        return None
    return int(text)


def duration(seconds: float | None, word: str = "about") -> str:
    """"about 40 s", "about 3 min"; a dash when unknown (None, NaN, infinite, not a number). ``word``:
    "roughly" for a guess, "" for a figure already said to be rough ("about 2 min (84 s of it …)")."""
    if isinstance(seconds, bool):
        return DASH
    try:
        s = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return DASH
    if not math.isfinite(s):
        return DASH
    said = f"{max(1, round(s))} s" if s < 90 else f"{round(s / 60)} min"
    return f"{word} {said}" if word else said


def newest_median(rows: Iterable[dict[str, Any]], key: str, least: float = 0.0, limit: int = 5) -> float | None:
    """The median of ``key`` over the first ``limit`` of ``rows`` (newest first) that recorded it as a
    finite number of at least ``least``; None when none did. The pages' measured speeds, overheads
    and t-SNE times: one slow run among five does not move the figure."""
    found: list[float] = []
    for row in rows:
        v = row.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= least:
            found.append(float(v))
            if len(found) == limit:
                break
    return float(median(found)) if found else None


WORD_JOINER = "\u2060"  # zero width, no break: splits a pattern without a visible mark


def md(text: Any) -> str:
    """User text made safe for markdown: a run's name, a link's value. Without this, a name like
    ``[click](http://…)`` or ``![](…)`` would become a link or an image in other users' pages.

    Escapes what makes links, images, HTML, emphasis, code, maths and autolinks; ordinary
    punctuation (``.``, ``-``) stays as it is, so numbers read normally. (``views.md`` and ``ui.md``
    are this; it lives here so any module that writes words for a page can escape what it renders
    as markdown.)

    Escapes alone do not stop a bare address from becoming a link: Streamlit's markdown (remark-gfm)
    finds ``www.``, ``http://`` and ``name@host.tld`` again in the text after the escapes are read,
    so an owner's e-mail address was a mailto link and a run named ``see www.x.com`` a web link on
    other users' pages. An invisible word joiner (U+2060) inside each of those breaks the pattern and
    reads the same (copied from the page, an address keeps it: the price of not being a link).

    ``&`` is escaped so that a character reference (``&#64;``, ``&amp;``) stays the text it is (it
    was read as the character, and made the same links), and what starts a block where the text
    starts a cell (``#``, a leading ``-``, ``+`` or ``1.``) so that a run named ``# big`` is not a
    heading in Home's table.
    """
    escaped = "".join("\\" + ch if ch in "\\`*_{}[]()!<>$~:@&#" else ch for ch in str(text))
    escaped = re.sub(r"^(\s*)([-+=])", r"\1\\\2", escaped)       # - list, + list, = underline
    escaped = re.sub(r"^(\s*\d{1,9})\.", r"\1\\.", escaped)   # 1. ordered list
    out = (escaped.replace("\n", " ")
            .replace("\\@", WORD_JOINER + "\\@")                       # name@host.tld
            .replace("\\://", "\\:" + WORD_JOINER + "//"))              # http://, https://
    return re.sub(r"(?i)(www)\.", lambda m: m.group(1) + WORD_JOINER + "\\.", out)  # www.host, any case


def code(text: Any) -> str:
    """``text`` as a markdown code span, shown exactly as it is: an id, a path. Escapes are not read
    inside a code span, so :func:`md` there showed its backslashes (``seed\\_convnet``); a fence one
    backtick longer than any run of backticks in the text keeps a backtick in it from ending the span."""
    s = str(text).replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""  # CommonMark strips one space each side
    return f"{fence}{pad}{s}{pad}{fence}"
