"""Notebook 06, sections 2-7: attention in an encoder-decoder, additive (Bahdanau) and dot-product (Luong) scoring.

At decoder step t the query is the decoder state ``s`` (B, Hq); the keys and values are the
encoder states ``h_j`` (B, S, Hk). A score per source position, a softmax over the valid
(non-padding) positions, and a weighted sum give the context vector:

    e_j = v^T tanh(W_q s + W_k h_j)          additive (Bahdanau et al., 2015)
    e_j = s^T W h_j                           multiplicative, Luong et al.'s "general" score
    a = softmax(e) over j with mask_j = True,  c = sum_j a_j h_j

The model :class:`AttentionSeq2Seq` uses either scoring, or none (then the context is the encoder's
final state at every step: the fixed-size bottleneck of notebook 05c).
:func:`check_seq2seq_config` grades a learner's choice of attention, size and learning rate
by training with it on a short variant of the dates task (the last exercise of 06).

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.attention`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_packed_sequence

from .core.seed import seeded
from .core.shapes import require_attention_mask, require_shape
from .core.training import fit
from .data.dates import (
    FORMATS,
    SOURCE_CHARS,
    TARGET_BOS,
    TARGET_CHARS,
    encode_source,
    encode_target,
    make_examples,
    make_pairs,
    split_days_with_validation,
)
from .output_types import pack_sources, shift_right
from .shared.metrics import exact_match


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis, giving exactly zero weight where ``mask`` is False.

    ``scores`` (B, S), ``mask`` (B, S) of bools (True = a real position, may attend) or None.
    A row with no real position gets zero weights (torch's attention returns NaN there), so
    its context, a weighted sum with these weights, is the zero vector. A float or int mask
    is a ``TypeError`` naming the convention (``shapes.require_attention_mask``).
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    require_attention_mask("mask", mask, scores.shape)  # bools, True = may attend: the dtype first
    require_shape("mask", mask, tuple(scores.shape))
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights.nan_to_num(0.0)  # a row with no real position: zero weights, as in self_attention


def additive_attention(
    query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None,
    W_q: torch.Tensor, W_k: torch.Tensor, v: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bahdanau attention for a batch: the context ``(B, Hk)`` and the weights ``(B, S)``.

    query (B, Hq), keys (B, S, Hk) (also the values), mask (B, S) of bools (True = may
    attend) or None, W_q (A, Hq), W_k (A, Hk), v (A,). A query whose mask hides every key
    gets all-zero weights and a zero context (see :func:`masked_softmax`).
    """
    B, S, Hk = keys.shape
    A = v.shape[0]
    require_shape("query", query, (B, W_q.shape[1]))
    require_shape("W_q", W_q, (A, None))
    require_shape("W_k", W_k, (A, Hk))
    hidden = torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T)  # (B, S, A)
    scores = hidden @ v  # (B, S)
    weights = masked_softmax(scores, mask)  # (B, S)
    context = (weights[:, :, None] * keys).sum(dim=1)  # (B, Hk)
    return context, weights


def additive_attention_loop(
    query: np.ndarray, keys: np.ndarray, length: int, W_q: np.ndarray, W_k: np.ndarray, v: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Additive attention as a loop over positions for ONE sequence, corrected: the same numbers, slowly.

    query (Hq,), keys (S, Hk) of which the first ``length`` are real, W_q (A, Hq), W_k (A, Hk),
    v (A,). Returns context (Hk,) and weights (S,), zero at padding. Unlike the common
    loop version it skips padding, subtracts the max before ``exp`` (no overflow), and returns
    1-d arrays instead of a list of (1,) arrays.
    """
    scores = np.full(len(keys), -np.inf)
    for j in range(length):
        scores[j] = v @ np.tanh(W_q @ query + W_k @ keys[j])
    weights = np.exp(scores - scores[:length].max())
    weights /= weights.sum()
    context = np.zeros(keys.shape[1])
    for j in range(length):
        context += weights[j] * keys[j]
    return context, weights


def dot_attention(
    query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None, W: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Luong attention: scores ``s^T W h_j`` (or ``s^T h_j`` if W is None); context and weights.

    query (B, Hq), keys (B, S, Hk), mask (B, S) of bools (True = may attend) or None,
    W (Hq, Hk) or None (then Hq must equal Hk). A fully masked query gets zero weights and a
    zero context, as in :func:`additive_attention`.
    """
    B, S, Hk = keys.shape
    if W is not None:
        require_shape("W", W, (query.shape[-1], Hk))
        query = query @ W  # (B, Hk)
    require_shape("query", query, (B, Hk))
    scores = (keys @ query[:, :, None])[:, :, 0]  # (B, S)
    weights = masked_softmax(scores, mask)
    context = (weights[:, :, None] * keys).sum(dim=1)  # (B, Hk)
    return context, weights


class AdditiveAttention(nn.Module):
    """:func:`additive_attention` with learned ``W_q``, ``W_k``, ``v``."""

    def __init__(self, query_size: int, key_size: int, attn_size: int):
        super().__init__()
        self.W_q = nn.Parameter(torch.randn(attn_size, query_size) / query_size**0.5)
        self.W_k = nn.Parameter(torch.randn(attn_size, key_size) / key_size**0.5)
        self.v = nn.Parameter(torch.randn(attn_size) / attn_size**0.5)

    def forward(self, query, keys, mask):
        return additive_attention(query, keys, mask, self.W_q, self.W_k, self.v)


class DotAttention(nn.Module):
    """:func:`dot_attention` with a learned ``W`` (Luong's "general" score)."""

    def __init__(self, query_size: int, key_size: int):
        super().__init__()
        self.W = nn.Parameter(torch.randn(query_size, key_size) / (query_size * key_size) ** 0.25)

    def forward(self, query, keys, mask):
        return dot_attention(query, keys, mask, self.W)


class AttentionSeq2Seq(nn.Module):
    """A GRU encoder-decoder, with attention (``"additive"``, ``"dot"``) or without (``None``).

    Encoder: embedding and a bidirectional GRU over the padded source (packed, so padding
    never enters a state). Decoder step t (Bahdanau's order):
        c_t = attention(s_{t-1}, h)             or the encoder's final states, if no attention
        s_t = GRUCell([embed(y_{t-1}); c_t], s_{t-1})
        logits_t = Linear([s_t; c_t])
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embed: int = 32, hidden: int = 64,
                 attention: str | None = "additive"):
        super().__init__()
        if attention not in ("additive", "dot", None):
            raise ValueError(f"attention must be 'additive', 'dot' or None, got {attention!r}")
        self.src_embed = nn.Embedding(src_vocab, embed, padding_idx=0)
        self.encoder = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)  # final encoder states -> s_0
        self.tgt_embed = nn.Embedding(tgt_vocab, embed)
        self.cell = nn.GRUCell(embed + 2 * hidden, hidden)
        self.out = nn.Linear(hidden + 2 * hidden, tgt_vocab)
        self.attention_kind = attention
        if attention == "additive":
            self.attention = AdditiveAttention(hidden, 2 * hidden, hidden)
        elif attention == "dot":
            self.attention = DotAttention(hidden, 2 * hidden)
        else:
            self.attention = None

    def encode(self, src: torch.Tensor, lengths: torch.Tensor):
        """Encoder states (B, S, 2H), their mask (B, S), the summary (B, 2H) and s_0 (B, H)."""
        out, h_n = self.encoder(pack_sources(self.src_embed, src, lengths))  # h_n (2, B, H): last fwd, last bwd
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])  # (B, S, 2H)
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < lengths.to(src.device)[:, None]
        summary = torch.cat([h_n[0], h_n[1]], dim=-1)  # (B, 2H)
        return states, mask, summary, torch.tanh(self.bridge(summary))

    def step(self, y_prev, s, states, mask, summary):
        """One decoder step: logits (B, V), new state (B, H), weights (B, S) or None."""
        if self.attention is None:
            context, weights = summary, None
        else:
            context, weights = self.attention(s, states, mask)
        s = self.cell(torch.cat([self.tgt_embed(y_prev), context], dim=-1), s)
        return self.out(torch.cat([s, context], dim=-1)), s, weights

    def forward(self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor):
        """Teacher forcing: logits (B, T, V) for the target inputs ``tgt_in`` (B, T)."""
        states, mask, summary, s = self.encode(src, lengths)
        logits = []
        for t in range(tgt_in.shape[1]):
            step_logits, s, _ = self.step(tgt_in[:, t], s, states, mask, summary)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, lengths: torch.Tensor, steps: int, bos: int = TARGET_BOS):
        """Greedy decoding: token ids (B, steps) and attention weights (B, steps, S) (or None)."""
        states, mask, summary, s = self.encode(src, lengths)
        y = torch.full((src.shape[0],), bos, dtype=torch.long, device=src.device)
        tokens, weights = [], []
        for _ in range(steps):
            logits, s, w = self.step(y, s, states, mask, summary)
            y = logits.argmax(dim=-1)
            tokens.append(y)
            weights.append(w)
        attn = None if self.attention is None else torch.stack(weights, dim=1)
        return torch.stack(tokens, dim=1), attn


def teacher_forcing_loss(model: AttentionSeq2Seq, batch, bos: int = TARGET_BOS) -> torch.Tensor:
    """Cross-entropy of a batch ``(src, lengths, tgt)``; the decoder reads ``[bos, tgt[:-1]]``."""
    src, lengths, tgt = batch
    tgt_in = shift_right(tgt, bos)  # (B, T)
    logits = model(src, lengths, tgt_in)  # (B, T, V)
    return nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten())


@torch.no_grad()
def greedy_exact_match(model: AttentionSeq2Seq, src: torch.Tensor, lengths: torch.Tensor, tgt: torch.Tensor,
                       batch_size: int = 2048) -> torch.Tensor:
    """Per example: is the greedy output equal to ``tgt`` in every position? (N,) bools."""
    model.eval()
    hits = []
    for i in range(0, len(src), batch_size):
        pred, _ = model.greedy(src[i : i + batch_size], lengths[i : i + batch_size], tgt.shape[1])
        hits.append(exact_match(pred, tgt[i : i + batch_size]))
    return torch.cat(hits)


# ---------------------------------------------------------------------- the training batches (section 3, and 08b)

def dates_batches(src: torch.Tensor, lengths: torch.Tensor, tgt: torch.Tensor, *, steps: int, batch_size: int,
                  seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``steps`` batches of ``batch_size`` pairs drawn at random (with replacement), each trimmed to its longest input.

    ``src`` (N, S) padded source ids, ``lengths`` (N,), ``tgt`` (N, T). Yields
    ``(src (B, W), lengths (B,), tgt (B, T))`` with W the longest input of the batch. The
    draws come from ``torch.Generator().manual_seed(seed)`` alone, so a seed gives the same
    batches in the same order on every call and every machine, whatever the global random
    state; every model given the same seed trains on the same batches.
    """
    require_shape("src", src, ("N", "S"))
    require_shape("lengths", lengths, (src.shape[0],))
    require_shape("tgt", tgt, (src.shape[0], "T"))
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    return _draw_batches(src, lengths, tgt, steps, batch_size, torch.Generator().manual_seed(seed))


def _draw_batches(src, lengths, tgt, steps: int, batch_size: int, g: torch.Generator):
    """The generator behind :func:`dates_batches` (which checks its arguments at the call, not at the first batch)."""
    for _ in range(steps):
        idx = torch.randint(0, len(src), (batch_size,), generator=g)  # (B,)
        width = int(lengths[idx].max())  # trim the padding no input of the batch needs
        yield src[idx, :width], lengths[idx], tgt[idx]  # (B, W), (B,), (B, T)


# ---------------------------------------------------------------------- the bottleneck by input length (section 4)

# Section 3's task and budget: the days split three ways as in notebook 08b (5,000 held-out test days,
# 2,000 validation days taken from the rest), 30,000 training pairs from the training days, 4,000
# validation examples (for every analysis) and 2,000 test pairs (read once, for the final number),
# batches of 128 random pairs, Adam at 3e-3, gradient norm clipped at 1.
DATES_TASK = {"n_test_days": 5000, "n_val_days": 2000, "n_train": 30_000, "n_val": 4000, "n_test": 2000,
              "batch_size": 128, "lr": 3e-3}
LENGTH_BUCKETS = ((5, 10), (11, 15), (16, 20), (21, 30))  # input lengths, in characters
MONTH_NUMBER_FORMATS = tuple(f for f in FORMATS if "{m" in f)  # the month written as digits, not as a name


def dates_task() -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], list[str]]:
    """Section 3's data: ``(src, lengths, tgt)`` for training and for validation, and the validation examples' formats.

    The same examples as notebook 06 (days by :func:`split_days_with_validation`, training pairs seed 1,
    validation examples seed 3). The test pairs (seed 2) are not here: the notebook reads them once.
    """
    train_days, val_days, _ = split_days_with_validation(DATES_TASK["n_test_days"], DATES_TASK["n_val_days"])
    train = make_pairs(train_days, DATES_TASK["n_train"], seed=1)
    val = make_examples(val_days, DATES_TASK["n_val"], seed=3)
    src, lengths = encode_source([text for text, _ in train])  # (N, S), (N,)
    val_src, val_lengths = encode_source([text for text, _, _ in val])
    return ((src, lengths, encode_target([iso for _, iso in train])),
            (val_src, val_lengths, encode_target([iso for _, iso, _ in val])), [fmt for *_, fmt in val])


def exact_match_by_group(hits: torch.Tensor, groups: list) -> dict:
    """The mean of ``hits`` (N,) bools per value of ``groups`` (N labels), in the order first seen."""
    if len(groups) != len(hits):
        raise ValueError(f"groups has {len(groups)} labels for {len(hits)} hits; give one label per example")
    out: dict = {}
    for label in dict.fromkeys(groups):
        pick = torch.tensor([g == label for g in groups])
        out[label] = hits[pick].float().mean().item()
    return out


def length_bucket(length: int) -> str:
    """The :data:`LENGTH_BUCKETS` label (``"5-10"``) of an input length."""
    for lo, hi in LENGTH_BUCKETS:
        if lo <= length <= hi:
            return f"{lo}-{hi}"
    raise ValueError(f"length {length} lies outside the buckets {LENGTH_BUCKETS}")


def bottleneck_study(seeds=(0, 1, 2), budgets=(240, 960), attention=None) -> dict:
    """Exact match on section 3's validation examples by input-length bucket and by month style, per seed and budget.

    For each seed, trains one model (section 3's sizes, data and optimiser; seed 0 draws
    exactly the notebook's batches) and evaluates it after each number of steps in ``budgets``,
    on the validation examples (an analysis of the model: the test pairs are not read).
    Returns ``{(seed, steps): {"all": float, "5-10": float, ..., "month number": float,
    "month name": float}}``. Slow (minutes on a CPU per seed): ``benchmarks/seq2seq_seeds.py``
    runs it for seeds 0-2 and writes the CSV that the notebook reads.
    """
    (src, lengths, tgt), (val_src, val_lengths, val_tgt), formats = dates_task()
    batch = DATES_TASK["batch_size"]
    buckets = [length_bucket(int(n)) for n in val_lengths]
    style = ["month number" if f in MONTH_NUMBER_FORMATS else "month name" for f in formats]
    cpu, results = torch.device("cpu"), {}
    for seed in seeds:
        with seeded(seed):
            model = AttentionSeq2Seq(len(SOURCE_CHARS), len(TARGET_CHARS), embed=32, hidden=64, attention=attention)
        optimizer = torch.optim.Adam(model.parameters(), lr=DATES_TASK["lr"])
        done = 0
        for steps in sorted(budgets):
            # seed 0, step 0: the notebook's batches
            chunk = list(dates_batches(src, lengths, tgt, steps=steps - done, batch_size=batch,
                                       seed=1000 * seed + done))
            fit(model, chunk, teacher_forcing_loss, optimizer, clip_grad_norm=1.0, device=cpu, progress=False)
            done = steps
            hits = greedy_exact_match(model, val_src, val_lengths, val_tgt)
            results[(seed, steps)] = {"all": hits.float().mean().item(), **exact_match_by_group(hits, buckets),
                                      **exact_match_by_group(hits, style)}
    return results
