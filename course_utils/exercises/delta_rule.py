"""Notebook 09c, the exercises on :mod:`course_utils.delta_rule`.

Checks that name the usual mistakes: ``check_delta_rule_step``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference
from ..delta_rule import delta_rule_recurrent, delta_rule_step


def _read(S: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (q[..., :, None] * S).sum(-2)  # (..., d_v): S^T q


def _delta_rule_mistakes(S, q, k, v, beta) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """What the usual wrong steps return, each ``(o, S_new)``, for ``S`` ``(B, d_k, d_v)``."""
    b = beta[:, None, None]
    unit = k / k.norm(dim=-1, keepdim=True)  # (B, d_k)

    def update(key, erase, write):  # S - erase k (k^T S) + write k v^T, with the given key
        kS = (key[:, :, None] * S).sum(1)  # (B, d_v): k^T S
        return S - erase * key[:, :, None] * kS[:, None, :] + write * key[:, :, None] * v[:, None, :]

    right = update(unit, b, b)
    states = {
        "use k as given: normalise it first (k / ||k||), else the transition I - beta k k^T has the eigenvalue "
        "1 - beta ||k||^2, outside [-1, 1] for long keys": update(k, b, b),
        "normalise k over the batch axis (dim 0) instead of its own features (dim -1)":
            update(k / k.norm(dim=0, keepdim=True), b, b),
        "apply beta to the erase term only: the write is beta k v^T too": update(unit, b, 1.0),
        "apply beta to the write term only: the erase is beta k k^T S too": update(unit, 1.0, b),
        "add the erase term instead of subtracting it: (I - beta k k^T) S": update(unit, -b, b),
        "leave out the erase term (S + beta k v^T is linear attention, not the delta rule)": update(unit, 0.0, b),
    }
    if S.shape[-1] == S.shape[-2]:  # mistakes that run only when d_k = d_v
        Sk_kT = (S * unit[:, None, :]).sum(-1)[:, :, None] * unit[:, None, :]  # (B, d_k, d_k): S k k^T
        kkT_S = unit[:, :, None] * (unit[:, :, None] * S).sum(1)[:, None, :]  # k k^T S
        kvT, vkT = unit[:, :, None] * v[:, None, :], v[:, :, None] * unit[:, None, :]
        states |= {
            "multiply by the transition on the wrong side (S (I - beta k k^T) instead of (I - beta k k^T) S): S "
            "has one row per key feature": S - b * Sk_kT + b * kvT,
            "transpose the outer product of the write (v k^T instead of k v^T)": S - b * kkT_S + b * vkT,
            "use the (d_v, d_k) convention, S (I - beta k k^T) + beta v k^T, on this (d_k, d_v) state":
                S - b * Sk_kT + b * vkT,
        }
    pairs = {hint: (_read(S_new, q), S_new) for hint, S_new in states.items()}
    pairs["read the old state (o = S^T q before the update): o_t must include step t's own write"] = (
        _read(S, q), right)
    pairs["normalise q as well: only the key is normalised here, q is used as given"] = (
        _read(right, q / q.norm(dim=-1, keepdim=True)), right)
    if S.shape[-1] == S.shape[-2]:
        pairs["read with S q instead of S^T q"] = ((right * q[:, None, :]).sum(-1), right)
    return pairs


def check_delta_rule_step(fn: Any, seed: int = 0) -> None:
    """Test ``fn(S, q, k, v, beta) -> (o, S_new)``, one step of the delta rule (notebook 09c, exercise 4).

    ``S_new = (I - beta k k^T) S + beta k v^T`` with ``k`` normalised, ``o = S_new^T q``. Names the mistake
    the values match: ``k`` not normalised (or over the wrong axis), ``beta`` on one term only, the erase
    added or left out, the transition on the wrong side, a transposed outer product, the old state read;
    then runs the step over a sequence with ``beta`` in ``[0, 2]`` against :func:`delta_rule_recurrent`.
    """
    fn = refuse_reference(fn, ("delta_rule_step", "delta_rule_recurrent"))
    g = torch.Generator().manual_seed(seed)
    for B, d_k, d_v in ((3, 4, 4), (2, 3, 5)):
        S = torch.randn(B, d_k, d_v, generator=g, dtype=torch.float64)
        q = torch.randn(B, d_k, generator=g, dtype=torch.float64)
        k = torch.randn(B, d_k, generator=g, dtype=torch.float64) * 3  # far from unit length
        v = torch.randn(B, d_v, generator=g, dtype=torch.float64)
        beta = torch.rand(B, generator=g, dtype=torch.float64) * 1.6 + 0.2  # in (0.2, 1.8)
        size = f"B={B}, d_k={d_k}, d_v={d_v}"
        try:
            got = fn(S.clone(), q.clone(), k.clone(), v.clone(), beta.clone())
        except NotImplementedError:
            raise
        except RuntimeError as error:
            raise CheckFailed(f"your step raised RuntimeError with {size}: {error}. Is a product with S on the "
                              "wrong side, or an outer product transposed? S is (B, d_k, d_v), one row per key "
                              "feature: (I - beta k k^T) S multiplies from the left") from error
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(f"return the pair (o, S_new); got a {type(got).__name__}")
        expected = delta_rule_step(S, q, k, v, beta)
        mistakes = _delta_rule_mistakes(S, q, k, v, beta)
        for i, part in ((1, "S_new"), (0, "o")):
            name = f"{part} ({size})"
            check_shape(name, got[i], tuple(expected[i].shape))
            candidates = {hint: pair[i] for hint, pair in mistakes.items()}
            name_mistake(name, got[i], expected[i], candidates)
            check_close(name, got[i], expected[i], quiet=True)
    q, k = (torch.randn(2, 1, 8, 3, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 1, 8, 2, generator=g, dtype=torch.float64)
    beta = torch.rand(2, 1, 8, generator=g, dtype=torch.float64) * 2  # the whole range [0, 2]
    S, outputs = q.new_zeros(2, 3, 2), []
    for t in range(8):
        o, S = fn(S, q[:, 0, t], k[:, 0, t], v[:, 0, t], beta[:, 0, t])
        outputs.append(o)
    check_close("O from your steps (T=8, beta in [0, 2]), against delta_rule_recurrent",
                torch.stack(outputs, 1)[:, None], delta_rule_recurrent(q, k, v, beta)[0], quiet=True)
    print("OK my_delta_rule_step: two shapes, and 8 steps with beta in [0, 2] equal the recurrent form")
