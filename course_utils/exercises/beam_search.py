"""Notebook 08b, the exercises on :mod:`course_utils.beam_search`.

Checks that name the usual mistakes: ``check_beam_step``.
"""

from __future__ import annotations

import torch

from ..beam_search import beam_step, normalised_score
from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference


def _beam_step_variant(total, length, finished, log_probs, beam_width, alpha, eos, *, norm="length",
                       expand_finished=False):
    """beam_step, right or with one usual mistake: no normalisation (or one length for all), a finished
    beam's length counted as the step number, finished beams expanded."""
    N, K, V = log_probs.shape
    if expand_finished:
        finished = torch.zeros_like(finished)
    parent, tok, tot, ln, fin = beam_step(total, length, finished, log_probs, K * V, 0.0, eos)  # every candidate
    if norm == "step":
        ln = ln + finished.gather(1, parent).long()  # a finished beam's length keeps growing
    score = tot if norm == "none" else normalised_score(tot, ln, alpha)
    order = score.topk(beam_width, dim=1).indices
    return tuple(x.gather(1, order) for x in (parent, tok, tot, ln, fin))


def _beam_case(seed: int):
    """Two inputs, three beams (one finished), a vocabulary of 5 with eos = 4, chosen so the mistakes differ."""
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(torch.randn(2, 3, 5, generator=g, dtype=torch.float64) * 2, dim=-1)
    total = torch.tensor([[-0.9, -2.6, -1.2], [-3.1, -1.0, -2.5]], dtype=torch.float64)
    length = torch.tensor([[1, 4, 2], [4, 1, 3]])
    finished = torch.tensor([[True, False, False], [False, True, False]])
    return total, length, finished, log_probs


def check_beam_step(fn, seed: int = 0) -> None:
    """Test ``fn(total, length, finished, log_probs, beam_width, alpha, eos)`` against :func:`beam_step`.

    Compares the kept candidates' totals, lengths and finished flags, in order. Fails
    naming the usual mistakes: ranking by the plain sum (no normalisation, or one length for
    all), a finished beam's length growing with the steps, extending finished beams.
    """
    fn = refuse_reference(fn, ("beam_step", "beam_search", "normalised_score"))
    total, length, finished, log_probs = _beam_case(seed)
    width, alpha, eos = 3, 1.0, 4
    got = fn(total.clone(), length.clone(), finished.clone(), log_probs.clone(), width, alpha, eos)
    if not isinstance(got, tuple) or len(got) != 5:
        raise CheckFailed("return a tuple of five tensors: parent, token, total, length, finished (each (N, W))")
    names = ("parent", "token", "total", "length", "finished")
    for name, value in zip(names, got, strict=True):
        check_shape(name, value, (2, width))
    args = (total, length, finished, log_probs, width, alpha, eos)
    expected = beam_step(*args)
    got_vec = torch.cat([torch.as_tensor(x).double() for x in got[2:]], dim=1)  # totals, lengths, flags
    as_vec = lambda r: torch.cat([x.double() for x in r[2:]], dim=1)  # noqa: E731
    mistakes = {
        "rank the candidates by their plain sum of log-probs (or divide them all by one common length, which "
        "keeps that order): divide each by its own length ** alpha":
            as_vec(_beam_step_variant(*args, norm="none")),
        "let a finished beam's length grow with the steps (dividing by the step number, not the length it "
        "finished with): its length stays what it was when it produced eos":
            as_vec(_beam_step_variant(*args, norm="step")),
        "extend finished beams like the others: a beam that has produced eos is carried forward unchanged, "
        "as one candidate (its total, its length, filler token eos)":
            as_vec(_beam_step_variant(*args, expand_finished=True)),
    }
    name_mistake("the kept candidates (total, length, finished)", got_vec, as_vec(expected), mistakes)
    for name, value, ref in zip(names, got, expected, strict=True):
        check_close(f"{name} of the kept candidates", torch.as_tensor(value).to(ref.dtype), ref, quiet=True)
    print(f"OK my_beam_step: {width} beams kept from 2 x 3 beams over 5 tokens, a finished beam in each")
