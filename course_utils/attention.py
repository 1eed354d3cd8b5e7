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
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .checks import (
    CheckFailed,
    check_close,
    check_shape,
    learning_rate_hints,
    name_mistake,
    outcome_verdict,
    refuse_reference,
)
from .data.dates import (
    FORMATS,
    NUMERIC_FORMATS,
    SOURCE_CHARS,
    TARGET_BOS,
    TARGET_CHARS,
    encode_source,
    encode_target,
    make_examples,
    make_pairs,
    split_days,
)
from .metrics import exact_match
from .output_types import shift_right
from .seed import seeded_run
from .shapes import require_attention_mask, require_shape
from .training import fit


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
    """The lecture's loop version for ONE sequence, corrected: the same numbers, slowly.

    query (Hq,), keys (S, Hk) of which the first ``length`` are real, W_q (A, Hq), W_k (A, Hk),
    v (A,). Returns context (Hk,) and weights (S,), zero at padding. Unlike the common
    lecture version it skips padding, subtracts the max before ``exp`` (no overflow), and returns
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
        require_shape("src", src, ("B", "S"))
        require_shape("lengths", lengths, (src.shape[0],))
        if len(lengths) and int(lengths.min()) < 1:
            raise ValueError(f"lengths must all be at least 1 (an empty source has nothing to encode), got "
                             f"{lengths.tolist()}")
        packed = pack_padded_sequence(self.src_embed(src), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, h_n = self.encoder(packed)  # h_n (2, B, H): last forward and last backward state
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

# Section 3's task and budget: 30,000 training pairs from the training days, 4,000 test pairs
# from 5,000 held-out days, batches of 128 random pairs, Adam at 3e-3, gradient norm clipped at 1.
DATES_TASK = {"n_test_days": 5000, "n_train": 30_000, "n_test": 4000, "batch_size": 128, "lr": 3e-3}
LENGTH_BUCKETS = ((5, 10), (11, 15), (16, 20), (21, 30))  # input lengths, in characters
MONTH_NUMBER_FORMATS = tuple(f for f in FORMATS if "{m" in f)  # the month written as digits, not as a name


def dates_task() -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], list[str]]:
    """Section 3's data: ``(src, lengths, tgt)`` for training and for the test, and the test examples' formats.

    The same pairs as notebook 06 (day split seed 0, training pairs seed 1, test pairs seed 2).
    """
    train_days, test_days = split_days(n_test_days=DATES_TASK["n_test_days"], seed=0)
    train = make_pairs(train_days, DATES_TASK["n_train"], seed=1)
    test = make_examples(test_days, DATES_TASK["n_test"], seed=2)
    src, lengths = encode_source([text for text, _ in train])  # (N, S), (N,)
    test_src, test_lengths = encode_source([text for text, _, _ in test])
    return ((src, lengths, encode_target([iso for _, iso in train])),
            (test_src, test_lengths, encode_target([iso for _, iso, _ in test])), [fmt for *_, fmt in test])


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
    """Exact match on section 3's test set by input-length bucket and by month style, per seed and step budget.

    For each seed, trains one model (section 3's sizes, data and optimiser; seed 0 draws
    exactly the notebook's batches) and evaluates it after each number of steps in ``budgets``.
    Returns ``{(seed, steps): {"all": float, "5-10": float, ..., "month number": float,
    "month name": float}}``. Slow (minutes on a CPU per seed): ``benchmarks/seq2seq_seeds.py``
    runs it for seeds 0-2 and writes the CSV that the notebook reads.
    """
    (src, lengths, tgt), (test_src, test_lengths, test_tgt), formats = dates_task()
    batch = DATES_TASK["batch_size"]
    buckets = [length_bucket(int(n)) for n in test_lengths]
    style = ["month number" if f in MONTH_NUMBER_FORMATS else "month name" for f in formats]
    cpu, results = torch.device("cpu"), {}
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AttentionSeq2Seq(len(SOURCE_CHARS), len(TARGET_CHARS), embed=32, hidden=64, attention=attention)
        optimizer = torch.optim.Adam(model.parameters(), lr=DATES_TASK["lr"])
        done = 0
        for steps in sorted(budgets):
            # seed 0, step 0: the notebook's batches
            chunk = list(dates_batches(src, lengths, tgt, steps=steps - done, batch_size=batch,
                                       seed=1000 * seed + done))
            fit(model, chunk, teacher_forcing_loss, optimizer, clip_grad_norm=1.0, device=cpu, progress=False)
            done = steps
            hits = greedy_exact_match(model, test_src, test_lengths, test_tgt)
            results[(seed, steps)] = {"all": hits.float().mean().item(), **exact_match_by_group(hits, buckets),
                                      **exact_match_by_group(hits, style)}
    return results


# ----------------------------------------------------------------------------- the masked softmax (exercise 1)

def _masked_softmax_mistakes(scores: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the usual wrong masked softmaxes return (NaN rows kept: name_mistake matches them)."""
    neg_inf = scores.masked_fill(~mask, float("-inf"))
    return {
        "apply the mask after the softmax (softmax(scores) * mask): the weights of the real positions no "
        "longer sum to 1; fill the padded scores with -inf BEFORE the softmax":
            torch.softmax(scores, dim=-1) * mask,
        "fill the padded scores with 0 instead of -inf: exp(0) = 1, so padding still gets weight":
            torch.softmax(scores.masked_fill(~mask, 0.0), dim=-1),
        "invert the mask: True means a real position (attend), so fill where ~mask":
            torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1).nan_to_num(0.0),
        "take the softmax over the batch axis (dim=0) instead of the source positions (dim=-1)":
            torch.softmax(neg_inf, dim=0).nan_to_num(0.0),
        "leave a row with no real position as softmax(-inf, ..., -inf) = NaN: give it zero weights "
        "(e.g. .nan_to_num(0.0))": torch.softmax(neg_inf, dim=-1),
    }


def check_masked_softmax(fn, seed: int = 0) -> None:
    """Test ``fn(scores (B, S), mask (B, S) bools) -> weights (B, S)`` against :func:`masked_softmax`.

    Includes a row with no real position (its weights must be 0, not NaN). Fails naming the
    usual mistakes: mask after the softmax, 0 instead of -inf, an inverted mask, the batch
    axis, NaN rows.
    """
    refuse_reference(fn, ("masked_softmax", "additive_attention", "dot_attention", "scaled_dot_product_attention"))
    g = torch.Generator().manual_seed(seed)
    B, S = 4, 6
    scores = torch.randn(B, S, generator=g, dtype=torch.float64) * 3  # (B, S)
    lengths = torch.tensor([6, 4, 1, 0])  # the last row is all padding
    mask = torch.arange(S)[None, :] < lengths[:, None]  # (B, S)
    got = fn(scores.clone(), mask.clone())
    if isinstance(got, tuple):
        raise CheckFailed(f"return the weights alone (one tensor of shape {(B, S)}), not a tuple of {len(got)}")
    check_shape("weights", got, (B, S))
    expected = masked_softmax(scores, mask)
    name_mistake("weights", got, expected, _masked_softmax_mistakes(scores, mask))
    check_close("weights", got, expected)


# ----------------------------------------------------------------------------- greedy decoding (exercise 2)

def _greedy_variant(model: AttentionSeq2Seq, src, lengths, steps: int, bos: int, *, feed_back: bool = True,
                    carry_state: bool = True) -> torch.Tensor:
    """Greedy decoding, right or with one of two mistakes switched on."""
    states, mask, summary, s0 = model.encode(src, lengths)
    s = s0
    y = torch.full((src.shape[0],), bos, dtype=torch.long, device=src.device)
    tokens = []
    for _ in range(steps):
        logits, s_next, _ = model.step(y, s, states, mask, summary)
        s = s_next if carry_state else s0
        pred = logits.argmax(dim=-1)  # (B,)
        tokens.append(pred)
        y = pred if feed_back else y
    return torch.stack(tokens, dim=1)  # (B, steps)


def _toy_seq2seq(seed: int) -> tuple[AttentionSeq2Seq, torch.Tensor, torch.Tensor]:
    """A small untrained model with strong weights (its outputs depend on what it is fed) and a padded batch."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AttentionSeq2Seq(9, 7, embed=8, hidden=12, attention="additive").double().eval()
        with torch.no_grad():
            for param in model.parameters():
                param.mul_(3.0)
        src = torch.randint(1, 9, (8, 6))  # (B, S)
    lengths = torch.tensor([6, 5, 4, 6, 3, 2, 6, 1])
    src = src.masked_fill(torch.arange(6)[None, :] >= lengths[:, None], 0)
    return model, src, lengths


def check_greedy(fn, seed: int = 0) -> None:
    """Test ``fn(model, src, lengths, steps, bos) -> tokens (B, steps)`` against :meth:`AttentionSeq2Seq.greedy`.

    Uses a small untrained model. Fails naming the usual mistakes: the start token fed at
    every step instead of the previous prediction, the decoder state not carried from step
    to step, the start token returned as the first output.
    """
    refuse_reference(fn, ("greedy", "greedy_exact_match"))
    model, src, lengths = _toy_seq2seq(seed)
    steps, bos = 7, TARGET_BOS
    with torch.no_grad():
        got = fn(model, src.clone(), lengths.clone(), steps, bos)
        expected, _ = model.greedy(src, lengths, steps, bos)
        first_is_bos = torch.cat([torch.full((len(src), 1), bos), expected[:, :-1]], dim=1)
        mistakes = {
            "feed the start token at every step: each step must read the token predicted at the step before":
                _greedy_variant(model, src, lengths, steps, bos, feed_back=False),
            "start every step from the first decoder state s_0: carry the state s returned by model.step":
                _greedy_variant(model, src, lengths, steps, bos, carry_state=False),
            "return the start token as the first output: the outputs are the steps' predictions only":
                first_is_bos,
        }
    if isinstance(got, tuple):
        raise CheckFailed(f"return the tokens alone (one tensor of shape {(len(src), steps)}), not a tuple")
    check_shape("tokens", got, (len(src), steps))
    if isinstance(got, torch.Tensor) and got.dtype != torch.long:
        raise CheckFailed(f"tokens should be token ids (torch.long, from argmax), got {got.dtype}")
    name_mistake("tokens", got, expected, mistakes)
    check_close("tokens", got, expected)



# ----------------------------------------------------------------------------- the outcome-graded exercise (exercise 4)

SEQ2SEQ_CONFIG_KEYS = ("attention", "hidden_size", "lr")
SEQ2SEQ_ATTENTION_KINDS = ("none", "dot", "additive")  # "none": the context is the encoder's final states
# The short task: digit-only dates (NUMERIC_FORMATS, 8-10 characters), the optimiser steps and
# batch size of the budget, the held-out dates the exact match is measured on, the target.
DATES_CHALLENGE = {"steps": 150, "batch_size": 32, "n_val": 200, "target": 0.9}
DATES_CHALLENGE_EMBED = 16  # embedding size of the challenge's model (not a choice)
MAX_SEQ2SEQ_HIDDEN = 64  # keeps the check at a few seconds


def _validate_seq2seq_config(config: dict) -> dict:
    keys = SEQ2SEQ_CONFIG_KEYS
    if not isinstance(config, dict) or set(config) != set(keys):
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise CheckFailed(f"return a dict with exactly the keys {', '.join(keys)}; got {got}")
    kind, hidden, lr = config["attention"], config["hidden_size"], config["lr"]
    if kind not in SEQ2SEQ_ATTENTION_KINDS:
        raise CheckFailed(f"attention should be one of {', '.join(map(repr, SEQ2SEQ_ATTENTION_KINDS))}, got {kind!r}")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= MAX_SEQ2SEQ_HIDDEN:
        raise CheckFailed(f"hidden_size should be a whole number from 1 to {MAX_SEQ2SEQ_HIDDEN}, got {hidden!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 0.1:
        raise CheckFailed(f"lr should be a number in (0, 0.1], got {lr!r}")
    return {"attention": kind, "hidden_size": hidden, "lr": float(lr)}


def _dates_challenge_data(seed: int) -> tuple[list, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The training batches and the held-out set of the challenge, all drawn from ``seed``.

    Batches ``(src (B, S), lengths (B,), tgt (B, 10))``; the held-out dates are days that no
    training example uses.
    """
    steps, batch_size, n_val = DATES_CHALLENGE["steps"], DATES_CHALLENGE["batch_size"], DATES_CHALLENGE["n_val"]
    train_days, val_days = split_days(2000, seed=100 + seed)
    train = make_pairs(train_days, steps * batch_size, seed=200 + seed, formats=NUMERIC_FORMATS)
    val = make_pairs(val_days, n_val, seed=300 + seed, formats=NUMERIC_FORMATS)
    src, lengths = encode_source([text for text, _ in train])  # (N, S), (N,)
    tgt = encode_target([iso for _, iso in train])  # (N, 10)
    batches = []
    for i in range(0, steps * batch_size, batch_size):
        width = int(lengths[i : i + batch_size].max())  # trim the padding the batch does not need
        batches.append((src[i : i + batch_size, :width], lengths[i : i + batch_size], tgt[i : i + batch_size]))
    val_src, val_lengths = encode_source([text for text, _ in val])
    return batches, (val_src, val_lengths, encode_target([iso for _, iso in val]))


def seq2seq_config_accuracy(config: dict, *, seed: int = 0) -> float:
    """Train :class:`AttentionSeq2Seq` on the short dates task with ``config``; return its held-out exact match.

    The task: dates in :data:`~course_utils.data.dates.NUMERIC_FORMATS` to ISO, ``steps``
    Adam steps of ``batch_size`` fresh dates (:data:`DATES_CHALLENGE`, gradient norm clipped
    at 1), then greedy decoding of ``n_val`` dates from held-out days. Everything random
    (initial weights, the day split, the dates) follows ``seed``, without touching the
    notebook's own random state; it runs on the CPU, on one thread.
    """
    c = _validate_seq2seq_config(config)
    batches, (val_src, val_lengths, val_tgt) = _dates_challenge_data(seed)
    kind = None if c["attention"] == "none" else c["attention"]
    with seeded_run(seed):
        model = AttentionSeq2Seq(len(SOURCE_CHARS), len(TARGET_CHARS), embed=DATES_CHALLENGE_EMBED,
                                 hidden=c["hidden_size"], attention=kind)
        fit(model, batches, teacher_forcing_loss, torch.optim.Adam(model.parameters(), lr=c["lr"]),
            clip_grad_norm=1.0, device=torch.device("cpu"), progress=False)
        return greedy_exact_match(model, val_src, val_lengths, val_tgt).float().mean().item()


def _seq2seq_hints(c: dict) -> list[str]:
    """What in a config that missed the target is the likely culprit."""
    hints = []
    if c["attention"] == "none":
        hints.append("without attention the decoder reads one fixed-size vector, the encoder's final states, at every "
                     "step (section 4's bottleneck): it must pack all 8 digits and their order into it; let each "
                     "step look at the digits it copies")
    hints += learning_rate_hints(c["lr"], 1e-2, 5e-2, DATES_CHALLENGE["steps"])
    if c["hidden_size"] < 16:
        hints.append(f"{c['hidden_size']} units are few: the decoder state must know which of the 10 characters "
                     "comes next, and the encoder states which digit is where")
    return hints


def check_seq2seq_config(config: dict, *, seed: int = 0) -> None:
    """Grade a learner's choice by outcome: train with it (seeded) and reach the target exact match.

    ``config`` has the keys :data:`SEQ2SEQ_CONFIG_KEYS`. Fails with the exact match reached,
    how far it is from the target, and the likely culprits in the config.
    """
    got = seq2seq_config_accuracy(config, seed=seed)  # validates the config first
    c, task = _validate_seq2seq_config(config), DATES_CHALLENGE
    where = (f"after {task['steps']} steps of {task['batch_size']} dates, your model (attention {c['attention']!r}, "
             f"{c['hidden_size']} units, lr {c['lr']:g}) writes {got:.1%} of {task['n_val']} held-out dates "
             f"exactly right (target: at least {task['target']:.0%})")
    outcome_verdict(where, got >= task["target"], f"{100 * (task['target'] - got):.1f} percentage points short",
                    lambda: _seq2seq_hints(c))
