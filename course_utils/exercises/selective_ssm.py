"""Notebook 09c, the exercises on :mod:`course_utils.selective_ssm`.

Checks that name the usual mistakes: ``check_discretize``, ``check_selective_step``,
``check_copy_targets``, ``check_ssd_attention``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference
from ..data.selective_copy import BLANK, IGNORE, copy_targets, selective_copying
from ..selective_ssm import discretize, selective_scan, selective_step, ssd_attention


def _discretize_mistakes(delta: torch.Tensor, A: torch.Tensor, B_t: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the usual wrong discretisations return, each as ``stack([Abar, Bbar])`` ``(2, B, D, N)``."""
    dA = delta[..., None] * A  # (B, D, N)
    Bn = B_t[..., None, :]  # (B, 1, N)
    Abar = torch.exp(dA)
    zoh = torch.expm1(dA) / A * Bn
    return {
        "use Bbar = Delta * B, the first-order (Euler) rule of Mamba's code, where the exact zero-order hold "
        "(exp(Delta A) - 1) / A * B was asked": torch.stack([Abar, delta[..., None] * Bn]),
        "leave Delta out of Abar: exp(A) instead of exp(Delta A)": torch.stack([torch.exp(A).expand_as(dA), zoh]),
        "leave Delta out of both: exp(A) and (exp(A) - 1) / A * B":
            torch.stack([torch.exp(A).expand_as(dA), torch.expm1(A) / A * Bn]),
        "flip the sign of A (A is already negative: exp(Delta A) must decay, below 1)":
            torch.stack([torch.exp(-dA), torch.expm1(-dA) / (-A) * Bn]),
        "forget the -1 in (exp(Delta A) - 1) / A": torch.stack([Abar, Abar / A * Bn]),
        "multiply by A instead of dividing: (exp(Delta A) - 1) * A * B": torch.stack([Abar, torch.expm1(dA) * A * Bn]),
    }


def check_discretize(fn: Any, seed: int = 0) -> None:
    """Test ``fn(delta (B, D), A (D, N), B_t (B, N)) -> (Abar, Bbar)``, each ``(B, D, N)``: exact ZOH (notebook 09c).

    Names the mistake the values match: the Euler rule, Delta left out, the sign of A, the -1.
    """
    fn = refuse_reference(fn, ("discretize", "selective_scan", "S6"))
    g = torch.Generator().manual_seed(seed)
    for Bsz, D, N in ((3, 4, 5), (2, 3, 1)):
        delta = F.softplus(torch.randn(Bsz, D, generator=g, dtype=torch.float64))  # (B, D), positive
        A = -torch.rand(D, N, generator=g, dtype=torch.float64) * 3 - 0.2  # (D, N), negative
        B_t = torch.randn(Bsz, N, generator=g, dtype=torch.float64)  # (B, N)
        got = fn(delta.clone(), A.clone(), B_t.clone())
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed(f"return the pair (Abar, Bbar); got {type(got).__name__}"
                              + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""))
        for name, value in zip(("Abar", "Bbar"), got, strict=True):
            check_shape(f"{name} (B={Bsz}, D={D}, N={N})", value, (Bsz, D, N))
        Abar, Bbar = discretize(delta, A, B_t, "zoh")
        name = f"(Abar, Bbar) stacked (B={Bsz}, D={D}, N={N})"
        name_mistake(name, torch.stack(list(got)), torch.stack([Abar, Bbar]), _discretize_mistakes(delta, A, B_t))
        check_close(f"Abar (B={Bsz}, D={D}, N={N})", got[0], Abar, quiet=True)
        check_close(f"Bbar (B={Bsz}, D={D}, N={N})", got[1], Bbar, quiet=True)
    print("OK Abar = exp(Delta A) and Bbar = (exp(Delta A) - 1) / A * B, for two sizes (float64)")


def _step_mistakes(h, u_t, Abar_t, Bbar_t, C_t, D_skip) -> dict[str, dict[str, torch.Tensor | None]]:
    """Wrong ``y`` and wrong ``h_new``, by mistake."""
    h_new = Abar_t * h + Bbar_t * u_t[..., None]  # (B, D, N)
    skip = D_skip * u_t  # (B, D)
    square = h.shape[1] == h.shape[2]
    y_mistakes = {
        "forget the skip term D_skip * u_t": (h_new * C_t[:, None, :]).sum(-1),
        "read y from the old state h (before the update) instead of h_new": (h * C_t[:, None, :]).sum(-1) + skip,
        "sum C * h over the channel axis D (dim 1) instead of the state axis N (the last)":
            (h_new * C_t[:, None, :]).sum(1) + skip if square else None,
        "multiply C with h_new along the wrong axis (C_t[:, :, None], which pairs C's states with the channels)":
            (h_new * C_t[:, :, None]).sum(-1) + skip if square else None,
    }
    h_mistakes = {
        "forget to multiply Bbar by the input u_t": Abar_t * h + Bbar_t,
        "forget the decay Abar on the old state": h + Bbar_t * u_t[..., None],
    }
    return {"y": y_mistakes, "h_new": h_mistakes}


def check_selective_step(fn: Any, seed: int = 0) -> None:
    """Test ``fn(h, u_t, Abar_t, Bbar_t, C_t, D_skip) -> (y (B, D), h_new (B, D, N))``, one S6 step (notebook 09c).

    Then runs ``fn`` over a sequence and compares with :func:`selective_scan`. Names the mistakes:
    no skip term, ``y`` from the old state, the wrong axis, no input or no decay.
    """
    fn = refuse_reference(fn, ("selective_step", "selective_scan", "S6"))
    g = torch.Generator().manual_seed(seed)
    for Bsz, D, N in ((3, 4, 4), (2, 3, 5)):
        h = torch.randn(Bsz, D, N, generator=g, dtype=torch.float64)
        u_t = torch.randn(Bsz, D, generator=g, dtype=torch.float64)
        Abar_t = torch.rand(Bsz, D, N, generator=g, dtype=torch.float64) * 0.8 + 0.1
        Bbar_t = torch.randn(Bsz, D, N, generator=g, dtype=torch.float64)
        C_t = torch.randn(Bsz, N, generator=g, dtype=torch.float64)
        D_skip = torch.randn(D, generator=g, dtype=torch.float64)
        args = (h, u_t, Abar_t, Bbar_t, C_t, D_skip)
        got = fn(*(a.clone() for a in args))
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed(f"return the pair (y, h_new); got {type(got).__name__}")
        size = f"B={Bsz}, D={D}, N={N}"
        if isinstance(got[0], torch.Tensor) and tuple(got[0].shape) == (Bsz, N) and D != N:
            raise CheckFailed(f"y ({size}) has shape {tuple(got[0].shape)}, expected {(Bsz, D)}: sum C * h over "
                              "the state axis N (the last), not the channel axis D")
        check_shape(f"y ({size})", got[0], (Bsz, D))
        check_shape(f"h_new ({size})", got[1], (Bsz, D, N))
        y, h_new = selective_step(*args)
        mistakes = _step_mistakes(*args)
        name_mistake(f"h_new ({size})", got[1], h_new, mistakes["h_new"])
        check_close(f"h_new ({size})", got[1], h_new, quiet=True)
        name_mistake(f"y ({size})", got[0], y, mistakes["y"])
        check_close(f"y ({size})", got[0], y, quiet=True)
    T, Bsz, D, N = 6, 2, 3, 4  # a sequence, step by step, against the scan
    u = torch.randn(T, Bsz, D, generator=g, dtype=torch.float64)
    delta = F.softplus(torch.randn(T, Bsz, D, generator=g, dtype=torch.float64))
    A = -torch.rand(D, N, generator=g, dtype=torch.float64) - 0.5
    B_t, C_t = (torch.randn(T, Bsz, N, generator=g, dtype=torch.float64) for _ in range(2))
    D_skip = torch.randn(D, generator=g, dtype=torch.float64)
    Abar, Bbar = discretize(delta, A, B_t)
    h, ys = torch.zeros(Bsz, D, N, dtype=torch.float64), []
    for t in range(T):
        y_t, h = fn(h, u[t], Abar[t], Bbar[t], C_t[t], D_skip)
        ys.append(y_t)
    y_ref, h_ref = selective_scan(u, delta, A, B_t, C_t, D_skip, method="loop")
    check_close("y over 6 steps (your step in a loop, against the scan)", torch.stack(ys), y_ref, quiet=True)
    check_close("h after 6 steps", h, h_ref, quiet=True)
    print("OK one selective step, for two sizes, and over a 6-step sequence against the scan (float64)")


def _target_mistakes(tokens: torch.Tensor, n_data: int) -> dict[str, torch.Tensor]:
    """What the usual wrong target builders return, each ``(n, T)``."""
    right = copy_targets(tokens, n_data)  # (n, T)
    T = tokens.shape[1]
    answers = right[:, T - n_data:]  # (n, K)
    blank_filled = right.masked_fill(right == IGNORE, BLANK)
    early = torch.full_like(right, IGNORE)
    early[:, T - n_data - 1 : T - 1] = answers
    first = torch.full_like(right, IGNORE)
    first[:, T - n_data:] = tokens[:, :n_data]
    reverse = torch.full_like(right, IGNORE)
    reverse[:, T - n_data:] = answers.flip(1)
    return {
        f"fill the unscored positions with the blank token {BLANK} instead of IGNORE ({IGNORE}): the loss would then "
        "score every position, and most of the loss would go to predicting blanks": blank_filled,
        "place the answers one position early (at T - K - 1 .. T - 2): the k-th answer belongs at the k-th marker":
            early,
        "take the first n_data tokens of the sequence, as in plain copying: in selective copying the data tokens "
        "stand at random positions among the blanks": first,
        "put the data tokens in reverse order": reverse,
    }


def check_copy_targets(fn: Any, seed: int = 0) -> None:
    """Test ``fn(tokens (n, T), n_data) -> targets (n, T)`` int64 (notebook 09c): IGNORE except at the markers.

    Names the mistakes: blanks instead of IGNORE, answers one step early, plain copying's fixed
    positions, the reverse order.
    """
    fn = refuse_reference(fn, ("copy_targets",))
    for n, length, n_data, n_symbols in ((6, 20, 4, 4), (3, 12, 3, 6)):
        tokens = selective_copying(n, length=length, n_data=n_data, n_symbols=n_symbols, seed=seed)
        got = fn(tokens.clone(), n_data)
        name = f"targets (n={n}, T={length}, n_data={n_data})"
        check_shape(name, got, (n, length))
        if not isinstance(got, torch.Tensor) or got.dtype != torch.long:
            raise CheckFailed(f"{name} should be an int64 (torch.long) tensor, as F.cross_entropy wants its targets; "
                              f"got {getattr(got, 'dtype', type(got).__name__)}")
        expected = copy_targets(tokens, n_data)
        name_mistake(name, got, expected, _target_mistakes(tokens, n_data))
        check_close(name, got, expected, quiet=True)
    print("OK the targets: IGNORE everywhere except the markers, which hold the data tokens in order")


def _ssd_mistakes(u, delta, a, B_t, C_t) -> dict[str, torch.Tensor]:
    """What the usual wrong SSD forms return, each ``y`` ``(T, B, D)`` (Euler rule, no skip term)."""
    T = u.shape[0]
    dA = (delta * a).permute(1, 2, 0)  # (B, D, T): log decays
    c = dA.cumsum(-1)  # (B, D, T)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    scores = torch.einsum("tbn,sbn->bts", C_t, B_t)  # (B, T, T): C_t . B_s
    x = delta * u  # (T, B, D)

    def attend(log_L, scores=scores, x=x, mask=causal):
        L = log_L.masked_fill(~mask, float("-inf")).exp()  # (B, D, T, T)
        return torch.einsum("bdts,bts,sbd->tbd", L, scores, x)

    right = c[..., :, None] - c[..., None, :]  # (B, D, T, T): c_t - c_s
    shifted = F.pad(c, (1, 0))[..., :-1]  # (B, D, T): c_(t-1), an exclusive cumsum
    return {
        "include the decay of step s (L_ts = exp(c_t - c_(s-1)), a_s ... a_t): the input of step s enters after "
        "its own decay, so the diagonal L_tt is 1": attend(right + dA[..., None, :]),
        "take the cumulative sum exclusive on one side (c_(t-1) - c_s): L_ts is exp(c_t - c_s)":
            attend(shifted[..., :, None] - c[..., None, :]),
        "compute exp(c_s - c_t) instead of exp(c_t - c_s): for s <= t the mask must decay, not grow":
            attend(-right),
        "leave out the causal mask: L_ts is 0 for s > t": attend(right, mask=torch.ones(T, T, dtype=torch.bool)),
        "use u as the value: the value is Delta * u (Bbar = Delta B under the Euler rule)": attend(right, x=u),
        "swap C and B in the scores (B_t . C_s instead of C_t . B_s): the query is C, the key B":
            attend(right, scores=scores.transpose(1, 2)),
    }


def check_ssd_attention(fn: Any, seed: int = 0) -> None:
    """Test ``fn(u, delta, a, B_t, C_t) -> y (T, B, D)``: S6 with one decay per channel as masked attention
    (notebook 09c, exercise 4), under the Euler rule, without the skip term.

    Names the mistake the values match: the decay of step ``s`` included or the cumulative sum shifted
    (off by one), ``exp(c_s - c_t)``, no causal mask, ``u`` for ``Delta u``, ``B`` and ``C`` swapped; then
    a long sequence (T = 300, strong decays) whose cumulative products fall below float64's range.
    """
    fn = refuse_reference(fn, ("ssd_attention", "ssd_qkv", "selective_scan", "decay_mask", "linear_attention_parallel",
                               "linear_attention_chunkwise", "S6"))
    g = torch.Generator().manual_seed(seed)
    for T, Bsz, D, N in ((7, 2, 3, 4), (12, 1, 2, 3)):
        u = torch.randn(T, Bsz, D, generator=g, dtype=torch.float64)
        delta = F.softplus(torch.randn(T, Bsz, D, generator=g, dtype=torch.float64))  # positive
        a = -torch.rand(D, generator=g, dtype=torch.float64) * 2 - 0.2  # (D,), negative
        B_t, C_t = (torch.randn(T, Bsz, N, generator=g, dtype=torch.float64) for _ in range(2))
        got = fn(u.clone(), delta.clone(), a.clone(), B_t.clone(), C_t.clone())
        name = f"y (T={T}, B={Bsz}, D={D}, N={N})"
        check_shape(name, got, (T, Bsz, D))
        expected = ssd_attention(u, delta, a, B_t, C_t, rule="euler")
        name_mistake(name, got, expected, _ssd_mistakes(u, delta, a, B_t, C_t))
        check_close(name, got, expected, quiet=True)
    T = 300  # decays of about exp(-3) a step: the products reach exp(-900), below the smallest float64
    u = torch.randn(T, 1, 2, generator=g, dtype=torch.float64)
    delta = torch.rand(T, 1, 2, generator=g, dtype=torch.float64) + 1.0
    a = torch.tensor([-2.0, -3.0], dtype=torch.float64)
    B_t, C_t = (torch.randn(T, 1, 3, generator=g, dtype=torch.float64) for _ in range(2))
    got = fn(u.clone(), delta.clone(), a.clone(), B_t.clone(), C_t.clone())
    if isinstance(got, torch.Tensor) and torch.isnan(got).any():
        raise CheckFailed("y for a long sequence (T = 300, strong decays) contains NaN: a ratio of cumulative products "
                          "underflows to 0 / 0, or exp(c_t - c_s) above the diagonal overflows to inf before the "
                          "mask (inf * 0 = NaN). Build the mask in log space, exp(c_t - c_s) with c = cumsum(Delta a), "
                          "with -inf above the diagonal before the exp")
    check_close("y for a long sequence (T = 300)", got, ssd_attention(u, delta, a, B_t, C_t, rule="euler"), quiet=True)
    print("OK my_ssd_attention: two sizes, and a long sequence with strong decays (float64)")
