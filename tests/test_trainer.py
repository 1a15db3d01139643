"""The Trainer: event order, stopping, reproducibility, divergence, real learning, the hold-out."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from signlab.config import TrainConfig
from signlab.data import Dataset, Split
from signlab.errors import ConfigError
from signlab.models import build_model, list_models
from signlab.trainer import BatchEnd, EpochEnd, FitEnd, FitStart, Trainer, split_train_val


def _fit(ds, callbacks=(), **kw):
    events = []
    cfg = TrainConfig(**{"model": "logreg", "device": "cpu", **kw})
    trainer = Trainer(cfg, build_model(cfg), ds, [lambda e, t: events.append(e), *callbacks])
    end = trainer.fit()
    return trainer, end, events


def _kinds(events):
    return "".join({FitStart: "S", BatchEnd: "B", EpochEnd: "E", FitEnd: "F"}[type(e)] for e in events)


def test_event_order(small_dataset):
    # 2,000 images at batch 100: 20 steps an epoch, a BatchEnd every 5 steps
    _, end, events = _fit(small_dataset, epochs=2, batch_size=100, log_every=5, augment=False)
    assert _kinds(events) == "S" + "BBBBE" * 2 + "F"
    start = events[0]
    assert (start.total_epochs, start.start_epoch, start.steps_per_epoch, start.n_train, start.n_val) == \
        (2, 0, 20, 2000, 500)
    assert start.parameters == 784 * 24 + 24
    batches = [e for e in events if isinstance(e, BatchEnd)]
    assert [b.step for b in batches] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [b.epoch for b in batches] == [1] * 4 + [2] * 4
    assert batches[-1].progress == pytest.approx(1.0)
    assert all(math.isfinite(b.loss) and b.samples_per_second > 0 for b in batches)
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(0 <= e.val_accuracy <= 1 and 0 <= e.train_accuracy <= 1 for e in epochs)
    assert events[-1] is end
    assert (end.status, end.epochs_completed, end.steps) == ("completed", 2, 40)
    assert end.val_accuracy == epochs[-1].val_accuracy


def test_log_every_larger_than_an_epoch_still_reports_each_epoch_end(small_dataset):
    _, _, events = _fit(small_dataset, epochs=2, batch_size=500, log_every=1000, augment=False)
    assert _kinds(events) == "SBEBEF"


def test_stop_from_a_callback_mid_epoch(small_dataset):
    def stop_at_first_batch(event, trainer):
        if isinstance(event, BatchEnd):
            trainer.stop()

    trainer, end, events = _fit(small_dataset, [stop_at_first_batch], epochs=3, batch_size=100, log_every=2)
    assert end.status == "stopped"
    assert end.epochs_completed == 0  # a half epoch does not count
    assert end.steps == 2
    assert _kinds(events) == "SBF"
    assert "stopped" in end.message
    assert trainer.stop_requested


def test_time_off_the_clock_is_not_training_time(small_dataset, monkeypatch):
    """A pause (a callback waiting off the clock) counted as training: "4 epochs in 66 s of training"
    after a 33-s pause, and "8 images/s" on resuming, and the run's speed made later estimates long.
    The pause is 1000 s on a skewed clock, not a real wait: compared with a real second against a
    second fit's time, half a second of slack failed under load (a fit stalled 0.63 s)."""
    import time

    real, skew = time.perf_counter, [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: real() + skew[0])
    paused = []

    def pause_once(event, trainer):
        if isinstance(event, BatchEnd) and not paused:
            with trainer.off_the_clock():
                skew[0] += 1000.0  # the clock jumps as if the callback had waited 1000 s
            paused.append(event.step)

    trainer, end, events = _fit(small_dataset, [pause_once], epochs=1, batch_size=100, log_every=2, augment=False)
    assert paused and end.epochs_completed == 1
    assert end.train_seconds < 100, end.train_seconds  # a fit of about 0.1 s, not the 1000-s pause
    [epoch] = [e for e in events if isinstance(e, EpochEnd)]
    assert epoch.epoch_seconds < 100
    after = [e for e in events if isinstance(e, BatchEnd)][1]  # the log right after the pause
    assert after.train_seconds < 100 and after.samples_per_second > 1  # not 200 images over 1000 s
    assert trainer.seconds_off_the_clock >= 1000.0  # api._fit leaves it out of the run's overhead too


def test_stop_after_an_epoch(small_dataset):
    def stop_after_first_epoch(event, trainer):
        if isinstance(event, EpochEnd):
            trainer.stop()

    _, end, events = _fit(small_dataset, [stop_after_first_epoch], epochs=3, batch_size=500, log_every=100)
    assert (end.status, end.epochs_completed, end.steps) == ("stopped", 1, 4)
    assert _kinds(events) == "SBEF"


def _numbers(events):
    out = []
    for e in events:
        if isinstance(e, BatchEnd):
            out.append(("batch", e.step, e.loss, e.lr))
        elif isinstance(e, EpochEnd):
            out.append(("epoch", e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy))
    return out


def test_same_seed_same_metrics(small_dataset):
    kw = dict(model="fastcnn", width=4, epochs=2, batch_size=200, log_every=2, max_steps=12, seed=7, augment=True)
    t1, _, e1 = _fit(small_dataset, **kw)
    t2, _, e2 = _fit(small_dataset, **kw)
    assert _numbers(e1) == _numbers(e2)
    for (n1, p1), (n2, p2) in zip(t1.model.state_dict().items(), t2.model.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    _, _, e3 = _fit(small_dataset, **{**kw, "seed": 8})
    assert _numbers(e3) != _numbers(e1), "another seed must give another run"


@pytest.mark.parametrize("optimizer, model, ensemble", [("sgd", "mlp", 1), ("sgd", "convnet", 1),
                                                       ("adamw", "convnet", 1), ("adamw", "fastcnn", 2),
                                                       ("muon", "s2net", 1)])
def test_a_huge_learning_rate_diverges(dataset, optimizer, model, ensemble):
    # lr 10 (the top of the allowed range) blows up within a few steps. SGD with momentum reaches NaN;
    # AdamW's steps are bounded, so the loss stays finite (24,000 over the first steps, 2.4e9 later)
    # and the run ended "completed" at chance: a loss of over 10,000 is divergence too
    trainer, end, events = _fit(dataset, optimizer=optimizer, model=model, ensemble=ensemble, lr=10.0, schedule="none",
                                augment=False, batch_size=32, max_steps=150, epochs=1, log_every=1)
    assert end.status == "diverged", end
    assert "learning rate" in end.message and "10" in end.message
    assert end.epochs_completed == 0
    assert end.steps < 150
    # the steps it took were trained (train --json read 0.0 s and 0 samples/s of them)
    assert end.train_seconds > 0 and end.samples_per_second > 0, end
    assert isinstance(events[-1], FitEnd)
    assert not any(isinstance(e, EpochEnd) for e in events)
    assert all(math.isfinite(e.loss) for e in events if isinstance(e, BatchEnd))


@pytest.mark.parametrize("loss, words", [(float("nan"), "the loss became NaN (not a number) at step 7 (epoch 2)"),
                                         (float("inf"), "the loss became infinite at step 7 (epoch 2)"),
                                         (24_113.4, "the loss reached 24,113 at step 7 (epoch 2), over the 10,000"),
                                         (None, "NaN or infinite, or over 10,000, at step 7")])
def test_a_diverged_run_says_which_limit_its_loss_crossed(loss, words):
    from signlab.trainer import diverged_words
    assert words in diverged_words(loss, "at step 7 (epoch 2)")


def test_learning_rate_above_the_range_is_refused():
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=100)
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="val_fraction"):
        TrainConfig(val_fraction=0.001)


def test_max_steps_counts_one_epoch(small_dataset):
    # max_steps ends training inside epoch 1: one EpochEnd, one epoch completed (not 2)
    _, end, events = _fit(small_dataset, epochs=3, batch_size=100, max_steps=5, log_every=5, augment=False)
    assert _kinds(events) == "SBEF"
    assert (end.status, end.steps, end.epochs_completed) == ("completed", 5, 1)
    # 5 steps of 20 are not "trained 1 epoch": the message says the limit cut the fit
    assert end.message == "a dry run: stopped after 5 steps (max_steps), 5 of epoch 1's 20"


@pytest.mark.parametrize("max_steps, words", [
    (25, "a dry run: stopped after 25 steps (max_steps), 5 of epoch 2's 20"),
    (40, "a dry run: stopped after 40 steps (max_steps), at the end of epoch 2"),
    (60, "trained 3 epochs"), (1000, "trained 3 epochs")])  # a limit at or past the schedule's end cuts nothing
def test_a_dry_run_says_where_max_steps_stopped_it(small_dataset, max_steps, words):
    _, end, _ = _fit(small_dataset, epochs=3, batch_size=100, max_steps=max_steps, log_every=100, augment=False)
    assert (end.status, end.message) == ("completed", words)


def test_short_real_training_beats_chance(dataset):
    # one epoch of logistic regression on all 27,455 images; chance is 1/24 = 4.2%
    _, end, events = _fit(dataset, epochs=1, augment=False, batch_size=128, seed=0)
    assert end.status == "completed"
    assert end.val_accuracy > 0.5, end.val_accuracy
    epoch = next(e for e in events if isinstance(e, EpochEnd))
    assert epoch.train_accuracy > 0.5 and epoch.val_loss < math.log(24)


def test_short_cnn_training_learns(small_dataset):
    _, end, events = _fit(small_dataset, model="fastcnn", width=8, epochs=1, batch_size=64, log_every=4,
                          augment=False, lr=1e-2, optimizer="adamw", schedule="none")
    losses = [e.loss for e in events if isinstance(e, BatchEnd)]
    assert len(losses) == 8
    assert losses[-1] < losses[0] - 0.4, losses
    assert end.val_accuracy > 0.15  # far above chance after 32 steps on 2,000 images


def _synthetic(n=400):
    # each image carries its own index in its first two pixels, so splits can be traced
    idx = np.arange(n)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = idx % 256, idx // 256
    return Dataset(train=Split(images, idx % 24, "train"), test=Split(images[:50], idx[:50] % 24, "test"))


def _ids(images):
    return (images[:, 0, 0].astype(int) + 256 * images[:, 0, 1].astype(int)).tolist()


def test_val_fraction_holds_out_part_of_the_training_set():
    ds = _synthetic()
    tx, ty, vx, vy = split_train_val(ds, TrainConfig(val_fraction=0.25, seed=3))
    train_ids, val_ids = _ids(tx), _ids(vx)
    assert len(val_ids) == 100 and len(train_ids) == 300
    assert set(train_ids).isdisjoint(val_ids)
    assert set(train_ids) | set(val_ids) == set(range(400))
    assert ty.tolist() == [i % 24 for i in train_ids] and vy.tolist() == [i % 24 for i in val_ids]
    again = split_train_val(ds, TrainConfig(val_fraction=0.25, seed=3))
    assert _ids(again[2]) == val_ids  # seeded
    other = split_train_val(ds, TrainConfig(val_fraction=0.25, seed=4))
    assert _ids(other[2]) != val_ids
    # 0: the test CSV is the validation set
    tx0, _, vx0, _ = split_train_val(ds, TrainConfig(val_fraction=0.0))
    assert len(tx0) == 400 and _ids(vx0) == list(range(50))


def test_val_fraction_in_a_training_run(small_dataset):
    _, end, events = _fit(small_dataset, epochs=1, val_fraction=0.1, batch_size=200, augment=False)
    start = events[0]
    assert (start.n_train, start.n_val) == (1800, 200)
    assert end.status == "completed" and end.val_accuracy is not None


def test_training_on_an_empty_batch_free_dataset_of_one_class_is_finite():
    ds = _synthetic(48)
    _, end, _ = _fit(ds, epochs=1, batch_size=16, augment=True, augment_photo=True)
    assert end.status == "completed" and math.isfinite(end.val_accuracy)


def test_an_ensemble_trains_every_member(small_dataset):
    from signlab.models import Ensemble

    events = []
    cfg = TrainConfig(model="fastcnn", width=8, ensemble=2, epochs=1, batch_size=64, log_every=4, augment=False,
                      lr=1e-2, optimizer="adamw", schedule="none", device="cpu")
    trainer = Trainer(cfg, build_model(cfg), small_dataset, [lambda e, t: events.append(e)])
    assert isinstance(trainer.model, Ensemble)
    start = [{n: p.detach().clone() for n, p in m.named_parameters()} for m in trainer.model.members]
    end = trainer.fit()
    assert end.status == "completed"
    losses = [e.loss for e in events if isinstance(e, BatchEnd)]
    assert losses[-1] < losses[0] - 0.4, losses  # the ensemble's loss falls
    assert end.val_accuracy > 0.15
    for before, member in zip(start, trainer.model.members):  # every member learned, not just one
        moved = [n for n, p in member.named_parameters() if not torch.allclose(p, before[n])]
        assert len(moved) == len(before), set(before) - set(moved)
        conv = [p for n, p in member.named_parameters() if n.endswith("0.0.weight")][0]
        assert (conv - before[[n for n in before if n.endswith("0.0.weight")][0]]).norm() > 0.05 * conv.norm()


def test_the_trainer_trains_the_model_it_is_given(small_dataset):
    cfg = TrainConfig(model="logreg", device="cpu", epochs=1, batch_size=100, augment=False)
    model = build_model(cfg)
    before = model.linear.weight.detach().clone()
    trainer = Trainer(cfg, model, small_dataset)
    assert trainer.model is model and trainer.dataset is small_dataset
    trainer.fit()
    assert not torch.equal(before, model.linear.weight.detach())  # trained in place: the caller's model


def test_build_model_starts_from_the_seed_and_leaves_the_global_generator_alone():
    cfg = TrainConfig(model="fastcnn", ensemble=2, input_norm="equalize", seed=3)
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    a, b = build_model(cfg), build_model(cfg)
    assert torch.rand(1) == expected_next  # loading a model never shifts another thread's random stream
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = build_model(cfg.replace(seed=4))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    assert a.input_norm == "equalize" and len(a.members) == 2



def test_the_small_models_train_on_one_thread_and_give_the_others_back(small_dataset):
    """Logistic regression and the MLP train on one CPU thread (models.cpu_threads): beside one busy
    process on 2 cores an epoch took 6.3 s (logreg) and 20-23 s (MLP) on two threads against 0.45 and
    1.3 s on one. The convolutional networks keep every thread, a ``threads`` setting wins, and the
    process's own count is put back after the fit, also when it fails. Where the model's size took
    the threads away, the device line says why (a teacher asked why logistic regression used one
    core of two); a ``threads`` setting of 1 is the student's own choice and says nothing more."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for model, threads in [("logreg", None), ("mlp", None), ("convnet", None), ("logreg", 2), ("fastcnn", 1)]:
            _, end, events = _fit(small_dataset, model=model, threads=threads, max_steps=2, augment=False,
                                  precision="fp32")
            assert end.status == "completed" and torch.get_num_threads() == 2
            capped = threads is None and model in ("logreg", "mlp")
            n = threads or (1 if capped else 2)
            why = ": faster for a model this small" if capped else ""
            assert events[0].device == f"CPU ({n} thread{'' if n == 1 else 's'}{why})", (model, threads)
        assert [(m.name, m.cpu_threads) for m in list_models() if m.cpu_threads] == [("logreg", 1), ("mlp", 1)]
        with pytest.raises(ZeroDivisionError):
            _fit(small_dataset, model="mlp", max_steps=2, callbacks=[lambda e, t: 1 / 0])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_fit_whose_threads_stall_goes_on_with_one(small_dataset, monkeypatch):
    """Two fast-preset fits at once on 2 cores (bf16 on a CPU with AMX) took 218-345 s an epoch instead
    of 1.7 s: their threads waited on each other at every operation. A fit whose logging windows fall to
    a third of its best pace for 3 s goes on with one thread (12.6 s there), says so in its message,
    and puts the process's count back; a thread count the run asked for is never changed."""
    import time as _time

    from signlab import trainer as trainer_mod

    step = trainer_mod.Trainer._step

    def stalling(self, idx):  # from step 16 on, every step on two threads waits as a stalled thread would
        out = step(self, idx)
        if self.step > 15 and torch.get_num_threads() > 1:
            _time.sleep(0.35)  # 1.75 s a 5-step window: two of them pass trainer.STALL_SECONDS
        return out

    monkeypatch.setattr(trainer_mod.Trainer, "_step", stalling)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        t, end, _ = _fit(small_dataset, model="fastcnn", epochs=1, batch_size=50, log_every=5, augment=False,
                         precision="fp32", callbacks=[lambda e, tr: seen.append((tr.step, torch.get_num_threads()))])
        assert end.status == "completed" and t.one_thread_from is not None and 20 <= t.one_thread_from <= 35
        assert f"on one thread after step {t.one_thread_from}" in end.message
        assert end.message.endswith("That slowed the run, not what it learned")  # a walk asked whether it was worse
        assert end.message.startswith("trained 1 epoch")
        assert {n for s, n in seen if s <= 15} == {2} and seen[-1][1] == 1  # two until it stalled, then one
        assert torch.get_num_threads() == 2  # the process's own count, back after the fit
        t, end, _ = _fit(small_dataset, model="fastcnn", epochs=1, batch_size=50, log_every=5, augment=False,
                         precision="fp32", threads=2)
        assert t.one_thread_from is None and "one thread" not in end.message  # asked for: kept
    finally:
        torch.set_num_threads(before)


def test_openmp_threads_spin_briefly_before_they_wait_in_every_front_end():
    """Two threads beside one busy core (the browser watching the run) trained s2net 3-80 times slower
    than on an idle machine: each waiting thread spun away the core its partner needed. The package
    sets libgomp's spin count on import, before torch loads libgomp (it reads it once), unless the
    environment says otherwise; Streamlit, which the dashboard imports first, must not load torch."""
    import os
    import subprocess
    import sys

    import signlab

    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    probe = ("import sys, streamlit; assert 'torch' not in sys.modules, 'streamlit loaded torch'; "
             "from signlab import live; import os; print(os.environ['GOMP_SPINCOUNT'])")
    said = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert said.stdout.split() == [signlab.OMP_SPIN] == ["1000"]
    mine = subprocess.run([sys.executable, "-c", "import signlab, os; print(os.environ['GOMP_SPINCOUNT'])"],
                          env={**env, "GOMP_SPINCOUNT": "7"}, capture_output=True, text=True, check=True)
    assert mine.stdout.split() == ["7"]  # a value the user set is kept


def test_a_large_loss_that_the_run_recovers_from_is_not_divergence(dataset):
    """Logistic regression with AdamW at lr 10 peaks at a loss of about 1,200 and still learns (54% on
    held-out images): the divergence line (trainer.DIVERGED_LOSS) sits above it."""
    from signlab.trainer import DIVERGED_LOSS

    _, end, events = _fit(dataset, optimizer="adamw", lr=10.0, schedule="none", augment=False, batch_size=32,
                          max_steps=300, epochs=1, log_every=1)
    peak = max(e.loss for e in events if isinstance(e, BatchEnd))
    assert end.status == "completed", end.message
    assert 1_000 < peak < DIVERGED_LOSS, peak


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 8])
def test_a_one_cycle_schedule_of_a_few_steps_trains(small_dataset, steps):
    """torch's one-cycle schedule ends its warm-up at step 0.25 x total - 1 and divides by that: at 4
    steps in all (--max-steps 4, or a batch a quarter of the data) every run failed with "float
    division by zero"."""
    trainer, end, _ = _fit(small_dataset, model="logreg", epochs=1, max_steps=steps, schedule="onecycle",
                           batch_size=8)
    assert end.status == "completed" and trainer.step == steps, end


def test_a_validation_share_that_leaves_nothing_to_train_on_is_refused():
    """A one-image training file with val_fraction 0.5: the hold-out took the image, the run trained
    0 steps and read "completed" with no weights (exit 0)."""
    one = Split(images=np.zeros((1, 28, 28), np.uint8), targets=np.zeros(1, np.int64), source="one.csv")
    ds = Dataset(train=one, test=one)
    with pytest.raises(ConfigError, match="^val_fraction: 0.5 of 1 training image leaves none to train on"):
        split_train_val(ds, TrainConfig(model="logreg", val_fraction=0.5))


def test_a_logged_learning_rate_is_the_one_its_step_took(small_dataset):
    """The log read the rate after the schedule had moved on: each step was logged with the next
    one's rate, and a one-cycle run's last point went past the schedule's end and turned upwards."""
    from signlab.trainer import make_schedule

    cfg = TrainConfig(model="logreg", device="cpu", epochs=1, max_steps=12, log_every=1, schedule="onecycle",
                      batch_size=16)
    _, _, events = _fit(small_dataset, **{k: getattr(cfg, k) for k in
                                          ("epochs", "max_steps", "log_every", "schedule", "batch_size")})
    logged = [e.lr for e in events if isinstance(e, BatchEnd)]
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=cfg.lr)  # the same schedule, stepped by hand
    schedule, taken = make_schedule(cfg, opt, 12), []
    for _ in range(12):
        taken.append(opt.param_groups[0]["lr"])  # the rate this step takes
        opt.step()
        schedule.step()
    assert len(logged) == 12 and logged == pytest.approx(taken)
    assert logged[-1] <= min(logged[-3:-1])  # the schedule's end, not past it


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_a_fit_going_on_after_an_interruption_keeps_its_learning_rate_schedule(small_dataset, schedule):
    """A run whose worker died is continued by another from its last finished epoch. The continuation
    built a fresh schedule over the epochs left: a one-cycle run warmed up to its peak rate again in
    the middle of its cycle (3.04e-3 rising where it was at 2.21e-3 falling). With ``schedule_from``
    the schedule goes on where the interrupted fit left it."""
    cfg = TrainConfig(model="logreg", device="cpu", epochs=2, log_every=1, schedule=schedule, batch_size=128,
                      augment=False)
    straight = [e.lr for e in _fit(small_dataset, **{k: getattr(cfg, k) for k in
                                                     ("epochs", "log_every", "schedule", "batch_size", "augment")})[2]
                if isinstance(e, BatchEnd) and e.epoch == 2]

    def stop_after_epoch_1(event, trainer) -> None:
        if isinstance(event, EpochEnd) and event.epoch == 1:
            trainer.stop()

    first = Trainer(cfg, build_model(cfg), small_dataset, [stop_after_epoch_1])
    first.fit()
    events = []
    going_on = Trainer(cfg.replace(epochs=1), first.model, small_dataset, [lambda e, t: events.append(e)],
                       start_epoch=1, optimizer_state=first.optimizer.state_dict(), schedule_from=0)
    going_on.fit()
    went_on = [e.lr for e in events if isinstance(e, BatchEnd)]
    assert len(went_on) == len(straight) > 2 and went_on == pytest.approx(straight, rel=1e-6)
    assert [e.schedule_from for e in events if isinstance(e, FitStart)] == [0]
    fresh = []  # a user's "k more epochs" still starts a schedule of its own
    Trainer(cfg.replace(epochs=1), first.model, small_dataset, [lambda e, t: fresh.append(e)], start_epoch=1).fit()
    assert [e.lr for e in fresh if isinstance(e, BatchEnd)] != pytest.approx(straight, rel=1e-6)
