"""Notebook 09c, section 3: the selective-copying task (Gu & Dao 2023, section 3.1) and plain copying.

A sequence of ``length`` tokens: in its first ``length - n_data`` positions (the data region),
``n_data`` data tokens stand among blank tokens; its last ``n_data`` positions hold a marker
token each. At the ``k``-th marker the model must output the ``k``-th data token::

    tokens   3 0 0 1 0 0 0 4 0 2 0 0 | M M M M        (0 = blank, M = marker)
    targets  . . . . . . . . . . . . | 3 1 4 2        (. = IGNORE, no loss there)

- **Selective copying**: the data tokens stand at random positions, different in every
  sequence: a model must decide, token by token, what to keep and what to skip.
- **Plain copying** (``fixed_positions=True``): they stand in the first ``n_data`` positions,
  always; the lag from each data token to its marker is the same in every sequence, which a
  time-invariant (LTI) model can learn.

Token ids: ``BLANK = 0``, data symbols ``1 .. n_symbols``, the marker ``n_symbols + 1``;
:func:`copy_vocab_size` counts them.
"""

from __future__ import annotations

import torch

BLANK = 0
IGNORE = -100  # the target where no output is scored (``F.cross_entropy``'s default ignore_index)


def copy_vocab_size(n_symbols: int) -> int:
    """Blank, ``n_symbols`` data symbols and the marker: ``n_symbols + 2``."""
    return n_symbols + 2


def _check_task(length: int, n_data: int, n_symbols: int) -> None:
    for name, value in (("length", length), ("n_data", n_data), ("n_symbols", n_symbols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if length < 2 * n_data:
        raise ValueError(f"length must be at least 2 * n_data = {2 * n_data} (room for the data and the markers), "
                         f"got {length}")


def selective_copying(
    n: int, *, length: int = 32, n_data: int = 4, n_symbols: int = 4, fixed_positions: bool = False,
    seed: int | None = None,
) -> torch.Tensor:
    """``n`` sequences of the (selective or plain) copying task: ``tokens`` ``(n, length)``, int64.

    Data symbols are drawn uniformly from ``1 .. n_symbols`` (repeats allowed); their positions
    are ``n_data`` distinct random positions of the data region, in increasing order
    (``fixed_positions=False``), or the first ``n_data`` positions (``True``). Build the targets
    with :func:`copy_targets`.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1, got {n!r}")
    _check_task(length, n_data, n_symbols)
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    region = length - n_data
    symbols = torch.randint(1, n_symbols + 1, (n, n_data), generator=g)  # (n, K)
    if fixed_positions:
        positions = torch.arange(n_data).expand(n, n_data)  # (n, K)
    else:
        positions = torch.rand(n, region, generator=g).argsort(dim=1)[:, :n_data].sort(dim=1).values  # (n, K)
    tokens = torch.full((n, length), BLANK, dtype=torch.long)  # (n, T)
    tokens.scatter_(1, positions, symbols)
    tokens[:, region:] = n_symbols + 1  # the markers
    return tokens


def copy_targets(tokens: torch.Tensor, n_data: int) -> torch.Tensor:
    """The targets of :func:`selective_copying`: ``(n, T)`` int64, :data:`IGNORE` except at the markers.

    At the ``k``-th of the last ``n_data`` positions stands the ``k``-th data token (neither blank
    nor marker) of the data region, in order of appearance.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long or tokens.dim() != 2:
        got = getattr(tokens, "dtype", type(tokens).__name__)
        raise TypeError(f"tokens must be an int64 tensor of shape (n, T), got {got} of shape "
                        f"{tuple(getattr(tokens, 'shape', ()))}")
    n, T = tokens.shape
    region = T - n_data
    if n_data < 1 or region < n_data:
        raise ValueError(f"n_data must be from 1 to T / 2 = {T // 2}, got {n_data}")
    marker = tokens[:, region:]  # (n, K)
    data_region = tokens[:, :region]  # (n, T - K)
    is_data = (data_region != BLANK) & (data_region != marker[:, :1])  # (n, T - K)
    if not (is_data.sum(dim=1) == n_data).all():
        raise ValueError(f"every sequence must hold exactly n_data = {n_data} data tokens before its markers")
    order = torch.where(is_data, torch.arange(region), region).sort(dim=1).values[:, :n_data]  # (n, K) positions
    targets = torch.full_like(tokens, IGNORE)  # (n, T)
    targets[:, region:] = data_region.gather(1, order)
    return targets
