"""Run directories: their files, a lossless save/load round trip, safe ids, torn logs, crashed
workers and continuing a run."""
from __future__ import annotations

import datetime as dt
import json
import os

import pytest
import torch

from signlab import api, runs
from signlab.config import TrainConfig
from signlab.errors import ConfigError, RunError, SignlabError
from signlab.models import build_model
from signlab.normalize import normalize
from signlab.runs import Run, RunWriter, check_run_id, create_held_run, create_run, list_runs, open_run, run_path
from signlab.store import RunState
from signlab.trainer import Trainer, make_optimizer, param_groups
from safetensors.torch import load_file

RUN_FILES = ("config.json", "meta.json", "metrics.jsonl", "model.safetensors",
             "optimizer.safetensors", "kernels/epoch_0000.safetensors",
             "kernels/epoch_0001.safetensors")


def test_run_dir_files_after_training(trained_run):
    run, record = trained_run
    for name in RUN_FILES:
        assert (run.dir / name).is_file(), name
    assert not list(run.dir.glob(".*.tmp")), "no temporary files are left behind"
    status = run.status()
    assert status["status"] == "completed" and status["epochs_completed"] == 1
    assert status["test_accuracy"] == pytest.approx(record["test_accuracy"])
    assert status["worker"] is None and status["lease_until"] is None  # a finished run holds no lease
    states = [h["to_state"] for h in run.store.history(run.id)]
    assert states == ["claimed", "running", "completed"]  # one holder, one start
    assert run.config.model == "logreg" and run.config.epochs == 1
    kinds = [m["type"] for m in run.metrics()]
    assert kinds[0] == "fit_start" and kinds[-1] == "fit_end" and kinds.count("epoch") == 1
    assert "batch" in kinds
    history = run.kernel_history()
    assert sorted(history) == [0, 1] and history[1].shape == (24, 784)
    assert not torch.equal(history[0], history[1])
    assert run.summary()["run_id"] == run.id == "logreg-session"
    assert run.summary()["status"] == "completed"
    # when it last changed: Home says "measuring…" for a run completed moments ago without a test accuracy
    assert run.summary()["updated"] == run.status()["updated"] > 0


def _fresh_run(tmp_path, ds, **kw):
    cfg = TrainConfig(**{"model": "fastcnn", "width": 4, "epochs": 1, "batch_size": 250, "max_steps": 3,
                         "device": "cpu", "log_every": 1, **kw})
    run, claim = create_held_run(cfg, "test-holder", tmp_path, run_id="fresh")
    trainer = Trainer(cfg, build_model(cfg), ds, [RunWriter(run, claim)])
    end = trainer.fit()
    return run, trainer, end


def test_save_load_round_trip_is_exact(tmp_path, small_dataset):
    run, trainer, end = _fresh_run(tmp_path, small_dataset)
    assert end.status == "completed"
    loaded = run.load_model()
    assert not loaded.training
    original = trainer.model.eval()
    x = normalize(torch.rand(16, 1, 28, 28))
    with torch.no_grad():
        assert torch.equal(original(x), loaded(x))
    for (k1, v1), (k2, v2) in zip(original.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)  # batch-norm running statistics included
    state = run.training_state()
    assert "optimizer" in state and state["optimizer"]["param_groups"]
    opt = make_optimizer(run.config, param_groups(run.config, loaded))  # as a continuation builds it
    opt.load_state_dict(state["optimizer"])  # the flattened optimizer state rebuilds


def test_open_run_by_id_and_by_path(trained_run, runs_root):
    run, _ = trained_run
    assert open_run(run.id, runs_root).dir == run.dir
    assert open_run(str(run.dir)).dir == run.dir
    assert [r.id for r in list_runs(runs_root)].count(run.id) == 1
    with pytest.raises(RunError, match="no such run"):
        open_run("no-such-run", runs_root)


# "id\n": a regular expression's "$" matched before a last newline, and such a run folder could be made
@pytest.mark.parametrize("bad", ["../x", "/etc", "a/b", "", "..", ".hidden", "x" * 200, "a\\b", "a b", "\x00", "id\n"])
def test_run_id_validation(bad, tmp_path):
    with pytest.raises(RunError):
        check_run_id(bad)
    with pytest.raises(RunError):
        run_path(bad, tmp_path)
    if bad:  # create_run treats an empty id as "make one up"
        with pytest.raises(RunError):
            create_run(TrainConfig(), tmp_path, run_id=bad)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["../x", "/etc", "a/b", ""])
def test_open_run_refuses_a_ref_that_is_no_run(bad, tmp_path):
    """The command line's RUN may be a path (open_run); what is refused is a ref that names no run:
    nothing there, a folder without config.json (/etc), an empty id. The pages' refusal of every path
    is test_access.test_links_take_run_ids_never_paths; a link out of the folder, the test below."""
    with pytest.raises(RunError, match="no such run|not a run directory|not a valid run id"):
        open_run(bad, tmp_path)


def test_symlink_out_of_the_runs_folder_is_refused(tmp_path):
    root, outside = tmp_path / "runs", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    (root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunError, match="outside"):
        run_path("escape", root)
    with pytest.raises(RunError):
        open_run("escape", root)
    with pytest.raises(RunError):
        runs.delete_run("escape", root)
    assert (outside / "config.json").exists()
    # a symlink that stays inside the folder is fine
    (root / "real").mkdir()
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    assert run_path("alias", root) == root / "alias"


def test_torn_metrics_line_still_reads(tmp_path):
    run = create_run(TrainConfig(), tmp_path, run_id="torn")
    lines = [json.dumps({"type": "fit_start"}), json.dumps({"type": "epoch", "epoch": 1, "val_accuracy": 0.5})]
    (run.dir / "metrics.jsonl").write_text("\n".join(lines) + "\n" + '{"type": "epoch", "epo')
    m = run.metrics()
    assert [r["type"] for r in m] == ["fit_start", "epoch"] and m[1]["val_accuracy"] == 0.5


def test_metrics_of_a_run_without_a_log(tmp_path):
    run = create_run(TrainConfig(), tmp_path, run_id="quiet")
    assert run.metrics() == []
    assert run.status()["status"] == "queued"


@pytest.mark.parametrize("state", ["running", "paused"])
def test_an_older_signlabs_running_folder_is_imported_as_interrupted(tmp_path, state):
    """A folder written before the run store (status.json says running) is imported on first sight:
    nothing holds it now, so it reads as interrupted and can be continued."""
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    (folder / "meta.json").write_text(json.dumps({"name": "old run", "created": 1.5e9}))
    (folder / "status.json").write_text(json.dumps({"status": state, "pid": 1, "epochs_completed": 2,
                                                    "test_accuracy": 0.9}))
    status = open_run("legacy", tmp_path).status()
    assert status["status"] == RunState.INTERRUPTED and status["epochs_completed"] == 2
    assert status["test_accuracy"] == 0.9 and status["name"] == "old run" and status["created"] == 1.5e9


@pytest.mark.parametrize("created", [1.5e12, -5.0, 0.0])
def test_a_copied_in_runs_impossible_creation_time_gives_way_to_its_folders(tmp_path, created):
    """A folder copied in with its creation time in milliseconds (an outside script's) was taken as
    seconds: year 56902, and the Runs page's table raised for everyone who could see the run. A time
    before 1970 or after tomorrow gives way to the folder's own time."""
    from signlab import compare

    folder = tmp_path / "copied"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    (folder / "meta.json").write_text(json.dumps({"name": "copied run", "created": created}))
    (folder / "status.json").write_text(json.dumps({"status": "completed", "epochs_completed": 1}))
    os.utime(folder, (1.7e9, 1.7e9))
    run = open_run("copied", tmp_path)
    assert run.status()["created"] == 1.7e9
    rows = compare.runs_table([run])
    assert rows[0]["created"].year == dt.datetime.fromtimestamp(1.7e9).year


def test_a_database_away_at_an_epochs_end_does_not_fail_the_run(tmp_path, small_dataset, monkeypatch):
    """The run database away for a moment ("database is locked", a PostgreSQL restart) as an epoch's
    end wrote its count: the error reached the Trainer, the run ended failed with 0 epochs though epoch
    1's weights were saved, and nothing continued it. That write is progress the next one carries."""
    from signlab.store import RunStore

    cfg = TrainConfig(model="logreg", epochs=3, augment=False, batch_size=128, device="cpu")
    run = create_run(cfg, tmp_path, run_id="r")
    claim = run.store.claim("worker-1", 1)
    update, refused = RunStore.update, []

    def away_once(self, claim, state=None, **changes):
        if state is None and changes.get("epochs_completed") == 3 and not refused:  # the last epoch's
            refused.append(changes)
            raise SignlabError("the run database sqlite:///runs.db is not available: database is locked")
        return update(self, claim, state, **changes)

    monkeypatch.setattr(RunStore, "update", away_once)
    record = api.train_claimed(run, claim, dataset=small_dataset, evaluate_test=False)
    assert refused and record["status"] == "completed", record
    row = run.status()
    assert row["status"] == RunState.COMPLETED and row["epochs_completed"] == 3, row
    # the last epoch's accuracy too (the end's write carries it: epoch 2's stayed in the row)
    assert row["val_accuracy"] == refused[0]["val_accuracy"] == record["val_accuracy"], (row, refused)


def test_an_expired_lease_reads_as_interrupted(tmp_path, monkeypatch):
    """Liveness is the lease: a holder that stops renewing it loses the run, on any host."""
    monkeypatch.setenv("SIGNLAB_LEASE_SECONDS", "1")
    run, claim = create_held_run(TrainConfig(), "vanished-holder", tmp_path, run_id="crashed")
    run.store.update(claim, RunState.RUNNING, epochs_completed=2)
    assert run.status()["status"] == RunState.RUNNING
    import time

    time.sleep(1.2)
    assert run.store.expire_leases() == ["crashed"]
    status = run.status()
    assert status["status"] == RunState.INTERRUPTED and "epoch 2" in status["message"]
    with pytest.raises(runs.LeaseLost):  # the old holder can no longer write
        run.store.update(claim, epochs_completed=3)


def test_a_dead_workers_run_is_taken_back_when_listed_or_continued(tmp_path, monkeypatch):
    """A worker killed mid-run, and nothing up to tick the store: `signlab runs` said "running" for
    ever, and `train --resume` said "queued" while the store kept "running" (its own transaction,
    which took the run back, was rolled back with the refusal)."""
    monkeypatch.setenv("SIGNLAB_LEASE_SECONDS", "1")
    import time

    for run_id, ask in (("listed", "list"), ("resumed", "resume")):
        run = runs.create_run(TrainConfig(epochs=3), tmp_path, run_id=run_id)  # queued for a worker
        claim = run.store.claim("killed-worker", 1, run_id=run_id)
        run.store.update(claim, RunState.RUNNING, epochs_completed=1)
        time.sleep(1.2)
        if ask == "list":
            listed = {r.id: r.summary() for r in runs.list_runs(tmp_path)}
            assert listed[run_id]["status"] == RunState.QUEUED  # taken back, and queued to continue
        else:
            with pytest.raises(RunError, match="is queued .a worker trains it"):
                run.store.claim_final(run_id, "me", 1)
        row = run.store.get(run_id)
        assert row["status"] == RunState.QUEUED and "continue from epoch 1" in row["message"]


def test_a_listing_shows_the_runs_when_the_store_cannot_take_one_back(tmp_path, monkeypatch):
    """Taking a dead holder's run back is a write: a run database that refuses writes (locked by a
    long transaction elsewhere, or read-only) must not make the list of runs fail with it."""
    from signlab.store import RunStore

    runs.create_run(TrainConfig(epochs=3), tmp_path, run_id="listed")

    def refused(self, now=None):
        raise SignlabError("the run database sqlite:///x is not available: database is locked")

    monkeypatch.setattr(RunStore, "expire_leases", refused)
    assert [r.id for r in runs.list_runs(tmp_path)] == ["listed"]


def test_delete_run_refuses_a_live_run(tmp_path):
    run, claim = create_held_run(TrainConfig(), "holder", tmp_path, run_id="live")
    with pytest.raises(RunError, match="still training"):
        runs.delete_run("live", tmp_path)
    run.store.update(claim, RunState.RUNNING)
    run.store.update(claim, RunState.COMPLETED)
    runs.delete_run("live", tmp_path)
    assert not run.dir.exists() and run.store.get("live") is None


def test_create_run_twice_is_refused(tmp_path):
    create_run(TrainConfig(), tmp_path, run_id="twice")
    with pytest.raises(RunError, match="already exists"):
        create_run(TrainConfig(), tmp_path, run_id="twice")


def test_load_model_without_weights(tmp_path):
    run = create_run(TrainConfig(), tmp_path, run_id="empty")
    with pytest.raises(RunError, match="no weights"):
        run.load_model()


def test_weights_of_another_model_are_refused(tmp_path, small_dataset):
    run, _, _ = _fresh_run(tmp_path, small_dataset)
    cfg = json.loads((run.dir / "config.json").read_text())
    cfg["model"] = "logreg"
    (run.dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match="does not fit model logreg"):
        run.load_model()


def test_continue_run_trains_more_epochs(tmp_path, small_dataset):
    cfg = TrainConfig(model="logreg", epochs=1, batch_size=200, augment=False, device="cpu")
    first = api.train(cfg, tmp_path, run_id="cont", dataset=small_dataset)
    run = open_run("cont", tmp_path)
    assert first["epochs"] == 1 and run.epochs_completed() == 1
    before = run.load_model().linear.weight.detach().clone()
    second = api.continue_run("cont", 2, tmp_path, dataset=small_dataset)
    assert second["status"] == "completed" and second["epochs"] == 3
    assert run.epochs_completed() == 3
    # the store's words count the whole run, as `runs --json` shows them ("trained 2 epochs" read at 3 of 3)
    assert first["message"] == "trained 1 epoch"
    assert run.status()["message"] == second["message"] == "trained 3 epochs, 2 of them in this continuation"
    assert run.config.epochs == 3  # config.json records the total
    assert not torch.equal(before, run.load_model().linear.weight)
    epochs = [m["epoch"] for m in run.metrics() if m["type"] == "epoch"]
    assert epochs == [1, 2, 3]
    starts = [m for m in run.metrics() if m["type"] == "fit_start"]
    assert [s["start_epoch"] for s in starts] == [0, 1]
    assert sorted(run.kernel_history()) == [0, 1, 2, 3]
    assert run.status()["train_seconds"] >= first["train_seconds"]
    # the speed kept for the run (the Train page's estimates) is the whole fit's, as train --json says
    assert run.status()["samples_per_second"] == pytest.approx(second["samples_per_second"])


def test_a_continuation_refuses_a_setting_its_optimiser_state_would_override(tmp_path, small_dataset):
    """continue_run took any setting and saved it in config.json, but the optimiser's state restored
    from the run kept the run's weight decay and norm-layer rate: the config said 0.1, training used
    5e-4. Only what a continuation uses (train --resume's flags) is taken; the run is left as it was."""
    cfg = TrainConfig(model="logreg", epochs=1, max_steps=3, augment=False, device="cpu")
    api.train(cfg, tmp_path, run_id="kept", dataset=small_dataset)
    run = open_run("kept", tmp_path)
    before = (run.dir / "config.json").read_text()
    with pytest.raises(ConfigError, match="^weight_decay, norm_lr_scale: a continuation keeps the run's own; "
                                          "it may set lr, device, max_steps$"):
        api.continue_run("kept", 1, tmp_path, dataset=small_dataset, weight_decay=0.1, norm_lr_scale=2.0)
    assert (run.dir / "config.json").read_text() == before and run.status()["status"] == "completed"
    rec = api.continue_run("kept", 1, tmp_path, dataset=small_dataset, lr=2e-3, max_steps=2)
    assert rec["status"] == "completed" and run.config.lr == 2e-3


def test_a_checkpoint_split_by_a_kill_is_continued_from_its_weights_epoch(tmp_path, small_dataset):
    """kill -9 during an epoch's save left weights of epoch 2 beside an optimizer of epoch 1 and a
    store saying 1: the continuation trained "epoch 2" again on epoch-2 weights with the older
    optimizer. Each file now says its epoch; the weights' is where training goes on, and an
    optimizer of another epoch is left out."""
    import shutil

    from signlab.store import runs_table

    cfg = TrainConfig(model="logreg", epochs=1, batch_size=200, augment=False, device="cpu")
    api.train(cfg, tmp_path, run_id="torn", dataset=small_dataset)
    run = open_run("torn", tmp_path)
    shutil.copy(run.dir / "optimizer.safetensors", tmp_path / "optimizer-epoch1.safetensors")
    api.continue_run("torn", 1, tmp_path, dataset=small_dataset)
    state = run.training_state()
    assert state["epoch"] == 2 and "optimizer" in state and not (run.dir / "optimizer.json").exists()
    # the kill: epoch 2's weights written, its optimizer and its record in the store not
    shutil.copy(tmp_path / "optimizer-epoch1.safetensors", run.dir / "optimizer.safetensors")
    with run.store._tx() as conn:
        conn.execute(runs_table.update().where(runs_table.c.run_id == "torn").values(epochs_completed=1))
    assert run.epochs_completed() == 1
    state = run.training_state()
    assert state["epoch"] == 2 and "optimizer" not in state  # epoch 1's optimizer is not mixed in
    # "2 more" on the 1 epoch the store shows: 3 in all, the third trained on epoch 2's weights
    rec = api.continue_run("torn", 2, tmp_path, dataset=small_dataset)
    assert rec["epochs"] == 3 and run.epochs_completed() == 3 and run.config.epochs == 3
    assert [s["start_epoch"] for s in run.metrics() if s["type"] == "fit_start"] == [0, 1, 2]


def test_a_kill_after_the_last_epochs_save_is_not_trained_past_its_target(tmp_path, small_dataset):
    """A worker killed after saving an epoch's weights and before recording it left the store one
    epoch behind them; the automatic continuation then trained to one epoch past the run's target
    (a 3-epoch run ended with 4), and a run killed after saving its last epoch trained one more."""
    import time

    from signlab.store import runs_table

    cfg = TrainConfig(model="logreg", epochs=2, batch_size=200, augment=False, device="cpu")
    api.train(cfg, tmp_path, run_id="k", dataset=small_dataset)  # weights stamped epoch 2
    run = open_run("k", tmp_path)
    run.save_config(cfg.replace(epochs=3))

    def killed_at(recorded: int, target: int) -> dict:
        with run.store._tx() as conn:  # a 3-epoch run whose worker died with epoch 2 saved, 1 recorded
            conn.execute(runs_table.update().where(runs_table.c.run_id == "k").values(
                state="running", epochs_completed=recorded, target_epochs=target, worker="dead", attempt=5,
                lease_until=time.time() - 10, auto_continue=True, continues=0))
        assert run.store.expire_leases() == ["k"]
        claim = run.store.claim("w2", 1, run_id="k")
        return api.train_claimed(run, claim, dataset=small_dataset)

    rec = killed_at(recorded=1, target=3)
    assert rec["status"] == "completed" and rec["epochs"] == 3 and run.config.epochs == 3
    assert run.training_state()["epoch"] == 3 and run.epochs_completed() == 3
    # killed after saving its last epoch (3 of 3): nothing is left to train, and it is said
    rec = killed_at(recorded=2, target=3)
    assert rec["status"] == "completed" and rec["epochs"] == 3 and run.config.epochs == 3
    assert run.training_state()["epoch"] == 3 and isinstance(rec["test_accuracy"], float)
    row = run.status()
    assert row["status"] == "completed" and row["epochs_completed"] == 3 and row["test_accuracy"] == rec["test_accuracy"]
    assert "nothing was left to train" in row["message"]
    assert [s["start_epoch"] for s in run.metrics() if s["type"] == "fit_start"] == [0, 2]


def test_a_finished_run_keeps_the_wait_beside_its_training(tmp_path, small_dataset, monkeypatch):
    """The time estimates add what a run took besides training: once a run the data, the network and
    the test accuracy, and each epoch's validation and saves. Made measurable here by a slow test
    evaluation (once) and slow saves (each epoch). All of it was counted per epoch, so a 1-epoch run's
    start-up was added ten times to a 10-epoch estimate."""
    import time as _time
    real, save = api.evaluate_run, RunWriter._save

    def slow(*args, **kwargs):
        _time.sleep(0.6)
        return real(*args, **kwargs)

    def slow_save(self, *args, **kwargs):
        _time.sleep(0.2)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(api, "evaluate_run", slow)
    monkeypatch.setattr(RunWriter, "_save", slow_save)
    cfg = TrainConfig(model="logreg", epochs=2, batch_size=200, augment=False, device="cpu")
    t0 = _time.perf_counter()
    record = api.train(cfg, tmp_path, run_id="waited", dataset=small_dataset)
    wall = _time.perf_counter() - t0
    status = open_run("waited", tmp_path).status()
    assert record["status"] == "completed" and status["train_seconds"] == pytest.approx(record["train_seconds"])
    # the evaluation is once a run, the saves each epoch's share, the training in neither
    per_epoch, fixed = status["overhead_per_epoch"], status["overhead_fixed"]
    assert 0.2 <= per_epoch < 0.6 and fixed >= 0.6, (per_epoch, fixed)
    assert fixed + 2 * per_epoch <= wall - record["train_seconds"] + 1e-6, (per_epoch, fixed, wall, record)


def test_continue_refuses_a_run_without_weights_or_still_training(tmp_path, small_dataset):
    create_run(TrainConfig(), tmp_path, run_id="nothing", status="completed")
    with pytest.raises(RunError, match="no finished epoch"):
        api.continue_run("nothing", 1, tmp_path, dataset=small_dataset)
    run, claim = create_held_run(TrainConfig(), "another-process", tmp_path, run_id="busy")
    (run.dir / "model.safetensors").write_bytes(b"")  # weights or not, a live holder owns the run
    with pytest.raises(RunError, match="only a finished run can be continued"):
        api.continue_run("busy", 1, tmp_path, dataset=small_dataset)


def test_rename_and_requests(tmp_path):
    run = create_run(TrainConfig(), tmp_path, run_id="named")
    run.rename("  my   first\nrun ")
    assert run.name == "my first run"
    # the folder keeps it too: a run read back from its folder (the database lost) had its first name
    assert json.loads((run.dir / "meta.json").read_text())["name"] == "my first run"
    with pytest.raises(RunError):
        run.rename("   ")
    assert run.request("pause") == RunState.QUEUED  # nothing to pause yet: no request is left behind
    assert run.store.get("named")["control"] is None
    held, claim = create_held_run(TrainConfig(), "holder", tmp_path, run_id="held")
    held.request("pause")
    assert run.store.heartbeat(claim) == "pause"  # the holder hears it at its next heartbeat
    held.request("resume")
    assert run.store.heartbeat(claim) is None
    with pytest.raises(ValueError):
        run.request("explode")
    from signlab.store import forget_stores

    forget_stores()
    for f in tmp_path.glob("signlab.db*"):
        f.unlink()
    assert {r.id: r.name for r in list_runs(tmp_path)}["named"] == "my first run"


def test_list_runs_skips_folders_without_config(tmp_path):
    create_run(TrainConfig(), tmp_path, run_id="good")
    (tmp_path / "junk").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    warnings = []
    listed = {r.id: r for r in list_runs(tmp_path, warn=warnings.append)}
    assert sorted(listed) == ["broken", "good"]  # a torn config is listed (so it can be deleted), not hidden
    assert listed["broken"].summary()["status"] == "failed" and "unreadable" in listed["broken"].summary()["message"]
    assert len(warnings) == 1 and "broken" in warnings[0]
    runs.delete_run("broken", tmp_path)
    assert [r.id for r in list_runs(tmp_path)] == ["good"]
    assert list_runs(tmp_path / "missing") == []
    assert isinstance(list_runs(tmp_path)[0], Run)


def test_a_folder_from_the_previous_signlab_lists_opens_evaluates_and_continues(tmp_path, small_dataset):
    """A run written by the file-based signlab (status.json, one kernels.safetensors, no database):
    imported on first sight, it lists, opens, evaluates and continues like any other."""
    import shutil

    from safetensors.torch import save_file

    cfg = TrainConfig(model="logreg", epochs=1, batch_size=200, augment=False, device="cpu")
    api.train(cfg, tmp_path / "new", run_id="old-run", dataset=small_dataset)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copytree(tmp_path / "new" / "old-run", legacy / "old-run")
    folder = legacy / "old-run"
    history = {f"epoch_{int(f.stem.split('_')[1])}": load_file(str(f))["kernels"]
               for f in sorted((folder / "kernels").glob("*.safetensors"))}
    shutil.rmtree(folder / "kernels")
    save_file(history, str(folder / "kernels.safetensors"))  # the old single-file kernel history
    (folder / "status.json").write_text(json.dumps({"status": "completed", "epochs_completed": 1,
                                                    "target_epochs": 1, "test_accuracy": 0.5, "pid": 12345,
                                                    "host": "elsewhere"}))
    [run] = list_runs(legacy)
    assert run.id == "old-run" and run.summary()["status"] == "completed" and run.summary()["test_accuracy"] == 0.5
    assert sorted(run.kernel_history()) == [0, 1]
    assert api.evaluate_run("old-run", small_dataset, runs_dir=legacy).accuracy > 0.04
    rec = api.continue_run("old-run", 1, legacy, dataset=small_dataset)
    assert rec["status"] == "completed" and rec["epochs"] == 2
    assert sorted(open_run("old-run", legacy).kernel_history()) == [0, 1, 2]


def test_runs_read_into_a_new_database_keep_their_owner_epochs_and_how_they_ended(tmp_path, small_dataset):
    """A class moved from SQLite to PostgreSQL (or a lost signlab.db): every run was listed with no
    owner, interrupted after 0 epochs, no accuracy, and students lost their runs."""
    import shutil

    from signlab.store import forget_stores

    cfg = TrainConfig(model="logreg", epochs=2, batch_size=200, augment=False, device="cpu")
    run, claim = create_held_run(cfg, "test", tmp_path, run_id="alices", owner="alice@x")
    record = api.train_claimed(run, claim, dataset=small_dataset, evaluate_test=False)
    assert record["status"] == "completed"
    killed, claim = create_held_run(cfg.replace(epochs=1), "test", tmp_path, run_id="killed", owner="bob@x")
    api.train_claimed(killed, claim, dataset=small_dataset, evaluate_test=False)
    with open(killed.dir / "metrics.jsonl", "a") as f:  # then continued, and killed mid-fit
        f.write(json.dumps({"type": "fit_start", "start_epoch": 1}) + "\n")
    # a run that could not start (its data gone before a worker took it): failed, with no weights
    refused, claim = create_held_run(cfg.replace(data=str(tmp_path / "gone")), "test", tmp_path, run_id="refused",
                                     owner="carol@x")
    with pytest.raises(SignlabError):
        api.train_claimed(refused, claim, evaluate_test=False)
    # a calibrated copy of alice's run (signlab.calibrate logs no epoch, one "calibration" record)
    calib = tmp_path / "calib"
    shutil.copytree(run.dir, calib)
    (calib / "metrics.jsonl").write_text(json.dumps({"type": "calibration", "message": "calibrated on 9 photos"})
                                         + "\n" + json.dumps({"type": "epoch", "epoch": True}) + "\n{torn")
    (calib / "calibration.json").write_text(json.dumps({"parent": "alices", "photos": 9}))
    # folders no run of signlab writes: they import without breaking the listing, trusting nothing odd
    odd = tmp_path / "odd"
    shutil.copytree(run.dir, odd)
    (odd / "meta.json").write_text(json.dumps({"run_id": "odd", "owner": "x" * 300}))
    (odd / "metrics.jsonl").write_text("[" * 200_000 + "\n" + json.dumps({"type": "epoch", "epoch": 1,
                                                                           "val_accuracy": 1e308}) + "\n"
                                       + json.dumps({"type": "fit_end", "status": "queued"}) + "\n")
    forget_stores()
    (tmp_path / "signlab.db").unlink()
    for extra in tmp_path.glob("signlab.db-*"):
        extra.unlink()
    runs = {r.id: r for r in list_runs(tmp_path)}
    row = runs["alices"].status()
    assert (row["status"], row["owner"], row["epochs_completed"]) == ("completed", "alice@x", 2), row
    assert row["val_accuracy"] == pytest.approx(record["val_accuracy"]) and row["message"] == "trained 2 epochs"
    row = runs["calib"].status()
    assert (row["status"], row["owner"], row["epochs_completed"]) == ("completed", "alice@x", 2), row
    assert row["message"] == "calibrated on 9 photos" and runs["calib"].parent == "alices"
    row = runs["odd"].status()
    assert (row["status"], row["owner"], row["epochs_completed"]) == ("interrupted", None, 1), row
    assert row.get("val_accuracy") is None
    row = runs["killed"].status()
    assert (row["status"], row["owner"], row["epochs_completed"]) == ("interrupted", "bob@x", 1), row
    row = runs["refused"].status()  # it was read as interrupted, "continue it to train on", with nothing to continue
    assert (row["status"], row["owner"], row["epochs_completed"]) == ("failed", "carol@x", 0), row
    assert "gone" in row["message"]
    assert api.continue_run("killed", 1, tmp_path, dataset=small_dataset)["epochs"] == 2


def test_a_run_deleted_meanwhile_is_not_imported_back(tmp_path):
    """A page (Calibrate) still holding a Run whose folder another tab deleted read its status, and
    the store imported the missing folder back as a hidden 'failed' row (it may count towards quotas)."""
    run = create_run(TrainConfig(model="logreg", epochs=1), tmp_path, run_id="gone", status="completed")
    held = open_run("gone", tmp_path)
    runs.delete_run("gone", tmp_path)
    assert held.status()["status"] == RunState.FAILED  # what the holder reads: not a live run
    assert run.store.get("gone") is None
    # a page reading its settings says what happened ("config.json missing or unreadable" before)
    with pytest.raises(RunError, match="was deleted"):
        held.config


def test_a_name_taken_is_numbered():
    """The tour's "Train again" and two calibrations on as many photos made runs of one name, told
    apart by their ids only."""
    from signlab.runs import unique_name

    assert unique_name("tour: Train logistic regression", []) == "tour: Train logistic regression"
    taken = ["tour: Train logistic regression", "tour: Train logistic regression (2)"]
    assert unique_name("tour: Train logistic regression", taken) == "tour: Train logistic regression (3)"
    assert unique_name("run (1)", ["run (1)"]) == "run (1) (2)"  # its own number kept
    long = "x" * 100
    assert unique_name(long, []) == "x" * 80 and unique_name(long, ["x" * 80]) == "x" * 76 + " (2)"


def test_a_finished_run_whose_weights_are_gone_is_told_so(tmp_path, small_dataset):
    """A completed run whose model.safetensors was deleted read "has no weights yet (no finished
    epoch)" in evaluate, predict, export and calibrate, after finishing its epochs."""
    from signlab import cli

    record = api.train(TrainConfig(model="logreg", epochs=1, max_steps=3, augment=False), tmp_path, run_id="done",
                       dataset=small_dataset)
    assert record["status"] == "completed"
    (tmp_path / "done" / "model.safetensors").unlink()
    with pytest.raises(RunError, match="its weights \\(model.safetensors\\) are missing from its folder, though it "
                                       "finished 1 epoch; they were deleted or moved"):
        open_run("done", tmp_path).load_model()
    assert cli.main(["export", "done", "--runs-dir", str(tmp_path)]) == 2
    create_run(TrainConfig(model="logreg"), tmp_path, run_id="new")
    with pytest.raises(RunError, match="has no weights yet: they are saved at the end of its first epoch"):
        open_run("new", tmp_path).load_model()


def test_a_resume_that_finds_its_last_epoch_saved_but_never_recorded_reports_its_time(tmp_path, small_dataset,
                                                                                      capsys):
    """A run killed after saving its only epoch and before recording anything (the store's row has no
    time, speed or validation yet): ``train --resume`` found nothing left to train and crashed on the
    missing time (a TypeError traceback; ``--json`` gave nulls). The time comes from the metrics."""
    import time

    from signlab import cli
    from signlab.store import runs_table

    cfg = TrainConfig(model="logreg", epochs=1, batch_size=200, augment=False, device="cpu")
    api.train(cfg, tmp_path, run_id="u", dataset=small_dataset)  # weights stamped epoch 1
    run = open_run("u", tmp_path)
    logged = [m for m in run.metrics() if m["type"] == "epoch"][-1]
    with run.store._tx() as conn:  # as if the worker died between the save and the store's update
        conn.execute(runs_table.update().where(runs_table.c.run_id == "u").values(
            state="running", epochs_completed=0, target_epochs=1, worker="dead", attempt=1,
            lease_until=time.time() - 10, info="{}"))
    assert run.status().get("train_seconds") is None
    capsys.readouterr()
    assert cli.main(["train", "--resume", "u", "--epochs", "1", "--runs-dir", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"1 epoch in {logged['train_seconds']:.1f}s" in out, out
    row = run.status()
    assert row["status"] == "completed" and row["train_seconds"] == logged["train_seconds"]
    assert row["val_accuracy"] == logged["val_accuracy"]


def test_a_resume_after_a_kill_between_the_log_and_the_store_takes_the_last_epochs_figures(tmp_path, small_dataset):
    """Killed after logging epoch 2 of 2 and before the store recorded it: the row still held epoch 1's
    validation, speed and time, and the finished run kept them. They are epoch 2's now, and the time
    is the whole run's."""
    import time

    from signlab.store import runs_table

    cfg = TrainConfig(model="logreg", epochs=2, batch_size=200, augment=False, device="cpu")
    api.train(cfg, tmp_path, run_id="v", dataset=small_dataset)
    run = open_run("v", tmp_path)
    whole = run.status()
    first, second = [m for m in run.metrics() if m["type"] == "epoch"]
    assert first["val_accuracy"] != second["val_accuracy"] or first["train_seconds"] != second["train_seconds"]
    back = {"val_accuracy": first["val_accuracy"], "train_seconds": first["train_seconds"],
            "samples_per_second": first["samples_per_second"]}
    with run.store._tx() as conn:  # the store as after epoch 1, the weights and the log at epoch 2
        conn.execute(runs_table.update().where(runs_table.c.run_id == "v").values(
            state="running", epochs_completed=1, target_epochs=2, worker="dead", attempt=1,
            lease_until=time.time() - 10, info=json.dumps(back)))
    assert run.status()["val_accuracy"] == first["val_accuracy"]
    rec = api.continue_run("v", 1, tmp_path, dataset=small_dataset)
    assert rec["epochs"] == 2 and "nothing was left to train" in rec["message"]
    assert rec["val_accuracy"] == second["val_accuracy"]
    assert rec["samples_per_second"] == second["samples_per_second"]
    assert rec["train_seconds"] == pytest.approx(whole["train_seconds"])
    assert run.status()["val_accuracy"] == second["val_accuracy"]


def test_a_continuation_drops_the_test_accuracy_of_the_weights_it_replaces(tmp_path, small_dataset):
    """A stopped run kept the test accuracy of its epoch-2 weights (99.72%) while it was continued,
    and the Train page read that figure beside the continuation's chart when it completed, before
    its own test accuracy was written: "99.72%; the chart read 100.00%: the shifts moved it down"."""
    from signlab import api
    from signlab.events import BatchEnd

    first = api.train(TrainConfig(model="logreg", epochs=1), tmp_path, run_id="r", dataset=small_dataset)
    assert first["test_accuracy"] is not None and open_run("r", tmp_path).status()["test_accuracy"] is not None
    during = []

    def look(event, trainer):
        if isinstance(event, BatchEnd) and not during:
            during.append(open_run("r", tmp_path).status()["test_accuracy"])

    after = api.continue_run("r", 1, tmp_path, callbacks=[look], dataset=small_dataset)
    assert during == [None]  # no figure of the replaced weights while the new ones are trained
    assert after["test_accuracy"] is not None
    assert open_run("r", tmp_path).status()["test_accuracy"] == after["test_accuracy"]


def test_files_written_atomically_get_the_mode_an_open_would_give(tmp_path):
    """config.json, meta.json and the weights were written 0600 (mkstemp's mode), metrics.jsonl 0644:
    a dashboard and workers running as different users on one shared runs folder could not read
    each other's settings and weights."""
    import os
    import stat

    from signlab.fsutil import _UMASK

    run = create_run(TrainConfig(model="logreg", epochs=1), tmp_path, run_id="shared")
    expected = 0o666 & ~_UMASK
    for name in ("config.json", "meta.json"):
        assert stat.S_IMODE(os.stat(run.dir / name).st_mode) == expected, name


def test_a_resume_after_a_kill_before_the_epochs_record_claims_no_accuracy_of_another_epoch(tmp_path, small_dataset):
    """Killed after saving epoch 2's weights and before logging the epoch: the finished run reported
    epoch 1's validation accuracy beside epochs 2 (a reviewer read 52.47% from the wrong weights).
    Unknown is said as unknown; the test accuracy is measured on the weights."""
    import time

    from signlab.store import runs_table

    cfg = TrainConfig(model="logreg", epochs=2, batch_size=200, augment=False, device="cpu")
    api.train(cfg, tmp_path, run_id="u", dataset=small_dataset)
    run = open_run("u", tmp_path)
    first = [m for m in run.metrics() if m["type"] == "epoch"][0]
    lines = (run.dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run.dir / "metrics.jsonl").write_text("".join(
        line for line in lines if json.loads(line).get("type") not in ("epoch", "fit_end")
        or json.loads(line).get("epoch") == 1))  # epoch 2's record never written
    with run.store._tx() as conn:
        conn.execute(runs_table.update().where(runs_table.c.run_id == "u").values(
            state="running", epochs_completed=1, target_epochs=2, worker="dead", attempt=1,
            lease_until=time.time() - 10, info=json.dumps({"val_accuracy": first["val_accuracy"]})))
    rec = api.continue_run("u", 1, tmp_path, dataset=small_dataset)
    assert rec["epochs"] == 2 and "nothing was left to train" in rec["message"]
    assert rec["val_accuracy"] is None and run.status()["val_accuracy"] is None
    assert isinstance(rec["test_accuracy"], float) and run.status()["test_accuracy"] == rec["test_accuracy"]


def test_a_holder_that_lost_its_run_writes_no_weights_at_its_epochs_end(tmp_path):
    """A holder stalled past its lease (SIGSTOP, a laptop asleep) while another process took its run
    learnt of it only at its next heartbeat, up to seconds later: an epoch ending in between wrote
    its weights over those of the new holder. The store is asked before the weights are written."""
    import time
    from types import SimpleNamespace

    from signlab.events import EpochEnd
    from signlab.runs import RunWriter
    from signlab.store import Heartbeat

    run = create_run(TrainConfig(model="logreg", epochs=2), tmp_path, run_id="taken")
    claim = run.store.claim("stalled", 1)
    run.store.update(claim, RunState.RUNNING)
    with Heartbeat(run.store, claim, interval=3600) as lease:  # its beats are late: the lease runs out
        run.store.expire_leases(time.time() + 600)
        assert run.store.claim("new-holder", 1, run_id="taken") is not None
        stopped = []
        writer = RunWriter(run, claim, lease)
        writer(EpochEnd(1, 1.0, 0.5, 1.0, 0.5, 1.0, 1.0, 100.0), SimpleNamespace(stop=lambda *a: stopped.append(a)))
    assert stopped and writer.lost and not (run.dir / "model.safetensors").exists()
    assert run.status()["worker"] == "new-holder"


def test_a_file_system_without_modes_still_takes_atomic_writes(tmp_path, monkeypatch):
    """Setting the mode of the temporary file (0644, not mkstemp's 0600) raised on file systems that
    have none (some FUSE and CIFS mounts), which made every write of a run a storage error."""
    import os

    from signlab.fsutil import atomic_write_json, read_json

    def refuse(fd, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    atomic_write_json(tmp_path / "x.json", {"a": 1})
    assert read_json(tmp_path / "x.json") == {"a": 1}


def _worker_continues(run, monkeypatch, step: str, failing, error: type[BaseException]) -> dict:
    """A page's Continue of ``run``, queued and claimed by a worker whose ``api.<step>`` is ``failing``
    (it raises ``error``): the run's row after the worker's attempt."""
    run.store.enqueue_continue(run.id, 2)
    claim = run.store.claim("worker-1", 1)
    monkeypatch.setattr(api, step, failing)
    with pytest.raises(error):
        api.train_claimed(run, claim)
    return run.status()


def test_a_continuation_that_cannot_start_leaves_the_finished_run_as_it_was(tmp_path, small_dataset, monkeypatch):
    """A continuation that could not start (its data gone from the worker's machine, its weights torn)
    failed the run: a completed run, its epochs and test accuracy standing, read "failed". Nothing of
    the continuation ran, so the run goes back to what it was, its words saying why the continuation
    could not start; the same from a queued continuation (a page's Continue) and `train --resume`."""
    from signlab.errors import DataError

    cfg = TrainConfig(model="logreg", epochs=1, max_steps=3, augment=False, device="cpu")
    api.train(cfg, tmp_path, run_id="kept", dataset=small_dataset)
    run = open_run("kept", tmp_path)
    run.store.annotate("kept", test_accuracy=0.5)
    before = run.status()
    assert before["status"] == RunState.COMPLETED

    # a page's Continue: queued, then a worker claims it and finds no data
    def gone(path):
        raise DataError("train.csv: no such file")

    row = _worker_continues(run, monkeypatch, "load_dataset", gone, DataError)
    assert row["status"] == RunState.COMPLETED, row
    assert row["message"] == f"{before['message']}; its continuation could not start: train.csv: no such file"
    assert row["epochs_completed"] == 1 and row["target_epochs"] == 1 and row["test_accuracy"] == 0.5
    assert run.config.epochs == 1 and row["worker"] is None
    # and it can be continued once the data is back
    monkeypatch.undo()
    assert api.continue_run("kept", 1, tmp_path, dataset=small_dataset, max_steps=2)["status"] == "completed"
    assert run.epochs_completed() == 2

    # train --resume: the weights found torn once the run is claimed (torn between the check and the read)
    stopped = run.status()

    def torn(self):
        raise RunError("model.safetensors is torn")

    monkeypatch.setattr(Run, "training_state", torn)
    with pytest.raises(RunError):
        api.continue_run("kept", 1, tmp_path, dataset=small_dataset)
    row = run.status()
    assert row["status"] == RunState.COMPLETED and row["epochs_completed"] == 2, row
    assert row["message"] == f"{stopped['message']}; its continuation could not start: model.safetensors is torn"
    # a fresh run that cannot start still fails
    fresh, claim = create_held_run(cfg, "worker-2", tmp_path, run_id="fresh")
    monkeypatch.setattr(api, "load_dataset", gone)
    with pytest.raises(DataError):
        api.train_claimed(fresh, claim)
    assert fresh.status()["status"] == RunState.FAILED
    assert fresh.status()["message"] == "train.csv: no such file"


def test_a_continuation_whose_fit_cannot_be_built_keeps_the_run_and_its_settings(tmp_path, small_dataset, monkeypatch):
    """Two of a review's findings. A queued continuation out of memory on the device (or whose model
    would not take its weights) turned a completed run into a failed one: the fit's own failure path
    set FAILED where every check before it gave the run back. And `train --resume --lr 0.5` wrote the
    new rate into config.json before the continuation could start, so a refused one left a completed
    run with settings it never trained with. Now both give the run back as it was, settings too; the
    settings are written once the fit is built. A fresh run whose fit cannot be built still fails, and
    its log says so (a folder read without the database read "interrupted")."""
    cfg = TrainConfig(model="logreg", epochs=1, max_steps=3, augment=False, device="cpu", lr=1e-3)
    api.train(cfg, tmp_path, run_id="kept", dataset=small_dataset)
    run = open_run("kept", tmp_path)
    before = run.status()

    def no_room(config):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(api, "build_model", no_room)
    with pytest.raises(RunError, match="out of memory"):
        api.continue_run("kept", 2, tmp_path, dataset=small_dataset, lr=0.5)
    row = run.status()
    assert row["status"] == RunState.COMPLETED and row["epochs_completed"] == 1, row
    assert row["message"].startswith(f"{before['message']}; its continuation could not start: out of memory")
    assert run.config.lr == 1e-3 and run.config.epochs == 1  # neither the rate nor the epochs were written

    def broken(config):
        raise RuntimeError("size mismatch for layer.weight")

    row = _worker_continues(run, monkeypatch, "build_model", broken, RuntimeError)  # a page's Continue
    assert row["status"] == RunState.COMPLETED and run.config.epochs == 1, row
    assert "its continuation could not start: RuntimeError: size mismatch" in row["message"]

    monkeypatch.undo()  # once it can be built, the continuation trains and writes its settings
    assert api.continue_run("kept", 1, tmp_path, dataset=small_dataset, lr=0.5, max_steps=2)["status"] == "completed"
    assert run.config.lr == 0.5 and run.config.epochs == 2 and run.epochs_completed() == 2

    fresh, claim = create_held_run(cfg, "worker-2", tmp_path, run_id="fresh")
    monkeypatch.setattr(api, "build_model", broken)
    with pytest.raises(RuntimeError):
        api.train_claimed(fresh, claim, dataset=small_dataset)
    assert fresh.status()["status"] == RunState.FAILED
    assert [m["status"] for m in fresh.metrics() if m["type"] == "fit_end"] == ["failed"]
