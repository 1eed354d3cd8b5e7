"""Notebook 08b, section 5: beam search with length normalisation, for any model that scores next tokens.

A hypothesis y_1..y_L (its end-of-sequence token included, if it has one) gets the score

    score(y) = (sum_t log p(y_t | y_<t, x)) / L^alpha

alpha = 0 ranks by the plain sum of log-probs (short outputs win: every token costs a
negative log-prob), alpha = 1 by the mean log-prob per token. This is the plain power of the
length, not GNMT's ((5 + L) / 6)^alpha. At each step every unfinished beam is extended by
every token, a finished beam is carried forward unchanged (not extended), and the
``beam_width`` best candidates by normalised score survive. Width 1 is greedy decoding.

The search is model-agnostic: it calls ``next_log_probs(prefixes, state)`` with the prefixes
``(N, K, t)`` (start token first) and whatever ``state`` the caller passed (an encoder's
output, say), and expects next-token log-probs ``(N, K, V)``.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.beam_search`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch

from .core.shapes import require_shape

NextLogProbs = Callable[[torch.Tensor, Any], torch.Tensor]  # (prefixes (N, K, t), state) -> (N, K, V)


def normalised_score(total: torch.Tensor, length: torch.Tensor, alpha: float) -> torch.Tensor:
    """Sum of log-probs divided by ``length ** alpha`` (elementwise; lengths of at least 1)."""
    return total / length.clamp(min=1).to(total.dtype) ** alpha


def _check_search_args(beam_width: int, max_len: int, alpha: float) -> None:
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"beam_width must be a whole number >= 1, got {beam_width!r}")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a whole number >= 1 (tokens to generate), got {max_len!r}")
    if not 0.0 <= alpha <= 2.0:
        raise ValueError(f"alpha must lie in [0, 2] (0: no length normalisation, 1: mean log-prob), got {alpha!r}")


def beam_step(total: torch.Tensor, length: torch.Tensor, finished: torch.Tensor, log_probs: torch.Tensor,
              beam_width: int, alpha: float, eos: int | None) -> tuple[torch.Tensor, ...]:
    """One step of beam search for N inputs with K beams each.

    total (N, K) sums of log-probs, length (N, K) tokens so far, finished (N, K) bools,
    log_probs (N, K, V) next-token log-probs. An unfinished beam becomes V candidates
    (``total + log_probs``, length + 1, finished if the token is ``eos``); a finished beam is
    one candidate, itself, with ``eos`` as filler token. Returns, for the ``beam_width`` best
    candidates by :func:`normalised_score`: parent beam (N, W), token (N, W), total, length,
    finished (N, W) each.
    """
    N, K, V = log_probs.shape
    require_shape("total", total, (N, K))
    filler = 0 if eos is None else eos
    cand_total = total[:, :, None] + log_probs  # (N, K, V)
    keep = torch.full_like(log_probs, float("-inf"))
    keep[:, :, filler] = 0.0  # a finished beam's only candidate: itself, unchanged
    cand_total = torch.where(finished[:, :, None], total[:, :, None] + keep, cand_total)
    cand_length = (length + (~finished).long())[:, :, None].expand(N, K, V)  # (N, K, V)
    token = torch.arange(V, device=log_probs.device).expand(N, K, V)
    cand_finished = finished[:, :, None] | (token == eos if eos is not None else torch.zeros_like(token, dtype=bool))
    score = normalised_score(cand_total, cand_length, alpha).flatten(1)  # (N, K * V)
    best = score.topk(min(beam_width, K * V), dim=1).indices  # (N, W)
    parent, tok = best // V, best % V
    pick = lambda x: x.flatten(1).gather(1, best)  # noqa: E731
    return parent, tok, pick(cand_total), pick(cand_length), pick(cand_finished)


def beam_search(next_log_probs: NextLogProbs, state: Any, *, n: int, bos: int, max_len: int, beam_width: int,
                alpha: float = 1.0, eos: int | None = None, device: torch.device | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Beam search for ``n`` inputs: tokens (n, max_len) without the start token, log-prob sums (n,), lengths (n,).

    ``next_log_probs(prefixes (n, K, t), state) -> (n, K, V)``; ``eos`` None means every
    output has ``max_len`` tokens (then alpha does not change the ranking). After ``eos``
    the tokens are ``eos`` again (filler). The winner is the beam with the best
    :func:`normalised_score` after ``max_len`` steps or once every beam has finished.
    """
    _check_search_args(beam_width, max_len, alpha)
    prefixes = torch.full((n, 1, 1), bos, dtype=torch.long, device=device)  # (n, K=1, t=1)
    total = torch.zeros(n, 1, device=device)
    length = torch.zeros(n, 1, dtype=torch.long, device=device)
    finished = torch.zeros(n, 1, dtype=torch.bool, device=device)
    for _ in range(max_len):
        log_probs = next_log_probs(prefixes, state)  # (n, K, V)
        require_shape("next_log_probs(prefixes, state)", log_probs, (n, prefixes.shape[1], "V"))
        total = total.to(log_probs.dtype)
        parent, tok, total, length, finished = beam_step(total, length, finished, log_probs, beam_width, alpha, eos)
        prefixes = torch.cat([prefixes.gather(1, parent[:, :, None].expand(-1, -1, prefixes.shape[2])),
                              tok[:, :, None]], dim=2)  # (n, W, t + 1)
        if finished.all():
            break
    best = normalised_score(total, length, alpha).argmax(dim=1)  # (n,)
    rows = torch.arange(n, device=prefixes.device)
    tokens = prefixes[rows, best, 1:]  # (n, t)
    if tokens.shape[1] < max_len:
        pad = torch.full((n, max_len - tokens.shape[1]), 0 if eos is None else eos, dtype=torch.long,
                         device=tokens.device)
        tokens = torch.cat([tokens, pad], dim=1)
    return tokens, total[rows, best], length[rows, best]


def greedy_search(next_log_probs: NextLogProbs, state: Any, *, n: int, bos: int, max_len: int,
                  eos: int | None = None, device: torch.device | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy decoding written out on its own (argmax at every step), with :func:`beam_search`'s outputs."""
    prefixes = torch.full((n, 1, 1), bos, dtype=torch.long, device=device)  # (n, 1, t)
    total = torch.zeros(n, device=device)
    length = torch.zeros(n, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for _ in range(max_len):
        log_probs = next_log_probs(prefixes, state)[:, 0]  # (n, V)
        lp, tok = log_probs.max(dim=-1)  # (n,), (n,)
        total = total.to(lp.dtype) + torch.where(done, torch.zeros_like(lp), lp)
        length = length + (~done).long()
        if eos is not None:
            tok = torch.where(done, torch.full_like(tok, eos), tok)
            done = done | (tok == eos)
        prefixes = torch.cat([prefixes, tok[:, None, None]], dim=2)
    return prefixes[:, 0, 1:], total, length


def exhaustive_search(next_log_probs: NextLogProbs, state: Any, *, vocab_size: int, bos: int, max_len: int,
                      alpha: float = 1.0, eos: int | None = None) -> tuple[tuple[int, ...], float]:
    """The best output of ONE input by brute force: every sequence of up to ``max_len`` tokens.

    A sequence ends at ``eos`` or after ``max_len`` tokens. Returns its tokens (up to and
    including ``eos``) and its :func:`normalised_score`. Only for tiny vocabularies: V^max_len calls.
    """
    best, best_score = (), float("-inf")
    for seq in itertools.product(range(vocab_size), repeat=max_len):
        if eos is not None and eos in seq:
            seq = seq[: seq.index(eos) + 1]
        prefix, total = [bos], 0.0
        for token in seq:
            lp = next_log_probs(torch.tensor([[prefix]]), state)[0, 0]  # (V,)
            total += float(lp[token])
            prefix.append(token)
        score = total / len(seq) ** alpha
        if score > best_score + 1e-12:
            best, best_score = tuple(seq), score
    return best, best_score


def bigram_table_model(probs: torch.Tensor) -> NextLogProbs:
    """A hand-built "model": next-token probabilities that depend only on the last token.

    ``probs`` (V, V): row a is p(next | last = a), rows summing to 1. Returns a
    ``next_log_probs`` for :func:`beam_search` (the state is ignored).
    """
    require_shape("probs", probs, ("V", "V"))
    if not torch.allclose(probs.sum(dim=1), torch.ones(len(probs), dtype=probs.dtype)):
        raise ValueError(f"each row of probs must sum to 1, got row sums {probs.sum(dim=1).tolist()}")
    log_table = probs.log()

    def next_log_probs(prefixes: torch.Tensor, state: Any) -> torch.Tensor:
        return log_table[prefixes[..., -1]]  # (N, K, V)

    return next_log_probs
