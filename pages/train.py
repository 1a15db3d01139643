"""Train: pick a model and its settings, start a training job, and watch it learn live."""

import pandas as pd
import streamlit as st

from signlab import access, ui, views
from signlab.config import (OPTIMIZERS, PRESET_DESCRIPTIONS, PRESETS, RANGES, SCHEDULES, TrainConfig, preset,
                            range_problem)
from signlab.errors import SignlabError
from signlab.labels import NORMALIZATIONS
from signlab.models import layer_summary, model_info, model_names
from signlab.teach import TRAIN_DETAILS, TRAIN_INTRO
from signlab.views import DASH

ui.ensure_router()
st.title("🏋️ Train a model")
ui.explain(TRAIN_INTRO, TRAIN_DETAILS)

# ----------------------------------------------------------------------------- settings <-> URL
FIELDS = {  # widget key -> (config field, type)
    "cfg_model": ("model", str), "cfg_epochs": ("epochs", int), "cfg_batch_size": ("batch_size", int),
    "cfg_lr": ("lr", float), "cfg_optimizer": ("optimizer", str), "cfg_weight_decay": ("weight_decay", float),
    "cfg_schedule": ("schedule", str), "cfg_augment": ("augment", bool), "cfg_seed": ("seed", int),
    "cfg_device": ("device", str), "cfg_ensemble": ("ensemble", int), "cfg_input_norm": ("input_norm", str),
    "cfg_preset": ("preset", str),
}


def _load_preset(name: str) -> None:
    cfg = preset(name)
    for key, (field, _) in FIELDS.items():
        st.session_state[key] = getattr(cfg, field) if field != "preset" else name


def _from_query() -> None:
    """First visit in this session: take the settings from the URL (a shared link), else the preset."""
    if "cfg_model" in st.session_state:
        return
    qp = st.query_params
    _load_preset(qp.get("preset", "fast") if qp.get("preset") in PRESETS else "fast")
    for key, (field, typ) in FIELDS.items():
        if field in qp:
            raw = qp[field]
            # checked here: a widget would silently clamp or replace a value it cannot show
            problem = _link_problem(field, typ, raw)
            if problem:
                st.warning(f"The link's {field}={ui.md(repr(raw[:40]))} {problem}; the default "
                           f"{ui.md(repr(st.session_state[key]))} is used.",
                           icon="⚠️")
            else:
                st.session_state[key] = (raw.lower() in ("1", "true", "yes")) if typ is bool else typ(raw)


def _link_problem(field: str, typ: type, raw: str) -> str | None:
    """Why a setting from the URL cannot be used (not a number, out of range, unknown), else None."""
    choices = {"model": model_names(), "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "input_norm": NORMALIZATIONS,
               "device": ("auto", "cpu", "cuda", "mps"), "preset": tuple(PRESETS)}
    if typ is bool:
        return None if raw.lower() in ("1", "true", "yes", "0", "false", "no") else "is not true or false"
    if field in choices:
        return None if raw in choices[field] else f"is not one of {', '.join(choices[field])}"
    try:
        value = typ(raw)
    except ValueError:
        return "is not valid"
    if range_problem(field, value) is None:  # compared exactly: a 400-digit number never overflows
        return None
    lo, hi = RANGES[field]
    shown = (lambda v: str(int(v))) if typ is int else (lambda v: f"{v:g}")
    return f"is out of range (allowed {shown(lo)} to {shown(hi)})"


def _on_preset() -> None:
    _load_preset(st.session_state["cfg_preset"])


_from_query()

left, right = st.columns([1, 2], gap="large")
with left:
    st.subheader("Settings")
    st.selectbox("Preset", list(PRESETS), key="cfg_preset", on_change=_on_preset,
                 help="A starting point; change any setting below.")
    st.caption(PRESET_DESCRIPTIONS.get(st.session_state["cfg_preset"], ""))  # whole: a selectbox cuts it off
    if st.session_state["cfg_model"] not in model_names():
        st.session_state["cfg_model"] = "fastcnn"
    model = st.selectbox("Architecture", model_names(), key="cfg_model")
    info = model_info(model)
    members = int(st.session_state.get("cfg_ensemble", 1))
    st.caption(f"{info.description}. **{info.parameters:,} parameters**"
               + (f" each, {members} networks averaged." if members > 1 else "."))
    with st.expander("Layer summary"):
        st.dataframe(pd.DataFrame(layer_summary(model)), hide_index=True, width="stretch")
    c1, c2 = st.columns(2)
    c1.number_input("Epochs", min_value=int(RANGES["epochs"][0]), max_value=int(RANGES["epochs"][1]), step=1,
                    key="cfg_epochs", help="How many times the model sees every training image.")
    c2.number_input("Batch size", min_value=int(RANGES["batch_size"][0]), max_value=int(RANGES["batch_size"][1]),
                    step=16, key="cfg_batch_size", help="Images per gradient step.")
    c1.number_input("Learning rate", min_value=RANGES["lr"][0], max_value=RANGES["lr"][1], format="%.5f",
                    step=1e-4, key="cfg_lr", help="The step size (the peak of the schedule for one-cycle).")
    c2.selectbox("Optimizer", OPTIMIZERS, key="cfg_optimizer")
    c1.number_input("Weight decay", min_value=RANGES["weight_decay"][0], max_value=RANGES["weight_decay"][1],
                    format="%.5f", step=1e-4, key="cfg_weight_decay")
    c2.selectbox("Schedule", SCHEDULES, key="cfg_schedule",
                 help="none: a constant rate; cosine: decays smoothly; onecycle: warms up, then decays.")
    c1.number_input("Seed", min_value=0, max_value=int(RANGES["seed"][1]), step=1, key="cfg_seed",
                    help="The same seed on the same device gives the same run.")
    c2.selectbox("Device", ["auto", "cpu", "cuda", "mps"], key="cfg_device")
    c1.number_input("Ensemble members", min_value=int(RANGES["ensemble"][0]), max_value=int(RANGES["ensemble"][1]),
                    step=1, key="cfg_ensemble",
                    help="Train this many networks side by side and average their predictions: steadier on real "
                         "photos, and each one costs another network's training time.")
    c2.selectbox("Input normalisation", NORMALIZATIONS, key="cfg_input_norm",
                 help="standardize: each image to zero mean and unit variance. equalize: first spread each "
                      "image's grey levels evenly (histogram equalisation), so lighting and contrast matter less.")
    st.toggle("Augmentation (random shifts, rotations, zoom)", key="cfg_augment")
    if PRESETS.get(st.session_state["cfg_preset"], {}).get("augment_photo"):
        st.caption("This preset also makes training images look like photos: hands zoomed out onto plain walls, "
                   "mirrored half the time, with changed light, blur and noise.")

    values = {field: st.session_state[key] for key, (field, _) in FIELDS.items()}
    base = PRESETS.get(values["preset"], {})
    config_error = None
    try:
        cfg = TrainConfig(**{**base, **values})
    except SignlabError as err:
        cfg, config_error = None, str(err)
    # keep the setup in the URL so a teacher can share a link that opens it
    st.query_params.update({k: str(v) for k, v in values.items()})

# ----------------------------------------------------------------------------- the job
jm = ui.job_manager()
me, rules = ui.user(), ui.policy()
run_id = st.session_state.get(ui.Keys.TRAIN_RUN) or st.query_params.get("run")
run = ui.open_run_safe(run_id) if run_id else None  # a run id this user may see, never a path
elsewhere = run is None
if run is None:  # a new tab or session: show this user's run that is still training
    run = views.my_active_run(ui.runs(), lambda r: access.can(me, r, "stop", rules))
mine = run is not None and access.can(me, run, "stop", rules)
view = ui.live_view(run, jm, mine, elsewhere=elsewhere)

with left:
    if config_error:
        st.error(config_error, icon="⚠️")
    b1, b2, b3 = st.columns(3)
    # the label and help stay the same in every state: they make the button's identity, and a click
    # on a button whose identity changed in the rerun it triggers would be lost
    if b1.button("▶ Start", type="primary", disabled=not view.can_start or cfg is None, width="stretch"):
        with ui.guard("Could not start"):
            new = access.submit(me, cfg, rules, jm)
            ui.follow_run(new.id)
            st.rerun()
    if b2.button("⏹ Stop", disabled=not view.can_stop, width="stretch"):
        with ui.guard("Could not stop"):
            access.stop(me, run.id, rules, jm)
            st.rerun()
    if b3.button(view.pause_label, width="stretch", disabled=not (view.can_pause or view.can_resume)):
        with ui.guard("Could not pause"):
            ui.pause_or_resume(run, view.paused)
            st.rerun()
    if view.notice:
        st.info(view.notice, icon="🏃")
    if view.can_continue:
        with st.form("continue"):
            more = st.number_input("Continue this run for more epochs", 1, 100, 2)
            if st.form_submit_button("Continue training"):
                with ui.guard("Could not continue"):
                    access.continue_run(me, run.id, int(more), rules, jm)
                    st.rerun()

with right:
    if run is None:
        st.info(f"Press **Start** to train. With these settings "
                f"{views.time_estimate(cfg, ui.speed_rows(), len(ui.dataset().train)) if cfg else DASH}; "
                "the chart here shows the loss falling as it learns.")
    else:
        ui.live_run(run, jm, mine, view)
