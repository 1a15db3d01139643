"""Guided tour: the lecture's case study, step by step, each step a button away from doing it."""
import streamlit as st

from signlab import figures, ui, views
from signlab.labels import LETTERS

st.title("🧭 Guided tour")
st.markdown(f"Walk through the lecture's case study in {len(views.TOUR_STEPS)} steps. Each step says what to do "
            "and what to notice, and checks it against **your own** runs. Each training step says how long it takes "
            "here.")

steps = views.TOUR_STEPS
# the step lives in the link too, so a reload (or the link) opens the step the user had reached
runs = ui.own_runs()
if ui.Keys.GUIDE_STEP not in st.session_state:  # read from the link only now
    if "step" in st.query_params:
        if notice := views.tour_step_notice(st.query_params["step"], len(steps)):
            st.warning(notice, icon="🔗")
        st.session_state[ui.Keys.GUIDE_STEP] = views.tour_step(st.query_params["step"], len(steps))
    else:  # the sidebar's Guided tour: the first step still to do (signlab.guide.resume_step)
        st.session_state[ui.Keys.GUIDE_STEP] = views.tour_resume_step(runs)
i = st.session_state[ui.Keys.GUIDE_STEP]
i = min(max(int(i), 0), len(steps) - 1)
reached = max(i, views.tour_step(st.query_params.get("reached", 1), len(steps)))
st.query_params.update(step=str(i + 1), reached=str(reached + 1))
jm = ui.job_manager()


def go_to(k: int) -> None:
    """Open step ``k`` at the page's top, where its title and what to do are."""
    st.session_state[ui.Keys.GUIDE_STEP] = k
    ui.scroll_after_rerun()
    st.rerun()


with st.sidebar:
    st.markdown("**Tour steps**")
    for k, s in enumerate(steps):
        mark = "✅" if views.tour_step_done(k, runs, reached) else ("👉" if k == i else "▫️")
        if st.button(f"{mark} {s.title}", key=f"guide_nav_{k}", width="stretch"):
            go_to(k)

step = steps[i]
st.progress((i + 1) / len(steps), text=f"Step {i + 1} of {len(steps)}")
st.header(step.title)
st.markdown(f"**Do:** {step.do}")
st.info(f"**Notice:** {step.notice}", icon="👀")

estimate_slot = None
if step.config is not None:
    cfg = step.config
    run = views.tour_run(runs, cfg)
    job = views.tour_active_run(runs, cfg)
    label = f"▶ Train {cfg.model} ({cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g})"
    if st.button(label if run is None else f"↻ Train {cfg.model} again", type="primary" if run is None else "secondary",
                 disabled=job is not None):
        with ui.guard("Could not start"):
            new = ui.submit(cfg, name=f"tour: {views.step_name(step.title)}")
            st.session_state[ui.Keys.TRAIN_RUN] = new.id
            st.rerun()
    if run is None and job is None and (unfinished := views.tour_unfinished_text(runs, cfg)):
        st.caption(unfinished)
    if job is None:  # as on Train: a worker starts ahead of the click (the step said "1 s"; it took 5-15)
        # while the student's own run trains its progress says how long: an estimate for another run
        # read "the server's one training slot is taken now", taken by that very run. Written last (a
        # network never trained here is timed for a few seconds first): the page's buttons come first
        estimate_slot = st.empty()
        jm.warm()
    else:
        mine = ui.can(job, "stop")
        ui.live_run(job, jm, mine, ui.live_view(job, jm, mine), compact=True, key="guide")

with ui.guard("Could not read your run"):  # a run deleted in another tab, weights that no longer load
    # said while the run's model reads the test set: between the end of training and the result the
    # page stood blank for 4-15 s (the lecture ConvNet on a busy server)
    with st.spinner(f"Reading your model's answers on the {len(ui.dataset().test):,} test images…"):
        result = views.tour_check(step, runs, ui.evaluation)
    if result:
        st.success(result, icon="📏")

missing = views.tour_step_missing(runs, step.key)  # steps 3 and 6 look at a run an earlier step trains
if missing:
    st.warning(missing)
elif step.key == "templates":
    tiles = views.template_tiles(ui.load_model(views.tour_page_run(runs, "templates")))
    st.plotly_chart(figures.weight_templates(tiles, list(LETTERS), cols=8,
                                             title="The 24 weight templates of your logistic regression"),
                    width="content")

if step.key == "seed":
    seed_run = views.tour_page_run(runs, "seed")
    seed_health = views.dead_logits_health(seed_run.metrics()) if seed_run else None
    if seed_health is not None:
        st.plotly_chart(figures.health_charts(seed_health, title="Your lecture ConvNet's health",
                                              labels=views.health_labels(seed_run.config)),
                        width="stretch", key="guide_health")

if pair := views.tour_loss_runs(runs, step.key):  # the step's losses here, not a search on the Runs page
    _, batches = views.curve_series(pair)
    st.plotly_chart(figures.runs_loss_overlay({k: views.continued_steps(v) for k, v in batches.items()}),
                    width="stretch", key=f"guide_loss_{step.key}")

if step.page:
    waits = views.tour_page_waits(runs, step.key)
    if st.button(f"Open the {views.page_title(step.page)} page →", disabled=missing is not None or waits is not None,
                 help=waits):
        r = views.tour_page_run(runs, step.key)
        if r and (layer := views.tour_map_layer(step.key)):
            ui.look_at_map_layer(r.id, layer)
        elif r:
            ui.look_at(r.id)
        ui.leave_tour_for(i, step.page)

if i == len(steps) - 1:  # the tour ends with what the user's own runs showed, and where to go next
    st.divider()
    st.subheader(f"🎓 {views.TOUR_FINISH['title']}")
    st.markdown(views.TOUR_FINISH["text"])
    st.markdown(views.tour_results_text(runs, ui.evaluation))
    st.markdown(views.TOUR_FINISH["next"])
    # the pages it names, a click away (named in bold only, a student looked for them in the list)
    with st.container(horizontal=True, gap="small", vertical_alignment="center"):  # the button's line with the links'
        for name in ("train", "runs", "evaluate", "sweeps"):
            if name != "evaluate":
                st.page_link(f"app_pages/{name}.py", label=f"{views.page_title(name)} →")
            elif st.button(f"{views.page_title(name)} →", type="tertiary", key="tour_end_evaluate"):
                ui.look_at_best(runs)  # the words promise the best model, not the run looked at last
                st.switch_page("app_pages/evaluate.py")

st.divider()
b1, _, b2 = st.columns([1, 3, 1])
if b1.button("← Back", disabled=i == 0, width="stretch"):
    go_to(i - 1)
if b2.button("Next →", disabled=i == len(steps) - 1, type="primary", width="stretch"):
    go_to(i + 1)

if estimate_slot is not None:
    with estimate_slot.container():  # the timing's spinner shows where its words will be
        # "again" from the user's own run of the step when it finished: the server's newest five of that
        # network, trained under other loads, read "about 54 s" under "Your run trained for 27.1 s"
        seconds = views.tour_run_seconds(run)  # one read of the run's row for both
        own = seconds is not None
        said = views.tour_time_caption(seconds, ui.time_estimate(cfg, [run] if own else runs, alone=own))
    estimate_slot.caption(said)
