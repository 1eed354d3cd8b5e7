"""Notebooks 05a-05c: the kinds of sequence outputs, with masks, hand-wired layers and five models.

One recurrent layer, five wirings:

- one-to-one: :class:`BagOfCharsMLP`, a feed-forward net on a fixed-size vector;
- many-to-one: :class:`SequenceClassifier`, the last hidden state of a packed batch;
- one-to-many: :class:`ConditionalCharLM`, a class sets the initial state, then :func:`spell`
  samples characters one at a time (:func:`course_utils.shared.lm.sample_next`), each fed back,
  until the end token;
- many-to-many, aligned: :class:`Tagger`, one output per input step, optionally bidirectional;
- many-to-many, unaligned: :class:`EncoderDecoder`, an encoder squeezes the input into one vector
  and a decoder unrolls it, with teacher forcing or scheduled sampling.

Shapes use ``B`` batch, ``T`` time, ``E`` embedding, ``H`` hidden, ``V`` vocabulary,
``C`` classes. Batches are batch-first: ``(B, T)`` token ids.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.output_types`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .core.shapes import require_shape
from .shared.layers import recurrent_layer
from .shared.lm import sample_next

# ---------------------------------------------------------------- padding and masks


def length_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``mask[b, t]`` is True where step ``t`` is inside sequence ``b``: shape ``(B, T)``."""
    require_shape("lengths", lengths, ("B",))
    max_len = int(lengths.max()) if max_len is None else max_len
    steps = torch.arange(max_len, device=lengths.device)  # (T,)
    return steps[None, :] < lengths[:, None]  # (B, T)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, T, H) over the valid steps of ``mask`` (B, T): shape ``(B, H)``."""
    require_shape("x", x, ("B", "T", "H"))
    require_shape("mask", mask, tuple(x.shape[:2]))
    weights = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    empty = (weights.sum(1) == 0).flatten()  # (B,)
    if empty.any():
        raise ValueError(f"mask has no valid step in row {int(empty.nonzero()[0])}: an empty sequence has no mean")
    return (x * weights).sum(1) / weights.sum(1)


def last_valid(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The output at each sequence's last real step, ``outputs[b, lengths[b] - 1]``: ``(B, H)``."""
    require_shape("outputs", outputs, ("B", "T", "H"))
    require_shape("lengths", lengths, (outputs.shape[0],))
    index = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[2])  # (B, 1, H)
    return outputs.gather(1, index).squeeze(1)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence within its own length; padding stays at the end.

    ``x`` is ``(B, T, ...)``; ``[a, b, c, pad]`` with length 3 becomes ``[c, b, a, pad]``.
    """
    require_shape("lengths", lengths, ("B",))
    if x.dim() < 2 or x.shape[0] != lengths.shape[0]:
        raise ValueError(f"x has shape {tuple(x.shape)}, expected ({lengths.shape[0]}, T, ...): "
                         "one sequence per entry of lengths, time second")
    T = x.shape[1]
    steps = torch.arange(T, device=x.device)[None, :]  # (1, T)
    lengths = lengths.to(x.device)[:, None]  # (B, 1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (B, T)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


# ---------------------------------------------------------------- wiring layers by hand


def bidirectional_rnn(
    forward_rnn: nn.RNNBase, backward_rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """A bidirectional layer from two unidirectional batch-first ones: ``(B, T, 2H)``.

    The backward layer reads each sequence reversed (within its length); its outputs are
    reversed back so that step ``t`` holds ``[h_fwd_t ; h_bwd_t]``, as in ``torch.nn.RNN``.
    Padded steps of the forward half are computed but meaningless; mask them downstream.
    """
    require_shape("x", x, ("B", "T", "I"))
    if lengths is None:
        lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
    out_f, _ = forward_rnn(x)  # (B, T, H)
    out_b, _ = backward_rnn(reverse_padded(x, lengths))  # (B, T, H), in reversed time
    return torch.cat([out_f, reverse_padded(out_b, lengths)], dim=-1)


def stacked_rnn(layers: Sequence[nn.RNNBase], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run single-layer batch-first RNNs one on top of the other.

    Returns ``(outputs of the top layer (B, T, H), final states of every layer (L, B, H))``,
    what ``torch.nn.RNN(num_layers=L)`` returns (without dropout between layers); for
    LSTMs the final states are the ``h_n``, without the cell states.
    """
    require_shape("x", x, ("B", "T", "I"))
    finals = []
    for layer in layers:
        x, h = layer(x)  # (B, T, H), (1, B, H) or an LSTM's (h_n, c_n)
        h = h[0] if isinstance(h, tuple) else h
        finals.append(h[0])
    return x, torch.stack(finals)


# ---------------------------------------------------------------- models


def _final_hidden(h: torch.Tensor | tuple[torch.Tensor, torch.Tensor], bidirectional: bool) -> torch.Tensor:
    """The top layer's final state(s) from ``h_n`` (L * D, B, H): ``(B, D * H)``."""
    if isinstance(h, tuple):  # LSTM: (h_n, c_n)
        h = h[0]
    if bidirectional:
        return torch.cat([h[-2], h[-1]], dim=-1)
    return h[-1]


class BagOfCharsMLP(nn.Module):
    """One-to-one: the character counts of a name (order thrown away) -> class logits."""

    def __init__(self, vocab_size: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.net = nn.Sequential(nn.Linear(vocab_size, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def features(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Normalised character counts of each padded sequence: ``(B, V)``."""
        mask = length_mask(lengths.to(x.device), x.shape[1])  # (B, T)
        one_hot = nn.functional.one_hot(x, self.vocab_size).float()  # (B, T, V)
        return masked_mean(one_hot, mask)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        require_shape("x", x, ("B", "T"))
        return self.net(self.features(x, lengths))  # (B, C)


POOLINGS = ("last", "mean", "max")  # how SequenceClassifier turns the states (B, T, H) into one vector


class SequenceClassifier(nn.Module):
    """Many-to-one: embed, run a (packed) RNN, classify one vector made from its states.

    ``pooling`` picks the vector: ``"last"`` the final state of each sequence (``h_n`` of
    the packed batch), ``"mean"`` / ``"max"`` the mean / maximum of the top layer's outputs
    over each sequence's valid steps.
    """

    def __init__(self, vocab_size: int, embed: int, hidden: int, num_classes: int, *, cell: str = "gru",
                 num_layers: int = 1, bidirectional: bool = False, pooling: str = "last") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = recurrent_layer(cell, embed, hidden, num_layers=num_layers, bidirectional=bidirectional)
        self.out = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        require_shape("x", x, ("B", "T"))
        packed = pack_padded_sequence(self.embed(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, h = self.rnn(packed)  # h_n: (L * D, B, H), each sequence's state at its own last step
        if self.pooling == "last":
            return self.out(_final_hidden(h, self.rnn.bidirectional))  # (B, C)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True)  # (B, T_max, D * H), zeros after each end
        mask = length_mask(lengths.to(outputs.device), outputs.shape[1])  # (B, T_max)
        if self.pooling == "mean":
            return self.out(masked_mean(outputs, mask))
        return self.out(outputs.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1))  # (B, C)


class ConditionalCharLM(nn.Module):
    """One-to-many: a class (e.g. a language) sets the initial state; a GRU spells a name.

    Token 0 marks both the start and the end of a name (``bos = eos = 0``). Inputs are
    ``[0, c_1, ..., c_n]`` and targets ``[c_1, ..., c_n, 0]``.
    """

    def __init__(self, vocab_size: int, num_classes: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.start = nn.Embedding(num_classes, hidden)  # class -> h_0
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = nn.GRU(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def initial_state(self, cond: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.start(cond)).unsqueeze(0)  # (1, B, H)

    def forward(self, cond: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Logits for every next character under teacher forcing: ``(B, T, V)``."""
        require_shape("inputs", inputs, ("B", "T"))
        require_shape("cond", cond, (inputs.shape[0],))
        outputs, _ = self.rnn(self.embed(inputs), self.initial_state(cond))
        return self.out(outputs)

    def sample(self, cond: torch.Tensor, temperature: float = 1.0, max_len: int = 20,
               generator: torch.Generator | None = None) -> list[list[int]]:
        """Spell one sequence per entry of ``cond`` (B,), stopping at token 0 or ``max_len`` (:func:`spell`)."""
        return spell(self, cond, temperature, max_len, generator)


# A one-to-many speller (ConditionalCharLM, or the checks' stand-in) has ``initial_state(cond) -> (1, B, H)``,
# ``embed``, a batch-first ``rnn(x, h) -> (o, h)`` and a read-out ``out``; token 0 starts and ends a name.
END = 0


def _top_k(logits: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """``logits (B, V)`` with everything below each row's ``top_k`` largest set to -inf."""
    if top_k is None or top_k >= logits.shape[-1]:
        return logits
    kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


@torch.no_grad()
def draw_tokens(model: nn.Module, h: torch.Tensor, max_len: int, temperature: float = 1.0,
                generator: torch.Generator | None = None, top_k: int | None = None) -> torch.Tensor:
    """``max_len`` tokens ``(B, max_len)`` drawn from state ``h (1, B, H)``, each fed back as the next input."""
    token = torch.full((h.shape[1], 1), END, dtype=torch.long, device=h.device)  # (B, 1): the start token
    drawn = []
    for _ in range(max_len):
        o, h = model.rnn(model.embed(token), h)  # (B, 1, H)
        next_id = sample_next(_top_k(model.out(o[:, 0]), top_k), temperature, generator)  # (B,)
        drawn.append(next_id.cpu())
        token = next_id[:, None]
    return torch.stack(drawn, dim=1)  # (B, max_len)


def cut_at_end(rows: torch.Tensor) -> list[list[int]]:
    """Each row of drawn tokens ``(B, max_len)`` up to (without) its first end token."""
    return [row[: row.index(END)] if END in row else row for row in rows.tolist()]


def spell(model: nn.Module, cond: torch.Tensor, temperature: float = 1.0, max_len: int = 20,
          generator: torch.Generator | None = None, top_k: int | None = None) -> list[list[int]]:
    """Sample one name per class in ``cond (B,)``: token ids without the start and end tokens.

    Starts from ``model.initial_state(cond)`` and token 0, draws each next token with
    :func:`sample_next` (from the ``top_k`` most likely, if given), feeds it back, and stops
    a name at token 0 or after ``max_len`` tokens. Call ``model.eval()`` first.
    """
    require_shape("cond", cond, ("B",))
    return cut_at_end(draw_tokens(model, model.initial_state(cond), max_len, temperature, generator, top_k))


class Tagger(nn.Module):
    """Many-to-many, aligned: one tag per input step, from a uni- or bidirectional RNN."""

    def __init__(self, vocab_size: int, embed: int, hidden: int, num_tags: int, *, cell: str = "gru",
                 bidirectional: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = recurrent_layer(cell, embed, hidden, bidirectional=bidirectional)
        self.out = nn.Linear(hidden * (2 if bidirectional else 1), num_tags)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_shape("x", x, ("B", "T"))
        outputs, _ = self.rnn(self.embed(x))  # (B, T, D * H)
        return self.out(outputs)  # (B, T, K)


# ---------------------------------------------------------------- seq2seq

# Special ids of 05c's seq2seq vocabulary, one vocabulary shared by source and target (the
# reversal task writes the same characters it reads). Its targets have their own length, so
# it needs EOS and PAD besides BOS. Notebook 06's dates task (course_utils.data.dates) keeps
# two vocabularies: the source pads with id 0, as here, but its targets all have the same
# length, so its target vocabulary has no PAD and no EOS and its start token, TARGET_BOS,
# takes id 0. Each vocabulary names its own ids; shift_right and every model's greedy take
# the start id as an argument.
PAD, BOS, EOS = 0, 1, 2


def shift_right(targets: torch.Tensor, bos: int = BOS) -> torch.Tensor:
    """Decoder inputs under teacher forcing: ``[bos, y_1, ..., y_{T-1}]`` for targets (B, T)."""
    require_shape("targets", targets, ("B", "T"))
    start = torch.full_like(targets[:, :1], bos)
    return torch.cat([start, targets[:, :-1]], dim=1)


def linear_schedule(step: int, total: int, start: float = 1.0, end: float = 0.0) -> float:
    """Teacher-forcing probability at ``step`` of ``total``: from ``start`` down to ``end``."""
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    frac = min(max(step / total, 0.0), 1.0)
    return start + (end - start) * frac


def pack_sources(embed: nn.Module, src: torch.Tensor, lengths: torch.Tensor) -> nn.utils.rnn.PackedSequence:
    """Embedded source ids ``src (B, S)`` packed by their ``lengths (B,)`` (each at least 1), for an RNN encoder."""
    require_shape("src", src, ("B", "S"))
    require_shape("lengths", lengths, (src.shape[0],))
    if len(lengths) and int(lengths.min()) < 1:
        raise ValueError(f"lengths must all be at least 1 (an empty source has nothing to encode), "
                         f"got {lengths.tolist()}")
    return pack_padded_sequence(embed(src), lengths.cpu(), batch_first=True, enforce_sorted=False)


class EncoderDecoder(nn.Module):
    """Many-to-many, unaligned: GRU encoder -> one vector -> GRU decoder, no attention.

    Its interface is that of notebook 06's ``AttentionSeq2Seq``: ``forward(src, lengths,
    tgt_in)`` under teacher forcing (plus the scheduled-sampling arguments) and
    ``greedy(src, lengths, steps, bos) -> (tokens, weights)``, with no weights to return.
    """

    def __init__(self, vocab_size: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=PAD)  # shared by both sides
        self.encoder = nn.GRU(embed, hidden, batch_first=True)
        self.decoder = nn.GRU(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The whole input in one vector, the encoder's final state: ``(1, B, H)``."""
        _, h = self.encoder(pack_sources(self.embed, src, lengths))
        return h

    def forward(self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor,
                teacher_forcing: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits ``(B, T, V)`` for the decoder inputs ``tgt_in = shift_right(targets, BOS)`` (B, T).

        With probability ``teacher_forcing`` (drawn per example and step) the decoder reads
        the true previous token ``tgt_in[:, t]``; otherwise its own previous guess (scheduled
        sampling). ``teacher_forcing=1`` runs the decoder over all of ``tgt_in`` in one call.
        """
        require_shape("tgt_in", tgt_in, (src.shape[0], "T"))
        h = self.encode(src, lengths)  # (1, B, H)
        if teacher_forcing >= 1.0:
            outputs, _ = self.decoder(self.embed(tgt_in), h)  # (B, T, H)
            return self.out(outputs)
        logits = []
        token = tgt_in[:, :1]  # (B, 1): BOS
        for t in range(tgt_in.shape[1]):
            o, h = self.decoder(self.embed(token), h)  # (B, 1, H)
            step_logits = self.out(o)  # (B, 1, V)
            logits.append(step_logits)
            if t + 1 < tgt_in.shape[1]:
                coin = torch.rand(len(src), 1, generator=generator).to(src.device) < teacher_forcing
                token = torch.where(coin, tgt_in[:, t + 1 : t + 2], step_logits.argmax(-1))
        return torch.cat(logits, dim=1)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, lengths: torch.Tensor, steps: int, bos: int = BOS) -> tuple[torch.Tensor, None]:
        """Greedy decoding, the most likely token fed back in: ids ``(B, steps)`` and ``None``.

        ``None`` stands where an attention model returns its weights: this decoder sees one vector.
        """
        h = self.encode(src, lengths)  # (1, B, H)
        token = torch.full((len(src), 1), bos, dtype=torch.long, device=src.device)  # (B, 1)
        out = []
        for _ in range(steps):
            o, h = self.decoder(self.embed(token), h)  # (B, 1, H)
            token = self.out(o).argmax(-1)  # (B, 1)
            out.append(token)
        return torch.cat(out, dim=1), None


# ---------------------------------------------------------------- 05c's tagging data, split


def tagger_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows of ``n`` chunks, split by position: ``(train, validation)``.

    The last 5 % of the chunks is the test block and is never returned. The first 95 % is cut
    into runs of consecutive chunks, each 0.5 % of the data; ``seed`` picks ten of them to
    validate on (5 % in all, from all over the text), and the model trains on the rest.
    """
    size = max(n // 200, 1)  # chunks per run
    runs = (n - n // 20) // size  # runs in the first 95 %
    picked = np.random.default_rng(seed).choice(runs, size=min(10, runs - 1), replace=False)
    val = np.sort((picked[:, None] * size + np.arange(size)).ravel())
    train = np.setdiff1d(np.arange(n - n // 20), val)
    return train, val
