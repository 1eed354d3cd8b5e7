"""Notebook 09b, section 5: state tracking, what a linear recurrence can count (parity, counting mod m).

The task: read a string of bits ``x_1 .. x_T`` and say how many ones it holds, modulo ``m``
(``m = 2``: parity). A one-unit linear recurrence solves parity exactly at every length with a
negative coefficient (:func:`parity_scan_inputs`: ``a_t = 1 - 2 x_t``, ``b_t = 0``, ``h_0 = 1``,
so ``h_t = (-1)^(ones so far)``); with ``a_t`` in ``(0, 1)`` it cannot flip a sign.

- :func:`count_mod_batch`: random bit strings, one-hot ``(B, T, 2)``, and their labels; a fixed
  rule (:func:`is_held_out`) keeps some strings of length >= 10 out of training, to test on
  strings of the training lengths that the model never saw.
- :class:`StateTracker`: a recurrent layer (minGRU with ``a`` in ``(0, 1)`` or ``(-1, 1)``, or
  ``torch.nn.GRU``), read at its last step by a small MLP.
- :func:`train_state_tracker` (with a length curriculum) and :func:`accuracy_by_length`.
- :func:`check_parity_scan_inputs`: the exercise's check.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.state_tracking`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .core.device import get_device
from .core.seed import seed_everything
from .core.shapes import require_shape
from .core.training import History, fit, supervised
from .min_rnns import MinGRU, SignedMinGRU

KINDS = ("minGRU, a in (0, 1)", "minGRU, a in (-1, 1)", "GRU")
HELD_OUT_FROM = 10  # strings of this length or longer may be held out of training


def is_held_out(bits: torch.Tensor) -> torch.Tensor:
    """Which strings training never sees: length >= 10 and ``sum_t x_t 2^t = 3 (mod 7)``, about 1 in 7.

    ``bits`` ``(B, T)`` of 0 and 1; returns a bool ``(B,)``. The residue is summed step by step
    (``2^t mod 7``), so it works at any length.
    """
    require_shape("bits", bits, ("B", "T"))
    B, T = bits.shape
    if T < HELD_OUT_FROM:
        return torch.zeros(B, dtype=torch.bool, device=bits.device)
    weights = torch.tensor([pow(2, t, 7) for t in range(T)], device=bits.device)  # (T,)
    return (bits.long() * weights).sum(1) % 7 == 3  # (B,)


def count_mod_batch(
    batch_size: int,
    length: int,
    modulus: int = 2,
    *,
    generator: torch.Generator | None = None,
    held_out: str = "any",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random bit strings of ``length`` steps and the number of ones in each, modulo ``modulus``.

    Returns ``x`` ``(B, T, 2)`` (one-hot float) and ``y`` ``(B,)`` (long, in ``0 .. modulus - 1``).
    ``held_out``: ``"any"`` (every string), ``"exclude"`` (training: no held-out string) or
    ``"only"`` (held-out strings only; needs ``length >= 10``). On the CPU.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be an int >= 1, got {length!r}")
    if not isinstance(modulus, int) or modulus < 2:
        raise ValueError(f"modulus must be an int >= 2 (2 is parity), got {modulus!r}")
    if held_out not in ("any", "exclude", "only"):
        raise ValueError(f"held_out must be 'any', 'exclude' or 'only', got {held_out!r}")
    if held_out == "only" and length < HELD_OUT_FROM:
        raise ValueError(f"held_out='only' needs length >= {HELD_OUT_FROM} (shorter strings are never held out), "
                         f"got length {length}")
    kept, count = [], 0
    while count < batch_size:
        bits = torch.randint(0, 2, (2 * batch_size, length), generator=generator)  # (2B, T)
        if held_out != "any":
            out = is_held_out(bits)
            bits = bits[out] if held_out == "only" else bits[~out]
        kept.append(bits)
        count += len(bits)
    bits = torch.cat(kept)[:batch_size]  # (B, T)
    return F.one_hot(bits, 2).float(), bits.sum(1) % modulus


def parity_scan_inputs(bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(a, b, h0)`` of ``h_t = a_t h_{t-1} + b_t`` with ``h_t = (-1)^(number of ones in x_1 .. x_t)``.

    ``bits`` ``(T, B, H)`` of 0 and 1 (any float dtype): ``a = 1 - 2 x`` (-1 on a one, 1 on a
    zero), ``b = 0``, ``h0 = 1`` ``(B, H)``. Exact at every length: only multiplications by +-1.
    """
    require_shape("bits", bits, ("T", "B", "H"))
    return 1 - 2 * bits, torch.zeros_like(bits), torch.ones_like(bits[0])


class StateTracker(nn.Module):
    """A recurrent layer read at its last step by an MLP: ``forward(x (B, T, 2)) -> logits (B, modulus)``.

    ``kind``: ``"minGRU, a in (0, 1)"`` (:class:`~course_utils.min_rnns.MinGRU`, linear
    candidate), ``"minGRU, a in (-1, 1)"`` (:class:`~course_utils.min_rnns.SignedMinGRU`), both
    run with the chunked scan, or ``"GRU"`` (``torch.nn.GRU``). The head is
    ``Linear(H, head_size) -> ReLU -> Linear(head_size, modulus)``.
    """

    def __init__(self, kind: str, hidden_size: int, modulus: int = 2, head_size: int = 32) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        if kind == "GRU":
            self.layer: nn.Module = nn.GRU(2, hidden_size)
        else:
            self.layer = (MinGRU if kind == KINDS[0] else SignedMinGRU)(2, hidden_size, candidate="linear")
        self.head = nn.Sequential(nn.Linear(hidden_size, head_size), nn.ReLU(), nn.Linear(head_size, modulus))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_shape("x", x, ("B", "T", 2))
        x = x.transpose(0, 1)  # (T, B, 2): the layers are time-major
        if self.kind == "GRU":
            outputs = self.layer(x)[0]  # (T, B, H)
        else:
            outputs = self.layer(x, method="chunked")[0]  # (T, B, H)
        return self.head(outputs[-1])  # (B, modulus)


def curriculum_lengths(steps: int, lengths: tuple[int, int], generator: torch.Generator) -> list[int]:
    """One string length per step: uniform in ``lo .. top``, ``top`` growing from ``lo + 1`` to ``hi`` over the
    first half of training, then ``hi``."""
    lo, hi = lengths
    if not 1 <= lo < hi:
        raise ValueError(f"lengths must be (lo, hi) with 1 <= lo < hi, got {lengths!r}")
    out = []
    for step in range(steps):
        top = lo + 1 + round((hi - lo - 1) * min(1.0, 2 * step / steps))
        out.append(int(torch.randint(lo, top + 1, (1,), generator=generator)))
    return out


def train_state_tracker(
    kind: str,
    *,
    modulus: int = 2,
    seed: int = 0,
    steps: int = 400,
    hidden_size: int = 16,
    lengths: tuple[int, int] = (2, 24),
    batch_size: int = 64,
    lr: float = 1e-2,
    device: torch.device | None = None,
    progress: bool = True,
) -> tuple[StateTracker, History]:
    """Train a :class:`StateTracker` on counting mod ``modulus``, held-out strings excluded; return it and its history.

    Adam with learning rate ``lr``, gradients clipped to norm 1, cross-entropy, ``steps``
    batches of ``batch_size`` strings, each batch one length from :func:`curriculum_lengths`.
    """
    device = device or get_device()
    seed_everything(seed)
    model = StateTracker(kind, hidden_size, modulus).to(device)
    generator = torch.Generator().manual_seed(seed)
    schedule = curriculum_lengths(steps, lengths, generator)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for length in schedule:
            yield count_mod_batch(batch_size, length, modulus, generator=generator, held_out="exclude")

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = fit(model, batches, supervised(F.cross_entropy), optimizer, clip_grad_norm=1.0, device=device,
                  progress=progress, desc=f"{kind}, mod {modulus}, seed {seed}", total_steps=steps)
    return model, history


@torch.no_grad()
def accuracy_by_length(
    model: nn.Module,
    lengths: Sequence[int],
    modulus: int = 2,
    *,
    n: int = 256,
    seed: int = 12345,
    held_out: str = "any",
    device: torch.device | None = None,
) -> dict[int, float]:
    """``{length: accuracy}`` of ``model`` on ``n`` fresh strings of each length (eval mode, restored after)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    accuracy = {}
    for length in lengths:
        x, y = count_mod_batch(n, length, modulus, generator=generator, held_out=held_out)
        x, y = x.to(device), y.to(device)
        accuracy[length] = (model(x).argmax(-1) == y).float().mean().item()
    model.train(was_training)
    return accuracy
