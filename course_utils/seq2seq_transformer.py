"""Notebook 08b, sections 1-6: the encoder-decoder transformer, with cross-attention, on the dates task.

    memory = Encoder(src_embed(x) + PE)                   (B, S, D), padding keys masked
    y      = tgt_embed(y_in) + PE                          (B, T, D)
    each decoder layer (pre-LayerNorm, like notebook 08's Block):
        y = y + SelfAttn(LN1(y), causal mask)              queries, keys, values from y
        y = y + CrossAttn(LN2(y), kv=memory, padding mask) queries from y, keys/values from memory
        y = y + MLP(LN3(y))
    logits = Linear(LN(y))                                 (B, T, V)

An encoder layer is notebook 08's :class:`~course_utils.transformer.Block` given a padding
mask instead of a causal one. Attention is notebook 07's
:class:`~course_utils.self_attention.MultiHeadAttention`. :class:`Seq2SeqTransformer` has the
interface of notebook 06's ``AttentionSeq2Seq`` (``forward(src, lengths, tgt_in)``,
``greedy(src, lengths, steps)``), so 06's loss and exact-match helpers serve both.
Section 4's training (:func:`train_comparison_model`) is also what ``benchmarks/seq2seq_seeds.py``
runs for the other seeds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .attention import AttentionSeq2Seq, dates_batches, teacher_forcing_loss
from .checks import CheckFailed, check_close, check_shape, name_mistake, outcome_verdict, refuse_reference
from .data.dates import (
    NUMERIC_FORMATS,
    SOURCE_CHARS,
    TARGET_CHARS,
    encode_source,
    encode_target,
    make_pairs,
    split_days,
)
from .device import get_device
from .seed import seed_everything, seeded_run
from .self_attention import MultiHeadAttention, causal_mask, padding_mask
from .shapes import require_shape
from .training import History, fit
from .transformer import MLP, Block, sinusoidal_positions

EncoderLayer = Block  # x + SelfAttn(LN1(x), padding mask), then x + MLP(LN2(x)): 08's block, another mask


class DecoderLayer(nn.Module):
    """A pre-LayerNorm decoder layer: causal self-attention, cross-attention to the encoder, MLP."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads)
        self.ln3 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, tgt_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """y (B, T, D), memory (B, S, D); tgt_mask (T, T), memory_mask (B, 1, S) bools, True = may attend.

        Returns the new y (B, T, D) and the cross-attention weights (B, h, T, S).
        """
        y = y + self.self_attn(self.ln1(y), tgt_mask)[0]  # (B, T, D)
        out, weights = self.cross_attn(self.ln2(y), memory_mask, kv=memory)  # (B, T, D), (B, h, T, S)
        y = y + out
        return y + self.mlp(self.ln3(y)), weights


class Seq2SeqTransformer(nn.Module):
    """Embeddings with sinusoidal positions, an encoder stack, a decoder stack and a read-out."""

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 64, n_heads: int = 4, n_encoder: int = 2,
                 n_decoder: int = 2, max_len: int = 64):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, d_model, padding_idx=0)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model)
        self.register_buffer("pos", sinusoidal_positions(max_len, d_model), persistent=False)  # (max_len, D)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, n_heads) for _ in range(n_encoder))
        self.ln_enc = nn.LayerNorm(d_model)
        self.decoder = nn.ModuleList(DecoderLayer(d_model, n_heads) for _ in range(n_decoder))
        self.ln_dec = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, tgt_vocab)

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) ids padded with 0, lengths (B,) -> memory (B, S, D) and its mask (B, 1, S)."""
        require_shape("src", src, ("B", "S"))
        require_shape("lengths", lengths, (src.shape[0],))
        if src.shape[1] > len(self.pos):
            raise ValueError(f"src has {src.shape[1]} positions, more than the model's max_len = {len(self.pos)}")
        mask = padding_mask(lengths.to(src.device), src.shape[1])  # (B, 1, S)
        x = self.src_embed(src) + self.pos[: src.shape[1]]  # (B, S, D)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.ln_enc(x), mask

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor,
               memory_mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """tgt_in (B, T) -> logits (B, T, V) and each layer's cross-attention weights (B, h, T, S)."""
        T = tgt_in.shape[1]
        y = self.tgt_embed(tgt_in) + self.pos[:T]  # (B, T, D)
        mask, weights = causal_mask(T, tgt_in.device), []
        for layer in self.decoder:
            y, w = layer(y, memory, mask, memory_mask)
            weights.append(w)
        return self.head(self.ln_dec(y)), weights

    def forward(self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for the target inputs ``tgt_in`` (B, T)."""
        memory, mask = self.encode(src, lengths)
        return self.decode(tgt_in, memory, mask)[0]

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, lengths: torch.Tensor, steps: int,
               bos: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding: tokens (B, steps) and the last layer's cross-attention (B, h, steps, S)."""
        memory, mask = self.encode(src, lengths)
        ids = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)  # (B, 1)
        for _ in range(steps):
            logits, _ = self.decode(ids, memory, mask)  # (B, t, V): the whole prefix again (T is tiny)
            ids = torch.cat([ids, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
        _, weights = self.decode(ids[:, :-1], memory, mask)
        return ids[:, 1:], weights[-1]


def next_log_probs_fn(model: Seq2SeqTransformer):
    """``(prefixes (N, K, t), (memory (N, S, D), mask (N, 1, S))) -> log-probs (N, K, V)``, for beam search."""

    @torch.no_grad()
    def next_log_probs(prefixes: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        memory, mask = state
        N, K, t = prefixes.shape
        logits, _ = model.decode(prefixes.reshape(N * K, t), memory.repeat_interleave(K, dim=0),
                                 mask.repeat_interleave(K, dim=0))  # (N K, t, V)
        return torch.log_softmax(logits[:, -1].float(), dim=-1).view(N, K, -1)

    return next_log_probs


# ----------------------------------------------------------------------------- section 4: side by side with 06's model

# 06's budget: 240 Adam steps of 128 dates, gradient norm clipped at 1; each model its own learning rate.
COMPARISON_BUDGET = {"steps": 240, "batch_size": 128}
COMPARISON_LR = {"GRU + attention (06)": 3e-3, "transformer": 1e-2}


def comparison_task() -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Section 1's splits as ``{"train" | "val" | "test": (src (N, S), lengths (N,), tgt (N, 10))}``.

    06's day split (seed 0) with 2,000 of its training days held out for validation; 30,000
    training pairs (seed 1), 1,000 validation pairs (seed 3), 2,000 test pairs (seed 2).
    """
    train_days, test_days = split_days(n_test_days=5000, seed=0)
    val_days, train_days = train_days[:2000], train_days[2000:]
    pairs = {"train": make_pairs(train_days, 30_000, seed=1), "val": make_pairs(val_days, 1000, seed=3),
             "test": make_pairs(test_days, 2000, seed=2)}
    out = {}
    for split, split_pairs in pairs.items():
        src, lengths = encode_source([text for text, _ in split_pairs])  # (N, S), (N,)
        out[split] = (src, lengths, encode_target([iso for _, iso in split_pairs]))
    return out


def comparison_model(name: str) -> nn.Module:
    """A fresh model of section 4: 06's GRU + additive attention, or the small encoder-decoder transformer."""
    if name == "transformer":
        return Seq2SeqTransformer(len(SOURCE_CHARS), len(TARGET_CHARS), d_model=32, n_heads=4, n_encoder=2,
                                  n_decoder=2)
    if name == "GRU + attention (06)":
        return AttentionSeq2Seq(len(SOURCE_CHARS), len(TARGET_CHARS), embed=32, hidden=64, attention="additive")
    raise ValueError(f"name must be one of {', '.join(map(repr, COMPARISON_LR))}, got {name!r}")


def train_comparison_model(name: str, train: tuple[torch.Tensor, torch.Tensor, torch.Tensor], *, seed: int = 0,
                           device: torch.device | None = None, steps: int | None = None,
                           progress: bool = True) -> tuple[nn.Module, History]:
    """Train one model of section 4 on ``train`` = ``(src (N, S), lengths (N,), tgt (N, 10))``.

    ``seed`` sets the initial weights (``seed_everything(seed)``) and the batches
    (:func:`~course_utils.attention.dates_batches` with seed ``1000 * seed``), so both models
    of one seed read the same batches in the same order; seed 0 is the notebook's run.
    Adam at :data:`COMPARISON_LR` ``[name]``, :data:`COMPARISON_BUDGET` (``steps`` overrides
    its number of steps), gradient norm clipped at 1. Returns the model and its ``History``.
    """
    steps = COMPARISON_BUDGET["steps"] if steps is None else steps
    seed_everything(seed)
    model = comparison_model(name).to(device or get_device())

    def batches(epoch: int):
        return dates_batches(*train, steps=steps, batch_size=COMPARISON_BUDGET["batch_size"],
                             seed=1000 * seed + epoch)

    optimizer = torch.optim.Adam(model.parameters(), lr=COMPARISON_LR[name])
    history = fit(model, batches, teacher_forcing_loss, optimizer, epochs=1, clip_grad_norm=1.0, device=device,
                  progress=progress, desc=name)
    return model, history


# ----------------------------------------------------------------------------- the check against torch.nn

def _copy_attention(ours: MultiHeadAttention, ref: nn.MultiheadAttention) -> None:
    ours.in_proj_weight.copy_(ref.in_proj_weight)
    ours.in_proj_bias.copy_(ref.in_proj_bias)
    ours.out_proj.load_state_dict(ref.out_proj.state_dict())


@torch.no_grad()
def load_torch_layer(ours: nn.Module, ref: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer) -> None:
    """Copy the weights of torch's (pre-LN, GELU) encoder or decoder layer into ours, in place."""
    if isinstance(ref, nn.TransformerDecoderLayer) and isinstance(ours, DecoderLayer):
        _copy_attention(ours.self_attn, ref.self_attn)
        _copy_attention(ours.cross_attn, ref.multihead_attn)
        norms = (ours.ln1, ours.ln2, ours.ln3), (ref.norm1, ref.norm2, ref.norm3)
    elif isinstance(ref, nn.TransformerEncoderLayer) and isinstance(ours, Block):
        _copy_attention(ours.attn, ref.self_attn)
        norms = (ours.ln1, ours.ln2), (ref.norm1, ref.norm2)
    else:
        raise TypeError(f"load_torch_layer copies nn.TransformerDecoderLayer into DecoderLayer or "
                        f"nn.TransformerEncoderLayer into EncoderLayer, got {type(ref).__name__} into "
                        f"{type(ours).__name__}")
    for mine, theirs in zip(*norms, strict=True):
        mine.load_state_dict(theirs.state_dict())
    ours.mlp.fc.load_state_dict(ref.linear1.state_dict())
    ours.mlp.proj.load_state_dict(ref.linear2.state_dict())


def torch_layer(kind: str, d_model: int, n_heads: int) -> nn.Module:
    """torch's pre-LN layer with our settings: GELU MLP of 4 D, no dropout, batch first."""
    cls = {"encoder": nn.TransformerEncoderLayer, "decoder": nn.TransformerDecoderLayer}[kind]
    return cls(d_model, n_heads, dim_feedforward=4 * d_model, dropout=0.0, activation="gelu", batch_first=True,
               norm_first=True)


# ----------------------------------------------------------------------------- exercise 1: the decoder layer

class _PartsOnly(DecoderLayer):
    """A decoder layer whose forward refuses to run: the exercise calls its parts."""

    def forward(self, *args, **kwargs):
        raise CheckFailed("call the layer's parts (layer.ln1, layer.self_attn, ...), not the layer itself")


def _decoder_variant(layer: DecoderLayer, y, memory, lengths, *, causal=True, cross_causal=False, pad="keys",
                     kv_from="memory", pre_ln=True) -> torch.Tensor:
    """The decoder layer, right (the defaults) or with one of the usual mistakes."""
    B, T, _ = y.shape
    S = memory.shape[1]
    tgt_mask = causal_mask(T) if causal else None
    if pad == "keys":
        mem_mask = padding_mask(lengths, S)  # (B, 1, S)
    elif pad == "queries":
        mem_mask = padding_mask(lengths, T).transpose(1, 2).expand(B, T, S)  # (B, T, S): rows masked
    else:
        mem_mask = None
    if cross_causal:
        tri = torch.ones(T, S, dtype=torch.bool).tril()  # (T, S)
        mem_mask = tri if mem_mask is None else tri & mem_mask
    norm = (lambda ln, v: ln(v)) if pre_ln else (lambda ln, v: v)
    post = (lambda ln, v: v) if pre_ln else (lambda ln, v: ln(v))
    y = post(layer.ln1, y + layer.self_attn(norm(layer.ln1, y), tgt_mask)[0])
    h = norm(layer.ln2, y)
    kv = memory if kv_from == "memory" else h
    mask = mem_mask if kv_from == "memory" else tgt_mask
    y = post(layer.ln2, y + layer.cross_attn(h, mask, kv=kv)[0])
    return post(layer.ln3, y + layer.mlp(norm(layer.ln3, y)))


def _decoder_case(seed: int) -> tuple[DecoderLayer, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random layer (LayerNorm weights randomised too) and a batch with padded sources, in float64."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = _PartsOnly(8, 2).double()
        with torch.no_grad():
            for ln in (layer.ln1, layer.ln2, layer.ln3):
                ln.weight.normal_(1.0, 0.3)
                ln.bias.normal_(0.0, 0.3)
        B, T, S = 3, 5, 7
        y = torch.randn(B, T, 8, dtype=torch.float64)
        memory = torch.randn(B, S, 8, dtype=torch.float64) * 2
    lengths = torch.tensor([7, 3, 5])
    return layer, y, memory, lengths


def check_decoder_layer(fn, seed: int = 0) -> None:
    """Test ``fn(layer, y, memory, src_lengths) -> y_out (B, T, D)``, a pre-LN decoder layer's forward pass.

    ``layer`` is a :class:`DecoderLayer` whose own forward refuses to run. Fails naming the
    usual mistakes: no causal mask, a causal mask on the cross-attention too, the padding
    mask on the queries (rows) or left out, keys and values from the decoder, post-LN.
    """
    refuse_reference(fn, ("DecoderLayer", "TransformerDecoderLayer", "decode"))
    layer, y, memory, lengths = _decoder_case(seed)
    with torch.no_grad():
        got = fn(layer, y.clone(), memory.clone(), lengths.clone())
        if isinstance(got, tuple):
            raise CheckFailed("return the new y alone (one tensor (B, T, D)), not a tuple")
        check_shape("y_out", got, tuple(y.shape))
        v = lambda **kw: _decoder_variant(layer, y, memory, lengths, **kw)  # noqa: E731
        mistakes = {
            "leave out the causal mask in the self-attention: position t then reads the target tokens after it, "
            "which it will not have when it generates": v(causal=False),
            "put a causal mask on the cross-attention too: every source position is there from the start, so "
            "the decoder may look at all of them (only padding is masked)": v(cross_causal=True),
            "put the padding mask on the queries (rows) instead of the keys (columns): it is the encoder's padded "
            "positions that must get no attention": v(pad="queries"),
            "leave out the source padding mask in the cross-attention: the decoder attends to padding":
                v(pad="none"),
            "take the cross-attention's keys and values from the decoder: they come from the encoder's output, "
            "memory (queries from the decoder)": v(kv_from="decoder"),
            "normalise after the residual sum (post-LN, y = LN(y + sublayer(y))): this layer is pre-LN, "
            "y + sublayer(LN(y))": v(pre_ln=False),
        }
        expected = v()
    name_mistake("y_out", got, expected, mistakes)
    check_close("y_out", got, expected)


# ----------------------------------------------------------------------------- exercise 3: an outcome-graded config

TRANSFORMER_CONFIG_KEYS = ("d_model", "n_layers", "lr")
# The short task of notebook 06's exercise 4 (digit-only dates), now for the transformer: the
# Adam steps, batch size, held-out dates and the exact match to reach. Heads are fixed at 4.
TRANSFORMER_CHALLENGE = {"steps": 150, "batch_size": 32, "n_val": 200, "target": 0.7, "n_heads": 4}
MAX_TRANSFORMER_D_MODEL = 64  # keeps the check at a few seconds


def _validate_transformer_config(config: Any) -> dict:
    keys = TRANSFORMER_CONFIG_KEYS
    if not isinstance(config, dict) or set(config) != set(keys):
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise CheckFailed(f"return a dict with exactly the keys {', '.join(keys)}; got {got}")
    d, n, lr = config["d_model"], config["n_layers"], config["lr"]
    if isinstance(d, bool) or not isinstance(d, int) or not 4 <= d <= MAX_TRANSFORMER_D_MODEL or d % 4:
        raise CheckFailed(f"d_model should be a multiple of 4 (the heads) from 4 to {MAX_TRANSFORMER_D_MODEL}, "
                          f"got {d!r}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 3:
        raise CheckFailed(f"n_layers should be 1, 2 or 3 (encoder and decoder layers each), got {n!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 0.1:
        raise CheckFailed(f"lr should be a number in (0, 0.1], got {lr!r}")
    return {"d_model": d, "n_layers": n, "lr": float(lr)}


def _challenge_data(seed: int) -> tuple[list, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Training batches ``(src, lengths, tgt)`` and held-out ``(src, lengths, tgt)`` of the digit dates."""
    task = TRANSFORMER_CHALLENGE
    steps, batch_size = task["steps"], task["batch_size"]
    train_days, val_days = split_days(2000, seed=100 + seed)
    train = make_pairs(train_days, steps * batch_size, seed=200 + seed, formats=NUMERIC_FORMATS)
    val = make_pairs(val_days, task["n_val"], seed=300 + seed, formats=NUMERIC_FORMATS)
    src, lengths = encode_source([text for text, _ in train])  # (N, S), (N,)
    tgt = encode_target([iso for _, iso in train])  # (N, 10)
    batches = [(src[i : i + batch_size], lengths[i : i + batch_size], tgt[i : i + batch_size])
               for i in range(0, steps * batch_size, batch_size)]
    val_src, val_lengths = encode_source([text for text, _ in val])
    return batches, (val_src, val_lengths, encode_target([iso for _, iso in val]))


def transformer_config_accuracy(config: dict, *, seed: int = 0) -> float:
    """Train a :class:`Seq2SeqTransformer` on the digit dates with ``config``; return its held-out exact match.

    :data:`TRANSFORMER_CHALLENGE` fixes the steps, batch size, heads and held-out set (gradient
    norm clipped at 1). Everything random follows ``seed`` without touching the notebook's
    random state; it runs on one CPU thread.
    """
    c, task, cpu = _validate_transformer_config(config), TRANSFORMER_CHALLENGE, torch.device("cpu")
    batches, (val_src, val_lengths, val_tgt) = _challenge_data(seed)
    with seeded_run(seed):
        model = Seq2SeqTransformer(len(SOURCE_CHARS), len(TARGET_CHARS), c["d_model"], task["n_heads"],
                                   c["n_layers"], c["n_layers"])
        fit(model, batches, teacher_forcing_loss, torch.optim.Adam(model.parameters(), lr=c["lr"]),
            clip_grad_norm=1.0, device=cpu, progress=False)
        model.eval()
        pred, _ = model.greedy(val_src, val_lengths, val_tgt.shape[1])
        return (pred == val_tgt).all(dim=1).float().mean().item()


def _transformer_hints(c: dict) -> list[str]:
    hints = []
    if c["lr"] < 2e-3:
        hints.append(f"a learning rate of {c['lr']:g} is small for {TRANSFORMER_CHALLENGE['steps']} steps: Adam "
                     "moves each weight by about lr per step")
    elif c["lr"] > 3e-2:
        hints.append(f"a learning rate of {c['lr']:g} is large for a transformer without warm-up: the first "
                     "updates overshoot")
    if c["d_model"] < 32:
        hints.append(f"d_model = {c['d_model']} gives heads of {c['d_model'] // 4} features: the queries and keys "
                     "have little room to say which source character belongs to which output position")
    return hints


def check_transformer_config(config: dict, *, seed: int = 0) -> None:
    """Grade a config by outcome: train with it (seeded) and reach the target held-out exact match."""
    got = transformer_config_accuracy(config, seed=seed)  # validates the config first
    c, task = _validate_transformer_config(config), TRANSFORMER_CHALLENGE
    where = (f"after {task['steps']} steps of {task['batch_size']} dates, your transformer (d_model {c['d_model']}, "
             f"{c['n_layers']} + {c['n_layers']} layers, lr {c['lr']:g}) writes {got:.1%} of {task['n_val']} "
             f"held-out dates exactly right (target: at least {task['target']:.0%})")
    outcome_verdict(where, got >= task["target"], f"{100 * (task['target'] - got):.1f} percentage points short",
                    lambda: _transformer_hints(c))

