"""What a newcomer hit walking every page in Chromium (issue 17, item 7), one test per finding.

These tests run a server of their own (job limit 1) on a runs folder of tiny runs, because they
train, pause, stop and continue runs, which would change what the shared server's pages show.
"""
from __future__ import annotations

import re
import time

import pytest
from _helpers import (NARROW, TEXT_CUT, Server, assert_no_exception, chart_selector, fill_box, goto, keyed_plot,
                      narrow_window, step, wait_chart, wait_idle, wait_text)

from signlab.config import PRESET_DESCRIPTIONS

WAIT = 60  # seconds; the CPU may be shared with training runs
TRAIN_WAIT = 240
CELLS = """(sel) => { const d = document.querySelector(sel)._fullData[0];
  return Array.from(d.customdata, (c, k) => [Number(c[0]), Number(c[1]), String(d.text[k] || ''), d.x[k], d.y[k]]); }"""
# an MLP at batch 4 on one thread: an epoch (6,864 steps, about 14 s) lasts long enough to pause,
# resume and stop it by hand; a ConvNet's 40 s epochs cost the suite a minute and a half
SLOW = ("/train?preset=fast&model=mlp&epochs=3&batch_size=4&lr=0.001&optimizer=adam&weight_decay=0"
        "&schedule=none&augment=False&ensemble=1&input_norm=standardize")


@pytest.fixture(scope="module")
def own(tmp_path_factory, chromium_path):
    """A server of this module's own, with a tiny logistic regression, one of a single logged step and
    the tour's logistic regression and ConvNet (a few steps each)."""
    from signlab import api, guide
    from signlab.config import TrainConfig
    from signlab.data import load_dataset

    d = tmp_path_factory.mktemp("newcomer-runs")
    ds = load_dataset()
    api.train(TrainConfig(model="logreg", epochs=1, augment=False, log_every=20, max_steps=60), d,
              run_id="logreg-ready", dataset=ds)
    api.train(TrainConfig(model="logreg", epochs=1, augment=False, log_every=1, max_steps=1), d,
              run_id="logreg-one-step", dataset=ds)
    from signlab.runs import open_run

    for cfg, rid in ((guide.LOGREG, "tour-logreg"), (guide.FIXED, "tour-convnet")):
        api.train(cfg.replace(max_steps=3), d, run_id=rid, dataset=ds)  # the tour's epochs, cut to 3 steps
        # ... a dry run the tour does not count (guide.tours): its settings say the tour's own
        open_run(rid, d).save_config(cfg)
    server = Server(d, 1, d.parent / "newcomer-streamlit.log")
    yield server
    server.stop()


def _button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def _combo_value(page, name: str) -> str:
    return page.get_by_role("combobox", name=name).input_value()


def _wait_input_value(page, label: str, want: str, timeout: float) -> list[str]:
    """Poll the number box ``label`` until it holds ``want``; the distinct values it held, in turn
    (CI once timed out here with no word of what the box showed instead)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate("(l) => { const e = document.querySelector(`input[aria-label=\"${l}\"]`);"
                              " return e ? e.value : '(no box)'; }", label)
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == want:
            break
        page.wait_for_timeout(250)
    return seen


def test_pause_resume_stop_continue_follow_the_run_live(page, browser, own):
    with step(page, "start a slow run"):
        goto(page, own.url, SLOW)
        _button(page, "▶ Start").click()
        wait_text(page, "images/s", TRAIN_WAIT)
    with step(page, "the Train page heads the run with its name, not its id"):
        heading = [h for h in page.locator("[data-testid='stMain'] h3").all_inner_texts() if h != "Settings"][0]
        assert heading == "Your mlp run", heading
        assert not re.search(r"\d{8}-\d{6}-", heading), f"the heading shows the run's id: {heading}"
    with step(page, "one click on Pause shows the paused state and relabels the button Resume"):
        _button(page, "⏸ Pause").click()
        _button(page, "⏯ Resume").wait_for(timeout=30_000)
        wait_text(page, "paused", 30)
    with step(page, "one click on Resume relabels it Pause again"):
        _button(page, "⏯ Resume").click()
        _button(page, "⏸ Pause").wait_for(timeout=30_000)
    with step(page, "a new tab shows the running job and says Start trains another"):
        other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        try:
            goto(other, own.url, "/train")
            wait_text(other, "images/s", WAIT)
            assert "Press Start to train" not in other.inner_text("body")
            wait_text(other, "This is your run that is still training", WAIT)
            goto(other, own.url, "/")
            table = other.locator("[data-testid='stTable']").inner_text()
            assert "nan" not in table and "training…" in table, f"Home's latest runs show: {table}"
        finally:
            other.context.close()
    with step(page, "wait for the first epoch to end, then Stop"):
        wait_text(page, "epoch 2/3", TRAIN_WAIT)
        _button(page, "⏹ Stop").click()
        wait_text(page, "Stopped", WAIT)
    with step(page, "Continue training for 1 epoch: the page follows the continued run live"):
        page.get_by_role("spinbutton", name="Continue this run for more epochs").fill("1")
        page.get_by_role("button", name="Continue training").click()
        page.wait_for_function("() => !document.body.innerText.includes('Stopped by request')", timeout=WAIT * 1000)
        wait_text(page, "Finished", TRAIN_WAIT)
        wait_idle(page, WAIT)
    with step(page, "with no click, the test accuracy (shifts included) replaces the validation accuracy"):
        wait_text(page, "% test accuracy", WAIT)  # the page kept showing validation before
    with step(page, "the continued run's loss line goes on after the first fit's steps"):
        wait_chart(page, "live_loss", WAIT)
        steps = keyed_plot(page, "live_loss", 0, "x")
        assert steps and all(a < b for a, b in zip(steps, steps[1:])), f"the steps go back: {steps}"
    with step(page, "Runs counts the whole run's epochs in its message, as its table does"):
        goto(page, own.url, "/runs")
        wait_text(page, "Manage a run", WAIT)
        caption = page.locator("[data-testid='stCaptionContainer']", has_text="trained").first.inner_text()
        assert "trained 2 epochs" in caption, caption
        wait_chart(page, "runs_loss_overlay", WAIT)
    assert_no_exception(page, "Train after a continued run")
    with step(page, "the finished run deleted elsewhere (an instructor): the Train page says so with no click"):
        from signlab.runs import delete_run, list_runs

        run_id = next(r.id for r in list_runs(own.runs_dir) if r.config.model == "mlp")
        goto(page, own.url, f"/train?run={run_id}")
        wait_text(page, "Continue training", WAIT)
        wait_idle(page, WAIT)  # deleted while the script still ran, the page stopped on its own message
        delete_run(run_id, own.runs_dir)
        # it showed the run, with Continue, until the student's next click
        wait_text(page, "is not one you can open here (it was deleted", WAIT)
        assert not _button(page, "Continue training").count()
    assert_no_exception(page, "Train after its run was deleted elsewhere")


def test_train_the_robust_model_opens_train_with_the_robust_settings(page, own):
    # whether the page ever said it was timing the preset (read ten times a second, in the page)
    page.add_init_script("setInterval(() => { if (document.body && document.body.innerText.includes("
                         "'this server is timing a few of its steps now')) window.__timing = true; }, 100)")
    with step(page, "on Classify, press Train the robust model"):
        goto(page, own.url, "/train")  # the settings panel is filled (fast) before Classify is opened
        assert _combo_value(page, "Preset").startswith("fast")
        goto(page, own.url, "/classify?run=logreg-ready")
        wait_idle(page, WAIT)
    with step(page, "before the click, the button's words give its time, timed in the background meanwhile"):
        # it said only "the time it takes shows after its first steps"; the page is not held up for it.
        # The words leave "timing now" by themselves once the timing ends. In the suite (load 9 on 2
        # cores) the trial can outlive its 30 s limit, and the page then says the time shows after the
        # first steps, as a trial that could not time it always did (the unit test times one for sure)
        page.wait_for_function(
            "() => { const t = document.body.innerText; return !t.includes('this server is timing a few of its steps now')"
            " && (t.includes('timed from a few of its steps here') || t.includes('the time it takes shows after its first steps')); }",
            timeout=WAIT * 1000)
        assert page.evaluate("() => window.__timing === true"), "the page never said it was timing the preset"
        wait_idle(page, WAIT)
    with step(page, f"in a window of {NARROW} px the button's label is whole (a quarter column cut it to "
                    "'Train the rob…')"), narrow_window(page):
        assert not _button(page, "Train the robust model").evaluate(TEXT_CUT), "the button's label is cut"
        _button(page, "Train the robust model").click()
        wait_idle(page, WAIT)
    with step(page, "Train shows the robust preset's settings, not fast's"):
        wait_text(page, "Train a model", WAIT)
        wait_idle(page, WAIT)
        # read once the page has drawn the new session's widgets (the first frame may still hold the old ones)
        seen = _wait_input_value(page, "Ensemble size", "3", WAIT)
        assert seen[-1:] == ["3"], f"the Ensemble size box held {seen} (in turn) over {WAIT} s, not 3"
        assert _combo_value(page, "Preset").startswith("robust")
    with step(page, "stop the robust run"):
        _button(page, "⏹ Stop").click()
        wait_idle(page, WAIT)
    assert_no_exception(page, "Train from Classify")


def test_settings_survive_a_visit_to_another_page(page, own):
    with step(page, "on Train, set 7 epochs and seed 5"):
        goto(page, own.url, "/train")
        for label, value in (("Epochs", "7"), ("Seed", "5")):
            fill_box(page, label, value, WAIT)
            wait_idle(page, WAIT)
        assert _wait_input_value(page, "Epochs", "7", WAIT)[-1] == "7"
    with step(page, "look at Data, then come back to Train: the settings are still 7 and 5"):
        page.get_by_role("link", name="Data").first.click()
        wait_text(page, "Sample images", WAIT)
        page.get_by_role("link", name="Train").first.click()
        wait_text(page, "Train a model", WAIT)
        for label, value in (("Epochs", "7"), ("Seed", "5")):
            seen = _wait_input_value(page, label, value, WAIT)
            assert seen[-1:] == [value], f"the {label} box held {seen} (in turn), not the {value} set before"
        # and the link to share says so, once the page's script has reached the line that writes it: the
        # boxes are drawn before it, and a fresh clone's first run once read the URL in between
        try:
            page.wait_for_function("() => location.search.includes('epochs=7')", timeout=WAIT * 1000)
        except Exception:  # noqa: BLE001 - the assertion below says what the URL held
            pass
        assert "epochs=7" in page.url, page.url
    assert_no_exception(page, "Train after a visit to Data")


def test_a_single_loss_point_has_readable_axis_ticks(page, own):
    with step(page, "open the run of one logged step"):
        goto(page, own.url, "/train?run=logreg-one-step")
        wait_chart(page, "live_loss", WAIT)
    with step(page, "every tick label is short"):
        ticks = page.evaluate("(sel) => Array.from(document.querySelectorAll(sel + ' .xtick text, ' + sel + "
                              "' .ytick text'), t => t.textContent)", chart_selector("live_loss"))
        assert ticks and all(len(t) <= 6 for t in ticks), f"unreadable ticks: {ticks}"


def test_the_preset_description_is_not_cut_off(page, own):
    with step(page, "open Train"):
        goto(page, own.url, "/train")
    with step(page, "the preset's description is shown whole"):
        text = page.inner_text("body")
        assert PRESET_DESCRIPTIONS["fast"] in text  # whole, as a caption
        value = page.get_by_role("combobox", name="Preset")
        assert value.evaluate("e => e.scrollWidth <= e.clientWidth"), "the preset's label is cut off"
        assert "in seconds" not in page.locator("[data-testid='stAlert']").last.inner_text()


def test_a_single_image_tile_is_not_a_sliver(page, own):
    with step(page, "open Evaluate on a mistake with one image"):
        goto(page, own.url, "/evaluate?run=logreg-ready")
        wait_chart(page, "eval_cm", WAIT)
        one = next(c for c in page.evaluate(CELLS, chart_selector("eval_cm")) if c[2] == "1" and c[0] != c[1])
        for name, letter in (("True letter", one[4]), ("Predicted letter", one[3])):
            box = page.get_by_role("combobox", name=name)
            box.click()
            box.fill(letter)
            page.keyboard.press("Enter")
            wait_idle(page, WAIT)
        wait_text(page, "was predicted as", WAIT)  # one image: "1 of the ... was"
        wait_chart(page, "eval_pair_images", WAIT)
    with step(page, "the figure is as wide as plotly laid it out"):
        drawn, laid_out = page.evaluate("(sel) => { const g = document.querySelector(sel);"
                                        " return [g.getBoundingClientRect().width, g._fullLayout.width]; }",
                                        chart_selector("eval_pair_images"))
        assert drawn >= laid_out - 1, f"the tile is cut to {drawn} of {laid_out} px"


def test_hardest_letters_are_never_perfect(page, own):
    with step(page, "open Evaluate"):
        goto(page, own.url, "/evaluate?run=tour-convnet")
        wait_text(page, "Hardest letters by F1", WAIT)
    with step(page, "no letter at 100% F1 is called hard"):
        line = next(t for t in page.inner_text("body").splitlines() if "Hardest letters by F1" in t)
        assert "(100%)" not in line, line


def test_tables_fit_a_phone_screen(browser, own):
    ctx = browser.new_context(viewport={"width": 390, "height": 900})
    page = ctx.new_page()
    try:
        with step(page, "Home at 390 px"):
            goto(page, own.url, "/")
            wait_text(page, "Latest runs", WAIT)
            table = page.locator("[data-testid='stTable'], [data-testid='stDataFrame']").last
            table.wait_for(timeout=WAIT * 1000)
            page.wait_for_timeout(1000)  # a data frame sizes its grid after it appears
            fits = table.evaluate("e => { const r = e.getBoundingClientRect();"
                                  " return r.right <= window.innerWidth && e.scrollWidth <= e.clientWidth + 1; }")
            assert fits, "Home's latest runs are clipped on the right at 390 px"
            assert table.get_attribute("data-testid") == "stTable" and "training time" in table.inner_text()
        with step(page, "Runs at 390 px: its 13-column table stays inside the screen and scrolls within its frame"):
            goto(page, own.url, "/runs")
            grid = page.locator("[data-testid='stDataFrame']").last
            grid.wait_for(timeout=WAIT * 1000)
            page.wait_for_timeout(1000)
            right = grid.evaluate("e => e.getBoundingClientRect().right")
            assert right <= page.evaluate("() => window.innerWidth"), f"the Runs table ends at {right} px"
        with step(page, "Train at 390 px: Start and the sentence under it stay inside the screen"):
            # the run's box had a 440-px minimum: the page was 456 px wide, "the chart here sh…" cut off
            goto(page, own.url, "/train")
            wait_text(page, "Press Start to train", WAIT)
            wide = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollWidth")
            assert wide <= page.evaluate("() => window.innerWidth"), f"the Train page is {wide} px wide"
            start = page.get_by_role("button", name="Start").first.evaluate("e => e.getBoundingClientRect().right")
            assert start <= page.evaluate("() => window.innerWidth"), f"Start ends at {start} px"
    finally:
        ctx.close()


def test_tour_marks_page_steps_done_and_a_reload_resumes(page, own):
    with step(page, "walk the tour to step 7"):
        goto(page, own.url, "/guide?step=1")  # from step 1: without a step it opens after the runs' last
        for k in range(2, 8):
            _button(page, "Next →").click()
            wait_text(page, f"Step {k} of 8", WAIT)
            wait_idle(page, WAIT)
    with step(page, "steps 1, 3 and 6 have their ✅"):
        sidebar = page.locator("[data-testid='stSidebar']").inner_text()
        for title in ("1. Look at the data", "3. Look at its 24 weight templates",
                      "6. Look at the learned kernels and feature maps"):
            assert f"✅ {title}" in sidebar, f"no ✅ for {title}:\n{sidebar}"
    with step(page, "a reload opens step 7 again"):
        page.reload()
        wait_idle(page, WAIT)
        wait_text(page, "Step 7 of 8", WAIT)
    with step(page, "the tour's time claims come from this server"):
        page.get_by_role("button", name=re.compile("2. Train logistic regression")).click()
        wait_text(page, "Step 2 of 8", WAIT)
        wait_idle(page, WAIT)
        # the page writes its time words last, after its buttons (a network never trained here is timed
        # first): on a loaded machine the page read idle before they came (this step failed 2 runs in ~10)
        wait_text(page, "Your run trained for", WAIT)
        text = page.inner_text("[data-testid='stMain']")
        # the step's own run first (this test's run of the step exists), then the estimate for another
        assert "about a minute" not in text and re.search(
            r"Your run trained for \d+\.\d s\. Again, it takes about \d+ (s|min)( of training)? on this server", text), text


def test_an_unreadable_upload_is_explained_in_student_words(page, own):
    with step(page, "upload a file that is not a picture"):
        goto(page, own.url, "/classify?run=logreg-ready")
        page.get_by_role("tab", name="📁 Upload").click()
        wait_idle(page, WAIT)
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
            files=[{"name": "hand.png", "mimeType": "image/png", "buffer": b"this is not a picture"}])
        wait_text(page, "not an image we can open; use a picture file", WAIT)
    assert "PIL" not in page.inner_text("body")
