"""The Map page, the parallel coordinates of the Runs and Sweeps pages, the Train page's network
health and the tour's lecture-ConvNet step, under Streamlit's AppTest.

Plotly clicks and brushes cannot be simulated here (the browser test does them); the Map page is
driven through its image-number input and the parallel coordinates through their axis controls.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from signlab.labels import LETTERS
from tests._local import by_label, no_error

TIMEOUT = 120
APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(scope="module")
def insight_runs(tmp_path_factory, dataset):
    """Two tiny runs: logistic regression (20 steps) and the lecture ConvNet (12 steps)."""
    from signlab import api
    from signlab.config import TrainConfig, preset

    root = tmp_path_factory.mktemp("insight_runs")
    api.train(TrainConfig(model="logreg", epochs=1, max_steps=20, augment=False, seed=0), root, run_id="tiny-logreg",
              dataset=dataset)
    from signlab.guide import SEED

    # the tour's step 4 counts a run trained as the step trains it (guide.tours); max_steps keeps it to 12
    # steps, and is then taken out of its settings, so that the pages take it for the step's own run
    api.train(preset("lecture", epochs=SEED.epochs, max_steps=12, log_every=4), root, run_id="tiny-seed",
              dataset=dataset)
    from signlab.runs import open_run

    seed = open_run("tiny-seed", root)
    seed.save_config(seed.config.replace(max_steps=None, log_every=SEED.log_every))
    return root


@pytest.fixture
def runs_env(insight_runs, monkeypatch, tmp_path, app_caches):
    copy = tmp_path / "runs"
    shutil.copytree(insight_runs, copy)
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(copy))
    return copy


def _open(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    no_error(at)
    return at




def test_map_page_shows_the_pixel_map_of_logreg_and_a_chosen_image(runs_env):
    at = _open("map", run="tiny-logreg")
    assert at.title[0].value.endswith("Map of the test images")
    layer = by_label(at.selectbox, "Layer")
    assert layer.value == "pixels"
    assert any("7,172 test images" in c.value and "PCA" in c.value for c in at.caption)
    assert (runs_env / "tiny-logreg" / "embeddings" / "pixels-pca.npz").is_file()  # cached with the run
    by_label(at.number_input, "Test image (0–7171)").set_value(3).run()
    no_error(at)
    assert any(m.value.startswith("True letter **") for m in at.markdown)
    from signlab.data import load_dataset

    truth = LETTERS[int(load_dataset().test.targets[3])]
    assert any(f"True letter **{truth}**" in m.value for m in at.markdown)


def test_map_page_of_the_lecture_convnet_layers_and_tsne_on_request(runs_env):
    at = _open("map", run="tiny-seed")
    no_error(at)
    layer = by_label(at.selectbox, "Layer")
    assert layer.value == "hidden"
    layer.set_value("logits").run()
    no_error(at)
    assert (runs_env / "tiny-seed" / "embeddings" / "logits-pca.npz").is_file()
    at.segmented_control[0].set_value("tsne").run()  # t-SNE waits for the button: it takes a minute
    no_error(at)
    assert any(b.label == "Compute the t-SNE map" for b in at.button)
    assert not (runs_env / "tiny-seed" / "embeddings" / "logits-tsne.npz").exists()


def test_runs_page_parallel_coordinates_brush_filters_the_table(runs_env):
    at = _open("runs")
    assert any("side by side" in m.value for m in at.markdown)
    assert len(at.dataframe[0].value) == 2
    from signlab.compare import run_rows
    from signlab.runs import list_runs

    best = max(r["accuracy"] for r in run_rows(list_runs(runs_env)))
    by_label(at.select_slider, "accuracy (%)").set_range(best, best).run()  # brush: the better run only
    no_error(at)
    assert len(at.dataframe[0].value) == 1
    assert any("1 of 2 runs inside the brush" in c.value for c in at.caption)
    by_label(at.button, "📈 Overlay these runs").click().run()
    no_error(at)
    assert len(at.session_state["runs_compare"]) == 1
    # beside a validation curve and a test accuracy that can differ, the page says why
    assert any("network alone" in c.value and "test-time shifts" in c.value for c in at.caption)
    # axes can be left out (on a phone nine share about 225 px); the accuracy stays
    import json

    def drawn_axes():
        [chart] = [c for c in at.get("plotly_chart") if json.loads(c.proto.spec)["data"][0].get("type") == "parcoords"]
        return [d["label"] for d in json.loads(chart.proto.spec)["data"][0]["dimensions"]]

    picker = by_label(at.multiselect, "Axes shown")
    assert picker.value and "accuracy (%)" not in picker.options and len(drawn_axes()) == len(picker.value) + 1
    picker.set_value(picker.value[:1]).run()
    no_error(at)
    assert drawn_axes() == [picker.value[0], "accuracy (%)"]
    # an axis that starts to compare something later (a new run, a new trial) is shown, the ones the
    # student left out stay out (the picker kept its first choice, and a new axis never appeared)
    from signlab.compare import RUN_COLUMNS, axes
    from signlab.config import TrainConfig
    from signlab.runs import create_run

    before = {a["label"] for a in axes(run_rows(list_runs(runs_env)), RUN_COLUMNS)}
    augmented = create_run(TrainConfig(model="logreg", epochs=1, augment=True), runs_env, run_id="augmented",
                           status="completed")
    augmented.store.annotate(augmented.id, test_accuracy=0.5)  # drawn: the chart has lines of runs with one
    new = {a["label"] for a in axes(run_rows(list_runs(runs_env)), RUN_COLUMNS)} - before
    assert new  # the augmentation differs now
    kept = picker.value[0]
    at.run()
    no_error(at)
    picker = by_label(at.multiselect, "Axes shown")
    assert set(picker.value) == {kept, *new} and set(drawn_axes()) == {kept, *new, "accuracy (%)"}


def test_train_page_shows_the_health_of_a_finished_run(runs_env):
    at = _open("train", run="tiny-seed")
    assert any("network's health" in m.value for m in at.markdown)
    assert any("scores are clipped" in c.value for c in at.caption)


def test_tour_seed_step_points_at_dead_logits_and_the_map(runs_env):
    at = _open("guide")
    at.session_state["guide_step"] = 3
    at.run()
    no_error(at)
    assert "dead logits" in at.info[0].value and "Map" in at.info[0].value
    assert any("clipped" in s.value and "**Map** page" in s.value for s in at.success)
    [go] = [b for b in at.button if b.label == "Open the Map page →"]
    go.click().run()
    assert at.session_state["eval_run_id"] == "tiny-seed"
    # on the layer the notice asks for: the output scores (it opened on the last hidden layer)
    assert at.session_state["map_layer_tiny-seed"] == "logits"
    no_error(at)
    assert "output scores" in by_label(at.selectbox, "Layer").format_func(by_label(at.selectbox, "Layer").value)


def test_a_tour_step_that_looks_at_a_missing_run_says_which_step_trains_it(runs_env):
    """Step 3 opened the Kernels page with no logistic regression of the tour's (the page then showed
    whatever run the student had), and step 6 said nothing of the fixed ConvNet it looks at."""
    at = _open("guide")
    for index, words, page in ((2, "Do step 2 (Train logistic regression) first", "Kernels"),
                               (5, "Do step 5 (Fix it and train again) first", "Kernels")):
        at.session_state["guide_step"] = index
        at.run()
        no_error(at)
        assert any(w.value.startswith(words) for w in at.warning), [w.value for w in at.warning]
        [go] = [b for b in at.button if b.label == f"Open the {page} page →"]
        assert go.disabled
    at.session_state["guide_step"] = 3  # the lecture ConvNet's step: its run is there, its button works
    at.run()
    assert not at.warning and not next(b for b in at.button if b.label == "Open the Map page →").disabled
    # the fixed ConvNet's step before its run exists: the Map waits for it (it opened on whatever run the
    # student had, a robust model read as their fixed ConvNet)
    at.session_state["guide_step"] = 4
    at.run()
    [go] = [b for b in at.button if b.label == "Open the Map page →"]
    assert go.disabled and go.help == "Train it first (the button above): the page opens on your run of this step."


def test_tour_last_step_ends_with_the_users_results(runs_env):
    at = _open("guide")
    assert not any("The end of the tour" in h.value for h in at.subheader)  # not on the first step
    at.session_state["guide_step"] = 7
    at.run()
    no_error(at)
    assert any("The end of the tour" in h.value for h in at.subheader)
    summary = next(m.value for m in at.markdown if "Train the lecture's ConvNet" in m.value)
    assert "test accuracy" in summary and "- **8. Teach it your hand**: no calibrated run yet" in summary
    assert any(m.value.startswith("Where to go next") for m in at.markdown)
    # the pages it names, as links
    links = [(link.proto.label, link.proto.page) for link in at.get("page_link")]
    for name, title in (("train", "Train"), ("runs", "Runs"), ("sweeps", "Sweeps")):
        assert any(label == f"{title} →" and page.endswith(name) for label, page in links), links
    # Evaluate opens on the best model the words promise, not on the run looked at last
    from signlab import compare, ui
    from signlab.runs import list_runs

    best, _ = compare.preferred_run(list_runs(runs_env), "drawing")
    other = next(r.id for r in list_runs(runs_env) if r.id != best.id)
    at.session_state[ui.Keys.EVAL_RUN] = other
    at.button(key="tour_end_evaluate").click().run()
    no_error(at)
    assert at.session_state[ui.Keys.EVAL_RUN] == best.id
    assert at.title[0].value.endswith("Evaluate a model")


def test_sweeps_page_parallel_coordinates(tmp_path, monkeypatch, small_dataset, app_caches):
    from signlab import sweep

    sweep.run_sweep(model="logreg", trials=2, epochs=1, max_steps=5, study="pc", runs_dir=tmp_path,
                    dataset=small_dataset)
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    at = _open("sweeps")
    assert any("Every trial's settings" in m.value for m in at.markdown)
    low = min(t["lr"] for t in sweep.study_trials(None, "pc", tmp_path))
    by_label(at.select_slider, "learning rate").set_range(low, low).run()
    no_error(at)
    assert len(at.dataframe[0].value) == 1
    assert any("1 of 2 trials inside the brush" in c.value for c in at.caption)
    # the button acts in its callback: a brush drawn with the mouse lasts one rerun, and the
    # button, drawn only inside a brush, lost its click (the browser walk found it)
    [inside] = [t["run_id"] for t in sweep.study_trials(None, "pc", tmp_path) if t["lr"] == low]
    by_label(at.button, "📈 Compare their curves").click().run()
    no_error(at)
    assert at.session_state["runs_compare"] == [inside]
    assert any(t.value.endswith("Runs") for t in at.title), [t.value for t in at.title]



def test_a_brush_belongs_to_its_study(tmp_path, monkeypatch, small_dataset, app_caches):
    """A brush drawn on one study's chart stayed on the next study picked, hiding its trials."""
    from signlab import sweep

    for name in ("pa", "pb"):
        sweep.run_sweep(model="logreg", trials=3, epochs=1, max_steps=5, study=name, runs_dir=tmp_path,
                        dataset=small_dataset, sampler_seed=3)  # seed 3: augmentation on and off
        assert {t["augment"] for t in sweep.study_trials(None, name, tmp_path)} == {True, False}
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    at = _open("sweeps")
    first = at.selectbox(key="sweep_select").value
    by_label(at.pills, "augmentation").set_value(["off"]).run()
    assert any("1 of 3 trials inside the brush" in c.value for c in at.caption)
    at.selectbox(key="sweep_select").set_value("pb" if first == "pa" else "pa").run()
    no_error(at)
    assert not any("inside the brush" in c.value for c in at.caption)
    assert len(at.dataframe[0].value) == 3


def test_sweep_charts_wait_for_a_finished_trial(tmp_path, monkeypatch, small_dataset, app_caches):
    """A running trial's accuracy so far drew the scatter charts with empty axes (0-4%): they now
    appear with the first finished trial, and a caption says so until then."""
    from signlab import figures, sweep

    sweep.run_sweep(model="logreg", trials=1, epochs=1, max_steps=5, study="pr", runs_dir=tmp_path,
                    dataset=small_dataset)
    finished = sweep.study_trials(None, "pr", tmp_path)
    running = [dict(r, state="RUNNING") for r in finished]
    assert running[0]["value"] is not None  # a running trial reports its accuracy so far
    assert figures.sweep_scatter_has_points(finished) and not figures.sweep_scatter_has_points(running)
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    at = _open("sweeps")
    no_error(at)
    assert len(at.get("plotly_chart")) >= 2  # one scatter per searched setting
    monkeypatch.setattr(sweep, "study_trials", lambda *a, **k: running)
    at = _open("sweeps")
    no_error(at)
    assert len(at.get("plotly_chart")) == 0
    assert any("appears here when the first trial finishes" in c.value for c in at.caption)


def test_a_tour_training_step_warms_a_worker_as_train_does(runs_env, monkeypatch):
    """The tour's step 2 said "about 1 s" and its run waited 5-15 s for a worker to start: the Train
    page starts one ahead of the click, the tour did not."""
    from signlab.jobs import JobManager

    warmed = []
    monkeypatch.setattr(JobManager, "warm", lambda self: warmed.append(self.runs_dir) or False)
    at = _open("guide", step="1")  # without a step it opens after the last step runs_env's runs did
    assert not warmed  # step 1 trains nothing
    at.session_state["guide_step"] = 1
    at.run()
    no_error(at)
    assert warmed, "the logistic regression step started no worker ahead of its button"


def test_a_tour_step_says_no_estimate_beside_the_students_own_run(runs_env, monkeypatch):
    """With the student's logistic regression in the one training slot, the caption under its button
    said "…once it starts: the server's one training slot is taken now", taken by that very run, while
    its progress line said "about 9 s left". The run's progress is the estimate then."""
    from signlab.guide import STEPS
    from signlab.jobs import JobManager
    from signlab.runs import create_run

    monkeypatch.setattr(JobManager, "warm", lambda self: False)
    monkeypatch.setattr(JobManager, "tick", lambda self: None)  # the run stays queued: no worker takes it
    at = _open("guide")
    at.session_state["guide_step"] = 1
    at.run()
    no_error(at)
    estimate = [c.value for c in at.caption if "this server" in c.value]
    assert estimate, [c.value for c in at.caption]  # before: how long a run takes here
    cfg = STEPS[1].config  # step 2: logistic regression
    create_run(cfg, runs_env, name="tour: the student's own")
    at.run()
    no_error(at)
    assert not [c.value for c in at.caption if "this server" in c.value or "slot" in c.value]
    assert any(b.label.startswith("↻") or b.label.startswith("▶") for b in at.button if b.disabled)


@pytest.mark.trial
def test_a_tour_step_times_a_network_this_server_has_never_trained(tmp_path, monkeypatch, app_caches):
    """A student whose only run was a logistic regression read, at step 4, that the lecture ConvNet's
    time "shows after its first steps" (no network near its work had run to guess from), and started
    an 11-minute run blind. The page times a few of its steps instead (signlab.trainer.trial_speed)."""
    from signlab.guide import STEPS
    from signlab.jobs import JobManager

    monkeypatch.setattr(JobManager, "warm", lambda self: False)
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path / "runs"))  # a fresh server: nothing trained
    at = _open("guide")
    step = next(i for i, s in enumerate(STEPS) if s.config is not None and s.config.model != "logreg")
    at.session_state["guide_step"] = step
    at.run()
    no_error(at)
    said = [c.value for c in at.caption if "this server" in c.value]
    assert said and "timed from a few of its steps here" in said[0], said
    assert f"no run here has trained {STEPS[step].config.model} yet" in said[0]
    # said in a toast while it times: the cache's spinner was drawn over the button under the estimate
    assert [t.value for t in at.toast] == ["Timing a few steps of this network on this machine…"]
    at.run()
    assert not at.toast  # timed once: the next look reads the cached speed at once


def test_an_aside_uses_a_timing_already_made_and_makes_none(monkeypatch):
    """Classify's first look stood blank for 3 s while the robust preset, named in an aside, was timed:
    an estimate with timing=False uses a trial this server made within the hour, and starts none."""
    from signlab import ui
    from signlab.config import preset

    calls = []
    monkeypatch.setattr(ui, "_TRIALS", {})
    monkeypatch.setattr(ui, "_trial_speed", lambda key: calls.append(key) or 1234.0)
    cfg = preset("robust")
    assert ui.trial_for(cfg, [], timing=False) is None and calls == []  # never timed: no trial for an aside
    assert ui.trial_for(cfg, []) == 1234.0 and len(calls) == 1  # a page that times it
    assert ui.trial_for(cfg, [], timing=False) == 1234.0  # then the aside reads it
    monkeypatch.setattr(ui, "_TRIALS", {})
    monkeypatch.setattr(ui, "speed_rows", lambda available=None, alone=False: [
        {"status": "completed", "model": "s2net", "ensemble": 1, "batch_size": 128, "samples_per_second": 10_000.0}])
    idle = type("Capacity", (), {"holding": 0, "waiting": 0})()
    store = type("Store", (), {"capacity": lambda self: idle})()
    monkeypatch.setattr(ui, "job_manager", lambda: type("JM", (), {"store": store, "limit": 1})())
    monkeypatch.setattr(ui, "_trial_speed", lambda key: None)  # a trial that could not time it
    # nor a guess from another network: the robust preset guessed from a ConvNet read 51 s and took 146 s
    assert ui.time_estimate(cfg, timing=False).startswith("the time it takes shows after its first steps")
    assert "guessed from the server's s2net runs" in ui.time_estimate(cfg)  # where the page may time, as before


def test_an_aside_times_in_the_background_and_says_so_until_the_time_shows(monkeypatch):
    """Classify's "Train the robust model" gave no time before the click (the aside may not hold the
    page up to time it). Now it starts one timing in a background thread, says so meanwhile, and
    gives the time once it is done."""
    import threading

    from signlab import ui
    from signlab.config import preset

    calls, release = [], threading.Event()

    def slow_trial(key):
        calls.append(key)
        release.wait(30)
        return 1234.0

    monkeypatch.setattr(ui, "_TRIALS", {})
    monkeypatch.setattr(ui, "_TIMING", set())
    monkeypatch.setattr(ui, "_trial_speed", slow_trial)
    monkeypatch.setattr(ui, "speed_rows", lambda available=None, alone=False: [])
    idle = type("Capacity", (), {"holding": 0, "waiting": 0})()
    store = type("Store", (), {"capacity": lambda self: idle})()
    monkeypatch.setattr(ui, "job_manager", lambda: type("JM", (), {"store": store, "limit": 1})())
    monkeypatch.setattr(ui, "_machine_load", lambda: None)
    cfg = preset("robust")
    said = ui.time_estimate(cfg, timing="background")  # returns at once, the timing started
    assert said.startswith("this server is timing a few of its steps now (no run here has trained an ensemble of 3")
    assert ui.trials_timing()
    assert ui.time_estimate(cfg, timing="background") == said and ui.trials_timing()  # asked again: no second one
    release.set()
    deadline = time.monotonic() + 30
    while ui.trials_timing() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ui.trials_timing() and len(calls) == 1
    said = ui.time_estimate(cfg, timing="background")
    assert said.startswith("it takes") and "timed from a few of its steps here" in said, said
    assert len(calls) == 1  # kept for the hour: the next look reads it


def test_a_brush_nobody_set_follows_its_axis_as_new_runs_widen_it(runs_env):
    """The brush's sliders kept the value range they were first drawn with: a sweep's new trial with
    a larger learning rate than any before fell outside a brush the student never set, and the table
    hid it ("2 of 3 trials inside the brush (lr, width)", the best trial missing)."""
    from signlab.config import TrainConfig
    from signlab.runs import create_run

    at = _open("runs")
    assert len(at.dataframe[0].value) == 2 and not any("inside the brush" in c.value for c in at.caption)
    bigger = create_run(TrainConfig(model="logreg", epochs=1, lr=0.05), runs_env, run_id="bigger-lr",
                        status="completed")
    bigger.store.annotate(bigger.id, test_accuracy=0.5)  # drawn: the chart has lines of runs with one
    at.run()
    no_error(at)
    assert not any("inside the brush" in c.value for c in at.caption), [c.value for c in at.caption]
    assert len(at.dataframe[0].value) == 3
    lr = by_label(at.select_slider, "learning rate")
    assert lr.value[-1] == 0.05  # the slider spans the new run too
    # a brush the student did set stays as set: the new, larger run is outside it
    lr.set_range(0.001, 0.004).run()
    no_error(at)
    assert any("2 of 3 runs inside the brush (lr)" in c.value for c in at.caption), [c.value for c in at.caption]
    bigger2 = create_run(TrainConfig(model="logreg", epochs=1, lr=0.08), runs_env, run_id="bigger-lr-2",
                         status="completed")
    bigger2.store.annotate(bigger2.id, test_accuracy=0.6)
    at.run()
    no_error(at)
    assert any("inside the brush (lr)" in c.value for c in at.caption), [c.value for c in at.caption]
    # and moved again, the slider keeps both its ends (given no value, Streamlit read its two ends as
    # a one-handle slider's, found no value and reset the brush at the second move)
    by_label(at.select_slider, "learning rate").set_range(0.004, 0.08).run()
    no_error(at)
    assert any("3 of 4 runs inside the brush (lr)" in c.value for c in at.caption), [c.value for c in at.caption]


def test_the_maps_layer_lives_in_the_link(runs_env):
    """Map kept its layer out of the link: a refresh lost it, and `?layer=zzz` was silently ignored."""
    at = _open("map", run="tiny-seed")
    chosen = at.selectbox(key="map_layer_tiny-seed")
    assert at.query_params["layer"] == [chosen.value] or at.query_params["layer"] == chosen.value
    from signlab import views
    from signlab.runs import open_run

    keys = [layer.key for layer in views.map_layers(open_run("tiny-seed", runs_env).load_model("cpu"))]
    other = next(k for k in keys if k != chosen.value)
    at = _open("map", run="tiny-seed", layer=other)
    assert at.selectbox(key="map_layer_tiny-seed").value == other and not at.warning
    at = _open("map", run="tiny-seed", layer="zzz")
    [said] = [w.value for w in at.warning if "layer='zzz' is not a layer of this run's model" in w.value]
    model = open_run("tiny-seed", runs_env).load_model("cpu")
    shown = {layer.key: layer.label for layer in views.map_layers(model)}[views.default_layer(model)]
    assert f"the default {shown!r} is used" in said.replace("\\", ""), said  # the Layer box's name, not its key


def test_a_sweep_charts_best_star_hides_no_trial_at_its_place():
    """Two trials with the same batch size and accuracy: the best one's star, drawn over the dots,
    covered the other trial's dot and its hover said nothing. The star now lies under the dots, and
    each point's hover names every trial at its place."""
    from signlab import figures

    rows = [dict(number=0, state="COMPLETE", value=0.995, batch_size=64),
            dict(number=1, state="COMPLETE", value=0.995, batch_size=64),
            dict(number=2, state="COMPLETE", value=0.9, batch_size=128),
            dict(number=3, state="PRUNED", value=0.5, batch_size=128)]
    fig = figures.sweep_scatter(rows, "batch_size", best_number=1)
    names = [t.name for t in fig.data]
    assert names.index("best") < names.index("completed"), names  # under the dots
    done = fig.data[names.index("completed")]
    assert list(done.hovertext) == ["trials #0, #1 (#1 the best)", "trials #0, #1 (#1 the best)", "trial #2"]
    assert list(fig.data[names.index("pruned or stopped")].hovertext) == ["trial #3"]
    # the setting in words, its value as the table writes it (the hover said "lr=260.929μ")
    assert done.hovertemplate.startswith("batch size %{x}<br>")
    lr = figures.sweep_scatter([dict(number=0, state="COMPLETE", value=0.9, lr=2.6e-4)], "lr", best_number=0)
    assert lr.data[-1].hovertemplate.startswith("learning rate %{x:.2e}<br>") and lr.data[-1].hovertext == ("trial #0, the best",)


def test_the_sweeps_start_button_is_drawn_before_its_network_is_timed(tmp_path, monkeypatch, app_caches):
    """A network no run had timed was timed for the estimate (seconds) before the Start button was
    drawn: on a first visit the page stood without one. The estimate keeps its place above it."""
    import streamlit as st

    from signlab import ui

    drawn = []

    def estimate(model, **kw):
        drawn.append("sweep_start" in st.session_state)  # the button has been made by now
        return "About 1 minute."

    monkeypatch.setattr(ui, "sweep_time_text", estimate)
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    at = _open("sweeps")
    assert drawn and all(drawn), drawn
    assert any(c.value.endswith("About 1 minute.") for c in at.caption)
