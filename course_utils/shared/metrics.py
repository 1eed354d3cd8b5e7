"""Notebooks 05a, 05c and 06: how sequence models are scored (exact match, F1, the confusion matrix).

:func:`exact_match` compares whole output sequences (05c's reversal, 06's dates);
:func:`binary_f1` scores one tag of a tagger, counted over every token (05c's word ends);
:func:`confusion_matrix` counts which class is mistaken for which (05a; drawn by
:func:`course_utils.core.plotting.plot_confusion`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.shapes import require_shape


def exact_match(pred: torch.Tensor, targets: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Per sequence: does ``pred`` reproduce ``targets`` (B, T) at every position? ``(B,)`` bool.

    Target positions holding ``ignore_index`` (padding after EOS) are not compared; ``pred``
    may be longer than ``targets`` (a decoder run for a fixed number of steps).
    """
    require_shape("targets", targets, ("B", "T"))
    require_shape("pred", pred, (targets.shape[0], "T_pred"))
    if pred.shape[1] < targets.shape[1]:
        raise ValueError(f"pred has shape {tuple(pred.shape)}, expected ({targets.shape[0]}, T_pred) "
                         f"with T_pred >= {targets.shape[1]}: one prediction per target position")
    pred = pred[:, : targets.shape[1]]
    ok = pred == targets
    if ignore_index is not None:
        ok |= targets == ignore_index
    return ok.all(dim=1)


def binary_f1(pred: torch.Tensor, targets: torch.Tensor, positive: int = 1) -> float:
    """F1 of the tag ``positive``, counted over every position of ``pred`` and ``targets`` (same shape).

    ``precision = tp / #predicted positive``, ``recall = tp / #true positive`` and
    ``F1 = 2 precision recall / (precision + recall)``, with 0 for an empty ratio.
    """
    if pred.shape != targets.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)}, expected {tuple(targets.shape)} (the targets' shape)")
    hit, true = pred == positive, targets == positive
    tp = (hit & true).sum().item()
    precision = tp / max(hit.sum().item(), 1)
    recall = tp / max(true.sum().item(), 1)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` counts examples of true class ``i`` predicted as ``j``: int64 ``(C, C)``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred should both have shape (N,), got {y_true.shape} and {y_pred.shape}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm
