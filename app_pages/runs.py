"""Runs: every saved run in a table, their curves overlaid, and one run's rename, downloads and delete."""
import pandas as pd
import streamlit as st

from signlab import figures, ui, views
from signlab.teach import RUNS_DETAILS, RUNS_INTRO

MANAGE_PX, DOWNLOADS_PX = 440, 320  # with the 32-px gap, 792 px: the main area of a 1,280-px window is about 820

# ----------------------------------------------------------------------------- class settings
def class_settings(said: str | None) -> None:
    """An instructor's box of the class's quotas, open with ``said`` when a click here just changed
    them (shown also before any run exists: the quotas and the pause limit were out of reach until a
    student had trained something)."""
    if ui.user().role != "instructor":
        return
    rules, saved = ui.policy(), ui.saved_settings()
    with st.expander("⚙️ Class settings (instructors)", expanded=bool(said)):
        if said:
            st.success(said, icon="✅")
        with st.form("class_settings"):
            st.caption("Quotas for every student (instructors have none). A value changed here is kept in the run "
                       "database for every server and takes precedence over the server's `[signlab]` settings and "
                       "`SIGNLAB_…` variables; the others follow them. 0 runs at once, 0 runs kept or 0 MB for the "
                       "largest run lets students start no new run; a pause of 0 minutes has no limit.")
            values = {"show_classmates": st.toggle(rules.CLASSMATES_LABEL,
                                                   value=rules.show_classmates)}
            for key, label in rules.LIMIT_LABELS.items():  # declared with the class settings (signlab.access)
                # the text as typed, checked by the backend, which names the box (access.save_settings): a
                # number box turned 1.5 into 1 and "abc" back into the old number, each "saved", and kept
                # its last valid number past its bounds
                values[key] = st.text_input(label, value=str(getattr(rules, key)),
                                            help="Saved here: it takes precedence over the server's setting."
                                            if key in saved else None)
            if st.form_submit_button("Save"):
                with ui.guard("Could not save"):
                    changed = ui.save_settings(values)
                    st.session_state[ui.Keys.RUNS_SETTINGS_SAVED] = (
                        "Class settings saved." if changed else "Nothing to save: every value is the one in force.")
                    st.rerun()
        if saved:  # a value saved once, even the default, hid later changes to the server's settings
            st.caption(views.saved_settings_text(saved))
            if st.button("Follow the server's settings again", key="runs_forget_settings",
                         help="Forget the values saved here; the server's `[signlab]` settings, `SIGNLAB_…` "
                              "variables or the defaults are in force again."):
                with ui.guard("Could not change the class settings"):
                    ui.forget_settings()
                    st.session_state[ui.Keys.RUNS_SETTINGS_SAVED] = "The class follows the server's settings again."
                    st.rerun()


st.title("🗂️ Runs")
ui.explain(RUNS_INTRO, RUNS_DETAILS)

runs = ui.runs()
# what the last click did, said where the click was (at the page's top it was out of view of the
# Delete and Save buttons further down): renamed or deleted under Manage a run, or, with no run
# left, here; saved in the class settings' box
flash = st.session_state.pop(ui.Keys.RUNS_FLASH, None)
said = st.session_state.pop(ui.Keys.RUNS_SETTINGS_SAVED, None)
if not runs:
    if flash:
        st.success(flash, icon="✅")
    ui.no_runs_yet("runs", "No runs yet")
    class_settings(said)
    st.stop()
ui.follow_runs(runs)  # a run that starts, stops or ends while the page is open redraws it

by_id = {r.id: r for r in runs}
# a link to a run (the other pages' links carry one) chooses it under Manage a run, once; one to a run
# not here says so at the top, where the eye starts (not silently another run under a link naming it)
linked = st.query_params.pop("run", None) if "run" in st.query_params else None
if linked is not None and linked not in by_id:
    st.warning(ui.not_openable_text(linked, then="; Manage a run shows the newest run instead"), icon="⚠️")

# ----------------------------------------------------------------------------- side by side
st.subheader(f"All runs ({len(runs)})")
rows = views.run_rows(runs)
inside = list(range(len(runs)))
drawn, not_drawn = views.rows_with_accuracy(rows)
if len(drawn) > 1:
    st.markdown("**Settings and accuracy side by side**: one line per run, darker the lower its accuracy. Drag along an axis to brush it "
                "(drag again outside the brush to clear it), or use the controls below; the table shows the runs "
                "inside every brush.")
    brush = ui.brushable_chart(drawn, views.RUN_COLUMNS, "runs_parcoords")
    if not_drawn:
        st.caption(not_drawn)
    inside = views.apply_brush(rows, brush)
    if brush:
        brushed = ui.brushed_row(len(inside), len(runs), "runs", brush)
        brushed.button("📈 Overlay these runs", disabled=not inside, key="runs_overlay_brushed",
                  on_click=lambda: st.session_state.update({ui.Keys.RUNS_COMPARE: [runs[i].id for i in inside[:ui.COMPARE_AT_MOST]]}),
                  help=f"Draw the curves of the runs inside the brush (at most {ui.COMPARE_AT_MOST}) in Compare runs below.")

# ----------------------------------------------------------------------------- the table
queue = ui.queue()  # every waiting run's id, the next to start first (the whole class's)
df = pd.DataFrame(views.runs_table(runs, queue)).iloc[inside]
# on a phone the name stays pinned and what matters most comes next; the rest scrolls beside it (at 390 px
# the accuracy, after the status, was cut to "test a…")
first = [c for c in ("name", "owner", "test accuracy", "status") if c in df.columns]
# a run still training has no accuracy yet: a dash, not Streamlit's "None"
st.dataframe(df, hide_index=True, width="stretch", placeholder=views.DASH,
             column_order=first + [c for c in df.columns if c not in first],
             column_config={
    # 240 px: "medium" (200) cut sweep trials' names; "large" (400) left an 820-px window room for
    # the name and the status alone
    "name": st.column_config.TextColumn("name", width=240, pinned=True),
    "lr": st.column_config.NumberColumn("lr", format=views.number_format("lr")),
    "test accuracy": st.column_config.NumberColumn("test accuracy", format="%.2f%%"),
    "training time": st.column_config.NumberColumn("training time", format="%.1f s"),
    "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    "augment": st.column_config.CheckboxColumn("augment"),
})

# ----------------------------------------------------------------------------- compare
labels = ui.run_labels(runs)  # the pickers' (the overlay's and Manage a run's)
st.subheader("Compare runs")
with_curves = [r.id for r in runs if r.summary()["epochs"] or r.has_weights()]
if ui.Keys.RUNS_COMPARE in st.session_state:  # set by the brush's button or the Sweeps page: keep only runs that exist
    st.session_state[ui.Keys.RUNS_COMPARE] = [i for i in st.session_state[ui.Keys.RUNS_COMPARE] if i in by_id]
picked = st.multiselect("Runs to overlay", [r.id for r in runs],
                        default=None if ui.Keys.RUNS_COMPARE in st.session_state else with_curves[:3],
                        format_func=labels.__getitem__, key=ui.Keys.RUNS_COMPARE,
                        placeholder="Choose runs to compare")
if picked:
    epochs, batches = views.curve_series([by_id[i] for i in picked])
    colors = ui.run_colors(picked)  # a run keeps its colour while picked, whichever run is dropped
    batches = {k: views.continued_steps(v) for k, v in batches.items()}  # continued runs go on, not back to 0
    metric = st.segmented_control("Epoch metric", ["val_accuracy", "train_accuracy", "val_loss", "train_loss"],
                                  default="val_accuracy", key="runs_metric", required=True,
                                  format_func=lambda m: m.replace("val", "validation").replace("_", " "))
    c1, c2 = st.columns(2)
    with c1:
        if any(epochs.values()):
            st.plotly_chart(figures.runs_overlay(epochs, metric or "val_accuracy", colors),
                            width="stretch", key="runs_overlay")
        else:
            st.info("None of these runs has finished an epoch yet.")
    with c2:
        if any(batches.values()):
            st.plotly_chart(figures.runs_loss_overlay(batches, colors), width="stretch", key="runs_loss_overlay")
    if same := views.same_curves_text(epochs, batches, metric or "val_accuracy", [by_id[i] for i in picked]):
        st.caption(same)
    elif luck := views.seed_luck_text([by_id[i] for i in picked], list(epochs)):  # the legend's names, read once
        st.caption(luck)
    without = [k for k, v in epochs.items() if not v]
    if without:  # a run with no epoch record draws no line: say which, rather than leave a line missing
        st.caption(f"No epoch curve for {', '.join(ui.md(k) for k in without)}: "
                   f"{'it has' if len(without) == 1 else 'they have'} no finished epoch on record (a calibrated "
                   "run is adapted to photos in one step, not trained epoch by epoch).")
    one_epoch = [k for k, v in epochs.items() if len(v) == 1]
    st.caption(("Runs with one epoch show a single point in the epoch chart; train longer to see their curves. "
                if one_epoch else "") +
               "Steps differ between runs with different batch sizes: one step is one batch. "
               + views.VALIDATION_VS_TEST)

# ----------------------------------------------------------------------------- manage one run
st.subheader("Manage a run")
if warned := st.session_state.pop(ui.Keys.RUNS_WARN, None):  # here, where the click was: not at the page's top
    st.warning(warned, icon="⚠️")
if flash:
    st.success(flash, icon="✅")
# The chosen run is kept under its own key: the selectbox remembers its choice by label, and a
# rename (or a run finishing) changes the label, which would silently select another run.
ids = [r.id for r in runs]
# A run managed here that is gone (deleted in another tab, or by an instructor) makes this rerun
# stale: the click that started it was meant for that run, and acting on the run that takes its
# place deleted or renamed another run. So the page says so and reruns: a button's click lasts
# one rerun, so nothing is done.
gone_id = st.session_state.get(ui.Keys.RUNS_MANAGE)
if gone_id is not None and gone_id not in ids:
    st.session_state.pop(ui.Keys.CONFIRM_DELETE, None)
    st.session_state.pop(ui.Keys.RUNS_MANAGE)
    st.session_state[ui.Keys.RUNS_WARN] = ui.run_gone_text(gone_id, "nothing was done; here is the newest run instead")
    st.rerun()
if gone_id is None:
    st.session_state[ui.Keys.RUNS_MANAGE] = linked if linked in by_id else ids[0]
# the chosen run's label in the key: a select box keeps the label it had when chosen, and it showed the
# old name after a rename, "running" after a Stop and "stopping" once stopped; the choice itself is
# kept under ui.Keys.RUNS_MANAGE, so a new box starts on it
run_id = st.selectbox("Run", ids, index=ids.index(st.session_state[ui.Keys.RUNS_MANAGE]), format_func=labels.__getitem__,
                      key=f"runs_manage_{labels[st.session_state[ui.Keys.RUNS_MANAGE]]}")
st.session_state[ui.Keys.RUNS_MANAGE] = run_id
run = by_id[run_id]
shown_name = views.run_display_name(run.id, run.name)  # as the pickers and the table name it
s = run.summary()
busy = s["status"] in views.ACTIVE
mine = ui.can(run, "rename")  # a classmate's run (when the server shows them) is read-only
# the owner where it is someone else (an instructor's view): "owner local:root" beside one's own run was noise
others = ui.someone_else(s.get("owner"))
st.caption(f"id `{run.id}`" + (f" · owner {ui.md(others)}" if others else "")
           + (f" · {ui.md(views.completed_message(s))}" if s.get("message") else "")
           + (f" · number {queue.index(run.id) + 1} of {len(queue)} in the queue" if run.id in queue else "")
           + ("" if mine else " · a classmate's run: read-only"))

# two fixed-width boxes in a row that wraps: side by side from a window of about 1,280 px (sidebar
# open), the downloads under the actions in a narrower one (as columns, an 820-px window cut the
# buttons to "Ope…", "Ope…", "Del…")
row = st.container(horizontal=True, gap="medium")
left, right = row.container(width=MANAGE_PX, key="runs_manage_box"), row.container(width=DOWNLOADS_PX,
                                                                                     key="runs_downloads_box")
with left:
    with st.form("runs_rename", border=False):
        r1, r2 = st.columns([3, 1], vertical_alignment="bottom")  # [4, 1] cut "Rename" at 1280 px
        # the name the pickers and the table show ("4 Dec 15:54:20" for an unnamed run, not its id)
        # a classmate's run (read-only) keeps its box shut too: it took "hacked by bob" with Rename greyed out
        new_name = r1.text_input("Name", value=shown_name, max_chars=views.NAME_CHARS, key=f"runs_name_{run.id}",
                                 disabled=not mine,
                                 help=f"At most {views.NAME_CHARS} characters: the box takes no longer paste."
                                 if mine else "Only its owner (or an instructor) can rename this run.")
        pressed = r2.form_submit_button("✏️ Rename", width="stretch", disabled=not mine)
        # a 300-character paste the box refused left the name as it was, and the page said "Renamed to" it
        if pressed and new_name.strip() == shown_name:
            st.info(f"The name is unchanged: type a new one (at most {views.NAME_CHARS} characters), then press "
                    "Rename.", icon="✏️")
        elif pressed:
            with ui.guard("Could not rename"):
                renamed = ui.rename(run.id, new_name)
                st.session_state[ui.Keys.RUNS_FLASH] = f"Renamed to “{ui.md(renamed.name)}”."
                st.rerun()
    actions = st.container(horizontal=True, gap="small")  # a button that does not fit goes to the next line
    if actions.button("🏋️ Open in Train", width="stretch", help="Its loss, its epochs and its health charts, "
                      "as the Train page showed them while it trained"):
        ui.show_in_train(run.id)
        st.switch_page("app_pages/train.py")
    if actions.button("🎯 Open in Evaluate", width="stretch", disabled=not run.has_weights()):
        ui.look_at(run.id)
        st.switch_page("app_pages/evaluate.py")
    if actions.button("🔬 Open in Kernels", width="stretch", disabled=not run.has_weights()):
        ui.look_at(run.id)
        st.switch_page("app_pages/kernels.py")
    if busy:  # here too: Delete said "Stop the run before deleting it", and Stop was on the Train page only
        waiting, stopping = s["status"] == "queued", views.status_word(s) == "stopping"
        if actions.button("⏹ Cancel" if waiting else "⏹ Stopping…" if stopping else "⏹ Stop", width="stretch",
                          disabled=stopping or not ui.can(run, "stop"),
                          help="Take it out of the queue" if waiting else "Stop it after the current batch; "
                          "its finished epochs are kept"):
            with ui.guard("Could not stop"):
                st.session_state[ui.Keys.RUNS_FLASH] = views.stop_said(ui.md(shown_name), ui.stop(run.id), waiting)
                st.rerun()
        # and Pause/Resume: a paused run's words said "press Resume", with no Resume here (Train had it)
        paused = s["status"] == "paused"
        if s["status"] in ("running", "paused") and actions.button(
                views.pause_label(paused), width="stretch", key="runs_pause",
                disabled=stopping or (paused and not s.get("control")) or not ui.can(run, "pause"),
                help="It waits for a free slot, then trains on" if paused else
                "Hold it after the current batch, keeping its place; its slot goes to the next run meanwhile"):
            with ui.guard("Could not resume" if paused else "Could not pause"):
                ui.pause_or_resume(run, paused)
                st.session_state[ui.Keys.RUNS_FLASH] = (f"Run “{ui.md(shown_name)}” " + (
                    "resumes as soon as a slot is free." if paused else "pauses after its current batch."))
                st.rerun()
        # an instructor's: a run to show the class, ahead of the students' turns
        if waiting and ui.user().manages_all and len(queue) > 1 and actions.button(
                "⏭️ Start next", width="stretch", disabled=queue[:1] == [run.id],
                help="It is next already" if queue[:1] == [run.id] else
                "Put it at the head of the queue, before every student's turn"):
            with ui.guard("Could not move it"):
                ui.start_next(run.id)
                st.session_state[ui.Keys.RUNS_FLASH] = f"Run “{ui.md(shown_name)}” starts next."
                st.rerun()
    if actions.button("🗑️ Delete…", width="stretch", disabled=busy or not mine,
                 help="Stop the run before deleting it" if busy else "Remove the run folder for good"):
        st.session_state[ui.Keys.CONFIRM_DELETE] = run.id
    if st.session_state.get(ui.Keys.CONFIRM_DELETE) == run.id:
        st.warning(f"Delete run **{ui.md(shown_name)}** and its weights for good? This cannot be undone.", icon="🗑️")
        y, n = st.columns(2)
        if y.button("Yes, delete it", type="primary", width="stretch", key="runs_confirm_yes"):
            with ui.guard("Could not delete"):
                gone = ui.md(shown_name)
                ui.delete(run.id)
                st.session_state.pop(ui.Keys.RUNS_MANAGE, None)
                st.session_state[ui.Keys.RUNS_FLASH] = f"Deleted run {gone}."
                st.rerun()
        if n.button("Cancel", width="stretch", key="runs_confirm_no"):
            st.session_state.pop(ui.Keys.CONFIRM_DELETE, None)
            st.rerun()

with right:
    st.markdown("**Downloads**")
    if not mine:
        st.info("Downloads and exports are for the run's owner.")
    elif not run.has_weights() or (size := run.weights_size()) is None:  # (deleted meanwhile, by another tab)
        # "yet" beside a run that failed or was stopped before its first epoch promised weights to come
        ended = views.status_word(s) in ("failed", "stopped")
        st.info("This run ended before its first epoch, so it has no weights: they are saved at the end of "
                "each epoch." if ended else "This run has no weights yet: they are saved at the end of each epoch.")
    else:
        st.download_button(f"⬇️ Weights (.safetensors, {size / 1024:,.0f} KB)",
                           data=lambda: ui.download(run.id, "weights"),
                           file_name=f"{run.id}.safetensors",
                           mime="application/octet-stream", key="runs_dl_weights", width="stretch",
                           help="Load them with signlab (or safetensors): the architecture is in config.json.")
        onnx = views.onnx_path(run)
        if onnx is None:
            if st.button("📦 Export to ONNX", width="stretch", key="runs_export",
                         help="For other tools and languages: input 'image' (B, 1, 28, 28) in [0, 1], "
                              f"output 'logits' (B, {len(views.LETTERS)})."):
                with ui.guard("Could not export"), st.spinner("Exporting…"):
                    ui.export(run.id)
                    st.rerun()
        else:
            st.download_button(f"⬇️ ONNX model ({onnx.stat().st_size / 1024:,.0f} KB)",
                               data=lambda: ui.download(run.id, "onnx"),
                               file_name=f"{run.id}.onnx", mime="application/octet-stream", key="runs_dl_onnx",
                               width="stretch", help="Input 'image' (B, 1, 28, 28) in [0, 1]; output 'logits' "
                                                     f"(B, {len(views.LETTERS)}), one per letter A–Y without J.")
        st.download_button("⬇️ Settings (config.json)",
                           data=lambda: ui.download(run.id, "config"),
                           file_name=f"{run.id}-config.json", mime="application/json", key="runs_dl_config",
                           width="stretch")

class_settings(said)
