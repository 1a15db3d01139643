"""``precision auto`` on a CPU: bf16 only where it measures faster for the network being trained."""
from __future__ import annotations

import json

import pytest
import torch

import signlab.device as device
import signlab.trainer as trainer_module
from signlab.config import TrainConfig
from signlab.models import build_model
from signlab.trainer import FitStart, Trainer, measure_precision


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    """No verdict carried in from another test or from this machine's cache folder."""
    monkeypatch.setattr(device, "_MEASURED", {})
    monkeypatch.setenv("SIGNLAB_CACHE", str(tmp_path / "cache"))


def _net_and_batch(model: str = "s2net", batch: int = 16):
    net = build_model(TrainConfig(model=model)).to(memory_format=torch.channels_last)
    return net, torch.rand(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)


def _fake_times(monkeypatch, bf16_ms: float, fp32_ms: float) -> list[bool]:
    calls: list[bool] = []

    def step_ms(model, x, bf16):
        calls.append(bf16)
        return bf16_ms if bf16 else fp32_ms

    monkeypatch.setattr(device, "_step_ms", step_ms)
    return calls


@pytest.mark.parametrize("bf16_ms, fp32_ms, expected", [(10.0, 12.0, True), (12.0, 10.0, False), (10.0, 10.0, False),
                                                       (9.6, 10.0, False), (9.4, 10.0, True)])
def test_the_faster_precision_wins(monkeypatch, tmp_path, bf16_ms, fp32_ms, expected):
    calls = _fake_times(monkeypatch, bf16_ms, fp32_ms)
    verdict = device.bf16_measured_faster(*_net_and_batch(), repeats=4, cache=tmp_path / "p.json")
    assert verdict == {"bf16": expected, "bf16_ms": bf16_ms, "fp32_ms": fp32_ms}
    assert calls.count(True) == calls.count(False) == 3 + 4  # warm-ups and repeats, both alike
    assert calls[:2] == [False, True] and calls[2:4] == [True, False]  # alternating which goes first


def test_a_verdict_is_measured_once_per_machine_network_and_batch(monkeypatch, tmp_path):
    cache = tmp_path / "p.json"
    calls = _fake_times(monkeypatch, 12.0, 10.0)
    net, x = _net_and_batch()
    assert device.bf16_measured_faster(net, x, cache=cache)["bf16"] is False
    measured = len(calls)
    saved = json.loads(cache.read_text())
    assert list(saved.values()) == [{"bf16": False, "bf16_ms": 12.0, "fp32_ms": 10.0}]
    device._MEASURED.clear()  # a new process: the file answers
    assert device.bf16_measured_faster(net, x, cache=cache)["bf16"] is False
    assert len(calls) == measured
    # another width, another batch size or another memory layout is another question
    other_width = build_model(TrainConfig(model="s2net", width=32)).to(memory_format=torch.channels_last)
    keys = {device.precision_key(net, x), device.precision_key(other_width, x),
            device.precision_key(net, torch.rand(32, 1, 28, 28).contiguous(memory_format=torch.channels_last)),
            device.precision_key(build_model(TrainConfig(model="s2net")), torch.rand(16, 1, 28, 28))}
    assert len(keys) == 4


def test_an_unreadable_or_unwritable_cache_costs_a_measurement_not_the_run(monkeypatch, tmp_path):
    calls = _fake_times(monkeypatch, 10.0, 12.0)
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    assert device.bf16_measured_faster(*_net_and_batch(), repeats=2, cache=bad)["bf16"] is True
    assert calls
    blocked = tmp_path / "file" / "p.json"  # its folder is a file: cannot be written
    (tmp_path / "file").write_text("")
    device._MEASURED.clear()
    assert device.bf16_measured_faster(*_net_and_batch(), repeats=2, cache=blocked)["bf16"] is True


def test_measuring_leaves_the_model_and_the_random_numbers_alone():
    net, x = _net_and_batch("fastcnn")  # batch norm and dropout
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    verdict = device.bf16_measured_faster(net, x, repeats=2)
    assert set(verdict) == {"bf16", "bf16_ms", "fp32_ms"} and verdict["bf16_ms"] > 0 and verdict["fp32_ms"] > 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # running statistics too
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_the_trainer_asks_only_for_auto_on_a_cpu_with_native_bf16(monkeypatch, small_dataset):
    asked: list[tuple[int, ...]] = []

    def measured(model, example, **kw):
        asked.append(tuple(example.shape))
        assert example.is_contiguous(memory_format=torch.channels_last)
        return {"bf16": False, "bf16_ms": 2.0, "fp32_ms": 1.0}

    monkeypatch.setattr(trainer_module, "bf16_measured_faster", measured)
    monkeypatch.setattr(trainer_module, "native_cpu_bf16", lambda: True)
    monkeypatch.setattr(device, "native_cpu_bf16", lambda: True)
    events = []

    def trainer(precision):
        cfg = TrainConfig(model="fastcnn", width=8, device="cpu", batch_size=50, max_steps=2, precision=precision)
        return Trainer(cfg, build_model(cfg), small_dataset, [lambda e, t: events.append(e)])

    t = trainer("auto")
    assert asked == [(50, 1, 28, 28)] and t._autocast is False
    t.fit()
    n = torch.get_num_threads()
    assert [e.device for e in events if isinstance(e, FitStart)] == [f"CPU ({n} thread{'' if n == 1 else 's'})"]
    assert trainer("bf16")._autocast is True and trainer("fp32")._autocast is False
    assert len(asked) == 1  # a precision asked for is never measured
    monkeypatch.setattr(trainer_module, "native_cpu_bf16", lambda: False)
    monkeypatch.setattr(device, "native_cpu_bf16", lambda: False)
    assert trainer("auto")._autocast is False and len(asked) == 1  # emulated bf16 is never a candidate
    events.clear()
    t = trainer("bf16")
    t.fit()
    assert [e.device for e in events if isinstance(e, FitStart)][0].endswith(" in bf16")


def test_the_warm_worker_and_the_benchmark_ask_the_question_the_trainer_asks(monkeypatch, small_dataset):
    """measure_precision from a throwaway model and a blank batch (the worker's warm-up, the
    benchmark) settles the same verdict the trainer then reads: nothing is measured twice."""
    if not device.native_cpu_bf16():
        monkeypatch.setattr(trainer_module, "native_cpu_bf16", lambda: True)
    calls = _fake_times(monkeypatch, 12.0, 10.0)
    cfg = TrainConfig(model="s2net", width=8, device="cpu", batch_size=32, max_steps=1)
    assert measure_precision(cfg, build_model(cfg), torch.zeros(32, 1, 28, 28))["bf16"] is False
    measured = len(calls)
    assert Trainer(cfg, build_model(cfg), small_dataset)._autocast is False
    assert len(calls) == measured
    assert measure_precision(cfg.replace(precision="fp32"), build_model(cfg), torch.zeros(32, 1, 28, 28)) is None


def test_the_fastest_passes_decide_not_a_burst_of_other_work(monkeypatch, tmp_path):
    """Other work on the machine only adds time: fp32 passes slowed by it (the browser drawing a
    page) must not make a slower bf16 look faster."""
    fp32_seen = 0

    def step_ms(model, x, bf16):  # bf16 costs 12 ms, fp32 10 ms, but 2 of every 3 fp32 passes are slowed to 30
        nonlocal fp32_seen
        if bf16:
            return 12.0
        fp32_seen += 1
        return 10.0 if fp32_seen % 3 == 0 else 30.0

    monkeypatch.setattr(device, "_step_ms", step_ms)
    verdict = device.bf16_measured_faster(*_net_and_batch(), repeats=9, cache=tmp_path / "p.json")
    assert verdict == {"bf16": False, "bf16_ms": 12.0, "fp32_ms": 10.0}  # the medians would read 12 against 30


def test_a_large_network_is_timed_within_a_budget(monkeypatch, tmp_path):
    """Passes of half a second (an ensemble on one thread) stop once the budget is spent, after
    the fewest timed passes; small networks take every repeat (the test above)."""
    calls = _fake_times(monkeypatch, 500.0, 450.0)
    verdict = device.bf16_measured_faster(*_net_and_batch(), repeats=12, cache=tmp_path / "p.json", budget_ms=1500)
    assert len(calls) == 2 * (3 + device.MIN_TIMED)
    assert verdict["bf16"] is False
    device._MEASURED.clear()
    calls.clear()
    device.bf16_measured_faster(*_net_and_batch(), repeats=12, cache=tmp_path / "q.json", budget_ms=1e9)
    assert len(calls) == 2 * (3 + 12)


def test_auto_precision_on_a_gpu_asks_for_native_bf16(monkeypatch):
    """torch.cuda.is_bf16_supported() counts emulation by default: on a T4 (compute 7.5) "auto" trained
    in emulated, slow bf16. Only native bf16 counts."""
    import torch

    from signlab.device import use_bf16

    asked = []

    def supported(including_emulation=True):
        asked.append(including_emulation)
        return including_emulation  # a T4: emulated only

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert use_bf16("auto", torch.device("cuda")) is False and asked == [False]
    assert use_bf16("bf16", torch.device("cuda")) is True
