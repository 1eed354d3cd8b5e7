# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py//py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · The transformer
#
# **Objectives.** By the end of this notebook you will be able to
# 1. show why self-attention needs positions injected, and build sinusoidal and learned
#    positional encodings;
# 2. write a pre-LayerNorm transformer block (attention, MLP, residuals) and stack blocks
#    into a small decoder-only language model, a tiny GPT;
# 3. train it on the course's text and sample from it;
# 4. compare it with an LSTM, measured: validation loss at an equal number of training
#    steps and comparable size (time printed beside), time per training step against
#    sequence length, and the memory a training step saves, whose attention part grows as $T^2$;
# 5. compute exact attention without the $T \times T$ matrix: the online softmax and a tiled
#    attention (FlashAttention's idea), checked against full attention, their memory counted.
#
# The helpers live in `course_utils/transformer.py`; attention is notebook 07's
# `MultiHeadAttention` (`course_utils/self_attention.py`), and the data, loss, training loop and sampling are those of every
# language model in the course (`course_utils/shared/lm.py`).

# %%
# Colab set-up: on Google Colab, fetch this notebook's version of the course (once, ~20 s). Elsewhere: nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    COURSE_URL = "https://github.com/seqmodels-course/sequence-models"
    COURSE_VERSION = "v0.1.0"  # the release this notebook belongs to (a git tag)
    COURSE_DIR = os.path.abspath("seqmodels")
    if not os.path.isdir(COURSE_DIR):
        clone = ["git", "-c", "advice.detachedHead=false", "clone", "--quiet", "--depth=1"]
        if subprocess.run(clone + ["--branch", COURSE_VERSION, COURSE_URL, COURSE_DIR]).returncode != 0:
            print(f"Release {COURSE_VERSION} of the course is not on GitHub; using its newest version, "
                  "which may not match this notebook.")
            subprocess.run(clone + [COURSE_URL, COURSE_DIR], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "faker==40.63.0"], check=True)
    if COURSE_DIR not in sys.path:
        sys.path.insert(0, COURSE_DIR)

# %%
import math
import re

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.nn import functional as F

from course_utils import check_close, report_run_time, seed_everything, start_notebook
from course_utils.data.text import corpus_source, load_corpus
from course_utils.exercises.transformer import RECIPE_CHALLENGE, recipe_bigram_loss
from course_utils.self_attention import MultiHeadAttention
from course_utils.shared.layers import count_parameters
from course_utils.shared.lm import CharData, RecurrentLM, generate, ngram_probabilities, train_lm
from course_utils.shared.timing import clock_name, seconds
from course_utils.transformer import (
    Block,
    PeakBytes,
    TinyGPT,
    full_attention,
    online_softmax,
    saved_activation_bytes,
    sinusoidal_positions,
    tiled_attention,
    warmup_cosine_lr,
)

device = start_notebook()

# %% [markdown]
# ## 1. Self-attention does not know the order
#
# Attention scores compare contents, $q_t \cdot k_s$; nothing in them says where $s$ is.
# Permute the tokens of a sequence, and (without a mask) self-attention's outputs are
# permuted the same way — it is *permutation-equivariant*. "dog bites man" and "man bites
# dog" would give the same set of vectors. Checked:

# %%
seed_everything(0)
T, D = 6, 16
mha = MultiHeadAttention(D, 4).to(device)
x = torch.randn(1, T, D, device=device)
perm = torch.randperm(T, device=device)
with torch.no_grad():
    out = mha(x)[0]
    out_perm = mha(x[:, perm])[0]
check_close("attention(permuted x) vs permuted attention(x)", out_perm, out[:, perm])

# %% [markdown]
# An RNN reads in order and so knows positions for free. A transformer must be *told*:
# we add a position vector $p_t$ to each token embedding, $x_t = E[\text{token}_t] + p_t$.
#
# **Sinusoidal encodings** (Vaswani et al., 2017) are fixed:
#
# $$p_{t, 2i} = \sin\!\big(t / 10000^{2i/D}\big), \qquad p_{t, 2i+1} = \cos\!\big(t / 10000^{2i/D}\big).$$
#
# Each pair $i$ of dimensions is a clock hand turning at its own speed,
# $\omega_i = 10000^{-2i/D}$ radians per position, so one full turn takes
# $\lambda_i = 2\pi / \omega_i = 2\pi \cdot 10000^{2i/D}$ positions. The wavelengths form a
# geometric progression from $\lambda_0 = 2\pi$ (one radian per position, the fastest hand)
# to $\lambda_{D/2-1} = 2\pi \cdot 10000^{(D-2)/D}$ for the last pair, the slowest. The paper
# says the wavelengths run "from $2\pi$ to $10000 \cdot 2\pi$"; that upper end is a bound
# approached as $D$ grows, not reached: the last pair has $2i = D - 2$, not $D$ (computed
# below for $D = 64$). Shifting by $k$ positions rotates every pair by a fixed angle
# $k\,\omega_i$, a linear map independent of $t$, and the dot product
# $p_t \cdot p_{t+k} = \sum_i \cos(k\,\omega_i)$ depends only on $k$. **Learned encodings**
# are a trained table of `context x D` numbers: simpler, but they know only the positions
# seen in training.

# %%
pe = sinusoidal_positions(128, 64)  # (T, D)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
axes[0].imshow(pe.T, aspect="auto", cmap="RdBu")
axes[0].set_xlabel("position t")
axes[0].set_ylabel("dimension")
axes[0].set_title("sinusoidal encoding")
for dim in (0, 10, 30):
    axes[1].plot(pe[:, dim], label=f"dim {dim}")
axes[1].set_xlabel("position t")
axes[1].legend()
sim = pe @ pe.T  # (T, T)
axes[2].imshow(sim, cmap="viridis")
axes[2].set_title("p_t . p_s")
axes[2].set_xlabel("s")
axes[2].set_ylabel("t")
plt.tight_layout()
plt.show()
# p_t . p_{t+k} depends only on k: compare the diagonals of the similarity matrix.
spread = max((sim.diagonal(k) - sim.diagonal(k)[0]).abs().max().item() for k in range(20))
print(f"largest variation of p_t . p_(t+k) along t, for k = 0..19: {spread:.2e}")
assert spread < 1e-3
# The wavelengths, measured from the table: the period of dimension 0 and the formula for the last pair.
D_PE = pe.shape[1]
wavelength = 2 * math.pi * 10000.0 ** (torch.arange(0, D_PE, 2) / D_PE)  # (D/2,): 2 pi / omega_i
crossings = (pe[:-1, 0] < 0) & (pe[1:, 0] >= 0)  # sin goes up through 0 once per turn
period_0 = torch.diff(torch.nonzero(crossings)[:, 0].float()).mean().item()
print(f"D = {D_PE}: wavelength of pair 0 = {wavelength[0]:.2f} positions (sin(t) crosses 0 upwards every "
      f"{period_0:.2f} positions), of the last pair = 2 pi * 10000^({D_PE - 2}/{D_PE}) = {wavelength[-1]:,.0f} "
      f"positions, against 2 pi * 10000 = {2 * math.pi * 10000:,.0f}")
assert abs(period_0 - 2 * math.pi) < 1.0  # whole positions only: within one position
assert wavelength[-1] < 0.8 * 2 * math.pi * 10000
check_close("cos of the last pair, the formula", pe[:, -1], torch.cos(torch.arange(128) * 2 * math.pi / wavelength[-1]),
            atol=1e-5)

# %% [markdown]
# ### Exercise 1 (2 points, about 10 minutes): sinusoidal positional encodings
#
# Write `my_sinusoidal_positions(T, D)`, the `(T, D)` float tensor of the formula above:
# row $t$ (from 0) is position $t$, dimension $2i$ holds $\sin(t / 10000^{2i/D})$ and
# dimension $2i+1$ the cosine of the same angle, for $i = 0, \dots, D/2 - 1$ ($D$ even).
# (Hint: the angles form a `(T, D/2)` outer product; slicing `pe[:, 0::2]` picks the even
# dimensions.)

# %% nbgrader={"grade": false, "grade_id": "sinusoidal_positions", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_sinusoidal_positions(T, D):
    """(T, D) tensor: [t, 2i] = sin(t / 10000^(2i/D)), [t, 2i + 1] = cos(t / 10000^(2i/D))."""
    ### BEGIN SOLUTION
    t = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    two_i = torch.arange(0, D, 2, dtype=torch.float32)  # (D/2,): 0, 2, 4, ...
    angle = t / 10000.0 ** (two_i / D)  # (T, D/2)
    pe = torch.zeros(T, D)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sinusoidal_positions_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.transformer import check_sinusoidal_positions

check_sinusoidal_positions(my_sinusoidal_positions)  # names: sin/cos concatenated or swapped, i/D, t from 1


# %% nbgrader={"grade": true, "grade_id": "sinusoidal_positions_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_sinusoidal_positions(my_sinusoidal_positions, seed=1)
check_close("my_sinusoidal_positions(128, 64)", my_sinusoidal_positions(128, 64), sinusoidal_positions(128, 64),
            rtol=1e-5, atol=1e-5, quiet=True)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The transformer block
#
# A block refines every position's vector in two sub-layers, each wrapped in a residual
# connection, with LayerNorm *before* the sub-layer ("pre-LN", as in GPT-2 and most models
# since; the original paper normalised after the residual, which trains less stably
# without a learning-rate warm-up — Xiong et al., 2020):
#
# $$h = x + \operatorname{MHA}(\operatorname{LN}_1(x)), \qquad
#   y = h + \operatorname{MLP}(\operatorname{LN}_2(h)), \qquad
#   \operatorname{MLP}(z) = W_2\,\operatorname{GELU}(W_1 z + b_1) + b_2 .$$
#
# Attention mixes information *between* positions; the MLP, with a hidden layer 4 times
# wider, transforms each position on its own. The residual path $x \to y$ lets gradients
# pass straight through a deep stack. A tiny GPT is: token embedding + positions, $L$
# blocks with a causal mask, a final LayerNorm, and a linear read-out to next-token logits.
#
# The two new pieces. **LayerNorm** (Ba et al., 2016) normalises each position's vector
# $z \in \mathbb{R}^D$ over its own $D$ features, then scales and shifts it with learned
# $\gamma, \beta \in \mathbb{R}^D$ ($\epsilon = 10^{-5}$ guards against division by 0):
#
# $$\mu = \frac1D \sum_{i=1}^{D} z_i, \qquad \sigma^2 = \frac1D \sum_{i=1}^{D} (z_i - \mu)^2, \qquad
#   \operatorname{LN}(z) = \gamma \odot \frac{z - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta .$$
#
# Unlike batch normalisation it never mixes examples or positions. **GELU** (Hendrycks &
# Gimpel, 2016) is a smooth ReLU: $\operatorname{GELU}(u) = u\,\Phi(u)$, with $\Phi$ the standard
# normal distribution function, $\Phi(u) = \tfrac12\big(1 + \operatorname{erf}(u/\sqrt2)\big)$. Both by
# hand, against PyTorch's:

# %%
z = torch.randn(2, 5, 64)  # (B, T, D)
layer_norm = torch.nn.LayerNorm(64)
with torch.no_grad():  # non-trivial gamma and beta, so that they are checked too
    layer_norm.weight.uniform_(0.5, 1.5)
    layer_norm.bias.uniform_(-0.5, 0.5)
mu, var = z.mean(-1, keepdim=True), z.var(-1, unbiased=False, keepdim=True)  # (B, T, 1): over the D features
ln_by_hand = layer_norm.weight * (z - mu) / torch.sqrt(var + layer_norm.eps) + layer_norm.bias  # (B, T, D)
check_close("LayerNorm by hand vs torch.nn.LayerNorm", ln_by_hand, layer_norm(z).detach())
gelu_by_hand = z * 0.5 * (1 + torch.erf(z / math.sqrt(2)))
check_close("GELU by hand vs torch.nn.functional.gelu", gelu_by_hand, torch.nn.functional.gelu(z))

# %%
seed_everything(0)
block = Block(64, 4)
print(block)
print(f"parameters of one block with D = 64: {count_parameters(block):,} "
      f"(attention 4D^2 + 4D = {4 * 64 * 64 + 4 * 64:,}, MLP 8D^2 + 5D = {8 * 64 * 64 + 5 * 64:,}, "
      f"two LayerNorms 4D = {4 * 64})")

# %% [markdown]
# ### Exercise 2 (2 points, about 15 minutes): the block's forward pass
#
# Given a `Block` (its parts: `block.ln1`, `block.attn`, `block.ln2`, `block.mlp`; note
# `block.attn(z, mask)` returns `(output, weights)`), compute $y$ from $x$ `(B, T, D)` and
# `mask` as in the equations above.

# %% nbgrader={"grade": false, "grade_id": "block_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_block_forward(block, x, mask):
    """Pre-LayerNorm transformer block: returns y (B, T, D)."""
    ### BEGIN SOLUTION
    h = x + block.attn(block.ln1(x), mask)[0]
    return h + block.mlp(block.ln2(h))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "block_forward_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.transformer import check_block_forward

check_block_forward(my_block_forward)  # names: post-LN, no residuals, the MLP's input, one LayerNorm for both


# %% nbgrader={"grade": true, "grade_id": "block_forward_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.exercises.transformer import check_block_forward

check_block_forward(my_block_forward, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. A tiny GPT on the course's text, against an LSTM
#
# The corpus is the course's character corpus (`course_utils.data.text`; notebook 02's numpy
# char-RNN trains on it too), so losses compare across notebooks. Both models get **the same
# number of optimiser steps** on the same batches of 64-character windows, Adam at the same
# learning rate, and similar parameter counts. The training time is measured and printed
# beside the loss, but it is not the budget: on a busy or slower machine the run takes
# longer and reaches the same verdict. The validation loss (nats per character, on the last
# 10 % of the text) is measured along the way, its time not counted.
#
# Two yardsticks tell whether a model has learned anything beyond letter statistics: the
# validation cross-entropy of the **unigram** model (each character's frequency) and of the
# **bigram** model (the next character given only the current one), both counted on the
# training text. A model with a memory should end well below the bigram.
#
# Both train with `course_utils.shared.lm.train_lm`, the course's `fit` on random windows. The
# entry point `course_utils.transformer.train_char_lm(text, "gpt", steps=...)` takes any
# text: it builds the vocabulary, the split, the model and trains it — point it at another
# corpus and it runs unchanged.

# %%
text = load_corpus()
data = CharData.from_text(text)
print(f"{corpus_source()}: {len(text):,} characters, {data.vocab.size} distinct; "
      f"train {len(data.train):,}, validation {len(data.val):,}")
unigram, bigram = ngram_probabilities(data.train.numpy(), data.vocab.size)  # (V,), (V, V)
val_ids = data.val.numpy()
unigram_loss = -np.log(unigram[val_ids]).mean()
bigram_loss = -np.log(bigram[val_ids[:-1], val_ids[1:]]).mean()
print(f"validation loss of the unigram model {unigram_loss:.3f}, of the bigram model {bigram_loss:.3f} nats/char "
      f"(uniform guessing: {math.log(data.vocab.size):.3f})")

CONTEXT, STEPS = 64, 400
seed_everything(0)
gpt = TinyGPT(data.vocab.size, CONTEXT, d_model=64, n_heads=4, n_layers=2)
seed_everything(0)
lstm = RecurrentLM("lstm", data.vocab.size, embed_size=64, hidden_size=128)
models = {"tiny GPT": gpt, "LSTM": lstm}
initial_pos = models["tiny GPT"].pos.detach().cpu().clone()  # (CONTEXT, 64): the random table, for section 3's end
runs = {}
for name, model in models.items():
    seed_everything(0)
    model.to(device)
    runs[name] = train_lm(model, data, steps=STEPS, context=CONTEXT, batch_size=32, lr=3e-3, eval_every=40,
                          desc=name)
    r = runs[name]
    print(f"{name:9} {count_parameters(model):7,} parameters: {r.steps[-1]} steps in {r.seconds[-1]:.1f} s, "
          f"validation loss {r.val_losses[-1]:.3f} nats/char ({r.val_losses[-1] / math.log(2):.2f} bits)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for name, r in runs.items():
    axes[0].plot(r.steps, r.val_losses, "o-", ms=3, label=name)
    axes[1].plot(r.seconds, r.val_losses, "o-", ms=3, label=name)
axes[0].set_xlabel("optimiser step (the budget)")
axes[1].set_xlabel("training time on this machine (s)")
for ax in axes:
    ax.set_ylabel("validation loss (nats/char)")
    ax.axhline(unigram_loss, color="gray", ls=":", lw=0.8, label="unigram")
    ax.axhline(bigram_loss, color="gray", ls="--", lw=0.8, label="bigram")
    ax.legend()
axes[0].set_title("validation loss at equal steps")
axes[1].set_title("the same runs against time")
plt.tight_layout()
plt.show()
gpt_run, lstm_run = runs["tiny GPT"], runs["LSTM"]
gap = gpt_run.val_losses[-1] - lstm_run.val_losses[-1]
print(f"After {STEPS} steps each: tiny GPT {gpt_run.val_losses[-1]:.3f}, LSTM {lstm_run.val_losses[-1]:.3f} nats/char "
      f"(gap {gap:+.3f}); bigram {bigram_loss:.3f}. Steps per second on {device.type}: "
      f"{gpt_run.steps[-1] / gpt_run.seconds[-1]:.1f} (tiny GPT) vs {lstm_run.steps[-1] / lstm_run.seconds[-1]:.1f} (LSTM).")
# Both have learned far more than letter pairs:
assert max(gpt_run.val_losses[-1], lstm_run.val_losses[-1]) < bigram_loss - 0.3
# %% [markdown]
# **What this measurement supports.** At the same 400 steps, on the same batches and with
# about the same number of parameters, the LSTM reaches the lower validation loss, by the
# gap printed above; both end far below the bigram model. The curves have different shapes:
# the LSTM improves steadily from the start, while the tiny GPT starts slower and then drops
# fast, much faster than the LSTM over the last 80 steps (measured below). So this is a
# verdict about a short budget: a longer run could change the ranking, and this one does
# not tell. Initial weights and batches follow the seed; this notebook runs seed 0 only, so
# the gap has no error bar from other seeds. The steps per second depend on the machine and
# are printed only beside the losses.

# %%
gpt_drop = gpt_run.val_losses[-3] - gpt_run.val_losses[-1]  # over the last 80 steps
lstm_drop = lstm_run.val_losses[-3] - lstm_run.val_losses[-1]
print(f"validation loss gained over steps {gpt_run.steps[-3]}-{STEPS}: tiny GPT {gpt_drop:.3f}, LSTM {lstm_drop:.3f}")
assert gap > 0.02  # the LSTM is ahead at this budget
assert gpt_drop > 1.5 * lstm_drop  # ... and the tiny GPT is catching up fast

# %% [markdown]
# What both models have learned shows in samples (temperature 0.8). A rough measure of
# "looks like words": the share of the sample's words of three or more letters that occur
# in the training text, beside a sample of the bigram model (600 characters each):

# %%
train_words = set(re.findall(r"[A-Za-z]+", text[:len(data.train)]))


def real_word_share(sample):
    """The share of the sample's words of 3 or more letters that occur in the training text."""
    words = re.findall(r"[A-Za-z]{3,}", sample)
    return sum(w in train_words for w in words) / max(len(words), 1)


rng = np.random.default_rng(0)
bigram_ids = [int(data.vocab.encode("T")[0])]
for _ in range(600):
    bigram_ids.append(int(rng.choice(data.vocab.size, p=bigram[bigram_ids[-1]])))
word_share = {"bigram model": real_word_share(data.vocab.decode(bigram_ids))}
for name, model in models.items():
    sample = generate(model, data.vocab, "The ", 600, context=CONTEXT, temperature=0.8, seed=0)
    word_share[name] = real_word_share(sample)
    print(f"--- {name} ---")
    print(sample[:240])
print("share of sampled words that are words of the training text:",
      ", ".join(f"{name} {share:.0%}" for name, share in word_share.items()))
assert min(word_share["tiny GPT"], word_share["LSTM"]) > word_share["bigram model"] + 0.1

# %% [markdown]
# Both models spell real words among pronounceable inventions; the bigram model's letter
# pairs rarely make a word of three letters or more.

# %% [markdown]
# The tiny GPT used **learned** positions, initialised as small random numbers. What did its
# table learn in these steps? The cosine similarity of the vectors $p_t$ and $p_s$ after
# training, beside the table before training and the sinusoidal one of the same size:

# %%
learned = gpt.pos.detach().cpu()  # (CONTEXT, 64)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, (name, p) in zip(axes, (("learned, before training", initial_pos), ("learned, after training", learned),
                                ("sinusoidal", sinusoidal_positions(CONTEXT, 64))), strict=True):
    unit = p / p.norm(dim=1, keepdim=True)
    ax.imshow(unit @ unit.T, cmap="RdBu", vmin=-1, vmax=1)
    ax.set_title(f"cos(p_t, p_s): {name}")
    ax.set_xlabel("s")
    ax.set_ylabel("t")
plt.tight_layout()
plt.show()


def neighbour_similarity(p, shifts=(1, 2, 4, 8, 16, 32)):
    """Mean cosine similarity of p_t and p_(t+k) over t, for each shift k."""
    unit = p / p.norm(dim=1, keepdim=True)
    return torch.stack([(unit[:-k] * unit[k:]).sum(1).mean() for k in shifts])


near, near_before = neighbour_similarity(learned), neighbour_similarity(initial_pos)
print("mean cos(p_t, p_(t+k)) for k = 1, 2, 4, 8, 16, 32:")
print("  before training:", near_before.numpy().round(2))
print("  after training: ", near.numpy().round(2))

# %% [markdown]
# Before training the table is noise: vectors at every distance are nearly orthogonal. After
# training, neighbouring positions have similar vectors and the similarity falls with the
# distance $k$: the model has learned a smooth notion of "where" from the data alone, which
# the sinusoids have by construction. (What else the table holds, and how it would behave
# past the 64 positions it was trained on, this plot does not say.)

# %%
assert near_before.abs().max() < 0.2  # the random start: no structure
assert near[0] > 0.5 and near[0] > near[-1] + 0.5  # neighbours alike, distant positions not

# %% [markdown]
# ### A learning-rate schedule: warm-up, then decay
#
# The runs above kept Adam's learning rate fixed. Most transformers are trained with a
# **schedule**: a linear *warm-up* from a small rate to a peak $\eta_{\max}$ over the first
# $W$ steps (Adam's running averages of the gradient are still poor estimates then, and
# post-LN transformers can diverge without it), then a slow *decay*, here along a cosine that
# would reach 0 at $s = N$, one step after the last ($s = N - 1$, whose rate is small but not 0):
#
# $$\eta(s) = \eta_{\max}\,\frac{s + 1}{W} \quad (s < W), \qquad
#   \eta(s) = \eta_{\max}\,\tfrac12\Big(1 + \cos\big(\pi\,\tfrac{s - W}{N - W}\big)\Big) \quad (s \ge W),$$
#
# for optimiser steps $s = 0, 1, \dots, N - 1$ (`warmup_steps` $= W$, `peak_lr` $= \eta_{\max}$,
# `total_steps` $= N$). `course_utils.transformer.warmup_cosine_lr` computes it:

# %%
N_SCHEDULE, W_SCHEDULE, PEAK = STEPS, 40, 3e-3
lrs = [warmup_cosine_lr(s, W_SCHEDULE, PEAK, N_SCHEDULE) for s in range(N_SCHEDULE)]
fig, ax = plt.subplots(figsize=(5.5, 3))
ax.plot(lrs)
ax.axvline(W_SCHEDULE - 1, color="gray", ls=":", lw=0.8, label=f"end of warm-up (step {W_SCHEDULE - 1})")
ax.set_xlabel("optimiser step s")
ax.set_ylabel("learning rate")
ax.legend()
plt.show()
print(f"step 0: {lrs[0]:.2e}, step {W_SCHEDULE - 1}: {lrs[W_SCHEDULE - 1]:.2e}, last step: {lrs[-1]:.2e}")
assert lrs[0] > 0 and math.isclose(lrs[W_SCHEDULE - 1], PEAK) and 0 < lrs[-1] < 1e-3 * PEAK
assert all(a > b for a, b in zip(lrs[W_SCHEDULE:], lrs[W_SCHEDULE + 1:], strict=False))  # decays every step

# %% [markdown]
# ### Exercise 3 (2 points, about 10 minutes): warm-up and cosine decay
#
# Write `my_warmup_cosine_lr(step, warmup_steps, peak_lr, total_steps)`, the learning rate
# $\eta(s)$ of the formula above as a Python number. Mind step 0: its rate must not be 0
# (that step would be wasted), and the peak is reached at step $W - 1$.

# %% nbgrader={"grade": false, "grade_id": "warmup_cosine_lr", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_warmup_cosine_lr(step, warmup_steps, peak_lr, total_steps):
    """Learning rate of optimiser step `step` (0-based): linear warm-up, then cosine decay to 0."""
    ### BEGIN SOLUTION
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return peak_lr * 0.5 * (1 + math.cos(math.pi * progress))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "warmup_cosine_lr_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.transformer import check_warmup_cosine_lr

check_warmup_cosine_lr(my_warmup_cosine_lr)  # names: lr 0 at step 0, no decay, cosine from step 0, below 0, linear


# %% nbgrader={"grade": true, "grade_id": "warmup_cosine_lr_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_warmup_cosine_lr(my_warmup_cosine_lr, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4 (2 points, about 15 minutes): a training recipe for 200 steps
#
# Section 3 trained with Adam at a fixed learning rate of 0.003 for 400 steps. Now a smaller
# tiny GPT (2 layers, $D = 48$, 4 heads, context 32) gets only **200** AdamW steps (weight
# decay 0.01, batches of 32 windows of the same text) under the schedule of exercise 3, and
# must reach a validation loss below **2.20** nats per character. Choose
#
# - `warmup_steps`: $W$, a whole number from 0 (no warm-up) to 200,
# - `peak_lr`: $\eta_{\max}$, the rate at the end of the warm-up, in $(0, 1]$.
#
# **Why 2.20.** The bigram model of section 3, a smoothed count estimate, is a strong model
# that looks only at the current character. On the validation windows the check scores (computed below for the
# visible and the hidden tests) it sits more than 0.1 nats above the target, so a model that
# has learned only which letter follows which fails; passing takes what attention is for,
# context beyond the current character.
#
# The check trains the model with your recipe (a few seconds) and says which validation
# loss it reached, how far that is from the target and whether it beats the bigram model at
# all; the hidden tests train again from other random starts on other windows, so aim with
# some margin. Too small a peak leaves the model under-trained after 200 steps (no better
# than the bigram model, or not by enough), too large a peak overshoots: find the range that
# works, and try whether the length of the warm-up moves its upper end.

# %%
check_bigram = {seed: recipe_bigram_loss(seed=seed) for seed in (0, 1, 2)}  # the visible and hidden tests' windows
print(f"target {RECIPE_CHALLENGE['target']}; the bigram model on the check's validation windows: "
      + ", ".join(f"{loss:.3f} (seed {seed})" for seed, loss in check_bigram.items())
      + f"; on the whole validation text {bigram_loss:.3f}")
assert RECIPE_CHALLENGE["target"] < min(check_bigram.values()) - 0.1  # letter pairs alone cannot pass

# %% nbgrader={"grade": false, "grade_id": "training_recipe", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_training_recipe():
    """{"warmup_steps": int, "peak_lr": float} for 200 AdamW steps of a small TinyGPT."""
    ### BEGIN SOLUTION
    return {"warmup_steps": 10, "peak_lr": 2e-2}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "training_recipe_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.transformer import check_training_recipe

check_training_recipe(my_training_recipe())  # trains with your recipe; says how far from the target you are


# %% nbgrader={"grade": true, "grade_id": "training_recipe_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_training_recipe(my_training_recipe(), seed=1)
check_training_recipe(my_training_recipe(), seed=2)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Sequential against parallel: time per step and sequence length
#
# An RNN must compute $h_1, h_2, \dots$ one after another: $T$ dependent steps. A
# transformer layer handles all $T$ positions in a few large matrix products, but its
# attention compares all $T^2$ pairs. Time one training step (forward and backward, batch
# 8) of a 2-layer transformer and of an LSTM, both with $D = 64$, against $T$.
#
# A busy machine (another notebook running beside this one, say) takes turns with us on the
# cores, and the wall clock of a long run stretches more than that of a short one, which it
# interrupts less often. So on the CPU, `course_utils.shared.timing.seconds` reads this process's
# **CPU time**, which other programs do not stretch (with one PyTorch thread, the course's
# default, it equals the wall clock of an idle machine; on a GPU it waits for the device and
# reads the wall clock). On top of that, every (model, $T$) pair is timed in each of 3
# rounds, the rounds interleaved, and the fastest of the 3 is kept.

# %%
def step_seconds(model, T, batch=8):
    """Seconds for one forward and backward pass of `model` on a random (batch, T) batch."""
    ids = torch.randint(0, data.vocab.size, (batch, T), device=device)
    took = seconds(lambda: model(ids).float().logsumexp(-1).mean().backward(), device)
    model.zero_grad(set_to_none=True)
    return took


lengths = [32, 64, 128, 256, 512]
MAX_T = 1024  # section 5 goes further
ROUNDS = 3
seed_everything(0)
timing = {"transformer": TinyGPT(data.vocab.size, MAX_T, d_model=64, n_heads=4, n_layers=2).to(device),
          "LSTM": RecurrentLM("lstm", data.vocab.size, embed_size=64, hidden_size=64, num_layers=2).to(device)}
step_times = {name: {T: [] for T in lengths} for name in timing}  # name -> T -> one time per round
for r in range(ROUNDS + 1):  # round 0 warms up and is not kept
    for T in lengths if r % 2 else lengths[::-1]:  # alternate the order of the lengths too
        for name, m in timing.items():
            took = step_seconds(m, T)
            if r:
                step_times[name][T].append(took)
step_ms = {name: [1000 * min(step_times[name][T]) for T in lengths] for name in timing}  # fastest round
for name, ms in step_ms.items():
    print(f"{name:11}", "  ".join(f"T={T}: {t:6.1f} ms" for T, t in zip(lengths, ms, strict=True)))
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for name, ms in step_ms.items():
    ax.loglog(lengths, ms, "o-", label=name)
ax.set_xlabel("sequence length T")
ax.set_ylabel("ms per training step")
ax.legend()
plt.show()
ratio = {name: ms[-1] / ms[0] for name, ms in step_ms.items()}
print(f"From T={lengths[0]} to T={lengths[-1]} ({lengths[-1] // lengths[0]}x longer) the step time grows "
      f"{ratio['LSTM']:.1f}x for the LSTM and {ratio['transformer']:.1f}x for the transformer "
      f"on {device.type} ({clock_name(device)}).")

# %% [markdown]
# If attention's $T^2$ were all of the cost, a 16 times longer sequence would cost 256 times
# more; the transformer's step time grew less (printed above). Count one layer's
# multiply-adds per sequence in the forward pass: the projections Q, K, V and the output cost
# $4TD^2$, the MLP $8TD^2$, both linear in $T$; attention's two $T \times T$ products,
# $QK^\top$ and the weights times $V$, cost $2T^2D$. The quadratic term equals the linear ones
# only at $2T^2D = 12TD^2$, that is $T = 6D$ for $D = 64$ (the read-out to the vocabulary,
# linear too, pushes it further). At most of the lengths plotted the linear terms do most of
# the arithmetic, and at small $T$ the fixed cost of each of the model's many small
# operations adds to them: the plot mixes the linear regime with the start of the quadratic
# one, and its slope stays below 2. (The softmax, the mask and their gradients over the
# $T \times T$ scores move memory that a count of multiply-adds leaves out, so on a CPU the
# last doubling can already cost more than 4 times.) The count of multiply-adds is the same on
# every machine; the measured slope is this machine's (CPU time, fastest of three rounds, so
# other programs on the machine move it little), and it stays clearly below 2.

# %%
D_T, L_T, V = 64, 2, data.vocab.size
macs = []  # multiply-adds of one forward pass per sequence, by T
for T in lengths:
    linear = L_T * 12 * T * D_T**2 + T * D_T * V  # projections, MLPs and read-out
    quadratic = L_T * 2 * T**2 * D_T  # Q K^T and weights @ V
    macs.append(linear + quadratic)
    print(f"T = {T:3d}: attention's T^2 products are {quadratic / (linear + quadratic):4.0%} of the multiply-adds")
print(f"equal shares of the two terms per layer at T = 6D = {6 * D_T}")
span = math.log(lengths[-1] / lengths[0])
mac_slope = math.log(macs[-1] / macs[0]) / span
time_slope = math.log(ratio["transformer"]) / span
print(f"log-log slope from T={lengths[0]} to {lengths[-1]} (2 would be quadratic): multiply-adds {mac_slope:.2f}, "
      f"measured step time {time_slope:.2f}")
assert mac_slope < 1.6  # the count: not yet quadratic over the range
assert time_slope < 1.85  # the clock agrees, with room for a busy machine

# %% [markdown]
# ## 5. The price: attention memory grows as $T^2$
#
# What a training step holds in memory is, above all, what its forward pass saves for the
# backward pass: the inputs of every matrix product, the softmax's output, the LSTM's gates at
# every step. `course_utils.transformer.saved_activation_bytes` measures it: it runs a
# forward and backward pass under `torch.autograd.graph.saved_tensors_hooks`, which is
# shown every tensor autograd saves, and adds up the distinct storages (the parameters left
# out: they are there whether we train or not). Change the model and the number changes; it
# is not a formula. The two models of section 4, on one sequence, for $T$ up to 1024:

# %%
def step_bytes(model, T):
    """Bytes saved for the backward pass of one training step on one sequence of length T."""
    ids = torch.randint(0, data.vocab.size, (1, T), device=device)

    def loss_fn():
        return F.cross_entropy(model(ids).flatten(0, 1), ids.flatten())

    saved = saved_activation_bytes(loss_fn, exclude=model.parameters())
    model.zero_grad(set_to_none=True)
    return saved


mem_lengths = np.array([16, 32, 64, 128, 256, 512, MAX_T])
seed_everything(0)
mem = {name: np.array([step_bytes(m, int(T)) for T in mem_lengths], dtype=float) for name, m in timing.items()}
# The transformer's bytes as c + a T + b T^2 (least squares on relative errors): where does b T^2 pass a T?
A = np.stack([np.ones_like(mem_lengths), mem_lengths, mem_lengths**2], axis=1).astype(float)  # (n, 3)
c, a, b = np.linalg.lstsq(A / mem["transformer"][:, None], np.ones(len(mem_lengths)), rcond=None)[0]
crossover = a / b
for i, T in enumerate(mem_lengths):
    print(f"T = {T:4d}: transformer {mem['transformer'][i] / 2**20:7.2f} MiB, LSTM {mem['LSTM'][i] / 2**20:6.2f} MiB")
print(f"transformer fit: {a:,.0f} bytes per position + {b:.1f} bytes per pair of positions; the pairs take over "
      f"at T = a / b = {crossover:.0f}")
fig, ax = plt.subplots(figsize=(6, 3.6))
for name, m in mem.items():
    ax.loglog(mem_lengths, m / 2**20, "o-", label=f"{name} (measured)")
ax.loglog(mem_lengths, (c + a * mem_lengths) / 2**20, ":", color="gray", label="transformer: c + aT part")
ax.loglog(mem_lengths, b * mem_lengths**2 / 2**20, "--", color="gray", label="transformer: bT² part")
ax.axvline(crossover, color="gray", lw=0.8)
ax.set_xlabel("sequence length T")
ax.set_ylabel("MiB saved for backward")
ax.set_title("memory of one training step")
ax.legend(fontsize=8)
plt.show()
def loglog_slopes(lengths, values):
    """The slope of log(values) against log(lengths) between neighbouring lengths: 1 linear, 2 quadratic."""
    return np.diff(np.log(values)) / np.diff(np.log(lengths))


slopes = {name: loglog_slopes(mem_lengths, m) for name, m in mem.items()}
for name, s in slopes.items():
    print(f"{name:11} log-log slope per doubling of T:", s.round(2))

# %% [markdown]
# The LSTM's memory grows as $T$ at every length (slope 1): it saves its gates and states
# once per step. The transformer's grows as $T$ while $T$ is small and bends towards $T^2$
# (slope 2) once the $T \times T$ terms take over, at the crossover printed above. Per layer
# and head, the step saves two $T \times T$ float tensors (the softmax's output, and the
# weights that multiply $V$ after the fully-masked rows are cleaned of NaN) plus one $T \times T$
# boolean mask per layer: $b = 2\,(2 \cdot 4 \cdot 4 + 1) = 66$ bytes per pair of positions
# for 2 layers, 4 heads and batch 1, which the fit recovers. Memory reaches its quadratic
# regime much earlier than time: each position saves a few thousand bytes, each pair only
# $b$, but the time per pair ($2D$ multiply-adds per layer) is small against the time per
# position ($12D^2$).

# %%
hand_b = L_T * (2 * 4 * 4 + 1)  # layers x (2 float tensors x 4 heads x 4 bytes + 1 bool), batch 1
print(f"fitted b = {b:.2f} bytes per pair, counted by hand {hand_b}")
assert abs(b - hand_b) < 0.05 * hand_b
assert slopes["transformer"][0] < 1.4 and slopes["transformer"][-1] > 1.7  # linear at first, then quadratic
assert np.all(np.abs(slopes["LSTM"][2:] - 1) < 0.1)  # linear throughout (the first steps carry a constant)
assert 64 < crossover < 256
print(f"At T = 8192 the T x T terms alone would need b * 8192^2 = {hand_b * 8192**2 / 2**30:.1f} GiB")

# %% [markdown]
# At $T = 8192$ the $T \times T$ terms alone would take $b \cdot 8192^2$ bytes (printed above)
# for this tiny model on one sequence, while the LSTM's memory would grow 8 times from
# $T = 1024$. This is the motivation for fused
# kernels that never store the $T \times T$ matrix (FlashAttention, behind
# `F.scaled_dot_product_attention`) and for the linear-time recurrent models of notebook 09.
# (Transformers are often said to "handle long sequences much more efficiently";
# per step they are more parallel, but their memory in $T$ is quadratic, as measured here.)
#
# ## 6. Attention without the $T \times T$ matrix: online softmax and tiling
#
# The $T \times T$ terms are the scores and the softmax's weights. Softmax seems to need both
# whole: each weight $e^{s_j - m} / \ell$ uses the row's max $m$ and its sum
# $\ell = \sum_j e^{s_j - m}$ over all keys. The **online softmax** (Milakov & Gimelshein
# 2018) finds $m$ and $\ell$ in one pass: read the scores in order, keep the running max $m$
# and the running sum $\ell$ relative to it, and when a new max $m'$ arrives, rescale the old
# sum, $\ell \leftarrow \ell\, e^{m - m'} + e^{s_j - m'}$. `online_softmax` does this one
# column at a time, then writes $e^{s - m} / \ell$:

# %%
scores = torch.randn(6, 50, dtype=torch.float64) * 10
scores[0, :7] = float("-inf")  # a masked start: the running max begins at -inf
gap = (online_softmax(scores) - torch.softmax(scores, dim=-1)).abs().max().item()
print(f"online softmax against torch.softmax, float64: largest difference {gap:.1e}")
assert gap < 1e-14

# %% [markdown]
# Attention needs the weights only to average the values, so the same trick carries an
# accumulator: for each query row keep $(m, \ell, \mathit{acc})$ with
# $\mathit{acc} = \sum_j e^{s_j - m} v_j$. A block of keys with scores $S$ (one row per query)
# and values $V$ updates them as
#
# $$m' = \max(m, \max_j S_j),\quad p = e^{S - m'},\quad
# \ell' = \ell\, e^{m - m'} + \textstyle\sum_j p_j,\quad
# \mathit{acc}' = \mathit{acc}\, e^{m - m'} + p V,$$
#
# starting from $m = -\infty$, $\ell = 0$, $\mathit{acc} = 0$; after the last block the output is
# $\mathit{acc} / \ell$. Looping this over blocks of keys is FlashAttention's idea (Dao et al.
# 2022): exact attention, with only a $T \times \text{block}$ piece of the scores at a time.
#
# ### Exercise 5 (2 points, about 15 minutes): the online-softmax update
#
# Write `my_online_softmax_update(m, total, acc, scores, v)`, returning the new
# `(m, total, acc)` (`total` is $\ell$). Shapes: `m`, `total` `(Tq, 1)`, `acc` `(Tq, d_v)`,
# `scores` `(Tq, Bk)` for one block (`-inf` where masked), `v` `(Bk, d_v)`. A row whose scores
# are all `-inf` so far (nothing seen yet, or fully masked) must keep $m = -\infty$,
# $\ell = 0$, $\mathit{acc} = 0$ without producing NaN. (Hint: `torch.maximum`,
# `amax(dim=-1, keepdim=True)`, `torch.where(torch.isneginf(...), ...)`.)

# %% nbgrader={"grade": false, "grade_id": "online_softmax_update", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_online_softmax_update(m, total, acc, scores, v):
    """Fold one block of keys into the running (m, total, acc) of each query row; return the new three."""
    ### BEGIN SOLUTION
    m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))  # (Tq, 1)
    shift = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)  # no -inf - (-inf)
    rescale = torch.exp(m - shift)  # (Tq, 1), e^(m - m'); 0 while m = -inf
    p = torch.exp(scores - shift)  # (Tq, Bk)
    return m_new, total * rescale + p.sum(dim=-1, keepdim=True), acc * rescale + p @ v
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "online_softmax_update_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.transformer import check_online_softmax_update

check_online_softmax_update(my_online_softmax_update)  # names: a sum or acc not rescaled, NaN on masked rows, ...


# %% nbgrader={"grade": true, "grade_id": "online_softmax_update_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_online_softmax_update(my_online_softmax_update, seed=1)
check_online_softmax_update(my_online_softmax_update, seed=2)
### END HIDDEN TESTS

# %% [markdown]
# `tiled_attention` loops the course's update (`online_softmax_update`) over blocks of 64
# keys, with the causal mask applied inside each block. It equals full attention, here
# `F.scaled_dot_product_attention` and the course's `full_attention`, to rounding: about
# $10^{-16}$ in float64, $10^{-7}$ in float32 (sequence lengths that are not a multiple of
# the block included).

# %%
for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
    for T, causal in ((200, True), (200, False), (77, True)):
        q, k, v = (torch.randn(1, 4, T, 16, dtype=dtype) for _ in range(3))  # 4 heads of 16, as the tiny GPT
        reference = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        gaps = [(out - reference).abs().max().item() for out in
                (tiled_attention(q, k, v, causal=causal, block=64), full_attention(q, k, v, causal=causal))]
        print(f"{str(dtype):13} T = {T:3d}, causal {causal!s:5}: tiled {gaps[0]:.1e}, full {gaps[1]:.1e}")
        assert max(gaps) < tol

# %% [markdown]
# What did the tiling save? `PeakBytes` counts, from their shapes, the bytes that each
# method's intermediates hold at once (inputs and output, the same for both, left out): the
# scores and weights, $2 \cdot 4 \cdot T^2 \cdot 4$ bytes for the 4 heads of one layer of the
# tiny GPT, against the running state plus one block's scores and exponentials. This is a
# count, not a reading of the process's memory; it is drawn beside section 5's measured curve.

# %%
BLOCK = 64
peak = {"full attention": [], "tiled attention": []}
for T in mem_lengths:
    q = torch.randn(1, 4, int(T), 16)  # one layer of the tiny GPT: batch 1, 4 heads of 16
    for name, fn in (("full attention", full_attention), ("tiled attention", tiled_attention)):
        meter = PeakBytes()
        fn(q, q, q, causal=True, meter=meter, **({"block": BLOCK} if name.startswith("tiled") else {}))
        peak[name].append(meter.peak)
peak = {name: np.array(p, dtype=float) for name, p in peak.items()}
for i, T in enumerate(mem_lengths):
    print(f"T = {T:4d}: full {peak['full attention'][i] / 2**20:7.3f} MiB, "
          f"tiled {peak['tiled attention'][i] / 2**20:6.3f} MiB")
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.loglog(mem_lengths, mem["transformer"] / 2**20, "o-", color="gray", label="section 5: training step (measured)")
ax.loglog(mem_lengths, b * mem_lengths**2 / 2**20, "--", color="gray", label="section 5: bT² part")
for name, p in peak.items():
    ax.loglog(mem_lengths, p / 2**20, "s-", label=f"{name}, one layer (counted)")
ax.set_xlabel("sequence length T")
ax.set_ylabel("MiB")
ax.set_title("attention's intermediates: full against tiled")
ax.legend(fontsize=8)
plt.show()
peak_slopes = {name: loglog_slopes(mem_lengths, p) for name, p in peak.items()}
for name, s in peak_slopes.items():
    print(f"{name:15} log-log slope per doubling of T:", s.round(2))
assert np.array_equal(peak["full attention"], 2 * 4 * 4 * mem_lengths.astype(float) ** 2)  # O(T^2), by hand
assert np.allclose(peak_slopes["full attention"], 2)
assert np.allclose(peak_slopes["tiled attention"][mem_lengths[1:] > BLOCK], 1)  # O(T x block) once T > block
saved_at_max = peak["full attention"][-1] / peak["tiled attention"][-1]
print(f"at T = {MAX_T}: full attention holds {saved_at_max:.1f} times the tiled version's bytes")
assert saved_at_max > 5

# %% [markdown]
# Full attention's intermediates grow as $T^2$ (slope 2; $32$ bytes per pair of positions,
# section 5's $b$ for one layer less the boolean mask), the tiled version's as $T \times$
# block (slope 1 once $T$ passes the block; below it a block is the whole row, and the running
# state comes on top, so tiling short sequences saves nothing). Two limits to this picture. First, these are the
# forward pass's intermediates: under autograd, each block's exponentials are saved for the
# backward pass, so a training step would again save $T^2$ numbers (checked below);
# FlashAttention instead keeps only $(m, \ell)$ per row and recomputes the blocks in its
# backward pass. Second, tiling does the same arithmetic as full attention (the multiply-adds
# are counted below), so on a CPU with PyTorch operations it saves memory, not time: each
# block is a separate call, and the loop adds Python overhead. FlashAttention's speed comes
# from fusing the loop into one GPU kernel that keeps the tiles in fast on-chip memory
# (SRAM), so the $T \times T$ matrix never travels to the GPU's main memory.

# %%
def saved_by_tiled(T):
    """Bytes autograd saves for backward through tiled_attention at length T (4 heads of 16, batch 1)."""
    q = torch.randn(1, 4, T, 16, requires_grad=True)
    return saved_activation_bytes(lambda: tiled_attention(q, q, q, causal=True, block=BLOCK).sum(), exclude=[q])


growth = saved_by_tiled(512) / saved_by_tiled(256)
print(f"saved for backward through tiled attention: x{growth:.2f} when T doubles (4 would be T^2)")
assert growth > 3.5
T = 1000
full_macs = 2 * T * T * 16  # q k^T and weights @ v, per head
tiled_macs = sum(2 * T * min(BLOCK, T - start) * 16 for start in range(0, T, BLOCK))
print(f"multiply-adds per head at T = {T}: full {full_macs:,}, tiled {tiled_macs:,}")
assert full_macs == tiled_macs

# %% [markdown]
# ## Summary
#
# - Self-attention is permutation-equivariant; positional encodings (fixed sinusoids or a
#   learned table) add the order.
# - A warm-up then cosine-decay schedule starts every run at a small non-zero rate, peaks
#   after $W$ steps and decays to 0 (plotted above). Exercise 4 asks you to choose $W$ and
#   the peak rate; its check says whether a miss looks under-trained (rate too small) or
#   overshooting (too large).
# - A pre-LN block: $h = x + \operatorname{MHA}(\operatorname{LN}(x))$,
#   $y = h + \operatorname{MLP}(\operatorname{LN}(h))$; a tiny GPT stacks them under a causal mask.
# - At equal steps (400) and similar size, the LSTM reached the lower validation loss on the
#   course's text, both far below the bigram model; the tiny GPT's loss was still falling
#   faster, so the ranking at larger budgets is open. The entry point trains on any text.
# - A learned position table starts as noise and learns that neighbouring positions are
#   alike, a smooth sense of order the sinusoids have by construction.
# - The LSTM's step is sequential in $T$, the transformer's parallel. The memory a training
#   step saves for backward, measured: linear in $T$ for the LSTM; for the transformer linear
#   at first and quadratic past a crossover between 64 and 256 positions, while its step
#   time over the same range is not yet quadratic (the arithmetic's crossover is at $T = 6D$).
# - The online softmax keeps a running max $m$ and sum $\ell$, rescaling by $e^{m - m'}$ when
#   the max grows; carried with an accumulator over blocks of keys, it gives attention equal
#   to full attention (float64 and float32), with intermediates that grow as $T \times$ block
#   instead of $T^2$. Same arithmetic: a saving in memory, not in time, unless the loop is a
#   fused kernel (FlashAttention). Exercise 5 is the update step.
#
# Next: **08b · The encoder-decoder transformer**: the same blocks with cross-attention, an
# encoder reading one sequence and a decoder writing another.

# %%
report_run_time()
