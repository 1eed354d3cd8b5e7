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
# # 07 · Self-attention and multi-head attention
#
# **Objectives.** By the end of this notebook you will be able to
# 1. compute $Q = XW_Q$, $K = XW_K$, $V = XW_V$ and
#    $\operatorname{softmax}(QK^\top/\sqrt{d_k})\,V$ from scratch;
# 2. explain, with numbers, why the scores are divided by $\sqrt{d_k}$;
# 3. see causal attention as an average of the past (a lower-triangular matrix) whose
#    weights depend on the data, and build causal and padding masks and check what they hide;
# 4. write multi-head attention and match `torch.nn.MultiheadAttention` and
#    `torch.nn.functional.scaled_dot_product_attention` to rounding error;
# 5. train one layer of causal self-attention on the course's text.
#
# The helpers live in `course_utils/self_attention.py`.

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

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from course_utils import (
    check_close,
    fit,
    plot_losses,
    report_run_time,
    seed_everything,
    start_notebook,
    tolerance,
)
from course_utils.data.text import CharVocab, load_corpus
from course_utils.self_attention import (
    MultiHeadAttention,
    OneLayerAttentionLM,
    average_past_loop,
    causal_mask,
    mean_weight_by_offset,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)
from course_utils.shared.lm import lm_batches, next_token_loss

device = start_notebook()

# %% [markdown]
# ## 1. From attention in seq2seq to self-attention
#
# In notebook 06 a decoder state asked the encoder states where to look. In
# **self-attention** every position of one sequence asks every position of the *same*
# sequence. Each token $x_t$ (a row of $X \in \mathbb{R}^{T \times D}$) plays three roles,
# through three learned matrices: a query ("what am I looking for?"), a key ("what do I
# contain?") and a value ("what do I pass on?"):
#
# $$Q = XW_Q,\quad K = XW_K,\quad V = XW_V,\qquad
#   \operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\Big(\frac{QK^\top}{\sqrt{d_k}}\Big)V .$$
#
# The score of query $t$ and key $s$ is the dot product $q_t \cdot k_s$ — notebook 06's
# dot-product scoring — and every row of the softmax sums to 1. No recurrence: all $T$
# outputs come from a few matrix products, computed in parallel.

# %%
seed_everything(0)
T, D, d_k = 5, 8, 4
X = torch.randn(T, D)  # (T, D): five tokens
W_Q, W_K, W_V = (torch.randn(D, d_k) / D**0.5 for _ in range(3))  # (D, d_k) each
Q, K, V = X @ W_Q, X @ W_K, X @ W_V  # (T, d_k) each
scores = Q @ K.T / math.sqrt(d_k)  # (T, T): scores[t, s] = q_t . k_s / sqrt(d_k)
A = torch.softmax(scores, dim=-1)  # (T, T), rows sum to 1
out = A @ V  # (T, d_k): each output is a weighted average of the values
print("attention weights (row t: how much query t takes from each position):")
print(A.numpy().round(3))
print("row sums:", A.sum(-1).numpy().round(6))

# %% [markdown]
# The same in `course_utils.self_attention.scaled_dot_product_attention`, which works on any
# leading batch axes, checked against PyTorch's fused kernel:

# %%
ours, weights = scaled_dot_product_attention(Q, K, V)
check_close("hand-written vs course_utils", ours, out)
reference = F.scaled_dot_product_attention(Q[None], K[None], V[None])[0]
check_close("course_utils vs F.scaled_dot_product_attention", ours, reference)

# %% [markdown]
# ### The same step from the other side: averaging the past
#
# Andrej Karpathy's "Let's build GPT: from scratch, in code, spelled out" reaches
# self-attention from the other end, with no queries or keys at all. Let a position gather
# what came before it in the crudest way: the **mean of itself and every earlier position**,
# $\bar x_t = \frac{1}{t+1}\sum_{s \le t} x_s$ (positions counted from 0). Three ways to compute
# it, each checked against the one before:
#
# 1. a loop over positions (`average_past_loop`);
# 2. one matrix product: the lower-triangular matrix of ones, each row divided by its sum,
#    times $X$ (row $t$ holds $1/(t+1)$ in its first $t+1$ places);
# 3. a softmax of a $T \times T$ matrix of **zeros** with $-\infty$ above the diagonal:
#    $e^0 = 1$ on and below it, $e^{-\infty} = 0$ above, and the softmax's division makes
#    the rows the same $1/(t+1)$.

# %%
seed_everything(0)
T_avg, C = 6, 3
x_avg = torch.randn(T_avg, C)  # (T, C)
by_loop = average_past_loop(x_avg)  # (T, C)
tril = torch.tril(torch.ones(T_avg, T_avg))  # (T, T): 1 where s <= t
by_matmul = (tril / tril.sum(dim=-1, keepdim=True)) @ x_avg  # (T, T) @ (T, C)
zeros = torch.zeros(T_avg, T_avg).masked_fill(~causal_mask(T_avg), float("-inf"))  # (T, T)
by_softmax = torch.softmax(zeros, dim=-1) @ x_avg
rtol, atol = tolerance(torch.float32)
check_close("loop vs tril / row sums", by_matmul, by_loop, rtol=rtol, atol=atol)
check_close("tril / row sums vs softmax of masked zeros", by_softmax, by_matmul, rtol=rtol, atol=atol)
print("softmax of the masked zeros (the averaging weights):")
print(torch.softmax(zeros, dim=-1).numpy().round(3))

# %% [markdown]
# The zeros are scores: every earlier position is equally interesting to every query. Put
# **data-dependent scores** in their place, $QK^\top/\sqrt{d_k}$ from this section's five
# tokens, keep the $-\infty$ above the diagonal, and the weighted average is no longer
# uniform: that is **causal self-attention** (section 3 looks closer at masks). The
# hand-made version must equal `scaled_dot_product_attention` with `causal_mask`, and
# PyTorch's `is_causal=True`:

# %%
T = Q.shape[0]
masked_scores = (Q @ K.T / math.sqrt(d_k)).masked_fill(~causal_mask(T), float("-inf"))  # (T, T)
causal_weights = torch.softmax(masked_scores, dim=-1)
by_hand = causal_weights @ V  # (T, d_k)
ours_causal, _ = scaled_dot_product_attention(Q, K, V, causal_mask(T))
check_close("masked scores + softmax vs course_utils, causal", by_hand, ours_causal)
check_close("vs F.scaled_dot_product_attention(is_causal=True)", by_hand,
            F.scaled_dot_product_attention(Q[None], K[None], V[None], is_causal=True)[0])
uniform = torch.softmax(zeros[:T, :T], dim=-1)  # (T, T): the plain average of the past
print("causal attention weights (row t: how much query t takes from positions 0..t):")
print(causal_weights.numpy().round(3))
print(f"largest change from the plain average: {(causal_weights - uniform).abs().max():.3f}")
assert (causal_weights.triu(1) == 0).all() and (causal_weights - uniform).abs().max() > 0.05

# %% [markdown]
# ## 2. Why divide by $\sqrt{d_k}$?
#
# If the components of $q$ and $k$ are independent with mean 0 and variance 1, then
# $q \cdot k = \sum_{i=1}^{d_k} q_i k_i$ is a sum of $d_k$ terms of variance 1: its
# variance is $d_k$ and its spread $\sqrt{d_k}$. Already at $d_k = 64$ (the head size of
# the original transformer) typical scores differ by several units, and a softmax over such
# scores puts most of its weight on one key: it *saturates*, and its gradient shrinks.
# Dividing by $\sqrt{d_k}$ brings the variance back to 1 for every $d_k$. Measured:

# %%
seed_everything(0)
dims = [4, 16, 64, 256, 1024]
n_keys, n_samples = 16, 2000
rows = []
for dk in dims:
    q = torch.randn(n_samples, 1, dk)
    k = torch.randn(n_samples, n_keys, dk)
    raw = (q @ k.transpose(1, 2))[:, 0]  # (n_samples, n_keys)
    row = {"d_k": dk, "var_raw": raw.var().item(), "var_scaled": (raw / math.sqrt(dk)).var().item()}
    for name, s in (("raw", raw), ("scaled", raw / math.sqrt(dk))):
        s = s.clone().requires_grad_()
        p = torch.softmax(s, dim=-1)
        row[f"max_w_{name}"] = p.max(-1).values.mean().item()
        # How much can the scores still move the output? Gradient of a random projection.
        (p * torch.randn_like(p)).sum().backward()
        row[f"grad_{name}"] = s.grad.norm(dim=-1).mean().item()
    rows.append(row)
print(f"{'d_k':>5} {'var(q.k)':>9} {'var/d_k':>8} {'var scaled':>10} {'max weight raw':>15} "
      f"{'scaled':>7} {'|grad| raw':>11} {'scaled':>7}")
for r in rows:
    print(f"{r['d_k']:5d} {r['var_raw']:9.1f} {r['var_raw'] / r['d_k']:8.3f} {r['var_scaled']:10.3f} "
          f"{r['max_w_raw']:15.3f} {r['max_w_scaled']:7.3f} {r['grad_raw']:11.4f} {r['grad_scaled']:7.4f}")
assert all(0.9 < r["var_raw"] / r["d_k"] < 1.1 for r in rows), "var(q.k) should be close to d_k"

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for name, style in (("raw", "o-"), ("scaled", "s--")):
    label = "q.k" if name == "raw" else "q.k / sqrt(d_k)"
    axes[0].plot(dims, [r[f"max_w_{name}"] for r in rows], style, label=label)
    axes[1].plot(dims, [r[f"grad_{name}"] for r in rows], style, label=label)
axes[0].axhline(1 / n_keys, color="gray", lw=0.8, ls=":", label=f"uniform (1/{n_keys})")
axes[0].set_ylabel("mean largest softmax weight")
axes[1].set_ylabel("mean |gradient| w.r.t. scores")
for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("d_k")
    ax.legend()
plt.tight_layout()
plt.show()
first, last = rows[0], rows[-1]
print(f"Unscaled, the largest of {n_keys} weights grows from {first['max_w_raw']:.2f} (d_k={first['d_k']}) "
      f"to {last['max_w_raw']:.2f} (d_k={last['d_k']}), and the gradient shrinks from {first['grad_raw']:.3f} "
      f"to {last['grad_raw']:.4f}; scaled, they stay near {last['max_w_scaled']:.2f} and {last['grad_scaled']:.3f}.")

# %% [markdown]
# ## 3. Masks: what a query may not see
#
# A mask is a boolean matrix, `True` where query $t$ may look at key $s$; the others get
# score $-\infty$ before the softmax, hence weight exactly 0.
#
# - **Causal mask** (a language model must not read the future): $t$ sees $s \le t$, a
#   lower-triangular matrix.
# - **Padding mask** (sequences of different lengths in one batch): no query looks at
#   padding keys.
#
# The two combine with a logical *and*. (Careful when comparing with PyTorch:
# `torch.nn.MultiheadAttention` takes the opposite convention, `True` = *masked*, while
# `F.scaled_dot_product_attention` takes `True` = *may attend*, like us.) PyTorch also
# accepts float masks of $0$ and $-\infty$, added to the scores; the course's helpers take
# bools only and refuse a float or int mask with a `TypeError` that says how to convert it,
# rather than silently reading it the other way round.

# %%
seed_everything(1)
B, T, D = 2, 6, 8
x = torch.randn(B, T, D)
lengths = torch.tensor([6, 4])
mask = causal_mask(T) & padding_mask(lengths, T)  # (T, T) & (B, 1, T) -> (B, T, T)
out, w = scaled_dot_product_attention(x, x, x, mask)
fig, axes = plt.subplots(1, 3, figsize=(10, 3))
panels = [(causal_mask(T), "causal mask"), (mask[1], "causal & padding (length 4)"), (w[1], "weights, sequence 2")]
for ax, (m, title) in zip(axes, panels, strict=True):
    ax.imshow(m.float(), cmap="viridis", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_xlabel("key s")
    ax.set_ylabel("query t")
plt.tight_layout()
plt.show()
check_close("with masks vs F.scaled_dot_product_attention",
            out[0], F.scaled_dot_product_attention(x[:1], x[:1], x[:1], attn_mask=mask[0])[0])

# %% [markdown]
# The test of a causal mask is behavioural: change the input at position 3, and outputs
# before position 3 must not move, while outputs from 3 on do.

# %%
x2 = x.clone()
x2[:, 3] += 10.0
out2, _ = scaled_dot_product_attention(x2, x2, x2, causal_mask(T))
out1, _ = scaled_dot_product_attention(x, x, x, causal_mask(T))
change = (out2 - out1).abs().amax(dim=(0, 2))  # (T,): largest change per position
print("largest change of the output per position:", change.numpy().round(4))
assert (change[:3] == 0).all() and (change[3:] > 0).all()

# %% [markdown]
# A mask can forbid every key to some query (a padded query row, say). Its scores are then
# all $-\infty$ and a plain softmax divides $0$ by $0$: `torch.softmax` and
# `torch.nn.MultiheadAttention` return NaN there, which then spreads through every later
# layer, while our helpers return all-zero weights, hence a zero output, for such a row (the
# fused `F.scaled_dot_product_attention` of recent PyTorch versions also gives zeros).
# Query 0 below may attend to nothing:

# %%
q_row = k_row = v_row = torch.randn(1, 3, 4)  # (B, T, d)
nothing_first = torch.tensor([[False, False, False], [True, True, False], [True, True, True]])  # (T, T)
ours_row, ours_row_w = scaled_dot_product_attention(q_row, k_row, v_row, nothing_first)
softmax_row = torch.softmax((q_row @ k_row.transpose(1, 2)).masked_fill(~nothing_first, float("-inf")), dim=-1)
torch_mha_row, _ = torch.nn.MultiheadAttention(4, 1, batch_first=True)(q_row, k_row, v_row, attn_mask=~nothing_first)
fused_row = F.scaled_dot_product_attention(q_row, k_row, v_row, attn_mask=nothing_first)
print("query 0, ours:        weights", ours_row_w[0, 0].numpy(), "output", ours_row[0, 0].numpy())
print("query 0, torch.softmax weights", softmax_row[0, 0].numpy())
print("query 0, nn.MultiheadAttention output", torch_mha_row[0, 0].detach().numpy())
print("query 0, F.scaled_dot_product_attention output", fused_row[0, 0].numpy())
assert (ours_row_w[0, 0] == 0).all() and (ours_row[0, 0] == 0).all() and softmax_row[0, 0].isnan().all()
check_close("rows that may attend somewhere vs F.scaled_dot_product_attention", ours_row[0, 1:], fused_row[0, 1:])
try:
    scaled_dot_product_attention(q_row, k_row, v_row, nothing_first.float())  # a float mask: refused
except TypeError as error:
    print("TypeError:", error)

# %% [markdown]
# ## 4. Multi-head attention
#
# One softmax per query averages the values with a single set of weights. **Multi-head
# attention** runs $h$ attentions side by side, each on its own $d_k = D/h$-dimensional
# slice of the projections, so one head can follow, say, the previous character while
# another looks for the matching bracket; then it concatenates the heads and mixes them
# with $W_O$ (Vaswani et al., 2017):
#
# $$\operatorname{MHA}(X) = \operatorname{Concat}(\text{head}_1, \dots, \text{head}_h)\,W_O,\qquad
#   \text{head}_i = \operatorname{Attention}(XW_Q^{(i)}, XW_K^{(i)}, XW_V^{(i)}).$$
#
# (Vaswani et al. (2017) write $\text{head}_i = \operatorname{Attention}(QW_i^Q, KW_i^K, VW_i^V)$,
# where $Q$, $K$, $V$ are the layer's *inputs*, all equal to $X$ in self-attention; so their
# formula is this one.) In code, the $h$ matrices
# $W_Q^{(i)}$ are the column blocks of one $D \times D$ matrix, so the projection is a
# single product, and "splitting into heads" is a reshape of its output
# `(B, T, D) -> (B, h, T, d_k)` — the same parameters and cost as one head of size $D$.
# `course_utils.self_attention.MultiHeadAttention` stores its weights like
# `torch.nn.MultiheadAttention` (`in_proj_weight` stacks $W_Q^\top, W_K^\top, W_V^\top$), so
# we can copy PyTorch's weights into ours and compare:

# %%
seed_everything(2)
B, T, D, h = 4, 10, 32, 4
torch_mha = torch.nn.MultiheadAttention(D, h, batch_first=True).to(device)
our_mha = MultiHeadAttention(D, h).to(device)
with torch.no_grad():
    torch.nn.init.normal_(torch_mha.in_proj_bias, std=0.1)  # PyTorch starts biases at 0; test them too
    torch.nn.init.normal_(torch_mha.out_proj.bias, std=0.1)
    our_mha.in_proj_weight.copy_(torch_mha.in_proj_weight)
    our_mha.in_proj_bias.copy_(torch_mha.in_proj_bias)
    our_mha.out_proj.weight.copy_(torch_mha.out_proj.weight)
    our_mha.out_proj.bias.copy_(torch_mha.out_proj.bias)

x = torch.randn(B, T, D, device=device)
lengths = torch.tensor([10, 7, 3, 1], device=device)
allowed = causal_mask(T, device) & padding_mask(lengths, T)  # (B, T, T), True = may attend
ours_out, ours_w = our_mha(x, allowed)
# PyTorch's module: True = masked. Per-batch masks go in as (B * h, T, T).
ref_out, ref_w = torch_mha(x, x, x, attn_mask=(~allowed).repeat_interleave(h, dim=0), average_attn_weights=False)
rtol, atol = tolerance(torch.float32, device)
check_close("MHA output vs torch.nn.MultiheadAttention", ours_out, ref_out, rtol=rtol, atol=atol * 10)
check_close("MHA weights vs torch.nn.MultiheadAttention", ours_w, ref_w, rtol=rtol, atol=atol * 10)

# %% [markdown]
# And head by head against the fused `F.scaled_dot_product_attention`, given our own
# projections:

# %%
w_q, w_k, w_v = our_mha.in_proj_weight.chunk(3)
b_q, b_k, b_v = our_mha.in_proj_bias.chunk(3)
q, k, v = (split_heads(F.linear(x, w, b), h) for w, b in ((w_q, b_q), (w_k, b_k), (w_v, b_v)))  # (B, h, T, d_k)
fused = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])  # (B, h, T, d_k)
with torch.no_grad():
    fused_out = our_mha.out_proj(merge_heads(fused))
check_close("MHA output vs F.scaled_dot_product_attention per head", ours_out, fused_out, rtol=rtol, atol=atol * 10)
print(f"parameters: ours {sum(p.numel() for p in our_mha.parameters())}, "
      f"torch {sum(p.numel() for p in torch_mha.parameters())} (= 4 D^2 + 4 D = {4 * D * D + 4 * D})")

# %% [markdown]
# ## 5. Exercise 1 (2 points, about 15 minutes): scaled dot-product attention with a mask
#
# Implement $\operatorname{softmax}(QK^\top/\sqrt{d_k} + M)\,V$, where $M$ is the mask written as
# numbers added to the scores: $M_{ts} = 0$ where query $t$ may attend to key $s$ and
# $M_{ts} = -\infty$ where it may not (section 3), so masked keys get weight exactly 0. Your
# function takes the boolean mask and applies it, for tensors with any leading
# axes: `q (..., Tq, d_k)`, `k (..., Tk, d_k)`, `v (..., Tk, d_v)`, and a boolean `mask`
# broadcastable to `(..., Tq, Tk)` (`True` = may attend) or `None`. Return the output
# `(..., Tq, d_v)` and the weights `(..., Tq, Tk)`. (You may assume every query may attend
# to at least one key.)

# %% nbgrader={"grade": false, "grade_id": "sdpa_masked", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_attention(q, k, v, mask=None):
    """Scaled dot-product attention: returns (output, weights)."""
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sdpa_masked_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.self_attention import check_attention

check_attention(my_attention)  # names: no sqrt(d_k), d_k, the softmax over queries, the inverted mask, zeros after


# %% nbgrader={"grade": true, "grade_id": "sdpa_masked_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.exercises.self_attention import check_attention

check_attention(my_attention, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Exercise 2 (2 points, about 15 minutes): splitting and merging heads
#
# `my_split_heads(x, n_heads)` turns `(B, T, D)` into `(B, h, T, D/h)`, head $i$ taking
# features $i \cdot d_k$ to $(i+1) \cdot d_k - 1$ of every position; `my_merge_heads` is its
# inverse, `(B, h, T, d_k)` to `(B, T, h * d_k)`. (Hint: `view`/`reshape` then
# `transpose`; a plain `reshape` to the final shape mixes positions and heads.)

# %% nbgrader={"grade": false, "grade_id": "split_merge_heads", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_split_heads(x, n_heads):
    """(B, T, D) -> (B, n_heads, T, D // n_heads)."""
    ### BEGIN SOLUTION
    B, T, D = x.shape
    return x.reshape(B, T, n_heads, D // n_heads).transpose(1, 2)
    ### END SOLUTION


def my_merge_heads(x):
    """(B, h, T, d_k) -> (B, T, h * d_k)."""
    ### BEGIN SOLUTION
    B, h, T, d_k = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_k)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "split_merge_heads_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.self_attention import check_split_merge_heads

check_split_merge_heads(my_split_heads, my_merge_heads)  # names the plain reshape


# %% nbgrader={"grade": true, "grade_id": "split_merge_heads_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.exercises.self_attention import check_split_merge_heads

check_split_merge_heads(my_split_heads, my_merge_heads, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ## 7. One layer of self-attention on real text
#
# Does attention learn anything useful by itself? One causal multi-head attention layer,
# with learned position embeddings and a linear read-out, predicting the next character of
# the course's corpus (Python's help texts, also used in notebooks 02 and 08). Baseline: the
# same model without the attention layer, which sees only the current character (a
# bigram model). Same steps, same batches, same learning rate. The model,
# `course_utils.self_attention.OneLayerAttentionLM`, computes, for token ids $(B, T)$,
#
# $$x = E[\text{ids}] + P_{0:T},\qquad x \leftarrow x + \operatorname{MHA}(x, \text{causal mask}),\qquad
#   \text{logits} = x W_{\text{out}} + b_{\text{out}},$$
#
# with $P$ a learned `(context, d_model)` table of positions; `attention=False` skips the
# middle step. We start $P$ at random values of the same spread as the token embeddings $E$
# (`position_std=1.0`; the default starts it at zero), so that from the first step every
# position differs from every other and a query has something with which to tell the key one
# position back from the key two positions back.

# %%
text = load_corpus()
vocab = CharVocab.from_text(text)
data = torch.from_numpy(vocab.encode(text))
split = int(0.9 * len(data))
train_ids, val_ids = data[:split], data[split:]
CONTEXT, BATCH, STEPS, LR, POSITION_STD = 64, 32, 400, 1e-2, 1.0
print(f"corpus: {len(text):,} characters, {vocab.size} distinct; context {CONTEXT}")

val_batches = lm_batches(val_ids, 20, BATCH, CONTEXT, seed=99)
lm_runs = {}
for use_attention in (True, False):
    seed_everything(0)
    lm = OneLayerAttentionLM(vocab.size, CONTEXT, attention=use_attention, position_std=POSITION_STD).to(device)
    opt = torch.optim.Adam(lm.parameters(), lr=LR)
    hist = fit(lm, lm_batches(train_ids, STEPS, BATCH, CONTEXT, seed=0), next_token_loss, opt, epochs=1,
               val_data=val_batches, desc=f"attention={use_attention}")
    lm_runs[use_attention] = (lm, hist)
    print(f"attention={use_attention!s:5}: validation loss {hist.val_losses[-1]:.3f} nats/char "
          f"({hist.val_losses[-1] / math.log(2):.2f} bits)")
plot_losses({"attention layer": lm_runs[True][1], "bigram (no attention)": lm_runs[False][1]},
            smooth_window=20, xlabel="optimiser step", title="Next-character loss")
plt.show()
attention_loss, bigram_loss = lm_runs[True][1].val_losses[-1], lm_runs[False][1].val_losses[-1]
print(f"after {STEPS} steps the attention layer is {bigram_loss - attention_loss:.2f} nats/char below the bigram model")
assert attention_loss < bigram_loss - 0.2

# %% [markdown]
# ### Where does each head look?
#
# Section 4 motivated several heads by the hope that one of them follows, say, the previous
# character. Does one? For every head we measure, on all the validation windows, the mean
# weight a query $t$ gives the key $\Delta$ positions back ($s = t - \Delta$), over the
# queries with at least 8 keys behind them (`mean_weight_by_offset`). The yardstick is a
# head that spreads its weight evenly over the $t + 1$ keys it may see: weight
# $1/(t+1)$ at every $\Delta$, the same measurement applied to the uniform causal weights.

# %%
lm = lm_runs[True][0].eval()
MAX_OFFSET = 8
x_val = torch.cat([x for x, _ in val_batches]).to(device)  # (N, T)
with torch.no_grad():
    w_val = lm.attention_weights(x_val)  # (N, h, T, T)
by_offset = mean_weight_by_offset(w_val, MAX_OFFSET).mean(0).cpu()  # (h, MAX_OFFSET)
uniform_weights = causal_mask(CONTEXT).float() / causal_mask(CONTEXT).sum(-1, keepdim=True)  # (T, T)
uniform = mean_weight_by_offset(uniform_weights, MAX_OFFSET)  # (MAX_OFFSET,), the same at every offset
n_heads = by_offset.shape[0]
fig, ax = plt.subplots(figsize=(6.5, 3.2))
for i in range(n_heads):
    ax.plot(range(MAX_OFFSET), by_offset[i], "o-", label=f"head {i}")
ax.plot(range(MAX_OFFSET), uniform, "k:", label="uniform head")
ax.set_xlabel("Δ (positions back)")
ax.set_ylabel("mean attention weight")
ax.set_title("Mean attention weight by offset, validation text")
ax.legend(fontsize=8)
plt.show()
for i, row in enumerate(by_offset):
    print(f"head {i}: weight on Δ = 0..{MAX_OFFSET - 1}:", np.round(row.numpy(), 2))
print(f"uniform head: {uniform[0]:.3f} at every Δ")
prev_head = int(by_offset[:, 1].argmax())
print(f"head {prev_head} puts {by_offset[prev_head, 1]:.2f} of its weight on the previous character (Δ = 1), "
      f"{by_offset[prev_head, 1] / uniform[1]:.0f} times a uniform head's {uniform[1]:.3f}")
# One head specialises: most of its weight on the previous character.
assert by_offset[prev_head, 1] > 0.5 and by_offset[prev_head, 1] > 10 * uniform[1]
# Every head looks mostly at the last few characters: far more weight on Δ = 0..3 than a uniform head.
assert (by_offset[:, :4].sum(1) > 2 * uniform[:4].sum()).all()

# %% [markdown]
# A head specialised: most of its weight goes to the previous character, more than ten
# times what a uniform head gives it (printed above). The other heads are local too, with
# far more weight on the last few characters than a uniform head gives them. (Which
# head specialises changes with the random start: nothing tells the heads apart before
# training.) The attention maps of a validation snippet show the same thing query by
# query: one panel per head, query position $t$ down, key position $s$ across; a head that
# follows the previous character draws a bright line just below the diagonal, and the
# specialised head's weight on $\Delta = 1$ stays high on this snippet too (printed below).

# %%
snippet = val_ids[1000:1032][None].to(device)  # (1, 32): one validation snippet
with torch.no_grad():
    w_snip = lm.attention_weights(snippet)[0].cpu()  # (h, T, T)
chars = [{"\n": "\\n", " ": "_"}.get(c, c) for c in vocab.decode(snippet[0].cpu().numpy())]
fig, axes = plt.subplots(1, n_heads, figsize=(3.2 * n_heads, 3.6))
for i, ax in enumerate(axes):
    ax.imshow(w_snip[i], cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f"head {i}: {by_offset[i, 1]:.2f} on Δ = 1")
    ax.set_xlabel("key position s")
    ax.set_xticks(range(len(chars)), chars, fontsize=5)
    ax.set_yticks(range(len(chars)), chars, fontsize=5)
axes[0].set_ylabel("query position t")
plt.tight_layout()
plt.show()
snip_offset = mean_weight_by_offset(w_snip, 2)  # (h, 2): weight on Δ = 0 and Δ = 1, queries t >= 1
print("weight on the previous character in this snippet, per head:", np.round(snip_offset[:, 1].numpy(), 2))
assert snip_offset[prev_head, 1] > 0.35

# %% [markdown]
# ## 8. Two more exercises: the mask of a batch, and a model that learns fast
#
# ### Exercise 3 (2 points, about 10 minutes): the causal-and-padding mask of a batch
#
# Section 3 built the mask of a batch of language-model inputs from two helpers. Write it
# yourself, without them: `my_attention_mask(lengths, T)` gets the lengths `(B,)` of the
# sequences in a batch padded to `T` positions and returns the `(B, T, T)` boolean mask with
# `mask[b, t, s]` True (*may attend*, this course's convention) exactly when key $s$ is at or
# before query $t$ (a position sees itself) **and** $s$ is a real token of sequence $b$,
# $s < \text{lengths}[b]$. Leave the rows of padded queries as the causal mask makes them:
# their outputs are never used, and a row with no key allowed would make the softmax NaN.
# (Hint: `torch.arange(T)` compared with itself and with `lengths`, and broadcasting.)

# %% nbgrader={"grade": false, "grade_id": "attention_mask", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_attention_mask(lengths, T):
    """(B,) lengths -> (B, T, T) bools: True where query t may attend to key s."""
    ### BEGIN SOLUTION
    pos = torch.arange(T, device=lengths.device)
    causal = pos[None, :] <= pos[:, None]  # (T, T): [t, s] = s <= t
    real_keys = pos[None, :] < lengths[:, None]  # (B, T): [b, s] = s < lengths[b]
    return causal[None] & real_keys[:, None, :]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "attention_mask_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.self_attention import check_attention_mask

check_attention_mask(my_attention_mask)  # names the usual mistakes: the diagonal, triu, True = masked, rows, <=


# %% nbgrader={"grade": true, "grade_id": "attention_mask_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_attention_mask(my_attention_mask, seed=1)
m_ex = my_attention_mask(torch.tensor([3, 7, 1]), 7)
check_close("mask with T = 7", m_ex, causal_mask(7) & padding_mask(torch.tensor([3, 7, 1]), 7), quiet=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4 (2 points, about 15 minutes): make one attention layer learn fast
#
# Section 7 trained `OneLayerAttentionLM` for 400 steps at learning rate 0.01. Now you get
# only **60** Adam steps (batches of 32 windows of 32 characters of the same text, positions
# starting at zero, the default) and a narrower model, and must reach a validation loss below **2.36** nats per
# character. Choose
#
# - `d_model`: the width $D$ (at most 32, half of section 7's),
# - `n_heads`: the number of heads $h$ ($D$ must be divisible by $h$; each head gets $d_k = D/h$),
# - `lr`: Adam's learning rate.
#
# The check trains the model with your choice (a few seconds) and says which validation
# loss it reached and how far that is from the target; the hidden tests train again from
# two other random starts on other windows, so aim with some margin. Two questions to guide
# you: how far can Adam move a weight in 60 steps at a given learning rate? And a head's
# score $q \cdot k$ sums only $d_k = D/h$ products: how well can a head of very few features
# tell keys apart?

# %% nbgrader={"grade": false, "grade_id": "attention_config", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_attention_config():
    """{"d_model": int, "n_heads": int, "lr": float} for OneLayerAttentionLM."""
    ### BEGIN SOLUTION
    return {"d_model": 32, "n_heads": 8, "lr": 3e-2}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "attention_config_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.self_attention import check_attention_config

check_attention_config(my_attention_config())  # trains with your choice; says how far from the target you are


# %% nbgrader={"grade": true, "grade_id": "attention_config_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_attention_config(my_attention_config(), seed=1)
check_attention_config(my_attention_config(), seed=2)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - Self-attention: $Q, K, V$ are three projections of the same sequence;
#   $\operatorname{softmax}(QK^\top/\sqrt{d_k})V$ mixes every position with every other in
#   a few matrix products.
# - Without the $\sqrt{d_k}$ the score variance grows like $d_k$, the softmax saturates and
#   its gradient shrinks (table and plot above).
# - Masks set scores to $-\infty$: causal masks hide the future (checked by changing a
#   later input), padding masks hide padding. Mind PyTorch's two conventions.
# - Multi-head attention is a reshape around the same computation; ours matches
#   `torch.nn.MultiheadAttention` and `F.scaled_dot_product_attention` to rounding error.
# - One attention layer beats a bigram model on text at the same number of steps (losses
#   above). Its heads learn to look at the last few characters, and one of them specialises
#   on the previous character, with most of its weight there (offset curves and maps above).
# - A batch's mask is the causal mask *and* the keys' padding mask (exercise 3); how fast one
#   attention layer learns depends on the learning rate and the width of its heads (exercise 4).
#
# Next: **08 · Transformers**: positions, the transformer block, and a tiny GPT.

# %%
report_run_time()
