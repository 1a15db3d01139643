"""Classifying what people upload: dataset images saved in every image mode come back as the same
28x28 input, ``predict`` agrees with the model on the dataset tensors, the views of *why* have the
right shapes and ranges, out-of-domain inputs are flagged, and the Classify page works in AppTest.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from signlab import api, compare
from signlab.config import TrainConfig, preset
from signlab.inference import (occlude, occlusion_map, predict, predict_prepared, saliency_map)
from signlab.labels import LETTERS
from signlab.models import model_kind
from signlab.preprocess import (Crop, canvas_to_gray, looks_unusual, prepare, prepare_array, resize28, to_png,
                                TTA_VIEWS, TTA_ZOOMS, upscale, zoomed_views)
from signlab.runs import create_run, open_run

APP = str(Path(__file__).resolve().parent.parent / "app.py")
R = Image.Resampling


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def hand(dataset) -> np.ndarray:
    """One test image of the dataset, uint8 (28, 28)."""
    return dataset.test.images[7]


def _err(x: np.ndarray, a: np.ndarray) -> tuple[float, float]:
    d = np.abs(np.asarray(x, np.float64) - a / 255.0)
    return float(d.mean()), float(d.max())


# --------------------------------------------------------------------------- every image mode
@pytest.mark.parametrize("mode", ["L", "RGB", "LA", "CMYK"])
def test_lossless_modes_give_the_dataset_image_back(hand, mode):
    img = Image.fromarray(hand).convert(mode)
    data = _encode(img, "TIFF" if mode == "CMYK" else "PNG")
    assert Image.open(io.BytesIO(data)).mode == mode
    prep = prepare(data, f"hand.{mode}")
    assert prep.image28.shape == (28, 28) and prep.image28.dtype == np.float32
    assert _err(prep.image28, hand)[1] <= 1 / 255 + 1e-6
    assert prep.notes == []


def test_16bit_grey_equals_8bit(hand):
    data16 = _encode(Image.fromarray(hand.astype(np.uint16) * 257))
    assert Image.open(io.BytesIO(data16)).mode == "I;16"
    x16 = prepare(data16, "hand16.png").image28
    x8 = prepare(_encode(Image.fromarray(hand)), "hand8.png").image28
    np.testing.assert_allclose(x16, x8, atol=1 / 255)
    # an upscaled 16-bit photo is the same as the upscaled 8-bit one (no 257x or 1/257 scale slip)
    big = np.asarray(Image.fromarray(hand.astype(np.float32), mode="F").resize((112, 112), R.BICUBIC))
    up16 = prepare(_encode(Image.fromarray(np.clip(big * 257 + 0.5, 0, 65535).astype(np.uint16))), "up16.png")
    up8 = prepare(_encode(Image.fromarray(np.clip(big + 0.5, 0, 255).astype(np.uint8))), "up8.png")
    np.testing.assert_allclose(up16.image28, up8.image28, atol=1.5 / 255)


def test_upscaled_rgb_png_returns_about_the_original(hand):
    for size, method in ((224, R.BICUBIC), (280, R.NEAREST), (500, R.LANCZOS), (57, R.BICUBIC)):
        img = Image.fromarray(hand).resize((size, size), method).convert("RGB")
        mean, worst = _err(prepare(_encode(img), "up.png").image28, hand)
        assert mean < 3 / 255 and worst < 40 / 255, (size, method, mean * 255, worst * 255)


def test_jpeg_quality_70(hand):
    img = Image.fromarray(hand).resize((224, 224), R.BICUBIC).convert("RGB")
    mean, _ = _err(prepare(_encode(img, "JPEG", quality=70), "q70.jpg").image28, hand)
    assert mean < 4 / 255


def test_rgba_with_transparency_is_composited_and_noted(hand):
    rgba = np.zeros((28, 56, 4), np.uint8)  # transparent sides of any colour ...
    rgba[..., :3] = 17
    rgba[:, 14:42, :3] = hand[..., None]  # ... around the opaque hand in the middle
    rgba[:, 14:42, 3] = 255
    rgba[10:14, 20:24, 3] = 0  # and a see-through hole in the hand
    prep = prepare(_encode(Image.fromarray(rgba, "RGBA")), "cutout.png")
    x = prep.image28  # the centre crop is the hand
    expected = hand / 255.0
    expected[10:14, 6:10] = 1.0  # the hole shows the white background
    np.testing.assert_allclose(x, expected, atol=1 / 255)
    assert any("transparent" in n and "white" in n for n in prep.notes)
    black = prepare(_encode(Image.fromarray(rgba, "RGBA")), "cutout.png", background=0.0).image28
    assert black[10:14, 6:10].max() == 0.0
    # an opaque RGBA file (a screenshot) is exactly the image, with no note
    opaque = prepare(_encode(Image.fromarray(hand).convert("RGBA")), "opaque.png")
    assert _err(opaque.image28, hand)[1] <= 1 / 255 and opaque.notes == []


def test_palette_image(hand):
    pal = Image.fromarray(hand).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    data = _encode(pal)
    assert Image.open(io.BytesIO(data)).mode == "P"
    mean, worst = _err(prepare(data, "pal.png").image28, hand)
    assert mean < 1 / 255 and worst < 4 / 255
    gif = _encode(Image.fromarray(hand).convert("P"), "GIF")
    assert _err(prepare(gif, "hand.gif").image28, hand)[0] < 2 / 255


def test_cmyk_jpeg(hand):
    img = Image.fromarray(hand).resize((112, 112), R.BICUBIC).convert("CMYK")
    data = _encode(img, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    assert _err(prepare(data, "cmyk.jpg").image28, hand)[0] < 3 / 255  # not inverted, not darkened


@pytest.mark.parametrize("orientation,stored", [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
                                                (3, Image.Transpose.ROTATE_180)])
def test_exif_rotated_phone_jpeg_is_turned_upright(hand, orientation, stored):
    exif = Image.Exif()
    exif[0x0112] = orientation
    img = Image.fromarray(hand).resize((112, 112), R.BICUBIC).transpose(stored).convert("RGB")
    x = prepare(_encode(img, "JPEG", quality=95, exif=exif.tobytes()), "phone.jpg").image28
    upright = np.corrcoef(x.ravel(), hand.ravel())[0, 1]
    for k in (1, 2, 3):  # any other orientation fits far worse
        assert upright > np.corrcoef(np.rot90(x, k).ravel(), hand.ravel())[0, 1] + 0.1
    assert upright > 0.97


def test_crop_moves_onto_the_hand(hand):
    canvas = np.full((100, 300), 0.5, np.float32)
    canvas[10:66, 220:276] = np.asarray(Image.fromarray(hand).resize((56, 56), R.NEAREST)) / 255.0
    centred = prepare_array(canvas).image28
    assert _err(centred, hand)[0] > 0.05  # the centre crop misses the hand ...
    moved = prepare_array(canvas, Crop(zoom=100 / 56, cx=248 / 300, cy=38 / 100)).image28
    assert _err(moved, hand)[0] < 3 / 255  # ... the zoom and offsets find it


def test_canvas_over_a_dataset_image(hand):
    ground = upscale(hand / 255.0, 280)
    assert ground.shape == (280, 280)
    mean, worst = _err(resize28(ground), hand)  # Lanczos rings a little at the blocks' edges
    assert mean < 2 / 255 and worst < 20 / 255
    strokes = np.zeros((280, 280, 4), np.uint8)  # nothing drawn: the dataset image itself
    assert _err(prepare_array(canvas_to_gray(strokes, background=ground)).image28, hand)[0] < 2 / 255
    strokes[:140, :, :] = [255, 255, 255, 255]  # the top half painted white
    x = prepare_array(canvas_to_gray(strokes, background=ground)).image28
    assert x[:13].min() > 0.98 and _err(x[15:], hand[15:])[0] < 3 / 255
    png = to_png(hand / 255.0)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), hand)


# --------------------------------------------------------------------------- out of domain
def _line_drawing(width: int, fg: int = 0, bg: int = 255) -> np.ndarray:
    from PIL import ImageDraw

    img = Image.new("L", (280, 280), bg)
    d = ImageDraw.Draw(img)
    d.line([(60, 250), (80, 60), (140, 40), (200, 80), (220, 250)], fill=fg, width=width, joint="curve")
    d.line([(110, 200), (170, 200)], fill=fg, width=width)
    return np.asarray(img, np.float32) / 255.0


def test_looks_unusual_flags_drawings_and_empty_canvases(dataset):
    assert looks_unusual(prepare_array(np.full((280, 280), 0.2, np.float32)).image28) == ["the image is almost blank"]
    for width in (3, 6, 12):
        for fg, bg in ((0, 255), (255, 40)):
            x = prepare_array(_line_drawing(width, fg, bg)).image28
            assert looks_unusual(x), (width, fg, bg)
    # each reason for its own kind of image (any one reason removed passed, another still firing)
    said = looks_unusual(prepare_array(_line_drawing(6, 0, 255)).image28)
    assert any(r.startswith("most of the image is one flat shade") for r in said), said
    assert any(r.startswith("the image has about two shades only") for r in said), said
    noise = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    assert looks_unusual(noise) == ["the image is full of thin hard lines or noise, unlike the dataset's smooth photos"]
    dot = np.zeros((280, 280, 4), np.uint8)  # an almost empty canvas: one small dab
    dot[130:150, 130:150] = [230, 230, 230, 255]
    assert looks_unusual(prepare_array(canvas_to_gray(dot, background=60 / 255)).image28)
    images = dataset.test.images[:200] / 255.0
    flagged = sum(bool(looks_unusual(x)) for x in images)
    assert flagged <= 2, flagged


# --------------------------------------------------------------------------- predict and explain
def test_predict_files_agrees_with_the_model_on_the_dataset(trained_run, dataset, tmp_path):
    run, _ = trained_run
    model = run.load_model()
    n = 40
    images = dataset.test.images[:n]
    direct = predict(model, images / 255.0)
    plain, upscaled = [], []
    for i, a in enumerate(images):
        plain.append(tmp_path / f"{i}.png")
        plain[-1].write_bytes(_encode(Image.fromarray(a)))
        upscaled.append(tmp_path / f"{i}_up.png")
        upscaled[-1].write_bytes(_encode(Image.fromarray(a).resize((224, 224), R.NEAREST).convert("RGB")))
    recs = api.predict_files(run, plain, k=24)
    assert len(recs) == len(plain) == len(direct)
    for rec, p in zip(recs, direct):  # the 28x28 file is the dataset tensor exactly
        got = {t["letter"]: t["probability"] for t in rec["top"]}
        np.testing.assert_allclose([got[c] for c in LETTERS], p, atol=1e-5)
    recs = api.predict_files(run, upscaled, k=1)
    assert len(recs) == len(upscaled)
    same = [r["top"][0]["letter"] == LETTERS[int(np.argmax(p))] for r, p in zip(recs, direct)]
    assert np.mean(same) >= 0.95, np.mean(same)
    assert all(r["file"] == str(f) for r, f in zip(recs, upscaled))


def test_zoomed_views_tighten_and_widen_around_the_crop_centre():
    gray = np.zeros((280, 280), np.float32)
    gray[40:240, 40:240] = 1.0  # a bright square covering 200/280 of the side, centred
    prep = prepare_array(gray)
    shipped = zoomed_views(prep)  # the crop as shown comes first: the input the Classify page shows
    assert shipped.shape == (len(TTA_ZOOMS), 28, 28) and np.array_equal(shipped[0], prep.image28)
    assert TTA_VIEWS == 2 * len(TTA_ZOOMS) and min(TTA_ZOOMS) < 1 < max(TTA_ZOOMS)
    # the pages' explanations name them, filled in (not a placeholder left in the text)
    from signlab import teach
    from signlab.preprocess import TTA_FRAMINGS, TTA_WORDS
    assert TTA_WORDS in teach.CLASSIFY_DETAILS and f"({TTA_FRAMINGS})" in teach.CALIBRATE_DETAILS
    assert "<TTA" not in teach.CLASSIFY_DETAILS + teach.CALIBRATE_DETAILS
    views = zoomed_views(prep, (1.0, 1.15, 0.8))
    # the tighter view fills more of the input with the square: 200/243 of the side against 200/280
    assert views[1].mean() == pytest.approx((200 / 243) ** 2, abs=0.03)
    assert views[0].mean() == pytest.approx((200 / 280) ** 2, abs=0.03)
    # the wider one less: 200/350, the photo's dark edge repeated past it
    assert views[2].mean() == pytest.approx((200 / 350) ** 2, abs=0.03)
    # a moved crop: the tighter view stays inside its box, around the box's centre
    frame = np.zeros((400, 400), np.float32)  # outside the box: black
    off = prepare_array(frame, Crop(zoom=2.0, cx=0.3, cy=0.7))
    left, top, right, bottom = off.box
    assert (left, top, right, bottom) == (20, 180, 220, 380)
    frame[top:bottom, left:right] = 0.5  # the box's outer ring of 10 pixels: grey
    frame[top + 10:bottom - 10, left + 10:right - 10] = 1.0  # its inside: white
    views = zoomed_views(prepare_array(frame, Crop(zoom=2.0, cx=0.3, cy=0.7)), (1.0, 1.15))
    assert views[1].min() > 0.999  # 1/1.15 of the side, centred: only the white inside
    assert 0.4 < views[0].min() < 0.6  # the crop itself still shows the grey ring (and no black from outside)


def test_predict_prepared_averages_every_view_for_robust_runs(trained_run, dataset):
    model = trained_run[0].load_model()
    prep = prepare_array(np.kron(dataset.test.images[5] / 255.0, np.ones((8, 8))))  # (224, 224)
    np.testing.assert_allclose(predict_prepared(model, prep), predict(model, [prep.image28])[0], atol=1e-6)
    views = zoomed_views(prep)
    every = predict(model, np.concatenate([views, views[:, :, ::-1]]))  # (TTA_VIEWS, 24): each zoom, then mirrored
    assert len(every) == TTA_VIEWS
    got = predict_prepared(model, prep, tta=True)
    np.testing.assert_allclose(got, every.mean(0), atol=1e-6)
    assert got.sum() == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(got, every[0], atol=1e-3)  # the views do differ: it is an average, not one view


@pytest.fixture(scope="module")
def conv_model(small_dataset, tmp_path_factory):
    """A fastcnn trained for a few dozen steps: enough for Grad-CAM to find evidence."""
    cfg = TrainConfig(model="fastcnn", epochs=1, max_steps=40, augment=False, seed=0, device="cpu")
    rec = api.train(cfg, tmp_path_factory.mktemp("conv_runs"), run_id="conv", dataset=small_dataset,
                    evaluate_test=False)
    return open_run(rec["run_dir"]).load_model()


def test_saliency_and_occlusion_for_logreg(trained_run, dataset):
    model = trained_run[0].load_model()
    x = dataset.test.images[3] / 255.0
    assert model_kind(model) == "logreg"
    pred = int(predict(model, [x])[0].argmax())
    for target in (pred, (pred + 5) % 24):
        sal = saliency_map(model, x, target)
        assert sal.shape == (28, 28) and np.isfinite(sal).all()
        assert np.abs(sal).max() == pytest.approx(1.0) and sal.min() < 0 < sal.max()  # signed votes
        # the template x input sums (with the bias) to the letter's score: it *is* the explanation
        w = model.linear.weight[target].detach().numpy().reshape(28, 28)
        xn = (x - x.mean()) / (x.std(ddof=1) + 1e-5)
        np.testing.assert_allclose(sal, w * xn / np.abs(w * xn).max(), atol=1e-4)
    occ = occlusion_map(model, x, pred)
    assert occ.shape == (28, 28) and (occ > 0).all() and (occ <= 1).all()


def test_gradcam_and_occlusion_for_a_conv_model(conv_model, dataset):
    assert model_kind(conv_model) == "conv"
    x = dataset.test.images[0] / 255.0
    probs = predict(conv_model, [x])[0]
    pred = int(probs.argmax())
    for target in (pred, int(np.argsort(probs)[-2])):
        cam = saliency_map(conv_model, x, target)
        assert cam.shape == (28, 28) and np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
    assert saliency_map(conv_model, x, pred).max() == pytest.approx(1.0)
    occ = occlusion_map(conv_model, x, pred, patch=7, stride=3)
    assert occ.shape == (28, 28) and (occ > 0).all() and (occ <= 1).all()  # every pixel covered, edges too
    assert occ.min() < probs[pred]  # covering something lowers the letter's probability
    covered = occlude(x, 0, 21, 7)
    assert covered[0:7, 21:28] == pytest.approx(x.mean()) and np.array_equal(covered[7:], x[7:].astype(np.float32))


def test_gradcam_works_for_every_conv_model(dataset):
    from signlab.models import create_model, model_names

    x = dataset.test.images[0] / 255.0
    for name in model_names():
        model = create_model(name).eval()
        kind = model_kind(model)
        assert kind == {"logreg": "logreg", "mlp": "mlp"}.get(name, "conv")
        sal = saliency_map(model, x, 0)
        assert sal.shape == (28, 28) and np.isfinite(sal).all()
        assert (sal.min() >= -1 - 1e-6) and sal.max() <= 1 + 1e-6


# --------------------------------------------------------------------------- the page
def test_preferred_photo_run(tmp_path):
    from signlab import ui
    from signlab.runs import list_runs

    old = create_run(preset("robust"), tmp_path, run_id="a-robust-old", status="completed")
    (old.dir / "model.safetensors").write_bytes(b"x")
    unfinished = create_run(preset("robust"), tmp_path, run_id="b-robust-running", status="stopped")
    (unfinished.dir / "model.safetensors").write_bytes(b"x")
    newest = create_run(TrainConfig(model="logreg"), tmp_path, run_id="c-fast", status="completed")
    (newest.dir / "model.safetensors").write_bytes(b"x")
    available = [r for r in list_runs(tmp_path) if r.has_weights()]
    assert available[0].id == "c-fast"
    assert compare.preferred_run(available, "photo")[0].id == "a-robust-old"
    assert compare.preferred_run([r for r in available if r.id != "a-robust-old"], "photo")[0].id == "c-fast"
    assert compare.preferred_run([], "photo")[0] is None
    # the picker's labels say which runs are robust ensembles; the default preset goes unsaid
    assert ui.run_label(old).startswith("a-robust-old · fastcnn ×3 · robust · completed")
    assert ui.run_label(newest).startswith("c-fast · logreg · completed")
    # a run with only a validation accuracy (still training) names it: "running, 37.4%" read as progress
    newest.store.annotate("c-fast", val_accuracy=0.374)
    newest.row = None
    assert ui.run_label(newest).startswith("c-fast · logreg · completed, validation 37.40%")
    newest.store.annotate("c-fast", test_accuracy=0.9)
    newest.row = None
    assert ui.run_label(newest).startswith("c-fast · logreg · completed, 90.00%")
    # two decimals, as the Runs table: runs at 99.75% and 99.71% both read "99.7%" in the pickers
    newest.store.annotate("c-fast", test_accuracy=0.9975)
    newest.row = None
    assert ui.run_label(newest).startswith("c-fast · logreg · completed, 99.75%")
    # a test accuracy of 0 (a diverged run) is a test accuracy, not a missing one
    newest.store.annotate("c-fast", test_accuracy=0.0)
    newest.row = None
    assert ui.run_label(newest).startswith("c-fast · logreg · completed, 0.00%")


@pytest.fixture
def page_env(dataset, tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("classify_runs")
    cfg = TrainConfig(model="logreg", epochs=1, max_steps=20, augment=False, seed=0)
    record = api.train(cfg, root, run_id="tiny-logreg", dataset=dataset)
    assert record["status"] == "completed"
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(root))
    return root


def test_classify_page(page_env, dataset):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/classify.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert "tiny-logreg" in at.selectbox[0].value
    # the Draw tab opens first: an empty canvas has nothing to classify, so no letter and no Grad-CAM
    assert any("Nothing to classify" in i.value for i in at.info)
    assert not [m.value for m in at.markdown if m.value.startswith("####")]
    assert len(at.get("plotly_chart")) == 2  # the canvas's image and its 28x28 input only
    # started from a dataset image, the picture is titled as the test image it is ("Your drawing: crop")
    at.radio(key="classify_start").set_value("a dataset image").run()
    assert not at.exception, [e.message for e in at.exception]
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert any(t.startswith("Test image #") and t.endswith(": crop") for t in titles), titles
    # a drawing is read by the image model alone: the occlusion map's words name nothing else ("from 16%
    # for this input alone" under a verdict of 16.1% left a student asking what else there was)
    occlusion = [c.value for c in at.caption if c.value.startswith("A grey patch slides over the input")]
    assert len(occlusion) == 1 and "with nothing covered" in occlusion[0], occlusion
    assert "alone" not in occlusion[0] and "image model" not in occlusion[0], occlusion
    at.radio(key="classify_start").set_value("a blank canvas").run()
    # upload an upscaled dataset image
    at.session_state["classify_source"] = "📁 Upload"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    a = dataset.test.images[0]
    png = _encode(Image.fromarray(a).resize((224, 224), R.BICUBIC).convert("RGB"))
    at.get("file_uploader")[0].upload("hand.png", png, "image/png").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    verdict = [m.value for m in at.markdown if m.value.startswith("####")]
    assert len(verdict) == 1, verdict
    assert len(at.get("plotly_chart")) >= 5  # photo with crop, 28x28 input, bars, saliency, occlusion
    # the verdict names the letter the page's own probability bars put first (the model's reading)
    bars = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    bars = [f["data"][0] for f in bars if f["data"] and f["data"][0].get("type") == "bar"
            and f["data"][0].get("orientation") == "h"]
    assert bars, "no probability bars"
    best = bars[0]["y"][int(np.argmax(bars[0]["x"]))]
    assert f" {best} (" in verdict[0] or f"**{best}**" in verdict[0], (best, verdict)
    # and in one line right under the uploader, where the eye is (the full verdict is far below at 820 px)
    short = [m.value for m in at.markdown if m.value.endswith(" · [details and why ↓](#result)")]
    assert short == [verdict[0].removeprefix("#### ") + " · [details and why ↓](#result)"], short
    assert all(k in at.session_state for k in ("classify_zoom", "classify_cx", "classify_cy"))
    # explain another letter, move the crop: still no exception
    [s for s in at.selectbox if s.label == "Explain the letter"][0].set_value(5)
    at.slider(key="classify_zoom").set_value(2.0).run()
    assert not at.exception, [e.message for e in at.exception]
    # a new image gets its own crop: the sliders go to its default (the detector's square, else the centre)
    assert at.slider(key="classify_zoom").value == 2.0
    b = dataset.test.images[1]
    png2 = _encode(Image.fromarray(b).resize((300, 200), R.BICUBIC).convert("RGB"))
    at.get("file_uploader")[0].upload("hand2.png", png2, "image/png").run()
    assert not at.exception, [e.message for e in at.exception]
    default = at.session_state["classify_default_crop"]
    assert at.slider(key="classify_zoom").value == pytest.approx(min(max(default.zoom, 0.25), 4.0), abs=0.006)
    assert at.slider(key="classify_cx").value == pytest.approx(default.cx, abs=0.006)
    assert any("hand detector found" in c.value for c in at.caption)
    # Whole image: the largest centred square, for a picture the hand fills (a walk's smoothly enlarged
    # dataset L, zoomed into by the detector's square, read "perhaps B")
    next(b for b in at.button if b.label == "Whole image").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert [at.slider(key=k).value for k in ("classify_zoom", "classify_cx", "classify_cy")] == [1.0, 0.5, 0.5]
    # the dataset's own 28x28 image is read whole: no advice to move the square onto a hand
    at.get("file_uploader")[0].upload("a28.png", _encode(Image.fromarray(a)), "image/png").run()
    assert not at.exception, [e.message for e in at.exception]
    captions = [c.value for c in at.caption]
    assert any("only 28×28 pixels" in c and "read whole" in c for c in captions), captions
    assert not any("found no hand" in c for c in captions), captions
    # a file that is not an image gives a clear message, not a traceback
    at.get("file_uploader")[0].upload("notes.png", b"label,pixel1\n3,4\n", "image/png").run()
    assert not at.exception
    assert any("not an image" in e.value for e in at.error)
    # the camera tab renders
    at.session_state["classify_source"] = "📷 Camera"
    at.run()
    assert not at.exception, [e.message for e in at.exception]


def test_default_runs_for_photos_and_drawings(tmp_path):
    """Photos: the newest calibrated run, else the newest robust run; drawings: the best by test accuracy,
    so a sweep's weak last trial is not the default."""
    import json
    import time

    from signlab.runs import list_runs

    def make(run_id, cfg, acc, status="completed"):
        r = create_run(cfg, tmp_path, run_id=run_id, status=status)
        (r.dir / "model.safetensors").write_bytes(b"x")
        r.store.annotate(r.id, test_accuracy=acc)
        time.sleep(0.01)  # distinct creation times: the listing is newest first
        return r

    make("a-robust", preset("robust"), 0.998)
    make("b-best-fast", TrainConfig(), 0.9995)
    make("c-sweep-trial", TrainConfig(), 0.90)
    available = [r for r in list_runs(tmp_path) if r.has_weights()]
    assert available[0].id == "c-sweep-trial"
    assert compare.preferred_run(available, "drawing") == (available[1], "your best run by test accuracy")
    assert compare.preferred_run(available, "photo")[0].id == "a-robust"
    calibrated = make("d-calibrated", preset("robust"), 0.99)
    (calibrated.dir / "calibration.json").write_text(json.dumps({"parent": "a-robust", "photos": 24}))
    available = [r for r in list_runs(tmp_path) if r.has_weights()]
    assert calibrated.parent == "a-robust"
    run, why = compare.preferred_run(available, "photo")
    assert run.id == "d-calibrated" and "calibrated" in why
    # the Calibrate page starts on the run before calibration, not the calibrated one (calibrated again
    # by a student who did not mean to)
    assert compare.preferred_run(available, "calibrate")[0].id == "a-robust"
    only = [r for r in available if r.id == "d-calibrated"]
    assert compare.preferred_run(only, "calibrate")[0].id == "d-calibrated"  # nothing else to calibrate: that one
    # drawings (and Evaluate, Kernels, Map) start on a plain run, even beside a calibrated one with a
    # higher test accuracy: it is adapted to one student's photos
    calibrated.store.annotate(calibrated.id, test_accuracy=0.9999)
    assert compare.preferred_run(list_runs(tmp_path), "drawing")[0].id == "b-best-fast"
    assert compare.preferred_run(only, "drawing")[0].id == "d-calibrated"
    unfinished = make("e-unfinished", TrainConfig(), None, status="stopped")
    (unfinished.dir / "model.safetensors").write_bytes(b"x")
    assert compare.preferred_run([*only, unfinished], "calibrate")[0].id == "e-unfinished"  # before a calibrated run
    assert compare.preferred_run([], "photo") == (None, "")


def _uploaded(dataset, name: str):
    """The Classify page under AppTest, on its Upload tab, with test image 0 enlarged to 224 px uploaded."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/classify.py")
    at.run()
    at.session_state["classify_source"] = "📁 Upload"
    at.run()
    png = _encode(Image.fromarray(dataset.test.images[0]).resize((224, 224), R.BICUBIC).convert("RGB"))
    at.get("file_uploader")[0].upload(name, png, "image/png").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_an_upload_is_decoded_once_however_often_the_crop_moves(page_env, dataset, monkeypatch):
    """A 7000x7000 PNG costs seconds and hundreds of MB to decode: the page decodes each upload once
    per session (cached by its hash), not again on every crop-slider move."""
    import signlab.ui as ui_module  # the page decodes through ui.decoded_photo, which calls ui's load_gray

    calls = []
    real = ui_module.load_gray
    monkeypatch.setattr(ui_module, "load_gray", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    at = _uploaded(dataset, "hand.png")
    for v in (0.4, 0.5, 0.6):  # move the crop three times
        at.slider(key="classify_cx").set_value(v).run()
        assert not at.exception, [e.message for e in at.exception]
    assert calls == ["hand.png"], calls


def test_the_open_tab_and_the_last_upload_outlive_a_visit_to_another_page(page_env, dataset):
    """Upload a photo, open Runs, come back: Classify was on the Draw tab and the photo was gone
    (Streamlit drops a widget's state with its page). The tab and the upload are kept."""
    at = _uploaded(dataset, "my hand.png")
    # the uploader takes what calibration reads (the two pages wrote the list each)
    from signlab.calibrate import PHOTO_SUFFIXES

    assert {t.lstrip(".") for t in at.get("file_uploader")[0].proto.type} == {t.lstrip(".") for t in PHOTO_SUFFIXES}
    verdict = [m.value for m in at.markdown if m.value.startswith("####")]
    assert len(verdict) == 1, verdict
    at.switch_page("app_pages/runs.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    at.switch_page("app_pages/classify.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["classify_source"] == "📁 Upload"
    assert any("Your last upload, **my hand.png**, is shown again" in c.value for c in at.caption)
    assert [m.value for m in at.markdown if m.value.startswith("####")] == verdict  # the same photo, read again


def test_a_refused_upload_is_not_shown_again_as_the_last_upload(page_env, dataset):
    """A file the page cannot use is refused once, where it was uploaded. Back from another page,
    Classify said "Your last upload, notes.png, is shown again" over the same refusal: it kept the
    file it had refused. A good upload after it is kept as before."""
    at = _uploaded(dataset, "my hand.png")
    at.get("file_uploader")[0].upload("notes.png", b"this is not an image\n", "image/png").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(e.value.startswith("Cannot use this image") and "notes.png" in e.value for e in at.error), \
        [e.value for e in at.error]
    at.switch_page("app_pages/runs.py")
    at.run()
    at.switch_page("app_pages/classify.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["classify_source"] == "📁 Upload"
    assert not [c.value for c in at.caption if "last upload" in c.value]
    assert not [e.value for e in at.error], [e.value for e in at.error]
    good = _encode(Image.fromarray(dataset.test.images[1]).resize((224, 224), R.BICUBIC).convert("RGB"))
    at.get("file_uploader")[0].upload("again.png", good, "image/png").run()
    at.switch_page("app_pages/runs.py")
    at.run()
    at.switch_page("app_pages/classify.py")
    at.run()
    assert any("Your last upload, **again.png**, is shown again" in c.value for c in at.caption)


def test_with_no_test_accuracy_anywhere_a_finished_run_is_preferred_to_a_newer_stopped_one(tmp_path):
    """No run with a test accuracy (a sweep's trials are tested only at their end): the default fell to
    the newest run whatever its state, a stopped trial over a completed run."""
    from signlab.runs import list_runs

    done = create_run(TrainConfig(model="logreg"), tmp_path, run_id="a-done", status="completed")
    stopped = create_run(TrainConfig(model="logreg"), tmp_path, run_id="b-stopped-trial", status="stopped")
    for run in (done, stopped):
        (run.dir / "model.safetensors").write_bytes(b"x")
    available = [r for r in list_runs(tmp_path) if r.has_weights()]
    assert [r.id for r in available] == ["b-stopped-trial", "a-done"]
    assert compare.preferred_run(available, "drawing") == (available[1], "the newest run")
    assert compare.preferred_run(available[:1], "drawing") == (available[0], "the newest run")  # nothing else
