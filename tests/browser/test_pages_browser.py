"""What a user does on Evaluate, Kernels, Runs and the guided tour, in a real browser.

Each test clicks, drags or types as a person would (a mouse click on a confusion-matrix square, the
keyboard on a slider, picking options in a multiselect, the tour's buttons) and checks what the page
then shows. Charts are found by their widget key (``.st-key-<key>``), so a chart drawn late does not
shift which one a test reads.
"""
from __future__ import annotations

import re
import time

from _helpers import (NARROW, TEXT_CUT, assert_no_exception, chart_selector, goto, keyed_plot, keyed_trace_names,
                      narrow_window, step, wait_chart, wait_idle, wait_text)
from playwright.sync_api import Error as PlaywrightError

from signlab.guide import STEPS

LETTERS = "ABCDEFGHIKLMNOPQRSTUVWXY"
WAIT = 60  # seconds; the CPU may be shared with training runs
TRAIN_WAIT = 180  # the tour's logistic regression: 2 epochs at batch 32

# Every square of the confusion matrix: [true index, predicted index, count text, x label, y label].
_CELLS = """(sel) => { const d = document.querySelector(sel)._fullData[0];
  return Array.from(d.customdata, (c, k) => [Number(c[0]), Number(c[1]), String(d.text[k] || ''), d.x[k], d.y[k]]); }"""
# The viewport pixel of a square's centre: the axes map the category to a pixel inside the plot
# area, which starts at the axis offset within the graph div.
_CELL_XY = """([sel, x, y]) => { const g = document.querySelector(sel); const fl = g._fullLayout;
  const r = g.getBoundingClientRect();
  return [r.left + fl.xaxis._offset + fl.xaxis.d2p(x), r.top + fl.yaxis._offset + fl.yaxis.d2p(y)]; }"""

# Each drawn title of a plotly chart as [text, left, top, right, bottom] on the screen.
_TITLE_BOXES = """(sel) => Array.from(document.querySelector(sel).querySelectorAll('g.annotation-text-g text'),
  t => { const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.top, r.right, r.bottom]; })"""


def _annotations(page, key: str) -> list[str]:
    return page.evaluate("(sel) => { const g = document.querySelector(sel);"
                         " return g ? (g._fullLayout.annotations || []).map(a => a.text) : []; }",
                         chart_selector(key))


def test_the_confusion_matrixs_numbers_stay_apart_on_a_phone(page, server):
    """At 390 px the matrix is shrunk to its box with the fonts its 440-px cells were sized for, and
    neighbouring counts read together ("21 21" as "2121")."""
    goto(page, server, "/evaluate?run=logreg-ready")
    wait_chart(page, "eval_cm", WAIT)
    wait_idle(page, WAIT)
    gaps_js = """(sel) => {
        const rows = {};
        for (const t of document.querySelectorAll(sel + ' .textpoint text')) {
            if (!t.textContent) continue;
            const b = t.getBoundingClientRect();
            (rows[Math.round(b.top)] = rows[Math.round(b.top)] || []).push([b.left, b.right, t.textContent]);
        }
        const gaps = [];
        for (const r of Object.values(rows)) {
            r.sort((a, b) => a[0] - b[0]);
            for (let i = 1; i < r.length; i++) gaps.push([r[i][0] - r[i - 1][1], r[i - 1][2] + ' ' + r[i][2]]);
        }
        return gaps;
    }"""
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.wait_for_timeout(1500)  # plotly fits the figure to its narrower box
        gaps = page.evaluate(gaps_js, chart_selector("eval_cm"))
        # 1.9 px before (10-px digits: they read as one number), 4.4 px with the phone's 7-px numbers
        close = [(round(g, 1), pair) for g, pair in gaps if g < 3]
        assert gaps and not close, f"neighbouring numbers at 390 px less than 3 px apart: {close[:8]}"
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def test_evaluate_click_a_confusion_matrix_square_shows_its_images(page, server):
    cm = chart_selector("eval_cm")
    with step(page, "open Evaluate for the ConvNet run from the link"):
        goto(page, server, "/evaluate?run=convnet-ready")
        wait_chart(page, "eval_cm", WAIT)
        wait_chart(page, "eval_pair_images", WAIT)
        wait_idle(page, WAIT)
        assert "convnet-ready" in page.get_by_role("combobox", name="Run").input_value()
    with step(page, "choose a mistake square other than the one selected"):
        before = (page.get_by_role("combobox", name="True letter").input_value(),
                  page.get_by_role("combobox", name="Predicted letter").input_value())
        images_before = keyed_plot(page, "eval_pair_images", 0, "z")
        mistakes = sorted((c for c in page.evaluate(_CELLS, cm) if c[0] != c[1] and c[2]),
                          key=lambda c: -int(c[2]))
        t, p, count, x_label, y_label = next(c for c in mistakes if (LETTERS[c[0]], LETTERS[c[1]]) != before)
        assert (y_label, x_label) == (LETTERS[t], LETTERS[p]), "a square's customdata and position disagree"
    with step(page, f"click the square true {y_label}, predicted {x_label} ({count} images)"):
        page.locator(cm).scroll_into_view_if_needed()
        x, y = page.evaluate(_CELL_XY, [cm, x_label, y_label])
        page.mouse.click(x, y)
        page.wait_for_function(
            "([t, p]) => document.querySelector('.st-key-eval_true input').value === t"
            " && document.querySelector('.st-key-eval_pred input').value === p",
            arg=[y_label, x_label], timeout=WAIT * 1000)
        wait_idle(page, WAIT)
    with step(page, "the page names the pair and shows its images"):
        text = page.inner_text("body")
        said = re.search(rf"{int(count):,} of the [\d,]+ test images of {y_label} (?:was|were) predicted as {x_label}\b", text)
        assert said, f"no caption for true {y_label} predicted {x_label} ({count} images)"
        images = keyed_plot(page, "eval_pair_images", 0, "z")
        assert images and images != images_before, "the image grid did not change to the clicked pair"
        assert len(_annotations(page, "eval_pair_images")) == min(int(count), 30), "one title per image shown"
        outline = (keyed_plot(page, "eval_cm", 1, "x"), keyed_plot(page, "eval_cm", 1, "y"))
        assert outline == ([x_label], [y_label]), f"the outline marks {outline}, not the clicked square"
    assert_no_exception(page, "Evaluate after a click")
    with step(page, "in a wide window the picker sits beside the matrix"):
        box = page.locator(".st-key-eval_matrix_box").bounding_box()
        picker = page.locator(".st-key-eval_picker_box").bounding_box()
        assert picker["x"] >= box["x"] + box["width"] and abs(picker["y"] - box["y"]) < 5, (box, picker)
    with step(page, f"in a window of {NARROW} px the matrix keeps its size, the picker moves under it, "
                    "no number is cut"), narrow_window(page):
        box = page.locator(cm).bounding_box()
        picker = page.locator(".st-key-eval_true").bounding_box()
        cut = page.locator("[data-testid=stMetricValue]").evaluate_all(f"es => es.map(e => [e.innerText, ({TEXT_CUT})(e)])")
        assert box["width"] >= 430, f"the matrix was squeezed to {box['width']:.0f} px"
        assert picker["y"] > box["y"] + box["height"] - 5, "the picker did not move under the matrix"
        assert len(cut) == 4 and not any(c for _, c in cut), f"a headline number is cut: {cut}"
    with step(page, f"in a window of {NARROW} px the per-letter table shows all its columns and the mistakes' "
                    "titles keep clear of each other"), narrow_window(page):
        # the grid draws its columns on a canvas: the table is as wide as its five columns (440 px) and whole
        table = page.locator(".st-key-eval_table_box [data-testid=stDataFrame]").bounding_box()
        assert table and table["width"] >= 420 and table["x"] + table["width"] <= NARROW, table
        assert table["height"] >= 25 * 35, f"the table shows every letter without scrolling: {table}"
        titles = page.evaluate(_TITLE_BOXES, chart_selector("eval_mistakes"))
        overlaps = [(a[0], b[0]) for i, a in enumerate(titles) for b in titles[i + 1:]
                    if a[1] < b[3] - 1 and b[1] < a[3] - 1 and a[2] < b[4] - 1 and b[2] < a[4] - 1]
        assert len(titles) > 1 and not overlaps, f"{len(overlaps)} pairs of the mistakes' titles overlap: {overlaps[:3]}"


def test_kernels_chosen_image_is_whole_in_a_narrow_window(page, server):
    """In a fifth of an 820-px window the image whose feature maps are shown was 66 px wide, its
    title cut to "test imag" and its caption one word a line."""
    with step(page, f"open Kernels in a window of {NARROW} px (the sidebar open)"), narrow_window(page):
        goto(page, server, "/kernels?run=convnet-ready")
        wait_chart(page, "kernels_input", WAIT)
        wait_chart(page, "kernels_maps_0", WAIT)
        box = page.locator(".st-key-kernels_image_box").bounding_box()
        maps = page.locator(".st-key-kernels_maps_box").bounding_box()
    with step(page, "the image has room, and the maps sit under it"):
        assert box and box["width"] >= 220, box
        assert maps and maps["y"] >= box["y"] + box["height"] - 1, (box, maps)
        assert maps["x"] + maps["width"] <= NARROW, maps


def test_kernels_epoch_slider_changes_the_kernel_grid(page, server):
    with step(page, "open Kernels for the ConvNet run"):
        goto(page, server, "/kernels?run=convnet-ready")
        wait_chart(page, "kernels_first", WAIT)
        wait_idle(page, WAIT)
        z_final = keyed_plot(page, "kernels_first", 0, "z")
        assert z_final and any(v is not None for row in z_final for v in row), "the kernel grid has no data"
        slider = page.get_by_role("slider", name="Epoch")
        assert slider.get_attribute("aria-valuetext") == "after epoch 1"

    def press(key: str, title: str) -> None:
        """Press ``key`` on the slider and wait until it says ``title`` and the grid has been drawn again
        (the slider names the snapshot; the grid's own title no longer repeats it)."""
        before = keyed_plot(page, "kernels_first", 0, "z")
        slider.focus()
        page.keyboard.press(key)
        page.wait_for_function("([el, t]) => el.getAttribute('aria-valuetext') === t",
                               arg=[slider.element_handle(), title], timeout=WAIT * 1000)
        wait_idle(page, WAIT)
        deadline = time.monotonic() + WAIT  # the grid's data, redrawn: not the same as before the key
        while keyed_plot(page, "kernels_first", 0, "z") == before and time.monotonic() < deadline:
            time.sleep(0.2)

    with step(page, "move the epoch slider to the start with the keyboard"):
        press("Home", "before training")
        assert slider.get_attribute("aria-valuetext") == "before training"
    with step(page, "the grid shows other weights: the initial ones"):
        z_start = keyed_plot(page, "kernels_first", 0, "z")
        assert z_start and len(z_start) == len(z_final), "the grid changed shape"
        assert z_start != z_final, "the kernels before training look the same as after epoch 1"
    with step(page, "move it back one step: the trained kernels return"):
        press("ArrowRight", "after epoch 1")
        assert keyed_plot(page, "kernels_first", 0, "z") == z_final
    assert_no_exception(page, "Kernels after moving the slider")


def _choose(page, box, label: str, run_id: str, tries: int = 3) -> None:
    """Pick a run in a multiselect as a user would, clicking again if a rerun swapped the list.

    The page reruns after each pick, and a rerun that lands between opening the dropdown and the
    click re-renders its options, so the option found can be detached before it is clicked (seen
    once in ~30 full runs). A person simply opens the list again; so does this, at most ``tries``
    times, and it stops as soon as the chosen run's tag is there.
    """
    tag = box.locator(f"[data-tag][aria-label^='{run_id} ·']")
    for attempt in range(tries):
        if tag.count():
            break
        combo = box.get_by_role("combobox", name=label)
        try:
            if combo.get_attribute("aria-expanded") != "true":
                combo.click()
            page.get_by_role("option", name=re.compile(rf"^{re.escape(run_id)} ·")).click(timeout=10_000)
            tag.wait_for(timeout=WAIT * 1000)
        except PlaywrightError:
            if attempt == tries - 1:
                raise
            wait_idle(page, WAIT)
    wait_idle(page, WAIT)
    assert tag.count() == 1, f"{run_id} was not chosen in {label!r}"


def test_runs_overlay_of_two_chosen_runs(page, server):
    box = page.locator(".st-key-runs_compare")
    with step(page, "open Runs"):
        goto(page, server, "/runs")
        box.wait_for(timeout=WAIT * 1000)
        wait_chart(page, "runs_overlay", WAIT)  # the runs with curves are overlaid by default
    with step(page, "clear the runs to overlay"):
        box.get_by_role("button", name="Clear all").click()
        page.wait_for_function("(sel) => !document.querySelector(sel)", arg=chart_selector("runs_overlay"),
                               timeout=WAIT * 1000)
        wait_idle(page, WAIT)
    for run_id in ("logreg-ready", "convnet-ready"):
        with step(page, f"choose {run_id} in the multiselect"):
            _choose(page, box, "Runs to overlay", run_id)
    with step(page, "the overlay has one line per chosen run"):
        page.keyboard.press("Escape")
        page.wait_for_function("(sel) => { const g = document.querySelector(sel); return g && g._fullData"
                               " && g._fullData.length === 2; }", arg=chart_selector("runs_overlay"),
                               timeout=WAIT * 1000)
        wait_idle(page, WAIT)
        # each entry: the run's name, then the settings the two runs differ in, the model first
        for chart in ("runs_overlay", "runs_loss_overlay"):
            names = sorted(keyed_trace_names(page, chart))
            assert [n.split(" · ")[0] for n in names] == ["convnet-ready", "logreg-ready"], names
            assert names[0].startswith("convnet-ready · model convnet") and \
                names[1].startswith("logreg-ready · model logreg"), names
        assert box.locator("[data-tag]").count() == 2
    assert_no_exception(page, "Runs with two runs overlaid")


def _step_title(page) -> str:
    return page.locator("[data-testid='stMain'] h2").first.inner_text().strip()


def _wait_step(page, title: str) -> None:
    page.wait_for_function(
        "(t) => Array.from(document.querySelectorAll('[data-testid=\"stMain\"] h2'))"
        ".some(h => h.innerText.trim() === t)", arg=title, timeout=WAIT * 1000)
    wait_idle(page, WAIT)


def test_guided_tour_next_back_train_logreg_then_templates(page, server):
    first, second, third = ("1. Look at the data", "2. Train logistic regression",
                            "3. Look at its 24 weight templates")
    with step(page, "open the guided tour"):
        goto(page, server, "/guide")
        _wait_step(page, first)
        assert f"Step 1 of {len(STEPS)}" in page.inner_text("body")
    with step(page, "Next, Back, Next"):
        page.get_by_role("button", name="Next →").click()
        _wait_step(page, second)
        page.get_by_role("button", name="← Back").click()
        _wait_step(page, first)
        page.get_by_role("button", name="Next →").click()
        _wait_step(page, second)
        assert _step_title(page) == second
    with step(page, "press the step's Train button and wait for the result"):
        page.get_by_role("button", name=re.compile(r"^▶ Train logreg")).click()
        wait_text(page, "Your logistic regression reached", TRAIN_WAIT)
        wait_idle(page, WAIT)
        assert re.search(r"reached \d+\.\d% test accuracy", page.inner_text("body"))
        page.get_by_role("button", name=re.compile(r"^↻ Train logreg again")).wait_for(timeout=WAIT * 1000)
    with step(page, "Next, at the foot of the trained step: the 24 templates of that run, from the step's top"):
        top = "() => document.querySelector('[data-testid=\"stMain\"]').scrollTop"
        page.get_by_role("button", name="Next →").scroll_into_view_if_needed()
        assert page.evaluate(top) > 0, "the step fits the window: Next cannot show where the next step opens"
        page.get_by_role("button", name="Next →").click()
        _wait_step(page, third)
        # Streamlit keeps a page's scroll over a rerun: the next step opened 215 px below its title and Do line
        page.wait_for_function(f"() => ({top})() === 0", timeout=WAIT * 1000)
        sel = "[data-testid='stMain'] .js-plotly-plot"
        page.wait_for_function(
            "(sel) => Array.from(document.querySelectorAll(sel)).some(g => g._fullLayout"
            " && (g._fullLayout.title.text || '').includes('24 weight templates'))", arg=sel, timeout=WAIT * 1000)
        chart = page.evaluate(
            "(sel) => { const g = Array.from(document.querySelectorAll(sel)).find(g =>"
            " (g._fullLayout.title.text || '').includes('24 weight templates'));"
            " return [g._fullLayout.annotations.map(a => a.text), g._fullData[0].z.length]; }", sel)
        assert chart[0] == list(LETTERS), f"the templates are titled {chart[0]}"
        assert chart[1] > 0, "the templates chart has no data"
    with step(page, "a second Next in a row, from the foot of step 3, opens step 4 at its top too"):
        # step 3 is taller than the window, so a top of 0 above was the scroll's doing, not the step's size;
        # and a second scroll works as the first (Streamlit runs an st.html script only when it is new)
        tall = "() => { const m = document.querySelector('[data-testid=\"stMain\"]'); return m.scrollHeight > m.clientHeight; }"
        assert page.evaluate(tall), "step 3 fits the window: its top of 0 says nothing"
        page.get_by_role("button", name="Next →").scroll_into_view_if_needed()
        assert page.evaluate(top) > 0
        page.get_by_role("button", name="Next →").click()
        _wait_step(page, "4. Train the lecture's ConvNet, as written")
        page.wait_for_function(f"() => ({top})() === 0", timeout=WAIT * 1000)
    assert_no_exception(page, "guided tour at step 4")
