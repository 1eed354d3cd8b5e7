"""Notebook 09, sections 3-4: the linear recurrence ``h_t = a_t * h_{t-1} + b_t``, computed three ways.

minGRU and minLSTM (:mod:`course_utils.min_rnns`) reduce to this recurrence, element by
element, because their gates do not look at ``h_{t-1}``. All functions take time-major
tensors, like the rest of the course: ``a``, ``b`` of shape ``(T, B, H)`` and an initial state
``h0`` of shape ``(B, H)``; they return every state ``h_1 .. h_T`` as ``(T, B, H)``.

- :func:`scan_loop`: the sequential definition, one step at a time (``unbind`` over time).
- :func:`scan_log`: Heinsen's (2023) parallel scan in log space, for positive ``a``, ``b``, ``h0``::

      a*_t  = cumsum_{s<=t} log a_s
      log h_t = a*_t + logcumsumexp_{s<=t}(log b_s - a*_s)      (h_0 enters as s = 0, a_0 = 1)

- :func:`scan_cumprod`: the direct parallel form, a cumulative product and a cumulative sum::

      A_t = a_1 * ... * a_t,      h_t = A_t * (h_0 + sum_{s<=t} b_s / A_s)

  exact in real numbers, but ``A_t`` underflows (and ``b_s / A_s`` overflows) once the product
  of many decays leaves the float range: the reason the paper works in log space.
- :func:`scan_chunked`: every chunk of ``C`` steps at once, sequential across chunks. Inside a
  chunk entered with state ``h_s``, every state is an affine function of ``h_s``, in closed
  form::

      h_t = A_t * h_s + q_t      A_t = a_{s+1} * ... * a_t,   q_t = the chunk's scan from h_s = 0

  so each chunk is summed up by one map ``h_end = P * h_s + q`` (``P``, ``q``: ``A``, ``q`` at
  its last step). Three passes: (1) ``P`` and ``q`` of all chunks at once, (2) the chunks one
  after another, ``h_end = P * h_s + q``, which gives every chunk's entering state, (3) every
  chunk again from its entering state, all chunks at once. Passes 1 and 3 loop over the ``C``
  positions of a chunk with ``(T / C, B, H)`` tensors; pass 2 over the ``T / C`` chunks with
  ``(B, H)`` ones: about ``2 C + T / C`` Python steps instead of ``T`` (plus the ``T mod C``
  last steps, one by one). The default ``C = sqrt(T)`` makes that ``3 sqrt(T)``: 192 steps
  for ``T = 4096``. Per element it does about twice the loop's arithmetic, in far fewer steps.
  Only multiplications and additions: any sign of ``a`` and ``b``, and any decay (``|a| < 1``);
  where ``|a| > 1``, the product of ``a`` over one chunk must stay inside the float range.

  Its backward pass is written out (:class:`ChunkedScan`): the gradient of a linear
  recurrence is the same recurrence run backwards in time. With ``grad_h_t`` the gradient
  reaching ``h_t`` directly and ``g_t = dL/dh_t`` the total, through every later step,
  ``g_t = grad_h_t + a_{t+1} g_{t+1}``, so it reuses the same three passes. Then
  ``dL/db_t = g_t``, ``dL/da_t = g_t * h_{t-1}`` and ``dL/dh0 = a_1 g_1``.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.linear_recurrence`.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .core.shapes import require_shape


def _check_inputs(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, prefix: str = ""
) -> tuple[int, int, int]:
    require_shape(prefix + "a", a, ("T", "B", "H"))
    T, B, H = a.shape
    if T < 1:
        raise ValueError(f"{prefix}a has {T} time steps; a scan needs at least one")
    require_shape(prefix + "b", b, (T, B, H))
    if h0 is not None:
        require_shape(prefix + "h0", h0, (B, H))
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


def scan_cumprod(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """``h_t = A_t (h_0 + sum_{s<=t} b_s / A_s)`` with ``A_t = a_1 ... a_t``: no loop, but only for short sequences.

    ``a``, ``b`` ``(T, B, H)``, ``h0`` ``(B, H)`` (zeros if None); returns ``(T, B, H)``. Exact in real
    numbers; in floating point ``A_t`` underflows to 0 once the decays multiply below the float
    range (about ``1e-38`` in float32), and then ``b_s / A_s`` is ``inf`` and ``h`` NaN.
    """
    _check_inputs(a, b, h0)
    A = torch.cumprod(a, dim=0)  # (T, B, H): A_t = a_1 ... a_t
    h0 = torch.zeros_like(b[0]) if h0 is None else h0  # (B, H)
    return A * (h0 + torch.cumsum(b / A, dim=0))  # (T, B, H)


# ----------------------------------------------------------------------------- exercise: the cumulative form


def _chunk_passes(
    coefs: list[torch.Tensor], inputs: list[torch.Tensor], outs: list[torch.Tensor], order: range, h_in: torch.Tensor
) -> torch.Tensor:
    """Passes 1-3 of :func:`scan_chunked` over ``N`` chunks of ``C`` steps; returns the state after the last chunk.

    ``coefs[i]``, ``inputs[i]``, ``outs[i]`` are ``(N, B, H)``: step ``i`` of every chunk, in the order
    the steps run, so that ``state = coefs[i] * state + inputs[i]`` (written to ``outs[i]``), and
    ``coefs[0]`` multiplies the state entering the chunk. ``order``: the chunks in the order they
    follow each other; ``h_in`` ``(B, H)`` enters the first of them.
    """
    P, q = coefs[0].clone(), inputs[0].clone()  # (N, B, H): each chunk's map h_end = P * h_enter + q
    for coef, inp in zip(coefs[1:], inputs[1:], strict=True):  # pass 1, all chunks at once
        q = torch.addcmul(inp, coef, q)
        P.mul_(coef)
    enter = torch.empty_like(q)  # (N, B, H): the state entering each chunk
    h = h_in  # (B, H)
    for n in order:  # pass 2, chunk after chunk
        enter[n] = h
        h = torch.addcmul(q[n], P[n], h)
    state = enter
    for coef, inp, out in zip(coefs, inputs, outs, strict=True):  # pass 3, all chunks at once
        state = torch.addcmul(inp, coef, state, out=out)
    return h


def _chunked_forward(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk: int) -> torch.Tensor:
    """``h`` ``(T, B, H)``, no autograd: whole chunks by :func:`_chunk_passes`, the last steps one by one."""
    T = a.shape[0]
    N = T // chunk  # whole chunks; steps M .. T-1 are the tail
    M = N * chunk
    h = torch.empty(a.shape, dtype=a.dtype, device=a.device)  # (T, B, H)
    a_, b_, h_ = (x[:M].unflatten(0, (N, chunk)).unbind(1) for x in (a, b, h))  # chunk x (N, B, H)
    state = _chunk_passes(list(a_), list(b_), list(h_), range(N), h0) if N else h0
    for t in range(M, T):
        state = torch.addcmul(b[t], a[t], state, out=h[t])
    return h


def _chunked_backward(a: torch.Tensor, grad_h: torch.Tensor, chunk: int) -> torch.Tensor:
    """``g_t = dL/dh_t`` through every later step: ``g_t = grad_h_t + a_{t+1} g_{t+1}``, ``g_T = grad_h_T``.

    The forward scan backwards in time, with the coefficient of the *next* step: the tail by a
    loop, then the whole chunks by :func:`_chunk_passes` in reverse order.
    """
    T = a.shape[0]
    N = T // chunk
    M = N * chunk
    g = torch.empty(a.shape, dtype=a.dtype, device=a.device)  # (T, B, H)
    state = torch.zeros_like(a[0])  # (B, H): g after the last step
    for t in range(T - 1, M - 1, -1):
        state = g[t].copy_(grad_h[t]) if t == T - 1 else torch.addcmul(grad_h[t], a[t + 1], state, out=g[t])
    if N:
        a_, grad_, g_ = (x[:M].unflatten(0, (N, chunk)) for x in (a, grad_h, g))  # (N, C, B, H)
        after = a[M : M + 1] if M < T else torch.zeros_like(a[:1])  # a of the step after the last chunk
        boundary = torch.cat([a_[1:, 0], after])  # (N, B, H): a of the step after each chunk
        steps = range(chunk - 1, -1, -1)
        coefs = [boundary] + [a_[:, c + 1] for c in steps[1:]]
        _chunk_passes(coefs, [grad_[:, c] for c in steps], [g_[:, c] for c in steps], range(N - 1, -1, -1), state)
    return g


class ChunkedScan(torch.autograd.Function):
    """:func:`scan_chunked` as an autograd function: ``apply(a, b, h0, chunk)`` with a written-out backward.

    ``a``, ``b``, ``h0`` of one dtype (:func:`scan_chunked` promotes them). Saves ``a``, ``h0``, and
    ``h`` if ``a`` needs a gradient (no copies). Differentiable once (no double backward).
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk: int) -> torch.Tensor:
        h = _chunked_forward(a, b, h0, chunk)
        ctx.save_for_backward(a, h if ctx.needs_input_grad[0] else None, h0)
        ctx.chunk = chunk
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, h, h0 = ctx.saved_tensors
        g = _chunked_backward(a, grad_h, ctx.chunk)  # (T, B, H): dL/db
        grad_a = grad_h0 = None
        if ctx.needs_input_grad[0]:  # dL/da_t = g_t * h_{t-1}
            grad_a = torch.empty_like(g)
            torch.mul(g[1:], h[:-1], out=grad_a[1:])
            torch.mul(g[0], h0, out=grad_a[0])
        if ctx.needs_input_grad[2]:
            grad_h0 = a[0] * g[0]
        return grad_a, g if ctx.needs_input_grad[1] else None, grad_h0, None


def scan_chunked(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, chunk: int | None = None
) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` by chunks of ``chunk`` steps: all chunks at once, sequential across chunks.

    ``a``, ``b`` ``(T, B, H)``, ``h0`` ``(B, H)`` (zeros if None); returns ``h`` ``(T, B, H)``, in the
    promoted dtype of the three, like :func:`scan_loop`. ``chunk`` defaults to ``round(sqrt(T))``;
    ``T`` need not be a multiple of it (the last ``T % chunk`` steps run one by one). See the
    module docstring for the three passes; the backward pass is written out (:class:`ChunkedScan`).
    """
    T, B, H = _check_inputs(a, b, h0)
    if chunk is None:
        chunk = max(1, round(math.sqrt(T)))
    try:
        chunk = operator.index(chunk)  # an int, or a numpy integer; not 2.5
    except TypeError:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}") from None
    if chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    if h0 is not None:
        dtype = torch.promote_types(dtype, h0.dtype)
    h0 = b.new_zeros(B, H, dtype=dtype) if h0 is None else h0.to(dtype)
    return ChunkedScan.apply(a.to(dtype), b.to(dtype), h0, chunk)
