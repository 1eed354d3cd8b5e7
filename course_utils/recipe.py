"""Notebook 08c, section 3: the transformer's training recipe, one factor at a time.

- blocks: :class:`PreLNBlock` (08's :class:`~course_utils.transformer.Block` plus residual
  dropout) and :class:`PostLNBlock` (the original transformer's ``LN(x + sublayer(x))``);
- a model with the recipe's switches: :class:`RecipeGPT` (dropout, weight tying, pre- or post-LN);
- the loss: :func:`label_smoothed_loss`, cross-entropy against ``(1 - eps) one_hot + eps / V``;
- optimisers: AdamW's decoupled weight decay against Adam with an L2 term (:func:`make_optimizer`);
- training at a fixed step budget: :class:`RecipeConfig` and :func:`train_recipe`;
- exercises: :func:`check_label_smoothed_loss` and, graded by outcome, :func:`check_post_ln_recipe`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .checks import CheckFailed, check_close, learning_rate_hints, name_mistake, outcome_verdict, refuse_reference
from .lm import CharData, LMBatch, corpus_data, lm_batches, next_token_loss, ngram_probabilities
from .seed import seeded_run
from .self_attention import MultiHeadAttention, causal_mask
from .shapes import require_shape
from .training import evaluate, fit
from .transformer import MLP, warmup_cosine_lr

# ----------------------------------------------------------------------------- blocks


class PreLNBlock(nn.Module):
    """Pre-LN: ``x + drop(attn(ln1(x)))``, then ``x + drop(mlp(ln2(x)))``; 08's ``Block`` at ``dropout=0``."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), mask (T, T) bools, True = may attend -> (B, T, D)."""
        x = x + self.drop(self.attn(self.ln1(x), mask)[0])  # (B, T, D)
        return x + self.drop(self.mlp(self.ln2(x)))


class PostLNBlock(nn.Module):
    """Post-LN (Vaswani et al., 2017): ``ln1(x + drop(attn(x)))``, then ``ln2(h + drop(mlp(h)))``.

    Same parameters and layout as ``nn.TransformerEncoderLayer(norm_first=False, activation="gelu")``.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.ln1 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), mask (T, T) bools, True = may attend -> (B, T, D)."""
        h = self.ln1(x + self.drop(self.attn(x, mask)[0]))  # (B, T, D)
        return self.ln2(h + self.drop(self.mlp(h)))


def copy_to_encoder_layer(block: PostLNBlock | PreLNBlock) -> nn.TransformerEncoderLayer:
    """An ``nn.TransformerEncoderLayer`` (batch first, GELU, no dropout) holding ``block``'s weights."""
    D = block.ln1.normalized_shape[0]
    layer = nn.TransformerEncoderLayer(D, block.attn.n_heads, dim_feedforward=block.mlp.fc.out_features, dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=isinstance(block, PreLNBlock),
                                       device=block.ln1.weight.device, dtype=block.ln1.weight.dtype)
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(block.attn.in_proj_weight)
        layer.self_attn.in_proj_bias.copy_(block.attn.in_proj_bias)
        layer.self_attn.out_proj.load_state_dict(block.attn.out_proj.state_dict())
        layer.linear1.load_state_dict(block.mlp.fc.state_dict())
        layer.linear2.load_state_dict(block.mlp.proj.state_dict())
        layer.norm1.load_state_dict(block.ln1.state_dict())
        layer.norm2.load_state_dict(block.ln2.state_dict())
    return layer


# ----------------------------------------------------------------------------- the model


class RecipeGPT(nn.Module):
    """08's tiny GPT with the recipe's switches: ``dropout``, ``tie_weights``, ``post_ln``.

    ``tie_weights``: the output layer reuses the embedding matrix (``head.weight is embed.weight``).
    ``post_ln``: :class:`PostLNBlock` blocks (each ends in a LayerNorm, so no final LayerNorm);
    otherwise :class:`PreLNBlock` blocks and a final LayerNorm.
    """

    def __init__(self, vocab_size: int, context: int, d_model: int = 32, n_heads: int = 4, n_layers: int = 2, *,
                 dropout: float = 0.0, tie_weights: bool = False, post_ln: bool = False):
        super().__init__()
        self.context = context
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(torch.randn(context, d_model) * 0.02)
        self.drop = nn.Dropout(dropout)
        block = PostLNBlock if post_ln else PreLNBlock
        self.blocks = nn.ModuleList(block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = nn.Identity() if post_ln else nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        if tie_weights:
            self.head.weight = self.embed.weight  # one (V, D) matrix, read in and read out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) with T <= context -> logits (B, T, V)."""
        require_shape("ids", ids, ("B", "T"))
        T = ids.shape[1]
        if T > self.context:
            raise ValueError(f"ids has shape {tuple(ids.shape)}, expected (B, T) with T <= {self.context}")
        x = self.drop(self.embed(ids) + self.pos[:T])  # (B, T, D)
        mask = causal_mask(T, ids.device)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))  # (B, T, V)


# ----------------------------------------------------------------------------- the loss


def label_smoothed_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 0.1,
                        ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy of ``logits (N, V)`` against ``(1 - eps) * one_hot(targets) + eps / V``.

    Equals ``F.cross_entropy(logits, targets, label_smoothing=eps, ignore_index=ignore_index)``:
    the ``eps / V`` share goes to every class, the target included, and positions whose
    target is ``ignore_index`` (padding) count neither in the sum nor in the mean.
    """
    require_shape("logits", logits, ("N", "V"))
    require_shape("targets", targets, (logits.shape[0],))
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must lie in [0, 1), got {eps}")
    real = targets != ignore_index  # (N,)
    log_p = F.log_softmax(logits[real], dim=-1)  # (n, V)
    nll = -log_p.gather(1, targets[real][:, None])[:, 0]  # (n,)
    uniform = -log_p.mean(dim=-1)  # (n,): cross-entropy against the uniform distribution
    return ((1 - eps) * nll + eps * uniform).mean()


# ----------------------------------------------------------------------------- optimisers


def make_optimizer(model: nn.Module, kind: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``"adamw"``: decoupled decay (``w -= lr * wd * w`` beside Adam's step); ``"adam_l2"``: ``wd * w`` added
    to the gradient, so Adam rescales it like any gradient. Biases, LayerNorms and positions are not decayed."""
    if kind not in ("adamw", "adam_l2"):
        raise ValueError(f"kind must be 'adamw' or 'adam_l2', got {kind!r}")
    params = {id(p): p for p in model.parameters()}.values()  # tied weights once
    decay = [p for p in params if p.dim() == 2 and p is not getattr(model, "pos", None)]
    rest = [p for p in params if all(p is not q for q in decay)]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam  # Adam's weight_decay is the L2 term
    return optimizer(groups, lr=lr)


# ----------------------------------------------------------------------------- training at a fixed budget


@dataclass(frozen=True)
class RecipeConfig:
    """One training run: model, data, optimiser and schedule. Change one field at a time with ``replace``."""

    steps: int = 200
    batch_size: int = 16
    context: int = 32
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 2
    lr: float = 1e-2
    warmup_steps: int = 20  # 0 and schedule "constant": a constant rate
    schedule: str = "cosine"  # "cosine" (warm-up then cosine to 0) or "constant" (warm-up then flat)
    optimizer: str = "adamw"
    weight_decay: float = 0.1
    dropout: float = 0.0
    label_smoothing: float = 0.0
    tie_weights: bool = False
    post_ln: bool = False
    clip_grad_norm: float | None = 1.0


@dataclass
class RecipeRun:
    """What :func:`train_recipe` measures: per-step training losses and the final evaluations (nats/char)."""

    config: RecipeConfig
    train_losses: list[float] = field(default_factory=list)
    val_loss: float = math.nan  # eval mode, plain cross-entropy (no smoothing)
    train_loss: float = math.nan  # the same on training windows: the gap is val_loss - train_loss
    n_params: int = 0
    model: nn.Module | None = None  # the trained model, in eval mode


def schedule_lr(config: RecipeConfig, step: int) -> float:
    """The rate of step ``step``: warm-up over ``warmup_steps``, then cosine to 0 or constant."""
    if config.schedule == "cosine":
        return warmup_cosine_lr(step, config.warmup_steps, config.lr, config.steps)
    if config.schedule == "constant":
        return config.lr * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else config.lr
    raise ValueError(f"schedule must be 'cosine' or 'constant', got {config.schedule!r}")


def _smoothed_loss(model: nn.Module, batch: LMBatch, eps: float) -> torch.Tensor:
    """The training loss of a recipe: next-character cross-entropy with label smoothing ``eps``."""
    x, y = batch  # (B, T) each
    return label_smoothed_loss(model(x).flatten(0, 1), y.flatten(), eps)  # logits (B * T, V)


def train_recipe(config: RecipeConfig, *, seed: int = 0, data: CharData | None = None) -> RecipeRun:
    """Train a :class:`RecipeGPT` for ``config.steps`` steps on CPU, one thread; evaluate on fixed windows.

    Everything random (weights, dropout, the windows) follows ``seed``, without touching the
    caller's random state. A run whose loss goes non-finite stops there, with ``val_loss = inf``.
    """
    data = data or corpus_data()
    c = config
    with seeded_run(seed):
        model = RecipeGPT(data.vocab.size, c.context, c.d_model, c.n_heads, c.n_layers, dropout=c.dropout,
                          tie_weights=c.tie_weights, post_ln=c.post_ln)
        opt = make_optimizer(model, c.optimizer, c.lr, c.weight_decay)
        run = RecipeRun(c, n_params=sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()))
        train = lm_batches(data.train, c.steps, c.batch_size, c.context, seed=10_000 + seed)
        history = fit(model, train, lambda m, batch: _smoothed_loss(m, batch, c.label_smoothing), opt,
                      clip_grad_norm=c.clip_grad_norm, lr_schedule=lambda step: schedule_lr(c, step),
                      stop_on_divergence=True, device=torch.device("cpu"), progress=False)  # no other loop
        run.train_losses = history.losses
        if history.diverged_at is not None:
            run.val_loss = run.train_loss = math.inf
            return run
        cpu = torch.device("cpu")
        run.val_loss = evaluate(model, lm_batches(data.val, 8, 64, c.context, seed=20_000), next_token_loss, cpu)
        run.train_loss = evaluate(model, lm_batches(data.train, 8, 64, c.context, seed=30_000), next_token_loss, cpu)
        run.model = model.eval()
        return run


def run_seeds(config: RecipeConfig, seeds: tuple[int, ...] = (0, 1)) -> list[RecipeRun]:
    """:func:`train_recipe` once per seed."""
    return [train_recipe(config, seed=s) for s in seeds]


def config_dict(config: RecipeConfig) -> dict:
    """The config as a dict (for printing one factor's change)."""
    return asdict(config)



# ----------------------------------------------------------------------------- exercise: label smoothing


def _smoothing_mistakes(logits: torch.Tensor, targets: torch.Tensor, eps: float) -> dict[str, torch.Tensor]:
    """What the usual wrong label-smoothed losses give (scalars) for ``logits (N, V)`` and ``targets (N,)``."""
    V, real = logits.shape[-1], targets != -100
    log_p = F.log_softmax(logits, dim=-1)  # (N, V)
    t = targets.clamp(min=0)
    nll = -log_p.gather(1, t[:, None])[:, 0]  # (N,)
    uniform = -log_p.mean(-1)  # (N,)
    others = (-log_p.sum(-1) - nll) / (V - 1)  # (N,): the mean over the V - 1 wrong classes
    per_pos = (1 - eps) * nll + eps * uniform  # (N,)
    return {
        "give the target 1 - eps and every other class eps / (V - 1) (the other convention); here, as in "
        "F.cross_entropy(label_smoothing=eps), every class gets eps / V and the target 1 - eps + eps / V":
            ((1 - eps) * nll + eps * others)[real].mean(),
        "average over the padded positions too (targets == -100): they should count neither in the sum nor in "
        "the number you divide by": (per_pos * real).mean(),
        "sum over the positions instead of averaging": per_pos[real].sum(),
        "forget the smoothing (plain cross-entropy)": nll[real].mean(),
    }


def check_label_smoothed_loss(fn, seed: int = 0) -> None:
    """Test ``fn(logits (N, V), targets (N,), eps) -> scalar`` against :func:`label_smoothed_loss` (exercise 3).

    Targets of -100 are padding. Names the usual mistakes: the ``eps / (V - 1)`` convention,
    padding averaged in, a sum instead of a mean, no smoothing.
    """
    refuse_reference(fn, ("label_smoothed_loss", "cross_entropy", "CrossEntropyLoss", "nll_loss"))
    g = torch.Generator().manual_seed(seed)
    for eps, n_pad in ((0.1, 3), (0.3, 0), (0.0, 2)):
        logits = torch.randn(10, 7, generator=g, dtype=torch.float64) * 2
        targets = torch.randint(0, 7, (10,), generator=g)
        targets[torch.randperm(10, generator=g)[:n_pad]] = -100
        name = f"my_label_smoothed_loss with eps = {eps} on 10 positions ({n_pad} of them padding)"
        got = fn(logits.clone(), targets.clone(), eps)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            raise CheckFailed(f"{name} should return a single number as a torch tensor, got "
                              f"{type(got).__name__}{tuple(got.shape) if isinstance(got, torch.Tensor) else ''}.")
        expected = label_smoothed_loss(logits, targets, eps)
        mistakes = {hint: value for hint, value in _smoothing_mistakes(logits, targets, eps).items()
                    if not torch.allclose(value, expected)}  # eps = 0 or no padding: some mistakes do not show
        name_mistake(name, got.reshape(()), expected, mistakes)
        check_close(name, got.reshape(()).double(), expected, quiet=True)
    print("OK my_label_smoothed_loss: eps = 0.1, 0.3 and 0, with and without padding")


# ----------------------------------------------------------------------------- exercise: warm up a post-LN stack

# Section 4's deep post-LN stack; a recipe (warm-up steps, peak rate) must bring its validation
# loss below the target in the step budget. Measured (seeds 0-2): no warm-up at peak 0.02 stays at
# 3.26-3.29 (the unigram model); 60 warm-up steps at 0.02 reach 2.53-2.69, at 0.001 2.81-2.86,
# at 0.0008 2.91-2.98 (learning, but too slowly).
POST_LN_CHALLENGE = RecipeConfig(steps=120, batch_size=16, context=16, d_model=32, n_layers=6, lr=2e-2,
                                 warmup_steps=0, schedule="cosine", optimizer="adamw", weight_decay=0.0,
                                 post_ln=True)
POST_LN_TARGET = 2.85
STUCK_MARGIN = 0.1  # within this of the unigram model's loss, a run has learned character frequencies only


@functools.lru_cache(maxsize=1)
def post_ln_unigram_loss() -> float:
    """The unigram model's loss (character frequencies of the training text) on the windows the challenge scores."""
    data = corpus_data()
    unigram, _ = ngram_probabilities(data.train.numpy(), data.vocab.size)  # (V,)
    val = lm_batches(data.val, 8, 64, POST_LN_CHALLENGE.context, seed=20_000)  # train_recipe's windows
    return float(np.mean([-np.log(unigram[y.numpy()]).mean() for _, y in val]))


def _validate_post_ln_recipe(recipe: dict) -> dict:
    steps = POST_LN_CHALLENGE.steps
    if not isinstance(recipe, dict) or set(recipe) != {"warmup_steps", "peak_lr"}:
        got = sorted(recipe) if isinstance(recipe, dict) else type(recipe).__name__
        raise CheckFailed(f"return a dict with exactly the keys warmup_steps, peak_lr; got {got}")
    w, lr = recipe["warmup_steps"], recipe["peak_lr"]
    if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or not 0 <= w <= steps:
        raise CheckFailed(f"warmup_steps should be a whole number from 0 to {steps} (the run's steps), got {w!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not 0 < lr <= 1.0:
        raise CheckFailed(f"peak_lr should be a number in (0, 1], got {lr!r}")
    return {"warmup_steps": int(w), "peak_lr": float(lr)}


def post_ln_recipe_loss(recipe: dict, *, seed: int = 0) -> float:
    """Validation loss of :data:`POST_LN_CHALLENGE` trained with ``recipe`` (warm-up, then cosine; seeded)."""
    c = _validate_post_ln_recipe(recipe)
    return train_recipe(replace(POST_LN_CHALLENGE, lr=c["peak_lr"], warmup_steps=c["warmup_steps"]), seed=seed).val_loss


def check_post_ln_recipe(recipe: dict, *, seed: int = 0) -> None:
    """Grade a warm-up and peak rate by outcome (exercise 4): the post-LN stack must get below the target.

    Fails with the loss reached, how far from the target, and the likely culprit.
    """
    c = _validate_post_ln_recipe(recipe)
    got = post_ln_recipe_loss(c, seed=seed)
    steps = POST_LN_CHALLENGE.steps
    where = (f"after {steps} steps, the 6-block post-LN stack reaches a validation loss of {got:.3f} nats/char "
             f"(target: below {POST_LN_TARGET})")
    outcome_verdict(where, got < POST_LN_TARGET, lambda: _post_ln_how_far(got, steps),
                    lambda: _post_ln_hints(c, steps))


def _post_ln_hints(c: dict, steps: int) -> list[str]:
    """What in a post-LN recipe that missed the target is the likely culprit."""
    hints = learning_rate_hints(c["peak_lr"], 2e-3, 3e-2, steps, " even after a warm-up")
    if c["peak_lr"] >= 1e-2 and c["warmup_steps"] < 20:
        hints.append(f"{c['warmup_steps']} warm-up steps at a peak of {c['peak_lr']:g}: post-LN's first updates "
                     "at full rate throw it to the unigram model (about 3.25 nats/char); warm up for longer")
    if c["warmup_steps"] > 0.8 * steps:
        hints.append(f"a warm-up of {c['warmup_steps']} of {steps} steps leaves almost no steps at the peak rate")
    return hints


def _post_ln_how_far(got: float, steps: int) -> str:
    """How far a missed post-LN run is: diverged, stuck at the unigram model, or part of the way down."""
    unigram = post_ln_unigram_loss()
    if not math.isfinite(got):
        return "the training diverged"
    if got >= unigram - STUCK_MARGIN:
        return (f"{got - POST_LN_TARGET:.3f} nats above it, stuck at the unigram model ({unigram:.3f}): the stack "
                "predicts character frequencies and nothing more")
    share = (unigram - got) / (unigram - POST_LN_TARGET)
    return (f"{got - POST_LN_TARGET:.3f} nats above it, {share:.0%} of the way down from the unigram model "
            f"({unigram:.3f}) to the target: the stack learns, but not far enough in {steps} steps")
