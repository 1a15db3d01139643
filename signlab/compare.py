"""Runs side by side: the runs table, their curves for the overlays, the axes of a parallel-coordinates
chart, and the brush that filters runs.

Rows are plain dicts (one per run, or one per sweep trial). :func:`axes` turns them into one axis
per setting plus the resulting accuracy: numbers stay numbers, the learning rate and weight
decay go on a log scale, words and on/off settings become categories. A *brush* is a dict
``{column: (low, high)}`` for a number or ``{column: [allowed values]}`` for a category;
:func:`apply_brush` keeps the rows inside every brushed axis and :func:`axes` draws each brush as
the axis's constraint range, so the chart and the table always agree. No Streamlit, no plotly:
:func:`signlab.figures.parallel_coordinates` draws the axes.

Also the run a page starts on (:func:`preferred_run`): for photos, for drawings, to calibrate.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .config import PRESETS, SETTING, SETTINGS
from .errors import SignlabError
from .events import Logged, logged
from .numbers import LEGEND_SEP, finite
from .settings import SEARCHED, changed_from_preset
from .store import ACTIVE, HOLDING, RunState

if TYPE_CHECKING:  # annotations only: the chart's helpers stay free of torch, which runs imports
    from .runs import Run

Brush = dict[str, Any]

# the settings on a log scale (their declaration says: the sweep searches them so), by key or by words
LOG_COLUMNS = tuple(key for s in SETTINGS if s.log_scale for key in (s.name, s.words))


def column_kind(rows: Sequence[dict[str, Any]], col: str) -> str | None:
    """``log``, ``number``, ``category`` or None (no value at all, or only one: nothing to compare)."""
    values = [r.get(col) for r in rows if r.get(col) is not None and r.get(col) == r.get(col)]
    if not values:
        return None
    if all(finite(v) is not None for v in values):
        if col in LOG_COLUMNS and min(values) > 0:
            return "log"
        return "number"
    return "category"


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def categories(rows: Sequence[dict[str, Any]], col: str) -> list[str]:
    """The distinct values of a category column as text, sorted (off before on)."""
    return sorted({_text(r.get(col)) for r in rows if r.get(col) is not None})


def axes(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], brush: Brush | None = None,
         keep: Sequence[str] = ("accuracy",)) -> list[dict[str, Any]]:
    """One axis per column with values: ``{"key", "label", "kind", "values", "range", "tickvals",
    "ticktext", "constraint"}``; ``values`` has one number per row (None where the row has none).

    ``columns`` are (key, label) pairs in axis order; columns without values, or with one value for
    every row, are left out (except those in ``keep``: the result).
    """
    brush = brush or {}
    out = []
    for key, label in columns:
        kind = column_kind(rows, key)
        if kind is None:
            continue
        raw = [r.get(key) for r in rows]
        distinct = {_text(v) for v in raw if v is not None}
        if len(distinct) < 2 and key not in keep:
            continue  # one value for every row: an axis that compares nothing
        axis: dict[str, Any] = {"key": key, "label": label, "kind": kind, "tickvals": None, "ticktext": None,
                                "constraint": None}
        if kind == "category":
            cats = categories(rows, key)
            axis["values"] = [cats.index(_text(v)) if v is not None else None for v in raw]
            axis["range"] = [-0.5, len(cats) - 0.5] if len(cats) > 1 else [-1, 1]
            axis["tickvals"], axis["ticktext"] = list(range(len(cats))), cats
            chosen = brush.get(key)
            if chosen is not None and set(chosen) != set(cats):
                axis["constraint"] = [[i - 0.4, i + 0.4] for i, c in enumerate(cats) if c in set(map(str, chosen))] \
                    or [[-0.45, -0.44]]  # nothing allowed: a sliver below every value
        else:
            log = kind == "log"
            f = (lambda v: math.log10(v)) if log else (lambda v: float(v))
            vals = [f(v) if finite(v) is not None else None for v in raw]
            present = [v for v in vals if v is not None]
            lo, hi = min(present), max(present)
            pad = 0.0 if hi > lo else (abs(lo) * 0.05 or 0.5)
            axis["values"], axis["range"] = vals, [lo - pad, hi + pad]
            if log:  # the values' own span: one value (an axis kept anyway) gets its own tick, not the padding's
                axis["tickvals"], axis["ticktext"] = log_ticks(lo, hi)
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in raw if v is not None) \
                    and len(distinct) <= 12:  # epochs, batch size: their own values, not "1.2, 1.4, ..."
                ticks = spaced(sorted({int(v) for v in raw if v is not None}))
                axis["tickvals"], axis["ticktext"] = [float(t) for t in ticks], [str(t) for t in ticks]
            else:  # weight decay, accuracy: the ends as the values they are, round numbers between
                axis["tickvals"], axis["ticktext"] = linear_ticks(lo, hi, percent="accuracy" in key)
            b = brush.get(key)
            if b is not None:  # widened a little: a brush on one value stays visible and holds its line
                eps = 0.015 * ((hi - lo) or 1.0)
                axis["constraint"] = [f(b[0]) - eps, f(b[1]) + eps]
        out.append(axis)
    return out


def spaced(values: Sequence[float], gap: float = 0.08) -> list[float]:
    """Sorted ``values`` without those closer than ``gap`` of their span to a kept neighbour (the
    ends are always kept): 1, 2, 3 and 50 epochs would write "1", "2", "3" on top of each other."""
    if len(values) < 3:
        return list(values)
    span = values[-1] - values[0]
    kept = [values[0]]
    for v in values[1:-1]:
        if v - kept[-1] >= gap * span and values[-1] - v >= gap * span:
            kept.append(v)
    return kept + [values[-1]]


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks of a log10 axis from ``lo`` to ``hi`` (exponents): its two ends, written as the values
    they are ("0.001", "0.003"), and the powers of ten between them. Only ticks inside the axis:
    plotly draws a tick beyond the range outside the chart (a "1e-2" tick above an axis that ends
    at 0.003 sat over the axis title), and the top run's value was then left without a label."""
    inner = [float(e) for e in range(math.ceil(lo), math.floor(hi) + 1)
             if min(e - lo, hi - e) > 0.15 * max(hi - lo, 1e-9)]  # not crowding an end's label
    vals = sorted({lo, hi, *inner})
    return vals, [f"{10 ** v:.2g}" for v in vals]


def linear_ticks(lo: float, hi: float, percent: bool = False) -> tuple[list[float], list[str]]:
    """Ticks of a linear axis from ``lo`` to ``hi``: its two ends, written as the values they are
    (accuracies to 2 decimals, others to 3 significant digits), and round numbers between them,
    none crowding an end's label. Without ticks of its own, plotly wrote the ends twice: its range
    labels ("0" under the axis) beside its own ticks ("0" at the bottom of the weight decay)."""
    def text(v: float) -> str:
        return (f"{v:.2f}".rstrip("0").rstrip(".") if percent else f"{v:.3g}") or "0"

    if hi <= lo:
        return [float(lo)], [text(lo)]
    raw = (hi - lo) / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    inner = [round(k * step, 12) for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)
             if min(k * step - lo, hi - k * step) > 0.15 * (hi - lo)]
    vals = [float(lo), *inner, float(hi)]
    return vals, [text(v) for v in vals]


def number_bounds(rows: Sequence[dict[str, Any]], col: str) -> tuple[float, float] | None:
    """(min, max) of a numeric column, for a brush slider."""
    vals = [r[col] for r in rows if finite(r.get(col)) is not None]
    return (min(vals), max(vals)) if vals else None


def in_brush(row: dict[str, Any], brush: Brush) -> bool:
    """Whether ``row`` lies inside every brushed axis (a missing value lies outside a brush)."""
    for col, b in brush.items():
        v = row.get(col)
        if isinstance(b, (list, set, frozenset)):
            if v is None or _text(v) not in set(map(str, b)):
                return False
        else:
            lo, hi = b
            if finite(v) is None or not (lo - 1e-12 * abs(lo) <= v <= hi + 1e-12 * abs(hi)):
                return False
    return True


def apply_brush(rows: Sequence[dict[str, Any]], brush: Brush | None) -> list[int]:
    """Indices of the rows inside the brush (all of them when nothing is brushed)."""
    brush = {k: v for k, v in (brush or {}).items() if v is not None}
    return [i for i, r in enumerate(rows) if in_brush(r, brush)]


def active_brush(rows: Sequence[dict[str, Any]], brush: Brush) -> Brush:
    """The brush without the axes it leaves whole (a slider at its full range, every category kept)."""
    out: Brush = {}
    for col, b in brush.items():
        if b is None:
            continue
        if isinstance(b, (list, set, frozenset)):
            if set(map(str, b)) != set(categories(rows, col)):
                out[col] = list(b)
        else:
            bounds = number_bounds(rows, col)
            if bounds is None or b[0] > bounds[0] or b[1] < bounds[1]:
                out[col] = (float(b[0]), float(b[1]))
    return out


def brush_from_ranges(axes_: Sequence[dict[str, Any]], ranges: Sequence[Any]) -> Brush:
    """The brush a user drew on the chart: ``ranges`` holds each axis's constraint range as plotly
    reports it (None, ``[lo, hi]`` or a list of such) in axis units; the brush is in the rows' units."""
    brush: Brush = {}
    for axis, r in zip(axes_, ranges):
        if not r:
            continue
        spans = [r] if finite(r[0]) is not None else [s for s in r if s and len(s) == 2]
        if not spans:
            continue
        if axis["kind"] == "category":
            cats = axis["ticktext"] or []
            brush[axis["key"]] = [c for i, c in enumerate(cats) if any(lo <= i <= hi for lo, hi in spans)]
        else:
            lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
            if axis["kind"] == "log":
                lo, hi = 10.0 ** lo, 10.0 ** hi
            brush[axis["key"]] = (float(lo), float(hi))
    return brush


def snap(values: Sequence[Any], lo: float, hi: float) -> tuple[Any, Any]:
    """The smallest and largest of the sorted distinct ``values`` inside [lo, hi] (a slider's range);
    when none lies inside, the value nearest to the middle, twice."""
    inside = [v for v in values if lo <= v <= hi]
    if inside:
        return inside[0], inside[-1]
    mid = (lo + hi) / 2
    near = min(values, key=lambda v: abs(v - mid))
    return near, near


# (key, axis label): the settings' words come from their declaration (signlab.config)
RUN_COLUMNS: list[tuple[str, str]] = [
    *((name, SETTING[name].words) for name in ("model", "optimizer", "schedule", "lr", "batch_size",
                                               "weight_decay", "augment", "epochs")),
    ("accuracy", "accuracy (%)"),
]
TRIAL_COLUMNS: list[tuple[str, str]] = [*((s.name, s.words) for s in SEARCHED), ("accuracy", "val. accuracy (%)")]


def run_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per run for the parallel coordinates: its settings and its accuracy in percent (test
    accuracy, else the last validation accuracy; None before the first epoch)."""
    rows = []
    for r in runs:
        s = r.summary()
        acc = s.get("test_accuracy") if isinstance(s.get("test_accuracy"), (int, float)) else s.get("val_accuracy")
        rows.append({"run_id": r.id, "name": s.get("name"), "model": s.get("model"), "optimizer": s.get("optimizer"),
                     "schedule": s.get("schedule"), "lr": s.get("lr"), "batch_size": s.get("batch_size"),
                     "weight_decay": _weight_decay(r), "augment": s.get("augment"), "epochs": s.get("epochs"),
                     "accuracy": 100 * acc if isinstance(acc, (int, float)) else None})
    return rows


def _weight_decay(run: Any) -> float | None:
    try:
        return float(run.config.weight_decay)
    except SignlabError:  # an unreadable config (Run.config's RunError) leaves the value out, not the run
        return None


def trial_rows(trials: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweep's trial rows (``signlab.sweep.study_trials``) with the accuracy in percent."""
    return [{**t, "accuracy": 100 * t["value"] if isinstance(t.get("value"), (int, float)) else None}
            for t in trials]


def status_word(summary: dict[str, Any]) -> str:
    """A run's state as the runs table says it: "stopping" between a Stop and the end of the run's
    current batch (the table said "running" after an instructor's Stop, until a rerun)."""
    status = str(summary["status"])
    return "stopping" if summary.get("control") == "stop" and status in HOLDING else status


def watch_key(summaries: Sequence[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """What a page listing runs follows while some of them are queued, training or paused: each such
    run's state word. Epochs are left out: a rerun at each epoch would redraw the page under a
    student typing a new name. Sorted: a listing and the store's rows may order runs differently."""
    return tuple(sorted((s["run_id"], status_word(s)) for s in summaries if str(s["status"]) in ACTIVE))


def runs_table(runs: Sequence["Run"], queue: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per run for the runs table (accuracy in percent, the creation time as a datetime);
    with runs of several owners (an instructor's view), an ``owner`` column after the name.
    ``queue``: every waiting run's id in the order they will start (``RunStore.queue``), for a queued
    run's place in its status ("queued: 2 of 5"); an instructor saw a class's queue as a column of
    "queued", and a student could not tell whether their run was next."""
    from .runs import display_name  # here: the module stays free of torch; these rows are of Runs anyway
    place = {rid: k for k, rid in enumerate(queue, 1)}
    rows = []
    summaries = [r.summary() for r in runs]
    owners = len({s.get("owner") for s in summaries}) > 1
    for r, s in zip(runs, summaries):
        created = s.get("created")
        rows.append({
            "name": display_name(r.id, s["name"]), **({"owner": s.get("owner") or ""} if owners else {}),
            "model": s["model"], "preset": _preset_word(s),
            "networks": s.get("ensemble") or 1,
            "status": f"queued: {place[r.id]} of {len(place)}" if status_word(s) == "queued" and r.id in place
            else status_word(s),
            "epochs": _epochs_word(s),
            "batch": s["batch_size"], "lr": s["lr"], "optimizer": s["optimizer"],
            "schedule": None if s["schedule"] is None else SETTING["schedule"].option_text(s["schedule"]),
            "augment": bool(s["augment"]) if s["augment"] is not None else None,
            "test accuracy": 100 * s["test_accuracy"] if isinstance(s["test_accuracy"], (int, float)) else None,
            "training time": s["train_seconds"] if isinstance(s["train_seconds"], (int, float)) else None,
            "created": dt.datetime.fromtimestamp(created) if isinstance(created, (int, float)) else None,
        })
    return rows


def _epochs_word(summary: dict[str, Any]) -> Any:
    """The epochs column: done of asked ("1/2"); a calibrated run was adapted in one step, and the
    epochs it holds are its parent's (it read "2/2", as if it had trained them itself)."""
    done, asked = summary["epochs"], summary.get("target_epochs")
    if summary.get("parent"):  # one being made (or that failed) has none yet: not "0 (its parent's)"
        return f"{done} (its parent's)" if done else done
    return f"{done}/{asked}" if asked else done


# the settings a run's summary holds that the runs table shows beside the preset: one that differs
# from its preset's value makes the run "custom", as the Train page calls it (the epochs are left out:
# continuing a run adds epochs without changing its recipe)
_RECIPE = ("model", "batch_size", "lr", "optimizer", "schedule", "augment")


def _preset_word(summary: dict[str, Any]) -> Any:
    """What a run started from: the preset, or "custom (from fast)" where a setting the table shows is
    not the preset's, the Train page's word for it (``train --model logreg`` starts from the fast
    preset, and the table read "fast" beside logreg; then "fast (other model)" where Train said
    "Custom"); a sweep's trial and a calibrated run were made by no preset (their config's default
    word read "fast (other model)" beside both). A network the lecture itself trained (logistic
    regression) under the lecture preset's settings is "lecture"."""
    if summary.get("kind") == "trial":
        return "sweep trial"
    if summary.get("parent"):
        return "calibrated"
    name = summary.get("preset")
    if name not in PRESETS or summary.get("model") is None:
        return name
    # compared as the Train page compares its boxes (settings.changed_from_preset), so the two agree,
    # the lecture's own logistic regression included
    values = {"preset": name, **{k: summary[k] for k in _RECIPE if summary.get(k) is not None}}
    return f"custom (from {name})" if changed_from_preset(values) else name


def short_names(names: Sequence[str]) -> list[str]:
    """Legend names without what sets each run apart (the name before :data:`LEGEND_SEP`), for the
    words under the chart, where the legend beside them already says it; the whole names where the
    short ones would not tell the runs apart."""
    short = [n.split(LEGEND_SEP, 1)[0] for n in names]
    return short if len(set(short)) == len(short) else list(names)


def legend_names(runs: Sequence["Run"]) -> list[str]:
    """Each run's unique name in the overlays' legends (and in the words beside them): its display
    name, and the settings in which it differs from the others."""
    from .runs import display_name  # here: the module stays free of torch
    out: list[str] = []
    differs = differing_settings(runs)
    common = _most_common_words(differs)
    for r, differ in zip(runs, differs):
        name = display_name(r.id, r.name, with_model=True)  # an unnamed run: when it started, and its model
        words = _legend_words(differ, name, common)
        if words:  # four runs of one model read "5 Dec 19:20:06 (s2net)" alike in the legend
            name = f"{name}{LEGEND_SEP}{words}"
        if name in out:
            name = f"{name} ({r.id})"
        out.append(name)
    return out


def curve_series(runs: Sequence["Run"]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """The epoch and batch records of each run, keyed by its legend name (for the overlays)."""
    epochs: dict[str, list[dict[str, Any]]] = {}
    batches: dict[str, list[dict[str, Any]]] = {}
    for r, name in zip(runs, legend_names(runs)):
        records = r.metrics()
        epochs[name] = logged(records, Logged.EPOCH)
        batches[name] = logged(records, Logged.BATCH)
    return epochs, batches


def distinct_format(values: Sequence[float], log: bool = False) -> Any:
    """How a brush's slider writes the numbers ``values``: ``1.2e-03`` on a log axis, ``0.25`` for
    fractions, ``3`` for whole numbers, with as many more digits as it takes to tell every value
    apart. Two sweep trials' learning rates both read "1.2e-03": the slider showed one label twice,
    and a brush set to the lower one kept the other trial."""
    if not log and not any(isinstance(v, float) and not float(v).is_integer() for v in values):
        return lambda v: f"{v:g}"
    first = 1 if log else 2
    for digits in range(first, first + 8):
        spec = f".{digits}{'e' if log else 'f'}"
        if len({format(v, spec) for v in values}) == len(set(values)):
            break
    return lambda v: format(v, spec)


def keep_colors(picked: Sequence[str], before: dict[str, int], n: int) -> dict[str, int]:
    """Each picked run's colour, as an index into a palette of ``n``: a run keeps the colour it had
    ``before`` while it stays picked, and a new pick takes the first colour no picked run has.

    Colours by place in the pick list changed every later run's colour when an earlier one was
    removed, so the line a student had been following turned red. With more runs than colours a new
    pick shares one (the least used, first).
    """
    colors: dict[str, int] = {}
    for run_id in picked:  # kept: one run a colour, the first picked keeping it if ``before`` repeats one
        c = before.get(run_id)
        if isinstance(c, int) and 0 <= c < n and c not in colors.values():
            colors[run_id] = c
    for run_id in picked:
        if run_id not in colors:
            used = list(colors.values())
            colors[run_id] = min(range(n), key=lambda c: (used.count(c), c))
    return {run_id: colors[run_id] for run_id in picked}


SHOWN_DIFFERENCES = 2  # settings named in a legend entry, at most: half a 1,280-px page cut a third off


def differing_settings(runs: Sequence["Run"]) -> list[dict[str, str]]:
    """For each run, the settings in which the compared runs differ, as {name: words}
    ({"optimizer": "optimizer muon", "lr": "lr 0.05"}), in the settings' order: what tells
    a student which line is which when runs are compared one setting at a time. Empty for a single
    run, for runs of the same settings and for an unreadable config."""
    configs: list[dict[str, Any] | None] = []
    for r in runs:
        try:
            configs.append(r.config.to_dict())
        except SignlabError:
            configs.append(None)
    readable = [c for c in configs if c is not None]
    if len(readable) < 2:
        return [{} for _ in runs]
    keys = [s for s in SETTINGS if len({repr(c.get(s.name)) for c in readable}) > 1]

    def word(value: Any) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, float):  # 3 digits: a sweep's 0.000120113 was cut off in the legend
            return f"{value:.3g}"
        return "none" if value is None else str(value)

    # the settings' short names ("lr", "batch size"), as the Train page's run line says them: the
    # labels ("learning rate") made entries too long for the legend
    return [{} if c is None else {s.name: f"{s.name.replace('_', ' ')} {word(c.get(s.name))}" for s in keys}
            for c in configs]


def _most_common_words(differs: Sequence[dict[str, str]]) -> dict[str, str]:
    """For each setting, the words most of the compared runs share ("seed 0"), where one value is
    shared by more runs than any other."""
    out = {}
    for key in {k for d in differs for k in d}:
        counts = sorted(((sum(d.get(key) == w for d in differs), w) for w in {d[key] for d in differs if key in d}),
                        reverse=True)
        if counts[0][0] > 1 and (len(counts) == 1 or counts[0][0] > counts[1][0]):
            out[key] = counts[0][1]
    return out


def _legend_words(differ: dict[str, str], name: str, common: dict[str, str] | None = None) -> str:
    """The differences said beside a run's name, at most SHOWN_DIFFERENCES of them, those that set the
    run apart from most of the others first (of four runs differing in lr, optimizer and seed, two
    read "lr 0.003, optimizer adamw and 1 more" alike: the hidden one was their seed); its model
    ("model s2net") is left out where the name already shows it ("5 Dec 19:20:06 (s2net)")."""
    items = [(k, w) for k, w in differ.items() if not (k == "model" and name.endswith(f"({w.split(' ', 1)[1]})"))]
    common = common or {}
    items.sort(key=lambda kw: kw[0] not in common or common[kw[0]] == kw[1])  # stable: apart first
    parts = [w for _, w in items]
    more = len(parts) - SHOWN_DIFFERENCES
    return ", ".join(parts[:SHOWN_DIFFERENCES]) + (f" and {more} more" if more > 0 else "")


# settings that change nothing a run learns: two runs apart only in these and the seed are "one
# setting" for seed_luck (device and threads change the rounding, so they count as settings)
_NOT_A_RECIPE = ("seed", "log_every")
LUCK_LIMIT = 1.0  # points: see seed_luck
LUCK_FLOOR = 0.1  # points: seeds closer than this are not quoted as "how far luck moved a run"


def seed_luck(runs: Sequence["Run"], names: Sequence[str] | None = None) -> dict[str, Any] | None:
    """What the seed alone may explain among compared finished runs, or None: a student compared
    four optimizers with one run each and read a 0.04-point lead as the better optimizer.

    Runs are grouped by their settings (config.SETTINGS, as the legend compares them) apart from the
    seed; accuracies are test accuracies in points. ``luck``: the widest spread of a group with two or
    more seeds, ``(spread, names)``, where it is at least LUCK_FLOOR, or None; ``close``: the closest
    pair of runs of other settings, ``(gap, name, name)``, where it is under that spread or under
    LUCK_LIMIT, whichever is larger, or None. Names are the legend's: ``names`` where the caller has
    them (the Runs page's curve_series keys; each name costs a read of every run's config), else
    :func:`legend_names`. Runs
    without a test accuracy or a readable config, and calibrated runs (adapted to photos, their
    parent's config kept), are left out; None when there is nothing to say."""
    recipe = [s.name for s in SETTINGS if s.name not in _NOT_A_RECIPE]
    entries: list[tuple[str, float, str, Any]] = []  # (name, points, settings, seed)
    for r, name in zip(runs, legend_names(runs) if names is None else names):
        row = r.summary()
        acc = row.get("test_accuracy")
        try:
            cfg = r.config.to_dict()
        except SignlabError:
            continue
        if row.get("parent") or not isinstance(acc, (int, float)) or not math.isfinite(acc):
            continue
        entries.append((name, 100 * float(acc), repr([cfg.get(k) for k in recipe]), cfg.get("seed")))
    groups: dict[str, list[tuple[str, float, str, Any]]] = {}
    for e in entries:
        groups.setdefault(e[2], []).append(e)
    # runs of one setting and one seed are the same run twice (same_curves says so), not luck
    spreads = [(max(e[1] for e in g) - min(e[1] for e in g), [e[0] for e in g])
               for g in groups.values() if len({e[3] for e in g}) > 1]
    luck = max(spreads) if spreads and max(spreads)[0] >= LUCK_FLOOR else None
    pairs = sorted((abs(x[1] - y[1]), x[0], y[0]) for i, x in enumerate(entries) for y in entries[i + 1:]
                   if x[2] != y[2])
    # one point: wider than the seeds of one setting moved a run in the benchmarks (the fast preset in
    # bf16, seeds 0-9: 99.67-100.00%, docs/speed-research.md Part 25; logreg's two seeds in a walk: 0.78),
    # narrower than a setting that matters (the fast preset with SGD at 0.003: 93.95%, at 0.05: 99.71%)
    limit = max(luck[0] if luck else 0.0, LUCK_LIMIT)
    close = pairs[0] if pairs and pairs[0][0] < limit else None
    return {"luck": luck, "close": close} if luck or close else None


def same_curves(epochs: dict[str, list[dict[str, Any]]], batches: dict[str, list[dict[str, Any]]],
                metric: str) -> list[list[str]]:
    """Groups of two or more runs whose curves are the same (the epoch ``metric`` and the step loss,
    to 4 decimals): they draw one line on top of another, and three runs picked read as one."""
    groups: dict[tuple, list[str]] = {}
    for name, records in epochs.items():
        ys = tuple(round(float(r[metric]), 4) for r in records if isinstance(r.get(metric), (int, float)))
        losses = tuple(round(float(b["loss"]), 4) for b in batches.get(name, ())
                       if isinstance(b.get("loss"), (int, float)))
        if ys or losses:
            groups.setdefault((ys, losses), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


# --------------------------------------------------------------------------- the run a page starts on
def _completed(r: "Run") -> bool:
    return r.has_weights() and r.summary()["status"] == RunState.COMPLETED


def _accuracy(r: "Run") -> float:
    acc = r.summary().get("test_accuracy")
    return float(acc) if isinstance(acc, (int, float)) else -1.0


_CALIBRATED = "the newest calibrated run, adapted to your own photos"
_BEST = "your best run by test accuracy"
_NOT_YOURS = {_CALIBRATED: "the newest calibrated run you can see, adapted to its owner's photos",
              _BEST: "the best run you can see by test accuracy"}


def preferred_run(available: list["Run"], purpose: str,
                  mine: Callable[["Run"], bool] | None = None) -> tuple["Run | None", str]:
    """The default run for ``purpose`` ("photo", "drawing" or "calibrate") and, in words, why it was chosen.

    Photos: the newest completed calibrated run, else the newest completed run trained on photo-like
    images (``augment_photo``: the robust preset's, or any run with the same setting), else the user's
    best run. Drawings (and Evaluate, Kernels and Map, whose pickers ask
    for the same): the best completed run by test accuracy (ties: the newest), so a weak sweep trial
    that happens to be newest is not the default; a calibrated run only when there is no other (one
    adapted to a student's photos became the default for drawings and for the dataset's map, by a
    test accuracy its dataset replay had lifted). "calibrate": as for photos, but a run already
    calibrated only when there is no other (the Calibrate page started on one, and a student
    calibrated the calibrated run again without meaning to).

    ``mine``: whether a run is the user's own. Their own runs are chosen from first; a classmate's
    (shown read-only), or a student's to an instructor, only when they have none, and then the words
    say so (a classmate's best run was the default, called "your best run").
    """
    if mine is not None:
        own = [r for r in available if mine(r)]
        if own or not available:
            return preferred_run(own, purpose)
        run, why = preferred_run(available, purpose)
        return run, f"{_NOT_YOURS.get(why, why)} (you have none of your own yet)"
    if not available:
        return None, ""
    done = [r for r in available if _completed(r)]
    # read once: each look may read the run's row and a file, and the pickers ask on every rerun
    calibrated = {r.id for r in available if r.parent}
    if purpose in ("calibrate", "drawing"):  # calibrated runs only when there is nothing else, finished or not
        plain = [r for r in available if r.id not in calibrated]
        if plain:
            available, done = plain, [r for r in done if r.id not in calibrated]
    if purpose == "photo":
        for r in done:
            if r.id in calibrated:
                return r, _CALIBRATED
    if purpose in ("photo", "calibrate"):
        for r in done:
            try:
                if r.config.augment_photo:  # trained on photo-like images (the robust preset), as Classify reads it
                    # not "of the robust preset": any run with the setting is taken
                    return r, "the newest run trained for photos (on photo-like images)"
            except SignlabError:
                continue
    pool = done or available
    best = max(pool, key=lambda r: (_accuracy(r), -pool.index(r)))
    if _accuracy(best) < 0:  # no test accuracy anywhere: the newest finished run (a stopped trial was taken)
        return (done or available)[0], "the newest run"
    return best, _BEST
