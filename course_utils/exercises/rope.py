"""Notebook 08e, the exercise on :mod:`course_utils.rope`.

``check_rotary_attention`` tests a learner's causal attention with rotary positions against a
float64 reference written with complex numbers (pair j of a vector as one complex number,
rotated by multiplying with e^(i m theta_j)), and names the usual mistakes: rotating by -theta,
the frequencies' exponent or base wrong, rotating the values too, rotating only q, pairing the
halves instead of neighbours, or mixing the two pairings between q and k, no causal mask or no
1/sqrt(d) scale.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference


def _rotate(x: np.ndarray, *, sign: float = 1.0, exponent: float = 2.0, base: float = 10000.0,
            pairing: str = "interleaved") -> np.ndarray:
    """x (..., T, d) rotated at positions 0..T-1 as complex numbers: z_j * e^(i sign m base^(-exponent j/d))."""
    T, d = x.shape[-2:]
    a, b = (x[..., 0::2], x[..., 1::2]) if pairing == "interleaved" else (x[..., : d // 2], x[..., d // 2 :])
    theta = base ** (-exponent * np.arange(d // 2) / d)  # (d/2,)
    z = (a + 1j * b) * np.exp(1j * sign * np.arange(T)[:, None] * theta)  # (..., T, d/2)
    out = np.empty_like(x)
    if pairing == "interleaved":
        out[..., 0::2], out[..., 1::2] = z.real, z.imag
    else:
        out[..., : d // 2], out[..., d // 2 :] = z.real, z.imag
    return out


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, causal: bool = True, scale: bool = True) -> np.ndarray:
    """softmax(q k^T / sqrt(d) + causal mask) v in float64."""
    scores = q @ np.swapaxes(k, -1, -2) / (np.sqrt(q.shape[-1]) if scale else 1.0)  # (..., T, T)
    if causal:
        T = scores.shape[-1]
        scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    return (w / w.sum(-1, keepdims=True)) @ v


def _rotary_mistakes(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
    """What the usual wrong answers return on (q, k, v)."""
    rq, rk = _rotate(q), _rotate(k)
    halves = {"pairing": "halves"}
    return {
        "rotate by -m theta instead of +m theta (the pair (a, b) turns to (a cos - b sin, a sin + b cos))":
            _attention(_rotate(q, sign=-1), _rotate(k, sign=-1), v),
        "rotate q but not k: both must turn by their own position for the score to depend on m - n only":
            _attention(rq, k, v),
        "rotate k but not q: both must turn by their own position for the score to depend on m - n only":
            _attention(q, rk, v),
        "rotate the values too: RoPE turns only q and k, which make the scores; v passes as it is":
            _attention(rq, rk, _rotate(v)),
        "write theta_j = base^(-j/d): the exponent is -2j/d, j counting the pairs 0 .. d/2 - 1":
            _attention(_rotate(q, exponent=1.0), _rotate(k, exponent=1.0), v),
        "write theta_j = base^(-2i/d) with i the feature 0, 2, 4, ... rather than the pair j = 0, 1, 2, ...":
            _attention(_rotate(q, exponent=4.0), _rotate(k, exponent=4.0), v),
        "write theta_j = base^(+2j/d): the frequencies fall from 1 to about 1/base, so the exponent is negative":
            _attention(_rotate(q, exponent=-2.0), _rotate(k, exponent=-2.0), v),
        "use base 1000 or 100: RoFormer's base is 10000, as in the sinusoidal encodings":
            _attention(_rotate(q, base=1000.0), _rotate(k, base=1000.0), v),
        "pair the two halves (x_j, x_j+d/2), GPT-NeoX's convention: valid in a model that uses it throughout, but "
        "this exercise (and the course) pairs neighbours (x_2j, x_2j+1), as RoFormer does":
            _attention(_rotate(q, **halves), _rotate(k, **halves), v),
        "pair q's features one way and k's the other (neighbours for one, halves for the other): mixing the two "
        "conventions loses the relative property":
            _attention(rq, _rotate(k, **halves), v),
        "pair k's features one way and q's the other (neighbours for one, halves for the other): mixing the two "
        "conventions loses the relative property":
            _attention(_rotate(q, **halves), rk, v),
        "leave out the causal mask: position m may attend to keys 0 .. m only":
            _attention(rq, rk, v, causal=False),
        "leave out the 1/sqrt(d) scale of the scores":
            _attention(rq, rk, v, scale=False),
    }


def check_rotary_attention(fn, seed: int = 0) -> None:
    """Test ``fn(q, k, v) -> out``, causal attention with RoPE (notebook 08e, exercise 1), naming the usual mistakes.

    q, k, v are (B, h, T, d) float64 tensors; positions run 0 .. T-1, pairs are neighbours
    (x_2j, x_2j+1) and theta_j = 10000^(-2j/d). The reference multiplies complex numbers.
    """
    fn = refuse_reference(fn, ("rotary_attention", "apply_rope", "RotaryMultiHeadAttention", "rope_angles",
                               "rope_frequencies"))
    g = torch.Generator().manual_seed(300 + seed)
    B, h, T, d = 2, 2, 7 + seed, 8
    q, k, v = (torch.randn(B, h, T, d, dtype=torch.float64, generator=g) for _ in range(3))
    q, k = q * 2, k * 2  # sharper weights: every mistake moves the output well beyond the tolerance
    got = fn(q.clone(), k.clone(), v.clone())
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"return the output as a torch tensor of shape {(B, h, T, d)}, not a {type(got).__name__}.")
    name = f"my_rotary_attention(q, k, v) with q, k, v of shape {(B, h, T, d)}"
    check_shape(name, got, (B, h, T, d))
    q64, k64, v64 = q.numpy(), k.numpy(), v.numpy()
    expected = _attention(_rotate(q64), _rotate(k64), v64)
    got64 = got.detach().cpu().double().numpy()
    name_mistake(name, got64, expected, _rotary_mistakes(q64, k64, v64))
    check_close(name, got64, expected, rtol=1e-6, atol=1e-8)
    print(f"OK my_rotary_attention: q and k rotated by m theta_j at positions 0..{T - 1}, causal, against "
          "a float64 reference")
