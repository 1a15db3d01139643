"""The guided tour's checks read the user's own runs and state what they show, in numbers."""
from __future__ import annotations

import numpy as np

from signlab import guide
from signlab.config import TrainConfig
from signlab.evaluate import Evaluation
from signlab.runs import create_run


def _fake_run(tmp_path, cfg: TrainConfig, run_id: str):
    run = create_run(cfg, tmp_path, run_id=run_id, status="completed")
    (run.dir / "model.safetensors").write_bytes(b"")  # find_run only needs weights to exist
    return run


def _evaluation(acc_letters: int, all_a: bool = False) -> Evaluation:
    y = np.repeat(np.arange(24), 10)
    pred = y.copy()
    if all_a:  # letters 12..23 are all predicted as A: the phantom column of the lecture's flaw
        pred[y >= 12] = 0
    else:
        pred[y >= acc_letters] = (y[y >= acc_letters] + 1) % 24
    probs = np.eye(24)[pred]
    return Evaluation(y_true=y, y_pred=pred, probs=probs)


def test_steps_walk_the_lecture_in_order():
    keys = [s.key for s in guide.STEPS]
    assert keys == ["data", "logreg", "templates", "seed", "fixed", "kernels", "classify", "calibrate"]
    assert guide.SEED.model == "seed_convnet" and guide.FIXED.model == "convnet"
    # the two ConvNet steps differ only in the output ReLU: same settings otherwise
    assert guide.SEED.replace(model="convnet") == guide.FIXED
    assert all(s.notice and s.do for s in guide.STEPS)
    # "with its settings" trained 3 epochs while Train's lecture preset says 10: a walk read the two
    # as disagreeing, so the step says both numbers
    from signlab.config import preset

    [seed] = [s for s in guide.STEPS if s.key == "seed"]
    lecture = preset("lecture", model="seed_convnet")
    assert guide.SEED.epochs != lecture.epochs
    assert f"{guide.SEED.epochs} epochs instead of the lecture's {lecture.epochs}" in seed.do, seed.do


def test_checks_state_the_users_own_numbers(tmp_path):
    seed = _fake_run(tmp_path, guide.SEED, "seed")
    fixed = _fake_run(tmp_path, guide.FIXED, "fixed")
    evals = {"seed": _evaluation(0, all_a=True), "fixed": _evaluation(23)}
    runs = [fixed, seed]
    step = {s.key: s for s in guide.STEPS}
    assert guide.check(step["logreg"], runs, lambda r: evals[r.id]) is None  # no logreg run yet
    msg = guide.check(step["seed"], runs, lambda r: evals[r.id])
    assert "50.0%" in msg and "12 letters are never predicted" in msg and "54%" in msg
    msg = guide.check(step["fixed"], runs, lambda r: evals[r.id])
    assert "95.8%" in msg and "+46 points" in msg and not msg.endswith("..")
    assert msg.endswith("; 1 letter still never predicted (Y).")  # Y is read as A in this made-up run
    evals["fixed"] = _evaluation(24)  # every letter right: what step 5's notice promises
    assert guide.check(step["fixed"], runs, lambda r: evals[r.id]).endswith("Every letter is predicted at least once.")
    # a gain under ten points keeps a decimal ("-0 points" hid a 0.37-point loss), none is said as such
    evals["seed"] = _evaluation(23)
    assert "**+4.2 points** against the lecture's version" in guide.check(step["fixed"], runs, lambda r: evals[r.id])
    evals["seed"] = _evaluation(24)
    assert "reached **100.0%** test accuracy, the same as the lecture's version." in \
        guide.check(step["fixed"], runs, lambda r: evals[r.id])
    evals["seed"] = _evaluation(0, all_a=True)
    # the step's page button opens the Map: the result names the Map, not another page
    msg = guide.check(step["seed"], runs, lambda r: evals[r.id])
    assert step["seed"].page == "app_pages/map.py" and "**Map** page" in msg and "Evaluate" not in msg


def test_the_tour_ends_with_the_users_own_results(tmp_path):
    seed = _fake_run(tmp_path, guide.SEED, "seed")
    fixed = _fake_run(tmp_path, guide.FIXED, "fixed")
    evals = {"seed": _evaluation(0, all_a=True), "fixed": _evaluation(23)}
    results = dict(guide.results([fixed, seed], lambda r: evals[r.id]))
    assert results == {"2. Train logistic regression": "not trained yet",
                       "4. Train the lecture's ConvNet, as written": "**50.0%** test accuracy",
                       "5. Fix it and train again": "**95.8%** test accuracy",
                       "8. Teach it your hand": "no calibrated run yet"}
    assert guide.FINISH["title"] and "Sweeps" in guide.FINISH["next"]
    # logreg runs of other settings (the fast preset's) do not count, and the words say why: a student
    # with two read "not trained yet", and step 3 "Train logistic regression in step 2 first"
    from signlab import views
    from signlab.config import preset

    fast = [_fake_run(tmp_path, preset("fast").replace(model="logreg"), f"fast-logreg-{k}") for k in range(2)]
    said = dict(guide.results([*fast, fixed, seed], lambda r: evals[r.id]))["2. Train logistic regression"]
    assert said == "not trained yet. Your 2 logreg runs do not count: the tour trains it with the lecture preset's settings, for 2 epochs"
    assert views.tour_missing_text([*fast, fixed], "templates") == \
        "Do step 2 (Train logistic regression) first. Your 2 logreg runs do not count: the tour trains it with " \
        "the lecture preset's settings, for 2 epochs."
    assert views.tour_missing_text([], "templates") == "Do step 2 (Train logistic regression) first."
    # a run with the tour's own settings that has not finished is not said to have other settings
    training = create_run(guide.LOGREG, tmp_path, run_id="tour-logreg", status="running")
    assert views.tour_missing_text([training, *fast], "templates") == \
        "Do step 2 (Train logistic regression) first. Your logreg run with the tour's settings is still " \
        "training: the step counts it once it has finished. Your 2 logreg runs do not count: the tour trains " \
        "it with the lecture preset's settings, for 2 epochs."
    stopped = create_run(guide.LOGREG, tmp_path, run_id="tour-logreg-stopped", status="stopped")
    said = dict(guide.results([stopped], lambda r: evals[r.id]))["2. Train logistic regression"]
    assert said == "not trained yet. Your logreg run with the tour's settings did not finish"
    # a calibrated run in a few words (step 8's own box says the rest), and a run that cannot be
    # evaluated says so in its row instead of failing the page
    from signlab.runs import CALIBRATION_RECORD as RECORD
    from signlab.errors import RunError
    from signlab.fsutil import atomic_write_json

    mine = _fake_run(tmp_path, guide.FIXED, "mine")
    atomic_write_json(mine.dir / RECORD, {"parent": "fixed", "photos": 9, "letters": ["A", "B", "C"]})

    def evaluate(r):
        if r.id == "seed":
            raise RunError("run seed was deleted (in another tab or window); pick another run")
        return evals[r.id]

    results = dict(guide.results([mine, fixed, seed], evaluate))
    assert results["8. Teach it your hand"] == "calibrated on 9 photos of 3 letters"
    assert results["4. Train the lecture's ConvNet, as written"].startswith("could not be evaluated (run seed was")
    # the row is drawn as markdown, and the error's words may quote a path: text, not markup
    bad = OSError("/home/**x**/runs/seed/weights.safetensors: unreadable")
    said = dict(guide.results([seed], lambda r: (_ for _ in ()).throw(bad)))["4. Train the lecture's ConvNet, as written"]
    assert said == f"could not be evaluated ({views.md(str(bad))})" and "**x**" not in said, said


def test_a_tour_file_without_its_finish_still_loads(tmp_path):
    text = guide.TOUR_FILE.read_text(encoding="utf-8")
    (tmp_path / "tour.toml").write_text(text[:text.index("\n[finish]")], encoding="utf-8")
    steps, finish = guide.load_tour(tmp_path / "tour.toml")
    assert [s.key for s in steps] == [s.key for s in guide.STEPS] and finish["title"] == "The end of the tour"


def test_the_logistic_regression_step_gives_both_accuracies(tmp_path):
    """Step 2's notice calls the gap between training and test accuracy overfitting: its box gives both."""
    import json

    run = _fake_run(tmp_path, guide.LOGREG, "lr")
    with open(run.dir / "metrics.jsonl", "a") as f:
        for e, acc in ((1, 0.857), (2, 0.991)):
            f.write(json.dumps({"type": "epoch", "epoch": e, "train_accuracy": acc}) + "\n")
    step = next(s for s in guide.STEPS if s.key == "logreg")
    msg = guide.check(step, [run], lambda r: _evaluation(16))
    assert "**66.7%** test accuracy against **99.1%** on its training images" in msg, msg
    assert "box below gives both accuracies" in step.notice


def test_dead_letters():
    ev = _evaluation(0, all_a=True)
    assert guide.dead_letters(ev) == list("NOPQRSTUVWXY")


def test_last_step_is_calibration_and_checks_calibrated_runs(tmp_path):
    from signlab.runs import CALIBRATION_RECORD as RECORD
    from signlab.fsutil import atomic_write_json

    step = guide.STEPS[-1]
    assert step.key == "calibrate" and step.page == "app_pages/calibrate.py"
    assert "look alike" in step.notice and "your own photos" in step.notice
    plain = _fake_run(tmp_path, guide.FIXED, "plain")
    assert guide.check(step, [plain], lambda r: None) is None  # nothing calibrated yet
    mine = _fake_run(tmp_path, guide.FIXED, "mine")
    atomic_write_json(mine.dir / RECORD, {"parent": "plain", "photos": 9, "letters": ["A", "B", "C"],
                                          "seconds": 7.5})
    msg = guide.check(step, [mine, plain], lambda r: None)
    assert "9 photos" in msg and "3 letters" in msg and "**plain**" in msg
    assert msg.count("calibrated") == 1  # the run's name ("calibrated on 9 photos · …") is not repeated
    # the calibrated run keeps its parent's settings, but it is not the run steps 5 and 6 trained:
    # after step 8 they showed its accuracy as "your ConvNet"'s
    assert guide.find_run([mine, plain], guide.FIXED).id == "plain"
    # the parent by the name the pickers show, not its raw id
    named = _fake_run(tmp_path, guide.FIXED, "20261204-164325-convnet-8007058b95")
    atomic_write_json(mine.dir / RECORD, {"parent": named.id, "photos": 9, "letters": ["A"], "seconds": 7.5})
    msg = guide.check(step, [mine, named], lambda r: None)
    from signlab.views import md

    assert f"**{md('4 Dec 16:43:25')}**" in msg and named.id not in msg, msg  # escaped as markdown renders it


def test_the_live_hint_names_the_runs_own_augmentation():
    """Validation above training: the hint says what was done to this run's training images (it said
    "shifted and rotated" for the fast preset, which only shifts them, and for runs with none)."""
    from signlab.config import preset
    from signlab.teach import live_hint

    above = [{"train_accuracy": 0.97, "val_accuracy": 0.99}]
    fast = live_hint(preset("fast"), above)
    assert "moved by up to 2 pixels" in fast and "turned" not in fast and "photos" not in fast, fast
    affine = live_hint(preset("fast", augment_style="affine"), above)
    assert "shifted, turned and scaled" in affine and "photos" not in affine, affine
    robust = live_hint(preset("robust"), above)
    assert "look like photos" in robust and "2 pixels" not in robust, robust
    bare = live_hint(preset("fast", augment=False), above)
    assert "Validation accuracy is above training accuracy" in bare and "changed images" not in bare, bare
    assert live_hint(preset("fast", label_smoothing=0.0), [{"train_accuracy": 0.99, "val_accuracy": 0.97}]) == ""
    # before the first epoch it names the faint line: "the loss of each batch" pointed at points
    # averaged over 10 batches, which lay on the smoothed line
    assert live_hint(preset("fast", label_smoothing=0.0), []).startswith(
        "The faint line is the loss averaged over each 10 batches")
    assert "the loss of each batch (noisy" in live_hint(preset("fast", label_smoothing=0.0, log_every=1), [])


def test_the_live_hint_says_where_label_smoothing_stops_the_loss():
    """A student saw the fast preset's training loss level off at 0.7 beside 99.7% test accuracy, and
    nothing on the chart said why. The floor is the loss of the best possible answer, as torch counts it."""
    import torch
    import torch.nn.functional as F

    from signlab.config import preset
    from signlab.labels import NUM_CLASSES
    from signlab.teach import live_hint, smoothing_floor

    eps = 0.1
    target = torch.full((1, NUM_CLASSES), eps / NUM_CLASSES)
    target[0, 3] += 1 - eps  # the smoothed target: the best the model can answer
    best = F.cross_entropy(target.log(), torch.tensor([3]), label_smoothing=eps).item()
    assert abs(smoothing_floor(eps) - best) < 1e-5 and 0.6 < best < 0.63, (smoothing_floor(eps), best)
    worse = F.cross_entropy(torch.eye(NUM_CLASSES)[[3]] * 20, torch.tensor([3]), label_smoothing=eps).item()
    assert worse > best  # a sure answer costs more than the floor
    for epochs in ([], [{"train_accuracy": 0.99, "val_accuracy": 0.97}]):
        hint = live_hint(preset("fast"), epochs)
        assert "label smoothing 0.1" in hint and "about 0.62" in hint, hint
        assert "label smoothing" not in live_hint(preset("fast", label_smoothing=0.0), epochs)


def test_the_convnet_steps_draw_the_losses_they_ask_about(tmp_path):
    """Step 4 sent students to the Runs page to overlay its loss with logistic regression's, and that
    page's overlay starts on the newest three runs: the tour's logistic regression was left out. The
    step now draws the two itself (step 5: the lecture ConvNet's against the fixed one's)."""
    from signlab import views

    seed = _fake_run(tmp_path, guide.SEED, "seed")
    assert views.tour_loss_runs([seed], "seed") == []  # one curve to compare: nothing drawn
    logreg = _fake_run(tmp_path, guide.LOGREG, "logreg")
    fixed = _fake_run(tmp_path, guide.FIXED, "fixed")
    runs = [fixed, logreg, seed]  # newest first
    assert [r.id for r in views.tour_loss_runs(runs, "seed")] == ["logreg", "seed"]
    # the lecture ConvNet second in both steps: it keeps one colour (red) beside logreg and beside the fixed one
    assert [r.id for r in views.tour_loss_runs(runs, "fixed")] == ["fixed", "seed"]
    assert views.tour_loss_runs(runs, "templates") == []
    # step 2 keeps its own run's loss once it has finished (the live chart went with the run)
    assert [r.id for r in views.tour_loss_runs(runs, "logreg")] == ["logreg"]
    assert views.tour_loss_runs([seed], "logreg") == []
    notice = {s.key: s.notice for s in guide.STEPS}["seed"]
    assert "Runs page" not in notice and "drawn here" in notice


def test_a_step_reads_only_a_finished_run(tmp_path):
    """Step 5 gave a run still training (its weights after epoch 2) as the result, "+53 points", and
    a lecture ConvNet an instructor stopped after one epoch stood for the student's."""
    done = _fake_run(tmp_path, guide.SEED, "done")
    for rid, state in (("stopped", "stopped"), ("training", "running")):
        run = create_run(guide.SEED, tmp_path, run_id=rid, status=state)
        (run.dir / "model.safetensors").write_bytes(b"")
    from signlab.runs import list_runs

    runs = list_runs(tmp_path)
    assert {r.id for r in runs} == {"done", "stopped", "training"}
    assert guide.find_run(runs, guide.SEED).id == done.id


def test_the_live_hint_names_a_learning_rate_that_overshoots_before_any_gap():
    """logreg with SGD at lr 10 ended at a training loss of 100-250 and 37% test accuracy, and the page
    said "the model starts to memorise its training images (overfitting)": the lesson is the rate."""
    from signlab.config import TrainConfig
    from signlab.teach import guess_loss, live_hint

    blown = [{"train_loss": 180.0, "train_accuracy": 0.55, "val_loss": 150.0, "val_accuracy": 0.37}]
    hint = live_hint(TrainConfig(model="logreg", optimizer="sgd", lr=10.0), blown)
    assert "180.0, far above the 3.18" in hint and "learning rate is too large" in hint
    assert "overfitting" not in hint
    assert round(guess_loss(), 2) == 3.18
    # a loss a little above a guess (the first epoch of a slow start) is not called that
    calm = [{"train_loss": 4.0, "train_accuracy": 0.3, "val_loss": 3.0, "val_accuracy": 0.3}]
    assert "too large" not in live_hint(TrainConfig(model="logreg"), calm)


def test_a_steps_stopped_run_is_named_under_its_train_button(tmp_path):
    """Step 4's run stopped on Train left the step as if never started ("▶ Train seed_convnet", no
    word of the run); it is named, with where to go on."""
    from signlab import views
    from signlab.runs import list_runs

    assert views.tour_unfinished_text([], guide.SEED) is None
    create_run(guide.SEED, tmp_path, run_id="stopped-one", status="stopped")
    text = views.tour_unfinished_text(list_runs(tmp_path), guide.SEED)
    # (the Runs page, which it named, has no Continue; and a run stopped in epoch 1 kept nothing to continue)
    assert text == ("Your seed_convnet run with the tour's settings did not finish; the step needs a finished one, "
                    "so train it again here."), text
    _fake_run(tmp_path, guide.SEED.replace(preset="fast"), "other-settings")
    text = views.tour_unfinished_text([r for r in list_runs(tmp_path) if r.id == "other-settings"], guide.SEED)
    assert text == ("Your seed_convnet run does not count: the tour trains it with the lecture preset's settings, "
                    "for 3 epochs."), text


def test_a_lecture_logreg_of_other_epochs_is_not_the_tours(tmp_path):
    """A walk trained step 2 (2 epochs), then a 10-epoch logistic regression of the lecture preset on
    Train; step 3 then quoted that run's accuracy under step 2's, and said nothing of the swap. The
    step counts runs trained as it trains them, and names the others; the Train page says how many
    epochs the lecture gave that model."""
    from signlab import views
    from signlab.settings import page_values

    ten = _fake_run(tmp_path, guide.LOGREG.replace(epochs=10), "ten-epochs")
    step = {s.key: s for s in guide.STEPS}
    assert guide.find_run([ten], guide.LOGREG) is None
    assert guide.check(step["templates"], [ten], lambda r: _evaluation(23)) is None
    assert views.tour_missing_text([ten], "templates") == (
        "Do step 2 (Train logistic regression) first. Your logreg run does not count: the tour trains it with "
        "the lecture preset's settings, for 2 epochs.")
    tour = _fake_run(tmp_path, guide.LOGREG, "tour")
    assert guide.find_run([ten, tour], guide.LOGREG) is tour  # the newer 10-epoch run is passed over
    values = {**page_values("lecture"), "model": "logreg"}
    assert views.lecture_epochs_text(values) == ("The lecture trained logistic regression for 2 epochs (the preset's "
                                                 "10 are its ConvNet's): set Epochs to 2 to train it as the lecture did.")
    assert views.lecture_epochs_text({**values, "epochs": 2}) == ""
    assert views.lecture_epochs_text(page_values("lecture")) == ""  # its ConvNet: 10 is the lecture's


def test_a_dry_run_or_other_settings_do_not_stand_for_a_tour_step(tmp_path):
    """Step 2 counted any lecture logistic regression of 2 epochs: a 20-step dry run (--max-steps)
    ticked steps 2 and 3 and was quoted as "your logistic regression" at 40%, and so did one of another
    rate. A run differing in what only sets its speed or its random draws still counts."""
    from signlab import views

    for k, changes in enumerate(({"max_steps": 20}, {"lr": 0.01}, {"optimizer": "sgd"}, {"val_fraction": 0.1})):
        other = _fake_run(tmp_path, guide.LOGREG.replace(**changes), f"other-{k}")
        assert guide.find_run([other], guide.LOGREG) is None, changes
        assert not guide.step_done(1, [other], 0), changes
    same = _fake_run(tmp_path, guide.LOGREG.replace(seed=7, threads=1, log_every=5), "same")
    assert guide.find_run([same], guide.LOGREG) is same
    # the step's Train button waits only for a run the step will count once it finishes
    queued = create_run(guide.LOGREG.replace(epochs=10), tmp_path, run_id="ten-epochs", status="queued")
    assert views.tour_active_run([queued], guide.LOGREG) is None
    mine = create_run(guide.LOGREG, tmp_path, run_id="tours", status="queued")
    assert views.tour_active_run([queued, mine], guide.LOGREG) is mine


def test_a_visit_without_a_step_opens_the_first_step_still_to_do(tmp_path):
    """The sidebar's Guided tour (no step in its link) opened step 1 under ticks for steps 2, 4 and 5."""
    assert guide.resume_step([]) == 0
    logreg = _fake_run(tmp_path, guide.LOGREG, "logreg")
    assert guide.resume_step([logreg]) == 2  # step 3, the templates of the run just trained
    seed, fixed = _fake_run(tmp_path, guide.SEED, "seed"), _fake_run(tmp_path, guide.FIXED, "fixed")
    assert guide.resume_step([logreg, seed, fixed]) == 5  # step 6, the kernels
    assert [s.key for s in guide.STEPS][5] == "kernels"
    # the first step still to do, not the one after the last done: a walk that calibrated early
    # (steps 2 and 8 ticked) opened step 8 of 8, with steps 3 to 7 still to do
    from signlab.fsutil import atomic_write_json
    from signlab.runs import CALIBRATION_RECORD

    calibrated = _fake_run(tmp_path, guide.FIXED.replace(seed=3), "calibrated")
    atomic_write_json(calibrated.dir / CALIBRATION_RECORD, {"parent": "logreg", "photos": 6, "letters": ["A", "B"],
                                                            "seconds": 7.5})
    assert guide.step_done(7, [logreg, calibrated], 0)
    assert guide.resume_step([logreg, calibrated]) == 2  # step 3, the templates of the logistic regression
    assert guide.resume_step([logreg, seed, calibrated]) == 4  # step 5: the fixed ConvNet is still to train
    # every step the runs can show is done: the last step, which ends with what the user's runs showed
    assert guide.resume_step([logreg, seed, fixed, calibrated]) == len(guide.STEPS) - 1
    assert guide.resume_step([seed]) == 0  # step 2 not done: from the start
