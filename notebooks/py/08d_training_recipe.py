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
# # 08d · Training a transformer: the recipe, measured
#
# **Objectives.** By the end of this notebook you will be able to
# 1. take the transformer's **training recipe** apart one factor at a time at a fixed step
#    budget (warm-up and a schedule, AdamW, dropout, label smoothing, weight tying) and
#    report what survives the seed spread;
# 2. write a **label-smoothed** loss (Exercise 1);
# 3. see a deep **post-LN** transformer fail to train without warm-up where pre-LN trains,
#    and find the warm-up that rescues it (Exercise 2).
#
# The helpers live in `course_utils/recipe.py`; the blocks build on notebook 08's
# (`course_utils/transformer.py`, their attention in `course_utils/self_attention.py`), and the
# text is the course's corpus (`course_utils/shared/lm.py`'s `corpus_data`, as in 08 and 08c).

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
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_utils import check_close, report_run_time, seed_everything, start_notebook
from course_utils.recipe import (
    PostLNBlock,
    RecipeConfig,
    copy_to_encoder_layer,
    label_smoothed_loss,
    make_optimizer,
    run_seeds,
)
from course_utils.self_attention import causal_mask
from course_utils.shared.lm import corpus_data

device = start_notebook()
seed_everything(0)
data = corpus_data()  # the course's text, split into a training head and a validation tail
print(f"{len(data.train) + len(data.val):,} characters, vocabulary {data.vocab.size}")

# %% [markdown]
# ## 1. The training recipe, one factor at a time
#
# The standard recipe for a transformer (Vaswani et al., 2017, and most models since): Adam
# with **warm-up** and a decaying **schedule**, **decoupled weight decay** (AdamW),
# **dropout**, **label smoothing**, and often **weight tying**. Each is said to help; at
# our scale (a 2-layer, $D = 32$ model, 150 steps of 16 windows of 32 characters), which
# ones do? The base recipe, and five runs each changing **one** field, at the same number
# of steps, on 2 seeds. Validation loss is plain cross-entropy in eval mode (nats/char);
# these small runs train on the CPU, one thread, whatever the device.
#
# The five changes:
#
# - (a) **schedule**: a constant rate without warm-up, instead of 20 warm-up steps and a
#   cosine decay to 0 (notebook 08);
# - (b) **Adam with L2** instead of AdamW. L2 adds $\lambda w$ to the gradient, and Adam
#   then divides it by $\sqrt{\hat v}$ like any gradient, so weights with small gradients
#   are decayed hard and the rest barely; AdamW subtracts $\eta \lambda w$ from the weight
#   beside Adam's step (Loshchilov and Hutter, 2019). Same $\lambda = 0.1$;
# - (c) **dropout** 0.1 on the embeddings and each residual branch;
# - (d) **label smoothing** $\varepsilon = 0.1$: the target distribution is
#   $(1 - \varepsilon)\,\text{one\_hot}(y) + \varepsilon / V$;
# - (e) **weight tying**: the output layer reuses the embedding matrix $E \in \mathbb{R}^{V \times D}$.
#
# First the pieces, checked. AdamW and Adam-L2 after one step from the same weights
# (Adam's first step moves every weight by $\eta$ times the sign of its effective gradient):

# %%
w0, grad, lr, wd = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 0.5]]), 0.1, 0.5
after = {}
for kind in ("adamw", "adam_l2"):
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(w0)
    opt = make_optimizer(layer, kind, lr, wd)
    layer.weight.grad = grad.clone()
    opt.step()
    after[kind] = layer.weight.detach().clone()
check_close("AdamW step", after["adamw"], w0 * (1 - lr * wd) - lr * grad.sign())  # decay beside the step
check_close("Adam-L2 step", after["adam_l2"], w0 - lr * (grad + wd * w0).sign())  # decay inside the gradient
print("they differ:", after["adamw"].tolist(), "vs", after["adam_l2"].tolist())

# %% [markdown]
# Label smoothing against `F.cross_entropy(label_smoothing=eps)`, and the post-LN block
# (used in section 2) against `torch.nn.TransformerEncoderLayer(norm_first=False)` with the
# same weights:

# %%
g = torch.Generator().manual_seed(0)
logits, targets = torch.randn(20, 9, generator=g, dtype=torch.float64), torch.randint(0, 9, (20,), generator=g)
check_close("label_smoothed_loss", label_smoothed_loss(logits, targets, 0.1),
            torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.1))
block = PostLNBlock(16, 4).double().eval()
x = torch.randn(2, 7, 16, generator=g, dtype=torch.float64)
with torch.no_grad():
    check_close("PostLNBlock vs nn.TransformerEncoderLayer", block(x, causal_mask(7)),
                copy_to_encoder_layer(block).eval()(x, src_mask=~causal_mask(7)))  # torch: True = masked

# %% [markdown]
# The runs:

# %%
BASE = RecipeConfig(steps=150, batch_size=16, context=32, d_model=32, n_layers=2, lr=1e-2, warmup_steps=20,
                    schedule="cosine", optimizer="adamw", weight_decay=0.1)
FACTORS = {
    "base": BASE,
    "(a) constant lr": replace(BASE, schedule="constant", warmup_steps=0),
    "(b) Adam + L2": replace(BASE, optimizer="adam_l2"),
    "(c) dropout 0.1": replace(BASE, dropout=0.1),
    "(d) label smoothing": replace(BASE, label_smoothing=0.1),
    "(e) weight tying": replace(BASE, tie_weights=True),
}
runs = {name: run_seeds(config, (0, 1)) for name, config in FACTORS.items()}
val = {name: np.array([r.val_loss for r in rs]) for name, rs in runs.items()}
gap = {name: np.array([r.val_loss - r.train_loss for r in rs]) for name, rs in runs.items()}
for name, rs in runs.items():
    print(f"{name:22s} val {val[name].mean():.3f} ({val[name].min():.3f}-{val[name].max():.3f})  "
          f"val - train {gap[name].mean():+.3f}  parameters {rs[0].n_params:,}")

fig, ax = plt.subplots(figsize=(7, 3.2))
names = list(runs)
ax.barh(names, [val[n].mean() for n in names], xerr=[[val[n].mean() - val[n].min() for n in names],
                                                      [val[n].max() - val[n].mean() for n in names]])
ax.set_xlim(min(v.min() for v in val.values()) - 0.1, max(v.max() for v in val.values()) + 0.05)
ax.set_xlabel("validation loss after 150 steps (nats/char; bar: mean, line: min-max of 2 seeds)")
ax.set_title("One factor at a time from the base recipe")
ax.invert_yaxis()
plt.show()

# %% [markdown]
# What the runs say, factor by factor (the asserts below check each statement on both seeds):
#
# - **(b) AdamW against Adam with L2** is the one large effect: at the same $\lambda = 0.1$,
#   Adam-L2 ends far behind. Its decay term, divided by $\sqrt{\hat v}$, shrinks the rarely
#   updated weights (embeddings of rare characters) at a rate set by their small
#   gradients. (A fair contest would tune $\lambda$ for each; the point is that they are
#   different optimisers, not one with two spellings.)
# - **(e) Weight tying** saves $V \times D$ parameters and here costs validation loss: with
#   $D = 32$ the one matrix must serve both as input embedding and as output classifier.
#   Tying pays off in large models with large vocabularies, where $V \times D$ is a big
#   share of the parameters; not at this scale.
# - **(d) Label smoothing** raises the validation NLL a little, as expected: it trains the
#   model to keep $\varepsilon$ of its probability spread over all characters, which a
#   likelihood measure then charges for. (Its reported gains are in accuracy and
#   calibration on large models, not in perplexity.)
# - **(c) Dropout** does not help either, and the reason is in the last column: the
#   validation loss is *below* the training loss (this corpus's validation tail is easier
#   than its head), so there is no overfitting gap for dropout to close in 150 steps.
#   Dropout is a regulariser for models that have capacity and epochs to spare.
# - **(a) Warm-up and cosine decay** make no difference beyond the seed spread at this
#   scale: a shallow pre-LN model at a moderate rate trains fine from step 0. Section 2
#   shows where warm-up is not optional.
#
# Small models on little data often do not benefit from the parts of the recipe that were
# designed for large ones; measure before you believe.

# %%
base_val = val["base"]
assert val["(b) Adam + L2"].min() > base_val.max() + 0.2, "Adam-L2 should end well behind AdamW"
tied, untied = runs["(e) weight tying"][0].n_params, runs["base"][0].n_params
assert untied - tied == data.vocab.size * BASE.d_model  # one V x D matrix saved
assert val["(e) weight tying"].min() > base_val.max() + 0.05, "tying should cost loss at D = 32"
assert val["(d) label smoothing"].min() > base_val.max() + 0.02, "smoothing should raise the validation NLL"
assert val["(c) dropout 0.1"].min() > base_val.min() - 0.03, "dropout should bring no gain here"
assert gap["base"].max() < 0.05, "no overfitting gap at this budget"
assert abs(val["(a) constant lr"].mean() - base_val.mean()) < 0.1, "the schedule should matter little here"

# %% [markdown]
# ### Exercise 1 (2 points, about 10 minutes): a label-smoothed loss
#
# Write `my_label_smoothed_loss(logits, targets, eps)` for `logits (N, V)` and `targets (N,)`:
# the mean over the positions of the cross-entropy $-\sum_v q_v \log \operatorname{softmax}(z)_v$
# against $q = (1 - \varepsilon)\,\text{one\_hot}(y) + \varepsilon / V$ (every class gets
# $\varepsilon / V$, the target $1 - \varepsilon + \varepsilon / V$, the convention of
# `F.cross_entropy(label_smoothing=eps)`). Positions whose target is `-100` are padding:
# leave them out of the sum and of the count. Use `torch.log_softmax`, not `cross_entropy`.

# %% nbgrader={"grade": false, "grade_id": "label_smoothed_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_label_smoothed_loss(logits, targets, eps):
    """Mean label-smoothed cross-entropy over the positions whose target is not -100."""
    ### BEGIN SOLUTION
    real = targets != -100
    log_p = torch.log_softmax(logits[real], dim=-1)  # (n, V)
    q = torch.full_like(log_p, eps / logits.shape[-1])
    q[torch.arange(len(log_p)), targets[real]] += 1 - eps
    return -(q * log_p).sum(dim=-1).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "label_smoothed_loss_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.recipe import check_label_smoothed_loss

check_label_smoothed_loss(my_label_smoothed_loss)  # names: eps / (V - 1), padding averaged in, a sum


# %% nbgrader={"grade": true, "grade_id": "label_smoothed_loss_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_label_smoothed_loss(my_label_smoothed_loss, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Post-LN needs warm-up; pre-LN does not
#
# The original transformer put the LayerNorm **after** each residual addition (post-LN,
# `PostLNBlock`): $h = \operatorname{LN}(x + \operatorname{MHA}(x))$, $y = \operatorname{LN}(h +
# \operatorname{MLP}(h))$. Notebook 08's block puts it **before** the sublayer (pre-LN):
# $h = x + \operatorname{MHA}(\operatorname{LN}(x))$. In pre-LN the residual stream is an
# untouched sum, so the gradient reaches every layer through the identity path; in post-LN
# every path to the loss crosses one LayerNorm per block, and at initialisation the
# gradients of the last layers are large (Xiong et al., 2020). Adam's first steps, at full
# rate, then throw the model into a state it does not recover from, which is why the
# original recipe needed a warm-up.
#
# Measured on a deeper stack (6 blocks, $D = 32$, context 16) with AdamW at a high peak
# rate $\eta = 0.02$ (gradient norm clipped at 1), 120 steps, two seeds:
# post-LN without warm-up, pre-LN without warm-up, post-LN with a short warm-up of 10 steps.

# %%
DEEP = RecipeConfig(steps=120, batch_size=16, context=16, d_model=32, n_layers=6, lr=2e-2, warmup_steps=0,
                    schedule="cosine", optimizer="adamw", weight_decay=0.0)
LN_RUNS = {
    "post-LN, no warm-up": replace(DEEP, post_ln=True),
    "pre-LN, no warm-up": DEEP,
    "post-LN, 10 warm-up steps": replace(DEEP, post_ln=True, warmup_steps=10),
}
ln_runs = {name: run_seeds(config, (0, 1)) for name, config in LN_RUNS.items()}
ln_val = {name: np.array([r.val_loss for r in rs]) for name, rs in ln_runs.items()}
unigram = np.bincount(data.train.numpy(), minlength=data.vocab.size) / len(data.train)  # (V,)
unigram_loss = float(-(unigram * np.log(np.maximum(unigram, 1e-12))).sum())
for name, v in ln_val.items():
    print(f"{name:26s} validation loss {v.mean():.3f} ({v.min():.3f}-{v.max():.3f}) nats/char")
print(f"for scale: the unigram model (character frequencies, no context) scores {unigram_loss:.3f}")

from course_utils.core.plotting import smooth

fig, ax = plt.subplots(figsize=(6.5, 3.5))
for name, rs in ln_runs.items():
    curves = np.array([smooth(r.train_losses, 10) for r in rs])  # (seeds, steps): moving average over 10 steps
    steps = np.arange(curves.shape[1]) + 10
    line, = ax.plot(steps, curves.mean(0), label=name)
    ax.fill_between(steps, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.25)
ax.axhline(unigram_loss, color="gray", ls=":", label="unigram model")
ax.set_xlabel("step")
ax.set_ylabel("training loss (10-step mean, seeds 0-1)")
ax.set_title("6-block stacks at peak lr 0.02")
ax.legend()
plt.show()

# %% [markdown]
# Without warm-up the post-LN stack gets stuck at the unigram model on every seed: it
# predicts character frequencies and nothing more. The pre-LN stack, same rate, same
# steps, trains. Ten warm-up steps are a start, not a rescue: they move one seed off the
# unigram model and leave the other stuck, far above Exercise 2's target. Asserted on the
# spread:

# %%
from course_utils.exercises.recipe import POST_LN_TARGET

post, pre, warm = (ln_val[name] for name in LN_RUNS)
print(f"post-LN without warm-up: {post.min():.2f}-{post.max():.2f} nats/char; the unigram model: {unigram_loss:.2f}")
assert abs(post - unigram_loss).max() < 0.1, "post-LN without warm-up should stay near the unigram model"
assert pre.max() < post.min() - 0.5, "pre-LN should train where post-LN without warm-up does not"
assert warm.min() < post.min() - 0.2, "ten warm-up steps should move at least one seed off the unigram model"
assert warm.max() > POST_LN_TARGET + 0.2, "ten warm-up steps should leave a seed far from Exercise 2's target"

# %% [markdown]
# ### Exercise 2 (2 points, about 10 minutes): warm up the post-LN stack
#
# The same 6-block post-LN stack, 120 AdamW steps, a warm-up of $W$ steps to a peak rate
# $\eta_{\max}$ and then a cosine decay to 0 (notebook 08's schedule). Choose
#
# - `warmup_steps`: $W$, a whole number from 0 to 120,
# - `peak_lr`: $\eta_{\max}$, from 0.02 (the rate above, at which pre-LN trains) to 1: the
#   point is to train post-LN at that rate, so a lower one is refused,
#
# so that the validation loss ends below **2.85** nats per character (the stuck runs above
# sit at the unigram model's loss, printed above). The check trains with your recipe (a few seconds) and says where it
# landed: how far above the target, and whether the stack is stuck at the unigram model or
# learning, only too slowly. The hidden tests train again from two other seeds, so leave
# some margin.

# %% nbgrader={"grade": false, "grade_id": "post_ln_recipe", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_post_ln_recipe():
    """{"warmup_steps": int, "peak_lr": float} that trains the 6-block post-LN stack in 120 steps."""
    ### BEGIN SOLUTION
    return {"warmup_steps": 60, "peak_lr": 2e-2}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "post_ln_recipe_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.recipe import check_post_ln_recipe

check_post_ln_recipe(my_post_ln_recipe())  # trains with your recipe; says how far from the target you are


# %% nbgrader={"grade": true, "grade_id": "post_ln_recipe_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_post_ln_recipe(my_post_ln_recipe(), seed=1)
check_post_ln_recipe(my_post_ln_recipe(), seed=2)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - **The recipe, measured at 150 steps:** AdamW and Adam-L2 are different optimisers (a
#   large gap at the same $\lambda$); tying, label smoothing and dropout did not help this
#   small, under-trained model, and warm-up with cosine decay made no difference beyond the
#   seed spread.
# - **Post-LN vs pre-LN:** a 6-block post-LN stack at a high rate without warm-up got stuck
#   at the unigram model on every seed; pre-LN trained at the same rate, and a long enough
#   warm-up (Exercise 2) trains post-LN at that rate too. Pre-LN is why modern transformers
#   train without fuss.
#
# Next: **09 · Modern RNNs**, recurrent models that train in parallel.

# %%
report_run_time()
