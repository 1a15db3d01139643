"""Guided tour: the lecture's case study, step by step, each step a button away from doing it."""
import streamlit as st

from signlab import access, figures, guide, kernels, ui
from signlab.health import health_records, health_series
from signlab.labels import LETTERS
from signlab.store import ACTIVE, RunState

ui.ensure_router()
st.title("🧭 Guided tour")
st.markdown(f"Walk through the lecture's case study in {len(guide.STEPS)} steps. Each step says what to do and what to "
            "notice, and checks it against **your own** runs. Training steps take about a minute each.")

steps = guide.STEPS
i = min(max(int(ui.state(ui.Keys.GUIDE_STEP, 0)), 0), len(steps) - 1)
runs = ui.runs()
jm = ui.job_manager()


def done(step: guide.Step) -> bool:
    return step.config is not None and guide.find_run(runs, step.config) is not None


with st.sidebar:
    st.markdown("**Tour steps**")
    for k, s in enumerate(steps):
        mark = "✅" if done(s) else ("👉" if k == i else "▫️")
        if st.button(f"{mark} {s.title}", key=f"guide_nav_{k}", width="stretch"):
            st.session_state[ui.Keys.GUIDE_STEP] = k
            st.rerun()

step = steps[i]
st.progress((i + 1) / len(steps), text=f"Step {i + 1} of {len(steps)}")
st.header(step.title)
st.markdown(f"**Do:** {step.do}")
st.info(f"**Notice:** {step.notice}", icon="👀")

if step.config is not None:
    cfg = step.config
    run = guide.find_run(runs, cfg)
    active = [r for r in runs if r.summary()["status"] in ACTIVE
              and r.summary()["model"] == cfg.model and r.summary()["preset"] == cfg.preset]
    label = f"▶ Train {cfg.model} ({cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g})"
    if st.button(label if run is None else f"↻ Train {cfg.model} again", type="primary" if run is None else "secondary",
                 disabled=bool(active)):
        with ui.guard("Could not start"):
            new = access.submit(ui.user(), cfg, ui.policy(), jm, name=f"tour: {step.title[3:]}")
            st.session_state[ui.Keys.TRAIN_RUN] = new.id
            st.rerun()
    if active:
        job = active[0]

        @st.fragment(run_every=0.8)
        def progress() -> None:
            jm.tick()
            st_now = job.status()
            records = ui.metrics(job)
            batches = [r for r in records if r.get("type") == "batch"]
            if st_now.get("status") == RunState.QUEUED:
                st.info(f"⏳ Waiting for a free slot (number {jm.queue_position(job)} in the queue).")
            elif batches:
                last = batches[-1]
                st.progress(min(float(last.get("progress", 0)), 1.0),
                            text=f"training… epoch {last['epoch']}/{cfg.epochs}, loss {last['loss']:.3f}")
                st.plotly_chart(figures.loss_curve(batches), width="stretch", key="guide_loss")
            else:
                st.progress(0.0, text="starting…")
            if st_now.get("status") not in ACTIVE:
                st.rerun()

        progress()

result = guide.check(step, runs, ui.evaluation)
if result:
    st.success(result, icon="📏")

if step.key == "templates":
    run = guide.find_run(runs, guide.LOGREG)
    if run:
        tiles = kernels.first_layer_tiles(kernels.first_layer_weight(ui.load_model(run)))
        st.plotly_chart(figures.weight_templates(tiles, list(LETTERS), cols=8,
                                                 title="The 24 weight templates of your logistic regression"),
                        width="content")
    else:
        st.warning("Train logistic regression in step 2 first.")

if step.key == "seed":
    seed_run = guide.find_run(runs, guide.SEED)
    seed_health = health_records(seed_run.metrics()) if seed_run else []
    if seed_health and seed_health[-1].get("dead_logits") is not None:
        st.plotly_chart(figures.health_charts(health_series(seed_health), title="Your lecture ConvNet's health"),
                        width="stretch", key="guide_health")

if step.page:
    if st.button(f"Open the {step.page.split('/')[-1][:-3].capitalize()} page →"):
        latest = {"templates": guide.LOGREG, "kernels": guide.FIXED, "seed": guide.SEED}.get(step.key)
        r = guide.find_run(runs, latest) if latest else None
        if r:
            st.session_state[ui.Keys.EVAL_RUN] = r.id
        st.switch_page(step.page)

st.divider()
b1, _, b2 = st.columns([1, 3, 1])
if b1.button("← Back", disabled=i == 0, width="stretch"):
    st.session_state[ui.Keys.GUIDE_STEP] = i - 1
    st.rerun()
if b2.button("Next →", disabled=i == len(steps) - 1, type="primary", width="stretch"):
    st.session_state[ui.Keys.GUIDE_STEP] = i + 1
    st.rerun()
