"""Teach it your hand: collect a few photos per letter, drop bad ones, calibrate a run to them.

The photos live in session state until Calibrate saves them inside the new run; everything else
(reading, checking, adapting, saving) is ``signlab.calibrate``.
"""
import streamlit as st

from signlab import ui, views
from signlab.labels import LETTERS
from signlab.teach import CALIBRATE_DETAILS, CALIBRATE_INTRO

MAX_COLLECTED = 240  # ten a letter: far more than calibration needs, and it bounds the session's memory
THUMB_PX = 96  # a collected photo as the model will see it

st.title("🖐️ Teach it your hand")
ui.explain(CALIBRATE_INTRO, CALIBRATE_DETAILS)

run = ui.classify_run_picker("Run to adapt", purpose="calibrate", key=ui.Keys.CALIBRATE_RUN,
                             help="By default the run Classify uses for photos, before any calibration: a robust "
                                  "run if you have one (the caption below says which).")
if run is None:
    st.stop()
info = views.calibration_info(run)
if info:
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.caption(f"This run is already calibrated: adapted from **{ui.md(info.get('parent_name', info.get('parent')))}** "
               f"on {views.count_text(int(info.get('photos') or 0), 'photo')} of {views.count_text(len(info.get('letters', [])), 'letter')}. "
               f"{info['photos_kept']} of the photos are kept in the run's folder.")
    if info["photos_kept"] and c2.button("🗑️ Delete its photos", help="The adapted model stays; only the "
                                         "photos it learned from are deleted."):
        with ui.guard("Could not delete the photos"):
            n = ui.delete_photos(run.id)
            st.toast(f"Deleted {views.count_text(n, 'photo')} from {run.id}.")
            st.rerun()

photos: list[dict] = ui.state(ui.Keys.CALIBRATION_PHOTOS, [])  # {"id", "photo", "thumb", "hand"}
version = ui.state(ui.Keys.CALIBRATION_INPUT, 0)


def _add(letter: str, files: list[tuple[str, bytes]]) -> None:
    """Check and keep new photos of ``letter``; a file that cannot be read is named, not kept."""
    errors = []
    for name, data in files:
        if len(photos) >= MAX_COLLECTED:
            errors.append(f"at most {MAX_COLLECTED} photos; drop some first")
            break
        got = views.calibration_photo(letter, name, data, [p["photo"] for p in photos])
        if got.photo is None:
            errors.append(got.error)
            continue
        next_id = max((p["id"] for p in photos), default=-1) + 1
        photos.append({"id": next_id, "photo": got.photo, "thumb": got.thumb, "hand": got.hand})
    st.session_state[ui.Keys.CALIBRATE_ERRORS] = errors
    st.session_state[ui.Keys.CALIBRATION_INPUT] = version + 1  # empties the uploader and the camera


def _on_upload() -> None:
    files = st.session_state.get(f"calibrate_upload_{version}") or []
    _add(st.session_state["calibrate_letter"], [(f.name, f.getvalue()) for f in files])


def _on_camera() -> None:
    shot = st.session_state.get(f"calibrate_camera_{version}")
    if shot is not None:
        letter = st.session_state["calibrate_letter"]
        _add(letter, [(f"camera-{letter}.jpg", shot.getvalue())])


st.subheader("1. Photos of your hand")
counts = {k: sum(p["photo"].letter == k for p in photos) for k in LETTERS}
# the letter and its advice in a 260-px box, the upload beside it while there is room (ui.panes): as
# a third of an 820-px window the advice ran one or two words a line down the page
left, right = ui.panes(260, 300, "calibrate_photos")
with left:
    # the count is a caption, not part of the box's labels: a select box keeps showing the label it
    # had when chosen, so "A (0 photos)" stayed after photos of A were added
    letter = st.selectbox("Letter", list(LETTERS), key="calibrate_letter",
                          help="The letter the next photos show. Missing letters are fine: they stay as trained.")
    st.caption(f"**{letter}**: {views.count_text(counts[letter], 'photo')} so far.")
    st.caption("Three photos a letter are plenty when they differ: take each in other light, another place or at "
               "another distance, your hand held as you will hold it. (On a test signer's later photos, three "
               "from one sitting taught it 82-85%; three from different sessions, 89%.)")
with right:
    t_upload, t_camera = st.tabs(["📁 Upload", "📷 Camera"])
    with t_upload:
        st.file_uploader(f"Photos of {letter}", type=views.UPLOAD_TYPES, accept_multiple_files=True,
                         key=f"calibrate_upload_{version}", on_change=_on_upload,
                         help="Several at once: they are all added to the letter chosen on the left.")
    with t_camera:
        st.caption("Browsers allow the camera on localhost or over HTTPS only. Each photo is added to the "
                   "letter chosen on the left.")
        st.camera_input(f"Take a photo of {letter}", key=f"calibrate_camera_{version}", on_change=_on_camera)
for err in st.session_state.pop(ui.Keys.CALIBRATE_ERRORS, []):
    ui.say_error("Not added", err)  # it quotes the file's name

if photos:
    st.markdown(f"**Collected: {views.count_text(len(photos), 'photo')} of {views.count_text(sum(1 for v in counts.values() if v), 'letter')}.** "
                "Each picture is what the model will see: the square around the hand, in greyscale; ✕ drops a photo.")
    for k in LETTERS:
        mine = [p for p in photos if p["photo"].letter == k]
        if not mine:
            continue
        st.markdown(f"**{k}**")
        # fixed-width boxes in a row that wraps: as 8 columns in an 820-px window each was 55 px wide,
        # and the 96-px thumbnails overlapped with their names run together
        row = st.container(horizontal=True, gap="small")
        for p in mine:
            with row.container(width=THUMB_PX + 8):
                name = p["photo"].name
                # one short line under a 96-pixel thumbnail: a longer one wrapped and pushed its ✕ below
                # the others (14 characters did); a photo without a hand says so instead, the warning
                # above Calibrate names it
                st.image(p["thumb"], caption=views.thumbnail_caption(name, p.get("hand", True)), width=THUMB_PX)
                if st.button("✕", key=f"calibrate_drop_{p['id']}", help=f"Drop {ui.md(p['photo'].name)}"):
                    photos[:] = [q for q in photos if q["id"] != p["id"]]
                    st.rerun()
    if st.button("Drop all photos"):
        photos.clear()
        st.rerun()

st.subheader("2. Calibrate")
with st.expander("Method"):
    method = st.radio("How to adapt", views.CALIBRATION_METHODS, key="calibrate_method", horizontal=True,
                      format_func={"head": "retrain the last layer (recommended)",
                                   "finetune": "fine-tune the last convolution too",
                                   "ncm": "nearest class mean"}.get,
                      help="Measured on three sets of other people's photos: retraining the last layer was "
                           "the most accurate and the fastest.")
collected = [p["photo"] for p in photos]
few = views.few_photos_warning(collected)
if few:
    st.info(few, icon="📸")
missing = views.missing_letters_note(collected)
if missing:
    st.info(missing, icon="🔤")
# .get: photos a session collected before the server learned to look (an upgrade mid-class)
no_hand = views.no_hand_warning([(p["photo"], p.get("hand", True)) for p in photos])
if no_hand:
    st.warning(no_hand, icon="✋")
# "on 0 photos" read as an offer, right under a calibration that had just used them all
on = f"on {views.count_text(len(photos), 'photo')}" if photos else "(add photos above first)"
pressed = st.button(f"🎯 Calibrate {ui.md(views.quoted_run(run.name, run.id, run.config.model))} {on}",
                    type="primary", disabled=not photos,
                    help=None if photos else "Add a few photos first.")
if pressed:
    bar = st.progress(0.0, text="Adapting the model to your photos…")
    record = None
    with ui.guard("Could not calibrate"):
        record = ui.calibrate(run, collected, method,
                              progress=lambda f: bar.progress(min(max(f, 0.0), 1.0),
                                                              text="Adapting the model to your photos…"))
    if record is None:
        bar.empty()
    else:
        photos.clear()  # they are kept in the new run now
        st.session_state[ui.Keys.CALIBRATION_RESULT] = record
        st.rerun()

result = st.session_state.get(ui.Keys.CALIBRATION_RESULT)
if result:
    new = ui.open_run_safe(result["run_id"])
    if new is None:
        st.session_state.pop(ui.Keys.CALIBRATION_RESULT, None)
    else:
        test = result.get("test_accuracy")
        # beside its parent's: "it still gets 99.99%" under a parent at 99.94% read as a loss that was not
        parent = ui.open_run_safe(new.parent) if new.parent else None
        parent_test = parent.status().get("test_accuracy") if parent is not None else None
        # by its name alone, which says the photos and the parent (calibrate.calibrated_name), not its id:
        # "<name>, adapted from <parent> on 9 photos" said both twice
        st.success(f"Saved as a new run: **{ui.md(new.name)}** ({views.count_text(len(result['letters']), 'letter')}, "
                   f"{result['seconds']:.1f} s). {views.CALIBRATION_DONE.get(result.get('method'), '')}"
                   + (f" Beside it, the hand-shape network learned the {views.count_text(result['hands_found'], 'hand')} "
                      "the detector found." if result.get("hands_found") else "")
                   # both with two decimals, as everywhere else: "99.96% (its parent: 99.9%)" read as two precisions
                   + (f" On the dataset's test set it gets {views.percent(test)}"
                      + (f" (its parent: {views.percent(parent_test)})." if parent_test is not None else ".")
                      if test is not None else ""),
                   icon="✅")
        fell = views.calibration_drop_note(test, parent_test, len(result["letters"]))
        if fell:
            st.warning(fell, icon="📉")
        kept = (views.calibration_info(new) or {}).get("photos_kept", 0)
        st.caption("Its accuracy on the photos it learned from would say nothing: try it on **new** photos of your "
                   "hand on the Classify page."
                   + (" The photos are kept in the new run's folder; **Delete its photos** deletes them (the "
                      "adapted model stays)." if kept else ""))  # not "beside": on a phone it is below
        go, drop = st.columns([1, 1])
        if go.button("✋ Try it on Classify →", type="primary"):
            ui.choose_for_classify(new.id, tab=ui.CLASSIFY_TABS[1])  # it is for photos: open on the upload
            st.switch_page("app_pages/classify.py")
        if kept and drop.button("🗑️ Delete its photos", key="calibrate_drop_new_photos",
                                help="The adapted model stays; only the photos it learned from are deleted."):
            with ui.guard("Could not delete the photos"):
                n = ui.delete_photos(new.id)
                st.toast(f"Deleted {views.count_text(n, 'photo')} from {ui.md(new.name)}.")
                st.rerun()
