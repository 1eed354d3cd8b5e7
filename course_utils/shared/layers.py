"""Notebooks 03-05d, 08 and 09: ``torch.nn``'s recurrent layers by name, the LSTM's forget bias, parameter counts.

One registry, lower-case names (``"rnn"``, ``"lstm"``, ``"gru"``; any letter case is accepted),
so every model that takes a ``kind`` or ``cell`` argument builds its layer the same way.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .gated import gate_slices

RECURRENT_LAYERS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def layer_class(kind: str) -> type[nn.RNNBase]:
    """``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` for ``kind`` (any letter case); a clear error otherwise."""
    if not isinstance(kind, str) or kind.lower() not in RECURRENT_LAYERS:
        raise ValueError(f"kind must be one of {', '.join(RECURRENT_LAYERS)} (any letter case), got {kind!r}")
    return RECURRENT_LAYERS[kind.lower()]


def recurrent_layer(kind: str, input_size: int, hidden_size: int, *, forget_bias: float | None = None,
                    **kwargs) -> nn.RNNBase:
    """A batch-first ``torch.nn`` recurrent layer; ``kwargs`` go to it (``num_layers``, ``bidirectional``).

    An LSTM gets the forget-gate bias ``forget_bias`` in every layer and direction (see
    :func:`set_forget_bias`); ``None`` keeps PyTorch's initialisation.
    """
    layer = layer_class(kind)(input_size, hidden_size, batch_first=True, **kwargs)
    if isinstance(layer, nn.LSTM) and forget_bias is not None:
        set_forget_bias(layer, forget_bias)
    return layer


def time_first_copy(layer: nn.RNNBase) -> nn.RNNBase:
    """A copy of a batch-first recurrent layer that takes and returns ``(T, B, ...)``: same weights.

    The course's own LSTM and GRU (notebooks 03, 04) are time-first, and their ``from_torch``
    refuses a batch-first layer rather than copy it into a model that reads its inputs the
    other way round; pass this copy instead, and transpose the inputs yourself.
    """
    twin = copy.deepcopy(layer)
    twin.batch_first = False
    return twin


def set_forget_bias(lstm: nn.LSTM, value: float = 1.0) -> None:
    """Set the forget gate's total bias ``b_f = b_ih[f] + b_hh[f]`` of an ``nn.LSTM`` to ``value`` (every layer).

    A positive forget bias starts training with ``f`` near ``sigmoid(value)`` instead of
    0.5, so the cell state (and its gradient) decays slowly from the first step on
    (recommended by Jozefowicz et al. 2015).
    """
    rows = gate_slices(lstm.hidden_size)["f"]
    with torch.no_grad():
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_ih_l"):  # one per layer and direction
                bias[rows] = value
            elif name.startswith("bias_hh_l"):
                bias[rows] = 0.0


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
