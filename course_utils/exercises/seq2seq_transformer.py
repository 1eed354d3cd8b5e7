"""Notebook 08b, the exercises on :mod:`course_utils.seq2seq_transformer`.

Checks that name the usual mistakes: ``check_decoder_layer``.
Graded by outcome (the learner's setting is trained, seeded): ``check_transformer_config``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..attention import teacher_forcing_loss
from ..core.checks import (
    Challenge,
    CheckFailed,
    Verdict,
    check_close,
    check_shape,
    name_mistake,
    refuse_reference,
    require_keys,
)
from ..core.seed import seeded, seeded_run
from ..core.training import fit
from ..data.dates import (
    NUMERIC_FORMATS,
    SOURCE_CHARS,
    TARGET_CHARS,
    encode_source,
    encode_target,
    make_pairs,
    split_days,
)
from ..self_attention import causal_mask, padding_mask
from ..seq2seq_transformer import DecoderLayer, Seq2SeqTransformer


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
    with seeded(seed):
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
    fn = refuse_reference(fn, ("DecoderLayer", "TransformerDecoderLayer", "decode"))
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


TRANSFORMER_CONFIG_KEYS = ("d_model", "n_layers", "lr")


# The short task of notebook 06's exercise 4 (digit-only dates), now for the transformer: the
# Adam steps, batch size, held-out dates and the exact match to reach. Heads are fixed at 4.
TRANSFORMER_CHALLENGE = {"steps": 150, "batch_size": 32, "n_val": 200, "target": 0.7, "n_heads": 4}


MAX_TRANSFORMER_D_MODEL = 64  # keeps the check at a few seconds


def _validate_transformer_config(config: Any) -> dict:
    keys = TRANSFORMER_CONFIG_KEYS
    require_keys(config, keys)
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


def _judge_transformer(c: dict, got: float, seed: int) -> Verdict:
    """What check_transformer_config measured, against the target."""
    task = TRANSFORMER_CHALLENGE
    where = (f"after {task['steps']} steps of {task['batch_size']} dates, your transformer (d_model {c['d_model']}, "
             f"{c['n_layers']} + {c['n_layers']} layers, lr {c['lr']:g}) writes {got:.1%} of {task['n_val']} "
             f"held-out dates exactly right (target: at least {task['target']:.0%})")
    return Verdict(where, got >= task["target"], f"{100 * (task['target'] - got):.1f} percentage points short")


TRANSFORMER_GRADING = Challenge(_validate_transformer_config, transformer_config_accuracy,
                                _judge_transformer, _transformer_hints)


def check_transformer_config(config: dict, *, seed: int = 0) -> None:
    """Grade a config by outcome: train with it (seeded) and reach the target held-out exact match."""
    TRANSFORMER_GRADING.check(config, seed=seed)
