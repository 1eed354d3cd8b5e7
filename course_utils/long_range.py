"""Notebooks 02, 03, 04 and 09 (sections 6, 5-8, 4-5 and 5): a recurrent layer read at its last step; gradients by lag.

:class:`SequenceToOne` solves the adding problem (:mod:`course_utils.data.adding`) with any
of the course's recurrent layers; :func:`gradient_by_lag` measures how far back its output
still depends on the input; :func:`check_adding_config` grades a learner's choice of
hyperparameters by training with them (the last exercise of 03 and 04).

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.long_range`.
"""

from __future__ import annotations

import torch
from torch import nn

from .core.shapes import require_shape
from .shared.layers import recurrent_layer


class SequenceToOne(nn.Module):
    """A recurrent layer (``torch.nn.RNN``, ``LSTM`` or ``GRU``) read out at its last step.

    ``forward(x)`` takes ``(B, T, input_size)`` and returns ``(B, out_features)``: a linear
    map of the hidden state after the last step. An LSTM starts with forget-gate bias
    ``forget_bias`` (see :func:`course_utils.shared.layers.set_forget_bias`; ``None`` keeps PyTorch's).
    """

    def __init__(
        self, kind: str, input_size: int, hidden_size: int, out_features: int = 1, *, forget_bias: float | None = 1.0
    ) -> None:
        super().__init__()
        self.kind = kind
        self.input_size = input_size
        self.rnn = recurrent_layer(kind, input_size, hidden_size, forget_bias=forget_bias)
        self.head = nn.Linear(hidden_size, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_shape("x", x, ("B", "T", self.input_size))
        outputs, _ = self.rnn(x)  # (B, T, H)
        return self.head(outputs[:, -1])  # (B, out_features)


def gradient_by_lag(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """How strongly the output depends on each past input: ``||d sum(model(x)) / d x_t||`` by lag.

    Args:
        model: maps ``(B, T, I)`` to ``(B, out)`` (e.g. :class:`SequenceToOne`).
        x: ``(B, T, I)``.

    Returns:
        ``(T,)`` on the CPU: entry ``k`` is the gradient norm for the input ``k`` steps before
        the last one (``t = T - 1 - k``), averaged over the batch.
    """
    if x.dim() != 3:
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, T, I)")
    x = x.detach().clone().requires_grad_(True)
    was_training = model.training
    model.eval()
    model(x).sum().backward()
    model.train(was_training)
    norms = x.grad.norm(dim=-1).mean(dim=0)  # (T,) by time step t
    return norms.flip(0).cpu()  # (T,) by lag k = T - 1 - t
