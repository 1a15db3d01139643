"""What a user does, in a real browser: open every page, train and watch, switch pages, stop."""
from __future__ import annotations

import time

import pytest
from _helpers import (FULL, LIVE_CANVAS, NARROW, assert_no_exception, cut_controls, goto, keyed_plot, live_x, narrow_window, tile_row,
                      plot_count, step, wait_chart, wait_idle, wait_live_chart, wait_points_above)

from signlab import live

PAGES = ["/", "/guide", "/data", "/train", "/evaluate", "/kernels", "/classify", "/calibrate", "/runs", "/sweeps"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_opens_without_exception(page, server, path):
    with step(page, f"open {path}"):
        goto(page, server, path)
        assert_no_exception(page, path)
        heading = page.locator("h1").first.inner_text()
        assert heading.strip(), f"{path} has no title"



def test_data_controls_are_whole_in_a_narrow_window(page, server):
    with step(page, f"open Data in a window of {NARROW} px (the sidebar open)"), narrow_window(page):
        goto(page, server, "/data")
        page.get_by_role("button", name="Reshuffle").wait_for(timeout=30_000)
        controls, bad = cut_controls(page)
        counts = page.locator(".st-key-data_counts_box").bounding_box()
        means = page.locator(".st-key-data_means_box").bounding_box()
        wait_chart(page, "data_samples", 60)
        width, per_row = tile_row(page, "data_samples")
    with step(page, "the sample hands are big enough to see (16 a row made them 26 px)"):
        assert per_row and width / per_row >= 50, (width, per_row)
    with step(page, "the letter counts have room for 24 letters, and the means sit under them"):
        assert counts and counts["width"] >= 380 and counts["x"] + counts["width"] <= NARROW, counts
        assert means and means["y"] >= counts["y"] + counts["height"] - 1, (counts, means)
    with step(page, "in the tests' wider window the means sit beside the counts"):
        page.wait_for_timeout(500)
        counts = page.locator(".st-key-data_counts_box").bounding_box()
        means = page.locator(".st-key-data_means_box").bounding_box()
        assert abs(means["y"] - counts["y"]) < 2 and means["x"] > counts["x"] + counts["width"], (counts, means)
    with step(page, "no control is cut or runs off the window (columns cut 'Reshuffle' to 'R…')"):
        names = [c[0] for c in controls]
        assert any("Reshuffle" in n for n in names), names
        assert not bad, f"cut or off the window: {bad}"


def test_home_buttons_are_whole_in_a_narrow_window(page, server):
    with step(page, f"open Home in a window of {NARROW} px (the sidebar open)"), narrow_window(page):
        goto(page, server, "/")
        page.get_by_role("button", name="Start the guided tour").wait_for(timeout=30_000)
        controls, bad = cut_controls(page)
        wait_chart(page, "home_letters", 60)
        width, per_row = tile_row(page, "home_letters")
    with step(page, "the letters' hands are big enough to see (twelve a row left each about 40 px)"):
        assert per_row and width / per_row >= 50, (width, per_row)
    with step(page, "no button is cut or runs off the window (columns cut 'Start the guided …')"):
        assert sum("guided tour" in c[0] or "Train a model" in c[0] or "Classify" in c[0] for c in controls) == 3, controls
        assert not bad, f"cut or off the window: {bad}"


def test_train_settings_are_whole_in_a_narrow_window(page, server):
    """As a third of the page the settings were 130 px wide in an 820-px window: 'Learni/ng rate', and
    the optimizer, schedule and device read 'a', 'o', 'a'. Under them, Start was below the fold."""
    with step(page, "in the tests' wide window the run's side sits beside the settings"):
        goto(page, server, "/train")
        page.get_by_role("button", name="Start").wait_for(timeout=30_000)
        settings = page.locator(".st-key-train_left").bounding_box()
        run_side = page.locator(".st-key-train_right").bounding_box()
        assert abs(run_side["y"] - settings["y"]) < 2 and run_side["x"] > settings["x"] + settings["width"], \
            (settings, run_side)
        # the page starts under Streamlit's header, not 6rem down: at 1280x800 the live chart was below the fold
        title = page.locator("[data-testid='stMain'] h1").bounding_box()
        header = page.locator("[data-testid='stHeader']").bounding_box()
        assert header["height"] - 1 <= title["y"] <= header["height"] + 1, (title, header)  # under it, not 6rem down
    with step(page, f"in a window of {NARROW} px the settings have room and the run's side moves above them"), \
            narrow_window(page):
        settings = page.locator(".st-key-train_left").bounding_box()
        run_side = page.locator(".st-key-train_right").bounding_box()
        start = page.get_by_role("button", name="Start").bounding_box()
        choices = page.locator(".st-key-train_left [data-testid=stSelectbox]").evaluate_all(
            "es => es.map(e => [e.innerText.trim(), e.getBoundingClientRect().width])")
        controls, bad = cut_controls(page)
    with step(page, "no setting's name or choice is cut, and the run's side is whole, Start in the first screen "
                    "(under the settings it was 1,400 px down)"):
        assert settings["width"] >= 260 and settings["y"] >= run_side["y"] + run_side["height"] - 1, (settings, run_side)
        assert start["y"] + start["height"] <= FULL["height"], start
        assert run_side["x"] + run_side["width"] <= NARROW, run_side
        assert any("Learning rate" in c[0] for c in controls) and not bad, f"cut or off the window: {bad}"
        assert len(choices) >= 5 and min(w for _, w in choices) >= 100, f"a choice box is narrow: {choices}"


def test_sweeps_form_is_whole_in_a_narrow_window(page, server):
    """The new-sweep form was a third of the page: 130 px in an 820-px window, one word a line."""
    with step(page, f"open Sweeps in a window of {NARROW} px (the sidebar open)"), narrow_window(page):
        goto(page, server, "/sweeps")
        page.get_by_role("button", name="Start sweep").wait_for(timeout=30_000)
        # the architecture above the form (so what is searched follows it), the four numbers in it
        boxes = page.locator("[data-testid=stExpander] input").evaluate_all(
            "es => es.map(e => e.closest('[data-testid=stElementContainer]').getBoundingClientRect().width)")
        controls, bad = cut_controls(page)
    with step(page, "each of the five settings has room for its number, and nothing is cut"):
        assert len(boxes) == 5 and min(boxes) >= 140, boxes
        assert any("Start sweep" in c[0] for c in controls), controls
        assert not bad, f"cut or off the window: {bad}"


def _points(page) -> int:
    xs = live_x(page)
    return len(xs) if xs else 0


def test_train_chart_moves_survives_page_switch_and_stops(page, server):
    # a run long enough to watch: the lecture's ConvNet at batch 32 takes ~17 s an epoch on 2 cores, 8 s
    # in bf16, and this test waits up to a few 30-s spells before Stop: 10 epochs, so it is still
    # training when Stop is pressed (Stop ends it)
    url = "/train?preset=lecture&model=convnet&epochs=10&batch_size=32&lr=0.001&optimizer=adam&schedule=none&augment=False"
    with step(page, "open Train with settings from the URL, in a laptop's 1280x800 window"):
        page.set_viewport_size({"width": 1280, "height": 800})
        goto(page, server, url)
        assert "flaw fixed" in page.inner_text("body"), "the URL's model=convnet was not applied"
    feed: list[int] = []  # the statuses of the chart's own requests to the loss feed (signlab.live)
    page.on("response", lambda r: feed.append(r.status) if live.PATH in r.url else None)
    with step(page, "press Start"):
        page.get_by_role("button", name="Start").click()
        wait_live_chart(page, 60)
    with step(page, "Start scrolled the run under the header: the live chart is whole in the window"):
        # it was left at 600 px, under the title and introduction, its first 200 px in view
        header = page.locator("[data-testid=stHeader]").bounding_box()
        buttons, chart = page.get_by_role("button", name="Start").bounding_box(), page.locator(LIVE_CANVAS).bounding_box()
        assert header["y"] + header["height"] <= buttons["y"] < chart["y"], (header, buttons, chart)
        assert chart["y"] + chart["height"] <= 800, chart
    with step(page, "while it trains, the loss is drawn on the live canvas, not by plotly"):
        assert page.locator(LIVE_CANVAS).count() == 1
        assert plot_count(page) == 0, "a plotly chart is redrawn while the run trains"
    with step(page, "the loss chart gains points without reloading"):
        wait_points_above(page, 1)
        first = _points(page)
        wait_points_above(page, first, 30)
        second = _points(page)
        assert second > first
    with step(page, "the chart reads the loss feed itself; the feed answers no one without the page's token"):
        for _ in range(120):  # the chart asks about twice a second; on a loaded machine, less often
            if len(feed) >= 5:
                break
            page.wait_for_timeout(250)
        assert len(feed) >= 5 and set(feed) == {200}, feed
        assert page.request.get(server + live.PATH + "?token=guessed").status == 404
    with step(page, "the epoch and health charts wait for a click while it trains, then are drawn"):
        assert "are drawn when the run pauses or ends" in page.inner_text("body")
        page.get_by_role("button", name="Draw them now").click()
        page.get_by_role("button", name="Redraw them").wait_for(timeout=30_000)
        # drawn, not only the button's new word: the health monitor's charts, a plotly chart beside the canvas
        page.get_by_text("🩺 The network's health").wait_for(timeout=30_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        wait_points_above(page, second, 30)  # the live chart kept polling meanwhile
    with step(page, "switch to Data and back while it trains"):
        page.get_by_role("link", name="Data").first.click()
        wait_idle(page)
        time.sleep(2)
        page.get_by_role("link", name="Train").first.click()
        wait_live_chart(page, 30)
        wait_points_above(page, second - 1, 30)  # the chart came back with the run's history...
        back = max(_points(page), second)  # a read during a redraw can see no data: never below the history
        wait_points_above(page, back, 30)  # ...and keeps growing
    with step(page, "press Stop"):
        page.get_by_role("button", name="Stop").click()
        page.wait_for_function("() => document.body.innerText.includes('Stopped')", timeout=60_000)
        assert_no_exception(page, "Train after Stop")
    with step(page, "once stopped, the loss is a plotly chart (hover, zoom) with the run's whole history"):
        wait_chart(page, "live_loss", 30)
        assert len(keyed_plot(page, "live_loss", 0, "x")) >= back


def test_a_link_to_a_page_on_a_fresh_server_goes_through_the_router(page, tmp_path):
    """The first request of a new server is a shared link to /runs: the page is drawn inside app.py's
    router (its sections, the device line, wide layout), not as a bare script. With a folder named
    ``pages/`` Streamlit served it bare until the first st.navigation call (app.py says why the
    folder is app_pages/)."""
    from _helpers import Server

    server = Server(tmp_path / "runs", limit=1, log=tmp_path / "streamlit.log")
    try:
        with step(page, "open /runs as the server's first request"):
            page.goto(server.url + "/runs")
            page.wait_for_selector("[data-testid='stMain'] h1", timeout=90_000)
            wait_idle(page)
            assert_no_exception(page, "/runs")
            assert "Runs" in page.locator("h1").first.inner_text()
            sidebar = page.locator("[data-testid='stSidebar']").inner_text()
            assert "Work" in sidebar and "Guided tour" in sidebar and "Device:" in sidebar, sidebar
    finally:
        server.stop()
