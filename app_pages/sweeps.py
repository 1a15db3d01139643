"""Sweeps: start an Optuna search over the training settings, watch its trials arrive, stop it,
and open the best trial's run."""
import time

import pandas as pd
import streamlit as st

from signlab import figures, ui, views
from signlab.teach import SWEEPS_DETAILS, SWEEPS_INTRO

st.title("🧪 Sweeps")
ui.explain(SWEEPS_INTRO, SWEEPS_DETAILS)

runs_dir = ui.runs_dir()

# Layout: the new-sweep form above the study in fixed-width boxes of rows that wrap. As a third of the
# page beside the study it was 130 px wide in an 820-px window (one word a line), and the study's
# metrics and charts in the other two thirds were cut ("Comp…", "84.…", "Accuracy against le").
FIELD_PX, METRIC_PX, SCATTER_PX = 150, 100, 400  # two charts a row in a 1,280-px window, one in an 820-px one

studies = ui.studies()

# ----------------------------------------------------------------------------- start a sweep
# open until there is a study to look at; then the study comes first
with st.expander("**New sweep**", expanded=not studies, icon="🧪"):
    warning = views.running_sweep_warning(studies, ui.user().id)
    if warning:
        st.warning(warning, icon="⏳")
    # No form: in one, the time the page works out kept the default budget ("10 trials of 2 epochs")
    # beside the 2 trials of 1 epoch typed in, until Start was pressed. Out of one, Enter in a number
    # box only sets it (in a form it started a sweep: three, for one student). A number outside its
    # box's range is said under the boxes and turns Start off (ui.checked_number).
    names = views.model_names()
    model = st.selectbox("Architecture", names, index=names.index(views.SWEEP_DEFAULT_MODEL),
                         width=FIELD_PX, key="sweep_model")
    fields = st.container(horizontal=True, gap="small")
    trials, bad_trials = ui.checked_number(
        fields, "Trials (the budget)", 1, views.SWEEP_MAX_TRIALS, views.SWEEP_DEFAULT_TRIALS, key="sweep_trials",
        help=f"How many runs the sweep trains at most (1–{views.SWEEP_MAX_TRIALS:,}).", width=FIELD_PX)
    lo, hi = views.SETTING["epochs"].range
    epochs, bad_epochs = ui.checked_number(
        fields, "Epochs per trial", lo, hi, views.SWEEP_DEFAULT_EPOCHS, key="sweep_epochs", width=FIELD_PX,
        help=f"Short trials rank settings well enough; train the winner longer after ({lo}–{hi}).")
    minutes, bad_minutes = ui.checked_number(
        fields, "Time limit (min)", 0, 24 * 60, 30, key="sweep_minutes", width=FIELD_PX,
        help="No new trial starts after this many minutes (0: no limit, at most 1,440); the running one finishes.")
    n_workers, bad_workers = ui.checked_number(
        fields, "Worker processes", 1, views.SWEEP_MAX_WORKERS, 1, key="sweep_workers", width=FIELD_PX,
        help="Trials run in parallel, one per worker; more than one only helps "
             f"with several CPU cores or GPUs (1–{views.SWEEP_MAX_WORKERS}).")
    problems = [p for p in (bad_trials, bad_epochs, bad_minutes, bad_workers) if p]
    if problems:
        st.warning("Start sweep is off until these are in range: " + "; ".join(problems) + ".", icon="⚠️")
    # the estimate's place comes first, its words after the button is drawn: a network no run has
    # timed yet is timed for it (seconds), and the page stood without a Start button meanwhile
    estimate = st.empty()
    submitted = st.button("▶ Start sweep", type="primary", key="sweep_start", disabled=bool(problems))
    if not problems:
        estimate.caption(views.sweep_search_text(model) + " "
                         + ui.sweep_time_text(model, trials=trials, epochs=epochs, studies=studies,
                                              limit_seconds=60 * minutes or None))
    if submitted:
        with ui.guard("Could not start the sweep"):
            started = ui.start_sweep(model=model, trials=trials, epochs=epochs,
                                     timeout=60 * minutes or None, workers=n_workers)
            st.session_state[ui.Keys.SWEEP] = st.session_state["sweep_select"] = started["study"]
            st.rerun()

# ----------------------------------------------------------------------------- pick a study
by_name = {s["study"]: s for s in studies}
chosen = st.session_state.get(ui.Keys.SWEEP)
ids = list(by_name)
if ui.Keys.SWEEP not in st.session_state and "study" in st.query_params:  # a link (or a refresh) names one
    linked = st.query_params["study"]
    if linked in by_name:
        chosen = linked
    elif ids:
        st.warning(views.LinkProblem("study", linked, "is not one you can open here", ids[0]).message(ui.md),
                   icon="⚠️")
    else:  # said before "No sweep yet" (a classmate's study, hidden, read as a page that lost it)
        st.warning(f"The link's study {ui.md(linked)} is not one you can open here.", icon="⚠️")
if not studies:
    st.info("No sweep yet. Pick a model and a budget, then press **Start sweep**: the trials appear here "
            "as they finish, each one an ordinary run you can open.")
    st.stop()
if chosen not in by_name:
    chosen = ids[0]
if st.session_state.get("sweep_select") not in by_name:
    st.session_state["sweep_select"] = chosen

study = st.selectbox("Study", ids, format_func=lambda n: views.study_label(by_name[n], ui.user().id),
                     key="sweep_select")
st.session_state[ui.Keys.SWEEP] = study
st.query_params["study"] = study  # a refresh or a shared link opens this study again
record = by_name[study]
storage = record.get("storage")
# the run store's workers, and the processes this server launched that are still starting (read by
# ui.studies on this rerun)
running = record["running"]

# ------------------------------------------------------------------------- live view
def _metrics(rows: list, best: dict | None) -> None:
    with st.container(horizontal=True, gap="small"):  # a row that wraps (as quarters: "100.00%" cut)
        counts = views.trial_counts(rows)
        st.metric("Trials", counts["trials"], width=METRIC_PX)
        st.metric("Completed", counts["completed"], width=METRIC_PX)
        st.metric("Pruned early", counts["pruned"], width=METRIC_PX)
        st.metric("Best val. accuracy", views.percent(best["value"]) if best else views.DASH, width=METRIC_PX + 30,
                  help="Validation accuracy of the best trial, on the held-out training images.")


def _stop_buttons(stop_at: float | None) -> None:
    b1, b2 = st.columns(2)
    if b1.button("⏹ Stop sweep", disabled=stop_at is not None, width="stretch"):
        with ui.guard("Could not stop the sweep"):
            ui.stop_sweep(by_name[study])
            st.rerun()
    if views.force_stop_offered(stop_at, time.time()) and b2.button("Force stop", width="stretch",
                                                            help="End the worker processes now; "
                                                                 "their running trial is marked failed."):
        with ui.guard("Could not stop the sweep"):
            ui.stop_sweep(by_name[study], force=True)
            st.rerun()


def _trials_chart(rows: list) -> list[int]:
    """The parallel coordinates of every trial (from two on), with its brush; returns the trials inside it."""
    trows = views.trial_rows(rows)
    if len(rows) < 2:
        return list(range(len(rows)))
    st.markdown("**Every trial's settings and accuracy**: one line per trial, darker the lower its accuracy. Drag along an axis to "
                "brush it; the table below shows the trials inside every brush.")
    # one brush per study: a brush drawn on one study's chart carried over to the next one
    # picked, where it hid trials nobody had brushed ("0 of 2 trials inside the brush")
    brush = ui.brushable_chart(trows, views.TRIAL_COLUMNS, f"sweep_parcoords_{study}")
    inside = views.apply_brush(trows, brush)
    ids = [rows[i]["run_id"] for i in inside if rows[i].get("run_id")]
    if brush:
        brushed = ui.brushed_row(len(inside), len(rows), "trials", brush)
        # a callback, as on the Runs page: a brush drawn with the mouse lasts one rerun, so the
        # rerun of the click drew no button and the click was lost (and the brush with it)
        brushed.button("📈 Compare their curves", disabled=not ids, key="sweep_overlay",
                       help=f"Open the Runs page with these trials' runs (at most {ui.COMPARE_AT_MOST}) overlaid.",
                       on_click=st.session_state.update, args=({ui.Keys.RUNS_COMPARE: ids[:ui.COMPARE_AT_MOST], ui.Keys.SWEEP_GO_RUNS: True},))
    return inside


def _trials_table(rows: list, inside: list[int], best: dict | None) -> None:
    """The table of the trials inside the brush, then accuracy against each searched setting."""
    shown = pd.DataFrame(views.trial_table(rows, inside))  # empty inside a brush that holds no trial
    # the two accuracies first: at the end of 15 columns "test accuracy" was cut off at 1,280 px
    order = ["number", "state", "value", "test_accuracy", "val_loss", *views.SWEEP_PARAMS, "epochs", "seconds",
             "note", "run_id"]
    st.dataframe(
        shown, hide_index=True, width="stretch", placeholder=views.DASH,  # a pruned trial has no test accuracy
        column_order=[c for c in order if c in shown.columns],
        column_config={
            # pinned: with 13 columns the table scrolls sideways at 1,280 px, and a row lost its trial
            "number": st.column_config.NumberColumn("trial", format="#%d", pinned=True),
            "value": st.column_config.NumberColumn("val. accuracy", format="%.2f%%"),
            "lr": st.column_config.NumberColumn(views.SETTING["lr"].words, format=views.number_format("lr")),
            "batch_size": st.column_config.NumberColumn("batch"),
            "augment": st.column_config.TextColumn("augment."),
            "weight_decay": st.column_config.NumberColumn(views.SETTING["weight_decay"].words,
                                                          format=views.number_format("weight_decay")),
            "val_loss": st.column_config.NumberColumn("val. loss", format="%.4f"),
            "seconds": st.column_config.NumberColumn(
                "wall time (s)", format="%.0f",
                help="From the trial's start to its end: loading, training, validation and its test accuracy "
                     "(the Runs table's 'training time' counts the training alone)"),
            "test_accuracy": st.column_config.NumberColumn("test accuracy", format="%.2f%%"),
            "run_id": st.column_config.TextColumn("run"),
        })
    searched = [p for p in views.SWEEP_PARAMS if any(r.get(p) is not None for r in rows)]
    if figures.sweep_scatter_has_points(rows):
        charts = st.container(horizontal=True, gap="small")
        for p in searched:
            with charts.container(width=SCATTER_PX):
                st.plotly_chart(figures.sweep_scatter(rows, p, best["number"] if best else None),
                                width="stretch", key=f"sweep_scatter_{p}")
        st.caption("Blue: completed trials; grey crosses: trials pruned early or stopped, at the accuracy "
                   "they had then; the star is the best trial.")
    else:
        st.caption("A chart of accuracy against each searched setting appears here when the first "
                   "trial finishes.")


@st.fragment(run_every=2.0 if running else None)
def live() -> None:
    # the button's click reruns this fragment only: its callback has run, so the switch is made here
    if st.session_state.pop(ui.Keys.SWEEP_GO_RUNS, False):
        st.switch_page("app_pages/runs.py")
    now = ui.sweep_now(record)
    rows, best = now.trials, views.best_trial(now.trials)
    _metrics(rows, best)
    view = views.sweep_status(rows, now.workers, now.running, now.stop_at is not None, now.last_log,
                              now.stopped_by)
    if rows or now.running or view.kind == "error":  # "no trials yet" is said below the table
        {"info": st.info, "success": st.success, "error": st.error}[view.kind](view.message)
    if view.error:
        st.warning(view.error)
    if now.running and now.can_stop:
        _stop_buttons(now.stop_at)
    elif now.running:  # no Stop that is refused on the click (the 2-s refresh wiped the refusal at once)
        st.caption(f"{ui.md(str(record.get('owner')))}'s sweep: you can watch it, not stop it.")
    if best:
        settings = views.trial_settings(best, views.SWEEP_PARAMS)
        st.markdown(views.best_trial_text(best, rows) + f"  \n{settings}")
        if best.get("run_id") and st.button("🎯 Open best run in Evaluate", type="primary"):
            ui.look_at(best["run_id"])
            st.switch_page("app_pages/evaluate.py")
    if rows:
        _trials_table(rows, _trials_chart(rows), best)
    elif not now.running and view.kind != "error":
        st.info(view.message)
    if running and not now.running:
        st.rerun()  # the sweep ended: a full rerun turns polling off

live()
with st.expander("Run this sweep from a terminal, or on more machines"):
    st.markdown("Every worker that joins the study with the same storage shares its trials; "
                "see `docs/sweeps.md` for a shared journal file or PostgreSQL.")
    st.code(views.sweep_command(record, study, storage, runs_dir), language="bash")
