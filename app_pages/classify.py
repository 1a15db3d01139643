"""Classify: draw, upload or photograph a sign; see the exact 28x28 input, the top letters, and why.

Every source goes through ``signlab.preprocess`` (the one preprocessing path the CLI and the
benchmarks use too); the views of *why* come from ``signlab.inference``, the charts from
``signlab.figures``.
"""
import io

import numpy as np
import streamlit as st

from signlab import figures, ui, views
from signlab.labels import IMAGE_SIZE, LETTERS, unit_pixels
from signlab.teach import CLASSIFY_DETAILS, CLASSIFY_INTRO

CANVAS_PX = 280  # the canvas is the model's 28x28 grid, ten screen pixels a cell
DRAW_CONTROLS_PX = 300  # the canvas's controls: start, shades and stroke width
CROP_KEYS = ("classify_zoom", "classify_cx", "classify_cy")
# box widths in pixels; the page's content is 820 px wide in a 1,280-px window (sidebar open), 488 in an 820-px one
SLIDER_PX = 200  # the crop's three sliders: a row at 1,280 px, two a row at 820
SOURCE_PX, INPUT_PX, BARS_PX = 230, 240, 300  # the photo, the model's input, the top letters
WHY_PX = 360  # each map of why: two a row at 1,280 px (380 with the large gap wrapped there)
UPLOAD_KEY = "classify_upload"  # the uploader's widget key (the page's own state keys are ui.Keys')
IMAGE_KEY, HAND_KEY, DEFAULT_CROP_KEY = ui.Keys.CLASSIFY_IMAGE, ui.Keys.CLASSIFY_HAND, ui.Keys.CLASSIFY_DEFAULT_CROP
WHOLE_KEY = ui.Keys.CLASSIFY_WHOLE

st.title("✋ Classify a sign")
ui.explain(CLASSIFY_INTRO, CLASSIFY_DETAILS)

# the open tab (Streamlit keeps it under the tabs' key) decides which run the page starts on; back
# from another page, the tab that was open (the tabs' own state went with the page)
if ui.Keys.CLASSIFY_SOURCE not in st.session_state and ui.Keys.CLASSIFY_LAST_TAB in st.session_state:
    st.session_state[ui.Keys.CLASSIFY_SOURCE] = st.session_state[ui.Keys.CLASSIFY_LAST_TAB]
source = st.session_state.get(ui.Keys.CLASSIFY_SOURCE) or ui.CLASSIFY_TABS[0]
purpose = "drawing" if "Draw" in source else "photo"
run = ui.classify_run_picker(
    purpose=purpose,
    help="Photos: by default your newest calibrated run, else the newest run of the robust preset (the best on "
         "photos). Drawings: by default your best run by test accuracy.")
if run is None:
    st.stop()
model = ui.or_stop("Could not load the model", ui.load_model, run)
cfg = run.config
# a run trained for photos (its photo-like images: the robust preset), or one already fitted to them
if not cfg.augment_photo and run.parent is None:
    # the button under the words, not beside them: a quarter column cut its label ("Train the rob…")
    # in a window of 820 px
    robust = views.preset(views.PHOTO_PRESET)

    def robust_aside(when: str) -> None:
        st.caption(f"This run's model is **{cfg.model}**. Photos of real hands look unlike the dataset; a run of "
                   "the **robust** preset is trained for them (zoomed-out hands, plain backgrounds, either hand) "
                   f"and does much better on photos: {when}.")

    @st.fragment(run_every=2)
    def robust_aside_until_timed() -> None:
        # redrawn until the timing is done; then the page runs once more, draws the time, and stops polling
        if not ui.trials_timing():
            st.rerun()
        robust_aside(ui.time_estimate(robust, timing="background"))

    # its time before the click: a few of its steps are timed in the background (timed in the page,
    # Classify's first look stood blank for 3 s), and the words say so until the time shows
    when = ui.time_estimate(robust, timing="background")
    if ui.trials_timing():
        robust_aside_until_timed()
    else:
        robust_aside(when)
    # a help that stays the same: the estimate in it changed between reruns, and a click on a button
    # whose identity changed in the rerun it triggers is lost
    if st.button("Train the robust model", help="Starts the robust preset; this page uses it for photos once it is done."):
        with ui.guard("Could not start"):
            new = ui.submit(robust, name="robust model for photos")
            ui.open_train(new.id, views.PHOTO_PRESET)  # the Train page's settings show the robust preset, not fast


def _slider_values(crop: views.Crop) -> tuple[float, float, float]:
    """A crop as the sliders show it: within their ranges, on their 0.01 steps."""
    return (round(min(max(crop.zoom, views.MIN_PAD_ZOOM), 4.0), 2), round(min(max(crop.cx, 0.0), 1.0), 2),
            round(min(max(crop.cy, 0.0), 1.0), 2))


def _reset_crop() -> None:
    """The sliders back to this image's own crop: the detector's square, else the centre square."""
    for k, v in zip(CROP_KEYS, _slider_values(st.session_state.get(DEFAULT_CROP_KEY) or views.Crop())):
        st.session_state[k] = v


def _whole_crop() -> None:
    """The sliders to the largest centred square: all of a square picture the hand fills (a dataset
    image enlarged smoothly, which the detector's square zoomed into: "perhaps B" of an L)."""
    for k, v in zip(CROP_KEYS, (1.0, 0.5, 0.5)):
        st.session_state[k] = v


def _crop_controls(hand, whole: str | None, shape: tuple[int, int]) -> views.Crop:
    """Zoom and offset sliders: the square of the photo (``shape``: its height and width) that
    becomes the 28x28 input. ``whole``: why the detector was not asked (read whole), or None."""
    if any(k not in st.session_state for k in CROP_KEYS):
        _reset_crop()
    if whole == "small":
        st.caption(views.small_image_text(shape))
    elif whole == "enlarged":
        st.caption(views.enlarged_image_text(shape))
    elif hand is not None:
        st.caption(f"The hand detector found a hand ({views.percent(hand.presence, 0)} sure): "
                   f"the orange square is 1.5 times the "
                   "box around its 21 landmarks (green). Move it with the sliders; **Reset** returns to the "
                   "detector's square, and **Whole image** takes the largest centred square (for a picture the "
                   "hand fills, as in the dataset's own images).")
    else:
        # a dataset image uploaded as a photo read as a failure ("found no hand") though its reading was right
        st.caption("**The hand detector found no hand in this photo**, so the page starts on the centre square. "
                   "It looks for a hand in a room; one that fills the picture, as in the dataset's close crops, "
                   "it often misses, and the centre square is then the right one. Otherwise move the orange "
                   "square onto the hand so it fills the square.")
    # a row that wraps: as columns in an 820-px window the button read "R…"
    row = st.container(horizontal=True, gap="small", vertical_alignment="bottom")
    row.slider("Zoom", views.MIN_PAD_ZOOM if hand is not None else 1.0, 4.0, step=0.01, key="classify_zoom",
               help="1 takes the largest centred square; below 1 the square is larger than the photo, whose "
                    "edges are repeated.", width=SLIDER_PX)
    row.slider("Left ↔ right", 0.0, 1.0, step=0.01, key="classify_cx", help="Where the square's centre lies.",
               width=SLIDER_PX)
    row.slider("Up ↕ down", 0.0, 1.0, step=0.01, key="classify_cy", width=SLIDER_PX)
    row.button("Reset", on_click=_reset_crop)
    row.button("Whole image", on_click=_whole_crop, help="The largest centred square of the picture (zoom 1)")
    chosen = tuple(st.session_state[k] for k in CROP_KEYS)
    default = st.session_state.get(DEFAULT_CROP_KEY) or views.Crop()
    if chosen == _slider_values(default):  # untouched: the exact crop, as `predict` takes it
        return default
    # with a hand found the square may reach past the photo's edge (edge pixels repeated), as the detector's does
    return views.Crop(*chosen, pad=hand is not None)


def _draw():
    """The canvas: strokes of a chosen width and shade on a plain ground or over a dataset image."""
    from streamlit_drawable_canvas import st_canvas  # imports only inside a running app

    version = ui.state(ui.Keys.CANVAS_VERSION, 0)
    # a row that wraps: beside the controls at 1,280 px, above them at 820 (as a 1.3 share of the row
    # there the 280-px canvas sat in a 244-px column and its right side was cut off; under the
    # controls it started 1,200 px down, where a student did not find where to draw)
    row = st.container(horizontal=True, gap="large", key="classify_draw_row")
    controls, board = row.container(width=DRAW_CONTROLS_PX), row.container(width=CANVAS_PX + 10, key="classify_board")
    st.html(f"<style>{ui.second_first_when_stacked('classify_draw_row', 'classify_board', DRAW_CONTROLS_PX + CANVAS_PX + 10)}"
            "</style>")
    with controls:
        start = st.radio("Start from", ["a blank canvas", "a dataset image"], horizontal=True, key="classify_start")
        # what the canvas starts from: a test image (its index and pixels), or a plain ground of one shade
        index, background, bg_shade = None, None, 0
        if start == "a dataset image":
            ds = ui.dataset().test
            c1, c2 = st.columns([1, 1], vertical_alignment="bottom")
            letter = c1.selectbox("Letter", [LETTERS[k] for k in views.letters_present(ds.targets)],
                                  key="classify_start_letter")
            if c2.button("Another image", width="stretch"):
                st.session_state[ui.Keys.CLASSIFY_START_N] = st.session_state.get(ui.Keys.CLASSIFY_START_N, 0) + 1
            index, background = views.nth_image_of(ds.images, ds.targets, letter,
                                                   st.session_state.get(ui.Keys.CLASSIFY_START_N, 0))
            st.caption(f"Test image #{index}, the letter **{letter}**. Paint over part of the hand to see how the "
                       "prediction changes when the model cannot see it.")
            key = f"classify_canvas_{version}_ds{index}"
        else:
            bg_shade = st.slider("Background shade", 0, 255, 60, key="classify_bg",
                                 help="The dataset's hands are mostly light on a darker or plain background.")
            key = f"classify_canvas_{version}_bg{bg_shade}"
        width = st.slider("Stroke width", 2, 60, 24, key="classify_stroke")
        shade = st.slider("Stroke shade (0 black, 255 white)", 0, 255, 225, key="classify_shade")
        if st.button("🧹 Clear the canvas"):
            st.session_state[ui.Keys.CANVAS_VERSION] = version + 1
            st.rerun()
        if background is None:
            # not "expect it to be unsure": beside "B (99.6%)" that taught that a wrong answer is an unsure one
            st.caption("A drawing is not a photo: the model learned from photographs, so expect mistakes, even "
                       "at a high percentage: its confidence was learned on photographs too.")
    with board:
        # the blank canvas is a dark square like the two previews beside it: say which one takes a pen
        st.markdown("**Draw here**")  # short: the canvas's hover toolbar covers the right of this line
        stroke = f"#{shade:02x}{shade:02x}{shade:02x}"
        if background is not None:
            result = st_canvas(stroke_width=width, stroke_color=stroke, fill_color=stroke,
                               background_image=views.to_png(views.upscale(background, CANVAS_PX)), height=CANVAS_PX,
                               width=CANVAS_PX, drawing_mode="freedraw", return_image_data=True, key=key)
        else:
            bg_hex = f"#{bg_shade:02x}{bg_shade:02x}{bg_shade:02x}"
            result = st_canvas(stroke_width=width, stroke_color=stroke, fill_color=stroke, background_color=bg_hex,
                               height=CANVAS_PX, width=CANVAS_PX, drawing_mode="freedraw", return_image_data=True,
                               key=key)
        # a place right under the canvas (and the uploader, below) for the verdict's one line: the full
        # verdict is far below them (1,000 px and more in an 820-px window, where a student who drew
        # saw nothing change and thought the page did nothing)
        slot = st.empty()
    rgba = result.image_data if result is not None else None
    ground = background if background is not None else np.full((IMAGE_SIZE, IMAGE_SIZE), unit_pixels(bg_shade))
    if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:  # nothing drawn yet
        gray = views.upscale(ground, CANVAS_PX)
    else:  # the component returns the strokes only: composite them over the ground ourselves
        square = rgba.shape[0] == rgba.shape[1]
        gray = views.canvas_to_gray(rgba, background=views.upscale(ground, rgba.shape[0]) if square
                                    else float(ground.mean()))
    # the dataset image, painted over or not, is named as what it is ("Your drawing: crop" was its title)
    return views.prepare_array(gray), "your drawing" if background is None else f"test image #{index}", slot


def _upload():
    """The uploader's file; back on the tab or the page, the last upload (the uploader forgets it)."""
    returning = UPLOAD_KEY not in st.session_state  # the widget's state went with the page or the tab
    file = st.file_uploader("A photo of a hand", type=views.UPLOAD_TYPES, key=UPLOAD_KEY,
                            help=f"PNG, JPEG, WebP, GIF, BMP or TIFF, up to {views.UPLOAD_MB} MB. Colour, transparency, "
                                 "16-bit and rotated phone photos are all handled.")
    kept = st.session_state.get(ui.Keys.CLASSIFY_LAST_UPLOAD)
    if file is not None:
        st.session_state[ui.Keys.CLASSIFY_LAST_UPLOAD] = (file.name, file.getvalue())
        return file
    if kept is None or not returning:  # removed from the uploader (its ×): forgotten
        st.session_state.pop(ui.Keys.CLASSIFY_LAST_UPLOAD, None)
        return None
    st.caption(f"Your last upload, **{ui.md(kept[0])}**, is shown again: upload another to replace it.")
    file = io.BytesIO(kept[1])  # read as the uploader's file is (Streamlit's UploadedFile is a BytesIO)
    file.name = kept[0]
    return file


def _photo(kind: str):
    if kind == "upload":
        file = _upload()
    else:
        st.caption("Browsers allow the camera on localhost or over HTTPS only. Hold one hand up in front of a "
                   "plain wall, close to the camera.")
        file = st.columns([3, 2])[0].camera_input("Take a photo of your hand", key="classify_camera")
    if file is None:
        return None, "", None
    slot = st.empty()  # the verdict's line, as under the canvas
    data = file.getvalue()
    prepared = None
    with ui.guard("Cannot use this image"):
        ident, gray, notes = ui.decoded_photo(data, file.name)  # decoded once, not on every slider move
        if st.session_state.get(IMAGE_KEY) != ident:  # a new image: find its hand, and the crop follows it
            hand, crop, st.session_state[WHOLE_KEY] = views.locate_hand(data, file.name)
            st.session_state[HAND_KEY], st.session_state[DEFAULT_CROP_KEY] = hand, crop or views.Crop()
            st.session_state[IMAGE_KEY] = ident
            _reset_crop()
        hand = st.session_state.get(HAND_KEY)
        crop = _crop_controls(hand, st.session_state.get(WHOLE_KEY), gray.shape)
        prepared = views.prepare_array(gray, crop, notes)
        prepared.hand = hand
    if prepared is None and kind == "upload":  # refused (said above): not shown again as "your last upload"
        st.session_state.pop(ui.Keys.CLASSIFY_LAST_UPLOAD, None)
    return prepared, "your photo", slot


t_draw, t_upload, t_camera = st.tabs(list(ui.CLASSIFY_TABS), key=ui.Keys.CLASSIFY_SOURCE,
                                     on_change="rerun")
st.session_state[ui.Keys.CLASSIFY_LAST_TAB] = st.session_state.get(ui.Keys.CLASSIFY_SOURCE)
prepared, what, slot = None, "", None
with t_draw:
    if t_draw.open:
        with ui.guard("Cannot read the canvas"):
            prepared, what, slot = _draw()
with t_upload:
    if t_upload.open:
        prepared, what, slot = _photo("upload")
with t_camera:
    if t_camera.open:
        prepared, what, slot = _photo("camera")

if prepared is None:
    st.stop()

# ----------------------------------------------------------------------------- the prediction
x = prepared.image28
is_photo = what == "your photo"
hand = prepared.hand
equalized = views.equalized(model)
input_title = "What the model sees" + (", equalised" if equalized else " (28×28)")
box_title = f"{what.capitalize()}: crop" + (" and hand" if hand is not None else "")  # orange, green

st.subheader("What the model sees and says", anchor="result")
# fixed-width boxes in a row that wraps: all three side by side in a 1,280-px window, the bars under the
# images in an 820-px one (as columns there the titles were cut: "Your photo: crop anc", "The model's 28×28")
row = st.container(horizontal=True, gap="small")
c1, c2, c3 = (row.container(width=w, key=k) for w, k in ((SOURCE_PX, "classify_source_box"),
                                                          (INPUT_PX, "classify_input_box"),
                                                          (BARS_PX, "classify_bars_box")))
c1.plotly_chart(figures.image_with_box(prepared.gray, prepared.box, title=box_title,
                                       landmarks=hand.landmarks if hand is not None else None),
                width="stretch", key="classify_source_fig")
c2.plotly_chart(figures.single_image(views.model_view(model, x), input_title, height=300), width="stretch",
                key="classify_input_fig")
for note in prepared.notes:
    st.caption(f"Note: {note}.")
if views.is_blank(x):  # an empty canvas or a blank photo: nothing to classify, so no letter and no "why"
    c3.info(views.nothing_to_classify_text(is_photo), icon="✋")
    st.stop()

seen = ui.or_stop("Could not classify", lambda: views.read_sign(model, prepared, photo=is_photo, tta=cfg.augment_photo,
                                                                run_dir=run.dir))  # robust runs: several views
probs, pred = seen.probs, seen.index
c3.plotly_chart(figures.probability_bars(list(seen.top), title="Top 5 letters"), width="stretch",
                key="classify_bars")
if cfg.augment_photo:
    st.caption(f"This robust model averages {views.TTA_WORDS}, so either hand works"
               + ("; each is histogram-equalised first, which spreads its grey levels evenly" if equalized else "")
               + " (more under *How it works* at the top).")
if seen.advice:
    st.warning(seen.advice, icon="⚠️" if seen.kind == "unusual" else "🤔")
st.markdown(f"#### {seen.headline}")
if slot is not None:
    slot.markdown(f"{seen.headline} · [details and why ↓](#result)")
reading = views.shape_reading(seen)
if reading:
    st.caption(reading)
if seen.kind == "sure" and is_photo:
    st.caption("Confidence is not correctness: on real photos, models trained on this dataset are still "
               "sometimes confidently wrong.")

# ----------------------------------------------------------------------------- why
st.subheader("Why did it decide this?")
target = st.selectbox("Explain the letter", range(len(LETTERS)), index=pred, key=f"classify_why_{pred}",
                      format_func=lambda i: LETTERS[i] + (" (the prediction)" if i == pred else ""),
                      help="The predicted letter by default; pick another to see what speaks for it.")
st.caption(f"The model gives {LETTERS[target]} a probability of {views.percent(probs[target], 1)}.")
name = LETTERS[target]
kind = views.model_kind(model)
# occlusion covers this one 28x28 view, so it is measured against this view's own probability (for
# robust runs the page's headline probability averages several views)
p_view = views.probability(model, x, target)
# the probability above may also count other views and the hand's shape; the maps below explain the
# image model's reading of the one input shown, so say when the two figures differ and why
also = [part for part, used in (("the hand's shape", seen.shape is not None),
                                 (f"{views.TTA_VIEWS} views of the photo", bool(cfg.augment_photo))) if used]
if also and abs(p_view - float(probs[target])) >= 0.0005:
    # a box, not a caption: a student read 82% in the verdict and 7% under the maps as the app contradicting itself
    st.info(f"The maps below explain the image model's reading of the 28×28 input shown above: it gives {name} "
            f"**{views.percent(p_view, 1)}** for it alone. The {views.percent(probs[target], 1)} above also counts "
            f"{' and '.join(also)}, which the maps do not show.", icon="🔎")
if cfg.ensemble > 1 and kind == "conv":
    st.caption("Grad-CAM reads the first of the ensemble's networks.")
# fixed-width boxes in a row that wraps: side by side in a 1,280-px window, one under the other in an
# 820-px one (as two columns there each map was 120 px wide and its title was cut)
why_row = st.container(horizontal=True, gap="medium")
left, right = why_row.container(width=WHY_PX), why_row.container(width=WHY_PX)
with left:
    why = views.saliency_view(model, x, target, p_view, output_relu=views.model_info(cfg.model).output_relu)
    st.plotly_chart(figures.saliency_overlay(x, why.values, why.title, signed=why.signed, zmax=1.0,
                                             colorbar_title=why.colorbar), width="stretch", key="classify_saliency")
    st.caption(why.caption)
with right:
    patch = st.slider("Patch size (pixels of the 28×28 input)", 3, 14, 7, key="classify_patch")
    occ = views.occlusion_map(model, x, target, patch=patch, stride=2)
    drop = p_view - occ
    st.plotly_chart(figures.saliency_overlay(x, drop, f"Occlusion: where covering lowers {name}", signed=True,
                                             zmax=max(float(np.abs(drop).max()), 0.05), colorbar_title="drop"),
                    width="stretch", key="classify_occlusion")
    # "from 16% for this input alone" under a verdict of 16.1% left a student asking what else there was
    whose = "the image model's" if also else "the"  # named only where another reading is in the verdict
    st.caption(f"A grey patch slides over the input. Red: covering that spot lowers {whose} probability of "
               f"{name} (from {views.percent(p_view, 0)} with nothing covered); blue: covering it raises it.")

with st.expander(f"Slide the patch yourself and watch the probability of {name}", expanded=False):
    a, b = st.columns([1, 1.2], gap="large")
    with a:
        top_px = st.slider("Patch row", 0, 28 - patch, (28 - patch) // 2, key="classify_patch_top")
        left_px = st.slider("Patch column", 0, 28 - patch, (28 - patch) // 2, key="classify_patch_left")
        covered = views.occlude(x, top_px, left_px, patch)
        p_after = views.probability(model, covered, target)
        st.metric(f"Probability of {name} with the patch", views.percent(p_after, 1),
                  delta=f"{100 * (p_after - p_view):+.1f} points")
    b.plotly_chart(figures.image_with_box(covered, (left_px, top_px, left_px + patch, top_px + patch),
                                          title="The input with the patch", dim_outside=False, height=280),
                   width="stretch", key="classify_patch_fig")
