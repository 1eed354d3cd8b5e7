"""Notebook 05e: subword tokens, byte-pair encoding (BPE) from scratch, and language models on them.

BPE (Sennrich, Haddow & Birch 2016) starts from the smallest units and repeatedly joins the
most frequent adjacent pair into a new token. GPT-2 (Radford et al. 2019) runs it on **bytes**:
the 256 byte values are the first tokens, so any text encodes, with no unknown token.

- pre-tokens: :func:`pretokenize` (GPT-2's split into words, numbers, punctuation and spaces;
  no merge crosses a pre-token) and :func:`word_counts` (each pre-token's bytes and count);
- one training step: :func:`count_pairs` and :func:`merge_pair`;
- training: :func:`train_bpe`, which updates the pair counts of the words a merge touched,
  and :func:`train_bpe_slow`, which recounts everything after each merge (the reference);
- the tokenizer: :class:`BPETokenizer` (``encode``, ``decode``, the vocabulary as bytes);
- the library to compare with: :func:`library_bpe` (HuggingFace ``tokenizers``, byte-level BPE
  with the same rules), :func:`library_merges`, and :func:`bytes_to_unicode`, GPT-2's printable
  stand-in for each byte, in which that library writes its tokens;
- language models on tokens: :func:`gru_lm_macs` (compute per token), :func:`matched_hidden_size`,
  :func:`train_token_lm` (:func:`course_utils.fit` on random windows, the best validation
  checkpoint kept) and :func:`bits_per_char` (a model's loss on a whole text, in bits per character).

The exercises on this module (checks and their mistakes) are in :mod:`course_utils.exercises.tokens`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import nn
from torch.nn import functional as F

from .core.device import get_device
from .core.shapes import require_shape
from .core.training import History, fit
from .shared.lm import LMBatch, next_token_loss, random_windows

IdPair = tuple[int, int]
Word = tuple[int, ...]  # one pre-token as token ids (bytes before any merge)
N_BYTES = 256  # the base vocabulary of byte-level BPE: token b is the byte b

# GPT-2's pre-tokeniser, written with Python's `re` (GPT-2's pattern needs the `regex` module's
# \p{L} and \p{N}; [^\W\d_] is a letter and \d a digit here). Each alternative takes the space
# before it, so " the" is one pre-token and a merge never joins the end of one word to the next.
PRETOKEN = re.compile(
    r"'(?:[sdmt]|ll|ve|re)"  # the English contractions 's 'd 'm 't 'll 've 're
    r"| ?[^\W\d_]+"  # a word (letters), with one space before it
    r"| ?\d+"  # a number (digits)
    r"| ?(?:[^\s\w]|_)+"  # a run of punctuation and symbols
    r"|\s+(?!\S)"  # spaces and line breaks, leaving the last space to the word after them
    r"|\s+"  # spaces at the very end
)


def pretokenize(text: str) -> list[str]:
    """The pre-tokens of ``text``, in order: joined, they give ``text`` back."""
    return PRETOKEN.findall(text)


def word_counts(text: str) -> Counter[Word]:
    """How often each pre-token of ``text`` occurs, keyed by its UTF-8 bytes (a tuple of ints 0-255)."""
    return Counter(tuple(word.encode("utf-8")) for word in pretokenize(text))


# ----------------------------------------------------------------------------- one step


def count_pairs(words: Mapping[Word, int]) -> Counter[IdPair]:
    """How often each adjacent pair of ids occurs, inside the words only, each word weighted by its count.

    Every position counts: ``(a, a, a)`` holds the pair ``(a, a)`` twice (HuggingFace's rule too).
    """
    counts: Counter[IdPair] = Counter()
    for word, n in words.items():
        for pair in pairwise(word):
            counts[pair] += n
    return counts


def merge_pair(ids: Sequence[int], pair: IdPair, new_id: int) -> list[int]:
    """``ids`` with every occurrence of ``pair`` replaced by ``new_id``, scanning left to right.

    Occurrences do not overlap: in ``(a, a, a)`` the pair ``(a, a)`` is merged once, at the
    start, giving ``(new_id, a)``.
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2  # both ids of the pair are used up
        else:
            out.append(ids[i])
            i += 1
    return out


def _best_pair(counts: Mapping[IdPair, int]) -> IdPair:
    """The most frequent pair; between equal counts, the smallest ids (so the tokens made first)."""
    top = max(counts.values())
    return min(pair for pair, c in counts.items() if c == top)


# ----------------------------------------------------------------------------- training


def train_bpe(words: Mapping[Word, int], n_merges: int, first_id: int = N_BYTES) -> tuple[list[IdPair], list[int]]:
    """Learn ``n_merges`` merges from ``words`` (:func:`word_counts`): the merges in order, and each one's count.

    Merge ``k`` joins the most frequent adjacent pair into the new token ``first_id + k``
    (ties: the pair of smallest ids). After a merge only the words holding the pair are
    rewritten, and only their pairs' counts change: the same merges as :func:`train_bpe_slow`,
    without recounting the whole corpus every time. Stops early when no pair is left.
    """
    if n_merges < 0:
        raise ValueError(f"n_merges must be >= 0, got {n_merges}")
    seqs = [list(w) for w in words]
    freq = list(words.values())
    counts: Counter[IdPair] = Counter()
    holders: defaultdict[IdPair, set[int]] = defaultdict(set)  # pair -> the words (indices) that hold it
    for k, seq in enumerate(seqs):
        for pair in pairwise(seq):
            counts[pair] += freq[k]
            holders[pair].add(k)
    merges, merge_counts = [], []
    for step in range(n_merges):
        if not counts:
            break
        best = _best_pair(counts)
        merges.append(best)
        merge_counts.append(counts[best])
        touched = set()
        for k in holders.pop(best):
            old, new = seqs[k], merge_pair(seqs[k], best, first_id + step)
            for pair in pairwise(old):
                counts[pair] -= freq[k]
                touched.add(pair)
            for pair in pairwise(new):
                counts[pair] += freq[k]
                holders[pair].add(k)
            seqs[k] = new
        for pair in touched:
            if counts[pair] <= 0:  # gone from every word
                del counts[pair]
    return merges, merge_counts


def train_bpe_slow(words: Mapping[Word, int], n_merges: int, first_id: int = N_BYTES) -> list[IdPair]:
    """The same merges as :func:`train_bpe`, the obvious way: count every pair, merge, rewrite every word."""
    words = dict(words)
    merges = []
    for step in range(n_merges):
        counts = count_pairs(words)
        if not counts:
            break
        best = _best_pair(counts)
        merges.append(best)
        words = {tuple(merge_pair(w, best, first_id + step)): n for w, n in words.items()}
    return merges


# ----------------------------------------------------------------------------- the tokenizer


@dataclass(frozen=True)
class BPETokenizer:
    """Byte-level BPE: tokens ``0..255`` are the bytes, token ``256 + k`` is merge ``k`` (ordered merges)."""

    merges: tuple[IdPair, ...]

    @classmethod
    def train(cls, text: str, n_merges: int) -> BPETokenizer:
        """Learn ``n_merges`` merges from the pre-tokens of ``text`` (:func:`train_bpe`)."""
        return cls(tuple(train_bpe(word_counts(text), n_merges)[0]))

    @classmethod
    def from_pair_bytes(cls, pairs: Iterable[tuple[bytes, bytes]]) -> BPETokenizer:
        """The tokenizer whose merges join these byte strings, in order (a library's merges, say)."""
        ids = {bytes([b]): b for b in range(N_BYTES)}
        merges = []
        for left, right in pairs:
            if left + right in ids:
                raise ValueError(f"two merges make the token {left + right!r}")
            merges.append((ids[left], ids[right]))
            ids[left + right] = N_BYTES + len(merges) - 1
        return cls(tuple(merges))

    @property
    def vocab_size(self) -> int:
        return N_BYTES + len(self.merges)

    @functools.cached_property
    def vocab(self) -> list[bytes]:
        """The bytes of each token: ``vocab[i]``."""
        table = [bytes([b]) for b in range(N_BYTES)]
        for a, b in self.merges:
            table.append(table[a] + table[b])
        return table

    @functools.cached_property
    def ranks(self) -> dict[IdPair, int]:
        """Each merged pair's place in the training order (lower: learnt earlier, applied first)."""
        return {pair: k for k, pair in enumerate(self.merges)}

    def pair_bytes(self) -> list[tuple[bytes, bytes]]:
        """Each merge as the two byte strings it joins."""
        return [(self.vocab[a], self.vocab[b]) for a, b in self.merges]

    def truncated(self, n_merges: int) -> BPETokenizer:
        """The tokenizer of the first ``n_merges`` merges (the vocabulary at that point of training)."""
        return BPETokenizer(self.merges[:n_merges])

    def encode_word(self, word: bytes) -> list[int]:
        """One pre-token's ids: apply the learnt merges in their training order."""
        ids = list(word)
        while len(ids) > 1:
            pair = min(pairwise(ids), key=lambda p: self.ranks.get(p, math.inf))
            if pair not in self.ranks:
                break  # no learnt merge applies any more
            ids = merge_pair(ids, pair, N_BYTES + self.ranks[pair])
        return ids

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text`` (each distinct pre-token encoded once)."""
        cache: dict[str, list[int]] = {}
        ids: list[int] = []
        for word in pretokenize(text):
            if word not in cache:
                cache[word] = self.encode_word(word.encode("utf-8"))
            ids += cache[word]
        return ids

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """The text of ``ids``. Bytes that are not valid UTF-8 (a sampled sequence may cut a
        character in two) become U+FFFD with ``errors="replace"``; ``"strict"`` raises instead."""
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors=errors)


# ----------------------------------------------------------------------------- the library


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte: printable Latin-1 bytes stand for themselves, the
    others (space, line break, control bytes) for the characters from U+0100 on (space is 'Ġ')."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(N_BYTES):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(N_BYTES + extra)
            extra += 1
    return table


def library_bpe(text: str, n_merges: int) -> Tokenizer:
    """HuggingFace ``tokenizers``' byte-level BPE trained on ``text`` with :func:`train_bpe`'s rules:
    GPT-2's pre-tokeniser (no space added in front), all 256 bytes as the first tokens, ``n_merges``
    merges, no special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=N_BYTES + n_merges, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tokenizer.train_from_iterator([text], trainer)
    return tokenizer


def library_merges(tokenizer: Tokenizer) -> list[tuple[bytes, bytes]]:
    """A trained :func:`library_bpe`'s merges, in order, as the byte strings each joins."""
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    pairs = [m.split(" ") if isinstance(m, str) else m for m in merges]  # "a b" in older versions, [a, b] now
    return [(bytes(to_byte[c] for c in a), bytes(to_byte[c] for c in b)) for a, b in pairs]


def library_tokens(tokenizer: Tokenizer, text: str) -> list[bytes]:
    """The bytes of each token of ``text`` under the library's tokenizer."""
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    return [bytes(to_byte[c] for c in token) for token in tokenizer.encode(text).tokens]


# ----------------------------------------------------------------------------- language models on tokens


def gru_lm_macs(vocab_size: int, embed_size: int, hidden_size: int) -> int:
    """Multiply-adds per token of a :class:`course_utils.shared.lm.RecurrentLM` GRU's forward pass.

    The GRU's three gates cost ``3 (E H + H H)``, the read-out ``H V``; the embedding is a
    look-up (no multiply). Training costs about three times the forward pass.
    """
    return 3 * (embed_size * hidden_size + hidden_size * hidden_size) + hidden_size * vocab_size


def matched_hidden_size(vocab_size: int, embed_size: int, macs: int) -> int:
    """The hidden size whose GRU language model costs ``macs`` multiply-adds per token, rounded down."""
    # 3 H^2 + (3 E + V) H - macs = 0
    b = 3 * embed_size + vocab_size
    hidden = int((-b + math.sqrt(b * b + 12 * macs)) / 6)
    while gru_lm_macs(vocab_size, embed_size, hidden + 1) <= macs:
        hidden += 1
    return hidden


def tiled_windows(ids: Sequence[int] | torch.Tensor, context: int, batch_size: int) -> list[LMBatch]:
    """Windows of ``context`` next-token predictions that tile ``ids``: every id after the first is a
    target exactly once (the last window may be shorter). Batches of ``(inputs, targets)``, each ``(b, t)``."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    require_shape("ids", ids, ("N",))
    if len(ids) < 2:
        raise ValueError(f"ids needs at least two tokens, got {len(ids)}")
    full = (len(ids) - 1) // context
    x = ids[: full * context].view(full, context)  # (n, T)
    y = ids[1 : full * context + 1].view(full, context)
    batches = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, full, batch_size)]
    if full * context + 1 < len(ids):  # the rest, one shorter window
        batches.append((ids[full * context : -1][None], ids[full * context + 1 :][None]))
    return batches


@torch.no_grad()
def total_nll(model: nn.Module, batches: Iterable[LMBatch], device: torch.device | None = None) -> float:
    """Summed next-token cross-entropy (nats) over every target of ``batches`` (model in eval mode)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y in batches:
        logits = model(x.to(device))  # (b, t, V)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(device).reshape(-1),
                                 reduction="sum").item()
    model.train(was_training)
    return total


def bits_per_char(model: nn.Module, ids: Sequence[int] | torch.Tensor, n_chars: int, context: int,
                  batch_size: int = 64) -> float:
    """The model's cost of a whole text in bits per character: every token after the first predicted once,
    from the tokens before it in its window (:func:`tiled_windows`), divided by the ``n_chars`` characters
    those tokens cover. Comparable across tokenizers, unlike a loss per token."""
    if n_chars < 1:
        raise ValueError(f"n_chars must be positive, got {n_chars}")
    return total_nll(model, tiled_windows(ids, context, batch_size)) / math.log(2) / n_chars


def train_token_lm(model: nn.Module, train_ids: torch.Tensor, val_ids: torch.Tensor, *, steps: int, context: int,
                   batch_size: int, lr: float, seed: int, eval_every: int = 50,
                   device: torch.device | None = None, progress: bool = True, desc: str = "train") -> History:
    """:func:`course_utils.fit` for ``steps`` Adam steps on random windows of ``train_ids`` (gradient norm
    clipped at 1), the validation loss on all of ``val_ids`` (:func:`tiled_windows`) every ``eval_every``
    steps, and the weights of the best of those kept (the choice made on validation, never on test)."""
    if steps < 1 or eval_every < 1 or steps % eval_every:
        raise ValueError(f"steps must be a positive multiple of eval_every, got {steps} and {eval_every}")
    device = device or get_device()
    g = torch.Generator().manual_seed(seed)

    def chunk(epoch: int) -> list[LMBatch]:
        return [random_windows(train_ids, context, batch_size, g) for _ in range(eval_every)]

    return fit(model, chunk, next_token_loss, torch.optim.Adam(model.parameters(), lr=lr),
               epochs=steps // eval_every, val_data=tiled_windows(val_ids, context, 64), clip_grad_norm=1.0,
               device=device, progress=progress, desc=desc, total_steps=steps, keep_best=True)

