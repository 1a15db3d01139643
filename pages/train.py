"""Train: pick a model and its settings, start a training job, and watch it learn live."""

import pandas as pd
import streamlit as st

from signlab import access, figures, ui
from signlab.config import PRESET_DESCRIPTIONS, PRESETS, SETTING
from signlab.errors import SignlabError
from signlab.models import layer_summary, model_info
from signlab.settings import PAGE_SETTINGS, link_query, page_config
from signlab.store import ACTIVE, HOLDING, RunState
from signlab.health import health_records, health_series
from signlab.teach import DEAD_LOGITS_CAPTION, HEALTH_CAPTION, TRAIN_DETAILS, TRAIN_INTRO, live_hint

ui.ensure_router()
st.title("🏋️ Train a model")
ui.explain(TRAIN_INTRO, TRAIN_DETAILS)

# ----------------------------------------------------------------------------- settings <-> URL
ui.settings_from_link()

left, right = st.columns([1, 2], gap="large")
with left:
    st.subheader("Settings")
    st.selectbox("Preset", list(PRESETS), key="cfg_preset", format_func=lambda p: f"{p}: {PRESET_DESCRIPTIONS[p]}",
                 on_change=lambda: ui.load_settings(st.session_state["cfg_preset"]),
                 help="A starting point; change any setting below.")
    model = ui.setting_input(SETTING["model"])
    info = model_info(model)
    members = int(st.session_state.get("cfg_ensemble", 1))
    st.caption(f"{info.description}. **{info.parameters:,} parameters**"
               + (f" each, {members} networks averaged." if members > 1 else "."))
    with st.expander("Layer summary"):
        st.dataframe(pd.DataFrame(layer_summary(model)), hide_index=True, width="stretch")
    ui.setting_inputs([s for s in PAGE_SETTINGS if s.name != "model"], st.columns(2))
    if PRESETS.get(st.session_state["cfg_preset"], {}).get("augment_photo"):
        st.caption("This preset also makes training images look like photos: hands zoomed out onto plain walls, "
                   "mirrored half the time, with changed light, blur and noise.")

    values = ui.settings_in_state()
    config_error = None
    try:
        cfg = page_config(values)
    except SignlabError as err:
        cfg, config_error = None, str(err)
    # keep the setup in the URL so a teacher can share a link that opens it
    st.query_params.update(link_query(values))

# ----------------------------------------------------------------------------- the job
jm = ui.job_manager()
run_id = st.session_state.get(ui.Keys.TRAIN_RUN) or st.query_params.get("run")
run = ui.open_run_safe(run_id) if run_id else None  # a run id this user may see, never a path
me, rules = ui.user(), ui.policy()
mine = run is not None and access.can(me, run, "stop", rules)
status = run.status() if run else {}
active = status.get("status") in ACTIVE

with left:
    if config_error:
        st.error(config_error, icon="⚠️")
    b1, b2, b3 = st.columns(3)
    if b1.button("▶ Start", type="primary", disabled=(active and mine) or cfg is None, width="stretch"):
        with ui.guard("Could not start"):
            new = access.submit(me, cfg, rules, jm)
            st.session_state[ui.Keys.TRAIN_RUN] = new.id
            st.query_params["run"] = new.id
            st.rerun()
    if b2.button("⏹ Stop", disabled=not (active and mine), width="stretch"):
        with ui.guard("Could not stop"):
            access.stop(me, run.id, rules, jm)
            st.rerun()
    paused = status.get("status") == RunState.PAUSED
    if b3.button("⏯ Resume" if paused else "⏸ Pause", width="stretch",
                 disabled=not mine or status.get("status") not in (RunState.RUNNING, RunState.PAUSED)):
        with ui.guard("Could not pause"):
            (access.resume if paused else access.pause)(me, run.id, rules, ui.runs_dir())
            st.rerun()
    if run and mine and not active and run.has_weights():
        with st.form("continue"):
            more = st.number_input("Continue this run for more epochs", 1, 100, 2)
            if st.form_submit_button("Continue training"):
                with ui.guard("Could not continue"):
                    access.continue_run(me, run.id, int(more), rules, jm)
                    st.rerun()


with right:
    if run is None:
        wait = {"robust": "The robust preset's own settings take about two minutes on a 2-core CPU",
                "lecture": "The lecture's settings take a minute or two on a CPU"}.get(
            st.session_state["cfg_preset"], "With the default settings a strong model is ready in seconds")
        st.info(f"Press **Start** to train. {wait}; the chart here shows the loss falling as it learns.")
    else:

        @st.fragment(run_every=0.8 if active else None)  # >= 1 chart update a second, render time included
        def live() -> None:
            jm.tick()
            st_now = run.status()
            state = st_now.get("status")
            cfg_now = run.config
            records = ui.metrics(run)
            batches = [r for r in records if r.get("type") == "batch"]
            epochs = [r for r in records if r.get("type") == "epoch"]
            st.subheader(f"Run {ui.md(run.name)}")
            extras = (f" ×{cfg_now.ensemble}" if cfg_now.ensemble > 1 else "") + (
                " · equalize" if cfg_now.input_norm == "equalize" else "") + (
                " · photo-like augmentation" if cfg_now.augment_photo else "")
            st.caption(f"{cfg_now.model}{extras} · batch {cfg_now.batch_size} · lr {cfg_now.lr:g} · "
                       f"{cfg_now.optimizer} · {cfg_now.schedule} · {st_now.get('device', '')}")
            target = int(st_now.get("target_epochs") or cfg_now.epochs)
            done = int(st_now.get("epochs_completed", 0))
            if state == RunState.QUEUED:
                pos = jm.queue_position(run)
                st.info(f"⏳ Waiting for a free slot: number {pos} in the queue "
                        f"({jm.limit} training job{'s' if jm.limit > 1 else ''} at a time on this server).")
            elif state in HOLDING:
                last = batches[-1] if batches else None
                if last:
                    p = float(last.get("progress", 0))
                    left_s = last["train_seconds"] * (1 - p) / p if p > 0 else 0
                    st.progress(min(p, 1.0), text=f"epoch {last['epoch']}/{target} · "
                                f"{last['samples_per_second']:,.0f} images/s · about {left_s:.0f} s left"
                                + (" · paused" if state == RunState.PAUSED else ""))
                else:
                    st.progress(0.0, text="starting the worker and loading the data…")
            elif state == RunState.COMPLETED:
                acc = st_now.get("test_accuracy") or st_now.get("val_accuracy")
                st.success(f"✅ Finished {done} epoch(s) in {st_now.get('train_seconds', 0):.1f} s of training"
                           + (f": **{100 * acc:.2f}%** test accuracy." if acc else "."))
            elif state == RunState.DIVERGED:
                st.warning(f"📉 Diverged: {st_now.get('message', '')}")
            elif state == RunState.FAILED:
                st.error(f"Training failed: {st_now.get('message', '')}")
            elif state in (RunState.STOPPED, RunState.INTERRUPTED):
                st.warning(f"{state.capitalize()}: {st_now.get('message', '')}")
            hint = live_hint(cfg_now.model, epochs)
            if hint:
                st.caption(hint)
            if batches:
                st.plotly_chart(figures.loss_curve(batches), width="stretch", key="live_loss")
            if epochs:
                st.plotly_chart(figures.epoch_curves(epochs), width="stretch", key="live_epochs")
            health = health_records(records)
            if health:
                st.markdown("**🩺 The network's health** (measured every logged step, kept with the run)")
                series = health_series(health)
                st.plotly_chart(figures.health_charts(series), width="stretch", key="live_health")
                st.caption(HEALTH_CAPTION)
                if series["dead_logits"] is not None:
                    st.caption(f"{DEAD_LOGITS_CAPTION} Now: **{100 * series['dead_logits'][-1]:.0f}%** of the scores "
                               "are clipped.")
            if active and state not in ACTIVE:
                st.rerun()  # the job ended: one full rerun turns polling off and updates the buttons
            if state == RunState.COMPLETED:
                c1, c2, c3 = st.columns(3)
                if c1.button("🎯 Evaluate it", width="stretch"):
                    st.session_state[ui.Keys.EVAL_RUN] = run.id
                    st.switch_page("pages/evaluate.py")
                if c2.button("🔬 See its kernels", width="stretch"):
                    st.session_state[ui.Keys.EVAL_RUN] = run.id
                    st.switch_page("pages/kernels.py")
                if c3.button("✋ Classify a sign", width="stretch"):
                    ui.choose_for_classify(run.id)
                    st.switch_page("pages/classify.py")

        live()
