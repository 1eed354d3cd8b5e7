"""Notebooks 01 and 05b, the exercises on :mod:`course_utils.shared.lm`.

Checks that name the usual mistakes: ``check_sample_next`` (01), ``check_temperature_softmax`` (05b).
"""

from __future__ import annotations

import math

import torch

from ..core.checks import CheckFailed, check_close, check_shape, check_type, name_mistake, refuse_reference
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
        candidates = {  # the slips of 05b's temperature softmax (those that are no distribution never match)
            **_temperature_softmax_mistakes(logits[0], temperature),
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


def _temperature_softmax_mistakes(logits: torch.Tensor, temperature: float) -> dict[str, torch.Tensor]:
    """What the usual wrong temperature softmaxes return for ``logits`` (any shape)."""
    return {
        "multiply the logits by the temperature instead of dividing: T < 1 must sharpen, softmax(logits / T)":
            torch.softmax(logits * temperature, dim=-1),
        "ignore the temperature (softmax(logits))": torch.softmax(logits, dim=-1),
        "apply the temperature after the softmax: it scales the logits, softmax(logits / T)":
            torch.softmax(logits, dim=-1) / temperature,
        "normalise over the first axis instead of the last (dim=-1: one distribution per row)":
            torch.softmax(logits / temperature, dim=0),
    }


def check_temperature_softmax(fn, seed: int = 0) -> None:
    """Test ``fn(logits, temperature)``: softmax(logits / temperature) over the last axis (notebook 05b, exercise 1).

    Cases: a batch at T = 0.5, 1, 2; large logits (1000 and up) at T = 0.7, where exp overflows
    without the max shift; a 3-d tensor; T = 0 and T < 0 must raise ValueError. Names the
    usual mistakes: no max shift, T multiplied, T ignored or applied after the softmax, the
    wrong axis.
    """
    fn = refuse_reference(fn, ("temperature_softmax", "sample_next"))
    g = torch.Generator().manual_seed(seed)
    cases = [(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]]), t) for t in (0.5, 1.0, 2.0)]
    cases += [(torch.tensor([[1000.0, 1001.0, 1002.0]]) + 10 * seed, 0.7),
              (torch.randn(2, 3, 5, generator=g) * 3, 1.5)]
    for logits, temperature in cases:
        name = f"my_temperature_softmax(logits of shape {tuple(logits.shape)}, {temperature})"
        got = fn(logits.clone(), temperature)
        check_type(name, got, torch.Tensor)
        check_shape(name, got, tuple(logits.shape))
        if not torch.isfinite(got).all() and logits.abs().max() > 80:
            raise CheckFailed(f"{name} contains inf or NaN: exp(logits / T) overflows for logits near "
                              f"{logits.max().item():.0f}. Subtract each row's max from logits / T before exp (as in "
                              "notebook 00's softmax): the result is the same, and exp never sees a large number.")
        expected = torch.softmax(logits / temperature, dim=-1)
        name_mistake(name, got, expected, _temperature_softmax_mistakes(logits, temperature))
        check_close(name, got, expected, quiet=True)
    for bad in (0.0, -1.0):
        try:
            fn(cases[0][0].clone(), bad)
        except ValueError:
            continue
        raise CheckFailed(f"my_temperature_softmax(logits, {bad}) should raise ValueError: a temperature must be "
                          "positive (T = 0 divides by zero; T < 0 turns the distribution upside down)")
    print(f"OK my_temperature_softmax: {len(cases)} cases, large logits included; T <= 0 raises ValueError")
