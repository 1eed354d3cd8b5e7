"""A long-range memory task, the adding problem, and a model that reads a whole sequence.

The adding problem (Hochreiter & Schmidhuber 1997), in its common modern form: each
input step carries two numbers, a value drawn from U[0, 1] and a marker that is 1 at
exactly two steps and 0 elsewhere. The target is the sum of the two marked values. One
marker lies in the first half of the sequence and one in the second, so the model must
carry a value across at least half the sequence. Predicting the constant 1 (the mean of
the target) gives an MSE of Var(u1 + u2) = 2/12 = 1/6: that is the trivial baseline.
"""

from __future__ import annotations

import torch
from torch import nn

from .lstm import RECURRENT_LAYERS, recurrent_layer

BASELINE_MSE = 1.0 / 6.0  # MSE of always predicting 1: Var(U1 + U2) = 2 * 1/12


def adding_problem(n: int, length: int, *, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` adding-problem sequences of ``length`` steps.

    Returns:
        x: ``(n, length, 2)`` float32; ``x[..., 0]`` the values, ``x[..., 1]`` the markers.
        y: ``(n, 1)`` float32, the sum of the two marked values.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if length < 2:
        raise ValueError(f"length must be at least 2 (one marker per half), got {length}")
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    values = torch.rand(n, length, generator=g)  # (n, T)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=g)  # (n,) a step in [0, T/2)
    second = torch.randint(half, length, (n,), generator=g)  # (n,) a step in [T/2, T)
    markers = torch.zeros(n, length)  # (n, T)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (n, T, 2)
    y = (values * markers).sum(dim=1, keepdim=True)  # (n, 1)
    return x, y


def adding_batches(
    n_batches: int, batch_size: int, length: int, *, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A list of ``n_batches`` fresh ``(x, y)`` batches for :func:`course_utils.fit`."""
    if n_batches < 1 or batch_size < 1:
        raise ValueError(f"n_batches and batch_size must be at least 1, got {n_batches} and {batch_size}")
    x, y = adding_problem(n_batches * batch_size, length, seed=seed)
    return list(zip(x.split(batch_size), y.split(batch_size), strict=True))


class SequenceToOne(nn.Module):
    """A recurrent layer (``torch.nn.RNN``, ``LSTM`` or ``GRU``) read out at its last step.

    ``forward(x)`` takes ``(B, T, input_size)`` and returns ``(B, out_features)``: a linear
    map of the hidden state after the last step. An LSTM starts with forget-gate bias
    ``forget_bias`` (see :func:`course_utils.lstm.set_forget_bias`; ``None`` keeps PyTorch's).
    """

    def __init__(
        self, kind: str, input_size: int, hidden_size: int, out_features: int = 1, *, forget_bias: float | None = 1.0
    ) -> None:
        super().__init__()
        if kind not in RECURRENT_LAYERS:
            raise ValueError(f"kind must be one of {', '.join(RECURRENT_LAYERS)}, got {kind!r}")
        self.kind = kind
        self.input_size = input_size
        self.rnn = recurrent_layer(kind, input_size, hidden_size, forget_bias=forget_bias)
        self.head = nn.Linear(hidden_size, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, T, {self.input_size})")
        outputs, _ = self.rnn(x)  # (B, T, H)
        return self.head(outputs[:, -1])  # (B, out_features)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
