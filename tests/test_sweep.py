"""Sweeps: two worker processes share one study, pruning stops the trainer, bad input exits 2,
and the Sweeps page renders."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tests._local import optional

optuna = optional("optuna")

from signlab import sweep
from signlab.errors import ConfigError
from signlab.runs import open_run  # noqa: E402
from signlab.trainer import BatchEnd, EpochEnd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    # without the caller's SIGNLAB_OWNER: a sweep from the command line is then the machine user's
    return {**{k: v for k, v in os.environ.items() if k != "SIGNLAB_OWNER"}, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT)}


def _sweep_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "signlab", "sweep", *args]


# --------------------------------------------------------------------------- two workers, one study
def test_two_workers_share_one_study(tmp_path):
    runs = tmp_path / "runs"
    journal = tmp_path / "shared" / "study.journal"
    journal.parent.mkdir()  # a shared folder the class already has (a missing one is refused as a typo)
    args = ["--model", "logreg", "--trials", "2", "--epochs", "1", "--max-steps", "20", "--storage", str(journal),
            "--study", "s", "--runs-dir", str(runs), "--json"]
    procs = [subprocess.Popen(_sweep_cmd(*args), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["this_worker"] == 2

    rows = sweep.study_trials(str(journal), "s", runs)
    assert len(rows) == 4
    assert sorted(r["number"] for r in rows) == [0, 1, 2, 3]
    assert all(r["state"] == "COMPLETE" for r in rows)
    run_ids = [r["run_id"] for r in rows]
    assert len(set(run_ids)) == 4
    for rid in run_ids:  # every trial is an ordinary, finished run named after the study
        d = runs / rid
        assert (d / "model.safetensors").is_file()
        meta = json.loads((d / "meta.json").read_text())
        assert meta["sweep"] == "s" and meta["name"] == f"s #{meta['trial']}"
        assert open_run(rid, runs).status()["status"] == "completed"
    params = {tuple(sorted((k, r[k]) for k in sweep.PARAMS if r[k] is not None)) for r in rows}
    assert len(params) == 4  # no parameter set tried twice
    best = sweep.best_trial(rows)
    assert best["value"] == max(r["value"] for r in rows)
    # the workers left nothing registered behind them
    assert sweep.workers("s", runs) == []


# --------------------------------------------------------------------------- pruning
class FakeTrial:
    def __init__(self, prune: bool) -> None:
        self.prune, self.reports = prune, []

    def report(self, value, step) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune


class FakeTrainer:
    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def _epoch(n: int, acc: float) -> EpochEnd:
    return EpochEnd(epoch=n, train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=acc,
                    epoch_seconds=1.0, train_seconds=n, samples_per_second=1.0)


def test_pruning_callback_stops_the_trainer():
    trial, trainer = FakeTrial(prune=True), FakeTrainer()
    cb = sweep.PruningCallback(trial, total_epochs=3)
    cb(_epoch(1, 0.1), trainer)
    assert trial.reports == [(1, 0.1)]
    assert trainer.stopped and cb.pruned_at == 1


def test_pruning_callback_lets_good_and_last_epochs_finish():
    trial, trainer = FakeTrial(prune=False), FakeTrainer()
    cb = sweep.PruningCallback(trial, total_epochs=2)
    cb(_epoch(1, 0.9), trainer)
    assert not trainer.stopped and cb.pruned_at is None
    bad, trainer2 = FakeTrial(prune=True), FakeTrainer()
    cb2 = sweep.PruningCallback(bad, total_epochs=2)
    cb2(_epoch(2, 0.1), trainer2)  # nothing left to save after the last epoch: it completes
    assert not trainer2.stopped and bad.reports == [(2, 0.1)]


def test_stop_request_stops_the_trainer(tmp_path):
    import time

    started = time.time() - 1
    trainer = FakeTrainer()
    cb = sweep.PruningCallback(FakeTrial(False), 2, lambda: sweep.stop_requested_since("s", started, tmp_path))
    batch = BatchEnd(step=1, epoch=1, loss=1.0, lr=0.1, samples_per_second=1.0, train_seconds=1.0, progress=0.1)
    cb(batch, trainer)
    assert not trainer.stopped
    sweep.request_stop("s", tmp_path)
    cb(batch, trainer)
    assert trainer.stopped and cb.stopped
    # an old stop request does not stop a worker started after it
    assert not sweep.stop_requested_since("s", time.time() + 1, tmp_path)


def test_median_pruner_prunes_a_bad_trial_in_a_real_study():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
    for acc in (0.8, 0.85, 0.9):
        t = study.ask()
        t.report(acc, 1)
        study.tell(t, acc)
    bad, trainer = study.ask(), FakeTrainer()
    cb = sweep.PruningCallback(bad, total_epochs=2)
    cb(_epoch(1, 0.1), trainer)
    assert trainer.stopped and cb.pruned_at == 1
    good, trainer = study.ask(), FakeTrainer()
    cb = sweep.PruningCallback(good, total_epochs=2)
    cb(_epoch(1, 0.95), trainer)
    assert not trainer.stopped


def test_suggest_searches_width_only_where_the_model_has_one():
    study = optuna.create_study(direction="maximize")
    assert "width" in sweep.suggest(study.ask(), "fastcnn")
    assert "width" not in sweep.suggest(study.ask(), "logreg")
    p = sweep.suggest(study.ask(), "fastcnn")
    sweep.base_config("fastcnn").replace(**p)  # every suggestion is a valid TrainConfig


def test_storage_specs(tmp_path):
    from optuna.storages import JournalStorage, RDBStorage

    assert isinstance(sweep.open_storage(None, "s", tmp_path), JournalStorage)
    assert isinstance(sweep.open_storage(f"journal:{tmp_path / 'a.journal'}", "s"), JournalStorage)
    assert isinstance(sweep.open_storage(f"sqlite:///{tmp_path / 'a.db'}", "s"), RDBStorage)
    with pytest.raises(sweep.ConfigError):
        sweep.open_storage("redis://localhost", "s")
    # a mistyped folder: it was made, and a new study started in it
    with pytest.raises(sweep.ConfigError, match="--storage: the folder .*typo/dir does not exist"):
        sweep.open_storage(str(tmp_path / "typo" / "dir" / "x.journal"), "s")
    assert not (tmp_path / "typo").exists()
    assert isinstance(sweep.open_storage(None, "s", tmp_path / "fresh"), JournalStorage)  # the default is made
    assert sweep.mask_url("postgresql://me:secret@db/x") == "postgresql://me:***@db/x"


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args", [["--trials", "0"], ["--model", "nope"]])
def test_bad_input_exits_2_with_one_line(tmp_path, args):
    r = subprocess.run(_sweep_cmd("--runs-dir", str(tmp_path), *args), cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("signlab:")
    assert not any(tmp_path.rglob("*.journal"))


@pytest.mark.parametrize("args", [["--study", "../up"], ["--timeout", "-1"], ["--trials", "two"],
                                  ["--storage", "redis://localhost"], ["--epochs", "0"]])
def test_more_bad_input_in_process(tmp_path, capsys, args):
    from signlab.cli import main

    assert main(["sweep", "--runs-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("signlab:")


@pytest.mark.parametrize("args", [["--device", "mps" if torch.cuda.is_available() else "cuda"],
                                  ["--data", "/no/such/folder"]])
def test_what_every_trial_would_fail_on_is_refused_before_the_study(tmp_path, capsys, args):
    """A device the machine lacks failed each trial with Optuna's traceback and left a failed run a
    trial; a --data folder that does not exist was kept as the study's setting, so running the same
    study again without it was refused ("was started with data='/nonexistent'")."""
    from signlab.cli import main

    assert main(["sweep", "--runs-dir", str(tmp_path), "--model", "logreg", "--trials", "1", "--max-steps", "3",
                 "--study", "fresh", *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("signlab:") and "Traceback" not in err, err
    assert not (tmp_path / "sweeps").exists() and not open_run_ids(tmp_path)  # no study, no run


def open_run_ids(root: Path) -> list[str]:
    from signlab.runs import list_runs

    return [r.id for r in list_runs(root)]


def test_joining_with_other_settings_is_refused(tmp_path, small_dataset):
    common = dict(model="logreg", trials=1, epochs=1, max_steps=3, study="j", runs_dir=tmp_path,
                  dataset=small_dataset)
    sweep.run_sweep(**common)
    # named by its flag, as every other message of the command names a setting (it said max_steps=3)
    with pytest.raises(sweep.ConfigError, match="study 'j' was started with --max-steps 3, not 4; "):
        sweep.run_sweep(**{**common, "max_steps": 4})
    assert sweep.workers("j", tmp_path) == []
    # list_studies says whether each study runs (the Sweeps page's warning reads it, asking nothing again)
    assert [(s["study"], s["running"]) for s in sweep.list_studies(tmp_path)] == [("j", False)]


# --------------------------------------------------------------------------- stopping
def test_stop_request_ends_the_running_trial_and_the_sweep(tmp_path, small_dataset):
    def log(line: str) -> None:
        if line.startswith("trial 0: lr="):  # the first trial has just started
            sweep.request_stop("st", tmp_path)

    result = sweep.run_sweep(model="logreg", trials=3, epochs=1, max_steps=200, study="st", runs_dir=tmp_path,
                             dataset=small_dataset, log=log, log_every=1)
    assert result["this_worker"] == 1  # no new trial after the stop
    rows = sweep.study_trials(None, "st", tmp_path)
    assert [r["state"] for r in rows] == ["STOPPED"]
    assert open_run(rows[0]["run_id"], tmp_path).status()["status"] == "stopped"
    assert not sweep.sweep_running("st", tmp_path)


def test_ctrl_c_ends_the_running_trial_and_the_sweep_as_a_stop_does(tmp_path, small_dataset, capsys,
                                                                     ctrl_c_reaches_python):
    """Ctrl-C in the terminal printed Optuna's 30-line traceback of the trial and left its run
    "running" until the lease ran out; now the first one stops the trial after its step and starts
    no other, a second one quits at once."""
    import os
    import signal

    handler = signal.getsignal(signal.SIGINT)

    def log(line: str) -> None:
        if line.startswith("trial 0: lr="):  # a user presses Ctrl-C as the first trial starts
            os.kill(os.getpid(), signal.SIGINT)

    result = sweep.run_sweep(model="logreg", trials=3, epochs=1, max_steps=200, study="cc", runs_dir=tmp_path,
                             dataset=small_dataset, log=log, log_every=1)
    assert result["this_worker"] == 1  # no new trial after it
    rows = sweep.study_trials(None, "cc", tmp_path)
    assert [r["state"] for r in rows] == ["STOPPED"]
    assert open_run(rows[0]["run_id"], tmp_path).status()["status"] == "stopped"
    err = capsys.readouterr().err
    assert "Ctrl-C again to quit at once" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) is handler  # given back

    def twice(line: str) -> None:
        if line.startswith("trial 0: lr="):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(model="logreg", trials=3, epochs=1, max_steps=200, study="cc2", runs_dir=tmp_path,
                        dataset=small_dataset, log=twice, log_every=1)
    assert signal.getsignal(signal.SIGINT) is handler
    [row] = sweep.study_trials(None, "cc2", tmp_path)  # quit at once: its run let go, not left "running"
    assert open_run(row["run_id"], tmp_path).status()["status"] == "stopped"


# --------------------------------------------------------------------------- the page
def _sweeps_page(runs_dir, monkeypatch):
    """The Sweeps page under AppTest, over ``runs_dir``, checked to have raised nothing. Its tests take
    ``app_caches``: the process's job manager otherwise keeps the folder of the first page this
    worker opened, and the page's times came from that folder's runs (a full run failed on it)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(runs_dir))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/sweeps.py")
    at.run(timeout=60)
    assert not at.exception
    return at


def test_sweeps_page_renders(tmp_path, monkeypatch, small_dataset, app_caches):
    """With no sweep yet: the title, the fields to start one, and a word that there is nothing to show."""
    from signlab import api
    from signlab.config import TrainConfig

    # a logreg run, so the page can say how long logreg's trials take here
    api.train(TrainConfig(model="logreg", epochs=1, max_steps=20, augment=False, device="cpu"), tmp_path,
              dataset=small_dataset)
    at = _sweeps_page(tmp_path, monkeypatch)
    assert any("Sweep" in t.value for t in at.title)
    assert [e.label for e in at.expander if "New sweep" in e.label]
    assert any(b.label.startswith("▶") and "sweep" in b.label.lower() for b in at.button), [b.label for b in at.button]
    assert not at.dataframe  # no trial table without a study
    # what is searched follows the chosen architecture at once (in the form it kept the first one's)
    assert any(", width " in c.value for c in at.caption if c.value.startswith("Searched:"))
    next(s for s in at.selectbox if s.label == "Architecture").set_value("logreg").run()
    searched = [c.value for c in at.caption if c.value.startswith("Searched:")]
    assert len(searched) == 1 and ", width " not in searched[0]
    # the time worked out follows the budget typed in (in a form it kept the default one's until Start)
    boxes = {n.label: n for n in at.number_input}
    boxes["Trials (the budget)"].set_value(2)
    boxes["Epochs per trial"].set_value(1).run()
    searched = [c.value for c in at.caption if c.value.startswith("Searched:")]
    assert "So 2 trials of 1 epoch take about" in searched[0], searched
    # a number outside its box's range is said, and Start is off: the box kept its last valid number,
    # and a student who typed 0 trials and pressed Start got a sweep of the 2 typed before
    boxes["Trials (the budget)"].set_value(0).run()
    assert [w.value for w in at.warning if "Trials (the budget): 0 is out of range; allowed 1 to" in w.value]
    assert next(b for b in at.button if b.label == "▶ Start sweep").disabled
    assert not [c for c in at.caption if c.value.startswith("Searched:")]  # no time for a budget it cannot start


@pytest.mark.parametrize("linked, shown, warned", [("first", "first", False), ("nope", "second", True)])
def test_a_sweeps_link_opens_its_study(tmp_path, monkeypatch, small_dataset, app_caches, linked, shown, warned):
    """/sweeps?study=… was ignored (every other page reads its link), and a refresh opened the newest study."""
    from streamlit.testing.v1 import AppTest

    for name in ("first", "second"):
        sweep.run_sweep(model="logreg", trials=1, epochs=1, max_steps=2, study=name, runs_dir=tmp_path,
                        dataset=small_dataset)
    monkeypatch.setenv("SIGNLAB_RUNS_DIR", str(tmp_path))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/sweeps.py")
    at.query_params["study"] = linked
    at.run(timeout=60)
    assert not at.exception, [e.message for e in at.exception]
    assert next(s for s in at.selectbox if s.label == "Study").value == shown
    assert bool([w for w in at.warning if w.value.startswith("The link's study")]) == warned
    assert at.query_params["study"] == shown  # the link names the study shown


def test_the_page_and_the_command_line_start_the_same_sweep(tmp_path, monkeypatch, capsys, app_caches):
    """The sweep's defaults were written four times and disagreed: the page started fastcnn with 8
    trials, the command line's help said s2net and its default was 10, the page's epochs stopped at 50
    where a run's stop at 200. Each is now declared once in signlab.sweep."""
    from signlab import cli, views
    from signlab.config import SETTING

    at = _sweeps_page(tmp_path, monkeypatch)
    assert next(s for s in at.selectbox if s.label == "Architecture").value == sweep.DEFAULT_MODEL
    boxes = {n.label: n for n in at.number_input}
    assert boxes["Trials (the budget)"].value == sweep.DEFAULT_TRIALS
    lo, hi = SETTING["epochs"].range
    boxes["Epochs per trial"].set_value(hi + 1)
    boxes["Worker processes"].set_value(sweep.MAX_WORKERS + 1).run()
    [said] = [w.value for w in at.warning if w.value.startswith("Start sweep is off")]
    assert f"Epochs per trial: {hi + 1} is out of range; allowed {lo} to {hi}" in said, said
    assert f"Worker processes: {sweep.MAX_WORKERS + 1} is out of range; allowed 1 to {sweep.MAX_WORKERS}" in said
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert f"(default {sweep.DEFAULT_MODEL})" in helptext and f"default {sweep.DEFAULT_TRIALS})" in helptext
    args = cli.build_parser().parse_args(["sweep"])
    assert (args.model, args.trials, args.epochs) == (sweep.DEFAULT_MODEL, sweep.DEFAULT_TRIALS, sweep.DEFAULT_EPOCHS)
    assert f"--trials {sweep.DEFAULT_TRIALS} " in views.sweep_command({}, "s", None, tmp_path)
    with pytest.raises(ConfigError, match=f"allowed 1 to {sweep.MAX_WORKERS}"):
        sweep.start_sweep_process("logreg", 2, runs_dir=tmp_path, workers=sweep.MAX_WORKERS + 1)


def test_sweeps_page_shows_a_study_and_opens_the_best_run(tmp_path, monkeypatch, small_dataset, app_caches):
    sweep.run_sweep(model="logreg", trials=2, epochs=1, max_steps=5, study="page", runs_dir=tmp_path,
                    dataset=small_dataset)
    at = _sweeps_page(tmp_path, monkeypatch)
    assert {m.label: m.value for m in at.metric}["Trials"] == "2"
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 2
    best = sweep.best_trial(sweep.study_trials(None, "page", tmp_path))
    [open_best] = [b for b in at.button if "Open best run" in b.label]
    open_best.click()
    at.run(timeout=60)
    assert at.session_state["eval_run_id"] == best["run_id"]


# --------------------------------------------------------------------------- trials share the job limit
def test_a_trial_waits_for_a_slot_of_the_job_limit(tmp_path, small_dataset, monkeypatch):
    """Sweep trials are ordinary runs in the queue: with the only slot taken, a trial waits queued,
    and trains once the slot is free (a sweep can never run past the server's job limit)."""
    import threading
    import time

    from signlab.config import TrainConfig
    from signlab.runs import create_held_run
    from signlab.store import RunState, store_for

    monkeypatch.setenv("SIGNLAB_JOB_LIMIT", "1")
    held, claim = create_held_run(TrainConfig(model="logreg"), "someone-else", tmp_path, run_id="busy")
    store = store_for(tmp_path)
    store.update(claim, RunState.RUNNING)
    result = {}
    launched = time.time()
    t = threading.Thread(target=lambda: result.update(sweep.run_sweep(
        model="logreg", trials=1, epochs=1, max_steps=5, study="lim", runs_dir=tmp_path, dataset=small_dataset)))
    t.start()
    deadline = time.time() + 60
    while time.time() < deadline and not [r for r in store.rows() if r["kind"] == "trial"]:
        time.sleep(0.1)
    [trial] = [r for r in store.rows() if r["kind"] == "trial"]
    time.sleep(2)
    assert store.get(trial["run_id"])["status"] == RunState.QUEUED  # waiting: the slot is taken
    [worker] = store.workers(kind="sweep")
    assert worker["phase"] == "waiting for a free slot"
    assert launched <= worker["since"] <= time.time()  # a stop after this is for this worker (pages read it)
    store.heartbeat(claim)
    store.update(claim, RunState.COMPLETED)
    t.join(120)
    assert result["completed"] == 1
    assert store.get(trial["run_id"])["status"] == RunState.COMPLETED


def test_sweep_keeps_its_trials_in_the_database_given_with_db(tmp_path):
    """``sweep --db URL``, as every command that opens runs takes it (it was refused as an
    unrecognised argument): the trial's run lands in that database, not in the runs folder's, owned
    by the machine's user as a run of ``train`` is."""
    runs, db = tmp_path / "runs", tmp_path / "class.db"
    proc = subprocess.run(_sweep_cmd("--model", "logreg", "--trials", "1", "--epochs", "1", "--max-steps", "3",
                                     "--runs-dir", str(runs), "--db", str(db), "--json", "--quiet"),
                          cwd=ROOT, env={k: v for k, v in _env().items() if k != "SIGNLAB_DB"},
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout.strip().splitlines()[-1])["best_run_id"]
    from signlab.store import RunStore

    from signlab.access import local_user

    given = RunStore(f"sqlite:///{db}")
    assert given.get(run_id)["status"] == "completed"
    assert given.get(run_id)["owner"] == local_user().id  # as train's runs: the trials had no owner
    # an owner given as an instructor types it is kept as the student's sign-in id is
    proc = subprocess.run(_sweep_cmd("--model", "logreg", "--trials", "1", "--epochs", "1", "--max-steps", "3",
                                     "--study", "for-alice", "--runs-dir", str(runs), "--db", str(db), "--json",
                                     "--quiet"),
                          cwd=ROOT, env={**{k: v for k, v in _env().items() if k != "SIGNLAB_DB"},
                                         "SIGNLAB_OWNER": " Alice@X.edu "},
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert given.get(json.loads(proc.stdout.strip().splitlines()[-1])["best_run_id"])["owner"] == "alice@x.edu"
    assert not (runs / "signlab.db").exists() or RunStore(f"sqlite:///{runs / 'signlab.db'}").get(run_id) is None


def test_the_docs_name_the_widths_each_model_tries():
    """docs/sweeps.md listed the widths of three models and left out s2net's, the default model."""
    from signlab.models import list_models

    row = next(line for line in (ROOT / "docs" / "sweeps.md").read_text().splitlines() if line.startswith("| width"))
    assert any(sweep.widths_for(m.name) for m in list_models())  # else the loop below checks nothing
    for m in list_models():
        widths = sweep.widths_for(m.name)
        if widths:
            assert f"{m.name} {'/'.join(map(str, widths))}" in row, (m.name, widths, row)


def test_the_command_shown_for_more_workers_joins_the_study(tmp_path, small_dataset):
    """A study started with a seed (or a validation fraction of more digits than %g keeps) refused the
    command the Sweeps page showed for more workers: the seed was not in it, the fraction was rounded."""
    import shlex

    from signlab import cli, views
    from signlab.settings import option_values

    sweep.run_sweep(model="logreg", trials=1, epochs=1, max_steps=5, study="seeded", runs_dir=tmp_path,
                    dataset=small_dataset, seed=3, val_fraction=0.1234567)
    cmd = views.sweep_command(sweep.study_record("seeded", tmp_path), "seeded", None, tmp_path)
    argv = shlex.split(cmd)
    assert argv[:3] == ["python", "-m", "signlab"] and "--seed" in argv
    argv[argv.index("--trials") + 1] = "1"
    args = cli.build_parser().parse_args(argv[3:])
    result = sweep.run_sweep(trials=args.trials, storage=args.storage, study=args.study, runs_dir=args.runs_dir,
                             dataset=small_dataset, **option_values(args, sweep.SWEEP_OPTIONS))
    assert result["trials"] == 2 and result["this_worker"] == 1


def test_a_sweep_that_loses_the_race_to_create_optunas_tables_tries_again(monkeypatch):
    """Two sweeps started at one instant on a fresh PostgreSQL database: the slower one failed with
    UniqueViolation (Optuna created its tables twice) and its study was left with no worker."""
    calls: list[str] = []

    def rdb(spec, **kw):
        calls.append(spec)
        if len(calls) < 3:
            raise RuntimeError('(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint '
                               '"pg_type_typname_nsp_index"')
        return "storage"

    monkeypatch.setattr(sweep.time, "sleep", lambda s: None)
    assert sweep._rdb_storage(rdb, "postgresql://db/x") == "storage" and len(calls) == 3
    calls.clear()

    def refused(spec, **kw):
        calls.append(spec)
        raise RuntimeError("connection refused")

    with pytest.raises(RuntimeError, match="connection refused"):  # anything else is said at once
        sweep._rdb_storage(refused, "postgresql://db/x")
    assert len(calls) == 1


def test_a_trial_stopped_while_its_sweep_waits_for_a_slot_ends_the_wait(tmp_path, monkeypatch):
    """A queued trial stopped on the Runs page (or cancelled as an orphan while its worker could not
    beat) is never claimed, and the sweep waited for it for good, saying "waiting for a free slot"."""
    import threading

    from signlab.config import TrainConfig
    from signlab.runs import create_held_run, create_run
    from signlab.store import RunState

    busy, _ = create_held_run(TrainConfig(model="logreg"), "someone", tmp_path, run_id="busy")  # the one slot
    trial = create_run(TrainConfig(model="logreg"), tmp_path, run_id="t", kind="trial", study="s",
                       auto_continue=False, status=RunState.QUEUED)
    monkeypatch.setenv("SIGNLAB_JOB_LIMIT", "1")
    worker = sweep._SweepWorker("s", TrainConfig(model="logreg"), tmp_path, "x", None, 1, 0.0, None, lambda m: None)
    got: list = []
    waiting = threading.Thread(target=lambda: got.append(worker.wait_for_slot(trial)), daemon=True)
    waiting.start()
    time.sleep(1.0)
    assert waiting.is_alive()  # the slot is taken: it waits
    trial.store.request("t", "stop")  # Stop on the Runs page
    waiting.join(10)
    assert not waiting.is_alive() and got == [None]
    assert str(busy.status()["status"]) == "claimed"


# --------------------------------------------------------------------------- an engineer's review (2026-12-06)
@pytest.mark.parametrize("spec, said", [
    ("sqlite://", "is a database in memory"), ("sqlite:///:memory:", "is a database in memory"),
    ("journal", "is not a regular file"),  # a pipe: it waited for good, reading the journal's first line
    ("damaged", "is not an Optuna journal"),  # an operation Optuna does not know: its assert, a traceback
])
def test_storage_that_keeps_no_trial_or_cannot_be_read_is_refused(tmp_path, capsys, spec, said):
    """An in-memory SQLite database gave each connection its own: the sweep trained two trials and
    reported 0; a --storage that is a pipe (or a device) was opened as a journal; a journal line with
    an unknown op code raised Optuna's AssertionError (exit 1, a traceback)."""
    from signlab.cli import main

    if spec == "journal":
        spec = str(tmp_path / "pipe.journal")
        os.mkfifo(spec)
    elif spec == "damaged":
        spec = str(tmp_path / "damaged.journal")
        Path(spec).write_text('{"op_code": 99, "worker_id": "x"}\n')
    assert main(["sweep", "--runs-dir", str(tmp_path), "--model", "logreg", "--trials", "1", "--max-steps", "1",
                 "--epochs", "1", "--storage", spec]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("signlab: --storage: ") and said in err, err
    assert not open_run_ids(tmp_path)


def test_a_study_name_ending_in_a_newline_is_refused(tmp_path, capsys):
    """"$" in the name's pattern matched before a last newline: a study "nl\n" made files named so."""
    from signlab.cli import main

    assert main(["sweep", "--runs-dir", str(tmp_path), "--model", "logreg", "--study", "nl\n"]) == 2
    assert capsys.readouterr().err == ("signlab: --study: 'nl\\n' is not a valid study name "
                                       "(up to 64 letters, digits, '-', '_' and '.')\n")
    assert not (tmp_path / "sweeps").exists()


def test_a_trial_whose_worker_was_killed_after_training_is_not_running_for_good(tmp_path, monkeypatch):
    """A sweep worker killed (out of memory, kill -9) while it read the test set of a trial whose run
    had completed: the journal never got the trial's value, and the study listed it as running for
    good, its clock counting."""
    child = ("import os, signal, sys\n"
             "from signlab import api, sweep\n"
             "api.evaluate_run = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
             "sweep.run_sweep(model='logreg', trials=1, epochs=1, max_steps=2, study='killed', runs_dir=sys.argv[1])\n")
    r = subprocess.run([sys.executable, "-c", child, str(tmp_path)], cwd=ROOT, env=_env(), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-2000:]
    from signlab.store import store_for
    from tests._wait import wait_for

    rows = sweep.study_trials(None, "killed", tmp_path)
    assert len(rows) == 1 and store_for(tmp_path).get(rows[0]["run_id"])["status"] == "completed"
    assert rows[0]["state"] == "RUNNING"  # until its worker's heartbeat is two leases old: it may be testing
    monkeypatch.setenv("SIGNLAB_LEASE_SECONDS", "1")
    wait_for(lambda: sweep.study_trials(None, "killed", tmp_path)[0]["state"] != "RUNNING", 30,
             what="the trial to be seen without its worker")
    rows = sweep.study_trials(None, "killed", tmp_path)
    assert rows[0]["state"] == "INTERRUPTED" and rows[0]["seconds"] is None, rows[0]
    assert rows[0]["note"].startswith("its sweep worker stopped after training")


def test_a_trial_ended_by_a_termination_signal_logs_no_traceback():
    """SIGTERM (the Sweeps page's Force stop) ends the trial with a KeyboardInterrupt, which Optuna
    logged with its 40-line traceback through the training step; the line is kept without it."""
    import io
    import logging

    optuna = sweep._optuna()
    sweep._optuna()  # asked again (each sweep and each page read): one filter, not two
    handler = logging.getLogger("optuna").handlers[0]
    assert sum(isinstance(f, sweep._NoInterruptTraceback) for f in handler.filters) == 1
    out = io.StringIO()
    stream, handler.stream = handler.stream, out
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            logging.getLogger("optuna.study._optimize").warning("Trial 0 failed", exc_info=True)
        try:
            raise ValueError("a real fault")
        except ValueError:
            logging.getLogger("optuna.study._optimize").warning("Trial 1 failed", exc_info=True)
    finally:
        handler.stream = stream
    text = out.getvalue()
    assert "Trial 0 failed" in text and text.count("Traceback") == 1 and "ValueError: a real fault" in text, text
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING


def test_an_epoch_record_without_a_validation_loss_leaves_the_trials_table_whole(tmp_path):
    """A trial's run log whose last epoch record has no val_loss (edited, or written by an older
    signlab) raised KeyError while the Sweeps page built its table."""
    from signlab.config import TrainConfig
    from signlab.runs import create_run

    run = create_run(TrainConfig(model="logreg"), tmp_path, run_id="t1", status="completed")
    (run.dir / "metrics.jsonl").write_text('{"type": "epoch", "epoch": 1, "val_accuracy": 0.5}\n'
                                           '{"type": "epoch", "epoch": 2, "val_loss": "n/a"}\n')
    assert sweep._last_val_loss("t1", tmp_path) is None
    (run.dir / "metrics.jsonl").write_text('{"type": "epoch", "epoch": 1, "val_loss": 0.25}\n')
    assert sweep._last_val_loss("t1", tmp_path) == 0.25
