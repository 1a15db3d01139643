"""Every chart of signlab, as plotly figures built from plain data (no Streamlit here).

Image grids (:func:`tile_grid`) are drawn as one heatmap with NaN gaps between tiles: one trace
instead of a subplot per image keeps a 100-kernel grid fast to draw and to send to the browser.
Figures take numpy arrays and plain dicts; this module imports no torch (checked by import-linter).
"""
from __future__ import annotations

import html
import math
import re
from typing import Any, Sequence

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .config import SETTING
from .hands import HAND_CONNECTIONS
from .labels import LETTERS
from .numbers import LEGEND_SEP, WORD_JOINER, finite, percent_text

TEMPLATE = "plotly_white"
BLUE, ORANGE, GREEN, RED, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7f7f7f"
RUN_COLORS = (BLUE, RED, GREEN, ORANGE, "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", GREY)  # one a run


# Text colours, set on every figure: Streamlit's chart theme writes tick labels and subplot titles
# in a mid grey (#808495, its gray70), faint beside the page's near-black text at 11-12 px
INK, INK_SOFT = "#1b1f24", "#4b5261"  # the app's text colour (.streamlit/config.toml), and ticks


# Plotly's toolbar shows on hover over a chart's top right corner. With its nine buttons (about 230
# px) it covered the titles of the small charts (Classify's "What the model sees (28x28)"), so each
# figure keeps only the buttons that do something useful on it. An image keeps the download: a
# zoom box on a 28x28 picture or a grid of kernels shows nothing new.
ZOOM_EXTRAS = ("zoomin", "zoomout", "autoscale")  # zoom (drag a box) and reset do the same, with fewer buttons
SELECTIONS = ("select", "lasso")
IMAGE_TOOLS = ("zoom", "pan", "resetscale", *ZOOM_EXTRAS, *SELECTIONS)  # all but "toimage"


def _layout(fig: go.Figure, height: int = 360, remove: Sequence[str] = SELECTIONS, **kw: Any) -> go.Figure:
    fig.update_layout(template=TEMPLATE, height=height, margin=dict(l=10, r=10, t=40, b=10), **kw)
    return _ink(fig, remove)


def _ink(fig: go.Figure, remove: Sequence[str] = SELECTIONS) -> go.Figure:
    """Dark text: titles, axis titles and subplot titles in INK, ticks in INK_SOFT. A colour a figure
    set itself (the Map's letter labels, a heatmap's cell numbers) is kept.

    Also trims the toolbar: ``remove`` names the buttons to drop besides the extra zooms (by default
    the selections: only the Map and the confusion matrix select by dragging).
    """
    fig.update_layout(modebar_remove=sorted({*ZOOM_EXTRAS, *remove}))
    if fig.layout.title.font.color is None:
        fig.update_layout(title_font_color=INK)
    if fig.layout.legend.font.color is None:
        fig.update_layout(legend_font_color=INK)
    fig.update_xaxes(tickfont_color=INK_SOFT, title_font_color=INK)
    fig.update_yaxes(tickfont_color=INK_SOFT, title_font_color=INK)
    for note in fig.layout.annotations:
        if note.font.color is None:
            note.font.color = INK
    return fig


# a tick for every letter: on a crowded category axis plotly labels only every second or third
# (A C E G ...), which on the confusion matrix left half its columns unnamed
EVERY_LETTER = dict(tickmode="array", tickvals=list(LETTERS), ticktext=list(LETTERS))


def class_counts(train: np.ndarray, test: np.ndarray) -> go.Figure:
    """Images per letter in train and test, side by side."""
    fig = go.Figure([go.Bar(name="train", x=list(LETTERS), y=train, marker_color=BLUE),
                     go.Bar(name="test", x=list(LETTERS), y=test, marker_color=ORANGE)])
    fig.update_layout(barmode="group", xaxis_title="letter", yaxis_title="images", legend=dict(orientation="h", y=1.1))
    fig.update_xaxes(**EVERY_LETTER)
    return _layout(fig, 320)


# --------------------------------------------------------------------------- training curves
def smooth(values: Sequence[float]) -> np.ndarray:
    """A centred moving mean: each point averaged with up to ``n // 40`` neighbours on each side, the
    window shrinking symmetrically at the ends (the last point is its own value), non-finite points
    left out.

    Why centred: the exponential average drawn before lagged about ten logged points, so while the
    loss fell fast its "smoothed" line sat far above every step's loss (2.2 against 1.4 at step 50 of
    a fast run) and read as another quantity. Each logged loss is already the mean of the steps since
    the last one, so a narrow window is enough.
    """
    y = np.asarray(values, dtype=float)
    n = len(y)
    if n == 0:
        return y.copy()
    ok = np.isfinite(y)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(n)
    h = np.minimum(np.minimum(i, n - 1 - i), max(1, n // 40))
    lo, hi = i - h, i + h + 1
    count = ccnt[hi] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[hi] - csum[lo]) / np.maximum(count, 1), np.nan)


def _downsample(xs: np.ndarray, ys: np.ndarray, max_points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    if len(xs) <= max_points:
        return xs, ys
    idx = np.linspace(0, len(xs) - 1, max_points).astype(int)
    return xs[idx], ys[idx]


LOSS_TITLE, LOSS_HEIGHT = "Training loss per step", 320


def loss_lines(batches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The loss chart's two lines, as plain data: step loss (faint) and its smoothed line.

    Each: ``x``, ``y`` (lists; None for a non-finite loss, drawn as a gap), ``name``, ``color``,
    ``width``, ``opacity``. :func:`loss_curve` draws them with plotly and :func:`live_loss_spec`
    hands them to the live canvas, so both charts show the same points.
    """
    steps = np.array([b["step"] for b in batches], dtype=float)
    loss = np.array([b["loss"] for b in batches], dtype=float)
    if not len(steps):
        return []
    sx, sy = _downsample(steps, loss)
    smoothed = _downsample(steps, smooth(loss))[1]

    def line(y: np.ndarray, name: str, width: int, opacity: float) -> dict[str, Any]:
        return {"x": sx.tolist(), "y": [float(v) if np.isfinite(v) else None for v in y], "name": name,
                "color": BLUE, "width": width, "opacity": opacity}

    return [line(sy, "step loss", 1, 0.35), line(smoothed, "smoothed", 3, 1.0)]


REPLAY_FRAMES, REPLAY_FRAME_MS, REPLAY_POINTS = 40, 75, 300  # about 3 s; points a line in each frame but the last


def loss_curve(batches: Sequence[dict[str, Any]], title: str = LOSS_TITLE, replay: bool = False) -> go.Figure:
    """Step loss (faint) and its smoothed line, from the run log's batch records.

    ``replay``: a **▶ Replay** button that draws the lines again step by step, in about 3 s, on
    axes fixed to the whole run (plotly frames, played in the browser). A 2-epoch logistic
    regression trains in 2-3 s here, faster than the page's first poll, so a student who pressed
    Start never saw its loss fall; the replay shows it falling. Each frame but the last holds at
    most :data:`REPLAY_POINTS` points a line, so the figure stays small for a long run."""
    lines = loss_lines(batches)
    fig = go.Figure([go.Scatter(x=ln["x"], y=ln["y"], mode="lines", name=ln["name"], opacity=ln["opacity"],
                                line=dict(color=ln["color"], width=ln["width"])) for ln in lines])
    if replay and lines and len(lines[0]["x"]) > 1:
        _add_replay(fig, lines)
    # the legend under the chart, as the other loss charts have it: at the top right (the title is on the
    # left) plotly's toolbar covered it whenever the mouse was over the chart
    fig.update_layout(xaxis_title="step", yaxis_title="cross-entropy loss", legend=dict(orientation="h", y=-0.25))
    loss = [b["loss"] for b in batches]
    if loss and np.ptp(loss) == 0:  # one point: plotly's automatic ticks would read 3.2396674156189
        fig.update_xaxes(range=[0, 2 * max(b["step"] for b in batches)])
        fig.update_yaxes(range=[0, 2 * max(float(max(loss)), 1e-3)])
    return _layout(fig, LOSS_HEIGHT, title=title)


def _add_replay(fig: go.Figure, lines: list[dict[str, Any]]) -> None:
    """:func:`loss_curve`'s replay: frames of the lines' first points, and the button that plays them."""
    n = len(lines[0]["x"])
    ys = [y for ln in lines for y in ln["y"] if y is not None]
    top = max(ys) if ys else 1.0
    # fixed axes: a frame's few points must not rescale the chart, and the last frame is the chart as drawn
    fig.update_xaxes(range=[lines[0]["x"][0], lines[0]["x"][-1]])
    fig.update_yaxes(range=[0, 1.05 * top])
    frames = []
    for k in np.unique(np.linspace(2, n, REPLAY_FRAMES).astype(int)):
        keep = np.unique(np.linspace(0, k - 1, min(k, REPLAY_POINTS)).astype(int)) if k < n else np.arange(n)
        frames.append(go.Frame(data=[go.Scatter(x=[ln["x"][i] for i in keep], y=[ln["y"][i] for i in keep])
                                     for ln in lines]))
    fig.frames = frames
    play = dict(frame=dict(duration=REPLAY_FRAME_MS, redraw=False), transition=dict(duration=0), fromcurrent=False,
                mode="immediate")
    # beside the legend, under the chart: at the top right plotly's toolbar covers it whenever the
    # mouse is over the chart, and takes the click
    fig.update_layout(updatemenus=[dict(type="buttons", showactive=False, x=1, xanchor="right", y=-0.25,
                                        yanchor="top", pad=dict(t=0, r=0),
                                        buttons=[dict(label="▶ Replay", method="animate", args=[None, play])])])


def live_loss_spec(batches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`loss_curve` as plain data for the live canvas chart (``assets/live_chart.js``).

    The polling Train page draws this while the run trains (``signlab.ui.live_chart``): the same
    lines, titles and height, without building a plotly figure on every poll.
    """
    return {"title": LOSS_TITLE, "xTitle": "step", "yTitle": "cross-entropy loss", "height": LOSS_HEIGHT,
            "traces": loss_lines(batches)}


def epoch_curves(epochs: Sequence[dict[str, Any]], val_is_test: bool = False) -> go.Figure:
    """Train and validation loss (left) and accuracy (right) per epoch. ``val_is_test``: the run
    validated on the test set (``val_fraction`` 0, the lecture's way), and its legend says so: the
    Sweeps page's "validation" is a held-out share of the training images, and one word for both
    taught a student two meanings."""
    # the panels' titles name their y axes: a y-axis title on the right panel sat in the gap between
    # the two and was drawn over the loss panel in the Train page's two thirds of a 1,280-px window
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss per epoch", "Accuracy per epoch (%)"))
    e = [r["epoch"] for r in epochs]
    # one legend entry per line style (train, validation): the titles say which panel is loss and
    # which accuracy; four entries in two styles read as four lines to find
    val_name = "validation (the test set)" if val_is_test else "validation"
    for key, name, color, dash in (("train", "train", BLUE, None), ("val", val_name, ORANGE, "dash")):
        fig.add_trace(go.Scatter(x=e, y=[r[f"{key}_loss"] for r in epochs], name=name, legendgroup=key,
                                 mode="lines+markers", line=dict(color=color, dash=dash)), 1, 1)
        fig.add_trace(go.Scatter(x=e, y=[100 * r[f"{key}_accuracy"] for r in epochs], name=name, legendgroup=key,
                                 showlegend=False, mode="lines+markers", line=dict(color=color, dash=dash),
                                 cliponaxis=False), 1, 2)  # a marker at 100% on the axis's top, drawn whole
    fig.update_xaxes(title_text="epoch", dtick=1)
    # a floor under each axis's span: after one epoch the loss axis ran from 2.1210 to 2.1215, and two
    # near-equal points (train, validation) looked far apart
    losses = [r[f"{k}_loss"] for r in epochs for k in ("train", "val")
              if finite(r.get(f"{k}_loss")) is not None]
    accs = [100 * r[f"{k}_accuracy"] for r in epochs for k in ("train", "val")
            if finite(r.get(f"{k}_accuracy")) is not None]
    if losses:
        fig.update_yaxes(range=_span_at_least(losses, max(0.1, 0.2 * max(losses))), row=1, col=1)
    if accs:
        fig.update_yaxes(range=_span_at_least(accs, 2.0, top=100), row=1, col=2)  # a tick of 100.5% read as a bug
    # the legend under the axis titles, with room kept for it: at y=-0.25 it sat on the "epoch" title in
    # a window of 820 px
    fig = _layout(fig, 340, legend=dict(orientation="h", yanchor="top", y=-0.3, xanchor="center", x=0.5))
    return fig.update_layout(margin_b=70)


def _span_at_least(values: Sequence[float], span: float, top: float | None = None) -> list[float] | None:
    """An axis range around ``values`` at least ``span`` wide (None: plotly's own, when they spread
    wider), kept under ``top`` and above 0 where it can be."""
    lo, hi = min(values), max(values)
    if hi - lo >= span:
        return None
    mid = (lo + hi) / 2
    lo, hi = mid - span / 2, mid + span / 2
    if lo < 0:  # kept above 0, and still ``span`` wide
        lo, hi = 0.0, span
    if top is not None and hi > top:
        lo, hi = max(0.0, lo - (hi - top)), top
    pad = 0.05 * (hi - lo)  # a marker on the edge is drawn whole
    return [lo - pad if lo > 0 else lo, hi + pad if top is None or hi < top else hi]


def plain(text: Any) -> str:
    """A student's text (a run's name) as plotly shows it literally: plotly renders a subset of HTML
    in legends, titles and hover labels (``<b>``, ``<a href>``), so ``<`` and ``&`` are escaped."""
    return html.escape(str(text), quote=False)


def template_text(text: Any) -> str:
    """A student's text inside a plotly ``hovertemplate``: :func:`plain`, and each ``%{`` broken by an
    invisible word joiner, since plotly fills ``%{y:.1f}`` in the template (a run so named hovered
    with its own numbers in its name)."""
    return plain(text).replace("%{", "%" + WORD_JOINER + "{")


LEGEND_CHARS = 46  # the longest legend entry of the runs' overlays: two share a 1280-px page's width
OWN_LEAST, OWN_MIN = 12, 20  # a run's own name keeps at least 12 characters, 20 once what sets it apart is cut


def _cut_at_word(text: str, room: int) -> str:
    """``text`` cut to at most ``room`` characters, at a word where that keeps half of them."""
    if len(text) <= room:
        return text
    cut = text[:room]
    if text[room:room + 1] != " " and " " in cut[room // 2:]:
        cut = cut[:cut.rfind(" ")]
    cut = re.sub(r",? and \d+$", "", cut)  # "… and 9 more" cut to "and 9…" counted nothing
    return cut.rstrip(" ,:;·")


# an unnamed run's name, when it started and its model (runs.display_name): "6 Dec 15:06:12 (seed_convnet)"
_STARTED = re.compile(r"^(?P<day>\d{1,2} [A-Z][a-z]{2}) (?P<hm>\d\d:\d\d):\d\d(?P<model> \([^()]+\))$")


def legend_label(name: str, limit: int = LEGEND_CHARS) -> str:
    """A run's legend name (:func:`signlab.compare.legend_names`) cut to ``limit`` characters: plotly
    does not wrap a legend entry, and a tour run's name with what sets it apart ran off the chart's
    right edge. The run's own name gives way first, down to ``OWN_LEAST`` characters and keeping a
    " (2)" that tells two runs of one name apart; where that is not enough, it keeps ``OWN_MIN`` and
    what sets it apart (after ``LEGEND_SEP``) is cut at its end. An unnamed run's name drops its
    seconds, then its day, and keeps its model whole: cut like any name, "6 Dec 15:06:12
    (seed_convnet)" became "6 Dec 15:06…", and two runs of two models read alike (the model is not
    among what sets them apart, since their names say it). The whole name is in the hover."""
    if len(name) <= limit:
        return name
    own, sep, apart = name.partition(LEGEND_SEP)
    if m := _STARTED.match(own):
        for own in (f"{m['day']} {m['hm']}{m['model']}", f"{m['hm']}{m['model']}"):
            if len(own) + len(sep) + len(apart) <= limit:
                return own + sep + apart
        if len(apart) > limit - len(own) - len(sep):
            apart = _cut_at_word(apart, limit - len(own) - len(sep) - 1) + "…"
        return own + sep + apart
    suffix = m.group(0) if (m := re.search(r" \(\d+\)$", own)) else ""
    room = limit - len(sep) - len(apart)
    room = room if room >= OWN_LEAST else OWN_MIN  # what sets it apart leaves too little: it is cut too
    if len(own) > room:
        own = _cut_at_word(own[:len(own) - len(suffix)], room - len(suffix) - 1) + "…" + suffix
    room = limit - len(own) - len(sep)
    if len(apart) > room:
        apart = _cut_at_word(apart, room - 1) + "…"
    return own + sep + apart


def run_color(i: int) -> str:
    """The colour numbered ``i``: the Runs page draws its epoch chart and its loss chart side by side,
    and a run kept two different colours there (plotly's own palette in one, ours in the other), so
    both charts take a run's colour from one number, its place among the runs picked unless the
    caller gives each run its own (:func:`signlab.compare.keep_colors`), drawn or not."""
    return RUN_COLORS[i % len(RUN_COLORS)]


def _color_numbers(series: dict[str, Any], colors: Sequence[int] | None) -> list[int]:
    """One colour number per series: ``colors`` in the series' order, else their places."""
    if colors is None:
        return list(range(len(series)))
    if len(colors) != len(series):
        raise ValueError(f"{len(colors)} colours for {len(series)} runs")
    return list(colors)


def runs_overlay(series: dict[str, list[dict[str, Any]]], metric: str = "val_accuracy",
                 colors: Sequence[int] | None = None) -> go.Figure:
    """One line per run of an epoch metric (``val_accuracy``, ``val_loss``, ``train_loss`` …). A run
    with no epochs draws nothing but keeps its colour (:func:`run_color`; ``colors``: each run's
    colour number, in the series' order)."""
    fig = go.Figure()
    pct = metric.endswith("accuracy")
    scale = 100 if pct else 1
    ys = {name: [scale * r[metric] if finite(r.get(metric)) is not None else None  # no metric: a gap
                 for r in epochs]
          for name, epochs in series.items()}
    for c, (name, epochs) in zip(_color_numbers(series, colors), series.items()):
        if epochs:
            fig.add_trace(go.Scatter(x=[r["epoch"] for r in epochs], y=ys[name], mode="lines+markers",
                                     name=plain(legend_label(name)), line=dict(color=run_color(c)), cliponaxis=not pct,
                                     hovertemplate=f"epoch %{{x}}: %{{y:.{2 if pct else 4}f}}"
                                                   f"<extra>{template_text(name)}</extra>"))
    shown = [y for values in ys.values() for y in values if y is not None]
    label = metric.replace("_", " ").replace("val", "validation")
    fig.update_layout(xaxis_title="epoch", yaxis_title=label + (" (%)" if pct else ""),
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(dtick=1)
    if pct and shown:  # two points at least, as a run's own chart: two seeds 0.38 points apart filled the axis
        fig.update_yaxes(range=_span_at_least(shown, 2.0, top=100))  # markers at 100% unclipped (above)
    return _layout(fig, 340, title=f"{label.capitalize()} per epoch")  # beside a chart per step


def runs_loss_overlay(series: dict[str, list[dict[str, Any]]], colors: Sequence[int] | None = None) -> go.Figure:
    """Smoothed step loss of several runs against the training step (``colors`` as
    :func:`runs_overlay`'s)."""
    fig = go.Figure()
    for c, (name, batches) in zip(_color_numbers(series, colors), series.items()):
        if not batches:  # nothing to draw, but the colour stays the run's (run_color)
            continue
        steps = np.array([b["step"] for b in batches], dtype=float)
        # the live chart's blue first: a run's line turned from blue to plotly's purple, its axis from
        # "cross-entropy loss" to "smoothed loss", the moment it finished on the tour
        fig.add_trace(go.Scatter(x=steps, y=smooth([b["loss"] for b in batches]), mode="lines",
                                 name=plain(legend_label(name)), line=dict(color=run_color(c)),
                                 hovertemplate=f"step %{{x}}: %{{y:.4f}}<extra>{template_text(name)}</extra>"))
    fig.update_layout(xaxis_title="step", yaxis_title="cross-entropy loss (smoothed)",
                      legend=dict(orientation="h", y=-0.25))
    return _layout(fig, 340, title=LOSS_TITLE)  # per step: beside a chart per epoch


# --------------------------------------------------------------------------- evaluation
def confusion_matrix(cm: np.ndarray, normalize: bool = False, selected: tuple[int, int] | None = None) -> go.Figure:
    """The confusion matrix as square markers, one per cell, that a user can click.

    Plotly heatmaps report no selection to Streamlit (streamlit issue 8760), so the matrix is a
    scatter of squares; each point's ``customdata`` is (true index, predicted index).
    """
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    n = cm.shape[0]
    t, p = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    t, p = t.ravel(), p.ravel()
    z = shown[t, p]
    # diagonal in one scale (green), mistakes in another (red), empty cells light grey
    diag_max = max(float(np.diag(shown).max(initial=0)), 1e-9)
    off = shown.copy()
    np.fill_diagonal(off, 0)
    off_max = max(float(off.max(initial=0)), 1e-9)
    colors = []
    for ti, pi, zi in zip(t, p, z):
        if zi == 0:
            colors.append("rgba(235,235,235,1)")
        elif ti == pi:
            a = 0.25 + 0.75 * zi / diag_max
            colors.append(f"rgba(44,160,44,{a:.2f})")
        else:
            a = 0.3 + 0.7 * zi / off_max
            colors.append(f"rgba(214,39,40,{a:.2f})")
    # shares without their "%" (the hover and the page say percent): "35%1%" ran together on a phone,
    # where the 440-px matrix is drawn 12 px a cell
    # a whole row right is a check mark: its "100" was the one share too wide for a cell at 440 px,
    # and the rule that numbers a diagonal whole or not at all then blanked every share of it
    def cell(v: float) -> str:
        if v == 0:
            return ""
        if not normalize:
            return f"{int(v)}"
        return "✓" if v >= 1 else _cell_share(v)

    text = [cell(v) for v in z]
    # the hover names every cell's count, the empty ones' and the ones too small to print theirs too
    rows = np.maximum(cm.sum(1), 1)
    hover = [f"true {LETTERS[ti]}, predicted {LETTERS[pi]}: {int(cm[ti, pi]):,} image{'' if cm[ti, pi] == 1 else 's'}"
             f" ({percent_text(cm[ti, pi] / rows[ti], 0) if cm[ti, pi] else '0%'} of {LETTERS[ti]})"
             + ("<br>click to see them" if cm[ti, pi] else "") for ti, pi in zip(t, p)]
    fig = go.Figure(go.Scatter(
        x=[LETTERS[i] for i in p], y=[LETTERS[i] for i in t], mode="markers+text", text=text,
        textfont=dict(size=8, color="black"), customdata=np.stack([t, p], 1), hovertext=hover,
        marker=dict(symbol="square", size=21, color=colors, line=dict(width=0)),
        hovertemplate="%{hovertext}<extra></extra>"))
    if selected is not None:
        fig.add_trace(go.Scatter(x=[LETTERS[selected[1]]], y=[LETTERS[selected[0]]], mode="markers",
                                 marker=dict(symbol="square-open", size=24, color="black", line=dict(width=2)),
                                 hoverinfo="skip", showlegend=False))
    # the ranges end half a cell past the outer squares: plotly's own padding for the markers left
    # the column letters about 35 px above the grid
    edge = [-0.5, n - 0.5]
    fig.update_xaxes(title="predicted letter", categoryorder="array", categoryarray=list(LETTERS), side="top",
                     showgrid=False, range=edge, **EVERY_LETTER)
    fig.update_yaxes(title="true letter", categoryorder="array", categoryarray=list(LETTERS)[::-1], showgrid=False,
                     range=edge, **EVERY_LETTER)
    return _layout(fig, 640, ("lasso",), showlegend=False, dragmode="select")


def probability_bars(top: Sequence[dict[str, Any]], title: str = "What the model thinks") -> go.Figure:
    """Horizontal bars of the top letters' probabilities (most probable on top)."""
    top = list(top)[::-1]
    fig = go.Figure(go.Bar(x=[100 * t["probability"] for t in top], y=[t["letter"] for t in top], orientation="h",
                           marker_color=[GREY] * (len(top) - 1) + [BLUE] if top else [],
                           text=[percent_text(t["probability"], 1) for t in top],
                           # beside a short bar, inside a long one: with "auto" a bar of 0% kept its number to itself
                           textposition=["inside" if t["probability"] >= 0.2 else "outside" for t in top],
                           cliponaxis=False))
    fig.update_layout(xaxis=dict(range=[0, 100], title="probability (%)"), yaxis=dict(type="category"))
    return _layout(fig, 60 + 36 * len(top), title=title)


def single_image(image: np.ndarray, title: str = "", height: int = 260) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=image, colorscale="gray", showscale=False, zmin=0, zmax=1,
                               hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"))
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return _layout(fig, height, IMAGE_TOOLS, title=title)


def weight_templates(weights: np.ndarray, titles: Sequence[str] = (), cols: int = 8, title: str = "",
                     tile_px: int = 56) -> go.Figure:
    """Weight images (logreg templates, MLP units, conv kernels) in a diverging scale centred on zero.

    One scale for all tiles (red: a bright pixel there raises the output, blue: lowers it), so
    tiles can be compared with each other. A :func:`tile_grid`: show it with ``width="content"``.
    """
    w = np.asarray(weights, dtype=float)
    lim = float(np.abs(w).max()) or 1.0
    fig = tile_grid(w / lim, list(titles), cols=cols, tile_px=tile_px, colorscale="RdBu_r", zmin=-1, zmax=1,
                    title=title)
    if not titles:  # small kernels side by side: grey gaps, or a kernel's near-zero (white) edge ran into the next
        fig.update_layout(plot_bgcolor="#c4c4c4")
    return fig


SWEEP_SCATTER_STATES = ("COMPLETE", "PRUNED", "STOPPED")  # the trials sweep_scatter plots: finished ones


def sweep_scatter_has_points(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether :func:`sweep_scatter` would plot anything: a finished trial with an accuracy. A
    running trial's accuracy so far is in the table, not on the charts (they showed empty axes)."""
    return any(r.get("state") in SWEEP_SCATTER_STATES and r.get("value") is not None for r in rows)


def sweep_scatter(rows: Sequence[dict[str, Any]], param: str, best_number: int | None = None) -> go.Figure:
    """Validation accuracy of a sweep's trials against one hyperparameter (the Sweeps page).

    Completed trials are blue dots, pruned ones grey crosses at the accuracy they were pruned
    with, the best trial's dot on an orange star. A point's hover names every trial at its place.
    The learning rate and weight decay use a log axis.
    """
    def pick(states: tuple[str, ...]) -> list[dict[str, Any]]:
        return [r for r in rows if r.get("state") in states and r.get("value") is not None
                and r.get(param) is not None]

    def xs(rs: list[dict[str, Any]]) -> list[Any]:
        return [("on" if r[param] else "off") if isinstance(r[param], bool) else r[param] for r in rs]

    # one marker covers every other trial at its place (the same setting and accuracy; a category
    # axis makes that common), so a point's hover names them all
    plotted = pick(SWEEP_SCATTER_STATES)
    spots: dict[tuple[str, float], list[int]] = {}
    for r, x in zip(plotted, xs(plotted)):
        spots.setdefault((repr(x), round(100 * r["value"], 2)), []).append(r["number"])

    def trials_at(r: dict[str, Any], x: Any) -> str:  # as the page's table names them: "trial #3"
        numbers = sorted(spots[(repr(x), round(100 * r["value"], 2))])
        if len(numbers) == 1:
            return f"trial #{numbers[0]}" + (", the best" if best_number in numbers else "")
        return "trials " + ", ".join(f"#{n}" for n in numbers) + (
            f" (#{best_number} the best)" if best_number in numbers else "")

    setting = SETTING.get(param)
    label = setting.words if setting is not None else param
    # the hover writes a value as the page's table does (it wrote "lr=260.929μ", plotly's SI prefix)
    x_format = ":.2e" if setting is not None and setting.log_scale else ""
    fig = go.Figure()
    best = [r for r in pick(("COMPLETE",)) if r["number"] == best_number]
    if best:  # drawn first, under the dots: its points ring the best trial's dot and hide no other trial
        fig.add_trace(go.Scatter(x=xs(best), y=[100 * best[0]["value"]], mode="markers", name="best",
                                 marker=dict(size=20, color=ORANGE, symbol="star", line=dict(width=1, color="black")),
                                 hoverinfo="skip"))
    for states, name, marker in ((("COMPLETE",), "completed", dict(size=10, color=BLUE)),
                                 (("PRUNED", "STOPPED"), "pruned or stopped", dict(size=9, color=GREY, symbol="x"))):
        rs = pick(states)
        if rs:
            fig.add_trace(go.Scatter(x=xs(rs), y=[100 * r["value"] for r in rs], mode="markers", name=name,
                                     marker=marker, customdata=[r["number"] for r in rs],
                                     hovertext=[trials_at(r, x) for r, x in zip(rs, xs(rs))],
                                     hovertemplate=f"{label} %{{x{x_format}}}<br>accuracy %{{y:.2f}}%"
                                                   "<extra>%{hovertext}</extra>"))
    values = [r[param] for r in plotted]
    if setting is not None and setting.log_scale and values and min(values) > 0:
        lo, hi = int(np.floor(np.log10(min(values)))), int(np.ceil(np.log10(max(values))))
        hi = max(hi, lo + 1)
        fig.update_xaxes(type="log", range=[lo - 0.05, hi + 0.05], tickvals=[10.0 ** e for e in range(lo, hi + 1)],
                         ticktext=[f"1e{e}" for e in range(lo, hi + 1)])
    elif values and all(isinstance(v, bool) for v in values):
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=["off", "on"])
    elif param in ("batch_size", "width"):
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=sorted(set(values)))
    fig.update_xaxes(title=label)
    fig.update_yaxes(title="validation accuracy (%)")
    return _layout(fig, 280, title=f"Accuracy against {label}", showlegend=False)


SHRINK_ROOM = 0.6  # a tile grid's titles stay clear of the row above down to this share of its size


def tile_grid(images: np.ndarray, titles: Sequence[str] = (), cols: int = 8, tile_px: int = 56,
              colorscale: str = "gray", zmin: float | None = None, zmax: float | None = None,
              zmid: float | None = None, per_tile_scale: bool = False, title: str = "",
              font_size: int = 11) -> go.Figure:
    """An image grid sized to its tiles, with a free band above every row for the tile titles.

    One heatmap with NaN gaps between the tiles; each tile is ``tile_px`` pixels wide and the figure's width and height follow from that, so there is no empty margin
    and titles never cover the row above. Show it with ``st.plotly_chart(fig, width="content")``:
    it keeps its size, shrinking (square pixels kept) only in a narrower container.
    """
    imgs = np.asarray(images, dtype=float)
    n, h, w = imgs.shape
    if per_tile_scale:
        lo = imgs.reshape(n, -1).min(1)[:, None, None]
        hi = imgs.reshape(n, -1).max(1)[:, None, None]
        imgs = (imgs - lo) / np.where(hi - lo > 0, hi - lo, 1)
    if h < 16:  # tiny tiles (3x3 maps, 5x5 kernels): enlarge so the gaps can stay a few pixels wide
        f = int(np.ceil(16 / h))
        imgs = imgs.repeat(f, axis=1).repeat(f, axis=2)
        n, h, w = imgs.shape
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    scale = tile_px / w  # screen pixels per image pixel
    gap_x = max(1, int(np.ceil(6 / scale)))
    # the titles' band holds its text (lines split by <br>) even when a narrower column shrinks the
    # figure to SHRINK_ROOM of its size: the image shrinks, the titles' font does not
    lines = max((str(t).count("<br>") + 1 for t in titles), default=1)
    gap_y = max(gap_x, int(np.ceil((font_size + 6 + 1.2 * font_size * (lines - 1)) / (scale * SHRINK_ROOM)))) if titles else gap_x
    out = np.full((rows * (h + gap_y), cols * (w + gap_x) - gap_x), np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        top = r * (h + gap_y) + (gap_y if titles else 0)
        out[top:top + h, c * (w + gap_x):c * (w + gap_x) + w] = imgs[i]
    if not titles:
        out = out[:rows * (h + gap_y) - gap_y]
    fig = go.Figure(go.Heatmap(z=out, colorscale=colorscale, showscale=False, zmin=zmin, zmax=zmax, zmid=zmid,
                               hoverongaps=False, hovertemplate="%{z:.2f}<extra></extra>"))
    annotations = [dict(x=c * (w + gap_x) + w / 2 - 0.5, y=r * (h + gap_y) + gap_y - 0.5, text=str(t),
                        showarrow=False, yanchor="bottom", font=dict(size=font_size))
                   for i, t in enumerate(list(titles)[:n]) for r, c in [divmod(i, cols)]]
    H, W = out.shape
    top_margin = 34 if title else 4
    # plotly lays out a figure narrower than about 150 px as if it were wider, squeezing one tile to a sliver
    fig.update_layout(annotations=annotations, width=max(int(W * scale) + 8, 160),
                      height=int(H * scale) + top_margin + 4,
                      template=TEMPLATE, margin=dict(l=4, r=4, t=top_margin, b=4),
                      title=dict(text=title, font=dict(size=14)) if title else None)
    fig.update_xaxes(visible=False, range=[-0.5, W - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[H - 0.5, -0.5], scaleanchor="x", constrain="domain")
    return _ink(fig, IMAGE_TOOLS)


# --------------------------------------------------------------------------- classify
def image_with_box(image: np.ndarray, box: tuple[int, int, int, int] | None = None, title: str = "",
                   height: int = 300, max_px: int = 240, dim_outside: bool = True,
                   box_color: str = ORANGE, landmarks: np.ndarray | None = None) -> go.Figure:
    """A grayscale image in [0, 1] (any size) with a square outlined: the crop the model sees, or a patch.

    ``box`` is (left, top, right, bottom) in the image's own pixels, right and bottom exclusive,
    as :func:`signlab.preprocess.crop_box` gives it; it may reach past the image (a padded crop),
    and then the view widens to show all of it. A big image is shrunk for display (block means, at
    most ``max_px`` a side) but keeps its pixel coordinates on the axes. ``landmarks``: the hand
    detector's 21 points, (21, 2+) in the image's pixels (x, y, continuous coordinates), drawn as
    a green hand skeleton.
    """
    img = np.asarray(image, dtype=float)
    h, w = img.shape
    f = max(1, int(np.ceil(max(h, w) / max_px)))
    if f > 1:
        # a side shorter than one block (a 5000x3 photo) is one block, its edge repeated: sliced, the
        # block means' reshape failed there and the page showed an exception
        img = np.pad(img, ((0, max(0, f - h)), (0, max(0, f - w))), mode="edge")
        hh, ww = max(f, h // f * f), max(f, w // f * f)
        img = img[:hh, :ww].reshape(hh // f, f, ww // f, f).mean(axis=(1, 3))
    fig = go.Figure(go.Heatmap(z=img, x0=(f - 1) / 2, dx=f, y0=(f - 1) / 2, dy=f, colorscale="gray", zmin=0,
                               zmax=1, showscale=False, hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"))
    x0, y0, x1, y1 = -0.5, -0.5, w - 0.5, h - 0.5
    if box is not None:
        left, top, right, bottom = (v - 0.5 for v in box)
        if dim_outside:
            shade = dict(type="rect", fillcolor="rgba(0,0,0,0.45)", line=dict(width=0), layer="above")
            for rx0, ry0, rx1, ry1 in ((x0, y0, x1, top), (x0, bottom, x1, y1), (x0, top, left, bottom),
                                       (right, top, x1, bottom)):
                rx0, ry0, rx1, ry1 = max(rx0, x0), max(ry0, y0), min(rx1, x1), min(ry1, y1)
                if rx1 > rx0 and ry1 > ry0:
                    fig.add_shape(x0=rx0, y0=ry0, x1=rx1, y1=ry1, **shade)
        fig.add_shape(type="rect", x0=left, y0=top, x1=right, y1=bottom, line=dict(color=box_color, width=3),
                      layer="above")
        x0, y0, x1, y1 = min(x0, left), min(y0, top), max(x1, right), max(y1, bottom)
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=float)[:, :2] - 0.5  # continuous -> pixel-centre coordinates
        xs: list[float | None] = []
        ys: list[float | None] = []
        for a, b in HAND_CONNECTIONS:
            xs += [pts[a, 0], pts[b, 0], None]
            ys += [pts[a, 1], pts[b, 1], None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=GREEN, width=2), hoverinfo="skip",
                                 showlegend=False, name="hand"))
        fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", marker=dict(color=GREEN, size=5),
                                 hoverinfo="skip", showlegend=False, name="landmarks"))
    fig.update_xaxes(visible=False, range=[x0, x1], constrain="domain")
    fig.update_yaxes(visible=False, range=[y1, y0], scaleanchor="x", constrain="domain")
    return _layout(fig, height, IMAGE_TOOLS, title=title)


def saliency_overlay(image: np.ndarray, heat: np.ndarray, title: str = "", signed: bool = False,
                     zmax: float | None = None, colorbar_title: str = "", height: int = 320) -> go.Figure:
    """A 28x28 input in grey with a heat map on top whose low values are see-through.

    Unsigned maps (Grad-CAM, in [0, 1]) go from transparent to yellow; signed ones (a logistic
    regression template times the input, the drop in probability under occlusion) from blue
    (against the letter) through transparent (zero) to red (for it). ``zmax`` fixes the scale;
    by default it is the largest magnitude in ``heat``.
    """
    heat = np.asarray(heat, dtype=float)
    lim = float(zmax) if zmax else (float(np.abs(heat).max()) or 1.0)
    if signed:
        scale = [[0.0, "rgba(33,102,172,0.9)"], [0.5, "rgba(247,247,247,0)"], [1.0, "rgba(178,24,43,0.9)"]]
        zmin = -lim
    else:
        scale = [[0.0, "rgba(0,0,4,0)"], [0.35, "rgba(187,55,84,0.35)"], [0.7, "rgba(249,142,9,0.7)"],
                 [1.0, "rgba(252,255,164,0.9)"]]
        zmin = 0.0
    fig = go.Figure(go.Heatmap(z=np.asarray(image, dtype=float), colorscale="gray", zmin=0, zmax=1,
                               showscale=False, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=heat, colorscale=scale, zmin=zmin, zmax=lim, showscale=True,
                             colorbar=dict(thickness=10, len=0.85, tickfont_color=INK_SOFT,
                                           title=dict(text=colorbar_title, side="right", font_color=INK)),
                             hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"))
    fig.update_xaxes(visible=False, range=[-0.5, 27.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[27.5, -0.5], scaleanchor="x", constrain="domain")
    return _layout(fig, height, IMAGE_TOOLS, title=title)


def _cell_share(v: float) -> str:
    """A row share short of the whole as a whole percent for a cell, never rounded to 0 or to 100:
    ``<1`` for one that rounds to nothing, ``99`` for 247 of 248 (its "100" beside a row's mistake
    read as a whole row right; three characters is all a cell holds at 440 px, so not "99.6")."""
    return "<1" if v < 0.005 else str(min(99, round(100 * v)))


def confusion_matrix_clickable(cm: np.ndarray, normalize: bool = False, selected: tuple[int, int] | None = None,
                               size: int = 620) -> go.Figure:
    """:func:`confusion_matrix` made for ``st.plotly_chart(..., on_select=..., selection_mode="points")``.

    Streamlit turns a click into a selection only when the figure sets no ``dragmode`` of
    ``select``/``lasso`` (it then uses ``clickmode="event+select"``), so the drag mode is removed
    and the axes are fixed (a drag does nothing). Unselected squares keep their colour after a
    click, the chosen cell is outlined instead, and the plot is square: ``size`` pixels wide and
    high, shown with ``width="content"``.
    """
    fig = confusion_matrix(cm, normalize=normalize, selected=selected)
    fig.layout.dragmode = None
    n = np.asarray(cm).shape[0]
    cell = max(8.0, (size - 70) / n)  # screen pixels per cell, axis labels aside

    def fits(chars: int) -> int:  # the largest font, up to 11 px, whose digits (about 0.6 em each) fit a cell
        return int(min(11, (cell - 3) / (0.6 * max(chars, 1))))

    # Each number as large as its cell allows. The mistakes (off the diagonal, what a student reads)
    # always show, at 7 px at least; when a diagonal count would be under 8 px the whole diagonal is
    # left to the hover and the colour: at 440 px its three digits were 7 px, unreadable, and with
    # only those dropped the two-digit ones (R's 71 beside A's blank 331) read as mistakes.
    text = list(fig.data[0].text)
    sizes = [max(7, fits(len(label))) for label in text]
    hidden = any(fits(len(text[k * n + k])) < 8 for k in range(n))
    if hidden:
        for k in range(n):
            text[k * n + k] = ""
    fig.update_traces(selector=0, marker_size=cell - 1.5, text=text, textfont_size=sizes,
                      unselected=dict(marker=dict(opacity=1), textfont=dict(color="black")),
                      selected=dict(marker=dict(opacity=1)))
    if selected is not None and len(fig.data) > 1:
        fig.data[1].marker.size = cell + 2
    fig.update_xaxes(fixedrange=True, ticklabelstandoff=0, title_standoff=0)
    fig.update_yaxes(fixedrange=True)
    fig.update_layout(width=size, height=size - 10, margin=dict(l=10, r=10, t=10, b=10),
                      modebar_remove=IMAGE_TOOLS,  # its axes are fixed: a zoom does nothing
                      meta={"diagonal_hidden": hidden})  # the page's caption says where those counts are
    return fig


# --------------------------------------------------------------------------- the feature-space map
# One colour per letter: plotly's Dark24 (24 colours that read on white), dealt so that the letters
# students confuse get far-apart hues. In Dark24's own order E, M and N (three fists) were three
# magentas side by side on the Map; now the fists A, E, M, N, S, T are blue, purple, green, orange, teal
# and black, T and X (the commonest mistake) black and olive, G and H brown and violet. Dark24's second
# magenta (#FB00D1) is left out: beside E's violet-magenta and I's pink, X and then C in it could not be
# told apart on the Map; C is cyan instead.
LETTER_COLOURS = {
    "A": "#2E91E5", "B": "#E15F99", "C": "#17BECF", "D": "#0D2A63", "E": "#DA16FF", "F": "#B2828D",
    "G": "#6C4516", "H": "#511CFB", "I": "#FC0080", "K": "#FB0D0D", "L": "#862A16", "M": "#1CA71C",
    "N": "#EB663B", "O": "#778AAE", "P": "#AF0038", "Q": "#750D86", "R": "#A777F1", "S": "#00A08B",
    "T": "#222A2A", "U": "#1616A7", "V": "#B68100", "W": "#DA60CA", "X": "#6C7C32", "Y": "#620042",
}


def letter_colors() -> list[str]:
    """One distinct colour per letter, in the letters' order (LETTER_COLOURS)."""
    return [LETTER_COLOURS[k] for k in LETTERS]


def _thumbnail(image: np.ndarray):
    """A 28x28 image (0..255 or 0..1) as a PIL image, which plotly embeds as a PNG data URI."""
    from PIL import Image

    img = np.asarray(image, dtype=float)
    if img.max() <= 1.0:
        img = img * 255
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L")


LABEL_BOX = (0.042, 0.05)  # a letter's name on the Map, with a few pixels around it, as a share of the plot (560 x 740 px)


def spread_labels(centres: dict[int, tuple[float, float]], ranges: tuple[tuple[float, float], tuple[float, float]],
                  box: tuple[float, float] = LABEL_BOX, rounds: int = 400) -> dict[int, tuple[float, float]]:
    """Where each letter's name goes on the Map so that no two cover each other where the plot has room:
    at its centre when it is free, else pushed the least way apart from the names it overlaps (a weak
    model's map stacked half the alphabet's names in one heap, unreadable). Two dozen names heaped in
    one corner may still leave a pair touching after ``rounds`` rounds. ``ranges``: the plot's
    ((x0, x1), (y0, y1)), in which ``box`` (a name's width and height as shares of the plot) is
    measured. Names that never touch another keep their exact centre; moved ones stay inside the
    plot. Deterministic: ties are broken by the letters' order."""
    keys = sorted(centres)
    if len(keys) < 2:
        return {k: tuple(centres[k]) for k in keys}
    lo = np.array([ranges[0][0], ranges[1][0]], dtype=float)
    span = np.array([ranges[0][1] - ranges[0][0], ranges[1][1] - ranges[1][0]], dtype=float)
    span[~(span > 0)] = 1.0
    size = np.asarray(box, dtype=float)
    start = (np.array([centres[k] for k in keys], dtype=float) - lo) / span  # (K, 2) in plot shares
    pos = start.copy()
    touched = np.zeros(len(keys), dtype=bool)
    # names on one spot start on a small spiral around it (golden angle): pushed along one axis only,
    # a dozen of them made a row that never came apart
    for n, i in enumerate(i for i in range(1, len(keys)) if (np.abs(start[:i] - start[i]) < 1e-9).all(axis=1).any()):
        turn = 2.399963 * (n + 1)
        pos[i] += 0.25 * size * np.sqrt(n + 1) * np.array([np.cos(turn), np.sin(turn)])
    for _ in range(rounds):
        # (K, K, 2): how far each pair's boxes overlap on each axis; a pair covers itself when both are > 0
        apart = np.abs(pos[None, :, :] - pos[:, None, :])
        clash = np.triu(((size - apart) > 1e-9).all(axis=2), k=1)
        if not clash.any():
            break
        for i, j in zip(*np.nonzero(clash)):
            d = pos[j] - pos[i]
            overlap = size - np.abs(d)
            if (overlap <= 1e-9).any():  # an earlier push this round freed them
                continue
            axis = int(np.argmin(overlap / size))  # the way out that is shortest for a name's shape
            sign = np.sign(d[axis]) or (1.0 if (i + j) % 2 else -1.0)  # on one spot: alternate the ways
            step = (overlap[axis] / 2 + 1e-6) * sign
            pos[i, axis] -= step
            pos[j, axis] += step
            touched[[i, j]] = True
        pos[touched] = np.clip(pos[touched], size / 2, 1 - size / 2)
    out = {}
    for k, p, s0 in zip(keys, pos, start):
        # a name that never moved keeps its centre as given (no round trip through the shares)
        out[k] = tuple(centres[k]) if np.allclose(p, s0, atol=1e-9) else tuple(float(v) for v in lo + p * span)
    return out


def feature_map(coords: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray | None = None,
                selected: int | None = None, thumbnails: Sequence[tuple[float, float, np.ndarray]] = (),
                zoom: tuple[tuple[float, float], tuple[float, float]] | None = None,
                centres: dict[int, tuple[float, float]] | None = None, title: str = "",
                height: int = 740, pile: tuple[float, float, str] | None = None) -> go.Figure:
    """Every image as a point, coloured by its true letter; misclassified points ringed in black.

    One WebGL scatter trace per letter (the legend toggles letters); every point's ``customdata``
    is its image index, so a click or a box selection in Streamlit reports which images. A click
    selects (no drag mode: Streamlit reports clicks only then); box and lasso selection stay in the
    mode bar. ``thumbnails`` are (x, y, image) drawn on the map as small pictures (the images of a
    zoomed region, as TensorBoard's projector shows its sprites); ``zoom`` ((x0, x1), (y0, y1))
    sets the visible region; ``centres`` puts each letter's name at its points' median; ``pile``
    (x, y, text) points an arrow at a spot where many images sit on top of each other.
    """
    coords = np.asarray(coords, dtype=float)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    colors = letter_colors()
    conf = np.asarray(confidence, dtype=float) if confidence is not None else None
    fig = go.Figure()
    for k in range(len(LETTERS)):
        idx = np.flatnonzero(y_true == k)
        if not len(idx):
            continue
        text = [f"image {i}: true {LETTERS[k]}, predicted {LETTERS[y_pred[i]]}"
                + (f" ({100 * conf[i]:.0f}%)" if conf is not None else "") for i in idx]
        # a clicked point grows (the page's selection): faded, the others left it a 5-px dot among them
        fig.add_trace(go.Scattergl(x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=LETTERS[k],
                                   marker=dict(size=5, color=colors[k], opacity=0.75), customdata=idx,
                                   selected=dict(marker=dict(size=14, opacity=1.0)),
                                   unselected=dict(marker=dict(opacity=0.2)),
                                   hovertext=text, hovertemplate="%{hovertext}<extra></extra>"))
    wrong = np.flatnonzero(y_true != y_pred)
    if len(wrong):
        # the rings fade as mistakes become common: at 0.55 for every point of a weak model (70%
        # wrong, the lecture ConvNet after one epoch) they painted the map black and hid its colours
        ring = max(0.15, min(0.55, 0.055 * len(y_true) / len(wrong)))
        # and grow where they are few: a strong model's 24 mistakes among 7,172 points were thin 7-px
        # rings a walk could not find on the map
        few = len(wrong) <= 0.02 * len(y_true)
        size, width, ring = (13, 1.8, 0.85) if few else (7, 0.8, ring)
        fig.add_trace(go.Scattergl(x=coords[wrong, 0], y=coords[wrong, 1], mode="markers",
                                   name=f"misclassified ({len(wrong):,})", customdata=wrong,
                                   marker=dict(size=size, symbol="circle-open", color=f"rgba(0,0,0,{ring:.2f})",
                                               line=dict(width=width)),
                                   hovertext=[f"image {i}: true {LETTERS[y_true[i]]}, predicted {LETTERS[y_pred[i]]}"
                                              for i in wrong], hovertemplate="%{hovertext}<extra>wrong</extra>"))
    if selected is not None and 0 <= selected < len(coords):
        fig.add_trace(go.Scatter(x=[coords[selected, 0]], y=[coords[selected, 1]], mode="markers", name="chosen",
                                 marker=dict(size=18, symbol="star", color="gold", line=dict(width=1.5, color="black")),
                                 hoverinfo="skip", customdata=[selected]))
    # the plotted region: the zoom, else the points' extent (the names and the thumbnails are sized in it)
    ranges = zoom if zoom is not None else tuple(
        (float(coords[:, i].min()), float(coords[:, i].max())) if len(coords) else (0.0, 1.0) for i in range(2))
    notes = []
    if centres:
        # each name in a white box ringed in its letter's colour: on a 0.6-white ground the names
        # sank into the clusters of points of the same colour. Names that would cover each other
        # (a weak model's letters share one region) are moved apart, each on a thin line in its
        # colour to where its points are
        placed = spread_labels(centres, ranges)
        for k, (x, y) in centres.items():
            lx, ly = placed[k]
            box = dict(text=f"<b>{LETTERS[k]}</b>", font=dict(size=15, color=colors[k]),
                       bgcolor="rgba(255,255,255,0.9)", bordercolor=colors[k], borderwidth=1, borderpad=1)
            if (lx, ly) == (x, y):
                notes.append(dict(x=x, y=y, showarrow=False, **box))
            else:  # the arrow's head at the letter's points, its tail (and the name) where there is room
                notes.append(dict(x=x, y=y, ax=lx, ay=ly, axref="x", ayref="y", showarrow=True, arrowhead=0,
                                  arrowwidth=1, arrowcolor=colors[k], standoff=0, **box))
    if pile is not None:  # drawn last: above the letters' names
        notes.append(dict(x=pile[0], y=pile[1], text=pile[2], showarrow=True, arrowhead=2, arrowwidth=1.5,
                          arrowcolor=INK, ax=70, ay=-70, font=dict(size=12, color=INK),
                          bgcolor="rgba(255,255,255,0.95)", bordercolor=INK, borderwidth=1, borderpad=3))
    if notes:
        fig.update_layout(annotations=notes)
    if thumbnails:
        span = min(hi - lo for lo, hi in ranges)
        size = span / max(6.0, np.sqrt(len(thumbnails)) * 1.6)
        fig.update_layout(images=[dict(source=_thumbnail(img), x=x, y=y, xref="x", yref="y", sizex=size, sizey=size,
                                       xanchor="center", yanchor="middle", sizing="contain", layer="above",
                                       opacity=0.95) for x, y, img in thumbnails])
    if zoom is not None:
        fig.update_xaxes(range=list(zoom[0]))
        fig.update_yaxes(range=list(zoom[1]))
    fig.update_xaxes(showticklabels=False, title=None, zeroline=False)
    fig.update_yaxes(showticklabels=False, title=None, zeroline=False)
    # the legend in rows under the map: as a column beside it, it took a third of the width in an
    # 820-px window (a 340-px map)
    return _layout(fig, height, (), title=title, legend=dict(itemsizing="constant", font=dict(size=11), orientation="h",
                                                             yanchor="top", y=-0.02, xanchor="left", x=0),
                   clickmode="event+select", hovermode="closest")


# --------------------------------------------------------------------------- the network's health
def _ticks_within(lo: float, hi: float, digits: Sequence[int]) -> int:
    """How many of ``digits`` x 10^k lie between ``lo`` and ``hi``: the ticks a log axis would write."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return sum(lo <= d * 10.0 ** k <= hi for k in range(k0, k1 + 1) for d in digits)


def _size_axis(lines: dict[str, list[float | None]]) -> dict[str, Any]:
    """A gradient- or weight-size panel's y axis: logarithmic, ticks at 1, 2 and 5 of each power of ten
    where the values span under three of them (in a tall panel plotly chose every digit, and "0.9" to
    "0.6" written out in full ran into each other), every digit where 1, 2 and 5 would leave under
    three ticks, and linear where even the digits would leave one (a logistic regression's weights
    after its first epoch, 3.2 to 8: its panel had one tick, "5", and read as having no scale)."""
    values = [v for vs in lines.values() for v in vs if v]
    if not values or max(values) / min(values) >= 1000:
        return dict(type="log")  # plotly's own ticks, at powers of ten
    lo, hi = min(values), max(values)
    for digits, dtick, least in (((1, 2, 5), "D2", 3), (range(1, 10), "D1", 2)):
        if _ticks_within(lo, hi, digits) >= least:
            return dict(type="log", dtick=dtick)
    return dict(type="linear")


def health_charts(series: dict[str, Any], title: str = "", labels: dict[str, str] | None = None) -> go.Figure:
    """Per layer over the steps: gradient size, weight size, dead ReLU units, and clipped logits.

    ``series`` is :func:`signlab.health.health_series`; ``labels`` names its layers in the legend
    (:func:`signlab.health.layer_labels`; a layer without one keeps its module name). Gradient and weight norms use a log axis:
    a vanishing gradient is a fall by orders of magnitude. The fourth panel, the share of scores
    the lecture ConvNet's output ReLU clips to zero, appears only for that model.
    """
    has_logits = series.get("dead_logits") is not None
    # a model with no ReLU (logistic regression) gets one row: its "No ReLU in this model" panel
    # left an empty block of some 200 px
    has_relu = bool(series.get("dead")) or has_logits
    titles = ["Gradient size ‖∇W‖", "Weight size ‖W‖"]  # short: with "per layer" the two ran into each other
    if has_relu:
        titles.append("Dead ReLU units (%)" if series.get("dead") else "No ReLU in this model")
    if has_logits:
        # short: longer ran past its half of the chart, and on a phone "Output scores clipped to 0 (%)"
        # ran into its neighbour's title
        titles.append("Scores clipped to 0 (%)")
    rows = 2 if has_relu else 1
    # Without a fourth panel the dead-unit panel spans the row: the legend in the empty cell beside it
    # needed some 210 px, so on a phone (two cells of 170) it squeezed the panels to 70 px each
    specs = [[{}, {}], [{}, {}] if has_logits else [{"colspan": 2}, None]][:rows]
    fig = make_subplots(rows=rows, cols=2, specs=specs, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=0.2)
    steps = series.get("steps", [])
    palette = list(pc.qualitative.Plotly)
    layer_names = list(series.get("grad", {}))
    labels = labels or {}
    for i, name in enumerate(layer_names):
        color = palette[i % len(palette)]
        shown = labels.get(name, name)
        # a frozen layer (s2net's whitening) has no gradient, so no line on the log axis: the legend says why
        frozen = all(not v for v in series["grad"][name])
        fig.add_trace(go.Scatter(x=steps, y=series["grad"][name], mode="lines",
                                 name=f"{shown} (frozen: no gradient)" if frozen else shown, legendgroup=name,
                                 line=dict(color=color, width=1.5)), 1, 1)
        fig.add_trace(go.Scatter(x=steps, y=series["weight"][name], mode="lines", name=shown, legendgroup=name,
                                 showlegend=False, line=dict(color=color, width=1.5)), 1, 2)
    for i, (name, values) in enumerate(series.get("dead", {}).items()):
        fig.add_trace(go.Scatter(x=steps, y=[None if v is None else 100 * v for v in values], mode="lines",
                                 name=labels.get(name, f"ReLU {name}"),
                                 line=dict(width=2, dash="dot", color=palette[(i + 5) % len(palette)])), 2, 1)
    if has_logits:
        fig.add_trace(go.Scatter(x=steps, y=[None if v is None else 100 * v for v in series["dead_logits"]],
                                 mode="lines", name="clipped logits", line=dict(color=RED, width=3)), 2, 2)
        fig.update_yaxes(range=[0, 100], row=2, col=2)
    # every tick written out ("20", "0.05"): plotly's default on a log axis writes 2 and 5 for the
    # ticks between powers of ten, which read as "2" above "10" and "5 2 1 5 2 0.1"
    for col, key in ((1, "grad"), (2, "weight")):
        fig.update_yaxes(tickformat="~g", **_size_axis(series.get(key, {})), row=1, col=col)
    if has_relu:
        fig.update_yaxes(range=[0, 100], row=2, col=1)
        dead = [v for values in series.get("dead", {}).values() for v in values if v is not None]
        if dead and max(dead) == 0:  # flat lines on the axis read as an empty panel
            fig.add_annotation(text="none dead: every unit fired for some<br>image of every batch", row=2, col=1,
                               xref="x domain", yref="y domain", x=0.5, y=0.5, showarrow=False,
                               font=dict(size=12, color=INK_SOFT))
    fig.update_xaxes(title_text="step", row=rows)
    # The legend (one entry a layer, up to a dozen) took a third of the width at the right, leaving the
    # panels 90 px wide in the Train page's column: it runs in rows under the panels, and the height
    # keeps room for it (three entries a row in the Train page's column)
    # No gap between entries (each layer is a legend group of its own, and plotly put 10 px between groups:
    # on a phone, one entry a row, eleven rows took 320 px from the panels). The height keeps room for
    # the rows of two entries; in a narrower window the rows are more and the panels give up the rest.
    legend = dict(font=dict(size=10), orientation="h", x=0, xanchor="left", y=-0.3 if rows == 1 else -0.16,
                  yanchor="top", tracegroupgap=0)
    shown = sum(tr.showlegend is not False for tr in fig.data)
    height = 340 if rows == 1 else 560 + 20 * int(np.ceil(shown / 2))
    _layout(fig, height + (40 if title else 20), title=title, legend=legend)
    # a title gets a line of its own above the panels' titles (in the default top margin it was
    # drawn over "Gradient size", and at 820 px the two ran into each other); without one, the panels'
    # titles still sit below the line plotly's toolbar takes at the top right (it covered "Weight size")
    return fig.update_layout(margin_t=80 if title else 60)


# --------------------------------------------------------------------------- runs side by side
# Viridis without its two lightest steps: the best runs (near 100%) were drawn pale yellow on white,
# the lines a student looks for first, and could hardly be seen
LINE_SCALE = pc.make_colorscale(pc.sequential.Viridis[:-2])


def parallel_coordinates(axes: Sequence[dict[str, Any]], color_key: str | None = None, title: str = "",
                         height: int = 380) -> go.Figure:
    """One vertical axis per setting and result, one line per run (``signlab.compare.axes``).

    Lines are coloured by the ``color_key`` axis (the accuracy). Each axis's ``constraint`` is drawn
    as its brushed range: lines outside it are greyed out. Rows missing a value sit just below
    the axis's range, so they stay visible but never inside a brush.
    """
    if len(axes) < 2:  # one axis draws no line at all: say why instead of an empty frame
        fig = go.Figure()
        # "every setting" read false beside runs of two seeds: the seed has no axis here
        # and "one axis, so no lines to draw side by side" left a teacher puzzled: say what to do
        fig.add_annotation(text="These runs share every setting this chart compares (the seed is not one of "
                                "them),<br>so there is nothing to draw side by side: train runs with other "
                                "settings to compare them here.",
                           x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=14))
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return _layout(fig, 120, title=title)
    dims = []
    color = None
    for a in axes:
        lo, hi = a["range"]
        accuracy = "accuracy" in a["key"]
        if accuracy and all(v is None or v <= 100 for v in a["values"]):
            hi = min(hi, 100.0)  # one shared value is padded both ways; no axis above 100%
        missing = any(v is None for v in a["values"])
        below = lo - (hi - lo) * 0.06 if missing else lo
        values = [below if v is None else v for v in a["values"]]
        # accuracies to at most 2 decimals (a bare "~g" wrote ticks like 99.9861, ".3~f" 99.707);
        # others to 3 significant digits (".5~g" wrote a sweep's weight decay as 0.00057898)
        fmt = ".2~f" if accuracy else ".3~g"
        d: dict[str, Any] = dict(label=a["label"], values=values, range=[below, hi], tickformat=fmt)
        if a.get("tickvals") is not None:
            d.update(tickvals=a["tickvals"], ticktext=a["ticktext"])
        if a.get("constraint") is not None:
            d["constraintrange"] = a["constraint"]
        dims.append(d)
        if a["key"] == color_key:
            color = values
    # no colour bar: the accuracy axis already says what a line's colour means, and on a phone the bar
    # took 90 of 358 px, so that nine axes' ticks touched
    line = dict(color=color, colorscale=LINE_SCALE, showscale=False) if color is not None else dict(color=BLUE)
    # the axis titles slant steeply: level, nine of them overlapped in a narrow window ("optimizerschedule",
    # 40 px an axis at 820 px); at 30 degrees they still ran into each other on a phone (two titles a
    # spacing times sin(angle) apart: 10 px at 390 px, under a 13-px line; 17 px at 60 degrees)
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line, labelangle=-60, labelside="top",
                                 labelfont=dict(size=13, color=INK), tickfont=dict(size=11, color=INK_SOFT),
                                 rangefont=dict(size=10, color=INK_SOFT),
                                 unselected=dict(line=dict(color="#d0d0d0", opacity=0.35))))
    _layout(fig, height, title=title)
    # the right margin holds the last axis's slanted title ("accuracy (%)" was cut at 40 px; steep, it
    # needs 50), the top the titles' height; 90 + 80 px of margins left a phone's axes half its width.
    # The first axis's tick labels lie left of it: the left margin fits the longest (about 6.5 px a
    # character at 11 px; "seed_convnet" was cut to "ed_convnet" at 60 px)
    first = dims[0].get("ticktext") or []
    left = min(130, max(60, 14 + int(6.5 * max((len(str(t)) for t in first), default=0))))
    return fig.update_layout(margin=dict(l=left, r=50, t=140 if title else 120, b=30))
