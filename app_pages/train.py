"""Train: pick a model and its settings, start a training job, and watch it learn live."""

import pandas as pd
import streamlit as st

from signlab import ui, views
from signlab.teach import TRAIN_DETAILS, TRAIN_INTRO

st.title("🏋️ Train a model")
ui.explain(TRAIN_INTRO, TRAIN_DETAILS)

# ----------------------------------------------------------------------------- settings <-> URL
ui.settings_from_link()

SETTINGS_PX, RUN_MIN_PX = 280, 440  # px; the run's three buttons and its charts need about 440

# the settings in a box of their own width, the run beside them while the window has room for both
# (from about 1,100 px with the sidebar open) and above them in a narrower one, Start first; as a third of the page the
# settings were 130 px wide in an 820-px window. What did not fit in the box's two columns
# ("standardize") has a full row instead.
PANES = "train"  # the two boxes' row is keyed f"{PANES}_row": Start scrolls the page to it
left, right = ui.panes(SETTINGS_PX, RUN_MIN_PX, key=PANES, right_first_when_stacked=True)
with left:
    st.subheader("Settings", anchor="settings")
    beside_note = st.empty()  # filled once the run beside them is known (below)
    st.selectbox("Preset", list(views.PRESETS), key=ui.setting_key("preset"),
                 on_change=lambda: ui.load_settings(st.session_state[ui.setting_key("preset")]),
                 help="A starting point; change any setting below.", persist_state=ui.PERSIST)
    st.caption(views.PRESET_DESCRIPTIONS.get(st.session_state[ui.setting_key("preset")], ""))  # whole: a selectbox cuts it off
    if changes := views.preset_changes(ui.settings_in_state()):  # the boxes' values, set before they are drawn
        st.caption(changes)
    model = ui.setting_input(views.SETTING["model"])
    info = views.model_info(model)
    members = views.ensemble_members(st.session_state.get(ui.setting_key("ensemble"), 1))
    st.caption(f"{info.description}. **{info.parameters:,} parameters**"
               + (f" each, {members} networks averaged." if members > 1 else "."))
    chosen = ui.settings_in_state()  # with the model just drawn
    if extras := views.lecture_model_text(chosen):
        st.caption(extras)
        st.button("Use the lecture's settings", key="train_lecture_settings", on_click=ui.load_lecture_settings,
                  args=(model,), help="The lecture preset, with this network and the lecture's epochs for it.")
    if lecture := views.lecture_epochs_text(chosen):
        st.caption(lecture)
        # a hint alone left the box at 10 (a student's walk trained 10 epochs after reading it)
        st.button(f"Use {views.LECTURE_LOGREG_EPOCHS} epochs", key="train_lecture_epochs",
                  on_click=lambda: st.session_state.__setitem__(ui.setting_key("epochs"), views.LECTURE_LOGREG_EPOCHS))
    with st.expander("Layer summary"):
        # what each layer makes and costs first: in the settings' narrow box "depth" and "type" (the
        # layer's name says it) took the width and the shapes and counts were behind a sideways scroll
        st.dataframe(pd.DataFrame(views.layer_summary(model)), hide_index=True, width="stretch",
                     column_order=("layer", "output_shape", "parameters", "mult_adds"),
                     column_config={"output_shape": "output", "mult_adds": "multiply-adds"})
    ui.setting_inputs([s for s in views.PAGE_SETTINGS if s.name != "model"])
    if views.PRESETS.get(st.session_state[ui.setting_key("preset")], {}).get("augment_photo"):
        st.caption("This preset also makes training images look like photos: hands zoomed out onto plain walls, "
                   "mirrored half the time, with changed light, blur and noise.")

    values = ui.settings_in_state()
    cfg, config_error = views.page_config(values)
    # keep the setup in the URL so a teacher can share a link that opens it
    st.query_params.update(views.link_query(values))

# ----------------------------------------------------------------------------- the job
jm = ui.job_manager()
followed = st.session_state.get(ui.Keys.TRAIN_RUN)
run_id = followed or st.query_params.get("run")
run = ui.open_run_safe(run_id) if run_id else None  # a run id this user may see, never a path
gone_note = None  # said in the run's pane, where the eye starts (here it fell below both panes)
if run_id and run is None:  # deleted in another tab, or a link to a run that is not this user's
    # "the run this page followed" of a link just opened read oddly (a teacher's walk): the link's, then
    gone_note = ui.not_openable_text(run_id, "The run this page followed:" if followed else "The link's run",
                                     "it was deleted, or belongs to someone else", then="")
    st.session_state.pop(ui.Keys.TRAIN_RUN, None)
    st.query_params.pop("run", None)
elsewhere = run is None
available = None  # the user's runs, where they were listed (the time estimate reads them too)
if run is None:  # a new tab or session: show this user's run that is still training (and how it ended)
    available = ui.runs()
    run = ui.run_started_elsewhere(available)
if not elsewhere:
    ui.link_run(run.id)  # a shared or reloaded link opens the run this page follows
mine = run is not None and ui.can(run, "stop")
at_once, kept = ui.start_refusals(cfg)
view = ui.live_view(run, jm, mine, elsewhere=elsewhere, start_refused=at_once, new_refused=kept)
if view.can_start:
    jm.warm()  # a worker starts ahead of the click, so the first point comes at once (signlab.jobs)

with left:
    if note := views.settings_beside_run_text(cfg, run):
        beside_note.caption(note)
    if config_error:
        ui.say_error("", config_error)  # it quotes the values a link gave
    if view.can_continue:  # below the settings it keeps (a continued run trains on with its own)
        with st.form("continue", enter_to_submit=False):
            # the epochs setting's own range, as Train's box has it, less what the run has trained
            lo, hi = views.SETTING["epochs"].range
            hi = min(hi, view.more_epochs)
            # the epochs it stopped short of first (stopped at 2 of 5, the box said 2 and it ended at 4)
            first = view.missing_epochs or views.SETTING["epochs"].default
            more, problem = ui.checked_number(
                st, "Continue this run for more epochs", lo, hi, min(first, hi),
                help=f"It stopped after epoch {view.epoch} of the {view.target_epochs} asked: "
                     f"{view.missing_epochs} more finish them." if view.missing_epochs else None)
            if st.form_submit_button("Continue training"):
                if problem:  # a form sends the number with the click: said then, and nothing starts
                    ui.say_error("Could not continue", problem)
                else:
                    with ui.guard("Could not continue"):
                        ui.continue_run(run.id, more)
                        ui.scroll_after_rerun(f"{PANES}_row")  # from the foot of the settings to the run
                        st.rerun()

with right:
    # The actions open the right-hand column, where the eye starts: under the settings, Start was
    # below the fold of a 1280×900 window. Two thirds of the page hold the three in one row (a third
    # cut "Pause" to "Pa…"). The label and help stay the same in every state: they make the button's
    # identity, and a click on a button whose identity changed in the rerun it triggers would be lost.
    b1, b2, b3 = st.columns(3)
    if b1.button("▶ Start", type="primary", disabled=not view.can_start or cfg is None, width="stretch"):
        with ui.guard("Could not start"):
            new = ui.submit(cfg)
            ui.follow_run(new.id)
            ui.scroll_after_rerun(f"{PANES}_row")  # the run's pane under the header: its chart in view
            st.rerun()
    if b2.button("⏹ Stop", disabled=not view.can_stop, width="stretch"):
        with ui.guard("Could not stop"):
            ui.stop(run.id)
            st.rerun()
    if b3.button(view.pause_label, width="stretch", disabled=not (view.can_pause or view.can_resume)):
        with ui.guard("Could not pause"):
            ui.pause_or_resume(run, view.paused)
            st.rerun()
    # shown only while the settings sit under the run (a narrow window): they were 2,300 px down
    st.container(key="train_when_stacked").caption("[The settings are under the run ↓](#settings)")
    if gone_note:
        st.warning(gone_note, icon="⚠️")
    if view.notice_aside:
        st.caption(view.notice)
    elif view.notice:
        st.info(view.notice, icon="🏃")
    if cfg is None:  # the settings column names the setting; say it where the eye starts too (under a
        # finished run it was said only at the foot of the settings, out of view at 1280x800)
        st.warning(f"Start is off until the settings can be used. {ui.md(config_error)}", icon="⚠️")
    elif device_problem := ui.device_problem(cfg):
        st.warning(f"{ui.md(device_problem)}. A run started with it fails at once unless a training process "
                   "on a machine with that device takes it.", icon="⚠️")
    elif view.can_start:  # not beside a refusal (a quota of 0 said "Start is off" over "Press Start")
        # The network's name at once, its time after: for a network this server has not measured, the
        # estimate times a few of its steps (seconds), and the old hint stood meanwhile, naming the
        # network the student had just switched from.
        hint, start = st.empty(), views.start_line(cfg)
        if run is None:
            hint.info(f"Press **Start** to train {start}.")
            hint.info(f"Press **Start** to train {start}. With these settings {ui.time_estimate(cfg, available)}; "
                      "the chart here shows the loss falling as it learns.")
        else:  # a finished run is shown: what Start trains now (changed settings lost their estimate)
            hint.caption(f"**Start** trains {start}.")
            hint.caption(f"**Start** trains {start}: with these settings {ui.time_estimate(cfg, available)}.")
    if run is not None:
        ui.live_run(run, jm, mine, view)
