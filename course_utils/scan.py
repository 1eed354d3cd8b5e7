"""The linear recurrence ``h_t = a_t * h_{t-1} + b_t``, computed three ways (notebook 09_modern_rnns).

minGRU and minLSTM (:mod:`course_utils.min_rnns`) reduce to this recurrence, element by
element, because their gates do not look at ``h_{t-1}``. All functions take time-major
tensors, like the rest of the course: ``a``, ``b`` of shape ``(T, B, H)`` and an initial state
``h0`` of shape ``(B, H)``; they return every state ``h_1 .. h_T`` as ``(T, B, H)``.

- :func:`scan_loop`: the sequential definition, one step at a time (``unbind`` over time).
- :func:`scan_log`: Heinsen's (2023) parallel scan in log space, for positive ``a``, ``b``, ``h0``::

      a*_t  = cumsum_{s<=t} log a_s
      log h_t = a*_t + logcumsumexp_{s<=t}(log b_s - a*_s)      (h_0 enters as s = 0, a_0 = 1)

- :func:`scan_chunked`: the closed form inside chunks of ``C`` steps, sequential across
  chunks, for positive ``a`` (a gate such as minGRU's ``1 - z_t``). Inside a chunk starting
  from state ``h_s``, with ``A_t = a_{s+1} * ... * a_t``::

      h_t = A_t * (h_s + sum_{k<=t} b_k / A_k)     (cumsums of log a and of b / A)

  It divides by ``A_k``: exact while the decay over one chunk stays inside the float range
  (in float32, ``prod(a)`` over a chunk above about 1e-38, e.g. every ``a >= 0.07`` with
  ``C = 32``). Otherwise it raises instead of returning inf or nan (checked on the last state,
  where a non-finite value always ends up).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(name: str, value: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {shape}")


def _check_inputs(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, prefix: str = ""
) -> tuple[int, int, int]:
    if a.dim() != 3:
        raise ValueError(f"{prefix}a has shape {tuple(a.shape)}, expected (T, B, H)")
    T, B, H = a.shape
    _check(prefix + "b", b, (T, B, H))
    if h0 is not None:
        _check(prefix + "h0", h0, (B, H))
    return T, B, H


def scan_loop(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` step by step; ``a``, ``b`` ``(T, B, H)``, ``h0`` ``(B, H)`` (zeros if None).

    Iterates with ``unbind``: each step's slice is its own autograd node. Indexing ``a[t]``
    inside the loop instead makes every backward step write a full-size ``(T, B, H)`` gradient
    (see :func:`scan_loop_indexed`).
    """
    _check_inputs(a, b, h0)
    h = torch.zeros_like(b[0]) if h0 is None else h0  # (B, H)
    hs = []
    for a_t, b_t in zip(a.unbind(0), b.unbind(0), strict=True):  # each (B, H)
        h = a_t * h + b_t
        hs.append(h)
    return torch.stack(hs)  # (T, B, H)


def scan_loop_indexed(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """The same as :func:`scan_loop`, written with ``a[t]`` indexing: a slow baseline, kept to measure the trap.

    Autograd's backward of ``a[t]`` (``select``) allocates a zero tensor the size of all of
    ``a`` and writes one slice into it, for every t: the backward pass costs O(T^2 B H).
    """
    _check_inputs(a, b, h0)
    h = torch.zeros_like(b[0]) if h0 is None else h0
    hs = []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        hs.append(h)
    return torch.stack(hs)


def scan_log(log_a: torch.Tensor, log_b: torch.Tensor, log_h0: torch.Tensor | None = None) -> torch.Tensor:
    """Heinsen's log-space parallel scan: ``h_t`` (not its log) for ``a = exp(log_a)``, ``b = exp(log_b)``.

    Args:
        log_a, log_b: ``(T, B, H)``, logarithms of the (positive) coefficients and inputs.
        log_h0: ``(B, H)``, the log of a positive initial state; None means ``h0 = 0``.

    Returns:
        ``h`` of shape ``(T, B, H)``, the states after steps 1..T (``h0`` not included).

    This is the paper's ``parallel_scan_log`` (Feng et al. 2024, appendix; Heinsen 2023):
    ``h0`` is prepended to the inputs, with ``a*`` padded by a leading 0. Its relative error
    grows with ``|a*_T|`` (float32 resolves ``a* + logcumsumexp(.)`` to ~6e-8 * |a*|).
    """
    _check_inputs(log_a, log_b, log_h0, prefix="log_")
    a_star = torch.cumsum(log_a, dim=0)  # (T, B, H)
    if log_h0 is not None:
        a_star = F.pad(a_star, (0, 0, 0, 0, 1, 0))  # (T + 1, B, H), a*_0 = 0
        log_b = torch.cat([log_h0.unsqueeze(0), log_b])  # (T + 1, B, H)
    log_h = a_star + torch.logcumsumexp(log_b - a_star, dim=0)
    h = torch.exp(log_h)
    return h[1:] if log_h0 is not None else h  # (T, B, H)


def scan_chunked(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, chunk: int = 32) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` in closed form inside chunks of ``chunk`` steps, sequential across chunks.

    For each chunk ``(C, B, H)``, from the state ``h`` carried in::

        L = cumsum(log a)                          # log A_t, A_t = a_1 * ... * a_t inside the chunk
        h_chunk = exp(L) * (h + cumsum(b * exp(-L)))   # every state of the chunk at once
        h = h_chunk[-1]                            # carried into the next chunk

    (``exp(-L)`` rather than ``1 / cumprod(a)``: the backward pass of a division squares ``A``
    and overflows much sooner.) ``T / chunk`` Python steps instead of ``T``; each works on a
    block small enough to stay in the CPU cache. Raises ``FloatingPointError`` if the decay
    over a chunk leaves the float range: choose a smaller ``chunk``.
    """
    _check_inputs(a, b, h0)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    h = torch.zeros_like(b[0]) if h0 is None else h0  # (B, H)
    chunks = []
    for log_a_c, b_c in zip(torch.log(a).split(chunk), b.split(chunk), strict=True):  # each (C, B, H)
        L = torch.cumsum(log_a_c, dim=0)  # (C, B, H)
        h_c = torch.exp(L) * (h + torch.cumsum(b_c * torch.exp(-L), dim=0))  # (C, B, H)
        chunks.append(h_c)
        h = h_c[-1]  # (B, H)
    if not torch.isfinite(h).all() and torch.isfinite(a).all() and torch.isfinite(b).all():
        raise FloatingPointError(
            f"scan_chunked: the decay over a chunk of {chunk} steps left the float range; use a smaller chunk"
        )
    return torch.cat(chunks)  # (T, B, H)
