"""Notebook 08d, sections 1-3: the transformer's training recipe, one factor at a time.

- blocks: :class:`PreLNBlock` (08's :class:`~course_utils.transformer.Block` plus residual
  dropout) and :class:`PostLNBlock` (the original transformer's ``LN(x + sublayer(x))``);
- a model with the recipe's switches: :class:`RecipeGPT` (dropout, weight tying, pre- or post-LN);
- the loss: :func:`label_smoothed_loss`, cross-entropy against ``(1 - eps) one_hot + eps / V``;
- optimisers: AdamW's decoupled weight decay against Adam with an L2 term (:func:`make_optimizer`), decay on
  the matrices only (:func:`decay_groups`; :func:`layer_norm_gains` to see what decay does to the rest);
- GPT-2's initialisation with its residual scaling (:func:`gpt2_init_`, :func:`residual_projections`) and the
  residual stream's variance across depth (:func:`residual_variances`);
- the original transformer's two details (Vaswani et al., 2017): the inverse-square-root ("Noam") schedule
  (:func:`noam_lr`, :func:`noam_lambda` for ``LambdaLR``, ``schedule="noam"``) and the embedding multiplied by
  ``sqrt(d_model)`` beside sinusoidal positions (``RecipeGPT(positions="sinusoidal", scale_embedding=True)``,
  :func:`input_norms`);
- training at a fixed step budget: :class:`RecipeConfig` and :func:`train_recipe`;
- exercises: :func:`check_label_smoothed_loss`, :func:`check_decay_groups`, :func:`check_noam_rate` and, graded
  by outcome, :func:`check_post_ln_recipe`.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.recipe`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .core.seed import seeded_run
from .core.shapes import require_shape
from .core.training import evaluate, fit
from .self_attention import MultiHeadAttention, causal_mask
from .shared.lm import CharData, LMBatch, corpus_data, lm_batches, next_token_loss
from .transformer import MLP, sinusoidal_positions, warmup_cosine_lr

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
    """08's tiny GPT with the recipe's switches: ``dropout``, ``tie_weights``, ``post_ln``, and the embedding's.

    ``tie_weights``: the output layer reuses the embedding matrix (``head.weight is embed.weight``).
    ``post_ln``: :class:`PostLNBlock` blocks (each ends in a LayerNorm, so no final LayerNorm);
    otherwise :class:`PreLNBlock` blocks and a final LayerNorm.
    ``positions``: ``"learned"`` (a table ``pos``, N(0, 0.02²)) or ``"sinusoidal"`` (08's fixed encodings, a buffer).
    ``embed_std``: draw the token embedding from N(0, embed_std²) instead of torch's N(0, 1) (drawn last, so the
    other weights are the same draws either way). ``scale_embedding``: multiply the token vectors by
    ``sqrt(d_model)`` before adding the positions (Vaswani et al., 2017, section 3.4).
    """

    def __init__(self, vocab_size: int, context: int, d_model: int = 32, n_heads: int = 4, n_layers: int = 2, *,
                 dropout: float = 0.0, tie_weights: bool = False, post_ln: bool = False, positions: str = "learned",
                 embed_std: float | None = None, scale_embedding: bool = False):
        super().__init__()
        if positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {positions!r}")
        self.context = context
        self.embed = nn.Embedding(vocab_size, d_model)
        if positions == "learned":
            self.pos = nn.Parameter(torch.randn(context, d_model) * 0.02)
        else:
            self.register_buffer("pos", sinusoidal_positions(context, d_model), persistent=False)  # (context, D)
        self.embed_scale = math.sqrt(d_model) if scale_embedding else 1.0
        self.drop = nn.Dropout(dropout)
        block = PostLNBlock if post_ln else PreLNBlock
        self.blocks = nn.ModuleList(block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = nn.Identity() if post_ln else nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        if tie_weights:
            self.head.weight = self.embed.weight  # one (V, D) matrix, read in and read out
        if embed_std is not None:
            nn.init.normal_(self.embed.weight, 0.0, embed_std)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> the input to the first block, token vectors (scaled or not) plus positions: (B, T, D)."""
        return self.embed(ids) * self.embed_scale + self.pos[: ids.shape[1]]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) with T <= context -> logits (B, T, V)."""
        require_shape("ids", ids, ("B", "T"))
        T = ids.shape[1]
        if T > self.context:
            raise ValueError(f"ids has shape {tuple(ids.shape)}, expected (B, T) with T <= {self.context}")
        x = self.drop(self.embed_tokens(ids))  # (B, T, D)
        mask = causal_mask(T, ids.device)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))  # (B, T, V)


@torch.no_grad()
def input_norms(model: RecipeGPT) -> tuple[torch.Tensor, torch.Tensor]:
    """The norms of what the first block's input adds up: every token vector as it enters (scaled or not),
    (V,), and every position vector, (context,)."""
    return (model.embed.weight * model.embed_scale).norm(dim=-1), model.pos.norm(dim=-1)


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


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's two parameter groups: ``weight_decay`` on every matrix, 0 on every vector.

    Decayed: the parameters with two or more dimensions, the matrices a layer multiplies by
    (Linear weights, attention's ``in_proj_weight``) and the embedding tables (token and
    position: a lookup is a one-hot row times the table), nanoGPT's rule. Not decayed: the
    biases and the LayerNorm gains and shifts. Each parameter is in exactly one group; a
    tied matrix (``head.weight is embed.weight``) is one parameter, listed once.
    """
    params = {id(p): p for p in model.parameters()}.values()  # tied weights once
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, kind: str, lr: float, weight_decay: float,
                   decay: str = "matrices") -> torch.optim.Optimizer:
    """``"adamw"``: decoupled decay (``w -= lr * wd * w`` beside Adam's step); ``"adam_l2"``: ``wd * w`` added
    to the gradient, so Adam rescales it like any gradient. ``decay="matrices"``: :func:`decay_groups` (no decay on
    biases and LayerNorms); ``"all"``: one group, every parameter decayed."""
    if kind not in ("adamw", "adam_l2"):
        raise ValueError(f"kind must be 'adamw' or 'adam_l2', got {kind!r}")
    if decay not in ("matrices", "all"):
        raise ValueError(f"decay must be 'matrices' or 'all', got {decay!r}")
    groups = (decay_groups(model, weight_decay) if decay == "matrices"
              else [{"params": list(model.parameters()), "weight_decay": weight_decay}])
    optimizer = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam  # Adam's weight_decay is the L2 term
    return optimizer(groups, lr=lr)


def layer_norm_gains(model: nn.Module) -> torch.Tensor:
    """Every LayerNorm gain of ``model``, concatenated: (n_layer_norms * D,)."""
    return torch.cat([m.weight.detach().flatten() for m in model.modules() if isinstance(m, nn.LayerNorm)])


# ----------------------------------------------------------------------------- GPT-2's initialisation

GPT2_STD = 0.02  # GPT-2's (and nanoGPT's) standard deviation for every weight matrix


def residual_projections(model: RecipeGPT) -> list[nn.Linear]:
    """The layers that write into the residual stream, two per block: ``attn.out_proj`` and ``mlp.proj``
    (GPT-2's ``c_proj``)."""
    return [layer for block in model.blocks for layer in (block.attn.out_proj, block.mlp.proj)]


@torch.no_grad()
def gpt2_init_(model: RecipeGPT, residual_scaling: bool = True) -> RecipeGPT:
    """GPT-2's initialisation, in place (Radford et al., 2019; nanoGPT's ``_init_weights``).

    Every matrix (Linear weights, attention's ``in_proj_weight``, the embedding tables) is drawn
    from N(0, 0.02²), biases are 0, LayerNorms (1, 0). With ``residual_scaling`` the 2 ``n_layers``
    projections that write into the residual stream (:func:`residual_projections`) get
    ``std = 0.02 / sqrt(2 n_layers)``, so that the stream's variance at initialisation does not grow
    with depth. Draws from torch's global generator: seed it first.
    """
    for name, p in model.named_parameters():  # a tied matrix once
        if p.dim() >= 2:
            p.normal_(0.0, GPT2_STD)
        elif name.endswith("bias"):
            p.zero_()
        else:  # a LayerNorm gain
            p.fill_(1.0)
    if residual_scaling:
        for layer in residual_projections(model):
            layer.weight.normal_(0.0, GPT2_STD / math.sqrt(2 * len(model.blocks)))
    return model


@torch.no_grad()
def residual_variances(model: RecipeGPT, ids: torch.Tensor) -> list[float]:
    """The residual stream's variance (over features, averaged over positions) after the embedding and after
    each block: ``n_layers + 1`` numbers. ``model`` should be in eval mode (no dropout)."""
    require_shape("ids", ids, ("B", "T"))
    T = ids.shape[1]
    x = model.embed_tokens(ids)  # (B, T, D)
    variances = [x.var(dim=-1, unbiased=False).mean().item()]
    mask = causal_mask(T, ids.device)
    for block in model.blocks:
        x = block(x, mask)  # (B, T, D)
        variances.append(x.var(dim=-1, unbiased=False).mean().item())
    return variances


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
    schedule: str = "cosine"  # "cosine" (warm-up then cosine to 0), "constant" (warm-up then flat) or "noam"
    optimizer: str = "adamw"
    weight_decay: float = 0.1
    decay: str = "matrices"  # "matrices" (biases and LayerNorms not decayed: decay_groups) or "all"
    dropout: float = 0.0
    label_smoothing: float = 0.0
    tie_weights: bool = False
    post_ln: bool = False
    clip_grad_norm: float | None = 1.0
    positions: str = "learned"  # or "sinusoidal"
    embed_std: float | None = None  # None: torch's N(0, 1) for the token embedding
    scale_embedding: bool = False  # multiply the token vectors by sqrt(d_model)


@dataclass
class RecipeRun:
    """What :func:`train_recipe` measures: per-step training losses and the final evaluations (nats/char)."""

    config: RecipeConfig
    train_losses: list[float] = field(default_factory=list)
    val_loss: float = math.nan  # eval mode, plain cross-entropy (no smoothing)
    train_loss: float = math.nan  # the same on training windows: the gap is val_loss - train_loss
    n_params: int = 0
    model: nn.Module | None = None  # the trained model, in eval mode


def noam_lr(step: int, d_model: int, warmup_steps: int) -> float:
    """The inverse-square-root ("Noam") rate of Vaswani et al. (2017), section 5.3, steps counted from 1:

    ``d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)``: linear up to ``step = warmup_steps``, where it
    peaks at ``(d_model * warmup_steps)**-0.5``, then proportional to ``1 / sqrt(step)``.
    """
    if warmup_steps < 1:
        raise ValueError(f"the Noam formula needs warmup_steps >= 1, got {warmup_steps}")
    if step < 1:
        raise ValueError(f"step counts from 1 in the Noam formula, got {step}")
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def noam_lambda(d_model: int, warmup_steps: int) -> Callable[[int], float]:
    """The Noam rate as a ``torch.optim.lr_scheduler.LambdaLR`` multiplier (with the optimiser's ``lr=1.0``).

    LambdaLR counts the optimiser's steps from 0 (it calls the function with 0 when it is built), the formula
    from 1: optimiser step ``t`` gets :func:`noam_lr` of step ``t + 1``.
    """
    return lambda t: noam_lr(t + 1, d_model, warmup_steps)


def schedule_lr(config: RecipeConfig, step: int) -> float:
    """The rate of step ``step`` (from 0): warm-up over ``warmup_steps``, then cosine to 0, constant, or Noam.

    ``"noam"``: :func:`noam_lr`'s shape with its peak (at ``step = warmup_steps - 1``) at ``config.lr``; the paper's
    formula itself is ``config.lr = (d_model * warmup_steps)**-0.5``.
    """
    if config.schedule == "cosine":
        return warmup_cosine_lr(step, config.warmup_steps, config.lr, config.steps)
    if config.schedule == "constant":
        return config.lr * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else config.lr
    if config.schedule == "noam":
        peak = noam_lr(config.warmup_steps, config.d_model, config.warmup_steps)
        return config.lr * noam_lr(step + 1, config.d_model, config.warmup_steps) / peak
    raise ValueError(f"schedule must be 'cosine', 'constant' or 'noam', got {config.schedule!r}")


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
                          tie_weights=c.tie_weights, post_ln=c.post_ln, positions=c.positions,
                          embed_std=c.embed_std, scale_embedding=c.scale_embedding)
        opt = make_optimizer(model, c.optimizer, c.lr, c.weight_decay, c.decay)
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
