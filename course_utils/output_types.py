"""Notebooks 05a-05c: the kinds of sequence outputs, with masks, hand-wired layers and five models.

One recurrent layer, five wirings:

- one-to-one: :class:`BagOfCharsMLP`, a feed-forward net on a fixed-size vector;
- many-to-one: :class:`SequenceClassifier`, the last hidden state of a packed batch;
- one-to-many: :class:`ConditionalCharLM`, a class sets the initial state, then characters
  are sampled one at a time (:func:`course_utils.lm.sample_next`);
- many-to-many, aligned: :class:`Tagger`, one output per input step, optionally bidirectional;
- many-to-many, unaligned: :class:`EncoderDecoder`, an encoder squeezes the input into one vector
  and a decoder unrolls it, with teacher forcing or scheduled sampling.

Shapes use ``B`` batch, ``T`` time, ``E`` embedding, ``H`` hidden, ``V`` vocabulary,
``C`` classes. Batches are batch-first: ``(B, T)`` token ids.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .checks import (
    CheckFailed,
    check_close,
    check_shape,
    check_type,
    learning_rate_hints,
    name_mistake,
    outcome_verdict,
    refuse_reference,
)
from .data.names import load_surnames, name_batches, stratified_split
from .data.synthetic import segmentation_data
from .data.text import CharVocab, load_corpus
from .layers import recurrent_layer
from .lm import sample_next
from .metrics import binary_f1, exact_match
from .seed import seeded_run
from .shapes import require_shape
from .training import fit

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

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, temperature: float = 1.0, max_len: int = 20,
               generator: torch.Generator | None = None) -> list[list[int]]:
        """Spell one sequence per entry of ``cond`` (B,), stopping at token 0 or ``max_len``."""
        h = self.initial_state(cond)  # (1, B, H)
        token = torch.zeros(len(cond), 1, dtype=torch.long, device=cond.device)  # (B, 1): start
        out = torch.zeros(len(cond), max_len, dtype=torch.long)
        for t in range(max_len):
            o, h = self.rnn(self.embed(token), h)  # (B, 1, H)
            token = sample_next(self.out(o[:, 0]), temperature, generator).unsqueeze(1)  # (B, 1)
            out[:, t] = token[:, 0].cpu()
        seqs = []
        for row in out.tolist():
            seqs.append(row[: row.index(0)] if 0 in row else row)
        return seqs


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
        require_shape("src", src, ("B", "S"))
        require_shape("lengths", lengths, (src.shape[0],))
        if len(lengths) and int(lengths.min()) < 1:
            raise ValueError(f"lengths must all be at least 1 (an empty source has nothing to encode), "
                             f"got {lengths.tolist()}")
        packed = pack_padded_sequence(self.embed(src), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.encoder(packed)
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


# ---------------------------------------------------------------- graded exercises of 05a


def _last_valid_mistakes(outputs: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """What the usual wrong readings of the last valid step return (None where one cannot show)."""
    B, T, _ = outputs.shape
    rows = torch.arange(B)
    return {
        "take outputs[:, -1], the last step of the padded batch: for every sequence shorter than the longest "
        "that step is padding": outputs[:, -1],
        "index with lengths instead of lengths - 1: step lengths[b] is one past the end of sequence b":
            outputs[rows, lengths] if int(lengths.max()) < T else None,
        "take outputs[:, 0], the first step": outputs[:, 0],
        "index the batch axis with lengths - 1 (outputs[lengths - 1, 0], e.g. gather along dim 0): "
        "the lengths index time, the second axis": outputs[lengths - 1, 0] if int(lengths.max()) <= B else None,
        "take the mean over the valid steps instead of the last one": masked_mean(outputs, length_mask(lengths, T)),
    }


def check_last_valid(fn, seed: int = 0) -> None:
    """Test ``fn(outputs, lengths) -> (B, H)``, each sequence's output at its last real step (05a, exercise 3).

    Fails naming the usual mistake the values match: the padded last step ``outputs[:, -1]``,
    ``lengths`` instead of ``lengths - 1``, the first step, the batch axis instead of time.
    """
    refuse_reference(fn, ("last_valid", "pad_packed_sequence", "pack_padded_sequence"))
    g = torch.Generator().manual_seed(seed)
    cases = {  # label -> (outputs (B, T, H), lengths (B,))
        "a batch padded two steps past its longest sequence": (torch.randn(6, 7, 3, generator=g),
                                                               torch.tensor([5, 1, 3, 2, 4, 5])),
        "a batch as long as its longest sequence": (torch.randn(5, 9, 4, generator=g), torch.tensor([9, 2, 6, 1, 9])),
    }
    for label, (outputs, lengths) in cases.items():
        name = f"my_last_valid on {label}"
        B, T, H = outputs.shape
        try:
            got = fn(outputs.clone(), lengths.clone())
        except (IndexError, RuntimeError) as error:
            raise CheckFailed(f"{name} raised {type(error).__name__}: {error}. With lengths[b] = T, step lengths[b] "
                              f"does not exist: the last real step of sequence b is lengths[b] - 1.") from error
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (B, B, H):
            raise CheckFailed(f"{name} has shape {(B, B, H)}, expected {(B, H)}: outputs[:, lengths - 1] takes "
                              "every sequence's state at every length. Pair row b with its own length: "
                              "outputs[torch.arange(B), lengths - 1].")
        check_shape(name, got, (B, H))
        check_type(name, got, torch.Tensor)
        expected = last_valid(outputs, lengths)
        name_mistake(name, got, expected, _last_valid_mistakes(outputs, lengths))
        check_close(name, got, expected, quiet=True)
    print(f"OK my_last_valid: {len(cases)} padded batches, the last real step of every sequence")


# The outcome-graded exercise of 05a: what the learner chooses, and the budget and target.
CLASSIFIER_CONFIG_KEYS = ("cell", "hidden_size", "lr", "pooling")
CLASSIFIER_CHALLENGE = {"steps": 150, "batch_size": 64, "embed": 16, "max_hidden": 64, "target": 0.75}


@functools.lru_cache(maxsize=1)
def _surnames() -> tuple[list[np.ndarray], np.ndarray, int, int]:
    """``(ids, labels, number of classes, vocabulary size with padding)`` of the surnames of 05a."""
    names, labels, classes = load_surnames()
    vocab = CharVocab.from_text("".join(names))
    return [vocab.encode(n) + 1 for n in names], labels, len(classes), vocab.size + 1  # id 0 = padding


def _validate_classifier_config(config: dict) -> dict:
    keys, top = CLASSIFIER_CONFIG_KEYS, CLASSIFIER_CHALLENGE["max_hidden"]
    if not isinstance(config, dict) or set(config) != set(keys):
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise CheckFailed(f"return a dict with exactly the keys {', '.join(keys)}; got {got}")
    cell, hidden, lr, pooling = (config[k] for k in keys)
    if cell not in ("rnn", "lstm", "gru"):
        raise CheckFailed(f"cell should be 'rnn', 'lstm' or 'gru', got {cell!r}")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= top:
        raise CheckFailed(f"hidden_size should be a whole number from 1 to {top}, got {hidden!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 0.1:
        raise CheckFailed(f"lr should be a number in (0, 0.1], got {lr!r}")
    if pooling not in POOLINGS:
        raise CheckFailed(f"pooling should be one of {', '.join(map(repr, POOLINGS))}, got {pooling!r}")
    return {"cell": cell, "hidden_size": hidden, "lr": float(lr), "pooling": pooling}


def classifier_config_accuracy(config: dict, *, seed: int = 0) -> float:
    """Train a :class:`SequenceClassifier` on the surnames with ``config``; return its validation accuracy.

    ``seed`` sets the train/validation/test split (:func:`stratified_split`), the initial
    weights and the batch order, without touching the notebook's random state; the test
    part is never read. Runs on the CPU, one thread: Adam, gradient norm clipped at 1.
    """
    c, task = _validate_classifier_config(config), CLASSIFIER_CHALLENGE
    ids, labels, num_classes, vocab_size = _surnames()
    train_idx, val_idx, _ = stratified_split(labels, (0.8, 0.1, 0.1), seed=seed)
    rng = np.random.default_rng(10_000 + seed)
    batches: list[tuple] = []
    while len(batches) < task["steps"]:  # fresh shuffles, as many as the budget needs
        batches += name_batches(ids, labels, train_idx, task["batch_size"], rng)
    with seeded_run(seed):
        model = SequenceClassifier(vocab_size, task["embed"], c["hidden_size"], num_classes, cell=c["cell"],
                                   pooling=c["pooling"])
        fit(model, batches[: task["steps"]], _name_loss,
            torch.optim.Adam(model.parameters(), lr=c["lr"]), clip_grad_norm=1.0, device=torch.device("cpu"),
            progress=False)
        model.eval()
        with torch.no_grad():
            (x, lengths, y), = name_batches(ids, labels, val_idx, len(val_idx))
            return (model(x, lengths).argmax(-1) == y).float().mean().item()


def _name_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, lengths, y = batch  # (B, T), (B,), (B,)
    return nn.functional.cross_entropy(model(x, lengths), y)


def _classifier_hints(c: dict) -> list[str]:
    """What in a configuration that missed the target is the likely culprit."""
    hints = []
    if c["pooling"] != "last":
        hints.append(f"pooling {c['pooling']!r} mixes the states after the first letters, which have not read the "
                     "ending yet, into the vector; the last state has read the whole name")
    if c["cell"] == "rnn":
        hints.append("a plain RNN ('rnn') has no gates and learns more slowly than a GRU or an LSTM (notebook 04)")
    hints += learning_rate_hints(c["lr"], 3e-3, 3e-2, CLASSIFIER_CHALLENGE["steps"])
    if c["hidden_size"] < 24:
        hints.append(f"{c['hidden_size']} units are few to tell eight languages apart by their spelling")
    return hints


def check_classifier_config(config: dict, *, seed: int = 0) -> None:
    """Grade a learner's classifier configuration by outcome: train it (seeded), reach the target accuracy.

    ``config`` has the keys :data:`CLASSIFIER_CONFIG_KEYS`. Fails with the validation accuracy
    reached, how far its error rate is from the target's, and the likely culprits.
    """
    got = classifier_config_accuracy(config, seed=seed)  # validates the config first
    c, task = _validate_classifier_config(config), CLASSIFIER_CHALLENGE
    _, labels, _, _ = _surnames()
    majority = np.bincount(labels).max() / len(labels)
    where = (f"after {task['steps']} steps of {task['batch_size']} names, your classifier reaches a validation "
             f"accuracy of {got:.3f} (target: at least {task['target']}; always answering the largest class "
             f"scores about {majority:.2f})")
    error, allowed = 1 - got, 1 - task["target"]
    outcome_verdict(where, got >= task["target"],
                    f"its error rate {error:.3f} is {error / allowed:.1f} times the target's {allowed:.2f}",
                    lambda: _classifier_hints(c))


# ---------------------------------------------------------------- graded exercises of 05c


def _exact_match_mistakes(pred: torch.Tensor, targets: torch.Tensor, pad: int) -> dict[str, torch.Tensor | None]:
    """What the usual wrong exact matches return for ``pred`` (B, T_pred) and ``targets`` (B, T)."""
    cut = pred[:, : targets.shape[1]]  # (B, T)
    ok, real = cut == targets, targets != pad  # (B, T) each
    return {
        "compare the padding too: a decoder that is right up to EOS and writes anything after it is exactly right, "
        "so ignore the positions where the target is pad": ok.all(1),
        "average over the tokens (a per-sequence token accuracy) instead of asking for every token to be right":
            (ok & real).sum(1) / real.sum(1),
        "skip the positions where the prediction is pad instead of those where the target is pad":
            (ok | (cut == pad)).all(1),
        "ask for any token to be right (any) instead of every token (all)": (ok & real).any(1),
    }


def check_exact_match(fn, seed: int = 0) -> None:
    """Test ``fn(pred, targets, pad) -> (B,) bool``, whole-sequence exact match ignoring padding (05c, exercise 3).

    Fails naming the mistake the values match: padding compared, a token accuracy instead of
    all tokens, the prediction's pad skipped instead of the target's, any instead of all.
    """
    refuse_reference(fn, ("exact_match",))
    g = torch.Generator().manual_seed(seed)
    hand = (torch.tensor([[4, 5, EOS, 9], [6, EOS, 3, 3], [7, 3, EOS, PAD], [9, EOS, PAD, PAD], [3, PAD, PAD, PAD]]),
            torch.tensor([[4, 5, EOS], [6, EOS, PAD], [7, 8, EOS], [9, EOS, PAD], [3, EOS, PAD]]))
    cases = {"five hand-made sequences": hand, "a random batch": _random_decodes(g)}
    for label, (pred, targets) in cases.items():
        name = f"my_exact_match on {label}"
        B = targets.shape[0]
        try:
            got = fn(pred.clone(), targets.clone(), PAD)
        except NotImplementedError:  # a RuntimeError too, but it means "not attempted": say that
            raise
        except RuntimeError as error:
            raise CheckFailed(f"{name} raised RuntimeError: {error}. pred has {pred.shape[1]} steps and targets "
                              f"{targets.shape[1]}: compare pred[:, :T] with the targets.") from error
        check_shape(name, got, (B,))
        check_type(name, got, torch.Tensor)
        expected = exact_match(pred, targets, ignore_index=PAD)
        name_mistake(name, got, expected, _exact_match_mistakes(pred, targets, PAD))
        check_close(name, got, expected, quiet=True)
    print(f"OK my_exact_match: {len(cases)} batches, padding ignored, every token required")


def _random_decodes(g: torch.Generator, B: int = 40, T: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets ``(B, T)`` ending in EOS then PAD, and predictions ``(B, T + 2)``: a third wrong, junk after EOS."""
    lengths = torch.randint(1, T, (B,), generator=g)  # tokens before EOS
    targets = torch.randint(3, 20, (B, T), generator=g)
    steps = torch.arange(T)[None, :]  # (1, T)
    targets = torch.where(steps == lengths[:, None], EOS, torch.where(steps > lengths[:, None], PAD, targets))
    pred = torch.cat([targets, torch.randint(0, 20, (B, 2), generator=g)], dim=1)  # (B, T + 2)
    junk = torch.randint(0, 20, (B, T + 2), generator=g)
    after = torch.arange(T + 2)[None, :] > lengths[:, None]  # past EOS: anything may follow
    pred = torch.where(after, junk, pred)
    wrong = torch.arange(B) % 3 == 0
    pred[wrong, 0] = 20 + pred[wrong, 0] % 3  # a token the targets never hold
    return pred, targets


# The outcome-graded exercise of 05c: what the learner chooses, and the budget and target.
TAGGER_CONFIG_KEYS = ("bidirectional", "hidden_size", "lr")
TAGGER_CHALLENGE = {"steps": 150, "batch_size": 16, "chunk": 48, "embed": 16, "max_hidden": 48, "target": 0.82}


@functools.lru_cache(maxsize=1)
def _segmentation() -> tuple[torch.Tensor, torch.Tensor]:
    """The word-end tagging data of 05c: letters and tags, ``(N, chunk)`` each."""
    letters, tags = segmentation_data(load_corpus(), chunk=TAGGER_CHALLENGE["chunk"])
    return torch.from_numpy(letters), torch.from_numpy(tags)


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


def _validate_tagger_config(config: dict) -> dict:
    keys, top = TAGGER_CONFIG_KEYS, TAGGER_CHALLENGE["max_hidden"]
    if not isinstance(config, dict) or set(config) != set(keys):
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise CheckFailed(f"return a dict with exactly the keys {', '.join(keys)}; got {got}")
    bidirectional, hidden, lr = (config[k] for k in keys)
    if not isinstance(bidirectional, bool):
        raise CheckFailed(f"bidirectional should be True or False, got {bidirectional!r}")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= top:
        raise CheckFailed(f"hidden_size should be a whole number from 1 to {top} (per direction), got {hidden!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 0.1:
        raise CheckFailed(f"lr should be a number in (0, 0.1], got {lr!r}")
    return {"bidirectional": bidirectional, "hidden_size": hidden, "lr": float(lr)}


def tagger_config_f1(config: dict, *, seed: int = 0) -> float:
    """Train a GRU :class:`Tagger` on the word ends of 05c with ``config``; return its validation F1.

    ``seed`` sets the validation runs (:func:`tagger_split`), the initial weights and the
    training batches, without touching the notebook's random state; the test block is never
    read. Runs on the CPU, one thread: Adam, gradient norm clipped at 1.
    """
    c, task = _validate_tagger_config(config), TAGGER_CHALLENGE
    X, Y = _segmentation()  # (N, chunk) each
    train, val = tagger_split(len(X), seed)
    rows = np.random.default_rng(10_000 + seed).choice(train, size=(task["steps"], task["batch_size"]))
    batches = [(X[r], Y[r]) for r in rows]
    with seeded_run(seed):
        model = Tagger(26, task["embed"], c["hidden_size"], 2, bidirectional=c["bidirectional"])
        fit(model, batches, _tag_loss, torch.optim.Adam(model.parameters(), lr=c["lr"]), clip_grad_norm=1.0,
            device=torch.device("cpu"), progress=False)
        model.eval()
        with torch.no_grad():
            return binary_f1(model(X[val]).argmax(-1), Y[val])


def _tag_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch  # (B, T) each
    logits = model(x)  # (B, T, 2)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _tagger_hints(c: dict) -> list[str]:
    """What in a configuration that missed the target is the likely culprit."""
    hints = []
    if not c["bidirectional"]:
        hints.append("a unidirectional tagger decides at letter t having read only the letters up to t, but whether "
                     "a word ends there depends on the next letters (the|quick, theory)")
    hints += learning_rate_hints(c["lr"], 3e-3, 5e-2, TAGGER_CHALLENGE["steps"])
    if c["hidden_size"] < 24:
        hints.append(f"{c['hidden_size']} units per direction are few to hold the letters around t")
    return hints


def check_tagger_config(config: dict, *, seed: int = 0) -> None:
    """Grade a learner's tagger configuration by outcome: train it (seeded), reach the target F1.

    ``config`` has the keys :data:`TAGGER_CONFIG_KEYS`. Fails with the validation F1 of the
    word-end tag, how far ``1 - F1`` is from the target's, and the likely culprits.
    """
    got = tagger_config_f1(config, seed=seed)  # validates the config first
    c, task = _validate_tagger_config(config), TAGGER_CHALLENGE
    where = (f"after {task['steps']} steps of {task['batch_size']} chunks, your tagger reaches a validation F1 of "
             f"{got:.3f} for the word-end tag (target: at least {task['target']}; always answering 0 scores 0)")
    miss, allowed = 1 - got, 1 - task["target"]
    outcome_verdict(where, got >= task["target"],
                    f"its 1 - F1 of {miss:.3f} is {miss / allowed:.1f} times the target's {allowed:.2f}",
                    lambda: _tagger_hints(c))
