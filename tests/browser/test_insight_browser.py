"""The Map page and the Runs page's parallel coordinates, in a real browser: click a point of the
map and see its image, select a region and see its images drawn on the map, and brush an axis of
the parallel coordinates with the mouse to filter the runs table."""
from __future__ import annotations

import re

from _helpers import assert_no_exception, chart_selector, goto, keyed_plot, step, wait_chart, wait_idle, wait_text

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
        page.locator(chart).scroll_into_view_if_needed()
        px, py = page.evaluate(_XY, [chart, x, y])
        page.mouse.move(px, py)
        page.wait_for_timeout(300)
        page.mouse.click(px, py)
        page.wait_for_function("(v) => document.querySelector('.st-key-map_image input').value === v",
                               arg=str(index), timeout=WAIT * 1000)
        wait_idle(page, WAIT)
    with step(page, "the panel shows that image, its letters and probabilities"):
        assert keyed_plot(page, "map_image_fig", 0, "z") != image_before, "the image did not change"
        title = page.evaluate("(s) => document.querySelector(s)._fullLayout.title.text",
                              chart_selector("map_image_fig"))
        assert title == f"test image {index}"
        text = page.inner_text("body")
        assert re.search(r"True letter [A-Y], predicted [A-Y]", text)
        wait_chart(page, "map_probs", WAIT)
    with step(page, "box-select a region: its images are drawn on a zoomed map"):
        page.hover(chart)  # the mode bar shows on hover
        page.locator(".st-key-map_chart [data-title='Box Select']").click()
        left, top, w, h = page.evaluate(_PLOT_AREA, chart)
        page.mouse.move(left + 0.35 * w, top + 0.35 * h)
        page.mouse.down()
        page.mouse.move(left + 0.55 * w, top + 0.5 * h, steps=8)
        page.mouse.move(left + 0.65 * w, top + 0.65 * h, steps=8)
        page.mouse.up()
        wait_text(page, "The region you selected", WAIT)
        wait_chart(page, "map_region", WAIT)
        n = page.evaluate("(s) => (document.querySelector(s)._fullLayout.images || []).length",
                          chart_selector("map_region"))
        assert n > 0, "no thumbnails on the zoomed region"
    assert_no_exception(page, "Map after a click and a region")


def test_runs_parallel_coordinates_brush_filters_the_table(page, server):
    chart = chart_selector("runs_parcoords")
    with step(page, "open Runs: the parallel coordinates are drawn"):
        goto(page, server, "/runs")
        wait_chart(page, "runs_parcoords", WAIT)
        wait_idle(page, WAIT)
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
        wait_text(page, "inside the brush", WAIT)
        wait_idle(page, WAIT)
    with step(page, "the table keeps only the runs inside the brush, and the chart shows the brush"):
        m = re.search(r"(\d+) of (\d+) runs inside the brush \(accuracy\)", page.inner_text("body"))
        assert m and 1 <= int(m.group(1)) < int(m.group(2)) == total, m and m.group(0)
        ranges = page.evaluate("(s) => document.querySelector(s).data[0].dimensions.map(d => d.constraintrange || null)",
                               chart)
        assert ranges[-1] is not None, "the accuracy axis shows no brush after the rerun"
    assert_no_exception(page, "Runs after brushing")
