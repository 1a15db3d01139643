"""The hand-shape network (signlab/handshape.py): its features, the shipped landmarks and weights
read the dataset's test hands, the combination with the image model, and predict's path on photos."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from signlab import handshape as hs
from signlab import hands
from signlab.cli import main
from signlab.inference import doubt
from signlab.labels import LETTERS
from signlab.preprocess import prepare, prepare_array
from signlab.views import read_sign, shape_reading
from tests._local import needs_hand_models


@pytest.fixture
def tiny_model():
    from signlab.models import create_model

    return create_model("logreg").eval()


def _hand(seed: int = 0) -> np.ndarray:
    """21 landmarks (21, 3) in pixels, a made-up open hand pointing up."""
    rng = np.random.default_rng(seed)
    pts = np.zeros((21, 3), np.float32)
    pts[:, 0] = 100 + rng.uniform(-40, 40, 21)
    pts[:, 1] = 150 - rng.uniform(0, 120, 21)
    pts[0] = (100, 160, 0)  # the wrist, below the rest
    return pts


# --------------------------------------------------------------------------- features
def test_features_ignore_place_and_size_and_mirror_left_hands():
    pts = _hand()
    f = hs.features(pts[None], False)[0]
    assert f.shape == (hs.N_FEATURES,)
    np.testing.assert_allclose(f[:2], 0)  # the wrist at the origin
    assert np.linalg.norm(f.reshape(21, 2)[hs.MIDDLE_MCP]) == pytest.approx(1)  # the unit length
    moved = pts.copy()
    moved[:, :2] = moved[:, :2] * 2.5 + [300, -40]
    np.testing.assert_allclose(hs.features(moved[None], False)[0], f, atol=1e-5)
    # a left hand is the mirror image of a right one: mirrored landmarks labelled Left read the same
    mirrored = pts.copy()
    mirrored[:, 0] = 500 - mirrored[:, 0]
    np.testing.assert_allclose(hs.features(mirrored[None], True)[0], f, atol=1e-5)
    assert not np.allclose(hs.features(mirrored[None], False)[0], f, atol=1e-2)
    # orientation is kept (G and H point sideways): the same hand turned 90 degrees differs
    turned = pts.copy()
    turned[:, 0], turned[:, 1] = pts[:, 1], -pts[:, 0]
    assert not np.allclose(hs.features(turned[None], False)[0], f, atol=1e-2)


def test_combine_multiplies_and_leaves_photos_without_a_hand_alone():
    image = np.full(24, 0.5 / 22, np.float32)
    image[[0, 1]] = 0.3, 0.2  # the picture: A before B
    shape = np.full(24, 0.1 / 22, np.float32)
    shape[[0, 1]] = 0.1, 0.8  # the hand's shape: clearly B
    both = hs.combine(image, shape)
    assert both.sum() == pytest.approx(1, abs=1e-5) and int(both.argmax()) == 1
    np.testing.assert_allclose(hs.combine(image, None), image)
    np.testing.assert_allclose(hs.combine(image, shape, weight=0), image)
    expected = image * shape / (image * shape).sum()
    np.testing.assert_allclose(hs.combine(image, shape, weight=1.0), expected, rtol=1e-4)
    batch = hs.combine(np.stack([image, image]), np.stack([shape, shape]))
    assert batch.shape == (2, 24) and np.allclose(batch.sum(1), 1, atol=1e-5)


# --------------------------------------------------------------------------- the shipped files
def test_shipped_landmarks_cover_the_dataset_and_the_network_reads_the_test_hands(dataset):
    with np.load(hs.LANDMARKS_FILE, allow_pickle=False) as z:
        for split, part in (("train", dataset.train), ("test", dataset.test)):
            assert len(z[f"{split}_targets"]) == len(part.targets)
            np.testing.assert_array_equal(z[f"{split}_targets"], part.targets)
            found = z[f"{split}_presence"] >= 0.5
            assert found.mean() > 0.9, f"{split}: landmarks for only {found.mean():.0%} of the images"
            assert np.isnan(z[f"{split}_landmarks"][~(z[f"{split}_presence"] > 0)]).all()
    x, y = hs.load_landmarks("test")
    net = hs.load_net()
    assert net is not None
    acc = hs.accuracy(net, x, y)
    assert acc > 0.85, f"the shipped hand-shape network reads {acc:.1%} of the dataset's test hands"
    info = json.loads(__import__("safetensors").safe_open(str(hs.WEIGHTS_FILE), "pt").metadata()["info"])
    assert info["test_accuracy"] == pytest.approx(acc, abs=1e-6)  # the file says what it measured


@needs_hand_models
def test_shipped_landmarks_are_what_the_detector_finds(dataset):
    """Re-extract a few test images: the same landmarks as the shipped file, to its float16."""
    idx = np.arange(0, 7172, 900)
    got = hs.extract(dataset.test.images[idx])
    with np.load(hs.LANDMARKS_FILE, allow_pickle=False) as z:
        shipped, presence = z["test_landmarks"][idx].astype(np.float32), z["test_presence"][idx]
    found = presence > 0
    np.testing.assert_array_equal(got["presence"] > 0, found)
    np.testing.assert_allclose(got["landmarks"][found], shipped[found], atol=0.2)


def test_build_retrains_from_the_landmarks_file(tmp_path):
    """``python -m signlab handshape``'s work, to other files: a short training still reads most
    test hands, and the new weights load."""
    src = tmp_path / "lm.npz"
    src.write_bytes(hs.LANDMARKS_FILE.read_bytes())
    out = tmp_path / "net.safetensors"
    info = hs.build(epochs=2, landmarks_file=src, weights_file=out, members=2)
    assert info["train_hands"] > 20000 and info["test_accuracy"] > 0.5 and out.is_file() and info["members"] == 2
    net = hs.load_net(out)
    x, y = hs.load_landmarks("test", src)
    assert hs.accuracy(net, x, y) == pytest.approx(info["test_accuracy"], abs=1e-6)


def test_the_members_probabilities_are_averaged_and_a_single_network_file_of_before_still_loads(tmp_path):
    """The shipped network is several trained from their own seeds, their probabilities averaged; a
    run calibrated before that holds one network (keys ``net.*``), which is read as one member."""
    from safetensors.torch import save_file

    shipped = hs.load_net()
    assert len(shipped.members) == hs.MEMBERS > 1
    x, y = hs.load_landmarks("test")
    xt = torch.as_tensor(x[:500])
    with torch.no_grad():
        each = torch.stack([m(xt).softmax(1) for m in shipped.members])  # (M, 500, 24)
    np.testing.assert_allclose(hs.probs_of(shipped, x[:500]), each.mean(0).numpy(), atol=1e-5)
    assert not torch.allclose(each[0], each[1])  # other seeds, other networks
    # the average reads more test hands than its first member alone (93.5% as the single network shipped before)
    first = hs.HandShapeNet(members=1)
    first.members[0].load_state_dict(shipped.members[0].state_dict())
    assert hs.accuracy(shipped, x, y) > hs.accuracy(first.eval(), x, y)
    old = tmp_path / "run"
    old.mkdir()
    save_file({"net." + k.split(".", 2)[2]: v.contiguous() for k, v in first.state_dict().items()}, old / hs.RUN_FILE)
    loaded = hs.net_for(old)
    assert len(loaded.members) == 1
    np.testing.assert_allclose(hs.probs_of(loaded, x[:50]), hs.probs_of(first, x[:50]), atol=1e-6)


def test_calibration_adapts_the_first_member_alone():
    """What measured best with the calibrated image model (docs/real-photos.md); the shipped networks
    are left as they were."""
    net = hs.HandShapeNet(members=3)
    kept = net.members[0][0].weight.clone()
    x, y = hs.load_landmarks("test")
    adapted = hs.adapt(net, x[:48], y[:48], steps=5)
    assert len(adapted.members) == 1 and len(net.members) == 3
    assert not torch.equal(adapted.members[0][0].weight, kept) and torch.equal(net.members[0][0].weight, kept)
    both = hs.adapt(net, x[:48], y[:48], steps=5, members=2)
    assert len(both.members) == 2 and not torch.equal(both.members[1][0].weight, net.members[1][0].weight)


def test_handshape_command_prints_its_json(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(hs, "WEIGHTS_FILE", tmp_path / "net.safetensors")
    monkeypatch.setattr(hs, "EPOCHS", 1)
    assert main(["handshape", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(rec) >= {"train_hands", "test_hands", "test_accuracy", "seconds"}
    assert (tmp_path / "net.safetensors").is_file()


# --------------------------------------------------------------------------- on the photo path
@needs_hand_models
def test_a_photo_of_a_hand_is_read_twice_and_a_drawing_once(dataset, tiny_model):
    """A dataset hand at 224 px as a photo: the detector finds it, the shape network weighs in, and
    the verdict's probabilities are the product of the two readings. The same image as a drawing,
    or with the shape switched off, is the image model's alone."""
    img = Image.fromarray(dataset.test.images[0]).resize((224, 224), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    prep = prepare(buf.getvalue(), "hand.png", "detector")
    assert prep.hand is not None
    seen = read_sign(tiny_model, prep, photo=True)
    assert seen.shape is not None and seen.image is not None
    np.testing.assert_allclose(seen.probs, hs.combine(seen.image, seen.shape), atol=1e-6)
    assert seen.worry == doubt(seen.probs, photo=True, shape=True)  # the combined probabilities' own tiers
    assert shape_reading(seen) and "landmarks" in shape_reading(seen)
    alone = read_sign(tiny_model, prep, photo=True, shape=False)
    assert alone.shape is None and shape_reading(alone) is None
    np.testing.assert_allclose(alone.probs, seen.image, atol=1e-6)
    drawing = read_sign(tiny_model, prepare_array(dataset.test.images[0] / 255.0), photo=False)
    assert drawing.shape is None


@needs_hand_models
def test_the_shape_network_reads_dataset_hands_through_the_detector(dataset):
    """End to end on real data: 48 test images (two a letter), upscaled, detector, features, network."""
    y = dataset.test.targets
    idx = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(24)])
    right = found = 0
    for i in idx:
        big = np.asarray(Image.fromarray(dataset.test.images[i]).resize((224, 224), Image.Resampling.BICUBIC))
        hand = hands.find_hand(big)
        if hand is None:
            continue
        found += 1
        right += int(np.argmax(hs.shape_probs(hand))) == y[i]
    assert found >= 40 and right / found > 0.7, f"{right}/{found} right ({LETTERS})"


def test_no_weights_no_shape(monkeypatch, tmp_path, tiny_model):
    """Without the weights file the photo path is the image model's alone, not an error."""
    import dataclasses

    from signlab.inference import predict_prepared

    missing = tmp_path / "none.safetensors"
    assert hs.load_net(missing) is None
    real = hs.load_net
    monkeypatch.setattr(hs, "load_net", lambda path=missing: real(missing))
    hand = hands.HandFound(box=(0, 0, 1, 1), landmarks=_hand(), score=1, presence=1, handedness="Right",
                           roi=(0, 0, 1, 0))
    assert hs.shape_probs(hand) is None
    with torch.no_grad():
        probs = hs.shape_probs(hand, hs.HandShapeNet())
    assert probs.shape == (24,) and probs.sum() == pytest.approx(1, abs=1e-5)
    # the photo path itself: a found hand, no network to read its shape, the picture's reading alone
    x = np.zeros((28, 28), np.float32)
    x[6:22, 8:20] = 0.8
    prep = dataclasses.replace(prepare_array(x), hand=hand)
    v = read_sign(tiny_model, prep, photo=True)
    assert v.shape is None and np.allclose(v.probs, predict_prepared(tiny_model, prep), atol=1e-6)
    assert shape_reading(v) is None


def test_a_planted_or_damaged_run_network_is_refused_by_name(tmp_path):
    """A run's handshape.safetensors is read like its weights: a symlink or a damaged file is
    refused with a message naming it, never followed or half-loaded."""
    target = tmp_path / "elsewhere.safetensors"
    target.write_bytes(hs.WEIGHTS_FILE.read_bytes())
    run = tmp_path / "run"
    run.mkdir()
    (run / hs.RUN_FILE).symlink_to(target)
    with pytest.raises(hs.HandShapeError, match="handshape.safetensors.*symbolic link"):
        hs.net_for(run)
    damaged = tmp_path / "run2"
    damaged.mkdir()
    (damaged / hs.RUN_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(hs.HandShapeError, match="run2/handshape.safetensors"):
        hs.net_for(damaged)
