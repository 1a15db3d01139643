"""Teach it your hand in a real browser: upload photos of two letters, see them, drop one,
press Calibrate and find the new run, then open it on Classify.

The photos are made here from the bundled dataset's test images (shrunk onto a grey border and
upscaled, like a photo of a hand that does not fill the frame). The new run is deleted at the end,
so the other browser tests find the runs folder as they expect.
"""
from __future__ import annotations

import numpy as np
import pytest
from _helpers import NARROW, assert_no_exception, goto, narrow_window, step, wait_idle, wait_text

WAIT_MS = 180_000  # calibration takes seconds, but the test machine may be shared
RUN = "convnet-ready"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two photos each of A and B: 120x120 RGB PNGs made from the dataset's test images."""
    from PIL import Image

    from signlab.data import load_dataset
    from signlab.labels import LETTERS

    test = load_dataset().test
    d = tmp_path_factory.mktemp("calibrate-photos")
    out: dict[str, list] = {}
    for letter in "AB":
        for n, i in enumerate(np.flatnonzero(test.targets == LETTERS.index(letter))[:2]):
            canvas = np.full((36, 36), 120, np.uint8)
            canvas[4:32, 4:32] = test.images[i]
            path = d / f"{letter.lower()}{n + 1}.png"
            Image.fromarray(canvas).resize((120, 120), Image.Resampling.BICUBIC).convert("RGB").save(path)
            out.setdefault(letter, []).append(path)
    return out


def _choose_letter(page, letter: str) -> None:
    page.get_by_role("combobox", name="Letter").click()
    page.get_by_role("option", name=letter, exact=True).click()
    wait_idle(page)


def _upload(page, files) -> None:
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files([str(f) for f in files])
    page.wait_for_timeout(500)
    wait_idle(page)


def test_upload_drop_calibrate_and_classify(page, server, runs_dir, photos):
    from signlab.runs import delete_run, list_runs, open_run

    before = {r.id for r in list_runs(runs_dir)}
    try:
        with step(page, f"open Teach it your hand with ?run={RUN}"):
            goto(page, server, f"/calibrate?run={RUN}")
            wait_text(page, "Teach it your hand")
            assert RUN in page.get_by_role("combobox", name="Run to adapt").input_value()
            assert page.get_by_role("button", name="Calibrate").is_disabled()
            left = page.locator(".st-key-calibrate_photos_left").bounding_box()
            right = page.locator(".st-key-calibrate_photos_right").bounding_box()
            assert left and right and right["x"] > left["x"] + left["width"], (left, right)  # side by side
        with step(page, f"in a window of {NARROW} px the letter's advice has room (as a third it ran a word a line), "
                        "and the upload moves under it"), narrow_window(page):
            page.wait_for_timeout(500)
            left = page.locator(".st-key-calibrate_photos_left").bounding_box()
            right = page.locator(".st-key-calibrate_photos_right").bounding_box()
            assert left and left["width"] >= 250, left
            assert right and right["y"] >= left["y"] + left["height"] - 1 and right["x"] + right["width"] <= NARROW, \
                (left, right)
        with step(page, "upload two photos of A"):
            _choose_letter(page, "A")
            _upload(page, photos["A"])
            wait_text(page, "Collected: 2 photos of 1 letter.")
        with step(page, "upload two photos of B"):
            _choose_letter(page, "B")
            _upload(page, photos["B"])
            wait_text(page, "Collected: 4 photos of 2 letters.")
            assert page.locator("[data-testid='stImage']").count() >= 4, "the gallery shows no photos"
        with step(page, "drop one photo"):
            page.get_by_role("button", name="✕").first.click()
            wait_text(page, "Collected: 3 photos of 2 letters.")
            wait_idle(page)
        with step(page, "press Calibrate and see the new run"):
            page.get_by_role("button", name="Calibrate").click()
            wait_text(page, "Saved as a new run", timeout=WAIT_MS / 1000)
            wait_idle(page)
            new = {r.id for r in list_runs(runs_dir)} - before
            assert len(new) == 1, f"expected one new run, found {new}"
            (new_id,) = new
            name = open_run(new_id, runs_dir).name  # by its name, as the pickers show it
            assert name in page.inner_text("body"), f"the page does not name the new run ({name})"
            assert "Collected:" not in page.inner_text("body"), "the photos were not cleared after saving"
        assert_no_exception(page, "after calibrating")
        with step(page, "open the new run on Classify"):
            page.get_by_role("button", name="Try it on Classify").click()
            wait_text(page, "Classify a sign")
            wait_idle(page)
            picked = page.get_by_role("combobox", name="Model").input_value()
            assert "calibrated on 3 photos" in picked, f"Classify did not open the calibrated run: {picked}"
            # a calibrated run is for photos: the page opens on the upload, without urging the robust preset
            page.get_by_text("A photo of a hand").first.wait_for(timeout=WAIT_MS)
            assert "Train the robust model" not in page.inner_text("body")
        assert_no_exception(page, "Classify with the calibrated run")
    finally:
        for run_id in {r.id for r in list_runs(runs_dir)} - before:
            delete_run(run_id, runs_dir)
