"""Evaluation on the test set: accuracy, per-class precision/recall/F1, the confusion matrix,
and the mistakes (which images, which letters, how confident).

The numbers are computed here with numpy and checked against scikit-learn in the tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data import Split
from .labels import LETTERS, NUM_CLASSES
from .predict import predict_logits, to_float_images


@dataclass(frozen=True)
class Evaluation:
    """Predictions on a split and the metrics derived from them."""

    y_true: np.ndarray  # (N,) class index
    y_pred: np.ndarray  # (N,)
    probs: np.ndarray  # (N, 24) softmax probabilities

    @property
    def confidence(self) -> np.ndarray:
        return self.probs[np.arange(len(self.y_pred)), self.y_pred]

    @property
    def accuracy(self) -> float:
        return float((self.y_true == self.y_pred).mean()) if len(self.y_true) else 0.0

    @property
    def errors(self) -> int:
        """How many images it got wrong."""
        return int((self.y_true != self.y_pred).sum())

    @property
    def confusion(self) -> np.ndarray:
        """(24, 24) counts; rows are the true letter, columns the predicted one."""
        cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        np.add.at(cm, (self.y_true, self.y_pred), 1)
        return cm

    def per_class(self) -> list[dict[str, Any]]:
        """Precision, recall, F1 and support of each letter (0 where undefined, as sklearn's zero_division=0)."""
        cm = self.confusion
        tp = np.diag(cm).astype(float)
        predicted, support = cm.sum(0), cm.sum(1)
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
        return [{"letter": LETTERS[k], "precision": float(precision[k]), "recall": float(recall[k]),
                 "f1": float(f1[k]), "support": int(support[k])} for k in range(NUM_CLASSES)]

    def mistakes(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Misclassified images, most confident first: index, true and predicted letter, confidence."""
        wrong = np.flatnonzero(self.y_true != self.y_pred)
        order = wrong[np.argsort(-self.confidence[wrong], kind="stable")]
        if limit is not None:
            order = order[:limit]
        conf = self.confidence
        return [{"index": int(i), "true": LETTERS[self.y_true[i]], "predicted": LETTERS[self.y_pred[i]],
                 "confidence": float(conf[i])} for i in order]

    def pair(self, true_index: int, pred_index: int) -> np.ndarray:
        """Indices of the images of one confusion cell, most confident first."""
        idx = np.flatnonzero((self.y_true == true_index) & (self.y_pred == pred_index))
        return idx[np.argsort(-self.confidence[idx], kind="stable")]

    def to_json(self) -> dict[str, Any]:
        """The ``evaluate --json`` contract: accuracy, per_class, confusion (rows = true letter)."""
        return {"accuracy": self.accuracy, "n": int(len(self.y_true)), "letters": list(LETTERS),
                "per_class": self.per_class(), "confusion": self.confusion.tolist()}


def evaluate_model(model: torch.nn.Module, split: Split) -> Evaluation:
    """Run ``model`` over a split (on the model's device) and collect its predictions."""
    dev = next(model.parameters()).device
    logits = predict_logits(model, to_float_images(split.images, dev))
    probs = torch.softmax(logits, dim=1).cpu().numpy()
    return Evaluation(y_true=np.asarray(split.targets), y_pred=probs.argmax(1), probs=probs)
