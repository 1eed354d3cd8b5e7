"""Scores of sequence models (course_utils.shared.metrics): exact match and the confusion matrix."""

import numpy as np
import pytest
import torch

from course_utils.output_types import EOS, PAD
from course_utils.shared.metrics import binary_f1, confusion_matrix, exact_match


def test_exact_match_ignoring_padding():
    tgt = torch.tensor([[4, 5, EOS], [6, EOS, PAD]])
    pred = torch.tensor([[4, 5, EOS, 9], [6, EOS, 3, 3]])
    assert exact_match(pred, tgt, ignore_index=PAD).tolist() == [True, True]
    pred[0, 1] = 7
    assert exact_match(pred, tgt, ignore_index=PAD).tolist() == [False, True]
    with pytest.raises(ValueError, match="pred"):
        exact_match(pred[:, :2], tgt, ignore_index=PAD)


def test_exact_match_compares_every_position_by_default():
    tgt = torch.tensor([[4, 5, EOS], [6, EOS, PAD]])
    pred = torch.tensor([[4, 5, EOS, 9], [6, EOS, 3, 3]])
    assert exact_match(pred, tgt).tolist() == [True, False]  # row 1 put 3 where the target has PAD
    pred[1, 2] = PAD
    assert exact_match(pred, tgt).tolist() == [True, True]
    with pytest.raises(ValueError, match=r"targets has shape \(3,\), expected \(B, T\)\."):
        exact_match(pred, tgt[0])


def test_confusion_matrix():
    cm = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert cm.dtype == np.int64
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 1]), np.array([0]), 2)


def test_binary_f1_counts_over_every_token():
    pred = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1]])
    y = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 1]])
    # tp = 2, predicted 3, true 3: precision = recall = 2/3
    assert binary_f1(pred, y) == pytest.approx(2 / 3)
    assert binary_f1(1 - pred, 1 - y, positive=1) == pytest.approx(2 * (4 / 5) * (4 / 5) / (8 / 5))
    assert binary_f1(torch.zeros(2, 4, dtype=torch.long), y) == 0.0  # never predicts the tag
    with pytest.raises(ValueError, match="pred has shape"):
        binary_f1(pred[:, :3], y)
