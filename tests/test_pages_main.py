"""The Data, Evaluate, Kernels and Runs pages under Streamlit's AppTest, and the selection logic
behind them (signlab.sampling, signlab.confusion, signlab.kernels).

One tiny logistic-regression run (20 steps) is trained once into a temporary runs folder; every
page test points SIGNLAB_RUNS_DIR there. Plotly clicks cannot be simulated here, so the Evaluate
test picks a confusion cell through the fallback selectboxes.
"""
from __future__ import annotations

import importlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from signlab import confusion, kernels, models, sampling
from signlab.errors import RunError
from signlab.evaluate import Evaluation
from signlab.labels import LETTERS
from tests._local import by_label, no_error

TIMEOUT = 60
APP = str(Path(__file__).resolve().parent.parent / "app.py")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def page_runs(tmp_path_factory, dataset):
    """A runs folder holding one tiny trained logreg run: (folder, run id)."""
    from signlab import api
    from signlab.config import TrainConfig

    root = tmp_path_factory.mktemp("page_runs")
    cfg = TrainConfig(model="logreg", epochs=1, max_steps=20, augment=False, seed=0)
    record = api.train(cfg, root, run_id="tiny-logreg", dataset=dataset)
    assert record["status"] == "completed"
    return root, record["run_id"]


@pytest.fixture
def runs_env(page_runs, monkeypatch, tmp_path):
    """A fresh copy of the runs folder (pages may rename or delete), in SIGNLAB_RUNS_DIR."""
    root, run_id = page_runs
    copy = tmp_path / "runs"
    shutil.copytree(root, copy)
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(copy))
    return copy, run_id


def _open(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at




def test_a_page_the_tour_opened_leads_back_to_its_step(runs_env):
    """The tour's "Open the … page →" left a student on that page with no way back but the page list
    or the browser's Back: the sidebar now links back to the step, until the tour is open again."""
    from signlab.ui import Keys

    at = _open("data")
    assert not [link for link in at.get("page_link") if "tour" in link.proto.label]  # not from the tour: none
    at.session_state[Keys.TOUR_AWAY] = 3  # as the tour's step 4 leaves it
    at.run()
    [back] = [link for link in at.get("page_link") if "tour" in link.proto.label]
    assert back.proto.label == "Back to the tour, step 4" and back.proto.page.endswith("guide")
    at.switch_page("app_pages/guide.py")
    at.run()
    assert not at.exception and Keys.TOUR_AWAY not in at.session_state  # back on the tour: done
    assert not [link for link in at.get("page_link") if "Back to the tour" in link.proto.label]


def test_the_tour_says_when_its_link_names_no_step(runs_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["step"] = "99"
    at.run()
    at.switch_page("app_pages/guide.py")
    at.run()
    no_error(at)
    assert [w.value for w in at.warning if "asked for step 99" in w.value], [w.value for w in at.warning]
    assert at.header[0].value.startswith("8.")


def test_the_tour_without_a_step_in_its_link_opens_after_the_users_last_step(tmp_path, monkeypatch, app_caches):
    """The sidebar's Guided tour opened step 1 under ticks for the steps the student's runs had done."""
    from signlab import guide
    from signlab.runs import create_run

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    run = create_run(guide.LOGREG, tmp_path, run_id="tour-logreg", status="completed")
    (run.dir / "model.safetensors").write_bytes(b"")  # the step counts a run with weights
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("app_pages/guide.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.header[0].value.startswith("3."), at.header[0].value
    assert at.query_params["step"] == "3"
    # Home's "Start the guided tour" starts it, at step 1, as it says
    home = AppTest.from_file(APP, default_timeout=TIMEOUT)
    home.run()
    [start] = [b for b in home.button if "Start the guided tour" in b.label]
    start.click().run()
    assert not home.exception, [e.message for e in home.exception]
    assert home.header[0].value.startswith("1."), home.header[0].value


# --------------------------------------------------------------------------- Data
def test_data_page(runs_env):
    at = _open("data")
    no_error(at)
    assert at.title[0].value.endswith("The data")
    assert any(e.label == "How it works" for e in at.expander)
    letters = by_label(at.multiselect, "Letters")
    letters.set_value([LETTERS.index("B")]).run()
    no_error(at)
    assert any("images of B" in c.value for c in at.caption)
    by_label(at.radio, "Split").set_value("test").run()
    no_error(at)
    seed = at.session_state["data_seed"]
    by_label(at.button, "🔀 Reshuffle").click().run()
    no_error(at)
    assert at.session_state["data_seed"] == seed + 1
    # the choices are in the link: a refresh (a new session) opens them again
    assert (at.query_params["split"], at.query_params["letters"], at.query_params["count"]) == ("test", "B", "32")
    assert not at.warning  # no widget warns of a value set twice


@pytest.mark.parametrize("query, split, letters, count, warned", [
    ({"split": "test", "letters": "m,N", "count": "16"}, "test", ["M", "N"], 16, []),
    ({"split": "valid", "letters": "J", "count": "20"}, "train", [], 32, ["split", "letters", "count"])])
def test_a_data_link_opens_its_split_letters_and_count(runs_env, query, split, letters, count, warned):
    """A refresh of Data put the split and the letter filter back to their defaults."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/data.py")
    at.query_params.update(query)
    at.run()
    no_error(at)
    said = [w.value for w in at.warning if w.value.startswith("The link's")]
    assert [w.split()[2].partition("=")[0] for w in said] == warned, said  # "The link's split='valid' …"
    if warned:  # said as the Train page says a bad setting in its link (settings.LinkProblem)
        assert said[0] == "The link's split='valid' is not train or test; the default 'train' is used.", said
    assert by_label(at.radio, "Split").value == split
    assert [LETTERS[i] for i in by_label(at.multiselect, "Letters").value] == letters
    assert at.session_state["data_count"] == count


# --------------------------------------------------------------------------- Evaluate
@pytest.mark.parametrize("page, picker", [("kernels", "Run"), ("classify", "Model")])
def test_a_picked_run_deleted_elsewhere_is_named_gone(runs_env, dataset, page, picker):
    """Kernels, Map, Evaluate, Classify and Calibrate switched to another run without a word when
    the run they showed was deleted in another tab."""
    from signlab.runs import delete_run, import_folder, store_for

    root, first = runs_env
    shutil.copytree(root / first, root / "second")  # a second run with weights, as another training gives
    (root / "second" / "meta.json").write_text(json.dumps({"run_id": "second", "name": "second", "created": 1}))
    import_folder(store_for(root), root / "second")
    at = _open(page)
    by_label(at.selectbox, picker).set_value("second").run()
    assert by_label(at.selectbox, picker).value == "second"
    delete_run("second", root)  # the other tab
    at.run()
    no_error(at)
    assert any("is gone" in w.value and "second" in w.value for w in at.warning), [w.value for w in at.warning]
    assert by_label(at.selectbox, picker).value == first
    at.run()  # said once
    assert not any("is gone" in w.value for w in at.warning)


def test_evaluate_page_shows_a_chosen_pair(runs_env):
    at = _open("evaluate")
    no_error(at)
    assert not any("was trained on" in i.value for i in at.info)  # the run learned from the pages' dataset
    labels = [m.label for m in at.metric]
    assert "Test accuracy" in labels and "Mistakes" in labels
    # the hardest letters say their measure beside the weakest letter's (recall): they read as a contradiction
    assert "Weakest letter (recall)" in labels
    hard = [m.value for m in at.markdown if "Hardest letters" in m.value or "recognised perfectly" in m.value]
    assert len(hard) == 1 and ("recognised perfectly" in hard[0] or "by recall alone" in hard[0]), hard
    # with one decimal, as the table beside it ("T (96%)" beside its 95.6%)
    assert "recognised perfectly" in hard[0] or re.search(r"\*\* \((over |under )?\d+\.\d+%\)", hard[0]), hard
    acc = by_label(at.metric, "Test accuracy").value
    assert acc.endswith("%") and 0 < float(acc[:-1]) <= 100
    assert len(at.dataframe) >= 1  # the per-letter table
    true_box, pred_box = by_label(at.selectbox, "True letter"), by_label(at.selectbox, "Predicted letter")
    # a diagonal cell always holds images for a trained model: pick the letter with most right answers
    importlib.import_module("signlab.ui")  # the cache is shared with the app in this process
    from signlab.api import evaluate_run

    ev = evaluate_run(runs_env[1], runs_dir=runs_env[0])
    k = int(np.argmax(np.diag(ev.confusion)))
    true_box.set_value(k)
    pred_box.set_value(k)
    at.run()
    no_error(at)
    n = int(ev.confusion[k, k])
    assert any(f"**{n:,}** of the" in m.value and f"**{LETTERS[k]}**" in m.value for m in at.markdown)
    # and said under the matrix, with a link down to the images (600 px below it at 820 px)
    picked = f"Picked: **{LETTERS[k]} → {LETTERS[k]}**, {n:,} image{'s' if n != 1 else ''} ([see them](#cell))."
    assert picked in [m.value for m in at.markdown], [m.value for m in at.markdown if "Picked" in m.value]
    # an empty cell says so instead of showing images
    empty = np.argwhere(ev.confusion == 0)
    if len(empty):
        t, p = map(int, empty[0])
        by_label(at.selectbox, "True letter").set_value(t)
        by_label(at.selectbox, "Predicted letter").set_value(p)
        at.run()
        no_error(at)
        assert any("No test image of" in i.value for i in at.info)
    by_label(at.radio, "Show").set_value("normalised").run()
    no_error(at)
    # the picked cell and the matrix are in the link: a refresh (a new session) opens them again
    assert (at.query_params["cell"], at.query_params["show"]) == (f"{LETTERS[t]}-{LETTERS[p]}", "normalised")


@pytest.mark.parametrize("cell, show, warned", [("C-E", "normalised", []), ("q-z", "share", ["cell", "show"])])
def test_an_evaluate_link_opens_its_cell_and_matrix(runs_env, cell, show, warned):
    """A refresh of Evaluate went back to the most frequent mistake and raw counts; only ?run= was kept."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/evaluate.py")
    at.query_params.update(run=runs_env[1], cell=cell, show=show)
    at.run()
    no_error(at)
    said = [w.value for w in at.warning if w.value.startswith("The link's")]
    assert [w.split()[2].partition("=")[0] for w in said] == warned, said  # "The link's split='valid' …"
    picked = (by_label(at.selectbox, "True letter").value, by_label(at.selectbox, "Predicted letter").value)
    if not warned:
        assert picked == (LETTERS.index("C"), LETTERS.index("E"))
        assert by_label(at.radio, "Show").value == "normalised"
    else:
        assert by_label(at.radio, "Show").value == "counts"


def test_pickers_open_on_the_run_this_session_trained_else_the_best(runs_env, dataset):
    from signlab import api
    from signlab.config import TrainConfig

    root, first = runs_env  # 20 steps
    for run_id, steps in (("tiny-strong", 300), ("tiny-newest", 3)):  # the newest run is the weakest
        api.train(TrainConfig(model="logreg", epochs=1, max_steps=steps, augment=False, seed=0), root,
                  run_id=run_id, dataset=dataset)
    for page in ("evaluate", "kernels", "map"):  # a new session: the best run (Kernels and Map took the newest)
        assert by_label(_open(page).selectbox, "Run").value == "tiny-strong", page
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["train_run_id"] = first  # this session pressed Start on it (ui.Keys.TRAIN_RUN)
    at.run()
    at.switch_page("app_pages/evaluate.py")
    at.run()
    assert not at.exception and by_label(at.selectbox, "Run").value == first
    by_label(at.selectbox, "Run").set_value("tiny-strong").run()  # the student picks another run
    at.switch_page("app_pages/kernels.py")
    at.run()
    assert by_label(at.selectbox, "Run").value == "tiny-strong"  # the pick is kept across pages
    at.session_state["train_run_id"] = "tiny-newest"  # then presses Start again
    at.switch_page("app_pages/evaluate.py")
    at.run()
    assert by_label(at.selectbox, "Run").value == "tiny-newest"  # the new run is shown, once
    by_label(at.selectbox, "Run").set_value("tiny-strong").run()
    at.switch_page("app_pages/map.py")
    at.run()
    assert not at.exception and by_label(at.selectbox, "Run").value == "tiny-strong"
    at.session_state["train_run_id"] = first  # a run trained, not yet shown; then a button opens another
    at.switch_page("app_pages/runs.py")
    at.run()
    by_label(at.button, "🎯 Open in Evaluate").click().run()
    picked = at.session_state["eval_run_id"]
    assert not at.exception and picked != first and by_label(at.selectbox, "Run").value == picked
    # the run shown is in the page's link: a reload (a new session on that link) shows it again, not the best
    assert at.query_params["run"] == picked
    # and Open in Train shows the run there, loss, health and Replay (a teacher could reach an earlier run's
    # Train view only by typing ?run= into the address)
    at.switch_page("app_pages/runs.py")
    at.run()
    by_label(at.button, "🏋️ Open in Train").click().run()
    assert not at.exception and at.session_state["train_run_id"] == picked and at.query_params["run"] == picked
    assert by_label(at.button, "Continue training") and not [i for i in at.info if "Press **Start**" in i.value]
    again = AppTest.from_file(APP, default_timeout=TIMEOUT)
    again.run()
    again.switch_page("app_pages/evaluate.py")
    again.query_params["run"] = "tiny-newest"
    again.run()
    assert not again.exception and by_label(again.selectbox, "Run").value == "tiny-newest"


@pytest.mark.parametrize("page, first", [("evaluate", "No trained run yet"), ("kernels", "No trained run yet"),
                                         ("map", "No trained run yet"), ("classify", "No trained run yet"),
                                         ("calibrate", "No trained run of yours yet"), ("runs", "No runs yet")])
def test_pages_without_runs(page, first, monkeypatch, tmp_path):
    """Each says so and leads to Train, which gives the time on this server (it said "the default
    takes seconds": a minute on an AVX2-only CPU)."""
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path / "empty"))
    at = _open(page)
    no_error(at)
    said = [i.value for i in at.info if i.value.startswith(first + ". Train one on the **Train** page")]
    assert said and "it says how long a run takes on this server" in said[0], [i.value for i in at.info]
    assert [b for b in at.button if b.label == "Go to Train"]


@pytest.mark.parametrize("page", ["evaluate", "kernels"])
def test_damaged_weights_give_a_message_not_a_traceback(page, runs_env):
    root, run_id = runs_env
    (root / run_id / "model.safetensors").write_bytes(b"not a safetensors file")
    at = _open(page)
    assert not at.exception
    assert any("not a readable safetensors file" in e.value for e in at.error)


# --------------------------------------------------------------------------- Kernels
def test_kernels_page_logreg_templates(runs_env):
    at = _open("kernels")
    no_error(at)
    assert any("Weight templates" in s.value for s in at.subheader)
    slider = at.select_slider[0]
    assert slider.label == "Epoch" and slider.options == ["before training", "after epoch 1"]
    # the slider names the snapshot; the chart does not say it again ("after epoch 2" read twice)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "after epoch 1" not in json.dumps(spec["layout"].get("title", ""))
    slider.set_value(0).run()
    no_error(at)
    assert any("no convolutions" in i.value for i in at.info)


def _kernels_page_of_a_tiny_run(model: str, steps: int, monkeypatch, tmp_path, dataset):
    """The Kernels page on a run of ``model`` trained for ``steps`` steps (the only run there)."""
    from signlab import api
    from signlab.config import TrainConfig

    root = tmp_path / "runs"
    api.train(TrainConfig(model=model, epochs=1, max_steps=steps, augment=False, batch_size=64), root,
              run_id=f"tiny-{model}", dataset=dataset, evaluate_test=False)
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(root))
    at = _open("kernels")
    no_error(at)
    return at


def test_kernels_page_convnet(monkeypatch, tmp_path, small_dataset):
    """A 10-step lecture ConvNet: first-layer kernels, a deeper layer by channel, feature maps."""
    from signlab import api

    at = _kernels_page_of_a_tiny_run("convnet", 10, monkeypatch, tmp_path, small_dataset)
    subheaders = [s.value for s in at.subheader]
    assert "First-layer kernels" in subheaders and "Deeper layers, channel by channel" in subheaders
    assert any("conv 3" in m.value and "50 maps of 3×3" in m.value for m in at.markdown)
    layer = by_label(at.selectbox, "Layer")
    layer.set_value(layer.options[-1] if isinstance(layer.options[-1], str) else "features.6").run()
    no_error(at)
    channel = [n for n in at.number_input if n.label.startswith("Input channel")][0]
    channel.set_value(49).run()
    no_error(at)
    by_label(at.selectbox, "Letter for the random pick").set_value(LETTERS.index("C")).run()
    by_label(at.button, "🎲 Random test image").click().run()
    no_error(at)
    after = at.session_state["kernels_image"]
    ds = api.load_dataset()
    assert ds.test.targets[after] == LETTERS.index("C")


def test_kernels_page_s2net_says_its_first_layer_is_fixed(monkeypatch, tmp_path, small_dataset):
    """s2net's first layer is set before training and never learned: the page says so once, with
    no claim about what trained kernels look like and no epoch slider reporting "moved 0%"."""
    at = _kernels_page_of_a_tiny_run("s2net", 5, monkeypatch, tmp_path, small_dataset)
    assert any("not learned" in i.value for i in at.info)
    assert not any("edge or blob" in c.value for c in at.caption)
    assert not any("moved" in c.value for c in at.caption)
    assert not [s for s in at.select_slider if s.label == "Epoch"]
    assert "Deeper layers, channel by channel" in [s.value for s in at.subheader]
    # its tiles' title: not "the final weights", which a walk read beside "not learned"
    import json
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert any("set before training, the same in every epoch" in t for t in titles), titles
    assert not any("final weights" in t for t in titles), titles


def test_kernels_page_mlp_units(monkeypatch, tmp_path, small_dataset):
    """An MLP's first hidden units as 28×28 weight images, as many as the slider asks, labelled by unit."""
    at = _kernels_page_of_a_tiny_run("mlp", 5, monkeypatch, tmp_path, small_dataset)
    assert "What the first hidden units look for" in [s.value for s in at.subheader]
    by_label(at.slider, "Units shown").set_value(16).run()
    no_error(at)
    fig = at.get("plotly_chart")[0].proto.spec
    assert fig.count('"unit ') >= 16  # one title per unit shown


# --------------------------------------------------------------------------- Runs
def test_runs_page_acts_on_nothing_when_its_run_was_deleted_in_another_tab(runs_env):
    """Two tabs on Runs, both managing the newest run X. Tab A deletes X; tab B, still showing X,
    pressed Delete… and was asked (and allowed) to delete the next run instead, and its Rename
    renamed the next run. Now the stale click is named and does nothing."""
    from signlab.config import TrainConfig
    from signlab.runs import create_run, delete_run, open_run

    root, older = runs_env
    older_name = open_run(older, root).name
    x = create_run(TrainConfig(model="logreg", epochs=1), root, status="completed")
    tab_b = _open("runs")
    assert by_label(tab_b.selectbox, "Run").value == x.id
    delete_run(x.id, root)  # tab A
    by_label(tab_b.button, "🗑️ Delete…").click().run()
    no_error(tab_b)
    assert any("is gone" in w.value and x.id in w.value for w in tab_b.warning), [w.value for w in tab_b.warning]
    assert not any("cannot be undone" in w.value for w in tab_b.warning)  # no delete put up for the other run
    assert (root / older).is_dir()
    # the next click is the user's own, on the run now shown: Rename works on it
    by_label(tab_b.text_input, "Name").set_value("kept")
    by_label(tab_b.button, "✏️ Rename").click().run()
    assert open_run(older, root).name == "kept"

    # a rename typed for a run deleted meanwhile renames nothing
    y = create_run(TrainConfig(model="logreg", epochs=1), root, status="completed")
    tab_b = _open("runs")
    by_label(tab_b.text_input, "Name").set_value("meant for y")
    delete_run(y.id, root)
    by_label(tab_b.button, "✏️ Rename").click().run()
    no_error(tab_b)
    assert open_run(older, root).name == "kept" != older_name
    assert any("is gone" in w.value for w in tab_b.warning)


def test_runs_page_pauses_and_resumes_a_training_run(runs_env):
    """A paused run's words on Runs said "press Resume to go on", and Runs had no Resume (a teacher
    looked for it): Pause and Resume are there beside Stop."""
    from signlab.access import local_user
    from signlab.config import TrainConfig
    from signlab.runs import create_held_run
    from signlab.store import RunState

    root, _ = runs_env
    run, claim = create_held_run(TrainConfig(model="logreg", epochs=1), "w", root, owner=local_user().id)
    run.store.update(claim, RunState.RUNNING)
    at = _open("runs")
    assert by_label(at.selectbox, "Run").value == run.id
    assert not any("owner" in c.value for c in at.caption)  # one's own run: "owner local:root" was noise
    by_label(at.button, "⏸ Pause").click().run()
    no_error(at)
    assert run.store.heartbeat(claim) == "pause"
    run.store.update(claim, RunState.PAUSED, message="paused; press Resume to go on")  # as its worker does
    at.run()
    by_label(at.button, "⏯ Resume").click().run()
    no_error(at)
    assert run.store.heartbeat(claim) is None
    assert any("resumes as soon as a slot is free" in s.value for s in at.success), [s.value for s in at.success]
    assert by_label(at.button, "⏯ Resume").disabled  # pressed: it waits for a slot
    # and the line above it says so (it still read "paused; press Resume to go on")
    assert any("resuming as soon as a slot is free" in c.value for c in at.caption), [c.value for c in at.caption]


def test_runs_page_name_box_holds_the_name_the_pickers_show(runs_env):
    """An unnamed run is "4 Dec 15:54:20" in every picker and the table; the Name box held its raw id."""
    from signlab.config import TrainConfig
    from signlab.runs import create_run
    from signlab.views import run_display_name

    root, _ = runs_env
    new = create_run(TrainConfig(model="logreg", epochs=1), root)  # a generated id, as Train makes
    at = _open("runs")
    no_error(at)
    assert by_label(at.selectbox, "Run").value == new.id  # the newest run is the one managed
    shown = by_label(at.text_input, "Name").value
    assert shown == run_display_name(new.id) and shown != new.id, (shown, new.id)


def test_runs_page_rename_and_delete(runs_env):
    root, run_id = runs_env
    at = _open("runs")
    no_error(at)
    assert any(s.value.startswith("All runs (1)") for s in at.subheader)
    assert len(at.dataframe) == 1
    by_label(at.text_input, "Name").set_value("my first model")
    by_label(at.button, "✏️ Rename").click().run()
    no_error(at)
    from signlab.runs import open_run

    assert open_run(run_id, root).name == "my first model"
    assert any(s.value == "Renamed to “my first model”." for s in at.success), [s.value for s in at.success]
    # the name as it was (a paste over 80 characters the box refused): said, not "Renamed to" it
    by_label(at.button, "✏️ Rename").click().run()
    assert any(i.value.startswith("The name is unchanged") for i in at.info), [i.value for i in at.info]
    assert not any(s.value.startswith("Renamed to") for s in at.success)

    by_label(at.button, "🗑️ Delete…").click().run()
    no_error(at)
    assert (root / run_id).is_dir()  # only asked, not yet deleted
    assert any("cannot be undone" in w.value for w in at.warning)
    by_label(at.button, "Cancel").click().run()
    assert (root / run_id).is_dir() and not any("cannot be undone" in w.value for w in at.warning)

    by_label(at.button, "🗑️ Delete…").click().run()
    at.session_state["train_run_id"] = run_id  # the Train page follows it
    by_label(at.button, "Yes, delete it").click().run()
    no_error(at)
    assert not (root / run_id).exists()
    assert any("No runs yet" in i.value for i in at.info)
    # forgotten where the session kept it (the pages that remember a run, the confirmation)
    assert all(at.session_state[k] != run_id for k in ("eval_run_id", "train_run_id", "runs_confirm_delete")
               if k in at.session_state)


def test_runs_page_rename_keeps_the_chosen_run(runs_env):
    """A rename must not change which run is managed (nor which one Delete removes).

    In the browser a selectbox matches its choice by label, so the page keeps the run id under its
    own key (checked in Chromium); AppTest keeps values by index, so here this guards the flow.
    """
    root, run_id = runs_env
    import json

    other = root / "older-run"
    shutil.copytree(root / run_id, other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "run_id": "older-run", "name": "older-run", "created": 0}))
    at = _open("runs")
    by_label(at.selectbox, "Run").set_value("older-run").run()
    by_label(at.text_input, "Name").set_value("renamed older")
    by_label(at.button, "✏️ Rename").click().run()
    no_error(at)
    assert by_label(at.selectbox, "Run").value == "older-run"
    by_label(at.button, "🗑️ Delete…").click().run()
    by_label(at.button, "Yes, delete it").click().run()
    no_error(at)
    assert not other.exists() and (root / run_id).is_dir()
    assert any("Deleted run renamed older" in s.value for s in at.success)


def test_deleting_the_last_run_says_so_on_the_empty_page(runs_env):
    """The flash of a delete is said where the click was; with no run left, on the empty page (it
    stayed in the session and greeted the next visit with a stale "Deleted run …")."""
    from signlab.runs import delete_run, list_runs

    root, run_id = runs_env
    for r in list_runs(root):
        if r.id != run_id:
            delete_run(r.id, root)
    at = _open("runs")
    by_label(at.button, "🗑️ Delete…").click().run()
    by_label(at.button, "Yes, delete it").click().run()
    no_error(at)
    assert list_runs(root) == [] and any("No runs yet" in i.value for i in at.info)
    assert any(s.value.startswith("Deleted run") for s in at.success), [s.value for s in at.success]
    assert "runs_flash" not in at.session_state


def test_runs_page_open_in_evaluate(runs_env):
    at = _open("runs")
    by_label(at.button, "🎯 Open in Evaluate").click().run()
    no_error(at)
    assert at.session_state["eval_run_id"] == runs_env[1]
    assert any(t.value.endswith("Evaluate a model") for t in at.title)


def test_compare_says_which_chosen_run_has_no_curve(runs_env):
    from signlab.config import TrainConfig
    from signlab.runs import create_run

    root, run_id = runs_env
    create_run(TrainConfig(model="mlp"), root, run_id="no-epochs", status="completed")
    at = _open("runs")
    at.multiselect(key="runs_compare").set_value([run_id, "no-epochs"]).run()
    no_error(at)
    notes = [c.value for c in at.caption if c.value.startswith("No epoch curve for")]
    assert len(notes) == 1 and "no-epochs" in notes[0] and "it has no finished epoch" in notes[0], notes


def test_compare_keeps_each_runs_colour_when_one_is_dropped(runs_env):
    """Dropping the first of three overlaid runs recoloured the other two (colours went by place in
    the pick list): each keeps its line colour while it stays picked."""
    import json

    from signlab import figures
    from signlab.config import TrainConfig
    from signlab.runs import create_run, open_run_id

    root, run_id = runs_env
    source = open_run_id(run_id, root).dir
    for seed, copy in ((1, "copy-b"), (2, "copy-c")):  # the same curves under other ids
        made = create_run(TrainConfig(model="logreg", epochs=1, seed=seed), root, run_id=copy, status="completed")
        shutil.copy(source / "metrics.jsonl", made.dir / "metrics.jsonl")
    at = _open("runs")

    def colours() -> list[list[str]]:
        charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        return [[t["line"]["color"] for t in c["data"]] for c in charts if c["data"] and "line" in c["data"][0]]

    at.multiselect(key="runs_compare").set_value([run_id, "copy-b", "copy-c"]).run()
    no_error(at)
    blue, red, green = figures.RUN_COLORS[:3]
    assert colours() and all(c == [blue, red, green] for c in colours()), colours()
    at.multiselect(key="runs_compare").set_value(["copy-b", "copy-c"]).run()
    no_error(at)
    assert colours() and all(c == [red, green] for c in colours()), colours()


def test_a_link_to_a_run_that_is_not_here_says_so(runs_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/evaluate.py")
    at.query_params["run"] = "20260101-000000-mlp-gone"
    at.run()
    no_error(at)
    assert any("20260101-000000-mlp-gone" in w.value and "not one you can open" in w.value for w in at.warning)
    assert by_label(at.selectbox, "Run").value == runs_env[1]  # the page still opens, on another run
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/evaluate.py")
    at.query_params["run"] = runs_env[1]
    at.run()
    assert not at.warning


def test_train_page_puts_the_run_it_follows_in_the_link(runs_env):
    """A query parameter set just before st.rerun() can be lost (streamlit#7961), so the page puts
    the followed run back in its link on every run; a run the user may not see is never put there."""
    for followed, linked in ((runs_env[1], runs_env[1]), ("no-such-run", None)):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.switch_page("app_pages/train.py")
        at.session_state["train_run_id"] = followed  # as after Start, with the link's update lost
        at.run()
        no_error(at)
        run = at.query_params.get("run")
        assert (run[-1] if isinstance(run, list) else run) == linked
        # a followed run that is gone (deleted in another tab) is named, once; it fell back silently
        gone = [w.value for w in at.warning if "is not one you can open here" in w.value]
        assert len(gone) == (0 if linked else 1), gone
        at.run()
        assert not any("is not one you can open here" in w.value for w in at.warning)
        assert all(g.startswith("The run this page followed:") for g in gone), gone
    # a link just opened is the link's run, not "the run this page followed" (a teacher's walk)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/train.py")
    at.query_params["run"] = "20260101-000000-mlp-gone"
    at.run()
    no_error(at)
    said = [w.value for w in at.warning if "is not one you can open here" in w.value]
    assert len(said) == 1 and said[0].startswith("The link's run "), said


def test_train_page_offers_a_finished_runs_loss_as_a_replay(runs_env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/train.py")
    at.query_params["run"] = runs_env[1]  # a finished run
    at.run()
    no_error(at)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    [loss] = [s for s in specs if [d.get("name") for d in s["data"]] == ["step loss", "smoothed"]]
    assert loss.get("frames") and loss["layout"]["updatemenus"][0]["buttons"][0]["label"] == "▶ Replay"


# --------------------------------------------------------------------------- the pages' helpers
def _ev(y_true, y_pred) -> Evaluation:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    probs = np.full((len(y_true), 24), 0.01)
    probs[np.arange(len(y_pred)), y_pred] = 0.9
    return Evaluation(y_true=y_true, y_pred=y_pred, probs=probs)


def test_click_to_pair():
    assert confusion.click_to_pair([{"customdata": [3, 5], "x": "F"}]) == (3, 5)
    assert confusion.click_to_pair([{"x": "A"}, {"customdata": [1, 1]}]) == (1, 1)
    # what Streamlit 1.67 sends for a numpy customdata row (seen in Chromium)
    sent = [{"point_index": 276, "x": "N", "y": "M", "customdata": {"0": 11, "1": 12}}]
    assert confusion.click_to_pair(sent) == (11, 12)
    for bad in (None, [], [{"customdata": None}], [{"customdata": [30, 1]}], [{"customdata": ["a", 1]}],
                ["not a dict"], [{"customdata": [2]}], [{"customdata": {"0": 1}}], [{"customdata": "ab"}]):
        assert confusion.click_to_pair(bad) is None


def test_sample_indices_filters_and_repeats():
    targets = np.array([0, 1, 2, 1, 1, 0, 2, 1])
    a = sampling.sample_indices(targets, [1], 3, seed=7)
    assert len(a) == 3 and set(targets[a]) == {1} and len(set(a)) == 3
    assert np.array_equal(a, sampling.sample_indices(targets, [1], 3, seed=7))
    assert len(sampling.sample_indices(targets, [1], 10, seed=0)) == 4  # only four images of letter 1
    assert len(sampling.sample_indices(targets, None, 5, seed=0)) == 5
    assert len(sampling.sample_indices(targets, [5], 3, seed=0)) == 0
    assert sampling.random_test_index(targets, 2, seed=3) in (2, 6)
    # a dataset without a letter (one's own SIGNLAB_DATA): offered only the letters it holds; asked for
    # another, no image of another letter stands for it (image 0, an A, stood for F) and no crash
    assert sampling.letters_present(targets) == [0, 1, 2]
    assert sampling.random_test_index(targets, 5, seed=1) is None
    from signlab.errors import DataError

    with pytest.raises(DataError, match="the test images hold no F; pick another letter"):
        sampling.nth_image_of(np.zeros((8, 784)), targets, "F", 0)


def test_worst_pair_and_crowded_column():
    y_true = [1] * 60 + [2] * 60 + [0] * 10 + [3] * 5
    y_pred = [0] * 55 + [1] * 5 + [0] * 40 + [2] * 20 + [0] * 10 + [3] * 5
    ev = _ev(y_true, y_pred)
    assert confusion.worst_pair(ev) == (1, 0)
    col = confusion.crowded_column(ev)
    assert col is not None and col["letter"] == "A" and col["wrong"] == 95 and col["support"] == 10
    assert confusion.crowded_column(_ev([0, 1, 2], [0, 1, 2])) is None
    assert confusion.worst_pair(_ev([0, 1, 1], [0, 1, 1])) == (0, 0)  # no mistakes: the weakest diagonal


def test_titles_and_rows():
    ev = _ev([0, 1], [0, 2])
    assert confusion.confidence_titles(np.array([0.734, 1.0])) == ["73%", "100%"]
    assert confusion.mistake_titles(ev.mistakes()) == ["B→C<br>90%"]  # two lines: on one, a phone ran them together
    rows = confusion.per_class_rows(ev)
    assert rows[0]["letter"] == "A" and rows[0]["recall"] == 100.0 and rows[1]["recall"] == 0.0


def test_kernel_helpers():
    import torch

    from signlab.models import create_model

    conv = create_model("convnet")
    assert models.model_kind(conv) == "conv"
    assert models.model_kind(create_model("logreg")) == "logreg"
    assert models.model_kind(create_model("mlp")) == "mlp"
    info = kernels.conv_layer_info(conv)
    assert [(l["in"], l["out"], l["k"]) for l in info] == [(1, 100, 5), (100, 50, 3), (50, 50, 3)]
    assert kernels.conv_kernels(conv, info[1]["name"], 7).shape == (50, 3, 3)
    with pytest.raises(RunError, match="has input channels 0-99, not 100"):
        kernels.conv_kernels(conv, info[1]["name"], 100)
    assert kernels.first_layer_tiles(torch.zeros(100, 1, 5, 5)).shape == (100, 5, 5)
    assert kernels.first_layer_tiles(torch.zeros(24, 784)).shape == (24, 28, 28)
    assert kernels.first_layer_weight(create_model("logreg")).shape == (24, 784)
    w0 = torch.ones(4, 1, 3, 3)
    change = kernels.kernel_change({0: w0, 1: w0 * 1.5})
    assert change[0] == 0 and change[1] == pytest.approx(0.5)
    tiles, titles = kernels.feature_map_tiles(np.zeros((50, 3, 3)), cap=32)
    assert tiles.shape == (32, 3, 3) and titles[0] == "#0"
    w = np.zeros((5, 784))
    w[3] = 1
    assert kernels.strongest_units(w, 2)[0] == 3


@pytest.mark.parametrize("shape", [(3, 5000), (5000, 3), (2, 700), (1, 300), (480, 640), (1, 1)])
def test_image_with_box_draws_any_shape_of_photo(shape):
    """A 5000x3 upload showed an exception on Classify: a side shorter than the display's block size."""
    from signlab import figures

    img = np.random.default_rng(0).random(shape)
    fig = figures.image_with_box(img, box=(0, 0, min(shape), min(shape)))
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.ndim == 2 and max(z.shape) <= 240 and np.isfinite(z).all(), z.shape
    assert 0 <= z.min() and z.max() <= 1


def test_clickable_confusion_matrix_and_tile_grid():
    from signlab import figures

    cm = np.eye(24, dtype=int) * 10
    cm[3, 5] = 4
    fig = figures.confusion_matrix_clickable(cm, selected=(3, 5), size=500)
    assert fig.layout.dragmode is None  # "select" would make Streamlit ignore clicks
    assert fig.layout.xaxis.fixedrange and fig.layout.yaxis.fixedrange
    assert fig.layout.width == 500 and fig.data[0].unselected.marker.opacity == 1
    assert [list(c) for c in fig.data[0].customdata[:2]] == [[0, 0], [0, 1]]
    big = figures.confusion_matrix_clickable(np.eye(24, dtype=int) * 331 + np.eye(24, k=1, dtype=int) * 21,
                                             size=440)  # the Evaluate page's box
    size_of = dict(zip(big.data[0].text, big.data[0].textfont.size))
    # a mistake's count reads at 9 px or more; the diagonal's three digits, which fit only at 7 px
    # there, are left to the hover (which names every cell's count, an empty cell's too)
    assert size_of["21"] >= 9 and "331" not in size_of, size_of
    assert big.data[0].hovertext[0].startswith("true A, predicted A: 331 images (94% of A)")
    assert big.data[0].hovertext[2] == "true A, predicted C: 0 images (0% of A)"
    # a diagonal of mixed widths is shown whole or not at all: with only the three-digit counts
    # dropped, R's 71 beside A's blank read as a mistake
    mixed = np.eye(24, dtype=int) * 331
    mixed[15, 15], mixed[16, 16] = 71, 98
    text = figures.confusion_matrix_clickable(mixed + np.eye(24, k=1, dtype=int) * 21, size=440).data[0].text
    assert [text[k * 24 + k] for k in range(24)] == [""] * 24 and text[1] == "21"
    wide = figures.confusion_matrix_clickable(np.eye(24, dtype=int) * 331, size=620)
    assert dict(zip(wide.data[0].text, wide.data[0].textfont.size))["331"] >= 8  # room for it at 620 px
    assert big.layout.meta["diagonal_hidden"] and not wide.layout.meta["diagonal_hidden"]  # for the page's caption
    share = figures.confusion_matrix_clickable(np.eye(24, dtype=int) * 331 + np.eye(24, k=1, dtype=int) * 21,
                                               normalize=True, size=440)
    # shares in percent, as read, without their "%" (the hover and the caption say percent): on a
    # phone "35%1%" ran together; the hover still writes it
    # (and a row all right is a check mark: X's "100" was too wide for its cell at 440 px, and the
    # diagonal, numbered whole or not at all, went blank for every strong model)
    assert tuple(share.data[0].text[:2]) == ("94", "6") and not any("%" in t for t in share.data[0].text)
    assert share.data[0].text[-1] == "✓" and share.data[0].textfont.size[0] >= 8
    assert "(6% of A)" in share.data[0].hovertext[1]
    # the axes end half a cell past the outer squares: plotly's marker padding left the column
    # letters about 35 px above the grid
    assert list(fig.layout.xaxis.range) == list(fig.layout.yaxis.range) == [-0.5, 23.5]

    # kernels side by side sit on grey, so a near-zero (white) edge does not run into the next kernel
    kernels = figures.weight_templates(np.random.default_rng(0).normal(size=(50, 3, 3)), cols=25, tile_px=32)
    assert np.isnan(np.asarray(kernels.data[0].z, dtype=float)).any() and kernels.layout.plot_bgcolor == "#c4c4c4"
    grid = figures.tile_grid(np.random.default_rng(0).random((10, 28, 28)), [str(i) for i in range(10)], cols=4,
                             tile_px=50)
    z = np.asarray(grid.data[0].z, dtype=float)
    assert z.shape[1] == 4 * 28 + 3 * int(np.ceil(6 / (50 / 28)))  # four tiles and three gaps a row
    assert np.isnan(z[0]).all()  # a free band above the first row holds its titles
    assert len(grid.layout.annotations) == 10 and grid.layout.width > 4 * 50
    # the band above each row holds an 11 px title even when a narrow column shows the grid at 60%:
    # the image shrinks, the titles' font does not (at 820 px wide the Data page's titles sat on
    # the row above)
    band = int(np.isnan(z[:, 0]).cumprod().sum())  # rows of NaN above the first tile
    assert band * (50 / 28) * 0.6 >= 11 + 6
    # and two lines of titles (the mistakes': "N→T" over "99%") get a band of two
    two = figures.tile_grid(np.zeros((3, 28, 28)), ["N→T<br>99%"] * 3, cols=3, tile_px=50)
    band2 = int(np.isnan(np.asarray(two.data[0].z, dtype=float)[:, 0]).cumprod().sum())
    assert band2 * (50 / 28) * 0.6 >= 2 * 11 + 6
    # every letter named on the confusion matrix's and the class counts' axes
    assert list(fig.layout.xaxis.tickvals) == list(fig.layout.yaxis.tickvals) == list(LETTERS)
    assert list(figures.class_counts(np.ones(24), np.ones(24)).layout.xaxis.tickvals) == list(LETTERS)
    # Classify's bars follow the never-a-false-100% rule, as its headline does
    bars = figures.probability_bars([{"letter": "A", "probability": np.float32(0.99996)},
                                     {"letter": "B", "probability": 0.00004}])
    assert list(bars.data[0].text) == ["under 0.01%", "over 99.99%"]  # widened to two decimals, as everywhere
    # a short bar's number beside it, never left out (with "auto", a bar of 0% showed none)
    assert list(bars.data[0].textposition) == ["outside", "inside"] and bars.data[0].cliponaxis is False
    tiny = figures.tile_grid(np.zeros((5, 3, 3)), cols=5, tile_px=40)  # 3x3 maps are enlarged
    assert np.asarray(tiny.data[0].z).shape[0] >= 16


def test_a_database_that_cannot_be_opened_is_a_message_not_a_traceback(runs_env, monkeypatch, app_caches):
    """An error no page catches (here the run database, misconfigured) reaches the router, which
    shows its message; Streamlit would show a redacted traceback."""
    monkeypatch.setenv("SIGNLAB_DB", "nosuchdriver://somewhere/runs")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/train.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("cannot open the run database" in e.value and "unknown kind of database 'nosuchdriver'" in e.value
               for e in at.error), \
        [e.value for e in at.error]


def test_train_page_says_what_start_will_train(runs_env):
    """Beside Start, the numbers the run will use: a number too long for the browser (23 digits) never
    reaches the server and its box keeps the old value, so this line is where a student sees it."""
    at = _open("train")
    by_label(at.number_input, "Epochs").set_value(7).run()
    by_label(at.number_input, "Seed").set_value(3).run()
    assert not at.exception
    [box] = [i.value for i in at.info if "Press **Start** to train" in i.value]
    assert " for 7 epochs** (" in box and ", seed 3)." in box, box


def test_the_train_hint_names_the_network_before_its_steps_are_timed(runs_env, monkeypatch):
    """For a network this server has not measured, the estimate times a few of its steps, seconds in
    which the old hint stood, naming the network just switched from. The trial here fails at once:
    what the page drew before it is what the student saw meanwhile."""
    at = _open("train")

    def timing(key):
        raise RuntimeError("timing its steps")
    monkeypatch.setattr("signlab.ui._trial_speed", timing)
    by_label(at.selectbox, "Architecture").set_value("convnet").run()
    assert at.exception, "no step of convnet was timed"  # its message is redacted (.streamlit/config.toml)
    [hint] = [i.value for i in at.info if "Press **Start** to train" in i.value]
    assert "convnet" in hint and "s2net" not in hint, hint


def test_train_page_gives_long_choices_and_the_buttons_room(runs_env):
    """At a third of a 1280-px page two columns are about 115 px each: "standardize" and "Pause"
    were cut there, so the normalisation choice takes the settings' full width, and the buttons a
    row of three at the top of the other two thirds (under the settings Start was below the fold
    of a 1280x900 window)."""
    at = _open("train")
    halves = [col for col in at.columns if col.weight == pytest.approx(0.5)]  # inside the settings' third
    in_columns = [w.label for col in halves for w in (*col.selectbox, *col.button)]
    assert "Optimizer" in in_columns
    assert "Input normalisation" not in in_columns and "▶ Start" not in in_columns, in_columns
    assert by_label(at.selectbox, "Input normalisation").value == "standardize"
    thirds = [[b.label for b in col.button] for col in at.columns if col.weight == pytest.approx(1 / 3) and col.button]
    assert thirds[:2] == [["▶ Start"], ["⏹ Stop"]] and thirds[2][0].endswith(("Pause", "Resume")), thirds
    assert not [b for col in halves for b in col.button]
    # a row of two columns a pair: on a phone, where columns stack, the pairs stay together (two whole
    # columns stacked the left one's six settings, then the right one's: the learning rate far from
    # its optimizer and schedule)
    stacked = [w.label for col in halves for w in (*col.number_input, *col.selectbox)]
    assert stacked[:6] == ["Epochs", "Batch size", "Learning rate", "Optimizer", "Weight decay", "Schedule"], stacked
    # a narrow window stacks the settings under the run: a link there leads down to them (its box is
    # shown by the panes' container query only then; they were 2,300 px down at 820 px)
    assert "[The settings are under the run ↓](#settings)" in [c.value for c in at.caption]
    assert [h.value for h in at.subheader if h.value == "Settings"] and any(
        ".st-key-train_when_stacked { display: block; }" in h.body for h in at.get("html")), "no rule shows the link"


def test_a_train_tab_that_showed_a_run_from_another_tab_keeps_its_outcome(runs_env, monkeypatch, app_caches):
    """A second tab on Train shows the user's run still training in another tab; when that run ended,
    the second tab went back to "Press Start" with no result, while the first showed the outcome."""
    from signlab.access import local_user
    from signlab.config import TrainConfig
    from signlab.runs import create_run
    from signlab.store import store_for

    root, _ = runs_env
    monkeypatch.setenv("SIGNLAB_LOCAL_WORKERS", "0")  # it stays queued: nothing trains under the test
    queued = create_run(TrainConfig(model="logreg", epochs=1, max_steps=5), root, owner=local_user().id)
    at = _open("train")
    said = " ".join(i.value for i in at.info)
    assert "This is your run that is waiting in the queue, started in another tab" in said, said
    store_for(root).request(queued.id, "stop")  # the other tab cancels it
    at.run()
    assert not at.exception
    shown = " ".join(e.value for kind in (at.info, at.subheader) for e in kind)  # a stop is said in blue
    assert "Stopped: cancelled before it started" in shown and "Press **Start**" not in shown


def test_a_paused_run_draws_its_curves_as_the_page_says(runs_env, monkeypatch, app_caches):
    """"The epoch curves and the network's health are drawn when the run pauses or ends": a paused
    run still showed only the "Draw them now" button. Drawn on demand while it trains, at once when
    paused (it takes no CPU from training then)."""
    from signlab.config import TrainConfig
    from signlab.runs import create_held_run
    from signlab.store import RunState

    from signlab.runs import RunWriter

    root, _ = runs_env
    monkeypatch.setenv("SIGNLAB_LOCAL_WORKERS", "0")
    run, claim = create_held_run(TrainConfig(model="logreg", epochs=2), "w", root)
    run.store.update(claim, RunState.RUNNING)
    writer = RunWriter(run, claim)  # its first epoch, and the health monitor's samples of it
    for step in (10, 20):
        writer.log({"type": "batch", "step": step, "epoch": 1, "loss": 3.0 - step / 10, "lr": 1e-3})
        writer.log({"type": "health", "step": step, "epoch": 1,
                    "layers": {"fc": {"grad_norm": 0.5, "weight_norm": 2.0 + step / 100}}})
    writer.log({"type": "epoch", "epoch": 1, "train_loss": 1.2, "train_accuracy": 0.6, "val_loss": 1.1,
                "val_accuracy": 0.62, "epoch_seconds": 3.0, "train_seconds": 3.0, "samples_per_second": 9000.0})
    writer.close()
    draw = lambda at: [b for b in at.button if "Draw them now" in b.label]  # noqa: E731
    health = lambda at: [m for m in at.markdown if "The network's health" in m.value]  # noqa: E731
    at = _open("train")
    assert draw(at) and not health(at), "while it trains, the curves wait for the button"
    charts = len(at.get("plotly_chart"))
    run.store.update(claim, RunState.PAUSED)
    at.run()
    assert not at.exception and not draw(at)
    # what the words promise is drawn: the epoch curves and the health charts, two charts more
    assert health(at) and len(at.get("plotly_chart")) == charts + 2


def test_the_health_caption_explains_only_the_charts_drawn(runs_env, dataset, app_caches):
    """Logistic regression's health caption explained "Dead ReLU units", a chart it does not have
    (it has no ReLU); a model with ReLUs keeps the sentence beside its chart."""
    from signlab import api
    from signlab.config import TrainConfig
    from signlab.ui import Keys

    root, logreg = runs_env
    mlp = api.train(TrainConfig(model="mlp", epochs=1, max_steps=20, augment=False), root, run_id="tiny-mlp",
                    dataset=dataset, evaluate_test=False)["run_id"]
    said = {}
    for run_id in (logreg, mlp):
        at = _open("train")
        at.session_state[Keys.TRAIN_RUN] = run_id
        at.run()
        no_error(at)
        [said[run_id]] = [c.value for c in at.caption if "**Gradient size**" in c.value]
    assert "Dead ReLU" not in said[logreg] and "**Dead ReLU units**" in said[mlp], said


def test_under_a_finished_run_start_says_what_it_trains_and_why_it_is_off(runs_env):
    """With a finished run on the Train page, changed settings got no time estimate (only before the
    first run did "Press Start" give one), and settings Start cannot use were named only at the foot
    of the settings column, out of view at 1280x800."""
    from signlab.ui import Keys

    _, run_id = runs_env
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[Keys.TRAIN_RUN] = run_id
    at.run()
    at.switch_page("app_pages/train.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    by_label(at.number_input, "Epochs").set_value(4).run()
    said = [c.value for c in at.caption if c.value.startswith("**Start** trains")]
    assert len(said) == 1 and " for 4 epochs** (" in said[0] and "with these settings" in said[0], said
    by_label(at.number_input, "Epochs").set_value(0).run()
    assert not at.exception
    start = next(b for b in at.button if "Start" in b.label)
    warned = [w.value for w in at.warning if w.value.startswith("Start is off until the settings can be used")]
    assert start.disabled and len(warned) == 1 and "Epochs" in warned[0], [w.value for w in at.warning]


def test_continue_with_a_number_out_of_range_says_so_and_continues_nothing(runs_env, app_caches):
    """The Continue box had bounds: 999 typed turned it red, kept its last valid number, and the click
    continued the run for that number of epochs, unsaid."""
    from signlab.runs import open_run

    root, run_id = runs_env
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/train.py")
    at.session_state["train_run_id"] = run_id
    at.run()
    no_error(at)
    by_label(at.number_input, "Continue this run for more epochs").set_value(999)
    next(b for b in at.button if b.label == "Continue training").click().run()
    assert not at.exception
    said = [e.value for e in at.error if e.value.startswith("Could not continue: Continue this run for more epochs")]
    assert said and "999 is out of range; allowed 1 to" in said[0], [e.value for e in at.error]
    assert open_run(run_id, root).status()["status"] == "completed"  # nothing queued


def test_a_stopped_run_with_weights_leads_on_as_a_finished_one_does(runs_env, app_caches):
    """A finished run ends with "Evaluate it / See its kernels / Classify a sign"; a run its student
    stopped after some epochs had weights to look at and no such step but Continue."""
    from signlab.runs import open_run
    from signlab.store import runs_table

    root, run_id = runs_env
    run = open_run(run_id, root)

    def buttons() -> list[str]:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.switch_page("app_pages/train.py")
        at.session_state["train_run_id"] = run_id
        at.run()
        no_error(at)
        return [b.label for b in at.button]

    assert "🎯 Evaluate it" in buttons()
    with run.store._tx() as conn:  # stopped by its user after its epoch
        conn.execute(runs_table.update().where(runs_table.c.run_id == run_id).values(
            state="stopped", message="stopped by request during epoch 2"))
    labels = buttons()
    assert {"🎯 Evaluate it", "🔬 See its kernels", "✋ Classify a sign"} <= set(labels), labels
