# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
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
# # 02 · BPTT: training through time
#
# **Objectives.** By the end of this notebook you will
# 1. write the loss of a whole sequence and derive backpropagation through time (BPTT) for
#    $W_{hy}, b_y, W_{hh}, W_{xh}, b_h$, step by step,
# 2. check a numpy implementation against finite differences and against PyTorch's autograd,
# 3. train a character-level RNN in numpy on real text and watch its samples improve,
# 4. *see* gradients vanish and explode, and fix the explosion with gradient clipping,
# 5. use truncated BPTT with `detach()` in PyTorch and measure what it saves and what it costs.
#
# Helpers: `course_utils/bptt.py` (losses, backward, gradient checks, clipping, gradient flow)
# and `course_utils/char_rnn.py` (batching, Adagrad, sampling) on top of `course_utils/rnn.py`.

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
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_utils import CheckFailed, check_close, report_run_time, seed_everything, start_notebook
from course_utils.bptt import (
    clip_grad_norm,
    clip_grad_value,
    cross_entropy_loss,
    global_norm,
    hidden_grad_norms,
    mse_loss,
    numerical_gradient,
    relative_error,
    rnn_cell_backward,
    rnn_loss_and_grads,
    scaled_orthogonal,
)
from course_utils.rnn import PARAM_NAMES, init_rnn_params, one_hot, rnn_forward

device = start_notebook()

# %% [markdown]
# ## 1. The loss of a sequence
#
# With $a_t = W_{xh} x_t + W_{hh} h_{t-1} + b_h$, $h_t = \tanh(a_t)$ and output logits
# $o_t = W_{hy} h_t + b_y$ for $t = 0..T-1$ (and $h_{-1}$ given), the loss of a sequence is
# the sum of the per-step losses, $L = \sum_{t=0}^{T-1} L_t$ (the seeds number the forward pass
# from 0 but sum the loss from 1 to $T$; one index range is enough). For a batch we average $L$
# over the $B$ sequences.
#
# - **Regression**, identity output $\hat y_t = o_t$: $L_t = \tfrac12 \lVert \hat y_t - y_t \rVert^2$ (`mse_loss`).
# - **Classification**, softmax output $\hat y_t = \operatorname{softmax}(o_t)$ over $C$ classes:
#   $L_t = -\sum_{i=1}^{C} y_t^{(i)} \log \hat y_t^{(i)} = -\log \hat y_t^{(c_t)}$ for the true class $c_t$ (`cross_entropy_loss`).
#
# Careful with hats: here $\hat y_t$ is the **prediction** and $y_t$ the target (seed 003 uses
# them the other way round). In both cases the gradient with respect to the logits is the same
# simple expression, $\partial L_t / \partial o_t = \hat y_t - y_t$ (with $y_t$ one-hot for
# cross-entropy). Both helpers return the loss and this gradient; PyTorch agrees:

# %%
rng = seed_everything(0)
T, B, V = 5, 3, 7
logits = rng.normal(size=(T, B, V))
targets = rng.integers(0, V, size=(T, B))
loss_np, dlogits = cross_entropy_loss(logits, targets)
logits_t = torch.tensor(logits, requires_grad=True)
loss_t = torch.nn.functional.cross_entropy(logits_t.reshape(-1, V), torch.from_numpy(targets).reshape(-1),
                                           reduction="sum") / B
loss_t.backward()
print(f"cross-entropy: numpy {loss_np:.10f}, torch {loss_t.item():.10f}")
check_close("dL/dlogits (cross-entropy)", dlogits, logits_t.grad)

y, y_target = rng.normal(size=(T, B, 2)), rng.normal(size=(T, B, 2))
loss_np, dy = mse_loss(y, y_target)
y_t = torch.tensor(y, requires_grad=True)
loss_t = 0.5 * ((y_t - torch.from_numpy(y_target)) ** 2).sum() / B
loss_t.backward()
print(f"MSE: numpy {loss_np:.10f}, torch {loss_t.item():.10f}")
check_close("dL/dy (MSE)", dy, y_t.grad)

# %% [markdown]
# ## 2. Backpropagation through time, step by step
#
# Unrolled, the RNN is a deep feed-forward graph whose layers share weights:
#
# ```
#         L_0        L_1        L_2              L_{T-1}
#          |          |          |                  |
#         o_0        o_1        o_2                o_{T-1}
#          |  W_hy    |  W_hy    |  W_hy            |  W_hy
# h_{-1}->h_0 -W_hh-> h_1 -W_hh-> h_2 -W_hh-> ... -> h_{T-1}
#          |  W_xh    |  W_xh    |  W_xh            |  W_xh
#         x_0        x_1        x_2                x_{T-1}
# ```
#
# Each parameter is used at every step, so its gradient is a **sum over time** of the
# contributions of each use. Go backwards from $t = T-1$ to $0$:
#
# 1. **Output layer.** $\delta o_t = \partial L/\partial o_t = \hat y_t - y_t$. Then
#    $\dfrac{\partial L}{\partial W_{hy}} = \sum_t \delta o_t\, h_t^\top$ and $\dfrac{\partial L}{\partial b_y} = \sum_t \delta o_t$.
# 2. **Hidden state.** $h_t$ influences $L$ twice: through its own output $o_t$, and through
#    the next state $h_{t+1}$, hence all later losses. The **total** gradient is
#    $$\delta h_t = \frac{\partial L}{\partial h_t} = W_{hy}^\top \delta o_t + W_{hh}^\top \delta a_{t+1}, \qquad \delta a_T = 0 .$$
# 3. **Through the tanh.** $\delta a_t = \delta h_t \odot (1 - h_t^2)$, because $\tanh'(a) = 1 - \tanh^2(a)$.
# 4. **Recurrent and input weights.** $a_t$ depends on $W_{hh}$, $W_{xh}$, $b_h$ directly, so
#    $$\frac{\partial L}{\partial W_{hh}} = \sum_t \delta a_t\, h_{t-1}^\top, \qquad
#      \frac{\partial L}{\partial W_{xh}} = \sum_t \delta a_t\, x_t^\top, \qquad
#      \frac{\partial L}{\partial b_h} = \sum_t \delta a_t .$$
#    At $t = 0$ the previous state is $h_{-1}$ (the initial state), and $\partial L/\partial h_{-1} = W_{hh}^\top \delta a_0$.
#
# **What the seeds get wrong.** Seed 003 writes
# $\frac{\partial L}{\partial W_{hh}} = \sum_t \frac{\partial L_t}{\partial h_t}\frac{\partial h_t}{\partial W_{hh}}$:
# that is only right if $\frac{\partial L_t}{\partial h_t}$ is replaced by the *total*
# $\delta h_t$ of step 2 (which collects all later losses) and $\frac{\partial h_t}{\partial W_{hh}}$
# means the *immediate* dependence (holding $h_{t-1}$ fixed). Seed 002's
# $\sum_t \frac{\partial L_t}{\partial h_t} \prod_{k=1}^{t} \frac{\partial h_k}{\partial h_{k-1}}$
# lacks the sum over the step $k$ where $W$ is used; the full form is
# $\frac{\partial L}{\partial W} = \sum_t \sum_{k \le t} \frac{\partial L_t}{\partial h_t}
# \Big(\prod_{j=k+1}^{t} \frac{\partial h_j}{\partial h_{j-1}}\Big) \frac{\partial^+ h_k}{\partial W}$
# with $\frac{\partial h_j}{\partial h_{j-1}} = \operatorname{diag}(1 - h_j^2)\, W_{hh}$. Seed 001's
# code uses the hidden state as the output (`dh = h - target`, no $W_{hy}$), and at $t = 0$
# reads `h_states[t-1]`, which in Python is the **last** state; it must be $h_{-1}$.
#
# In code (batched, rows): `rnn_cell_backward` does steps 3-4 for one step, `rnn_backward`
# runs the loop, `rnn_loss_and_grads` adds the output layer and the loss.
#
# ## 3. Gradient checks
#
# **Finite differences.** For every parameter entry $w$,
# $\frac{\partial L}{\partial w} \approx \frac{L(w + \varepsilon) - L(w - \varepsilon)}{2\varepsilon}$,
# with an error of order $\varepsilon^2$. In float64 with $\varepsilon = 10^{-5}$ the relative
# error $\lVert g - g_{\text{num}}\rVert / \max(\lVert g\rVert, \lVert g_{\text{num}}\rVert)$ should be far below $10^{-7}$.

# %%
rng = seed_everything(1)
T, B, n_in, H, n_out = 6, 3, 4, 5, 3
params = init_rnn_params(n_in, H, n_out, rng)
params["b_h"] += rng.normal(size=H) * 0.1
params["b_y"] += rng.normal(size=n_out) * 0.1
x = rng.normal(size=(T, B, n_in))
h_init = rng.normal(size=(B, H)) * 0.5
cases = {"cross_entropy": rng.integers(0, n_out, size=(T, B)), "mse": rng.normal(size=(T, B, n_out))}

for loss_name, target in cases.items():
    loss, grads, _ = rnn_loss_and_grads(params, x, h_init, target, loss=loss_name)
    errors = {}

    def loss_only(target=target, loss_name=loss_name) -> float:
        return rnn_loss_and_grads(params, x, h_init, target, loss_name)[0]

    for name in PARAM_NAMES:
        numeric = numerical_gradient(loss_only, params[name])
        errors[name] = relative_error(grads[name], numeric)
    print(f"{loss_name:13s} L = {loss:.6f}; relative error vs finite differences: "
          + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    assert max(errors.values()) < 1e-7

# %% [markdown]
# The bug of seed 001 is not harmless: reading `hs[t-1]` at $t = 0$ wraps around to the last
# state. The finite differences catch it at once:

# %%
loss, grads, hs = rnn_loss_and_grads(params, x, h_init, cases["mse"], loss="mse")
das = []  # redo the backward pass to get delta a_t, then build dW_hh the buggy way
dh_next = np.zeros_like(h_init)
dhs = (rnn_forward(x, h_init, params["W_xh"], params["W_hh"], params["b_h"]) @ params["W_hy"].T
       + params["b_y"] - cases["mse"]) / B @ params["W_hy"]
for t in reversed(range(T)):
    da = (dhs[t] + dh_next) * (1 - hs[t] ** 2)
    das.insert(0, da)
    dh_next = da @ params["W_hh"]
dW_hh_buggy = sum(das[t].T @ hs[t - 1] for t in range(T))  # hs[-1] at t = 0: the LAST state
numeric = numerical_gradient(lambda: rnn_loss_and_grads(params, x, h_init, cases["mse"], "mse")[0], params["W_hh"])
print(f"dW_hh relative error: correct {relative_error(grads['W_hh'], numeric):.1e}, "
      f"with the h_states[t-1] bug {relative_error(dW_hh_buggy, numeric):.1e}")

# %% [markdown]
# **Against PyTorch's autograd.** The same network in torch, float64, with `loss.backward()`:

# %%
tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
h = torch.tensor(h_init)
loss_t = 0.0
target_t = torch.from_numpy(cases["cross_entropy"])
for t in range(T):
    h = torch.tanh(torch.from_numpy(x[t]) @ tp["W_xh"].T + h @ tp["W_hh"].T + tp["b_h"])
    logits_t = h @ tp["W_hy"].T + tp["b_y"]
    loss_t = loss_t + torch.nn.functional.cross_entropy(logits_t, target_t[t], reduction="sum") / B
loss_t.backward()
loss, grads, _ = rnn_loss_and_grads(params, x, h_init, cases["cross_entropy"])
autograd_errors = {name: relative_error(grads[name], tp[name].grad.numpy()) for name in PARAM_NAMES}
print(f"loss: numpy {loss:.12f}, torch {loss_t.item():.12f}")
print("relative error vs autograd:", ", ".join(f"{k} {v:.1e}" for k, v in autograd_errors.items()))
assert max(autograd_errors.values()) < 1e-8

# %% [markdown]
# ## 4. A character-level RNN in numpy
#
# Now we train, with nothing but numpy and the backward pass we just checked. The data is
# the course corpus (Python's help pages, in the standard library). As in Karpathy's
# `min-char-rnn`: the text is split into $B$ parallel streams, each update sees a chunk of
# $T$ characters per stream, the hidden state is **carried** from one chunk to the next (but the
# gradient stops at the chunk boundary: truncated BPTT, section 7), gradients are clipped by norm
# (section 6), and Adagrad scales each parameter's step by its gradient history. We train in
# float32, which is twice as fast as float64 and accurate enough for training.

# %%
from course_utils.char_rnn import adagrad_step, char_rnn_loss, sample_chars, stream_batches
from course_utils.data.text import CharVocab, corpus_source, load_corpus

text = load_corpus()
vocab = CharVocab.from_text(text)
ids = vocab.encode(text)
n_val = len(ids) // 10
train_ids, val_ids = ids[:-n_val], ids[-n_val:]
print(f"{corpus_source()}: {len(text):,} characters, vocabulary {vocab.size}")

hidden_size, batch_size, seq_len, lr, max_norm = 128, 16, 32, 0.1, 5.0
n_steps = 3000
x_chunks, y_chunks = stream_batches(train_ids, batch_size, seq_len)  # (n_chunks, T, B)
xv, yv = stream_batches(val_ids[:12_000], 20, 50)  # a fixed validation slice

rng = seed_everything(0)
char_params = init_rnn_params(vocab.size, hidden_size, vocab.size, rng, dtype=np.float32)
memory = {}  # Adagrad's sum of squared gradients
h = np.zeros((batch_size, hidden_size), dtype=np.float32)
prompt = vocab.encode("The ")
losses, checkpoints, samples = [], [], {}


def take_sample(step: int) -> None:
    ids_out = sample_chars(char_params, prompt, 160, np.random.default_rng(1), temperature=0.8)
    samples[step] = "The " + vocab.decode(ids_out)
    checkpoints.append((step, char_rnn_loss(char_params, xv, yv, vocab.size)))


take_sample(0)
start = time.perf_counter()
for step in range(1, n_steps + 1):
    i = (step - 1) % len(x_chunks)
    if i == 0:
        h = np.zeros_like(h)  # a new pass over the text starts from a zero state
    x = one_hot(x_chunks[i], vocab.size, dtype=np.float32)  # (T, B, V)
    loss, grads, hs = rnn_loss_and_grads(char_params, x, h, y_chunks[i])
    h = hs[-1]  # carry the state, not the gradient
    grads.pop("h_init")
    grads, _ = clip_grad_norm(grads, max_norm)
    adagrad_step(char_params, grads, memory, lr)
    losses.append(loss / seq_len)  # nats per character
    if step in (100, 300) or step % 1000 == 0:
        take_sample(step)
train_seconds = time.perf_counter() - start
print(f"{step} Adagrad steps, {step * batch_size * seq_len:,} characters in {train_seconds:.1f} s "
      f"({step * batch_size * seq_len / train_seconds:,.0f} characters/s)")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(np.convolve(losses, np.ones(50) / 50, mode="valid"), label="train (moving average of 50)")
ax.plot(*zip(*checkpoints, strict=True), "o--", label="validation")
ax.axhline(np.log(vocab.size), color="gray", ls=":", label="uniform guess, log V")
ax.set_xlabel("Adagrad step")
ax.set_ylabel("cross-entropy (nats/char)")
ax.legend()
ax.grid(alpha=0.3)
plt.show()
for s, text_sample in samples.items():
    print(f"--- after {s} steps (validation loss {dict(checkpoints)[s]:.3f}) ---\n{text_sample}\n")
assert checkpoints[-1][1] < checkpoints[0][1] - 1.0, "the validation loss should fall by more than 1 nat/char"

# %% [markdown]
# ## 5. Vanishing and exploding gradients, shown
#
# How much does the loss at the last step care about the state $k$ steps earlier? By the chain
# rule, $\frac{\partial L}{\partial h_{t-k}} = \frac{\partial L}{\partial h_t}\prod_{j=t-k+1}^{t}
# \operatorname{diag}(1 - h_j^2)\,W_{hh}$: a product of $k$ Jacobians. Without the tanh this is
# $W_{hh}^k$, which shrinks or grows like $\rho^k$ where $\rho$ is the spectral radius of
# $W_{hh}$ (its largest eigenvalue modulus). We build $W_{hh} = \rho\,Q$ with $Q$ a random
# orthogonal matrix, so every eigenvalue and singular value has modulus exactly $\rho$, and
# back-propagate a unit gradient from the last of $T = 60$ steps (`hidden_grad_norms`).

# %%
rng = seed_everything(0)
T, B, n_in, H = 60, 32, 8, 64
x = rng.normal(size=(T, B, n_in))
W_xh = rng.normal(size=(H, n_in)) / np.sqrt(n_in)
dh_last = rng.normal(size=(B, H))
dh_last /= np.linalg.norm(dh_last, axis=1, keepdims=True)  # unit norm per sequence
radii = [0.9, 1.0, 1.1]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
flow = {}
for radius in radii:
    W_hh = scaled_orthogonal(H, radius, rng)
    for ax, linear in zip(axes, [True, False], strict=True):
        norms = hidden_grad_norms(x * 0.1, np.zeros((B, H)), W_xh, W_hh, np.zeros(H), dh_last, linear=linear)
        flow[radius, linear] = norms
        ax.semilogy(norms, label=f"spectral radius {radius}")
for ax, title in zip(axes, ["linear RNN (no tanh)", "tanh RNN"], strict=True):
    ax.set_title(title)
    ax.set_xlabel("time lag k (steps back from the loss)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
axes[0].set_ylabel(r"$\|\partial L / \partial h_{T-1-k}\|$")
plt.show()
for radius in radii:
    lin, nonlin = flow[radius, True][50], flow[radius, False][50]
    print(f"rho = {radius}: at lag 50, linear {lin:.3g} (rho^50 = {radius ** 50:.3g}), tanh {nonlin:.3g}")
    assert np.isclose(lin, radius**50, rtol=1e-6)

# %% [markdown]
# **Try it.** Move the slider to set the spectral radius $\rho$ of $W_{hh} = \rho\,Q$ (one fixed
# orthogonal $Q$; same inputs and unit gradient as above) and watch where each curve ends after
# $T = 60$ steps. The black dashed line is $\rho^k$. (Where widgets are off, e.g. on the course
# website, you see the figure for $\rho = 1.3$ instead.)

# %%
from course_utils.widgets import slider_plot

flow_Q = scaled_orthogonal(H, 1.0, np.random.default_rng(1))  # fixed: the slider changes the scale only
flow_inputs = (x * 0.1, np.zeros((B, H)), W_xh)
flow_dh_last = dh_last.copy()


def plot_gradient_flow(radius: float) -> None:
    """||dL/dh|| against the time lag for W_hh = radius * Q, with and without the tanh."""
    lags = np.arange(len(flow_inputs[0]) + 1)  # 0 .. T
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for linear, label, lw in [(True, "linear RNN (no tanh)", 4), (False, "tanh RNN", 1.5)]:
        norms = hidden_grad_norms(*flow_inputs, radius * flow_Q, np.zeros(len(flow_Q)), flow_dh_last, linear=linear)
        ax.semilogy(lags, norms, lw=lw, alpha=0.7, label=f"{label}: {norms[-1]:.2g} at lag {lags[-1]}")
    ax.semilogy(lags, radius ** lags.astype(float), "--", color="black", lw=1, label=r"$\rho^k$")
    ax.set_ylim(1e-14, 1e10)  # fixed, so that moving the slider moves the curves, not the axis
    ax.set_title(rf"$W_{{hh}} = {radius:.2f}\,Q$")
    ax.set_xlabel("time lag k (steps back from the loss)")
    ax.set_ylabel(r"$\|\partial L / \partial h_{T-1-k}\|$")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left", fontsize=8)
    plt.show()


flow_widget = slider_plot(plot_gradient_flow, static=[{"radius": 1.3}], radius=(0.6, 1.4, 0.05, 1.0))

# %% [markdown]
# Without the tanh the curves are exactly $\rho^k$: $\rho < 1$ vanishes, $\rho = 1$ keeps the
# norm, $\rho > 1$ explodes. The tanh multiplies each step by $\operatorname{diag}(1 - h_j^2)$,
# whose entries are at most 1: it can only shrink the gradient. So a largest singular value below 1
# is *sufficient* for vanishing, and above 1 is *necessary* (not sufficient) for exploding
# (Pascanu, Mikolov & Bengio, 2013, "On the difficulty of training recurrent neural networks").
#
# **Saturation.** When the pre-activations $a_t$ are large, $h_t = \tanh(a_t)$ sits near $\pm 1$ and
# $\tanh'(a_t) = 1 - h_t^2$ near 0: the gradient is cut off even when $W_{hh}$ would preserve it.
# Same $\rho = 1$ matrix, larger inputs:

# %%
W_hh = scaled_orthogonal(H, 1.0, rng)
scales = [0.1, 1.0, 3.0, 10.0]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
a = np.linspace(-4, 4, 200)
axes[0].plot(a, np.tanh(a), label="tanh(a)")
axes[0].plot(a, 1 - np.tanh(a) ** 2, label="tanh'(a) = 1 - tanh(a)^2")
axes[0].legend()
axes[0].grid(alpha=0.3)
for scale in scales:
    hs = rnn_forward(x * scale, np.zeros((B, H)), W_xh, W_hh, np.zeros(H))
    norms = hidden_grad_norms(x * scale, np.zeros((B, H)), W_xh, W_hh, np.zeros(H), dh_last)
    saturated = np.mean(np.abs(hs) > 0.95)
    axes[1].semilogy(norms, label=f"input scale {scale}: {saturated:.0%} of |h| > 0.95")
    print(f"input scale {scale:5}: mean tanh' = {np.mean(1 - hs ** 2):.3f}, saturated {saturated:.1%}, "
          f"gradient norm at lag 10 = {norms[10]:.2e}")
axes[1].set_xlabel("time lag k")
axes[1].set_title(r"tanh RNN, $\rho = 1$")
axes[1].legend(fontsize=8)
axes[1].grid(alpha=0.3, which="both")
plt.show()

# %% [markdown]
# ### The "quick brown fox" stories, recounted
#
# The lecture script (seed 004) tells both effects on *"The quick brown fox jumped over the lazy
# dog"*: to predict "dog", the gradient must travel back to "The". It says the gradient doubles
# per step and reaches $2^{10} = 1024$ at "The", and counts "over" as one step back from "dog".
# Counting the words gives different numbers:

# %%
for sentence in ["The quick brown fox jumped over the lazy dog",
                 "The cat in the hat sat on the mat while the dog barked loudly at the park"]:
    words_ = sentence.split()
    steps_back = len(words_) - 1
    print(f"{len(words_)} words: from {words_[-1]!r} back to {words_[0]!r} is {steps_back} steps; "
          f"factor 2 per step gives 2^{steps_back} = {2 ** steps_back}, factor 0.5 gives {0.5 ** steps_back:.2e}")
fox = "The quick brown fox jumped over the lazy dog".split()
print("steps back from 'dog':", {w: len(fox) - 1 - i for i, w in enumerate(fox)})

# %% [markdown]
# And *shown*: a linear RNN with $W_{hh} = 2Q$ run over the nine words (random word vectors),
# back-propagating a unit gradient from "dog". The gradient that reaches the state at "The" is
# exactly $2^8$ times larger; with $W_{hh} = 0.5\,Q$ it is $2^{-8}$ times smaller.

# %%
x_fox = rng.normal(size=(len(fox), 1, n_in))
unit = np.eye(H)[:1]  # (1, H): a unit gradient at the last word
for factor in (2.0, 0.5):
    norms = hidden_grad_norms(x_fox, np.zeros((1, H)), W_xh, scaled_orthogonal(H, factor, rng), np.zeros(H),
                              unit, linear=True)
    print(f"factor {factor}: ||dL/dh|| at 'dog' {norms[0]:.0f}, at 'over' {norms[3]:.3g}, "
          f"at 'The' {norms[len(fox) - 1]:.6g}")

# %% [markdown]
# ## 6. Gradient clipping
#
# The standard fix for exploding gradients is to cap the update. **By norm** (Pascanu et al.,
# 2013): if the global norm $\lVert g\rVert$ of all gradients together exceeds a threshold
# $c$, rescale them all by $c/\lVert g\rVert$: same direction, bounded length
# (`clip_grad_norm`, the rule of `torch.nn.utils.clip_grad_norm_`). **By value**: clamp every
# entry to $[-c, c]$ (`clip_grad_value`, as in `min-char-rnn`); simpler, but it changes the
# direction. Both on a real gradient of the char-RNN:

# %%
x_batch = one_hot(x_chunks[0], vocab.size, dtype=np.float32)
_, g, _ = rnn_loss_and_grads(char_params, x_batch, np.zeros((batch_size, hidden_size), np.float32), y_chunks[0])
g.pop("h_init")
flat = np.concatenate([v.ravel() for v in g.values()])
c = 0.25 * global_norm(g)
by_norm, norm_before = clip_grad_norm(g, c)
by_value = clip_grad_value(g, 0.01 * np.abs(flat).max())
for label, clipped in [("by norm", by_norm), ("by value", by_value)]:
    f = np.concatenate([v.ravel() for v in clipped.values()])
    cosine = f @ flat / (np.linalg.norm(f) * np.linalg.norm(flat))
    print(f"clip {label:8s}: norm {norm_before:.3f} -> {global_norm(clipped):.3f}, cosine with the original {cosine:.4f}")
torch_grads = [torch.tensor(v) for v in g.values()]
for p_, v in zip(torch_grads, g.values(), strict=True):
    p_.grad = torch.tensor(v)
torch.nn.utils.clip_grad_norm_(torch_grads, c)
check_close("clip_grad_norm vs torch.nn.utils.clip_grad_norm_", np.concatenate([v.ravel() for v in by_norm.values()]),
            torch.cat([p_.grad.ravel() for p_ in torch_grads]))

# %% [markdown]
# **Clipping rescuing an exploding run.** A PyTorch character model (the `torch.nn.RNN` version
# of `CharRNN`) whose recurrent matrix starts at spectral radius 3, trained with plain SGD
# (learning rate 0.5): once without clipping, once with `clip_grad_norm=1.0` in `course_utils.fit`.
# `fit` records the gradient norm of every step before clipping.

# %%
from course_utils import fit
from course_utils.lm import next_token_loss
from course_utils.rnn import CharRNN

clip_x, clip_y = stream_batches(train_ids, 32, 32)
clip_batches = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(clip_x[:120], clip_y[:120], strict=True)]


runs = {}
for clip in (None, 1.0):
    seed_everything(0)
    model = CharRNN(vocab.size, 128, use_torch_rnn=True).to(device)
    with torch.no_grad():
        W0 = scaled_orthogonal(128, 3.0, np.random.default_rng(0))
        model.rnn.weight_hh_l0.copy_(torch.tensor(W0, dtype=torch.float32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    try:
        runs[clip] = fit(model, clip_batches, next_token_loss, optimizer, clip_grad_norm=clip, progress=False)
    except FloatingPointError as err:  # a diverged run: keep what was recorded
        print("diverged:", err)
        runs[clip] = None
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for clip, hist in runs.items():
    if hist is not None:
        label = "no clipping" if clip is None else f"clip norm {clip}"
        axes[0].plot(hist.losses, label=label)
        axes[1].semilogy(hist.grad_norms, label=label)
axes[0].axhline(np.log(vocab.size), color="gray", ls=":", label="uniform guess")
axes[0].set_ylabel("training loss")
axes[1].set_ylabel("gradient norm before clipping")
for ax in axes:
    ax.set_xlabel("SGD step")
    ax.legend()
    ax.grid(alpha=0.3)
plt.show()
final = {clip: (float("inf") if hist is None else hist.final_loss) for clip, hist in runs.items()}
peak = {clip: (float("inf") if hist is None else max(hist.grad_norms)) for clip, hist in runs.items()}
print(f"final training loss: no clipping {final[None]:.3f}, clipped {final[1.0]:.3f}; "
      f"largest gradient norm: {peak[None]:.3g} vs {peak[1.0]:.3g}; uniform guess {np.log(vocab.size):.3f}")
assert final[1.0] < final[None]

# %% [markdown]
# ## 7. Truncated BPTT with `detach()`
#
# Full BPTT over a long text stores every hidden state of the whole sequence and makes one
# update per pass. **Truncated BPTT** cuts the sequence into chunks of $k$ steps, carries the
# hidden state from chunk to chunk (the model still *sees* the whole past), but stops the
# gradient at the chunk boundary with `h.detach()`: memory is proportional to $k$, updates are
# $T/k$ times more frequent, and the price is that no gradient connects events more than $k$ steps
# apart. First, the cut itself: the gradient of the last output with respect to each input.

# %%
seed_everything(0)
rnn_t = torch.nn.RNN(4, 16).to(device)
x_long = torch.randn(32, 1, 4, device=device, requires_grad=True)
k = 8
h_t = None
for chunk in x_long.split(k):
    out, h_t = rnn_t(chunk, h_t)
    h_last_chunk = h_t
    h_t = h_t.detach()  # carry the value, cut the graph
out[-1].sum().backward()
reach = x_long.grad.abs().sum(dim=(1, 2)).cpu()
print("steps back with a non-zero gradient:", int((reach.flip(0) > 0).sum()), f"(chunk length k = {k})")
assert (reach[:-k] == 0).all() and (reach[-k:] > 0).all()

# %% [markdown]
# Now the cost and the benefit, measured: train the PyTorch char model on the same 256-character
# sequences per stream, either with full BPTT over all 256 steps (one update per sequence) or with
# truncation $k = 32$ (eight updates per sequence), for the same number of characters.

# %%
long_x, long_y = stream_batches(train_ids, 32, 256)
n_seq = 6
val_x, val_y = stream_batches(val_ids, 32, 64)
tb_val = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(val_x[:20], val_y[:20], strict=True)]
results = {}
for k in (256, 32):
    seed_everything(0)
    model = CharRNN(vocab.size, 128, use_torch_rnn=True).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    updates, t0 = 0, time.perf_counter()
    for s in range(n_seq):
        xs_, ys_ = torch.from_numpy(long_x[s]).to(device), torch.from_numpy(long_y[s]).to(device)
        h_state = None
        for xc, yc in zip(xs_.split(k), ys_.split(k), strict=True):
            logits, h_state = model(xc, h_state)
            loss_k = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab.size), yc.reshape(-1))
            optimizer.zero_grad()
            loss_k.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            h_state = h_state.detach()
            updates += 1
    last_loss = loss_k.item()  # .item() waits for the device to finish, so the timing is complete
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        val = float(np.mean([next_token_loss(model, (a.to(device), b.to(device))).item() for a, b in tb_val]))
    results[k] = (updates, seconds, val)
    print(f"k = {k:3d}: {updates:3d} updates, {seconds:.2f} s, {seconds / updates * 1000:.1f} ms per update, "
          f"hidden states kept for backward: {k} x {32} x 128, last training loss {last_loss:.3f}, "
          f"validation loss {val:.3f}")
print(f"On the same {n_seq * 256 * 32:,} characters, truncation to k = 32 stored 1/8 of the states, made "
      f"{results[32][0] // results[256][0]}x more updates in {results[32][1] / results[256][1]:.1f}x the time, and "
      f"reached validation loss {results[32][2]:.3f} against {results[256][2]:.3f} for full BPTT.")

# %% [markdown]
# ## 8. Exercises
#
# ### Exercise 1 (3 points): the cell backward
#
# Given the **total** gradient `dh_t` $= \partial L/\partial h_t$ `(B, H)`, the step's output
# `h_t (B, H)` and its inputs `x_t (B, I)`, `h_prev (B, H)`, `W_xh (H, I)`, `W_hh (H, H)`,
# return a dict with the gradients of $L$ with respect to `"x_t"`, `"h_prev"`, `"W_xh"`,
# `"W_hh"` and `"b_h"` (this step's share), using $\delta a_t = \delta h_t \odot (1 - h_t^2)$.

# %% nbgrader={"grade": false, "grade_id": "rnn_cell_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_rnn_cell_backward(dh_t, h_t, x_t, h_prev, W_xh, W_hh):
    """Gradients of one RNN step: a dict with keys x_t, h_prev, W_xh, W_hh, b_h."""
    ### BEGIN SOLUTION
    da = dh_t * (1 - h_t**2)
    return {"x_t": da @ W_xh, "h_prev": da @ W_hh, "W_xh": da.T @ x_t, "W_hh": da.T @ h_prev, "b_h": da.sum(axis=0)}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rnn_cell_backward_test", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _check_cell_backward(seed: int, B: int = 3, n_in: int = 4, H: int = 5) -> None:
    r = np.random.default_rng(seed)
    x_t, h_prev = r.normal(size=(B, n_in)), r.normal(size=(B, H))
    W_xh, W_hh, b_h = r.normal(size=(H, n_in)), r.normal(size=(H, H)) * 0.5, r.normal(size=H)
    h_t = np.tanh(x_t @ W_xh.T + h_prev @ W_hh.T + b_h)
    dh_t = r.normal(size=(B, H))
    got = my_rnn_cell_backward(dh_t, h_t, x_t, h_prev, W_xh, W_hh)
    if not isinstance(got, dict) or set(got) != {"x_t", "h_prev", "W_xh", "W_hh", "b_h"}:
        raise CheckFailed(f"return a dict with keys x_t, h_prev, W_xh, W_hh, b_h; got {type(got).__name__} "
                          f"{sorted(got) if isinstance(got, dict) else ''}")
    # the reference: autograd on the same step
    tx, th, tW_xh, tW_hh, tb = (torch.tensor(v, requires_grad=True) for v in (x_t, h_prev, W_xh, W_hh, b_h))
    (torch.tanh(tx @ tW_xh.T + th @ tW_hh.T + tb) * torch.from_numpy(dh_t)).sum().backward()
    if np.shape(got["W_xh"]) == (H, n_in) and np.allclose(got["W_xh"], dh_t.T @ x_t):
        raise CheckFailed("grad W_xh ignores the tanh: multiply dh_t by (1 - h_t**2) first.")
    for name, ref in [("W_xh", tW_xh), ("W_hh", tW_hh), ("b_h", tb), ("x_t", tx), ("h_prev", th)]:
        check_close(f"grad {name}", got[name], ref.grad)


_check_cell_backward(0)
### BEGIN HIDDEN TESTS
_check_cell_backward(1, B=1, n_in=2, H=7)
_check_cell_backward(2, B=6, n_in=3, H=2)
_r = np.random.default_rng(4)
_args = (_r.normal(size=(2, 3)), np.tanh(_r.normal(size=(2, 3))), _r.normal(size=(2, 4)), _r.normal(size=(2, 3)),
         _r.normal(size=(3, 4)), _r.normal(size=(3, 3)))
_ref = rnn_cell_backward(*_args)
_got = my_rnn_cell_backward(*_args)
for _k in _ref:
    check_close(f"grad {_k} vs course_utils", _got[_k], _ref[_k])
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 (2 points): clipping by global norm
#
# `grads` is a dict of numpy arrays. Compute the global norm $\lVert g\rVert = \sqrt{\sum \text{all squared entries}}$;
# if it exceeds `max_norm`, multiply every gradient by `max_norm / (norm + 1e-6)`; else leave
# them unchanged. Return `(clipped, norm)`: a **new** dict (do not modify `grads`) and the norm
# before clipping, as a float.

# %% nbgrader={"grade": false, "grade_id": "clip_grad_norm", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_clip_grad_norm(grads, max_norm):
    """Rescale all gradients together so their global L2 norm is at most max_norm."""
    ### BEGIN SOLUTION
    norm = float(np.sqrt(sum(np.sum(g**2) for g in grads.values())))
    scale = min(1.0, max_norm / (norm + 1e-6))
    return {k: g * scale for k, g in grads.items()}, norm
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "clip_grad_norm_test", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _check_clip(seed: int, max_norm: float) -> None:
    r = np.random.default_rng(seed)
    grads = {"W": r.normal(size=(3, 4)), "b": r.normal(size=3)}
    original = {k: v.copy() for k, v in grads.items()}
    result = my_clip_grad_norm(grads, max_norm)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed("return a tuple (clipped_dict, norm_before)")
    clipped, norm = result
    for k in grads:
        check_close(f"grads[{k!r}] after the call (must be unchanged)", grads[k], original[k], quiet=True)
    tensors = [torch.tensor(v) for v in original.values()]
    for t_, v in zip(tensors, original.values(), strict=True):
        t_.grad = torch.tensor(v)
    expected_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm).item()
    if isinstance(norm, (int, float, np.floating)) and abs(norm - expected_norm) > 1e-9 * expected_norm:
        if abs(norm - expected_norm * min(1, max_norm / expected_norm)) < 1e-6:
            raise CheckFailed("the returned norm is the norm after clipping; return the norm before.")
    from course_utils import check_scalar
    check_scalar("norm before clipping", norm, expected_norm)
    for k, t_ in zip(original, tensors, strict=True):
        check_close(f"clipped[{k!r}]", clipped[k], t_.grad)


_check_clip(0, max_norm=1.0)  # clipped
_check_clip(0, max_norm=100.0)  # below the threshold: unchanged
### BEGIN HIDDEN TESTS
_check_clip(3, max_norm=0.5)
_r = np.random.default_rng(5)
_g = {k: _r.normal(size=(4, 4)) * 10 for k in "abc"}
_ref, _n = clip_grad_norm(_g, 2.0)
_got, _n2 = my_clip_grad_norm(_g, 2.0)
for _k in _g:
    check_close(f"clipped[{_k!r}] vs course_utils", _got[_k], _ref[_k])
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - The loss of a sequence is a sum over time; $\partial L/\partial o_t = \hat y_t - y_t$ for both MSE and softmax cross-entropy.
# - BPTT is backpropagation on the unrolled graph. The total gradient of a hidden state,
#   $\delta h_t = W_{hy}^\top \delta o_t + W_{hh}^\top \delta a_{t+1}$, collects all later losses;
#   each shared weight's gradient is a sum over time steps. Our numpy backward matches finite
#   differences and autograd (errors printed above).
# - A numpy char-RNN trained with it goes from random characters to word-like text (samples above).
# - Through $k$ steps the gradient is multiplied by $k$ Jacobians $\operatorname{diag}(1-h^2)W_{hh}$:
#   it vanishes when the spectral radius is below 1 or the tanh saturates, and can explode above 1.
# - Clipping by norm bounds the step without turning it; truncated BPTT with `detach()` bounds
#   memory and gives more updates, at the price of gradients that reach at most $k$ steps back.
#
# Next: **03 · LSTM**, a cell designed so that the gradient does not have to vanish.

# %%
report_run_time()
