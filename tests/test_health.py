"""The health statistics (signlab.health): dead-unit shares that constructed networks make known,
clipped logits of the lecture ConvNet, and the records a real (tiny) training run writes."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from signlab import api, figures, health
from signlab.config import TrainConfig
from signlab.models import LectureConvNet, model_names
from signlab.runs import open_run


def test_dead_share_of_a_constructed_layer():
    # 8 units: the last 3 get a bias so negative that they never fire -> 3/8 dead on any batch
    layer = nn.Linear(4, 8)
    with torch.no_grad():
        layer.weight.fill_(0.1)
        layer.bias[:5] = 10.0
        layer.bias[5:] = -100.0
    out = torch.relu(layer(torch.rand(16, 4)))  # (B, 8)
    assert health.dead_share(out) == 3 / 8


def test_dead_share_counts_channels_of_a_convolution():
    out = torch.zeros(4, 5, 6, 6)  # (B, C, H, W): only channels 0 and 3 fire, once each
    out[2, 0, 1, 1] = 1.0
    out[0, 3, 5, 5] = 0.5
    assert health.dead_share(out) == 3 / 5


def test_clipped_share():
    z = torch.tensor([[1.0, -1.0, 0.0, 2.0]])
    assert health.clipped_share(z) == 0.5


def _fake_trainer(model: nn.Module, log_every: int = 1):
    class T:  # what HealthMonitor reads of a Trainer
        pass

    t = T()
    t.model, t.step, t.steps_per_epoch = model, 0, 100
    t.cfg = TrainConfig(model="mlp", log_every=log_every)
    return t


def test_monitor_on_a_constructed_network_reports_the_known_dead_share_and_norms():
    from signlab.trainer import BatchEnd, FitEnd, FitStart

    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        net[0].bias[:6] = 5.0
        net[0].bias[6:] = -100.0  # 2 of 8 units dead
    records: list[dict] = []
    mon = health.HealthMonitor(records.append)
    t = _fake_trainer(net)
    mon(FitStart(1, 0, 100, 10, 10, "cpu", 1), t)
    net.train()
    loss = net(torch.rand(8, 4)).sum()
    loss.backward()
    t.step = 1
    mon(BatchEnd(1, 1, loss.item(), 1e-3, 1.0, 0.1, 0.01), t)
    mon(FitEnd("completed", "", 1, 1, 0.1, 1.0, None), t)
    assert len(records) == 1
    rec = records[0]
    assert rec["type"] == "health" and rec["step"] == 1
    assert rec["dead"] == {"1": 0.25}
    assert set(rec["layers"]) == {"0", "2"}
    for name, m in (("0", net[0]), ("2", net[2])):
        assert abs(rec["layers"][name]["weight_norm"] - float(m.weight.detach().norm())) < 1e-3
        assert abs(rec["layers"][name]["grad_norm"] - float(m.weight.grad.norm())) < 1e-3
    assert "dead_logits" not in rec
    assert not net[1]._forward_hooks  # hooks removed at the end


def test_monitor_measures_only_logged_batches():
    from signlab.trainer import BatchEnd, FitStart

    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    records: list[dict] = []
    mon = health.HealthMonitor(records.append)
    t = _fake_trainer(net, log_every=5)
    mon(FitStart(1, 0, 100, 10, 10, "cpu", 1), t)
    net.train()
    net(torch.rand(3, 4))  # step 1 of 5: not logged, so not measured
    assert mon._dead == {}
    t.step = 4
    net(torch.rand(3, 4))  # the forward pass of step 5: logged
    assert "1" in mon._dead
    mon(BatchEnd(5, 1, 0.0, 1e-3, 1.0, 0.1, 0.05), t)
    assert records and mon._dead == {}


def test_lecture_convnet_clipped_logits_are_recorded():
    from signlab.trainer import BatchEnd, FitStart

    torch.manual_seed(0)
    net = LectureConvNet(output_relu=True)
    with torch.no_grad():
        net.classifier.bias[:12] = -1e3  # half the letters' scores always clipped
        net.classifier.bias[12:] = 1e3
    records: list[dict] = []
    mon = health.HealthMonitor(records.append)
    t = _fake_trainer(net)
    mon(FitStart(1, 0, 100, 10, 10, "cpu", 1), t)
    net.train()
    net(torch.randn(4, 1, 28, 28)).sum().backward()
    t.step = 1
    mon(BatchEnd(1, 1, 0.0, 1e-3, 1.0, 0.1, 0.01), t)
    assert records[0]["dead_logits"] == 0.5
    assert set(records[0]["dead"]) == {"features.2", "features.5", "features.8"}


def test_a_training_run_records_health_and_the_chart_draws_it(tmp_path, small_dataset):
    cfg = TrainConfig(model="seed_convnet", epochs=1, max_steps=12, batch_size=32, log_every=4, augment=False,
                      precision="fp32")
    rec = api.train(cfg, tmp_path, run_id="h", dataset=small_dataset, evaluate_test=False)
    recs = health.health_records(open_run(rec["run_id"], tmp_path).metrics())
    assert [r["step"] for r in recs] == [4, 8, 12]
    for r in recs:
        assert set(r["layers"]) == {"features.0", "features.3", "features.6", "classifier"}
        assert all(v["grad_norm"] >= 0 and v["weight_norm"] > 0 for v in r["layers"].values())
        assert all(0 <= v <= 1 for v in r["dead"].values())
        assert 0 <= r["dead_logits"] <= 1
    series = health.health_series(recs)
    assert series["steps"] == [4, 8, 12] and len(series["grad"]["classifier"]) == 3
    fig = figures.health_charts(series)
    assert any(tr.name == "clipped logits" for tr in fig.data)
    # log axes write every tick out (plotly's default wrote "2" above "10" and "5 2 1 5 2 0.1")
    assert fig.layout.yaxis.tickformat == "~g" and fig.layout.yaxis2.tickformat == "~g"
    titles = [a.text for a in fig.layout.annotations]
    assert "Dead ReLU units (%)" in titles
    # two panels a row at 170 px each on a phone: every title in about 24 characters (a longer one ran
    # into its neighbour's)
    assert "Scores clipped to 0 (%)" in titles and max(len(t) for t in titles) <= 24, titles
    no_relu = figures.health_charts({**series, "dead": {}})
    assert "No ReLU in this model" in [a.text for a in no_relu.layout.annotations]
    # logistic regression: no ReLU and no clipped scores, so one row of two panels, not an empty third
    # panel's block of some 200 px
    linear = figures.health_charts({**series, "dead": {}, "dead_logits": None})
    assert [a.text for a in linear.layout.annotations] == ["Gradient size ‖∇W‖", "Weight size ‖W‖"]
    assert linear.layout.height < 400 and "yaxis3" not in linear.layout.to_plotly_json()
    # a frozen layer draws no line on the log axis; its legend entry says why
    frozen = figures.health_charts({**series, "grad": {**series["grad"], "whiten.conv": [0.0, 0.0, 0.0]},
                                    "weight": {**series["weight"], "whiten.conv": [1.0, 1.0, 1.0]}})
    names = [tr.name for tr in frozen.data]
    assert "whiten.conv (frozen: no gradient)" in names and "classifier" in names
    # the legend leaves the panels the width: in rows under the panels
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0  # the fourth panel is drawn
    no_logits = figures.health_charts({**series, "dead_logits": None})
    assert no_logits.layout.legend.orientation == "h" and no_logits.layout.legend.y < 0
    assert not any(tr.name == "clipped logits" for tr in no_logits.data)
    # a title has a line of its own above the panels' titles (it was drawn over "Gradient size")
    titled = figures.health_charts(series, title="Your lecture ConvNet's health")
    assert titled.layout.margin.t >= 80 > fig.layout.margin.t and titled.layout.height == fig.layout.height + 20
    # untitled, the panels' titles sit under the line plotly's toolbar takes (it covered "Weight size")
    assert fig.layout.margin.t >= 60 and linear.layout.margin.t >= 60


@pytest.mark.parametrize("name", model_names())
def test_every_recorded_layer_has_a_name_a_student_reads(name):
    """The legend read "features.0.0" and "ReLU features.2.2"; the Kernels page calls the same layer
    "conv 2 (features.0.0)". Every layer a health record names gets a label counted the same way."""
    from signlab.config import TrainConfig
    from signlab.kernels import conv_layer_info
    from signlab.models import build_model
    from signlab.views import health_labels

    model = build_model(TrainConfig(model=name))
    net = health.first_network(model)
    labels = health_labels(TrainConfig(model=name))
    recorded = [n for n, _ in health.weight_layers(net)] + [n for n, _ in health.relu_layers(net)]
    assert recorded and all(n in labels and labels[n].endswith(f"({n})") for n in recorded), (recorded, labels)
    for conv in conv_layer_info(model):  # as the Kernels page numbers them
        assert labels[conv["name"].removeprefix("members.0.")].startswith(f"conv {conv['position']} ("), conv
    fig = figures.health_charts({"steps": [1], "grad": {n: [1.0] for n, _ in health.weight_layers(net)},
                                 "weight": {n: [1.0] for n, _ in health.weight_layers(net)},
                                 "dead": {n: [0.0] for n, _ in health.relu_layers(net)}, "dead_logits": None},
                                labels=labels)
    assert {tr.name for tr in fig.data if tr.showlegend is not False} <= set(labels.values())


def test_a_continued_runs_health_goes_on_after_its_first_fit():
    """After Continue, the health charts zig-zagged: the records were sorted by step, and the new
    fit's steps count from 1 again, so 10, 10, 20, 20, ... drew back and forth between two fits."""
    log = [{"type": "health", "step": s, "layers": {"fc": {"grad_norm": g, "weight_norm": 1.0}}}
           for s, g in [(4, 1.0), (8, 0.5), (12, 0.25), (4, 0.2), (8, 0.1)]]  # a second fit from step 4
    log.insert(2, {"type": "batch", "step": 8, "loss": 1.0})
    recs = health.health_records(log)
    assert [r["step"] for r in recs] == [4, 8, 12, 16, 20]
    assert health.health_series(recs)["grad"]["fc"] == [1.0, 0.5, 0.25, 0.2, 0.1]


def test_a_panel_of_no_dead_units_says_so():
    """Eleven lines flat at 0 on a 0-100% axis read as an empty panel: it says none are dead."""
    series = {"steps": [10, 20], "grad": {"fc": [1.0, 0.5]}, "weight": {"fc": [1.0, 1.1]},
              "dead": {"relu1": [0.0, 0.0], "relu2": [0.0, None]}, "dead_logits": None}
    said = [a.text for a in figures.health_charts(series).layout.annotations]
    assert any(t.startswith("none dead: every unit fired") for t in said), said
    some = {**series, "dead": {"relu1": [0.0, 0.02]}}
    assert not any("none dead" in a.text for a in figures.health_charts(some).layout.annotations)


def test_without_a_fourth_panel_the_dead_units_span_the_row_and_the_legend_runs_under():
    """On a phone the legend sat in the empty fourth cell, some 210 px wide against two cells of 170,
    and plotly squeezed every panel to about 70 px to make room for it. And in a tall panel plotly
    wrote every digit of a log axis in full, "0.9" to "0.6" on top of one another."""
    layers = {f"conv{i}": [2.0 ** -i, 2.0 ** -(i + 1)] for i in range(7)}
    series = {"steps": [10, 20], "grad": layers, "weight": {n: [1.0, 30.0] for n in layers},
              "dead": {f"relu{i}": [0.1, 0.2] for i in range(5)}, "dead_logits": None}
    fig = figures.health_charts(series)
    assert list(fig.layout.xaxis3.domain) == [0.0, 1.0], fig.layout.xaxis3.domain  # the whole row
    assert "xaxis4" not in fig.layout.to_plotly_json()
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0 and fig.layout.legend.x == 0
    # room for the twelve entries in rows of two, with no gap between them (plotly's 10 px between
    # legend groups, one group a layer, took 320 px of a phone's panels: titles ran into the ticks above)
    assert fig.layout.height >= 560 + 20 * 6 and fig.layout.legend.tracegroupgap == 0
    assert fig.layout.yaxis.dtick == "D2" and fig.layout.yaxis2.dtick == "D2"
    wide = {**series, "grad": {"conv0": [1e-6, 10.0]}}  # seven powers of ten: plotly's own ticks
    assert figures.health_charts(wide).layout.yaxis.dtick is None


def test_a_size_panel_whose_values_hold_one_tick_still_gets_a_scale():
    """A logistic regression's weights after its first epoch ran from 3.2 to 8: on a log axis with ticks
    at 1, 2 and 5 its panel had one tick ("5") and read as having no scale. Every digit where 1, 2 and
    5 leave under three, and a linear axis (plotly's own ticks) where even the digits leave one."""
    def axes(grad, weight):
        layout = figures.health_charts({"steps": [10, 20], "grad": {"linear": grad}, "weight": {"linear": weight},
                                        "dead": {}, "dead_logits": None}).layout
        return [(a.type, a.dtick) for a in (layout.yaxis, layout.yaxis2)]

    assert axes([0.01, 0.5], [1.2, 1.8]) == [("log", "D2"), ("linear", None)]  # 1.2-1.8: no digit between
    assert axes([3.2, 8.0], [0.3, 0.9]) == [("log", "D1"), ("log", "D1")]  # 5 alone: 4 to 8; 0.5 alone: 0.3 to 0.9
    assert axes([1e-5, 1.0], [1.0, 30.0]) == [("log", None), ("log", "D2")]  # 1, 2, 5, 10, 20
