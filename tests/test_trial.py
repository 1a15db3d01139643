"""signlab.trial: a few timed training steps of a configuration, for the estimate of a network the
server has never trained, and the child process the dashboard runs them in."""
from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from signlab import trial
from signlab.config import preset
from signlab.data import Dataset


@pytest.mark.parametrize("preset_name", ["lecture", "fast", "robust"])
def test_a_trial_times_a_few_real_steps(dataset, preset_name):
    """Images a second, the median of the steps after the warm-up; at most ``max_steps`` timed."""
    cfg = preset(preset_name)
    speed = trial.trial_speed(cfg, dataset, budget_s=0.3, max_steps=6)
    assert speed is not None and 1 < speed < 1e6, speed  # images a second (hundreds to tens of thousands when quiet)


def test_a_trial_that_cannot_time_three_steps_says_none(dataset):
    """Too few images for the warm-up and three timed steps, or a deadline reached first: no speed,
    not one made of a single step."""
    cfg = preset("fast")
    n = cfg.batch_size * (trial.TRIAL_WARMUP + 1)
    tiny = Dataset(train=replace(dataset.train, images=dataset.train.images[:n], targets=dataset.train.targets[:n]),
                   test=dataset.test)
    assert trial.trial_speed(cfg, tiny) is None  # 3 warm-up steps and 1 timed
    assert trial.trial_speed(cfg, dataset, deadline_s=0.0) is None  # stopped at the first step


def test_one_trial_serves_settings_that_do_not_change_a_steps_speed():
    cfg = preset("fast")
    key = trial.trial_key(cfg)
    assert trial.trial_key(replace(cfg, epochs=9, seed=4, lr=0.01, schedule="none", tta=False)) == key
    for changed in (dict(batch_size=32), dict(model="fastcnn"), dict(ensemble=2), dict(augment=False)):
        assert trial.trial_key(replace(cfg, **changed)) != key, changed


def test_the_server_times_in_a_child_process(monkeypatch):
    """measure() runs the trial in ``python -m signlab.trial`` with the workers' thread share, not in
    the server (torch's threads and random generator are the whole process's), and without torchrun's
    variables, which would make the child try to join a process group."""
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "1")):
        monkeypatch.setenv(name, value)
    seen = []
    real = subprocess.run

    def run(args, **kw):
        seen.append((args, kw["env"]))
        return real(args, **kw)

    monkeypatch.setattr(subprocess, "run", run)
    speed = trial.measure(preset("lecture", model="logreg"), env={"OMP_NUM_THREADS": "1"})
    assert speed is not None and speed > 1, speed
    [(args, env)] = seen
    assert args[1:3] == ["-m", "signlab.trial"] and env["OMP_NUM_THREADS"] == "1"
    assert not {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"} & set(env)


def test_a_trial_too_large_or_too_slow_says_nothing(monkeypatch):
    """A configuration over MAX_MEMORY_MB (batch 4,096 of eight deep networks, from a link) is never
    trained to time it; a child that outlives its time is killed and says nothing."""
    called = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: called.append(a) or pytest.fail("a child was started"))
    huge = replace(preset("fast"), model="deepcnn", ensemble=8, batch_size=4096)
    assert trial.measure(huge) is None and not called
    monkeypatch.undo()
    assert trial.measure(preset("fast"), timeout_s=0.2) is None  # Python and torch alone take longer to start
