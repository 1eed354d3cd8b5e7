"""Notebooks 05a-05c, section 2 of 05a: sequences of different lengths padded into one batch.

Every data set of token-id sequences becomes a batch the same way: right-pad to the longest
sequence and keep the lengths, which the masks and packing of notebook 05a then use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_batch(seqs: Sequence[Sequence[int] | np.ndarray], pad_value: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences to a common length.

    Returns:
        ``(padded, lengths)``: int64 tensors of shapes ``(B, T_max)`` and ``(B,)``.
    """
    if len(seqs) == 0:
        raise ValueError("pad_batch got no sequences")
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    if lengths.min() < 1:
        raise ValueError("pad_batch got an empty sequence; every sequence needs at least one step")
    padded = torch.full((len(seqs), int(lengths.max())), pad_value, dtype=torch.long)
    for b, s in enumerate(seqs):
        padded[b, : len(s)] = torch.as_tensor(np.asarray(s), dtype=torch.long)
    return padded, lengths
