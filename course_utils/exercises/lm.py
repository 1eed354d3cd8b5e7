"""Notebook 01, the exercises on :mod:`course_utils.shared.lm`.

Checks that name the usual mistakes: ``check_sample_next``.
"""

from __future__ import annotations

import math

import torch

from ..core.checks import CheckFailed, check_shape, check_type, refuse_reference
from ..shared.lm import temperature_softmax


def _distribution_of(fn, logits: torch.Tensor, temperature: float, rows: int, seed: int) -> torch.Tensor:
    """The share of each id among ``rows`` draws of ``fn`` from the same logits: ``(V,)``."""
    name = "my_sample_next"
    batch = logits.expand(rows, -1).clone()  # (rows, V)
    try:
        ids = fn(batch, temperature, torch.Generator().manual_seed(seed))
    except RuntimeError as error:
        if "probability tensor contains" in str(error) or "invalid multinomial" in str(error):
            raise CheckFailed(f"{name} at temperature {temperature} made probabilities that are inf or NaN: "
                              "exp overflows when logits / temperature is large; subtract the row's max "
                              "before exp (as in notebook 00's softmax).") from error
        raise
    check_type(f"{name}(...)", ids, torch.Tensor)
    if tuple(ids.shape) == (rows, 1):
        raise CheckFailed(f"{name} returned shape {(rows, 1)}, expected {(rows,)}: one id per row (squeeze(1)).")
    check_shape(f"{name}(...)", ids, (rows,))
    if ids.dtype != torch.long:
        raise CheckFailed(f"{name} returned {ids.dtype} ids, expected torch.long (class indices).")
    return torch.bincount(ids.cpu(), minlength=logits.shape[-1]).double() / rows


def check_sample_next(fn, seed: int = 0, rows: int = 20_000) -> None:
    """Test ``fn(logits (B, V), temperature, generator) -> ids (B,)`` by the frequencies of its draws.

    The draws need not equal :func:`sample_next`'s (any correct sampler passes); their shares
    must match ``softmax(logits / temperature)`` within sampling noise. Names the usual
    mistakes: logits times the temperature, the temperature ignored, argmax instead of a
    draw, the max not subtracted (overflow at low temperature).
    """
    fn = refuse_reference(fn, ("sample_next", "temperature_softmax"))  # torch.softmax is allowed
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0]], dtype=torch.float64)
    for temperature in (1.0, 0.5, 2.0):
        got = _distribution_of(fn, logits, temperature, rows, seed)
        expected = temperature_softmax(logits[0], temperature)
        tolerance = 5 * math.sqrt(0.25 / rows)  # five standard errors of a share, at worst
        if (got - expected).abs().max() <= tolerance:
            continue
        candidates = {
            "multiply the logits by the temperature instead of dividing":
                temperature_softmax(logits[0] * temperature, 1.0),
            "ignore the temperature": temperature_softmax(logits[0], 1.0),
            "take the argmax instead of drawing (that is temperature -> 0)": torch.nn.functional.one_hot(
                logits[0].argmax(), logits.shape[-1]).double(),
        }
        for hint, dist in candidates.items():
            if (got - dist).abs().max() <= tolerance:
                raise CheckFailed(f"the shares of your draws at temperature {temperature} match what you get when "
                                  f"you {hint}.")
        worst = int((got - expected).abs().argmax())
        raise CheckFailed(f"at temperature {temperature}, id {worst} came up {got[worst]:.3f} of the time; "
                          f"softmax(logits / temperature) gives it {expected[worst]:.3f}.")
    big = torch.tensor([[800.0, 790.0, 0.0]], dtype=torch.float64)  # logits / 0.1 = 8000: exp overflows unshifted
    got = _distribution_of(fn, big, 0.1, 200, seed)
    if got[0] < 0.99:
        raise CheckFailed(f"with logits {big[0].tolist()} at temperature 0.1, id 0 should win almost always; "
                          f"yours came up {got[0]:.2f} of the time.")
    print(f"OK my_sample_next: the shares of {rows:,} draws match softmax(logits / T) at T = 0.5, 1 and 2, "
          "and large logits do not overflow")
