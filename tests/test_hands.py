"""The hand detector (signlab/hands.py): its geometry with known inputs, the models on a drawn hand,
and the photo path's fallback to the centre crop when no hand is found."""
from __future__ import annotations

import hashlib
import io
import math

import numpy as np
import pytest
from PIL import Image

from _hand_image import drawn_hand, hand_in_room
from signlab import hands
from signlab.preprocess import Crop, crop_box, cut, hand_crop, locate_hand, prepare
from tests._local import needs_hand_models


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


# --------------------------------------------------------------------------- geometry
def test_model_files_match_their_provenance():
    text = (hands.ASSETS / "PROVENANCE.md").read_text()
    for f in (hands.PALM_MODEL, hands.LANDMARK_MODEL, hands.ASSETS / "sign_mnist_landmarks.npz",
              hands.ASSETS / "handshape.safetensors"):
        assert hashlib.sha256(f.read_bytes()).hexdigest() in text, f.name
    assert "Apache" in (hands.ASSETS / "LICENSE").read_text()


def test_anchors_follow_the_palm_graph():
    a = hands.ssd_anchors()
    assert a.shape == (hands.NUM_BOXES, 2)
    # stride 8: a 24x24 grid, two anchors a cell, row by row
    np.testing.assert_allclose(a[0], [0.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(a[2 * 24], [0.5 / 24, 1.5 / 24])
    # the three stride-16 layers share one 12x12 grid: six anchors a cell
    first16 = 24 * 24 * 2
    np.testing.assert_allclose(a[first16:first16 + 6], np.tile([0.5 / 12, 0.5 / 12], (6, 1)))
    np.testing.assert_allclose(a[-1], [11.5 / 12, 11.5 / 12])


def test_decode_offsets_are_pixels_from_the_anchor():
    anchors = np.array([[0.25, 0.75]], np.float32)
    raw = np.zeros((1, 18), np.float32)
    raw[0, :4] = [19.2, -9.6, 96, 48]  # centre +0.1, -0.05; size 0.5 x 0.25 of the input
    raw[0, 4:6] = [0, 19.2]  # the first keypoint: 0.1 below the anchor
    d = hands.decode(raw, anchors)
    np.testing.assert_allclose(d[0, :4], [0.35, 0.70, 0.5, 0.25], atol=1e-6)
    np.testing.assert_allclose(d[0, 4:6], [0.25, 0.85], atol=1e-6)
    np.testing.assert_allclose(d[0, 6:], np.tile([0.25, 0.75], 6), atol=1e-6)


def test_weighted_nms_merges_overlaps_and_keeps_separate_boxes():
    dets = np.zeros((3, 18), np.float32)
    dets[0, :4] = [0.50, 0.5, 0.2, 0.2]
    dets[1, :4] = [0.52, 0.5, 0.2, 0.2]  # overlaps the first (IoU about 0.8)
    dets[2, :4] = [0.10, 0.1, 0.1, 0.1]  # far away
    out = hands.weighted_nms(dets, np.array([0.6, 0.9, 0.7], np.float32))
    assert [round(s, 2) for s, _ in out] == [0.9, 0.7]  # best first, with the best member's score
    merged = out[0][1]
    assert merged[0] == pytest.approx((0.50 * 0.6 + 0.52 * 0.9) / 1.5)  # score-weighted mean
    np.testing.assert_allclose(out[1][1], dets[2])


def _palm(wrist, knuckle, box=(0.5, 0.5, 0.2, 0.2)):
    det = np.zeros(18, np.float32)
    det[:4] = box
    det[4:6], det[8:10] = wrist, knuckle
    return det


def test_palm_roi_turns_the_hand_upright_and_shifts_towards_the_fingers():
    # fingers up: no rotation; the square is 2.6x the palm box, half a box higher
    cx, cy, side, rot = hands.palm_roi(_palm((0.5, 0.6), (0.5, 0.4)), 100, 100)
    assert rot == pytest.approx(0.0, abs=1e-6)
    assert (cx, cy, side) == pytest.approx((50, 40, 52))
    # fingers pointing right: a quarter turn clockwise, and the shift goes right
    cx, cy, side, rot = hands.palm_roi(_palm((0.4, 0.5), (0.6, 0.5)), 100, 100)
    assert rot == pytest.approx(math.pi / 2)
    assert (cx, cy) == pytest.approx((60, 50))
    # fingers down
    assert hands.palm_roi(_palm((0.5, 0.4), (0.5, 0.6)), 100, 100)[3] == pytest.approx(-math.pi)


def test_rotated_crop_reads_the_right_pixels():
    rgb = np.zeros((100, 100, 3), np.uint8)
    rgb[20:40, 60:80] = 255  # a white square right of the crop's centre at (50, 30)
    plain = hands.crop_rotated(rgb, (50, 30, 40, 0.0), 40)
    assert plain[10:30, 30:40].min() > 0.9 and plain[:, :8].max() == 0
    # a quarter turn clockwise: the crop's "up" points right in the image, so the square appears at the top
    turned = hands.crop_rotated(rgb, (50, 30, 40, math.pi / 2), 40)
    assert turned[0:8, 12:28].min() > 0.9 and turned[30:, :].max() == 0
    # the matrix maps the crop's corners and centre where the rotation says
    m = hands.roi_matrix(50, 30, 40, math.pi / 2, 40)
    np.testing.assert_allclose(m @ [20, 20, 1], [50, 30])
    np.testing.assert_allclose(m @ [20, 0, 1], [70, 30])


def test_letterbox_keeps_the_shape():
    x, scale, px, py = hands.letterbox(np.full((100, 200, 3), 255, np.uint8), 192)
    assert x.shape == (192, 192, 3) and scale == pytest.approx(0.96) and (px, py) == (0, 48)
    assert x[:48].max() == 0 and x[48:144].min() == pytest.approx(1.0)


# --------------------------------------------------------------------------- crops past the edge
def test_padded_crop_stays_where_asked_and_repeats_the_edge():
    gray = np.tile(np.linspace(0, 1, 10, dtype=np.float32), (10, 1))  # (10, 10), brighter to the right
    assert crop_box((10, 10), Crop(zoom=0.5, cx=0.5, cy=0.5, pad=True)) == (-5, -5, 15, 15)
    assert crop_box((10, 10), Crop(zoom=2, cx=0.0, cy=0.0)) == (0, 0, 5, 5)  # unpadded: pushed inside
    assert crop_box((10, 10), Crop(zoom=2, cx=0.0, cy=0.0, pad=True)) == (-2, -2, 3, 3)
    c = cut(gray, -2, -2, 3, 3)
    assert c.shape == (5, 5) and (c[:, :3] == 0).all() and c[0, 3] == gray[0, 1]


def test_hand_crop_is_a_square_around_the_landmarks():
    pts = np.zeros((21, 3), np.float32)
    pts[:, 0] = np.linspace(100, 140, 21)  # 40 wide
    pts[:, 1] = np.linspace(50, 110, 21)  # 60 tall
    found = hands.HandFound(box=(100, 50, 140, 110), landmarks=pts, score=0.9, presence=0.9, handedness="Right",
                            roi=(120, 80, 100, 0.0))
    crop = hand_crop(found, (200, 300), margin=1.5)
    assert crop.pad and crop_box((200, 300), crop) == (75, 35, 165, 125)  # side 1.5 x 60, centred on (120, 80)
    moved = found.shifted(-10, 5)
    assert moved.box == (90, 55, 130, 115) and moved.landmarks[0, 0] == pytest.approx(90)


# --------------------------------------------------------------------------- the models
@needs_hand_models
def test_finds_the_drawn_hand():
    found = hands.find_hand(np.asarray(hand_in_room()))
    assert found is not None and found.presence > 0.8 and found.score > 0.5
    left, top, right, bottom = found.box
    # the hand was drawn at (260, 120) + 320 px; its fingers and palm lie in the middle of that square
    assert 280 < left < right < 560 and 130 < top < bottom < 440, found.box
    assert found.landmarks.shape == (21, 3)
    assert abs(found.roi[3]) < 0.5  # fingers up: hardly turned
    # the wrist (landmark 0) lies below the middle fingertip (12)
    assert found.landmarks[0, 1] > found.landmarks[12, 1] + 80


@needs_hand_models
def test_mirror_image_mirrors_the_hand():
    rgb = np.asarray(drawn_hand())
    a, b = hands.find_hand(rgb), hands.find_hand(rgb[:, ::-1].copy())
    assert a is not None and b is not None and a.handedness != b.handedness
    assert b.box[0] == pytest.approx(rgb.shape[1] - a.box[2], abs=8)


def _no_hand_images() -> dict[str, np.ndarray]:
    """Images without a hand, 224x224 RGB: flat, noise, a gradient and a blocky pattern."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 224, dtype=np.float32)
    return {"flat": np.full((224, 224, 3), 200, np.uint8),
            "noise": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
            "gradient": np.repeat(np.repeat(ramp[None, :, None], 224, 0), 3, 2).astype(np.uint8),
            "blocks": (np.kron(rng.integers(0, 2, (8, 8)), np.ones((28, 28)))[..., None].repeat(3, 2) * 200
                       ).astype(np.uint8)}


@needs_hand_models
def test_nothing_found_in_blank_small_patterned_or_tiny_dataset_images(dataset):
    assert hands.find_hand(np.full((240, 320, 3), 200, np.uint8)) is None
    assert hands.find_hand(np.zeros((20, 20, 3), np.uint8)) is None  # too small to look at
    assert hands.find_hand(dataset.test.images[0]) is None  # 28x28 grey
    for name, image in _no_hand_images().items():  # every look, the whole-frame one included, says no
        assert hands.find_hand(image) is None, name


@needs_hand_models
def test_a_photo_that_is_all_hand_is_read_whole_by_the_landmark_model(dataset):
    """A tight crop of a hand (a dataset image, 224x224): the palm detector misses it on both of its
    looks; the third look, the landmark model on the whole frame, finds it."""
    big = np.asarray(Image.fromarray(dataset.test.images[0]).resize((224, 224), Image.Resampling.BILINEAR))
    assert hands.find_hand(big, retry=False) is None  # the palm detector alone finds nothing
    found = hands.find_hand(big)
    assert found is not None and found.score == 0 and found.presence > 0.5
    left, top, right, bottom = found.box
    # the landmarks lie on the hand: inside the frame (a little slack), spanning a good part of it
    assert -20 < left < right < 244 and -20 < top < bottom < 244 and max(right - left, bottom - top) > 80


@needs_hand_models
def test_prepare_crops_to_the_hand_and_falls_back_to_the_centre():
    prep = prepare(_jpeg(hand_in_room()), "room.jpg", "detector")
    assert prep.hand is not None and prep.crop.pad
    assert any("the detector found" in n for n in prep.notes)
    left, top, right, bottom = prep.box
    gx0, gy0, gx1, gy1 = prep.hand.box  # the crop holds the hand's box, in the same (reduced) pixels
    assert left <= gx0 and top <= gy0 and right >= gx1 and bottom >= gy1
    # no hand: today's centre crop, and a note that says so
    png = io.BytesIO()
    Image.fromarray(_no_hand_images()["blocks"]).save(png, "PNG")
    plain = prepare(png.getvalue(), "blocks.png", "detector")
    centre = prepare(png.getvalue(), "blocks.png")
    assert plain.hand is None and plain.box == centre.box
    np.testing.assert_array_equal(plain.image28, centre.image28)
    assert any("found no hand" in n for n in plain.notes)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@needs_hand_models
def test_an_enlarged_dataset_image_is_read_whole_not_searched_for_a_hand(dataset):
    """A dataset image enlarged in pixel blocks and uploaded went through the detector, whose square
    (1.5 times the landmarks' box) showed the hand smaller than the model had ever seen one, and
    read "G (87%)". It is read whole now, as the dataset's images are, and the page says why; a
    smoothly enlarged one, which blurred photos resemble, still goes to the detector."""
    image = dataset.test.images[4]  # (28, 28) uint8; enlarged to 224, the detector was 95% sure of a hand in it
    for size in (100, 224, 512):
        png = _png(Image.fromarray(image).resize((size, size), Image.Resampling.NEAREST))
        assert locate_hand(png, "big.png") == (None, None, "enlarged")
        prep = prepare(png, "big.png", "detector")
        assert prep.hand is None and any(n.startswith("read whole") and "enlarged 28×28" in n for n in prep.notes)
        assert np.abs(prep.image28 - image / 255).mean() < 0.01  # the dataset's own framing, not a zoomed-out one
    small = _png(Image.fromarray(image).resize((56, 56), Image.Resampling.NEAREST))
    assert locate_hand(small, "small.png")[2] == "small"
    smooth = _png(Image.fromarray(image).resize((224, 224), Image.Resampling.BILINEAR))
    hand, crop, whole = locate_hand(smooth, "smooth.png")
    assert whole is None and hand is not None and crop is not None  # the detector's third look finds it


@pytest.mark.parametrize("size, colour", [((3000, 40), (255, 0, 0)), ((300, 300), (128, 128, 128))])
def test_a_flat_picture_is_not_taken_for_an_enlarged_dataset_image(size, colour):
    """A plain red upload read "This 512×7 image is a 28×28 image enlarged in blocks of pixels, like the
    dataset's own crops": one shade is its own blocks, with no contrast to measure them against."""
    from signlab.preprocess import read_whole

    assert read_whole(Image.new("RGB", size, colour)) is None


@needs_hand_models
@pytest.mark.parametrize("brightness", [0.3, 0.15])
def test_a_dim_photo_is_searched_for_a_hand_not_read_whole(brightness):
    """The test for an enlarged 28x28 image measured the mean difference from the image's own blocks,
    which shrinks with the brightness: a photo of a hand in a dim room read "an enlarged 28×28 image",
    and the detector, which finds the hand in it, was never asked. It is measured against the image's
    own contrast now (bench/read_whole.py)."""
    dim = (np.asarray(hand_in_room(), dtype=np.float32) * brightness).astype(np.uint8)
    hand, crop, whole = locate_hand(_png(Image.fromarray(dim)), "dim.png")
    assert whole is None and hand is not None and crop is not None


@needs_hand_models
@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_a_16_bit_or_float_photo_shows_the_detector_the_hand(mode):
    """PIL's conversion to RGB clips 16-bit and 32-bit pixels at 255 (a 16-bit photo reached the
    detector all white) and leaves floats under 1 (all black): no hand was found in either, while the
    same photo in 8 bits has one."""
    grey = np.asarray(drawn_hand(200).convert("L"), dtype=np.float64)  # (H, W) 0..255
    assert locate_hand(_png(Image.fromarray(grey.astype(np.uint8))), "grey.png")[0] is not None
    if mode == "I;16":
        img = Image.fromarray((grey * 257).astype(np.uint16))
    elif mode == "I":
        img = Image.fromarray((grey * 257).astype(np.int32))
    else:
        img = Image.fromarray((grey / 255).astype(np.float32))
    buf = io.BytesIO()
    img.save(buf, "TIFF")
    assert Image.open(io.BytesIO(buf.getvalue())).mode == mode
    hand, crop, whole = locate_hand(buf.getvalue(), "wide.tif")
    assert whole is None and hand is not None and crop is not None
