"""The Map page and the Runs page's parallel coordinates, in a real browser: click a point of the
map and see its image, select a region and see its images drawn on the map, and brush an axis of
the parallel coordinates with the mouse to filter the runs table."""
from __future__ import annotations

import re
import time

from _helpers import (NARROW, Server, assert_no_exception, chart_selector, cut_controls, goto, keyed_plot,
                      narrow_window, step, wait_chart, wait_idle)

WAIT = 120  # seconds; the map runs the model over 7,172 images on a CPU that may be shared

# The point of the map furthest right: [trace, point, x, y, image index] (an outlier: no neighbour
# under the mouse), read from plotly's full data.
_RIGHTMOST = """(sel) => { const g = document.querySelector(sel); let best = null;
  g._fullData.forEach((d, t) => { if (d.name.length !== 1) return;
    Array.from(d.x).forEach((x, k) => { if (!best || x > best[2]) best = [t, k, x, d.y[k], Number(d.customdata[k])]; }); });
  return best; }"""
_XY = """([sel, x, y]) => { const g = document.querySelector(sel); const fl = g._fullLayout;
  const r = g.getBoundingClientRect();
  return [r.left + fl.xaxis._offset + fl.xaxis.d2p(x), r.top + fl.yaxis._offset + fl.yaxis.d2p(y)]; }"""
_PLOT_AREA = """(sel) => { const g = document.querySelector(sel); const fl = g._fullLayout;
  const r = g.getBoundingClientRect();
  return [r.left + fl.xaxis._offset, r.top + fl.yaxis._offset, fl.xaxis._length, fl.yaxis._length]; }"""


def _until(page, js: str, arg, timeout: float = WAIT) -> None:
    """Wait until ``js(arg)`` is true, polling on a timer: the map's WebGL canvas can starve the
    animation-frame polling that playwright uses by default."""
    page.wait_for_function(js, arg=arg, timeout=timeout * 1000, polling=250)


def _wait_text(page, text: str) -> None:
    _until(page, "(s) => document.body.innerText.includes(s)", text)


def _idle(page) -> None:
    """:func:`_helpers.wait_idle` after the first draw, with timer polling (see :func:`_until`)."""
    _until(page, "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
                 " || getComputedStyle(document.querySelector('[data-testid=\"stStatusWidget\"]')).visibility"
                 " === 'hidden'", None)
    page.wait_for_timeout(300)


def _image_input(page) -> str:
    return page.locator(".st-key-map_image input").input_value()


def test_map_click_a_point_shows_its_image_then_a_region_its_images(page, server):
    chart = chart_selector("map_chart")
    with step(page, "open the Map for the logistic regression run (the pixel map)"):
        goto(page, server, "/map?run=logreg-ready")
        wait_chart(page, "map_chart", WAIT)
        wait_idle(page, WAIT)
        assert "input pixels" in page.get_by_role("combobox", name="Layer").input_value()
        before, image_before = _image_input(page), keyed_plot(page, "map_image_fig", 0, "z")
    with step(page, "click the rightmost point"):
        trace, k, x, y, index = page.evaluate(_RIGHTMOST, chart)
        assert str(index) != before, "the rightmost point is already the chosen image"
        page.evaluate("(s) => document.querySelector(s).scrollIntoView({block: 'center'})", chart)  # all of it
        page.wait_for_timeout(300)
        px, py = page.evaluate(_XY, [chart, x, y])
        assert 0 < py < page.viewport_size["height"], "the point is outside the window"
        # the WebGL points answer the mouse only once drawn: wait for the point's hover label first
        for _ in range(20):
            page.mouse.move(px - 3, py)
            page.mouse.move(px, py)
            page.wait_for_timeout(500)
            if page.locator(f"{chart} .hoverlayer .hovertext").count():
                break
        page.mouse.click(px, py)
        _until(page, "(v) => document.querySelector('.st-key-map_image input').value === v", str(index))
        _idle(page)
    with step(page, "the panel shows that image, its letters and probabilities"):
        # the rerun that draws the new image can start after the choice reached the page (seen once
        # on a loaded CI machine): wait for the figure itself, up to WAIT seconds
        deadline = time.monotonic() + WAIT
        while keyed_plot(page, "map_image_fig", 0, "z") == image_before and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert keyed_plot(page, "map_image_fig", 0, "z") != image_before, "the image did not change"
        title = page.evaluate("(s) => document.querySelector(s)._fullLayout.title.text",
                              chart_selector("map_image_fig"))
        assert re.sub(r"<[^>]+>", "", title) == f"test image {index}"
        text = page.inner_text("body")
        assert re.search(r"True letter [A-Y], predicted [A-Y]", text)
        wait_chart(page, "map_probs", WAIT)
    with step(page, "box-select a region: its images are drawn on a zoomed map"):
        page.evaluate("(s) => document.querySelector(s).scrollIntoView({block: 'center'})", chart)
        page.hover(chart)  # the mode bar shows on hover
        page.locator(".st-key-map_chart [data-title='Box Select']").click()
        left, top, w, h = page.evaluate(_PLOT_AREA, chart)
        page.mouse.move(left + 0.35 * w, top + 0.35 * h)
        page.mouse.down()
        page.mouse.move(left + 0.55 * w, top + 0.5 * h, steps=8)
        page.mouse.move(left + 0.65 * w, top + 0.65 * h, steps=8)
        page.mouse.up()
        _wait_text(page, "The region you selected")
        wait_chart(page, "map_region", WAIT)
        n = page.evaluate("(s) => (document.querySelector(s)._fullLayout.images || []).length",
                          chart_selector("map_region"))
        assert n > 0, "no thumbnails on the zoomed region"
    assert_no_exception(page, "Map after a click and a region")
    with step(page, f"in a window of {NARROW} px the map keeps its width, the chosen image moves under it, "
                    "the embedding choice is whole"), narrow_window(page):
        box = page.locator(".st-key-map_box").bounding_box()
        chosen = page.locator(".st-key-map_chosen_box").bounding_box()
        tsne = page.locator("[data-testid=stMain]").get_by_text(re.compile(r"^t-SNE")).first.bounding_box()
        assert box["width"] >= 480, f"the map was squeezed to {box['width']:.0f} px"
        assert chosen["y"] >= box["y"] + box["height"] - 5, "the chosen image did not move under the map"
        assert tsne["x"] + tsne["width"] <= NARROW, f"the t-SNE choice runs off the window: {tsne}"


# Each axis title of a parallel-coordinates chart as its four corners on the screen: its box in
# its own coordinates, through its transform (the titles may be slanted).
_AXIS_TITLE_CORNERS = """(sel) => Array.from(document.querySelector(sel).querySelectorAll('text.axis-title'), t => {
  const b = t.getBBox(), m = t.getScreenCTM();
  return [t.textContent, [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
    .map(([x, y]) => { const p = new DOMPoint(x, y).matrixTransform(m); return [p.x, p.y]; })]; })"""


def _quads_overlap(a: list, b: list, slack: float = 1.0) -> bool:
    """Whether two convex quadrilaterals overlap by more than ``slack`` px (separating axes)."""
    for quad in (a, b):
        for i in range(4):
            (x1, y1), (x2, y2) = quad[i], quad[(i + 1) % 4]
            nx, ny = y1 - y2, x2 - x1
            norm = (nx * nx + ny * ny) ** 0.5 or 1.0
            pa = [(x * nx + y * ny) / norm for x, y in a]
            pb = [(x * nx + y * ny) / norm for x, y in b]
            if max(pa) < min(pb) + slack or max(pb) < min(pa) + slack:
                return False
    return True


def test_runs_parallel_coordinates_brush_filters_the_table(page, server):
    chart = chart_selector("runs_parcoords")
    with step(page, "open Runs: the parallel coordinates are drawn"):
        goto(page, server, "/runs")
        wait_chart(page, "runs_parcoords", WAIT)
        _idle(page)
        total = int(re.search(r"All runs \((\d+)\)", page.inner_text("body")).group(1))
        assert total >= 2
    with step(page, "drag a brush over the top half of the accuracy axis"):
        x, top, bottom = page.evaluate(
            "(s) => { const bs = document.querySelector(s).querySelectorAll('.axis-brush');"
            " const r = bs[bs.length - 1].getBoundingClientRect(); return [r.left + r.width / 2, r.top, r.bottom]; }",
            chart)
        page.locator(chart).scroll_into_view_if_needed()
        page.mouse.move(x, top + 2)
        page.mouse.down()
        page.mouse.move(x, top + 30, steps=5)
        page.mouse.move(x, (top + bottom) / 2, steps=5)
        page.mouse.up()
        _wait_text(page, "inside the brush")
        _idle(page)
    with step(page, "the table keeps only the runs inside the brush, and the chart shows the brush"):
        m = re.search(r"(\d+) of (\d+) runs inside the brush \(accuracy\)", page.inner_text("body"))
        assert m and 1 <= int(m.group(1)) < int(m.group(2)) == total, m and m.group(0)
        ranges = page.evaluate("(s) => document.querySelector(s).data[0].dimensions.map(d => d.constraintrange || null)",
                               chart)
        assert ranges[-1] is not None, "the accuracy axis shows no brush after the rerun"
    assert_no_exception(page, "Runs after brushing")
    with step(page, f"in a window of {NARROW} px, Manage a run's buttons are whole ('Ope…', 'Del…' in columns)"), \
            narrow_window(page):
        page.get_by_role("button", name="Delete").scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        controls, bad = cut_controls(page)
        manage = [c for c in controls if re.search("Open in|Delete|Rename|Weights|Settings|ONNX", c[0])]
        assert len(manage) >= 4, controls
        assert not bad, f"cut or off the window: {bad}"


def test_runs_parallel_coordinates_axes_read_in_a_narrow_window(browser, tmp_path):
    """Nine axes in an 820-px window (40 px an axis): level titles overlapped ("optimizerschedule",
    "learning ratebatch size") and a sweep's weight decay ended its axis as "0.00057898"."""
    from signlab.config import TrainConfig
    from signlab.runs import create_held_run
    from signlab.store import RunState

    runs_dir = tmp_path / "runs"
    settings = [dict(model="logreg", optimizer="adam", schedule="none", lr=0.001, batch_size=32, weight_decay=0.0,
                     augment=False, epochs=1),
                dict(model="s2net", optimizer="adamw", schedule="onecycle", lr=0.0062, batch_size=128,
                     weight_decay=0.00057898, augment=True, epochs=2),
                dict(model="seed_convnet", optimizer="adamw", schedule="onecycle", lr=0.0031, batch_size=64,
                     weight_decay=0.0001234, augment=True, epochs=2)]
    for kw, accuracy in zip(settings, [67.357, 99.70712, 29.3518]):  # finished runs, as the store records them
        run, claim = create_held_run(TrainConfig(**kw), "test", runs_dir)
        run.store.update(claim, RunState.RUNNING)
        run.store.update(claim, RunState.COMPLETED, epochs_completed=kw["epochs"], test_accuracy=accuracy,
                         val_accuracy=accuracy)
    server = Server(runs_dir, limit=1, log=tmp_path / "streamlit.log")
    ctx = browser.new_context(viewport={"width": NARROW, "height": 1000})
    try:
        page = ctx.new_page()
        chart = chart_selector("runs_parcoords")
        with step(page, f"open Runs in a window of {NARROW} px"):
            page.goto(server.url + "/runs")
            wait_chart(page, "runs_parcoords", WAIT)
            _idle(page)
            page.wait_for_timeout(1000)
        with step(page, "no two axis titles overlap, and the axes' end values are short"):
            titles = page.evaluate(_AXIS_TITLE_CORNERS, chart)
            overlaps = [(a[0], b[0]) for i, a in enumerate(titles) for b in titles[i + 1:]
                        if _quads_overlap(a[1], b[1])]
            assert len(titles) >= 8 and not overlaps, f"{len(titles)} titles; these overlap: {overlaps}"
            def texts(css: str) -> list[str]:
                return [t for t in page.evaluate("([s, c]) => Array.from(document.querySelector(s).querySelectorAll(c),"
                                                 " t => t.textContent)", [chart, css]) if t]

            # every axis has ticks of its own, its ends written as the values they are: plotly's range
            # labels, beside them, wrote "0" and "70" twice
            ends = texts("text.axis-extent-top-text, text.axis-extent-bottom-text")
            ticks = texts(".axis .tick text")
            numbers = [t for t in ticks if t[0].isdigit()]
            assert not ends and "0.000579" in numbers and all(len(t) <= 8 for t in numbers), (ends, ticks)
        assert_no_exception(page, "Runs")
    finally:
        ctx.close()
        server.stop()


def test_a_brush_nobody_set_stays_off_as_new_runs_widen_an_axis(page, tmp_path):
    """A sweep's trial chart brushed itself with nobody touching it: when a new trial widened an axis,
    the slider was made again with its new range, but the browser kept the widget's old value and sent
    it back at the next rerun, so the old range became a brush ("2 of 3 trials inside the brush")
    and hid the new trial."""
    from signlab.config import TrainConfig
    from signlab.runs import create_run

    for rid, lr, acc in (("lr-small", 0.001, 0.6), ("lr-mid", 0.004, 0.7)):
        create_run(TrainConfig(model="logreg", epochs=1, lr=lr), tmp_path, run_id=rid,
                   status="completed").store.annotate(rid, test_accuracy=acc)
    own = Server(tmp_path, 1, tmp_path / "streamlit.log")
    try:
        with step(page, "open Runs: two runs, no brush"):
            goto(page, own.url, "/runs")
            wait_chart(page, "runs_parcoords", WAIT)
            _idle(page)
            assert "inside the brush" not in page.inner_text("body")
        with step(page, "a run with a larger learning rate arrives; the page reruns twice"):
            create_run(TrainConfig(model="logreg", epochs=1, lr=0.05), tmp_path, run_id="lr-big",
                       status="completed").store.annotate("lr-big", test_accuracy=0.8)
            for _ in range(2):  # Streamlit's "r": a rerun that sends the widgets' values, as a page's refresh does
                page.mouse.click(600, 5)  # the page, not a widget: "r" typed into no box
                page.keyboard.press("r")
                page.wait_for_timeout(1000)
                _idle(page)
            text = page.inner_text("body")
            assert "All runs (3)" in text and "inside the brush" not in text, text[:3000]
    finally:
        own.stop()
