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
# # 06 · Attention in sequence-to-sequence models
#
# **Objectives.** By the end of this notebook you will be able to
# 1. say why a single fixed-size vector is a bottleneck for an encoder-decoder, and see it
#    in numbers;
# 2. pool by similarity (Nadaraya-Watson kernel regression, attention with nothing to learn)
#    and choose its bandwidth on validation data;
# 3. write additive (Bahdanau) attention for a whole batch, with a padding mask, and
#    dot-product (Luong's "general") scoring;
# 4. train a GRU encoder-decoder with attention that translates human-written dates into
#    ISO dates to at least 99 % exact match, on a CPU, in seconds;
# 5. decode greedily, feeding the model its own predictions;
# 6. read attention weights as an alignment between output and input characters.
#
# The helpers live in `course_utils/attention.py` (the attention functions and the model),
# `course_utils/kernel_regression.py` (the pooling of section 2, scored with 05d's `rmse` from
# `course_utils/forecasting.py`)
# and `course_utils/data/dates.py` (the data). The recurrent parts use `torch.nn.GRU`, which
# notebook 04 rebuilt by hand.

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
import datetime as dt
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_utils import (
    check_close,
    fit,
    plot_losses,
    report_run_time,
    seed_everything,
    show_source,
    start_notebook,
    tolerance,
)
from course_utils.attention import (
    LENGTH_BUCKETS,
    MONTH_NUMBER_FORMATS,
    AttentionSeq2Seq,
    additive_attention,
    additive_attention_loop,
    dates_batches,
    dot_attention,
    exact_match_by_group,
    greedy_exact_match,
    length_bucket,
    teacher_forcing_loss,
)
from course_utils.data import load_sunspots
from course_utils.data.dates import (
    FORMATS,
    NUMERIC_FORMATS,
    SOURCE_CHARS,
    TARGET_BOS,
    TARGET_CHARS,
    TARGET_LEN,
    decode_source,
    decode_target,
    encode_source,
    encode_target,
    format_date,
    make_examples,
    make_pairs,
    split_days_with_validation,
)
from course_utils.exercises.attention import DATES_CHALLENGE, DATES_CHALLENGE_EMBED
from course_utils.forecasting import rmse
from course_utils.kernel_regression import (
    nadaraya_watson,
    nadaraya_watson_loop,
    nearest_neighbour,
    split_indices,
    validation_errors,
)

device = start_notebook()

# %% [markdown]
# ## 1. The task: dates, in many formats, to ISO 8601
#
# Notebook 05c's encoder-decoder squeezed the whole input into the encoder's final state
# and decoded from that one vector. Here is a task where the output must copy, reorder and
# rewrite pieces of the input: `"the 3rd of March 2021"` → `2021-03-03`. The generator in
# `course_utils.data.dates` writes random days from 1950-2049 in the formats of
# `FORMATS` and three letter cases. Every format is unambiguous (`/` is always month/day/year, `.` always
# day.month.year; `yy` < 50 means 20yy). The days are split three ways, as in notebook 08b
# (and as 05a-05d do with their data): **training days**, **validation days** and **test
# days**; no validation or test day appears in training, in any format. Every comparison
# and analysis below (by length, by format, by output position, the attention maps) reads
# the validation examples; the test examples are read once, at the end of section 7, for
# the final number of the model chosen on validation.

# %%
train_days, val_days, test_days = split_days_with_validation(n_test_days=5000, n_val_days=2000, seed=0)  # 08b's
train_pairs = make_pairs(train_days, 30_000, seed=1)
val_examples = make_examples(val_days, 4000, seed=3)  # (text, iso, format): the format, for section 4
val_pairs = [(text, iso) for text, iso, _ in val_examples]
test_pairs = make_pairs(test_days, 2000, seed=2)  # 08b's test pairs: read once, in section 7
print(f"{len(FORMATS)} formats; {len(train_days)} training days, {len(val_days)} validation days, "
      f"{len(test_days)} test days")
assert not set(val_days) & set(train_days) and not set(test_days) & set(train_days + val_days)
for text, iso in train_pairs[:8]:
    print(f"  {text!r:32} -> {iso}")

src, lengths = encode_source([p[0] for p in train_pairs])  # (N, S), (N,)
tgt = encode_target([p[1] for p in train_pairs])  # (N, 10)
val_src, val_lengths = encode_source([p[0] for p in val_pairs])
val_tgt = encode_target([p[1] for p in val_pairs])
print(f"source vocabulary {len(SOURCE_CHARS)} characters (0 = padding), target {len(TARGET_CHARS)} "
      f"({TARGET_BOS} = start, TARGET_BOS)")
print(f"input lengths {lengths.min().item()}-{lengths.max().item()}, mean {lengths.float().mean():.1f}; "
      f"output always {TARGET_LEN} characters")

# %% [markdown]
# ## 2. From pooling by similarity to additive attention
#
# ### Attention pooling by similarity (Nadaraya-Watson)
#
# Attention is a weighted average whose weights say how well each item matches a question.
# Its oldest form learns nothing at all: **kernel regression** (Nadaraya, 1964; Watson, 1964),
# which *Dive into Deep Learning* (Zhang, Lipton, Li and Smola) presents as "attention pooling
# by similarity". We know pairs $(k_i, v_i)$, a **key** and its **value**; asked a **query**
# $q$, we answer with the average of the values, each weighted by how close its key is to the
# query. With a Gaussian kernel of bandwidth $\sigma$:
#
# $$f(q) = \sum_i a_i(q)\, v_i, \qquad
#   a_i(q) = \frac{\exp\!\big(-(q - k_i)^2 / 2\sigma^2\big)}{\sum_j \exp\!\big(-(q - k_j)^2 / 2\sigma^2\big)}
#          = \operatorname{softmax}_i\!\Big(-\frac{(q - k_i)^2}{2\sigma^2}\Big).$$
#
# The weights are a softmax over the **keys** of the scores $-(q - k_i)^2 / 2\sigma^2$: the
# nearer the key, the larger the score. $\sigma$ sets how far the average reaches. As
# $\sigma \to \infty$ every score tends to 0, every weight to $1/n$, and $f(q)$ to the plain
# mean of the values; as $\sigma \to 0$ the nearest key's score dwarfs the others and $f(q)$
# becomes the **nearest neighbour**'s value (or the mean of the equally near ones).
#
# The data: notebook 05d's yearly sunspot numbers, 1700-2008. Hide 40 % of the years at
# random; the task is to fill them in from the others. The keys are the 185 known (training)
# years, the values their sunspot numbers; half the hidden years are **validation** queries,
# on which $\sigma$ is chosen, and half are **test** queries, read once at the end. The
# helpers are in `course_utils/kernel_regression.py`.

# %%
years, sunspots = load_sunspots()  # (309,), (309,)
x, y = torch.tensor(years, dtype=torch.float64), torch.tensor(sunspots)  # float64: the checks below go to 1e-12
train_idx, val_idx, test_idx = split_indices(len(x), seed=0)  # 60 / 20 / 20 %
keys, values = x[train_idx], y[train_idx]  # (185,) known years and their sunspot numbers
queries = x[val_idx]  # (61,) validation years
print(f"{len(train_idx)} training years (keys), {len(val_idx)} validation and {len(test_idx)} test years (queries)")
assert (len(train_idx), len(val_idx), len(test_idx)) == (185, 61, 63)
assert not set(train_idx) & set(val_idx) and not set(test_idx) & set(train_idx.tolist() + val_idx.tolist())

# %% [markdown]
# The formula as it reads, a ratio of kernel sums, one query at a time in float64
# (`nadaraya_watson_loop`), is the reference. The softmax form (`nadaraya_watson`) must agree
# with it to rounding error:

# %%
loop = nadaraya_watson_loop(queries.numpy(), keys.numpy(), values.numpy(), sigma=1.5)
softmax_form = nadaraya_watson(queries, keys, values, sigma=1.5)  # (61,)
gap = np.abs(softmax_form.numpy() - loop).max() / np.abs(loop).max()
print(f"sigma = 1.5: largest gap between the softmax form and the loop, relative: {gap:.1e}")
assert gap < 1e-12

# %% [markdown]
# For a small $\sigma$ the two part ways. Every validation year is at least one year from the
# nearest key, so at $\sigma = 0.02$ every score is at most $-1/(2 \cdot 0.02^2) = -1250$,
# and $e^{-1250}$ is 0 in float64 (the smallest is about $e^{-745}$): the ratio is $0/0$,
# NaN. The softmax subtracts each row's largest score first, so the nearest key gets
# $e^0 = 1$, and the answer is the nearest key's value, or the mean of the values of the
# keys equally near (a hidden year between two known ones): `nearest_neighbour`, the
# $\sigma \to 0$ limit. A huge $\sigma$ gives the other limit, the mean of all values:

# %%
tiny = 0.02
naive = nadaraya_watson_loop(queries.numpy(), keys.numpy(), values.numpy(), sigma=tiny)
shifted = nadaraya_watson(queries, keys, values, sigma=tiny)
distance = (queries[:, None] - keys[None, :]).abs()  # (61, 185)
print(f"sigma = {tiny}: the kernel ratio is NaN for {np.isnan(naive).sum()} of {len(naive)} queries; "
      f"the softmax form for {shifted.isnan().sum().item()}")
assert distance.min() >= 1 and np.exp(-1 / (2 * tiny**2)) == 0.0  # every kernel value underflows
assert np.isnan(naive).all() and torch.isfinite(shifted).all()
check_close("softmax form at a tiny sigma vs nearest_neighbour", shifted, nearest_neighbour(queries, keys, values),
            rtol=1e-12, atol=1e-9)
huge = nadaraya_watson(queries, keys, values, sigma=1e6)
check_close("softmax form at a huge sigma vs the mean of all values", huge, values.mean().expand(len(queries)),
            rtol=1e-6, atol=0.0)

# %% [markdown]
# ### Exercise 1 (1 point, about 10 minutes): Nadaraya-Watson pooling
#
# Write `my_nadaraya_watson(queries, keys, values, sigma)`: `queries` `(Q,)`, `keys` and
# `values` `(K,)` float tensors, `sigma` > 0. Return the estimates `(Q,)`: for each query,
# the average of the values weighted by a softmax over the keys of
# $-(q - k)^2 / 2\sigma^2$. It must stay finite for a tiny $\sigma$.

# %% nbgrader={"grade": false, "grade_id": "nadaraya_watson", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_nadaraya_watson(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                       sigma: float) -> torch.Tensor:
    """Gaussian attention pooling: the kernel-weighted average of the values at each query, (Q,)."""
    ### BEGIN SOLUTION
    scores = -((queries[:, None] - keys[None, :]) ** 2) / (2 * sigma**2)  # (Q, K)
    return torch.softmax(scores, dim=-1) @ values
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "nadaraya_watson_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.kernel_regression import check_nadaraya_watson

check_nadaraya_watson(my_nadaraya_watson)  # 6 queries at sigma = 0.7, then 4 far ones at sigma = 0.005


# %% nbgrader={"grade": true, "grade_id": "nadaraya_watson_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_nadaraya_watson(my_nadaraya_watson, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# Now choose $\sigma$ on the validation years, from a quarter of a year to 64 years, and
# compare with the two limits: the mean of the training values ($\sigma \to \infty$) and the
# nearest known year(s) ($\sigma \to 0$). `validation_errors` returns the three root mean
# squared errors:

# %%
sigmas = np.geomspace(0.25, 64, 17).tolist()  # factors of sqrt(2)
errors = validation_errors(x, y, train_idx, val_idx, sigmas)
best_sigma = min(errors["kernel"], key=errors["kernel"].get)
best = errors["kernel"][best_sigma]
print(f"validation RMSE: mean of the values {errors['mean']:.1f}, nearest year(s) {errors['nearest']:.1f}, "
      f"kernel at the best sigma ({best_sigma:.2f} years) {best:.1f}")
assert best < errors["nearest"] < errors["mean"]

grid = torch.linspace(1900, 2008, 1000, dtype=torch.float64)  # (1000,) queries for the curves
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
recent = keys >= 1900
axes[0].plot(keys[recent], values[recent], "k.", ms=4, label="known years (keys, values)")
for sigma in (0.25, best_sigma, 16.0):
    axes[0].plot(grid, nadaraya_watson(grid, keys, values, sigma), label=f"sigma = {sigma:.2g} years")
axes[0].set(xlabel="year", ylabel="sunspot number", title="Nadaraya-Watson estimates, 1900-2008")
axes[0].legend(fontsize=8)
axes[1].plot(sigmas, list(errors["kernel"].values()), "o-", label="Gaussian kernel")
axes[1].axhline(errors["mean"], color="gray", ls="--", label="mean of the values (sigma -> inf)")
axes[1].axhline(errors["nearest"], color="gray", ls=":", label="nearest known year(s) (sigma -> 0)")
axes[1].set_xscale("log", base=2)
axes[1].set(xlabel="sigma (years)", ylabel="validation RMSE", title="Choosing the bandwidth")
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# On this split a bandwidth of about a year beats both limits. One split of 309 years is a
# small sample, though: which years land in validation moves the numbers. The same choice
# on 20 random splits (seeds 0-19), each comparing on its own validation years:

# %%
margins, chosen = [], []  # (mean - kernel, nearest - kernel) validation RMSE per split; the sigma chosen
for seed in range(20):
    tr, va, _ = split_indices(len(x), seed=seed)
    e = validation_errors(x, y, tr, va, sigmas)
    chosen.append(min(e["kernel"], key=e["kernel"].get))
    margins.append((e["mean"] - e["kernel"][chosen[-1]], e["nearest"] - e["kernel"][chosen[-1]]))
margins, chosen = np.array(margins), np.array(chosen)  # (20, 2), (20,)
for col, name in enumerate(("the mean", "the nearest year(s)")):
    print(f"tuned kernel vs {name}: RMSE lower by {margins[:, col].min():.2f} to {margins[:, col].max():.2f} "
          f"(median {np.median(margins[:, col]):.2f}) on 20 splits")
clear = margins[:, 1] > 0.05
print(f"chosen sigma: {', '.join(f'{s:.2g}' for s in chosen)} years")
print(f"{clear.sum()} of 20 splits: the tuned kernel beats the nearest year(s) by more than 0.05; the others "
      f"chose the smallest sigma ({min(sigmas)}) and land within {np.abs(margins[~clear, 1]).max():.2f} of it")
assert (margins[:, 0] > 1).all(), "the tuned kernel should beat the mean on every split"
assert clear.sum() == 15 and (chosen[~clear] == min(sigmas)).all() and (np.abs(margins[~clear, 1]) < 0.02).all()

# %% [markdown]
# On every split the tuned kernel beats the mean of the values. Against the nearest
# year(s) it wins on 15 of the 20 splits; on the others the validation years
# favour the smallest bandwidth, which is the nearest year(s) to 0.02: there, reaching
# further than the next known year does not help. The test years, read once, for the
# $\sigma$ chosen on split 0:

# %%
test_rmse = rmse(nadaraya_watson(x[test_idx], keys, values, best_sigma), y[test_idx])
print(f"test RMSE at sigma = {best_sigma:.2f} years: {test_rmse:.1f} ({len(test_idx)} test years)")

# %% [markdown]
# The pooling has no parameter but $\sigma$: its scores come from a fixed distance between
# two numbers. The attention of the rest of this notebook **learns** its score: the query is
# a decoder state, the keys and values are encoder states, and a small network decides how
# well they match.
#
# ### Additive attention
#
# The encoder, a bidirectional GRU, leaves one state $h_j \in \mathbb{R}^{2H}$ per input
# character $j = 1..S$. Before emitting output $t$ the decoder, in state $s_{t-1}$, scores
# every $h_j$, normalises the scores over the **real** positions (padding gets weight 0) and
# takes the weighted average, the context $c_t$ (Bahdanau, Cho and Bengio, 2015):
#
# $$e_{tj} = v^\top \tanh(W_q\, s_{t-1} + W_k\, h_j), \qquad
#   a_{tj} = \frac{\exp(e_{tj})\,[\text{mask}_j]}{\sum_{j'} \exp(e_{tj'})\,[\text{mask}_{j'}]}, \qquad
#   c_t = \sum_j a_{tj}\, h_j .$$
#
# In code (`additive_attention`): `query` is $s_{t-1}$ `(B, Hq)`, `keys` are the $h_j$
# `(B, S, Hk)`, `W_q` `(A, Hq)`, `W_k` `(A, Hk)`, `v` `(A,)`. A loop over positions, one
# sequence at a time, is how the score is often first written. We keep a corrected loop as a
# reference: the common version applies `np.exp` to raw scores (in float64 `np.exp(710)` is already `inf`), has no
# notion of padding, and builds its weights as a list of `(1,)` arrays:

# %%
show_source(additive_attention_loop)

# %% [markdown]
# The masked softmax is the step every attention in this course shares (07 and 08 use it
# for self-attention). Set the scores of padded positions to $-\infty$ **before** the
# softmax: $\exp(-\infty) = 0$, so padding gets weight exactly 0 and the real positions'
# weights still sum to 1. A row with no real position at all would be
# $0/0$ = NaN; the course's `masked_softmax` gives it zero weights instead.
#
# ### Exercise 2 (1 point, about 10 minutes): the masked softmax
#
# Write `my_masked_softmax(scores, mask)`: `scores` `(B, S)` floats, `mask` `(B, S)` bools
# (True = a real position). Return weights `(B, S)`: a softmax over the source positions
# (the last axis) of the real positions, exactly 0 at padding, and a row of zeros where a
# sequence has no real position.

# %% nbgrader={"grade": false, "grade_id": "masked_softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis with zero weight where mask is False: (B, S)."""
    ### BEGIN SOLUTION
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights.nan_to_num(0.0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "masked_softmax_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.attention import check_masked_softmax

check_masked_softmax(my_masked_softmax)  # lengths 6, 4, 1 and 0 (a row of padding only)


# %% nbgrader={"grade": true, "grade_id": "masked_softmax_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_masked_softmax(my_masked_softmax, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# The batched version computes all `B x S` scores with two matrix products and a
# broadcast, masks padding with $-\infty$ before the softmax, and must agree with the
# loop on every sequence of a padded batch:

# %%
seed_everything(0)
B, S, Hq, Hk, A = 4, 9, 6, 10, 8
query, keys = torch.randn(B, Hq), torch.randn(B, S, Hk)
W_q, W_k, v = torch.randn(A, Hq), torch.randn(A, Hk), torch.randn(A)
demo_lengths = torch.tensor([9, 6, 3, 1])
mask = torch.arange(S)[None, :] < demo_lengths[:, None]  # (B, S), True = real position
context, weights = additive_attention(query, keys, mask, W_q, W_k, v)

loop = [additive_attention_loop(query[b].double().numpy(), keys[b].double().numpy(), int(demo_lengths[b]),
                                W_q.double().numpy(), W_k.double().numpy(), v.double().numpy()) for b in range(B)]
rtol, atol = tolerance(torch.float32, context.device)
check_close("batched context vs loop", context, torch.tensor(np.stack([c for c, _ in loop]), dtype=torch.float32),
            rtol=rtol, atol=atol * 10)
check_close("batched weights vs loop", weights, torch.tensor(np.stack([w for _, w in loop]), dtype=torch.float32),
            rtol=rtol, atol=atol * 10)
print("weights of the 3rd sequence (length 3):", weights[2].numpy().round(3))
assert (weights[2, 3:] == 0).all() and torch.allclose(weights.sum(-1), torch.ones(B))

# %% [markdown]
# The mask follows one convention in notebooks 06-08: a tensor of **bools, True = may
# attend**. Torch also knows float masks of 0 and $-\infty$ that are *added* to the scores;
# passed here, such a mask would be read upside down, so it is refused with a `TypeError`
# that says how to convert it. A
# query whose mask hides every key gets all-zero weights, and so a zero context:

# %%
try:
    additive_attention(query, keys, mask.float(), W_q, W_k, v)
    refused = ""
except TypeError as err:
    refused = str(err)
print("a float mask:", refused)
nowhere = mask.clone()
nowhere[1] = False  # the 2nd query may attend nowhere
context_0, weights_0 = additive_attention(query, keys, nowhere, W_q, W_k, v)
print("weights of a query that may attend nowhere:", weights_0[1].tolist())
assert "torch.bool" in refused and "True = may attend" in refused
assert (weights_0[1] == 0).all() and (context_0[1] == 0).all() and torch.allclose(context_0[0], context[0])

# %% [markdown]
# **Dot-product scoring** replaces the small network by a bilinear form,
# $e_{tj} = s^\top W h_j$ (Luong, Pham and Manning, 2015, call it "general"; with $W = I$ it
# is the plain dot product $s^\top h_j$, which needs equal sizes). Only the score is Luong's
# here: the decoder stays Bahdanau-style, scoring with the state before the step, $s_{t-1}$,
# where Luong et al. score with the new state $s_t$ and compute the context after the step.
# The score is cheaper — one matrix product, no `tanh` — and it is the score transformers
# use (notebook 07).
# With $W = I$ it must equal a softmax of plain dot products:

# %%
q_plain = torch.randn(B, Hk)
_, w_dot = dot_attention(q_plain, keys, mask, torch.eye(Hk))
reference = torch.softmax(torch.einsum("bh,bsh->bs", q_plain, keys).masked_fill(~mask, -torch.inf), dim=-1)
check_close("dot-product weights vs einsum + softmax", w_dot, reference)

# %% [markdown]
# ## 3. The model and the training budget
#
# `AttentionSeq2Seq` (in `course_utils/attention.py`): embeddings, a bidirectional GRU encoder
# (packed, so padding never enters a state), and a `GRUCell` decoder. At step $t$:
# $c_t$ = attention($s_{t-1}$, $h$), $s_t$ = GRUCell($[\text{embed}(y_{t-1}); c_t]$, $s_{t-1}$),
# logits = Linear($[s_t; c_t]$). **Without attention** the context is the same vector at
# every step, the encoder's two final states: the same one-vector summary as notebook 05c's
# encoder-decoder, though this decoder reads it at every step where 05c's only starts from
# it. Sizes are the same otherwise. Training uses teacher forcing; evaluation uses greedy decoding of 10
# characters and counts an example as right only if all 10 are.
#
# Greedy decoding starts from the start token, `TARGET_BOS` (id 0, the one constant for it in
# `course_utils/data/dates.py`; 05c's vocabulary put its start token at id 1), and the state $s_0$ that `encode`
# returns; at each step it feeds the token it predicted at the step before, the argmax of
# the logits, and carries the new state $s_t$ to the next step. Unlike teacher forcing it
# never sees the gold output: it must live with its own mistakes.
#
# ### Exercise 3 (2 points, about 15 minutes): greedy decoding
#
# Write `my_greedy(model, src, lengths, steps, bos)` with the model's two pieces:
# `states, mask, summary, s = model.encode(src, lengths)` once, then per step
# `logits, s, weights = model.step(y_prev, s, states, mask, summary)` with `y_prev` `(B,)`
# token ids (all `bos` at the first step). Return the `steps` predicted tokens, shape
# `(B, steps)`, `torch.long`, without the start token.

# %% nbgrader={"grade": false, "grade_id": "greedy", "locked": false, "schema_version": 3, "solution": true, "task": false}
@torch.no_grad()
def my_greedy(model, src, lengths, steps, bos=TARGET_BOS):
    """Greedy decoding: token ids (B, steps), each step fed the previous step's argmax."""
    ### BEGIN SOLUTION
    states, mask, summary, s = model.encode(src, lengths)
    y = torch.full((src.shape[0],), bos, dtype=torch.long, device=src.device)
    tokens = []
    for _ in range(steps):
        logits, s, _ = model.step(y, s, states, mask, summary)
        y = logits.argmax(dim=-1)
        tokens.append(y)
    return torch.stack(tokens, dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "greedy_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.attention import check_greedy

check_greedy(my_greedy)  # a small untrained model, 8 padded sequences, 7 steps


# %% nbgrader={"grade": true, "grade_id": "greedy_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_greedy(my_greedy, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# All models get the same budget: the same number of optimiser steps on the same batches.
# `dates_batches` (in `course_utils/attention.py`) draws them with a generator of its own,
# seeded by `seed`, so a seed gives the same batches in the same order whatever else has
# drawn random numbers (the model's initial weights, for one).

# %%
BATCH, STEPS, LR = 128, 240, 3e-3


def batches(epoch: int):
    """STEPS random batches of BATCH pairs, trimmed to their longest input (the same for every model)."""
    return dates_batches(src, lengths, tgt, steps=STEPS, batch_size=BATCH, seed=epoch)


def train(attention):
    seed_everything(0)
    model = AttentionSeq2Seq(len(SOURCE_CHARS), len(TARGET_CHARS), embed=32, hidden=64, attention=attention).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    history = fit(model, batches, teacher_forcing_loss, optimizer, epochs=1, clip_grad_norm=1.0,
                  desc=f"attention={attention}")
    hits = greedy_exact_match(model, val_src.to(device), val_lengths.to(device), val_tgt.to(device)).cpu()
    return model, history, hits


results = {}
for kind in ("additive", None):
    model, history, hits = train(kind)
    results[kind] = (model, history, hits)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"attention={kind!s:9} {n_params:6d} parameters, {history.seconds:5.1f} s, "
          f"validation exact match {hits.float().mean():.2%}")

# %%
plot_losses({f"attention={k}": h for k, (_, h, _) in results.items()}, logy=True, smooth_window=10,
            xlabel="optimiser step", title="Teacher-forcing loss, same steps and batches")
plt.show()
accuracy = {k: hits.float().mean().item() for k, (_, _, hits) in results.items()}
print(f"With attention: {accuracy['additive']:.2%} of the validation dates exactly right; "
      f"without: {accuracy[None]:.2%}.")
assert accuracy["additive"] >= 0.99, "the attention model should reach 99 % exact match"

# %% [markdown]
# ## 4. The bottleneck, measured
#
# Without attention the decoder must find the day, month and year in one summary
# vector of $2H$ numbers, and must keep them while it writes. Notebook 05c's story predicts
# that this hurts most on the **longest** inputs, where the most must be squeezed into the
# vector. First the validation exact match by input length:

# %%
buckets = [length_bucket(int(n)) for n in val_lengths]  # "5-10", "11-15", ... per validation example
labels = [f"{lo}-{hi}" for lo, hi in LENGTH_BUCKETS]
by_length = {kind: exact_match_by_group(hits, buckets) for kind, (_, _, hits) in results.items()}
fig, ax = plt.subplots(figsize=(6, 3))
for offset, (kind, acc) in zip((-0.2, 0.2), by_length.items(), strict=True):
    ax.bar(np.arange(len(labels)) + offset, [acc[b] for b in labels], width=0.4, label=f"attention={kind}")
    print(f"attention={kind!s:9}", "  ".join(f"len {b}: {acc[b]:.1%}" for b in labels))
ax.set_xticks(range(len(labels)), labels)
ax.set_xlabel("input length (characters)")
ax.set_ylabel("exact match")
ax.set_title(f"validation exact match by input length, {STEPS} steps")
ax.legend()
plt.show()
none_by_length = by_length[None]
assert none_by_length["5-10"] < min(none_by_length[b] for b in labels[1:]) - 0.05

# %% [markdown]
# The opposite: without attention the **shortest** inputs fare worst. Two things hide in
# that plot. The buckets do not hold the same formats, and 240 steps are a short budget for
# the model without attention (its loss in section 3 is still falling). First the formats.
# Six formats write the month as a number (`MONTH_NUMBER_FORMATS`: `3/3/21`, `3.3.21`,
# `03/03/2021`, `03.03.2021`, `20210303`, `2021/03/03`), and they are all at most 10
# characters long; the others name the month (`March`, `mar`). Per bucket, the share of
# the validation examples whose month is a number:

# %%
style = ["month number" if fmt in MONTH_NUMBER_FORMATS else "month name" for *_, fmt in val_examples]
share = {b: np.mean([s == "month number" for s, bb in zip(style, buckets, strict=True) if bb == b]) for b in labels}
print("share of month-number formats:", "  ".join(f"len {b}: {share[b]:.0%}" for b in labels))
assert share["5-10"] > 0.6 and all(share[b] == 0 for b in labels[1:])

# %% [markdown]
# So the short bucket is mostly the digit formats. Now split the same validation set by how the
# month is written instead of by length (and, for the short bucket, both ways at once):

# %%
by_style = {kind: exact_match_by_group(hits, style) for kind, (_, _, hits) in results.items()}
both = [f"{s}, {b}" for s, b in zip(style, buckets, strict=True)]  # e.g. "month name, 5-10"
short = {kind: exact_match_by_group(hits, both) for kind, (_, _, hits) in results.items()}
for kind, acc in by_style.items():
    print(f"attention={kind!s:9} month number {acc['month number']:.1%}, month name {acc['month name']:.1%}   "
          f"(inputs of 5-10 characters: month number {short[kind]['month number, 5-10']:.1%}, "
          f"month name {short[kind]['month name, 5-10']:.1%})")
assert by_style[None]["month number"] < by_style[None]["month name"] - 0.1, "digit months should be harder"
assert short[None]["month number, 5-10"] < short[None]["month name, 5-10"] - 0.1, "at the same short lengths too"
assert abs(by_style["additive"]["month number"] - by_style["additive"]["month name"]) < 0.05

# %% [markdown]
# What makes an input hard for the bottleneck here is not its length but how it writes
# the date: among inputs of the same 5-10 characters, those with a month name fare as well
# as the long ones, and those with a month number much worse. In a digit format every output digit is a copy of an input digit, and only its
# position among the other digits says whether it belongs to the year, the month or the
# day (`20210303`, `3/3/21`, `03.03.2021` put them in three different places); the encoder
# must pack *which digit sits where* into one vector, and the decoder must unpack it in the
# right order. A month name marks itself: `March` means month 3 wherever it stands. The
# long inputs are long because of words (weekdays, month names) that add little to
# remember. With attention each output step reads the positions it needs, and the two
# kinds of format come out alike (the last assert).
#
# Is this only the short budget, or only this seed? `bottleneck_study` (in
# `course_utils/attention.py`) trains the model without attention four times as long, 960
# steps of the same kind, and measures it after 240 and after 960 steps, for seeds 0, 1 and
# 2 (a seed sets the initial weights and the batches). That takes minutes per seed on a CPU,
# more than this notebook's time budget, so `benchmarks/seq2seq_seeds.py` runs it and writes
# `benchmarks/results/seq2seq_seeds.csv`. The next cell reads that file, prints the table and
# checks the claims below on it.
#
# **Which data the stored file measured.** `bottleneck_study` now trains on this notebook's
# training days and measures the validation examples above, so a rerun gives validation
# numbers whose seed 0 at 240 steps is the model above. The file in the repository is older:
# it was written before this notebook held out validation days, so its models trained on all
# 31,525 days outside the test days (the 2,000 validation days included) and it measured them
# on 4,000 examples of the **test days** (its `split` column says `test`; the cell checks it).
# Its numbers are therefore test-set numbers of slightly different models, the one place
# where this notebook shows the test days by group; they are used for the pattern over seeds,
# not to choose anything, and they are not compared with the run above.

# %%
from course_utils.data.files import benchmark_results

study_rows = [r for r in benchmark_results("seq2seq_seeds.csv") if r["study"] == "bottleneck"]
study = {(int(r["seed"]), int(r["steps"]), r["group"]): float(r["exact_match"]) for r in study_rows}
study_seeds, budgets = sorted({seed for seed, _, _ in study}), sorted({steps for _, steps, _ in study})
assert {r["split"] for r in study_rows} == {"test"}, "the stored file measured the test days (see above)"
print("without attention, exact match (%) on the stored file's 4,000 test examples")
print(f"{'steps':>5} {'seed':>4} {'all':>6} {'len 5-10':>8} {'lowest of 11-30':>15} {'month number':>12} "
      f"{'month name':>10}")
for steps in budgets:
    for seed in study_seeds:
        row = {group: 100 * study[(seed, steps, group)] for group in ["all", *labels, "month number", "month name"]}
        print(f"{steps:5d} {seed:4d} {row['all']:6.1f} {row['5-10']:8.1f} {min(row[b] for b in labels[1:]):15.1f} "
              f"{row['month number']:12.1f} {row['month name']:10.1f}")
name_gap = {steps: [study[(s, steps, "month name")] - study[(s, steps, "month number")] for s in study_seeds]
            for steps in budgets}
error_ratio = [(1 - study[(s, 960, "month number")]) / (1 - study[(s, 960, "month name")]) for s in study_seeds]
for steps in budgets:
    print(f"{steps} steps: month name ahead of month number by {100 * min(name_gap[steps]):.1f}-"
          f"{100 * max(name_gap[steps]):.1f} points over seeds {study_seeds[0]}-{study_seeds[-1]}")
print(f"960 steps: wrong on month-number formats {min(error_ratio):.1f}-{max(error_ratio):.1f} times as often "
      "as on month names")
assert study_seeds == [0, 1, 2] and budgets == [240, 960]
assert all(study[(s, 960, "all")] > study[(s, 240, "all")] + 0.2 for s in study_seeds), "longer training catches up"
assert min(name_gap[240]) > 0.15 and min(name_gap[960]) > 0.01, "month names ahead on every seed, at both budgets"
assert max(name_gap[960]) < min(name_gap[240]), "the gap shrinks with training"
assert all(study[(s, 240, "5-10")] < min(study[(s, 240, b)] for b in labels[1:]) for s in study_seeds)
assert min(error_ratio) > 2, "at 960 steps digit months are still wrong several times as often"

# %% [markdown]
# On all three seeds of the stored file the model without attention catches up when it trains
# longer (53-57 % of its test examples at 240 steps, 97-99 % at 960), and on all three the
# pattern found above on the validation examples keeps its
# sign while it shrinks: month names are ahead of month numbers by 27-32 points at 240 steps
# and by 3-4 points at 960 (printed above, from the CSV), and at 240 steps the inputs of
# 5-10 characters are the weakest bucket on every seed. At 960 steps the model is still
# wrong on the digit formats several times as often as on the named months (the ratio
# printed above, between about 4 and 9 depending on the seed): the digit formats are a
# harder mapping for a fixed-size summary, a difference of kind, not of length.
#
# Then per output position (`y y y y - m m - d d`): the fraction of wrong characters.

# %%
wrong_by_position = {}
for kind, (model, _, _) in results.items():
    model.eval()
    pred, _ = model.greedy(val_src.to(device), val_lengths.to(device), TARGET_LEN)
    wrong_by_position[kind] = (pred.cpu() != val_tgt).float().mean(0)
    print(f"attention={kind!s:9}", " ".join(f"{w:.3f}" for w in wrong_by_position[kind].tolist()))
worst = int(wrong_by_position[None].argmax())
print(f"Without attention the worst output position is {worst} ('yyyy-mm-dd'[{worst}] = "
      f"{'yyyy-mm-dd'[worst]!r}), wrong in {wrong_by_position[None][worst]:.1%} of the validation dates; "
      f"with attention at most {wrong_by_position['additive'].max():.1%} at any position.")

# %% [markdown]
# ## 5. What the model looks at
#
# The weights $a_{tj}$ form a matrix per example: one row per output character, one column
# per input character. For a model that has learned to translate, each row should point at
# the input characters that determine that output character. (`AttentionSeq2Seq.greedy` keeps the
# weights of every step; a decoding loop that stores them in one variable keeps only the last
# step's.)

# %%
model = results["additive"][0].eval()
examples = [i for i in range(len(val_pairs)) if i % 997 == 3][:4]  # validation examples
fig, axes = plt.subplots(1, len(examples), figsize=(4 * len(examples), 3.2))
for ax, i in zip(axes, examples, strict=True):
    n = int(val_lengths[i])
    pred, attn = model.greedy(val_src[i : i + 1, :n].to(device), val_lengths[i : i + 1].to(device), TARGET_LEN)
    ax.imshow(attn[0].cpu(), cmap="viridis", aspect="auto", vmin=0, vmax=1)
    ax.set_xticks(range(n), list(decode_source(val_src[i], n)), fontsize=7)
    output = decode_target(pred.cpu())[0]
    ax.set_yticks(range(TARGET_LEN), list(output), fontsize=8)
    ax.set_title(f"{val_pairs[i][0]!r}\n-> {output}", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Look for the diagonal-like structure: which input characters does each output digit of
# the year, the month and the day draw from? The alignment is learned: nothing in the loss
# says which input character belongs to which output character. (The encoder is
# bidirectional, so a state next to a digit also knows that digit: weights may sit one
# character beside what you would point at.)
#
# ## 6. Additive attention, batched
#
# ### Exercise 4 (2 points, about 15 minutes): additive attention, batched and masked
#
# Implement the score, the masked softmax and the context vector of section 2:
# $e_{bj} = v^\top \tanh(W_q\, q_b + W_k\, k_{bj})$, $a_{bj}$ = softmax over the positions
# with `mask[b, j] = True` (exactly 0 elsewhere), $c_b = \sum_j a_{bj} k_{bj}$. No loops
# over `B` or `S`. Shapes: `query (B, Hq)`, `keys (B, S, Hk)`, `mask (B, S)` bools,
# `W_q (A, Hq)`, `W_k (A, Hk)`, `v (A,)`; return `context (B, Hk)` and `weights (B, S)`.

# %% nbgrader={"grade": false, "grade_id": "additive_attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_additive_attention(query, keys, mask, W_q, W_k, v):
    """Additive attention: returns (context (B, Hk), weights (B, S))."""
    ### BEGIN SOLUTION
    hidden = torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T)  # (B, S, A)
    scores = (hidden @ v).masked_fill(~mask, float("-inf"))  # (B, S)
    weights = torch.softmax(scores, dim=-1)
    context = (weights[:, :, None] * keys).sum(dim=1)  # (B, Hk)
    return context, weights
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "additive_attention_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.attention import check_additive_attention

check_additive_attention(my_additive_attention)  # a padded batch; names: no mask, zeros after softmax, axis, tanh


# %% nbgrader={"grade": true, "grade_id": "additive_attention_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.exercises.attention import check_additive_attention

check_additive_attention(my_additive_attention, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Dot-product scoring on the same task
#
# The same model with dot-product ("general") scoring, same steps and batches:

# %%
t0 = time.perf_counter()
model_dot, history_dot, hits_dot = train("dot")
print(f"attention=dot       validation exact match {hits_dot.float().mean():.2%} "
      f"(additive: {accuracy['additive']:.2%}, none: {accuracy[None]:.2%}); "
      f"{time.perf_counter() - t0:.1f} s")

# %% [markdown]
# **The test dates, once.** Every number so far is a validation number, and the choice among
# the three models is made there. The chosen model is now decoded on the 2,000 test dates
# (the test pairs of notebook 08b), for the first and only time in this notebook:

# %%
val_accuracy = {**accuracy, "dot": hits_dot.float().mean().item()}
chosen_kind = max(val_accuracy, key=val_accuracy.get)
chosen_model = {**{k: m for k, (m, _, _) in results.items()}, "dot": model_dot}[chosen_kind].eval()
test_src, test_lengths = encode_source([p[0] for p in test_pairs])
test_tgt = encode_target([p[1] for p in test_pairs])
test_accuracy = greedy_exact_match(chosen_model, test_src.to(device), test_lengths.to(device),
                                   test_tgt.to(device)).float().mean().item()
print(f"chosen on validation: attention={chosen_kind} ({val_accuracy[chosen_kind]:.2%}); "
      f"test exact match {test_accuracy:.2%} on {len(test_pairs)} dates")
assert chosen_kind == "additive" and test_accuracy >= 0.99, "section 3's model, at least 99 % on the test dates"

# %% [markdown]
# ## 8. A model that learns in 150 steps
#
# The last exercise is graded by what your choice achieves, not by matching an answer. The
# check trains `AttentionSeq2Seq` on a short variant of the task: dates written only in the
# three digit formats of `NUMERIC_FORMATS`, 8 to 10 characters, which the decoder must
# still reorder (day, month and year sit in different places in each):

# %%
new_year_eve = dt.date(1999, 12, 31)
print([format_date(new_year_eve, fmt) for fmt in NUMERIC_FORMATS], "->", new_year_eve.isoformat())
assert [format_date(new_year_eve, fmt) for fmt in NUMERIC_FORMATS] == ["31.12.1999", "12/31/1999", "19991231"]
print("the exercise's budget and target:", DATES_CHALLENGE, f"embeddings of size {DATES_CHALLENGE_EMBED}")
assert DATES_CHALLENGE == {"steps": 150, "batch_size": 32, "n_val": 200, "target": 0.9} and DATES_CHALLENGE_EMBED == 16
assert (STEPS, BATCH) == (240, 128)  # section 3's budget

# %% [markdown]
# ### Exercise 5 (2 points, about 15 minutes): diagnose a model that does not learn the digit dates
#
# The budget is much smaller than section 3's: 150 Adam steps of 32 fresh dates (section 3:
# 240 steps of 128), gradient norm clipped at 1, embeddings of size 16. After training, the
# model decodes 200 dates from held-out days greedily, and at least 90 % of them must be
# exactly right. The model `BROKEN_SEQ2SEQ` below misses by far; the next cell trains it as
# the check will (a few seconds) and prints its exact match.
#
# **Diagnose it**: return `{"cause": ..., "change": {field: new value}}`, with `cause` one
# of the names in `SEQ2SEQ_CAUSES` (printed below, in alphabetical order) and a change of
# **one** field (`attention`: `"none"`, `"dot"` or `"additive"`; `hidden_size`: GRU units, at
# most 64; `lr`: Adam's learning rate) that fixes the run. A wrong cause fails with what rules it
# out; then the check trains the fixed model and says how far from the target it is; the
# hidden test trains again from another random start, on other dates and other held-out days.
# Sections 3 and 4 hold the evidence: what must the decoder read to copy 8 digits in a new
# order?

# %%
from course_utils.exercises.attention import (
    BROKEN_SEQ2SEQ,
    DATES_CHALLENGE,
    SEQ2SEQ_CAUSES,
    check_seq2seq_diagnosis,
    seq2seq_config_accuracy,
)

broken_exact = seq2seq_config_accuracy(BROKEN_SEQ2SEQ)
print(f"{BROKEN_SEQ2SEQ}: {broken_exact:.1%} of {DATES_CHALLENGE['n_val']} held-out dates exactly right after "
      f"{DATES_CHALLENGE['steps']} steps (target: at least {DATES_CHALLENGE['target']:.0%})")
print("the causes to choose from:", ", ".join(map(repr, SEQ2SEQ_CAUSES)))
assert broken_exact < DATES_CHALLENGE["target"]

# %% nbgrader={"grade": false, "grade_id": "seq2seq_diagnosis", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_seq2seq_diagnosis():
    """{"cause": a name in SEQ2SEQ_CAUSES, "change": {field: new value}} for BROKEN_SEQ2SEQ."""
    ### BEGIN SOLUTION
    return {"cause": "one fixed-size context", "change": {"attention": "additive"}}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "seq2seq_diagnosis_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check_seq2seq_diagnosis(my_seq2seq_diagnosis())  # checks the cause, trains the fixed model, says how far it is


# %% nbgrader={"grade": true, "grade_id": "seq2seq_diagnosis_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_seq2seq_diagnosis(my_seq2seq_diagnosis(), seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - A fixed-size summary forces the decoder to find everything in one vector; the numbers
#   above show how much accuracy that costs on the same training budget, and where: not on
#   the longest inputs, as 05c's story would suggest, but on the formats that write the
#   month in digits, where only position tells which digit is which (by output position,
#   too). A longer budget shrinks the gap without closing it.
# - Attention lets every decoder step look at all encoder states: score, masked softmax,
#   weighted average. Additive scoring uses a small network, dot-product scoring a
#   bilinear form; section 7 prints how far each gets on the same budget.
# - A mask is a tensor of bools, True = may attend; a float or int mask is refused with a
#   message, and a query whose mask hides every key gets zero weights and a zero context.
# - Masking padding with $-\infty$ before the softmax gives it exactly zero weight; a
#   batched implementation must agree with the per-sequence loop (it does, above).
# - The attention weights are an interpretable alignment between output and input.
#
# Next: **07 · Self-attention**, where a sequence attends to itself and the recurrence
# disappears.

# %%
report_run_time()
