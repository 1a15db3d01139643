"""Evaluation: accuracy, per-class precision/recall/F1 and the confusion matrix agree with
scikit-learn on a trained run's predictions; mistakes come most confident first."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from signlab import api
from signlab.evaluate import Evaluation
from signlab.labels import LETTERS
from tests._local import accuracy_on_test


@pytest.fixture(scope="module")
def evaluation(trained_run, dataset) -> Evaluation:
    run, _ = trained_run
    return api.evaluate_run(run, dataset)


def test_predictions_cover_the_test_split(evaluation, dataset):
    n = len(dataset.test)
    assert evaluation.y_true.shape == evaluation.y_pred.shape == (n,)
    assert evaluation.probs.shape == (n, 24)
    np.testing.assert_allclose(evaluation.probs.sum(1), 1.0, atol=1e-5)
    assert np.array_equal(evaluation.y_pred, evaluation.probs.argmax(1))
    assert 0.5 < evaluation.accuracy < 1.0  # a trained model that still makes mistakes


def test_metrics_match_sklearn(evaluation):
    y, p = evaluation.y_true, evaluation.y_pred
    assert evaluation.accuracy == pytest.approx(accuracy_score(y, p))
    cm = confusion_matrix(y, p, labels=list(range(24)))
    assert np.array_equal(evaluation.confusion, cm)
    prec, rec, f1, support = precision_recall_fscore_support(y, p, labels=list(range(24)), zero_division=0)
    rows = evaluation.per_class()
    assert [r["letter"] for r in rows] == list(LETTERS)
    np.testing.assert_allclose([r["precision"] for r in rows], prec, atol=1e-12)
    np.testing.assert_allclose([r["recall"] for r in rows], rec, atol=1e-12)
    np.testing.assert_allclose([r["f1"] for r in rows], f1, atol=1e-12)
    assert [r["support"] for r in rows] == support.tolist()


def test_metrics_match_sklearn_with_absent_classes():
    # letters never predicted and letters never present: precision/recall 0, as zero_division=0
    y = np.array([0, 0, 1, 2, 2, 2, 5])
    p = np.array([0, 1, 1, 2, 3, 3, 0])
    probs = np.full((7, 24), 0.01)
    probs[np.arange(7), p] = 0.77
    ev = Evaluation(y, p, probs)
    prec, rec, f1, support = precision_recall_fscore_support(y, p, labels=list(range(24)), zero_division=0)
    rows = ev.per_class()
    np.testing.assert_allclose([r["precision"] for r in rows], prec)
    np.testing.assert_allclose([r["recall"] for r in rows], rec)
    np.testing.assert_allclose([r["f1"] for r in rows], f1)
    assert np.array_equal(ev.confusion, confusion_matrix(y, p, labels=list(range(24))))


def test_mistakes_sorted_by_confidence(evaluation):
    wrong = int((evaluation.y_true != evaluation.y_pred).sum())
    mistakes = evaluation.mistakes()
    assert len(mistakes) == wrong > 0
    conf = [m["confidence"] for m in mistakes]
    assert conf == sorted(conf, reverse=True)
    for m in mistakes[:50]:
        i = m["index"]
        assert m["true"] == LETTERS[evaluation.y_true[i]] != m["predicted"] == LETTERS[evaluation.y_pred[i]]
        assert m["confidence"] == pytest.approx(evaluation.probs[i].max())
    assert evaluation.mistakes(limit=5) == mistakes[:5]


def test_confusion_cell_images(evaluation):
    cm = evaluation.confusion
    off = cm - np.diag(np.diag(cm))
    t, p = np.unravel_index(off.argmax(), off.shape)
    idx = evaluation.pair(t, p)
    assert len(idx) == cm[t, p]
    assert (evaluation.y_true[idx] == t).all() and (evaluation.y_pred[idx] == p).all()
    conf = evaluation.confidence[idx]
    assert (np.diff(conf) <= 0).all()


def test_to_json(evaluation, dataset):
    j = evaluation.to_json()
    assert j["n"] == len(dataset.test) and j["letters"] == list(LETTERS)
    assert len(j["confusion"]) == 24 and all(len(r) == 24 for r in j["confusion"])
    assert sum(map(sum, j["confusion"])) == len(dataset.test)
    assert sum(j["confusion"][k][k] for k in range(24)) == round(j["accuracy"] * len(dataset.test))
    assert len(j["per_class"]) == 24


def test_evaluate_run_matches_the_training_record(trained_run, evaluation, dataset):
    run, record = trained_run
    assert evaluation.accuracy == pytest.approx(record["test_accuracy"])
    # validation is the test CSV, through the network alone; the evaluation adds the model's
    # test-time shifts
    model = run.load_model()
    assert model.tta and record["val_accuracy"] == pytest.approx(accuracy_on_test(model, dataset, views=False), abs=1e-6)


def test_a_share_short_of_the_whole_never_reads_100():
    """Rounded to a whole percent, a letter with 1 mistake in 248 images read "100" in its cell and
    "(100% of A)" in the hover, beside the per-letter table's 99.6%; a mistake made at 99.6% was
    titled "100%". The cell says 99, the hover and the titles 99.6%."""
    from signlab import figures, views
    from signlab.evaluate import Evaluation

    y = np.zeros(248, int)
    p = y.copy()
    p[0] = 1
    ev = Evaluation(y, p, np.eye(24)[p])
    trace = figures.confusion_matrix_clickable(ev.confusion, normalize=True).data[0]
    assert trace.text[0] == "99" and trace.hovertext[0].startswith("true A, predicted A: 247 images (99.6% of A)")
    assert trace.text[1] == "<1" and "(0.4% of A)" in trace.hovertext[1]
    assert views.confidence_titles(np.array([0.996, 0.5])) == ["99.6%", "50%"]
    assert views.mistake_titles([{"true": "T", "predicted": "X", "confidence": 0.996}]) == ["T→X<br>99.6%"]
    whole = figures.confusion_matrix_clickable(np.eye(24, dtype=int) * 5, normalize=True).data[0]
    assert whole.text[0] == "✓"
