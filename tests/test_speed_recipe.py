"""The fast preset's recipe (issue #18): s2net's whitening stem, shift augmentation, test-time
shifts, the larger step for norm layers, and older runs keeping how they were trained."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from signlab import augment
from signlab.config import LEGACY, TrainConfig, preset
from signlab.models import WhitenStem, build_model, create_model, fit_to_data
from signlab.normalize import normalize
from signlab.predict import SHIFTS, forward_views, predict_logits, to_float_images
from signlab.trainer import Trainer, param_groups
from tests._local import accuracy_on_test


def test_the_whitening_stem_decorrelates_the_patches_of_real_images(dataset):
    x = normalize(to_float_images(dataset.train.images[:2000]))  # (2000, 1, 28, 28)
    stem = WhitenStem()
    assert not bool(stem.fitted)
    stem.fit(x)
    assert bool(stem.fitted)
    out = stem(x)[:, :4]  # (N, 4, 14, 14): the + half of the +/- pairs
    cov = torch.cov(out.permute(1, 0, 2, 3).reshape(4, -1))
    # whitened: about unit variance on each direction (eps keeps the weakest a little below 1; the
    # raw patches' variances span two orders of magnitude), no correlation
    var = torch.diagonal(cov)
    assert ((var > 0.85) & (var < 1.05)).all(), cov
    off = cov - torch.diag(torch.diagonal(cov))
    assert off.abs().max() < 0.02, cov
    assert torch.equal(stem(x)[:, 4:], -stem(x)[:, :4])  # the - half mirrors the + half
    # what the Kernels page says of them: equal outputs from unequal kernels (the direction the
    # patches vary least in, the first of eigh's ascending eigenvalues, has the largest weights)
    norms = stem.conv.weight[:4].flatten(1).norm(dim=1)
    assert norms[0] > 5 * norms[-1], norms


def test_fit_to_data_fits_once_and_the_fit_travels_with_the_weights(dataset):
    x = normalize(to_float_images(dataset.train.images[:500]))
    model = create_model("s2net")
    fit_to_data(model, lambda: x)
    w = model.whiten.conv.weight.clone()
    fit_to_data(model, lambda: -x)  # already fitted: left alone (a continued run keeps its stem)
    assert torch.equal(model.whiten.conv.weight, w)
    again = create_model("s2net")
    again.load_state_dict(model.state_dict())
    assert bool(again.whiten.fitted) and torch.equal(again.whiten.conv.weight, w)
    assert not any(p.requires_grad for p in again.whiten.parameters())

    def never():
        raise AssertionError("images asked for with nothing to fit")
    fit_to_data(again, never)  # loaded, already fitted: no images are prepared
    fit_to_data(create_model("fastcnn"), never)  # no data-dependent layer at all


def test_training_fits_the_stem_before_the_first_step_and_never_trains_it(small_dataset):
    cfg = preset("fast", max_steps=5, log_every=1)
    model = build_model(cfg)
    trainer = Trainer(cfg, model, small_dataset)
    w = model.whiten.conv.weight.detach().clone()
    assert bool(model.whiten.fitted) and w.abs().sum() > 0
    trainer.fit()
    assert torch.equal(model.whiten.conv.weight, w)


def test_shift_moves_each_image_by_whole_pixels_within_two():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    out = augment.shift(x, g)
    assert out.shape == x.shape
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    seen = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(out[i, 0], padded[i, 0, dy:dy + 28, dx:dx + 28])]
        assert matches, f"image {i} is not a whole-pixel shift of its input"
        seen.add(matches[0])
    assert len(seen) > 10  # the offsets vary over the batch


def test_forward_views_averages_the_image_and_its_four_one_pixel_shifts():
    torch.manual_seed(0)
    model = create_model("fastcnn", width=4, tta=True).eval()
    x = normalize(torch.rand(3, 1, 28, 28))
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    with torch.no_grad():
        expected = torch.stack([model(padded[..., 1 + dy:29 + dy, 1 + dx:29 + dx]) for dy, dx in SHIFTS]).mean(0)
        assert torch.allclose(forward_views(model, x), expected, atol=1e-6)
        model.tta = False
        assert torch.equal(forward_views(model, x), model(x))
    assert len(SHIFTS) == 5 and (0, 0) in SHIFTS


def test_predict_logits_uses_the_models_own_tta_setting():
    torch.manual_seed(0)
    plain = create_model("fastcnn", width=4).eval()
    shifted = create_model("fastcnn", width=4, tta=True).eval()
    shifted.load_state_dict(plain.state_dict())
    x = torch.rand(10, 1, 28, 28)
    assert not torch.allclose(predict_logits(plain, x), predict_logits(shifted, x))
    assert build_model(preset("fast")).tta and not build_model(preset("lecture")).tta
    assert torch.equal(predict_logits(shifted, x, views=False), predict_logits(plain, x))  # the network alone


def test_validation_after_each_epoch_is_the_network_alone_and_the_test_accuracy_has_the_shifts(dataset):
    # five views cost 4.7x one after every epoch; the run's test accuracy (evaluate) keeps them
    cfg = preset("fast", max_steps=30, epochs=1)
    trainer = Trainer(cfg, build_model(cfg), dataset, [])
    end = trainer.fit()
    alone, shifted = accuracy_on_test(trainer.model, dataset, views=False), accuracy_on_test(trainer.model, dataset)
    assert trainer.model.tta and end.val_accuracy == alone != shifted


def test_norm_layers_and_biases_get_the_larger_step_and_no_weight_decay():
    cfg = preset("fast")
    model = build_model(cfg)
    plain, norm = param_groups(cfg, model)
    assert norm["lr_scale"] == cfg.norm_lr_scale == 10.0 and norm["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in plain["params"]) and all(p.ndim <= 1 for p in norm["params"])
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in plain["params"] + norm["params"]} == trainable  # frozen stem left out
    one = param_groups(cfg.replace(norm_lr_scale=1.0), model)
    assert len(one) == 1


def test_the_schedule_peaks_each_group_at_its_own_rate(small_dataset):
    cfg = preset("fast", max_steps=40, log_every=40)
    trainer = Trainer(cfg, build_model(cfg), small_dataset)
    peaks = [0.0, 0.0]
    for _ in range(30):  # past the warm-up (a quarter of the 40 steps)
        trainer.optimizer.step()
        trainer.scheduler.step()
        peaks = [max(p, g["lr"]) for p, g in zip(peaks, trainer.optimizer.param_groups)]
    assert abs(peaks[0] - cfg.lr) < 1e-9 and abs(peaks[1] - cfg.lr * 10) < 1e-8, peaks


def test_an_older_runs_config_keeps_how_it_was_trained():
    old = {"model": "fastcnn", "epochs": 5, "augment": True}  # saved before these settings existed
    cfg = TrainConfig.from_dict(old)
    assert (cfg.augment_style, cfg.tta, cfg.norm_lr_scale) == ("affine", False, 1.0)
    assert set(LEGACY) <= {f for f in TrainConfig.__dataclass_fields__}
    assert TrainConfig.from_dict({**old, "tta": True}).tta  # a saved value wins


def test_the_presets_keep_their_own_recipes():
    fast, robust, lecture = preset("fast"), preset("robust"), preset("lecture")
    assert (fast.model, fast.epochs, fast.augment_style, fast.tta) == ("s2net", 2, "shift", True)
    assert (robust.model, robust.augment_style, robust.label_smoothing, robust.norm_lr_scale, robust.tta) == \
        ("fastcnn", "affine", 0.0, 1.0, False)
    assert (lecture.augment, lecture.label_smoothing, lecture.norm_lr_scale, lecture.tta) == (False, 0.0, 1.0, False)


def test_the_fast_preset_learns_the_real_dataset_in_a_few_hundred_steps(dataset):
    cfg = preset("fast", max_steps=150, log_every=150)
    end = Trainer(cfg, build_model(cfg), dataset).fit()
    assert end.val_accuracy is not None and end.val_accuracy > 0.95, end


def test_the_kernels_view_says_which_layer_was_not_learned():
    from signlab import views
    s2 = views.conv_layer_info(create_model("s2net"))
    assert s2[0]["frozen"] and not any(layer["frozen"] for layer in s2[1:])
    assert not any(layer["frozen"] for layer in views.conv_layer_info(create_model("fastcnn")))
    assert "not learned" in views.FROZEN_FIRST_LAYER
