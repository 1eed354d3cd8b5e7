"""Notebook 09c, sections 1-4: a minimal selective state-space model (Mamba's S6), minGRU as its N = 1 case, SSD.

S6 (Gu & Dao 2023, Algorithm 2), per channel ``d`` of ``D`` and state ``n`` of ``N``::

    Delta_t = softplus(x_t W_Delta + b_Delta)          (T, B, D)   input-dependent step size
    B_t = x_t W_B + b_B,  C_t = x_t W_C + b_C           (T, B, N)   input-dependent write / read vectors
    A = -exp(A_log)                                     (D, N)      diagonal, negative: a decay
    Abar = exp(Delta A)                                 (T, B, D, N)
    Bbar = (exp(Delta A) - 1) / A * B                   (T, B, D, N)  exact zero-order hold ("zoh")
         ~ Delta B                                                    Mamba's code ("euler"; same to first order)
    h_t = Abar_t * h_{t-1} + Bbar_t * u_t               (B, D, N)
    y_t = C_t . h_t + D_skip * u_t                      (B, D)      (sum over n)

``u_t = x_t W_in + b_in`` is the channel input (Mamba's in_proj; with ``W_in = I`` it is
Algorithm 2's ``x``). The course adds biases to the ``B`` and ``C`` projections (Mamba has
none): with them, an S6 with ``N = 1``, ``A = -1``, ``B = C = 1`` is exactly minGRU
(:func:`s6_from_min_gru`). For every ``(d, n)`` the recurrence is the scalar
``h_t = a_t h_{t-1} + b_t`` of :mod:`course_utils.linear_recurrence`, so the ``(D, N)`` states are flattened
into the scan's ``H`` axis. ``selective=False`` makes ``Delta``, ``B``, ``C`` parameters that do
not read ``x``: a time-invariant (LTI, S4D-like) control.

**State space duality** (Dao & Gu 2024, Mamba-2). With one decay per channel, ``A`` of shape
``(D,)`` (every state of a channel decays alike), each channel is notebook 09b's decayed linear
attention with ``q_t = C_t``, ``k_t = B_t``, ``v_t = w_t u_t`` and ``gamma_t = exp(Delta_t A)``, where
``w_t = Delta_t`` (Euler) or ``(exp(Delta_t A) - 1) / A`` (exact ZOH)::

    y = (L * C B^T) (w u) + D_skip u,     L_ts = exp(sum_{r=s+1..t} Delta_r A) for s <= t, else 0

:func:`ssd_attention` computes that masked form, :func:`ssd_qkv` hands the same numbers to 09b's
functions.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.selective_ssm`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .core.seed import seeded
from .core.shapes import require_shape
from .core.training import fit
from .data.selective_copy import IGNORE, copy_targets, copy_vocab_size, selective_copying
from .linear_attention import decay_mask
from .linear_recurrence import scan_chunked, scan_loop
from .min_rnns import MinGRU, SignedMinGRU
from .shared.layers import count_parameters

Rule = Literal["zoh", "euler"]
ScanMethod = Literal["chunked", "loop", "steps"]
SCAN_METHODS = ("chunked", "loop", "steps")


# ----------------------------------------------------------------------------- discretisation and one step

def discretize(
    delta: torch.Tensor, A: torch.Tensor, B_t: torch.Tensor, rule: Rule = "zoh"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Abar, Bbar)`` ``(..., D, N)`` from ``delta`` ``(..., D)``, ``A`` ``(D, N)`` (negative), ``B_t`` ``(..., N)``.

    ``rule="zoh"``: ``Bbar = (exp(delta A) - 1) / A * B`` (exact for an input held constant over
    the step); ``"euler"``: ``Bbar = delta B``, what Mamba's code uses. ``expm1`` keeps the exact
    form accurate for small ``delta A``.
    """
    if rule not in ("zoh", "euler"):
        raise ValueError(f"rule must be 'zoh' or 'euler', got {rule!r}")
    require_shape("A", A, ("D", "N"))
    D, N = A.shape
    require_shape("delta", delta, (*delta.shape[:-1], D))
    require_shape("B_t", B_t, (*delta.shape[:-1], N))
    dA = delta[..., None] * A  # (..., D, N)
    if rule == "zoh":
        Bbar = torch.expm1(dA) / A * B_t[..., None, :]  # (..., D, N)
    else:
        Bbar = delta[..., None] * B_t[..., None, :]  # (..., D, N)
    return torch.exp(dA), Bbar


def selective_step(
    h: torch.Tensor, u_t: torch.Tensor, Abar_t: torch.Tensor, Bbar_t: torch.Tensor, C_t: torch.Tensor,
    D_skip: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: ``h_new = Abar h + Bbar u``, ``y = sum_n C_n h_new[..., n] + D_skip u``; returns ``(y, h_new)``.

    ``h``, ``Abar_t``, ``Bbar_t`` ``(B, D, N)``; ``u_t`` ``(B, D)``; ``C_t`` ``(B, N)``; ``D_skip`` ``(D,)``;
    ``y`` is ``(B, D)``, ``h_new`` ``(B, D, N)``.
    """
    require_shape("h", h, ("B", "D", "N"))
    B, D, N = h.shape
    for name, value, shape in (("u_t", u_t, (B, D)), ("Abar_t", Abar_t, (B, D, N)), ("Bbar_t", Bbar_t, (B, D, N)),
                               ("C_t", C_t, (B, N)), ("D_skip", D_skip, (D,))):
        require_shape(name, value, shape)
    h_new = Abar_t * h + Bbar_t * u_t[..., None]  # (B, D, N)
    y = (h_new * C_t[:, None, :]).sum(-1) + D_skip * u_t  # (B, D)
    return y, h_new


def selective_scan(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B_t: torch.Tensor, C_t: torch.Tensor,
    D_skip: torch.Tensor, h0: torch.Tensor | None = None, *, rule: Rule = "zoh", method: ScanMethod = "chunked",
) -> tuple[torch.Tensor, torch.Tensor]:
    """S6's recurrence over a sequence: ``y`` ``(T, B, D)`` and the last state ``h_T`` ``(B, D, N)``.

    ``u``, ``delta`` ``(T, B, D)``; ``A`` ``(D, N)``; ``B_t``, ``C_t`` ``(T, B, N)``; ``D_skip`` ``(D,)``;
    ``h0`` ``(B, D, N)`` (zeros if None). ``method``: ``"chunked"`` (:func:`scan_chunked`, its
    backward written out), ``"loop"`` (:func:`scan_loop`), both on the ``(D, N)`` states flattened
    to ``D * N``; or ``"steps"``, :func:`selective_step` once per time step, the reference.
    """
    if method not in SCAN_METHODS:
        raise ValueError(f"method must be one of {SCAN_METHODS}, got {method!r}")
    require_shape("u", u, ("T", "B", "D"))
    T, B, D = u.shape
    require_shape("A", A, (D, "N"))
    N = A.shape[1]
    require_shape("delta", delta, (T, B, D))
    require_shape("B_t", B_t, (T, B, N))
    require_shape("C_t", C_t, (T, B, N))
    require_shape("D_skip", D_skip, (D,))
    h = u.new_zeros(B, D, N) if h0 is None else h0  # (B, D, N)
    require_shape("h0", h, (B, D, N))
    Abar, Bbar = discretize(delta, A, B_t, rule)  # each (T, B, D, N)
    if method == "steps":
        ys = []
        for t in range(T):
            y_t, h = selective_step(h, u[t], Abar[t], Bbar[t], C_t[t], D_skip)
            ys.append(y_t)
        return torch.stack(ys), h  # (T, B, D), (B, D, N)
    a = Abar.reshape(T, B, D * N)  # (T, B, D*N)
    b = (Bbar * u[..., None]).reshape(T, B, D * N)  # (T, B, D*N)
    h0_flat = h.reshape(B, D * N)
    states = scan_chunked(a, b, h0_flat) if method == "chunked" else scan_loop(a, b, h0_flat)
    states = states.reshape(T, B, D, N)  # (T, B, D, N)
    y = (states * C_t[:, :, None, :]).sum(-1) + D_skip * u  # (T, B, D)
    return y, states[-1]


# ----------------------------------------------------------------------------- state space duality (SSD)

def _ssd_inputs(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B_t: torch.Tensor, C_t: torch.Tensor, rule: Rule
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log gamma, value)``, each ``(T, B, D)``: the per-step log decay ``Delta A`` and ``w u``."""
    if rule not in ("zoh", "euler"):
        raise ValueError(f"rule must be 'zoh' or 'euler', got {rule!r}")
    require_shape("u", u, ("T", "B", "D"))
    T, B, D = u.shape
    require_shape("A", A, (D,))
    require_shape("delta", delta, (T, B, D))
    require_shape("B_t", B_t, (T, B, "N"))
    require_shape("C_t", C_t, (T, B, B_t.shape[-1]))
    dA = delta * A  # (T, B, D): log of the decay exp(Delta A)
    weight = delta if rule == "euler" else torch.expm1(dA) / A  # (T, B, D): Bbar = weight * B
    return dA, weight * u


def ssd_attention(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B_t: torch.Tensor, C_t: torch.Tensor,
    D_skip: torch.Tensor | None = None, *, rule: Rule = "zoh",
) -> torch.Tensor:
    """S6 with one decay per channel as masked attention: ``y = (L * C B^T) (w u) + D_skip u``, ``(T, B, D)``.

    ``u``, ``delta`` ``(T, B, D)``; ``A`` ``(D,)`` (negative); ``B_t``, ``C_t`` ``(T, B, N)``; ``D_skip``
    ``(D,)`` (None: no skip term); zero initial state. ``L`` ``(B, D, T, T)`` is the 1-semiseparable mask
    ``L_ts = exp(sum_{r=s+1..t} Delta_r A_d)`` (1 on the diagonal, 0 above it): notebook 09b's
    :func:`decay_mask` of ``gamma = exp(Delta A)``. ``w = Delta`` (``rule="euler"``, Mamba-2's) or
    ``(exp(Delta A) - 1) / A`` (``"zoh"``). Equals :func:`selective_scan` with ``A`` broadcast to ``(D, N)``.
    """
    dA, x = _ssd_inputs(u, delta, A, B_t, C_t, rule)  # (T, B, D) each
    L = decay_mask(dA.exp().permute(1, 2, 0))  # (B, D, T, T): row t, column s
    scores = torch.einsum("tbn,sbn->bts", C_t, B_t)  # (B, T, T): C_t . B_s, shared by the channels
    y = torch.einsum("bdts,bts,sbd->tbd", L, scores, x)  # (T, B, D): sum_s L_ts (C_t . B_s) x_s
    if D_skip is None:
        return y
    require_shape("D_skip", D_skip, (u.shape[2],))
    return y + D_skip * u


def ssd_qkv(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B_t: torch.Tensor, C_t: torch.Tensor, *,
    rule: Rule = "zoh",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """S6 with ``A`` ``(D,)`` as notebook 09b's linear attention, one head per channel: ``(q, k, v, gamma)``.

    ``q = C`` and ``k = B`` ``(B, D, T, N)`` (the same for every head), ``v = w u`` ``(B, D, T, 1)``,
    ``gamma = exp(Delta A)`` ``(B, D, T)``; :func:`linear_attention_parallel` of these, plus
    ``D_skip u``, is :func:`ssd_attention` (read its output as ``[..., 0].permute(2, 0, 1)``).
    """
    dA, x = _ssd_inputs(u, delta, A, B_t, C_t, rule)
    T, B, D = u.shape
    heads = (B, D, T, B_t.shape[-1])
    q = C_t.permute(1, 0, 2)[:, None].expand(heads)  # (B, D, T, N)
    k = B_t.permute(1, 0, 2)[:, None].expand(heads)  # (B, D, T, N)
    return q, k, x.permute(1, 2, 0)[..., None], dA.exp().permute(1, 2, 0)


# ----------------------------------------------------------------------------- the layer

class S6(nn.Module):
    """A selective SSM layer: ``forward(x (T, B, I), h0 (B, D, N) | None) -> (y (T, B, D), h_T (B, D, N))``.

    ``A = -exp(A_log)`` starts at S4D-real's ``A_n = -(n + 1)``; ``Delta``'s bias starts so that
    ``softplus(b_Delta)`` is log-uniform in ``[dt_min, dt_max]`` (as in Mamba). ``selective=False``:
    ``Delta``, ``B``, ``C`` are learned constants, the same at every step (an LTI layer).
    """

    def __init__(
        self, input_size: int, d_model: int, state_size: int, *, selective: bool = True, rule: Rule = "zoh",
        dt_min: float = 1e-3, dt_max: float = 1e-1,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("d_model", d_model), ("state_size", state_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if rule not in ("zoh", "euler"):
            raise ValueError(f"rule must be 'zoh' or 'euler', got {rule!r}")
        self.input_size, self.d_model, self.state_size = input_size, d_model, state_size
        self.selective, self.rule = selective, rule
        D, N = d_model, state_size
        self.in_proj = nn.Linear(input_size, D)  # u = x W_in + b_in
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(D, 1))  # (D, N)
        self.D_skip = nn.Parameter(torch.ones(D))
        dt = torch.exp(torch.rand(D) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))  # (D,)
        dt_bias = dt + torch.log(-torch.expm1(-dt))  # softplus^-1(dt)
        if selective:
            self.dt_proj = nn.Linear(input_size, D)
            self.B_proj = nn.Linear(input_size, N)
            self.C_proj = nn.Linear(input_size, N)
            with torch.no_grad():
                self.dt_proj.bias.copy_(dt_bias)
        else:
            self.dt_bias = nn.Parameter(dt_bias)  # (D,)
            self.B_const = nn.Parameter(torch.randn(N) / math.sqrt(N))  # (N,)
            self.C_const = nn.Parameter(torch.randn(N) / math.sqrt(N))

    @property
    def A(self) -> torch.Tensor:
        """``-exp(A_log)``, ``(D, N)``: negative, so ``Abar = exp(Delta A)`` lies in (0, 1)."""
        return -torch.exp(self.A_log)

    def parameters_of_step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(u (T, B, D), delta (T, B, D), B_t (T, B, N), C_t (T, B, N))`` for an input ``x`` ``(T, B, I)``."""
        require_shape("x", x, ("T", "B", self.input_size))
        T, B = x.shape[:2]
        u = self.in_proj(x)  # (T, B, D)
        if self.selective:
            return u, F.softplus(self.dt_proj(x)), self.B_proj(x), self.C_proj(x)
        shape_N = (T, B, self.state_size)
        return (u, F.softplus(self.dt_bias).expand(T, B, self.d_model), self.B_const.expand(shape_N),
                self.C_const.expand(shape_N))

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None, *, method: ScanMethod = "chunked"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        u, delta, B_t, C_t = self.parameters_of_step(x)
        return selective_scan(u, delta, self.A, B_t, C_t, self.D_skip, h0, rule=self.rule, method=method)


def s6_from_min_gru(layer: MinGRU) -> S6:
    """An S6 that computes exactly what ``layer`` (a ``candidate="linear"`` MinGRU) computes.

    ``N = 1``, ``A = -1`` (``A_log = 0``), ``Delta = softplus(k)`` with ``k`` minGRU's gate
    pre-activation, so ``Abar = exp(-softplus(k)) = 1 - z`` and the exact ZOH's
    ``Bbar = 1 - exp(-Delta) = z``; ``u = h~`` (minGRU's candidate), ``B = C = 1``, ``D_skip = 0``.
    """
    if not isinstance(layer, MinGRU):
        raise TypeError(f"layer must be a course MinGRU, got {type(layer).__name__}")
    if isinstance(layer, SignedMinGRU):
        raise TypeError("layer is a SignedMinGRU, whose a = 1 - 2z can be negative: exp(Delta A) never is, so no "
                        "S6 computes it; pass a MinGRU (a = 1 - z)")
    if layer.candidate != "linear":
        raise ValueError(f"layer must have candidate='linear' (h~ = Linear_h(x)); got candidate={layer.candidate!r}, "
                         "whose h~ = g(Linear_h(x)) is not a linear map of x")
    H, n_in = layer.hidden_size, layer.input_size
    weight, bias = layer.linear.weight, layer.linear.bias  # (2H, I), (2H,): rows [z, h~]
    s6 = S6(n_in, H, 1, rule="zoh").to(dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        s6.dt_proj.weight.copy_(weight[:H])
        s6.dt_proj.bias.copy_(bias[:H])
        s6.in_proj.weight.copy_(weight[H:])
        s6.in_proj.bias.copy_(bias[H:])
        s6.A_log.zero_()
        for proj in (s6.B_proj, s6.C_proj):
            proj.weight.zero_()
            proj.bias.fill_(1.0)
        s6.D_skip.zero_()
    return s6


# ----------------------------------------------------------------------------- the copying models

# Delta's initial range for sequences of tens of steps (Mamba's default 1e-3 .. 1e-1 is made for thousands)
COPY_DT = (1e-2, 1.0)
MODEL_KINDS = ("S6", "LTI", "minGRU", "GRU")


class CopyModel(nn.Module):
    """Embedding, ``n_layers`` recurrent layers (each with a residual connection and a LayerNorm), a linear read-out.

    ``forward(tokens (B, T)) -> logits (B, T, vocab)``. ``kind``: ``"S6"``, ``"LTI"`` (S6 with
    ``selective=False``), ``"minGRU"`` (``candidate="linear"``, chunked scan) or ``"GRU"`` (``nn.GRU``).
    """

    def __init__(self, kind: str, vocab: int, width: int, *, state_size: int = 8, n_layers: int = 2) -> None:
        super().__init__()
        if kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")
        self.kind = kind
        self.embed = nn.Embedding(vocab, width)
        self.layers = nn.ModuleList(_make_layer(kind, width, state_size) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(n_layers))
        self.gates = nn.ModuleList(nn.Linear(width, width) for _ in range(n_layers))
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        require_shape("tokens", tokens, ("B", "T"))
        x = self.embed(tokens).transpose(0, 1)  # (T, B, W)
        for layer, norm, gate in zip(self.layers, self.norms, self.gates, strict=True):
            z = norm(x)  # (T, B, W)
            x = x + layer(z)[0] * F.silu(gate(z))  # (T, B, W): Mamba's gated block, around any layer
        return self.head(x.transpose(0, 1))  # (B, T, vocab)


def _make_layer(kind: str, width: int, state_size: int) -> nn.Module:
    if kind in ("S6", "LTI"):
        return S6(width, width, state_size, selective=kind == "S6", dt_min=COPY_DT[0], dt_max=COPY_DT[1])
    if kind == "minGRU":
        return _ChunkedMinGRU(width, width, candidate="linear")
    return nn.GRU(width, width)


class _ChunkedMinGRU(MinGRU):
    """MinGRU run with the chunked scan (the same scan S6 uses)."""

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, *, method: str = "chunked"):
        return super().forward(x, h0, method=method)


def copy_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the scored positions (targets != IGNORE); ``logits`` ``(B, T, V)``, ``targets`` ``(B, T)``."""
    require_shape("logits", logits, ("B", "T", "V"))
    require_shape("targets", targets, logits.shape[:2])
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


def copy_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """``(per-token, whole-sequence)`` accuracy on the scored positions (a sequence: all its answers right)."""
    require_shape("logits", logits, ("B", "T", "V"))
    require_shape("targets", targets, logits.shape[:2])
    scored = targets != IGNORE  # (B, T)
    right = (logits.argmax(-1) == targets) | ~scored  # (B, T)
    per_token = ((logits.argmax(-1) == targets) & scored).sum() / scored.sum()
    return float(per_token), float(right.all(dim=1).float().mean())


COPY_TASK = {"length": 24, "n_data": 4, "n_symbols": 4}
VALID_SEED, TEST_SEED = 10_000, 20_000  # the held-out sequences: choose settings on the first, report the second


def train_copying(
    kind: str, *, fixed_positions: bool = False, seed: int = 0, steps: int = 250, batch_size: int = 32,
    width: int = 16, state_size: int = 4, lr: float = 1e-2, n_eval: int = 1000, eval_seed: int = VALID_SEED,
    task: dict | None = None, device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Train a :class:`CopyModel` on fresh batches for ``steps`` steps; accuracy on ``n_eval`` held-out sequences.

    Everything random follows ``seed`` (weights, training batches); the held-out sequences
    follow ``eval_seed`` (use one seed for validation, another for the test). Adam, gradient
    norm clipped at 1. Returns ``{"per_token", "sequence", "params", "losses"}``.
    """
    task = {**COPY_TASK, **(task or {})}
    device = torch.device("cpu") if device is None else torch.device(device)
    vocab = copy_vocab_size(task["n_symbols"])
    def batches():  # fresh sequences every step, each batch seeded by the run's seed and the step
        for step in range(steps):
            tokens = selective_copying(batch_size, fixed_positions=fixed_positions, seed=seed * 1_000_003 + step,
                                       **task)
            yield tokens, copy_targets(tokens, task["n_data"])

    with seeded(seed):
        model = CopyModel(kind, vocab, width, state_size=state_size).to(device)
        history = fit(model, batches(), lambda m, batch: copy_loss(m(batch[0]), batch[1]),
                      torch.optim.Adam(model.parameters(), lr=lr), clip_grad_norm=1.0, device=device, progress=False)
    model.eval()
    tokens = selective_copying(n_eval, fixed_positions=fixed_positions, seed=eval_seed, **task)
    with torch.no_grad():
        logits = model(tokens.to(device))
    per_token, sequence = copy_accuracy(logits, copy_targets(tokens, task["n_data"]).to(device))
    return {"per_token": per_token, "sequence": sequence, "params": count_parameters(model),
            "losses": history.losses}
