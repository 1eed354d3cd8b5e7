"""Notebook 09, sections 2-3 and 5: minGRU and minLSTM (Feng et al. 2024), and IndRNN (Li et al. 2018); 09b, section 5.

minGRU and minLSTM ("Were RNNs All We Needed?") drop ``h_{t-1}`` from the gates and the candidate, so each becomes the
linear recurrence ``h_t = a_t * h_{t-1} + b_t`` of :mod:`course_utils.linear_recurrence`::

    minGRU:  z_t = sigmoid(Linear_z(x_t)),  h~_t = Linear_h(x_t)
             h_t = (1 - z_t) * h_{t-1} + z_t * h~_t                 a = 1 - z,  b = z * h~
    minLSTM: f_t = sigmoid(Linear_f(x_t)),  i_t = sigmoid(Linear_i(x_t)),  h~_t = Linear_h(x_t)
             f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
             h_t = f'_t * h_{t-1} + i'_t * h~_t                      a = f',     b = i' * h~

Two variants, as in the paper:

- ``candidate="linear"``: ``h~`` as above (the paper's sequential mode).
- ``candidate="g"``: ``h~ = g(Linear_h(x_t))`` with ``g(x) = x + 0.5 if x >= 0 else sigmoid(x)``
  (positive, continuous): the paper's log-space version, which can run through the log-space
  scan.

``h0`` is the initial *state* itself, in every method and for both candidates: the returned
``h_T`` can be passed back as ``h0``, so running a sequence in two halves with ``h_T`` passed
across gives the states of one pass. (The paper's log-space code starts from ``log_g(h_0)``,
i.e. the state ``g(h_0)``: fed its own ``h_T`` it would apply ``g`` a second time.) The
log-space scan takes ``log h0``, so ``method="log"`` needs ``h0 > 0`` and raises a
``ValueError`` otherwise; with ``candidate="g"`` every state is positive once the start is, so
an ``h_T`` from any method can go back in. Without ``h0`` the state starts at 0 for
``candidate="linear"`` and at ``g(0) = 0.5`` for ``"g"`` (a positive start for the log scan).

Following the paper: the gates and the candidate read ``x_t`` only, minLSTM's normalisation,
``g`` and ``log_g``, the log-space scan. The course's choices: computing minLSTM's normalised
gates in log space in every method (``f' = sigmoid(log f - log i)``, no ``0 / 0`` where both
gates underflow), ``h0`` taken as the state (not ``g(h0)``) in every method, the chunked scan,
and notebook 09's gate-bias initialisation.

:class:`IndRNN`: ``h_t = relu(W x_t + u * h_{t-1} + b)``, ``u`` a vector (one recurrent weight
per unit), so ``dh_t/dh_{t-1}`` is diagonal: ``u * relu'(.)``.

:class:`SignedMinGRU` (notebook 09b, section 5): minGRU with ``a = 1 - 2 z`` in ``(-1, 1)``
instead of ``1 - z`` in ``(0, 1)`` (the change Grazzi et al. 2024 make to Mamba and DeltaNet),
so that one step can flip the sign of the state. A negative ``a`` has no logarithm: it runs
with the loop or the chunked scan, and ``method='log'`` is a ``ValueError``.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.min_rnns`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .core.shapes import require_shape
from .linear_recurrence import scan_chunked, scan_log, scan_loop

Candidate = Literal["linear", "g"]
Method = Literal["loop", "log", "chunked"]
METHODS = ("loop", "log", "chunked")


def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's positive activation: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below (continuous at 0)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """``log(g(x))`` computed stably: ``log(relu(x) + 0.5)`` for ``x >= 0``, ``-softplus(-x)`` below."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def _check_x(x: torch.Tensor, input_size: int) -> tuple[int, int]:
    require_shape("x", x, ("T", "B", input_size))
    return x.shape[0], x.shape[1]


def _check_min_rnn_options(candidate: str, method: str) -> None:
    if candidate not in ("linear", "g"):
        raise ValueError(f"candidate must be 'linear' or 'g', got {candidate!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "log" and candidate != "g":
        raise ValueError("method='log' needs positive inputs: use candidate='g' (the paper's log-space variant)")


class _MinRNN(nn.Module):
    """Shared code: ``forward(x (T, B, I), h0 (B, H) | None, method=...) -> (h (T, B, H), h_T (B, H))``.

    ``h0`` is the initial state in every method (``h_T`` can be passed back as ``h0``); ``method='log'``
    needs ``h0 > 0``. Without ``h0``: :meth:`initial_state`.
    """

    n_blocks = 0  # number of Linear(I, H) maps: 2 for minGRU, 3 for minLSTM

    def __init__(
        self, input_size: int, hidden_size: int, *, candidate: Candidate = "g", chunk: int | None = None
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be >= 1, got {input_size} and {hidden_size}")
        _check_min_rnn_options(candidate, "loop")
        self.input_size, self.hidden_size, self.candidate, self.chunk = input_size, hidden_size, candidate, chunk
        self.linear = nn.Linear(input_size, self.n_blocks * hidden_size)  # all blocks in one matmul

    def initial_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        """The default initial *state* ``(batch, H)``: zeros for ``candidate='linear'``, ``g(0) = 0.5`` for ``'g'``."""
        return like.new_full((batch, self.hidden_size), 0.0 if self.candidate == "linear" else 0.5)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None, *, method: Method = "loop"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        T, B = _check_x(x, self.input_size)
        _check_min_rnn_options(self.candidate, method)
        if h0 is None:
            state0 = self.initial_state(B, x)  # (B, H)
        else:
            require_shape("h0", h0, (B, self.hidden_size))
            state0 = h0  # (B, H): the state itself, so that h_T can be passed back as h0
        if method == "log":
            if not bool((state0 > 0).all()):
                raise ValueError(_LOG_NEEDS_POSITIVE_H0)
            h = scan_log(*self.recurrence(x, log=True), torch.log(state0))
        elif method == "chunked":
            h = scan_chunked(*self.recurrence(x), state0, chunk=self.chunk)
        else:
            h = scan_loop(*self.recurrence(x), state0)
        return h, h[-1]

    def recurrence(self, x: torch.Tensor, log: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, b)`` of ``h_t = a_t h_{t-1} + b_t``, each ``(T, B, H)``; ``(log a, log b)`` if ``log``."""
        raise NotImplementedError


class MinGRU(_MinRNN):
    """minGRU: ``z = sigmoid(Linear_z(x))``, ``h~ = Linear_h(x)`` (or ``g(.)``), ``h = (1 - z) h_prev + z h~``.

    Parameters: ``2 * (I * H + H)`` (one ``Linear(I, 2H)`` holding the z and h~ blocks).
    """

    n_blocks = 2

    def recurrence(self, x: torch.Tensor, log: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        k, pre_h = self.linear(x).chunk(2, dim=-1)  # each (T, B, H)
        if log:  # the paper's log-space form: log(1 - z) = -softplus(k), log z = -softplus(-k)
            return -F.softplus(k), -F.softplus(-k) + log_g(pre_h)
        z = torch.sigmoid(k)
        h_tilde = pre_h if self.candidate == "linear" else g(pre_h)
        return 1 - z, z * h_tilde


class MinLSTM(_MinRNN):
    """minLSTM: ``f, i = sigmoid(Linear(x))``, normalised ``f' = f / (f + i)``, ``i' = i / (f + i)``.

    ``h = f' h_prev + i' h~``. Parameters: ``3 * (I * H + H)``.
    """

    n_blocks = 3

    def recurrence(self, x: torch.Tensor, log: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        k_f, k_i, pre_h = self.linear(x).chunk(3, dim=-1)  # each (T, B, H)
        if log:  # the paper's log-space form, with diff = log i - log f
            diff = F.softplus(-k_f) - F.softplus(-k_i)
            return -F.softplus(diff), -F.softplus(-diff) + log_g(pre_h)  # log f', log i' + log h~
        f_norm, i_norm = min_lstm_gates(k_f, k_i)  # f / (f + i), i / (f + i) without 0 / 0 when both underflow
        h_tilde = pre_h if self.candidate == "linear" else g(pre_h)
        return f_norm, i_norm * h_tilde


class SignedMinGRU(MinGRU):
    """minGRU with a signed decay: ``z = sigmoid(Linear_z(x))``, ``a = 1 - 2 z`` in ``(-1, 1)``, ``b = z h~``.

    ``h = (1 - 2 z) h_prev + z h~``: where ``z`` is near 1 the step flips the sign of the state
    (``a`` near -1), where ``z`` is near 0 it keeps it (``a`` near 1). Same parameters as
    :class:`MinGRU`; ``candidate`` defaults to ``"linear"``. Runs with ``method="loop"`` or
    ``"chunked"``; ``"log"`` raises a ``ValueError`` (``log a`` does not exist for ``a < 0``).
    """

    def __init__(
        self, input_size: int, hidden_size: int, *, candidate: Candidate = "linear", chunk: int | None = None
    ) -> None:
        super().__init__(input_size, hidden_size, candidate=candidate, chunk=chunk)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None, *, method: Method = "loop"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if method == "log":
            raise ValueError(_NO_LOG_FOR_SIGNED)
        return super().forward(x, h0, method=method)

    def recurrence(self, x: torch.Tensor, log: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        if log:
            raise ValueError(_NO_LOG_FOR_SIGNED)
        k, pre_h = self.linear(x).chunk(2, dim=-1)  # each (T, B, H)
        z = torch.sigmoid(k)
        h_tilde = pre_h if self.candidate == "linear" else g(pre_h)
        return 1 - 2 * z, z * h_tilde  # a in (-1, 1), b


_LOG_NEEDS_POSITIVE_H0 = ("method='log' needs a positive initial state h0 (the log-space scan starts from log h0): "
                          "got h0 <= 0 somewhere. With candidate='g' every state after a positive start is positive, "
                          "so an h_T of this layer can go back in; for an h0 of any sign use method='chunked' or "
                          "method='loop'.")

_NO_LOG_FOR_SIGNED = ("SignedMinGRU cannot run with method='log': its a = 1 - 2z is negative where z > 1/2, and the "
                      "log-space scan needs log a (NaN for a < 0). Use method='chunked' or method='loop'.")


def min_rnn_param_count(kind: str, input_size: int, hidden_size: int) -> int:
    """``2 (I H + H)`` for ``"minGRU"``, ``3 (I H + H)`` for ``"minLSTM"``."""
    blocks = {"minGRU": 2, "minLSTM": 3}
    if kind not in blocks:
        raise ValueError(f"kind must be 'minGRU' or 'minLSTM', got {kind!r}")
    return blocks[kind] * (input_size * hidden_size + hidden_size)


class IndRNN(nn.Module):
    """``h_t = relu(x_t @ W.T + u * h_{t-1} + b)`` with a recurrent *vector* ``u`` (H,); ``x`` is ``(T, B, I)``.

    ``u`` starts uniform in ``[0, 1]`` unless ``u_init`` is given. Parameters: ``I * H + 2 H``.
    """

    def __init__(self, input_size: int, hidden_size: int, *, u_init: float | None = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.input = nn.Linear(input_size, hidden_size)  # W (H, I), b (H,)
        u = torch.rand(hidden_size) if u_init is None else torch.full((hidden_size,), float(u_init))
        self.u = nn.Parameter(u)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        T, B = _check_x(x, self.input_size)
        h = x.new_zeros(B, self.hidden_size) if h0 is None else h0  # (B, H)
        require_shape("h0", h, (B, self.hidden_size))
        hs = []
        for wx_t in self.input(x).unbind(0):  # (B, H): the input part of every step, in one matmul
            h = torch.relu(wx_t + self.u * h)
            hs.append(h)
        out = torch.stack(hs)  # (T, B, H)
        return out, h


class LastStep(nn.Module):
    """A recurrent layer with the course's call ``layer(x (T, B, I)) -> (outputs (T, B, H), ...)``, read out
    at the last step by a linear map: ``forward(x (B, T, I)) -> (B, out_features)``, like
    :class:`course_utils.long_range.SequenceToOne`. ``kwargs`` go to the layer's call (e.g. ``method``).
    """

    def __init__(self, layer: nn.Module, hidden_size: int, out_features: int = 1, **kwargs) -> None:
        super().__init__()
        self.layer, self.kwargs = layer, kwargs
        self.head = nn.Linear(hidden_size, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_shape("x", x, ("B", "T", "I"))
        outputs = self.layer(x.transpose(0, 1), **self.kwargs)[0]  # (T, B, H)
        return self.head(outputs[-1])  # (B, out_features)


# ----------------------------------------------------------------------------- exercise: minLSTM's gates, stably

def min_lstm_gates(k_f: torch.Tensor, k_i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """minLSTM's normalised gates ``f' = f / (f + i)``, ``i' = i / (f + i)`` from pre-activations ``k_f``, ``k_i``.

    With ``f = sigmoid(k_f)`` and ``i = sigmoid(k_i)``, ``f' = sigmoid(log f - log i)`` and
    ``log f = -softplus(-k_f)``: finite even where both gates underflow to 0 (``0 / 0`` in the
    direct form). Any shape; returns ``(f', i')``, each the shape of ``k_f``.
    """
    diff = F.softplus(-k_f) - F.softplus(-k_i)  # log i - log f
    return torch.sigmoid(-diff), torch.sigmoid(diff)
