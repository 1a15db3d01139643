"""The model registry: every model maps (B, 1, 28, 28) to (B, 24) logits and learns."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from signlab import models
from signlab.errors import ConfigError
from signlab.normalize import normalize

NAMES = models.model_names()


def test_registry_holds_the_expected_models():
    assert {"logreg", "mlp", "seed_convnet", "convnet", "fastcnn", "s2net", "deepcnn"} <= set(NAMES)
    assert NAMES[0] == "logreg"


@pytest.mark.parametrize("name", NAMES)
def test_forward_and_backward(name):
    torch.manual_seed(0)
    model = models.create_model(name).train()
    x = normalize(torch.rand(3, 1, 28, 28))
    out = model(x)
    assert out.shape == (3, 24) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # a target per letter class, so every logit's gradient path is used
    loss = torch.nn.functional.cross_entropy(out, torch.tensor([0, 11, 23]))
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # s2net's stem is frozen
    assert params
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for _, p in params)
    assert any(p.grad.abs().sum() > 0 for _, p in params)


@pytest.mark.parametrize("name", NAMES)
def test_eval_batch_of_one(name):
    model = models.create_model(name).eval()
    with torch.no_grad():
        assert model(normalize(torch.rand(1, 1, 28, 28))).shape == (1, 24)


def test_list_models_parameter_counts():
    infos = models.list_models()
    assert [i.name for i in infos] == NAMES
    for info in infos:
        assert info.parameters == models.count_parameters(models.create_model(info.name)) > 0
        assert info.description
        assert models.model_info(info.name) == info
    counted = {i.name: i.parameters for i in infos}
    assert counted["logreg"] == 784 * 24 + 24
    # the lecture's ConvNet, counted by hand: conv 1->100 5x5, 100->50 3x3, 50->50 3x3, Linear(50, 24)
    assert counted["seed_convnet"] == (100 * 25 + 100) + (50 * 100 * 9 + 50) + (50 * 50 * 9 + 50) + (50 * 24 + 24)
    assert counted["mlp"] == (784 * 256 + 256) + (256 * 128 + 128) + (128 * 24 + 24)
    assert not next(i for i in infos if i.name == "logreg").has_width


def test_width_changes_size_only_where_the_model_has_one():
    assert models.count_parameters(models.create_model("fastcnn", width=8)) < \
        models.count_parameters(models.create_model("fastcnn"))
    assert models.count_parameters(models.create_model("mlp", width=64)) < \
        models.count_parameters(models.create_model("mlp"))
    # logreg ignores width rather than failing
    assert models.count_parameters(models.create_model("logreg", width=8)) == 784 * 24 + 24
    assert models.count_parameters(models.create_model("fastcnn", width=None)) == \
        models.count_parameters(models.create_model("fastcnn"))


def test_unknown_model():
    with pytest.raises(ConfigError, match="unknown"):
        models.create_model("resnet9000")
    with pytest.raises(ConfigError):
        models.model_info("nope")


@pytest.mark.parametrize("name", models.model_names())
def test_layer_summary(name):
    rows = models.layer_summary(name)
    assert rows
    for r in rows:
        assert {"layer", "depth", "type", "output_shape", "parameters", "mult_adds"} <= set(r)
        assert isinstance(r["output_shape"], list)
        assert r["parameters"] >= 0 and r["mult_adds"] >= 0
    assert rows[-1]["output_shape"][-1] == 24
    totals = models.summary_totals(name)
    assert totals["parameters"] == models.count_parameters(models.create_model(name))
    assert totals["mult_adds"] > 0
    leaf_params = sum(r["parameters"] for r in rows if r["type"] in ("Linear", "Conv2d", "BatchNorm2d"))
    assert leaf_params == totals["parameters"]
    # a group's mult-adds are its layers' (torchinfo gave a Sequential its parameters x output size)
    assert sum(r["mult_adds"] for r in rows if r["depth"] == 1) == totals["mult_adds"]


def test_layer_summary_shapes_of_the_lecture_convnet():
    rows = models.layer_summary("convnet", batch_size=2)
    convs = [r for r in rows if r["type"] == "Conv2d"]
    assert [r["output_shape"] for r in convs] == [[2, 100, 24, 24], [2, 50, 10, 10], [2, 50, 3, 3]]
    pools = [r for r in rows if r["type"] == "MaxPool2d"]
    assert pools[-1]["output_shape"] == [2, 50, 1, 1]
    linear = [r for r in rows if r["type"] == "Linear"]
    assert linear[-1]["parameters"] == 50 * 24 + 24


def test_seed_convnet_has_relu_on_its_output_and_convnet_does_not():
    torch.manual_seed(1)
    x = normalize(torch.rand(64, 1, 28, 28))
    seed = models.create_model("seed_convnet").eval()
    fixed = models.create_model("convnet").eval()
    fixed.load_state_dict(seed.state_dict())  # same weights: only the output ReLU differs
    with torch.no_grad():
        a, b = seed(x), fixed(x)
    assert (a >= 0).all()
    assert (b < 0).any(), "convnet must keep negative logits"
    assert torch.equal(a, torch.relu(b))


@pytest.mark.parametrize("output_relu", [True, False])
def test_lecture_convnet_pooling_first_trains_exactly_as_the_lecture_order(small_dataset, output_relu):
    """signlab's lecture ConvNet pools before its ReLUs: the same training, step for step, to the bit."""
    from signlab.inference import saliency_map

    torch.manual_seed(3)
    ours = models.LectureConvNet(output_relu)
    lecture = models.LectureConvNet(output_relu, as_written=True)
    lecture.load_state_dict(ours.state_dict())  # the convolutions keep their indices
    assert [type(m).__name__ for m in ours.features][:3] == ["Conv2d", "MaxPool2d", "ReLU"]
    assert [type(m).__name__ for m in lecture.features][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    x = normalize(torch.as_tensor(small_dataset.train.images[:64], dtype=torch.float32).unsqueeze(1) / 255)
    y = torch.as_tensor(small_dataset.train.targets[:64])
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in (ours, lecture)]
    for step in range(5):
        batch = slice(16 * (step % 4), 16 * (step % 4) + 16)
        for m, opt in zip((ours, lecture), opts):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x[batch]), y[batch]).backward()
            opt.step()
    for (name, a), b in zip(ours.state_dict().items(), lecture.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after 5 steps"
    lit = 0
    ours.eval(), lecture.eval()
    for image in small_dataset.test.images[:6] / 255.0:  # Grad-CAM reads the same maps
        target = int(ours(normalize(torch.as_tensor(image, dtype=torch.float32)[None, None])).argmax())
        a, b = saliency_map(ours, image, target), saliency_map(lecture, image, target)
        # not to the bit: in the lecture's order a pooling window of all-zero ReLU outputs hands
        # its gradient to its first position (max-pool's tie-break), which Grad-CAM's channel
        # weights then count; pooling first, that gradient is zero (measured: at most 0.054 apart)
        assert np.abs(a - b).max() < 0.1
        if a.max() > 0:
            lit += 1
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    assert lit >= 3  # most explanations show something, so the comparison is not of blank maps


def test_conv_layers_in_forward_order():
    convs = models.conv_layers(models.create_model("convnet"))
    assert [m.in_channels for _, m in convs] == [1, 100, 50]
    assert models.conv_layers(models.create_model("logreg")) == []


def test_ensemble_trains_its_members_apart_and_averages_their_probabilities():
    torch.manual_seed(0)
    ens = models.create_model("fastcnn", members=3, width=8)
    assert isinstance(ens, models.Ensemble) and len(ens.members) == 3
    single = models.count_parameters(models.create_model("fastcnn", width=8))
    assert models.count_parameters(ens) == 3 * single
    first = [models.conv_layers(m)[0][1].weight for m in ens.members]
    assert not torch.equal(first[0], first[1])  # independently initialised
    x = normalize(torch.rand(5, 1, 28, 28))
    out = ens.train()(x)
    assert out.shape == (5, 3, 24)  # every member's logits, for a loss per member
    ens.eval()
    with torch.no_grad():
        got = ens(x)
        mean_p = torch.stack([m(x).softmax(1) for m in ens.members]).mean(0)  # (5, 24)
    assert got.shape == (5, 24)
    torch.testing.assert_close(got.exp(), mean_p, atol=1e-5, rtol=1e-5)  # log of the mean probability
    torch.testing.assert_close(got.softmax(1), mean_p, atol=1e-5, rtol=1e-5)  # and softmax gives it back
    names = [n for n, _ in models.conv_layers(ens)]
    assert names and all(n.startswith("members.0.") for n in names)  # the first member's view
    assert len(models.conv_layers(ens)) == len(models.conv_layers(ens.members[0]))


@pytest.mark.parametrize("name", NAMES)
def test_the_registry_says_which_models_clip_their_scores(name):
    """Evaluate, Classify and the live hints explained the output ReLU for the model named
    "seed_convnet" only: the registry now says it of any model that has one, from the network itself."""
    net = models.create_model(name)
    info = models.model_info(name)
    assert info.output_relu == bool(getattr(net, "output_relu", False))
    if info.output_relu:  # what the pages explain: every negative score is cut to 0
        net.eval()
        with torch.no_grad():
            assert (net(normalize(torch.rand(8, 1, 28, 28))) >= 0).all()
    assert [m.name for m in models.list_models() if m.output_relu] == ["seed_convnet"]


def test_the_kernels_page_says_the_lecture_convnets_kernel_sizes_as_they_are():
    """Its introduction said "5×5 in the lecture ConvNet" beside a layer menu showing its 3×3 layers."""
    from signlab.teach import KERNELS_INTRO

    sizes = [m.kernel_size for m in models.create_model("convnet").modules() if isinstance(m, torch.nn.Conv2d)]
    assert sizes == [(5, 5), (3, 3), (3, 3)]
    assert "5×5 in the lecture ConvNet's first layer, 3×3 in its later layers" in KERNELS_INTRO
