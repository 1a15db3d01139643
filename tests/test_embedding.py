"""The feature-space map (signlab.embedding), the parallel-coordinates brush (signlab.compare) and
the figures drawn from them: shapes, layers, the cache in the run folder, and brush filtering."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from signlab import compare, embedding, figures
from signlab.data import Split
from signlab.models import create_model


@pytest.fixture(scope="module")
def tiny_test(dataset) -> Split:
    return Split(images=dataset.test.images[:120], targets=dataset.test.targets[:120], source="test")


@pytest.mark.parametrize("name, default, has", [
    ("logreg", "pixels", {"pixels", "logits"}),
    ("mlp", "hidden", {"pixels", "net.2", "hidden", "logits"}),
    ("seed_convnet", "hidden", {"pixels", "features.2", "features.5", "hidden", "logits"}),
    ("fastcnn", "hidden", {"pixels", "hidden", "logits"}),
])
def test_map_layers_and_default(name, default, has):
    model = create_model(name)
    keys = [layer.key for layer in embedding.map_layers(model)]
    assert has <= set(keys) and keys[0] == "pixels" and keys[-1] == "logits"
    assert len(keys) == len(set(keys))
    assert embedding.default_layer(model) == default
    if name == "mlp":  # its last ReLU is the last hidden layer: listed once
        assert "net.5" not in keys
    if name == "seed_convnet":  # so is its last ReLU, on maps pooled to 1x1
        assert "features.8" not in keys


@pytest.mark.parametrize("layer, dims", [("pixels", 784), ("features.2", 100), ("hidden", 50), ("logits", 24)])
def test_activation_shapes(tiny_test, layer, dims):
    model = create_model("seed_convnet")
    feats, probs = embedding.activations(model, tiny_test.images, layer, batch_size=50)
    assert feats.shape == (120, dims) and probs.shape == (120, 24)
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    if layer == "logits":  # after the lecture's output ReLU: nothing negative
        assert feats.min() >= 0


def test_ensemble_maps_its_first_network_and_predicts_with_all(tiny_test):
    from signlab.predict import predict_logits, to_float_images

    torch.manual_seed(0)
    model = create_model("fastcnn", members=2).eval()
    feats, probs = embedding.activations(model, tiny_test.images, "hidden")
    assert feats.shape == (120, 64 * 9) and probs.shape == (120, 24)
    first = embedding.first_network(model)
    alone, _ = embedding.activations(first, tiny_test.images, "hidden")
    assert np.allclose(feats, alone, atol=1e-5)  # the features are the first member's
    every = torch.softmax(predict_logits(model, to_float_images(tiny_test.images)), 1).numpy()
    assert np.allclose(probs, every, atol=1e-4)  # the predictions are the whole ensemble's
    only_first = torch.softmax(predict_logits(first, to_float_images(tiny_test.images)), 1).numpy()
    assert not np.allclose(probs, only_first, atol=1e-4)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embed_shapes(method):
    x = np.random.default_rng(0).normal(size=(90, 60)).astype(np.float32)
    calls = []
    y = embedding.embed(x, method, progress=lambda f, t: calls.append(f))
    assert y.shape == (90, 2) and np.isfinite(y).all()
    # t-SNE reports its progress (from 0, never backwards, never full before it ends); PCA is instant
    assert (calls and calls[0] == 0.0 and calls == sorted(calls) and calls[-1] < 1) if method == "tsne" else not calls
    assert embedding.embed(x[:2], method).shape == (2, 2)  # too few points: no crash


def test_pca_puts_separated_classes_apart():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.1, (40, 10)), rng.normal(5, 0.1, (40, 10))
    y = embedding.embed(np.vstack([a, b]), "pca")
    assert abs(y[:40, 0].mean() - y[40:, 0].mean()) > 5


def test_run_map_is_cached_per_layer_and_method_until_the_weights_change(tmp_path, small_dataset, tiny_test):
    import os

    from signlab import api
    from signlab.config import TrainConfig
    from signlab.runs import open_run

    rec = api.train(TrainConfig(model="mlp", epochs=1, max_steps=5, augment=False), tmp_path, run_id="m",
                    dataset=small_dataset, evaluate_test=False)
    run = open_run(rec["run_id"], tmp_path)
    fm = embedding.run_map(run, tiny_test, method="pca")
    assert fm.coords.shape == (120, 2) and fm.layer == "hidden" and fm.dims == 128 and not fm.cached
    assert embedding.cache_path(run, "hidden", "pca").is_file()
    again = embedding.run_map(run, tiny_test, method="pca")
    assert again.cached and np.allclose(again.coords, fm.coords)
    assert np.array_equal(again.y_pred, fm.y_pred)
    assert np.array_equal(again.probs, fm.probs)  # the same figure whether computed or read back
    # another test set of the same size (a server restarted with another SIGNLAB_DATA): the map was
    # served for it, the new images drawn under the old letters
    other = Split(images=tiny_test.images[::-1].copy(), targets=tiny_test.targets[::-1].copy(), source="other")
    assert embedding.cached_map(run, "hidden", "pca", other) is None
    theirs = embedding.run_map(run, other, method="pca", keep=False)
    assert not theirs.cached and np.array_equal(theirs.y_true, other.targets)
    assert embedding.cached_map(run, "hidden", "pca", tiny_test).cached  # the first map still serves its own
    assert embedding.cached_map(run, "pixels", "pca", tiny_test) is None  # another layer: not cached yet
    w = run.dir / "model.safetensors"
    os.utime(w, (w.stat().st_atime, w.stat().st_mtime + 10))  # newer weights: the cache is stale
    assert embedding.cached_map(run, "hidden", "pca", tiny_test) is None
    s = embedding.map_summary(fm)
    assert s["points"] == 120 and 0 <= s["wrong"] <= 120
    from signlab import views

    said = views.map_caption(fm, "pca")
    assert said.startswith(f"120 test images, {s['wrong']} misclassified (ringed)") and said.endswith(".")
    assert "embedded with" in said and ("in " in said or "computed once" in said)


def test_a_shared_model_gives_each_caller_only_its_own_activations(tiny_test):
    """The dashboard caches one model for every session: a classmate's forward pass made while a
    map is being computed must not land in that map (it once had 18,436 rows for 7,172 images)."""
    import threading

    from signlab.calibrate import _features
    from signlab.inference import feature_maps, saliency_map

    model = create_model("seed_convnet").eval()
    alone, _ = embedding.activations(model, tiny_test.images, "hidden", batch_size=40)

    def classmate(*_args) -> None:  # another session's passes, made while ours is under way
        t = threading.Thread(target=lambda: (feature_maps(model, tiny_test.images[0]),
                                             saliency_map(model, tiny_test.images[1], 3),
                                             model(torch.zeros(7, 1, 28, 28))))
        t.start()
        t.join()

    shared, probs = embedding.activations(model, tiny_test.images, "hidden", batch_size=40, progress=classmate)
    assert shared.shape == (120, 50) and probs.shape == (120, 24)
    assert np.allclose(shared, alone, atol=1e-5)
    # the same for the feature maps and the calibration's features, with passes running beside them
    stop = threading.Event()
    busy = threading.Thread(target=lambda: [model(torch.zeros(3, 1, 28, 28)) for _ in iter(stop.is_set, True)])
    busy.start()
    try:
        for _ in range(20):
            maps = feature_maps(model, tiny_test.images[0])
            assert [name for name, _ in maps] == ["features.0", "features.3", "features.6"]
            assert _features(model, torch.zeros(5, 1, 28, 28)).shape == (5, 50)
    finally:
        stop.set()
        busy.join()


def test_the_map_predicts_as_evaluate_does_with_test_time_shifts(tiny_test):
    """The fast preset's model averages its image with four shifted copies; the Map once predicted
    from the image alone and ringed other mistakes than Evaluate counted."""
    from signlab.inference import predict

    model = create_model("s2net", tta=True).eval()
    feats, probs = embedding.activations(model, tiny_test.images, "hidden", batch_size=50)
    assert feats.shape == (120, 576)  # one row per image: the shifted passes are not kept
    np.testing.assert_allclose(probs, predict(model, tiny_test.images / 255.0), atol=1e-4)
    plain = create_model("s2net").eval()
    plain.load_state_dict(model.state_dict())
    alone, _ = embedding.activations(plain, tiny_test.images, "hidden", batch_size=50)
    np.testing.assert_allclose(feats, alone, atol=1e-5)  # the features are the image's own


def test_a_cached_map_that_does_not_fit_the_test_set_is_made_again(tmp_path, small_dataset, tiny_test):
    from signlab import api
    from signlab.config import TrainConfig
    from signlab.runs import open_run

    rec = api.train(TrainConfig(model="logreg", epochs=1, max_steps=3, augment=False), tmp_path, run_id="m",
                    dataset=small_dataset, evaluate_test=False)
    run = open_run(rec["run_id"], tmp_path)
    fm = embedding.run_map(run, tiny_test, method="pca")
    path = embedding.cache_path(run, fm.layer, "pca")
    with np.load(path) as z:
        arrays = dict(z)
    arrays["coords"] = np.vstack([arrays["coords"]] * 3)  # what the shared-model race once wrote
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    assert embedding.cached_map(run, fm.layer, "pca", tiny_test) is None
    again = embedding.run_map(run, tiny_test, method="pca")
    assert not again.cached and again.coords.shape == (120, 2)


def test_point_indices_and_spread_sample():
    pts = [{"customdata": 5}, {"customdata": [7]}, {"customdata": {"0": 9}}, {"customdata": None}, {}, {"customdata": 5}]
    assert embedding.point_indices(pts) == [5, 7, 9]
    coords = np.random.default_rng(0).uniform(size=(500, 2))
    chosen = embedding.spread_sample(coords, range(500), 20)
    assert len(chosen) <= 20 and len(set(chosen)) == len(chosen)
    assert embedding.spread_sample(coords, [1, 2, 3], 20) == [1, 2, 3]


def test_feature_map_figure():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(50, 2))
    y = np.arange(50) % 24
    pred = y.copy()
    pred[:5] = (pred[:5] + 1) % 24
    fig = figures.feature_map(coords, y, pred, centres=embedding.class_centres(coords, y))
    letters = [t for t in fig.data if len(t.name) == 1]
    assert len(letters) == 24 and sum(len(t.customdata) for t in letters) == 50
    # a clicked point stands out of the faded rest (it stayed a 5-px dot: "hard to find")
    assert all(t.selected.marker.size >= 2 * t.marker.size and t.unselected.marker.opacity < t.marker.opacity
               for t in letters)
    wrong = [t for t in fig.data if t.name.startswith("misclassified")][0]
    assert sorted(wrong.customdata) == [0, 1, 2, 3, 4]
    # a weak model's rings fade: 35 of 50 wrong would otherwise paint the map black
    weak = figures.feature_map(coords, y, (y + (np.arange(50) < 35)) % 24)
    ring = lambda f: float([t for t in f.data if t.name.startswith("misclassified")][0].marker.color.split(",")[-1][:-1])
    assert ring(weak) <= 0.2 < 0.5 <= ring(fig)
    # a strong model's few mistakes are rings large and dark enough to find (24 of 7,172 were thin 7-px ones)
    y_big = np.arange(1000) % 24
    strong = figures.feature_map(rng.normal(size=(1000, 2)), y_big, np.where(np.arange(1000) < 10, (y_big + 1) % 24, y_big))
    few = [t for t in strong.data if t.name.startswith("misclassified")][0]
    many = [t for t in fig.data if t.name.startswith("misclassified")][0]
    assert few.marker.size >= 12 > many.marker.size and few.marker.line.width > many.marker.line.width
    assert ring(strong) >= 0.8
    thumbs = [(coords[i, 0], coords[i, 1], rng.integers(0, 255, (28, 28))) for i in range(4)]
    fig = figures.feature_map(coords, y, pred, thumbnails=thumbs, zoom=((-1, 1), (-1, 1)))
    assert len(fig.layout.images) == 4 and tuple(fig.layout.xaxis.range) == (-1, 1)


# --------------------------------------------------------------------------- parallel coordinates
ROWS = [
    {"model": "logreg", "lr": 1e-3, "batch_size": 32, "augment": False, "epochs": 1, "accuracy": 70.0},
    {"model": "convnet", "lr": 3e-3, "batch_size": 128, "augment": True, "epochs": 1, "accuracy": 95.0},
    {"model": "fastcnn", "lr": 1e-2, "batch_size": 128, "augment": True, "epochs": 1, "accuracy": None},
]
COLS = [("model", "model"), ("lr", "learning rate"), ("batch_size", "batch"), ("augment", "augment"),
        ("epochs", "epochs"), ("accuracy", "accuracy (%)")]


def test_axes_kinds_and_values():
    ax = {a["key"]: a for a in compare.axes(ROWS, COLS)}
    assert "epochs" not in ax  # one value for every run: left out
    assert ax["model"]["kind"] == "category" and ax["model"]["ticktext"] == ["convnet", "fastcnn", "logreg"]
    assert ax["model"]["values"] == [2, 0, 1]
    assert ax["lr"]["kind"] == "log" and ax["lr"]["values"] == pytest.approx([-3, np.log10(3e-3), -2])
    assert ax["augment"]["ticktext"] == ["off", "on"]
    assert ax["accuracy"]["values"][2] is None
    # the log axis's ticks lie inside it, its ends labelled with their values: a tick rounded out
    # to the next power of ten was drawn above the chart, and the top run had no label
    assert ax["lr"]["tickvals"] == pytest.approx([-3, -2]) and ax["lr"]["ticktext"] == ["0.001", "0.01"]
    two = {a["key"]: a for a in compare.axes(ROWS[:2], COLS)}["lr"]
    assert two["tickvals"] == pytest.approx([-3, np.log10(3e-3)]) and two["ticktext"] == ["0.001", "0.003"]
    lo, hi = two["range"]
    assert all(lo <= t <= hi for t in two["tickvals"])
    assert compare.log_ticks(np.log10(2e-4), np.log10(0.05))[1] == ["0.0002", "0.001", "0.01", "0.05"]
    # a whole-number setting is ticked at its own values (batch 32 and 128, not 40, 60, ...), without
    # ticks so close that their labels overlap (1, 2, 3 and 50 epochs)
    assert ax["batch_size"]["tickvals"] == [32.0, 128.0] and ax["batch_size"]["ticktext"] == ["32", "128"]
    assert compare.spaced([1, 2, 3, 50]) == [1, 50] and compare.spaced([1, 2, 3]) == [1, 2, 3]
    # one learning rate on an axis kept anyway: its own value is the tick
    one = compare.axes([{"lr": 1e-3}, {"lr": 1e-3}], [("lr", "learning rate")], keep=("lr",))[0]
    assert one["ticktext"] == ["0.001"] and one["tickvals"] == pytest.approx([-3])
    fig = figures.parallel_coordinates(list(ax.values()), "accuracy")
    assert len(fig.data[0].dimensions) == 5
    # a fractional setting and the accuracy: their ends as the values they are and round numbers
    # between. Left to plotly, the weight decay's axis read "0" twice (its range label under the
    # axis beside its own bottom tick), and the accuracy's "70" twice
    wd = compare.axes([{"weight_decay": w} for w in (0.0, 1e-4, 5e-4)], [("weight_decay", "weight decay")])[0]
    assert wd["ticktext"] == ["0", "0.0002", "0.0004", "0.0005"] and wd["tickvals"][0] == 0.0
    assert compare.linear_ticks(68.15, 99.74, percent=True)[1] == ["68.15", "80", "90", "99.74"]
    assert compare.linear_ticks(99.6, 99.97, percent=True)[1] == ["99.6", "99.7", "99.8", "99.9", "99.97"]
    assert all(d.tickvals is not None for d in fig.data[0].dimensions)  # no range labels beside them
    # the best runs' lines are not drawn in a colour that vanishes on white (Viridis ends pale yellow)
    top = fig.data[0].line.colorscale[-1][1]
    r, g, b = (int(top.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    assert 0.2126 * r + 0.7152 * g + 0.0722 * b < 200, top  # luminance: '#fde725' is 223
    # no colour bar beside the accuracy axis that already reads the colour (a phone's width is too narrow)
    assert fig.data[0].line.showscale is False


def test_runs_that_share_every_setting_get_words_not_an_empty_chart():
    """Two fast runs with the same settings left one axis (the accuracy), padded to 94.7-104.7%,
    and no line at all; a shared accuracy is never drawn above 100%."""
    same = [{"model": "s2net", "lr": 3e-3, "accuracy": 99.74}, {"model": "s2net", "lr": 3e-3, "accuracy": 99.74}]
    ax = compare.axes(same, COLS)
    assert [a["key"] for a in ax] == ["accuracy"]
    fig = figures.parallel_coordinates(ax, "accuracy")
    assert not fig.data and "share every setting" in fig.layout.annotations[0].text
    assert "train runs with other settings to compare them" in fig.layout.annotations[0].text  # what to do
    two = compare.axes([{**same[0], "lr": 1e-3}, same[1]], COLS)
    fig = figures.parallel_coordinates(two, "accuracy")
    acc = [d for d in fig.data[0].dimensions if d.label == dict(COLS)["accuracy"]][0]
    assert acc.range[1] == 100.0 and acc.range[0] < 99.74


def test_the_axis_titles_of_nine_axes_stay_apart_on_a_phone():
    """At 390 px (358 for the chart) the Runs page's nine axes' titles, slanted at 30 degrees, ran into
    each other ("learning ratebatch size"), and 170 px of margins left the axes half the width. Titles
    rising steeply stay a line apart: the distance between two neighbours' slanted titles is the axes'
    spacing times the sine of the angle, and it must hold a 13-px line."""
    import math

    rows = [{"model": m, "optimizer": o, "schedule": s, "lr": lr, "batch_size": b, "weight_decay": wd,
             "augment": a, "epochs": e, "accuracy": acc}
            for m, o, s, lr, b, wd, a, e, acc in [("s2net", "adam", "onecycle", 1e-3, 32, 0.0, True, 1, 61.0),
                                                   ("logreg", "sgd", "constant", 4e-3, 128, 5e-4, False, 5, 97.1)]]
    from signlab.compare import RUN_COLUMNS

    fig = figures.parallel_coordinates(compare.axes(rows, RUN_COLUMNS), "accuracy")
    n = len(fig.data[0].dimensions)
    assert n == 9
    width = 358 - fig.layout.margin.l - fig.layout.margin.r
    gap = width / (n - 1) * math.sin(math.radians(abs(fig.data[0].labelangle)))
    assert gap >= fig.data[0].labelfont.size, (gap, fig.data[0].labelangle, fig.layout.margin)


def test_the_first_axis_keeps_room_for_its_longest_name():
    """The first axis's names lie left of it: at a 60-px margin "seed_convnet" read "ed_convnet"."""
    from signlab.compare import RUN_COLUMNS

    rows = [{"model": m, "lr": lr, "accuracy": acc} for m, lr, acc in [("seed_convnet", 1e-3, 51.0),
                                                                      ("s2net", 4e-3, 99.9)]]
    fig = figures.parallel_coordinates(compare.axes(rows, RUN_COLUMNS), "accuracy")
    first = fig.data[0].dimensions[0]
    assert "seed_convnet" in first.ticktext
    assert fig.layout.margin.l >= 6 * len("seed_convnet") + 10, fig.layout.margin
    short = [{"model": m, "lr": lr, "accuracy": acc} for m, lr, acc in [("mlp", 1e-3, 51.0), ("s2net", 4e-3, 99.9)]]
    assert figures.parallel_coordinates(compare.axes(short, RUN_COLUMNS), "accuracy").layout.margin.l == 60


def test_brush_filters_rows_and_draws_constraints():
    assert compare.apply_brush(ROWS, {}) == [0, 1, 2]
    assert compare.apply_brush(ROWS, {"accuracy": (80, 100)}) == [1]  # a missing value lies outside
    assert compare.apply_brush(ROWS, {"model": ["logreg", "fastcnn"]}) == [0, 2]
    assert compare.apply_brush(ROWS, {"lr": (2e-3, 1e-2), "batch_size": (100, 200)}) == [1, 2]
    ax = {a["key"]: a for a in compare.axes(ROWS, COLS, {"accuracy": (80, 100), "model": ["logreg"]})}
    lo, hi = ax["accuracy"]["constraint"]
    assert lo < 80 and hi > 100 and hi - lo < 35
    assert ax["model"]["constraint"] == [[1.6, 2.4]]
    fig = figures.parallel_coordinates(list(ax.values()), "accuracy")
    assert [d.constraintrange for d in fig.data[0].dimensions if d.label == "model"][0] == ((1.6, 2.4),)


def test_brush_from_chart_ranges_and_active_brush():
    ax = compare.axes(ROWS, COLS)
    labels = [a["key"] for a in ax]
    ranges = [None] * len(ax)
    ranges[labels.index("lr")] = [-2.7, -1.9]
    ranges[labels.index("model")] = [[-0.2, 0.3], [1.8, 2.2]]
    brush = compare.brush_from_ranges(ax, ranges)
    assert brush["model"] == ["convnet", "logreg"]
    assert brush["lr"] == pytest.approx((10 ** -2.7, 10 ** -1.9))
    assert compare.apply_brush(ROWS, brush) == [1]
    assert compare.active_brush(ROWS, {"batch_size": (32, 128), "model": ["convnet", "fastcnn", "logreg"]}) == {}
    assert compare.snap([1, 2, 3, 4], 1.5, 3.5) == (2, 3)
    assert compare.snap([1, 2, 3, 4], 2.2, 2.4) == (2, 2)


def test_map_layers_are_named_for_a_student_then_for_the_code():
    from signlab.embedding import map_layers
    from signlab.models import create_model

    labels = [layer.label for layer in map_layers(create_model("seed_convnet"))]
    assert labels[1].startswith("after convolution 1: 100 channels of 12×12") and labels[1].endswith("[features.2]")
    assert labels[2].startswith("after convolution 2:")
    assert [lb for lb in (layer.label for layer in map_layers(create_model("mlp"))) if lb.startswith("hidden layer 1:")]


def test_a_run_deleted_while_its_map_is_computed_is_not_made_again(tmp_path, small_dataset, tiny_test, monkeypatch):
    """Another tab deleted the run while the Map page computed its map: saving the cache made the
    folder again (listed nowhere, deletable from nowhere), and the deleted run's map was drawn."""
    from signlab import api
    from signlab.config import TrainConfig
    from signlab.errors import RunError
    from signlab.runs import delete_run, open_run

    rec = api.train(TrainConfig(model="mlp", epochs=1, max_steps=5, augment=False), tmp_path, run_id="gone",
                    dataset=small_dataset, evaluate_test=False)
    run = open_run(rec["run_id"], tmp_path)
    model = run.load_model()
    real = embedding.embed

    def embed_then_delete(*args, **kwargs):
        out = real(*args, **kwargs)
        delete_run("gone", tmp_path)  # the other tab
        return out

    monkeypatch.setattr(embedding, "embed", embed_then_delete)
    with pytest.raises(RunError, match="deleted while its map"):
        embedding.run_map(run, tiny_test, method="pca", model=model)
    assert not (tmp_path / "gone").exists()


def test_the_tsne_wait_is_this_servers_own(tmp_path, small_dataset, tiny_test):
    """The Map page says how long t-SNE takes from the maps made here, not a constant (it said "about a
    minute" where 20 s was taken): each t-SNE map's seconds are kept in the run store, and the
    progress text claims a time only when one was measured."""
    from signlab import api, views
    from signlab.config import TrainConfig
    from signlab.runs import list_runs, open_run

    runs = []
    for name in ("a", "b"):
        api.train(TrainConfig(model="mlp", epochs=1, max_steps=2, augment=False), tmp_path, run_id=name,
                  dataset=small_dataset, evaluate_test=False)
        runs.append(open_run(name, tmp_path))

    def rows():
        return [r.row for r in list_runs(tmp_path)]

    assert embedding.measured_tsne_seconds(rows()) is None  # no map yet
    embedding.run_map(runs[0], tiny_test, method="pca")  # PCA maps are not t-SNE's time
    assert embedding.measured_tsne_seconds(rows()) is None
    texts: list[str] = []
    fm = embedding.run_map(runs[1], tiny_test, method="tsne", progress=lambda f, t: texts.append(t))
    assert embedding.measured_tsne_seconds(rows()) == pytest.approx(fm.seconds)
    assert texts and not any("here before" in t or "usually" in t for t in texts)  # nothing measured: no claim
    rows_many = [{"tsne_seconds": v} for v in (30.0, 10.0, None, 20.0, float("nan"), True, 400.0, 50.0, 1000.0)]
    assert embedding.measured_tsne_seconds(rows_many) == 30.0  # the newest five measured: 30, 10, 20, 400, 50
    texts.clear()
    embedding.embed(np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32), "tsne",
                    progress=lambda f, t: texts.append(t), expected=42.0)
    assert texts and all(t.endswith("(about 42 s here before)") for t in texts)  # the first is said at once
    assert views.tsne_wait_text(20.4, 7172) == ("t-SNE on the 7,172 test images takes about 20 s on this "
                                                "server (its earlier maps); the map is then kept with the run.")
    assert "no t-SNE map has been made on this server yet" in views.tsne_wait_text(None, 7172)


def test_a_pile_of_equal_images_is_named_and_keeps_the_letters_labels_off_it():
    """The lecture ConvNet's output ReLU puts hundreds of images on one point of the output-score
    map; a dozen letters' labels stacked there and hid it. The pile is found, said with why, and
    each letter's label goes to the median of its other points."""
    from signlab import views

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    coords = np.column_stack([y * 10.0, np.zeros(200)]) + rng.normal(0, 1, (200, 2))
    probs = rng.dirichlet(np.ones(24), 200)
    heap = [3, 4, 5, 6, 7, 53, 54, 55, 56, 57, 58, 59]  # letters 0 and 1 on one spot, all scores equal
    coords[heap] = (50.0, 50.0)
    probs[heap] = 1 / 24
    found = embedding.pile(coords, probs)
    assert found is not None and sorted(np.flatnonzero(found.mask)) == heap
    assert (found.x, found.y) == (50.0, 50.0) and found.uniform and found.count == 12
    assert views.pile_text(found, 200) == ("12 images (6%) on this spot: for most of them every letter scores the "
                                           "same, so each gets 1/24 ≈ 4%")
    centres = embedding.class_centres(coords, y, found.mask)
    plain = embedding.class_centres(coords, y)
    off = [i for i in range(50) if i not in heap]
    assert centres[0] == pytest.approx((np.median(coords[off, 0]), np.median(coords[off, 1])))
    assert plain[0] != centres[0]
    assert centres[2] == plain[2]  # a letter with nothing on the pile keeps its place
    only = embedding.class_centres(coords, np.where(np.isin(np.arange(200), heap), 9, y), found.mask)
    assert only[9] == (50.0, 50.0)  # a letter with every point on the pile keeps its label there
    probs[heap] = rng.dirichlet(np.ones(24), len(heap))
    assert "this layer gives them the same values" in views.pile_text(embedding.pile(coords, probs), 200)
    assert embedding.pile(coords[12:], probs[12:]) is None  # no spot holds 5% of the images
    fig = figures.feature_map(coords, y, y, pile=(found.x, found.y, "12 images here"))
    assert [a.text for a in fig.layout.annotations if a.showarrow] == ["12 images here"]


def test_a_maps_probabilities_keep_two_close_letters_apart(tmp_path, small_dataset, tiny_test, monkeypatch):
    """The map kept its probabilities in float16: H at 0.42709 and G at 0.42708 became one value, and the
    panel said "predicted H" beside a tie note naming G the prediction and a top-5 chart with G first.
    Computed or read back from the cache, the leading letter is the prediction."""
    from signlab import api, views
    from signlab.config import TrainConfig
    from signlab.runs import open_run

    rec = api.train(TrainConfig(model="mlp", epochs=1, max_steps=5, augment=False), tmp_path, run_id="m",
                    dataset=small_dataset, evaluate_test=False)
    run = open_run(rec["run_id"], tmp_path)
    real = embedding.activations

    def close_call(*args, **kwargs):
        feats, probs = real(*args, **kwargs)
        probs = np.full_like(probs, 0.1458 / 22)
        probs[:, 6], probs[:, 7] = 0.4270778, 0.4270865  # G, H: H leads by 9e-6
        return feats, probs

    monkeypatch.setattr(embedding, "activations", close_call)
    for fm in (embedding.run_map(run, tiny_test, method="pca"), embedding.run_map(run, tiny_test, method="pca")):
        assert (fm.y_pred == 7).all()
        assert views.tie_note(fm.probs[0]) is None
        assert views.top_k(fm.probs[0], 2)[0]["letter"] == "H", views.top_k(fm.probs[0], 2)
    assert fm.cached


def test_the_maps_letter_names_never_cover_each_other():
    """A weak model's map put a dozen letters' medians in one region, and their names lay on top of each
    other (a student's walk: "Map labels overlap"). Names that would touch are moved apart, each on a
    line in its colour to its points; a name with room keeps its exact place."""
    box = np.array(figures.LABEL_BOX)
    # the box is a name's size on the page, not the code's own word for it: a bold 15-px letter with its
    # border and padding is about 15 x 21 px, in a plot about 540 x 490 px inside the Map's 560 x 740 box
    assert box[0] * 540 >= 15 + 4 and box[1] * 490 >= 21 + 2

    def clashes(placed: dict) -> int:
        p = np.array([placed[k] for k in sorted(placed)])
        apart = np.abs(p[None] - p[:, None])
        return int(np.triu(((box - apart) > 1e-9).all(axis=2), k=1).sum())

    heap = {k: (0.5, 0.5) for k in range(12)} | {k: (0.45 + 0.01 * k, 0.52) for k in range(12, 20)}
    heap |= {20: (0.05, 0.95), 21: (0.95, 0.05)}
    assert clashes(heap) > 0
    placed = figures.spread_labels(heap, ((0.0, 1.0), (0.0, 1.0)))
    assert clashes(placed) == 0 and sorted(placed) == sorted(heap)
    assert all(box[0] / 2 - 1e-9 <= x <= 1 - box[0] / 2 + 1e-9 and box[1] / 2 - 1e-9 <= y <= 1 - box[1] / 2 + 1e-9
               for k, (x, y) in placed.items() if placed[k] != heap[k])
    assert placed[20] == heap[20] and placed[21] == heap[21]  # far from the heap: not moved
    # the shares are of the plot's own ranges: the same layout on a map of other units
    scaled = figures.spread_labels({k: (10 * x - 5, 300 * y) for k, (x, y) in heap.items()}, ((-5.0, 5.0), (0.0, 300.0)))
    assert all(scaled[k] == pytest.approx((10 * placed[k][0] - 5, 300 * placed[k][1])) for k in heap)
    assert figures.spread_labels({3: (1.0, 2.0)}, ((0.0, 1.0), (0.0, 1.0))) == {3: (1.0, 2.0)}

    # on the figure: a moved name points at its letter's points, a free one sits on them
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    coords = np.column_stack([np.where(y == 2, 9.0, 0.0), np.zeros(60)]) + rng.normal(0, 0.01, (60, 2))
    coords[0], coords[-1] = (-1.0, -1.0), (10.0, 1.0)  # the map's corners, so that A and B share a spot on it
    centres = embedding.class_centres(coords, y)
    fig = figures.feature_map(coords, y, y, centres=centres)
    notes = {a.text: a for a in fig.layout.annotations}
    for letter in ("<b>A</b>", "<b>B</b>"):
        a = notes[letter]
        assert a.showarrow and a.axref == "x" and a.ayref == "y" and (a.ax, a.ay) != (a.x, a.y)
    assert notes["<b>A</b>"].x == pytest.approx(centres[0][0]) and notes["<b>A</b>"].y == pytest.approx(centres[0][1])
    assert not notes["<b>C</b>"].showarrow and (notes["<b>C</b>"].x, notes["<b>C</b>"].y) == centres[2]
    # a zoomed map measures the names in its own region: A and B a fifth of it apart there have room
    zoomed = {0: (0.2, 0.5), 1: (0.8, 0.5)}
    fig = figures.feature_map(coords * 10, y, y, centres=zoomed, zoom=((0.0, 1.0), (0.0, 1.0)))
    assert not any(a.showarrow for a in fig.layout.annotations)
    assert figures.spread_labels(zoomed, ((-1.0, 91.0), (-10.0, 10.0))) != zoomed  # on the whole map they touch
