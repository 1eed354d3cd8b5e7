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
# # 03 · LSTM: a memory cell with gates
#
# **Objectives.** By the end of this notebook you will
# 1. know the LSTM's cell state and its forget, input and output gates and candidate, with
#    every symbol of the equations matched to a name in the code,
# 2. have an LSTM cell in numpy and in PyTorch (`course_utils.lstm`) that computes exactly
#    what `torch.nn.LSTM` computes, and know PyTorch's `i, f, g, o` weight layout,
# 3. count an LSTM's parameters two ways and explain why PyTorch reports more,
# 4. know the peephole variant,
# 5. see *why* the cell state helps: gradients that survive long time lags, and a task —
#    the adding problem — that an LSTM learns and a plain RNN does not,
# 6. derive the LSTM's backward pass by hand (the appendix checks that the course's fast LSTM
#    runs exactly that derivation), and run it over a whole sequence in numpy, carrying both
#    $\delta h$ and $\delta c$ back in time, checked against `torch.nn.LSTM` and finite differences,
# 7. know what gates do *not* fix: exploding gradients, and why every model here is clipped,
# 8. look at the gates at work, on the adding problem and on real text.
#
# It builds on **02 · BPTT**, where the gradient of a plain RNN shrank (or blew up) by a
# factor per step. It runs in well under a minute on a laptop CPU.
#
# Helpers: `course_utils/lstm.py` (the cell and the layer, in numpy and PyTorch),
# `course_utils/lstm_backward.py` (the backward pass by hand) and `course_utils/long_range.py`
# (a recurrent layer read at its last step, and its gradient by time lag).

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
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_utils import (
    check_close,
    evaluate,
    fit,
    report_run_time,
    seed_everything,
    start_notebook,
    supervised,
    tolerance,
)
from course_utils.data.adding import BASELINE_MSE, HALF_TASK_MSE, adding_batches, adding_problem, adding_yardsticks
from course_utils.data.text import CharVocab, load_corpus
from course_utils.long_range import SequenceToOne, gradient_by_lag
from course_utils.lstm import (
    LSTM,
    LSTM_GATES,
    LSTMCell,
    lstm_cell_numpy,
    lstm_forward_numpy,
    lstm_param_count,
    lstm_weights_from_torch,
)
from course_utils.lstm_backward import LSTMHandwrittenBPTT
from course_utils.shared.gated import gate_slices
from course_utils.shared.layers import count_parameters, time_first_copy
from course_utils.shared.lm import RecurrentLM, char_accuracy, lm_batches, next_token_loss

device = start_notebook()

# %% [markdown]
# ## 1. The idea: a state that is *added to*, not rewritten
#
# A plain RNN rewrites its whole state every step, $h_t = \tanh(W_{xh} x_t + W_{hh} h_{t-1} + b)$,
# so the gradient from step $t$ back to step $t-k$ is a product of $k$ Jacobians
# $\operatorname{diag}(1 - h^2)\,W_{hh}$, which shrinks or grows geometrically (notebook 02).
#
# The LSTM (Hochreiter & Schmidhuber 1997; the forget gate is from Gers, Schmidhuber &
# Cummins 2000) adds a second state, the **cell state** $c_t$, updated by *gated addition*:
#
# $$
# \begin{aligned}
# i_t &= \sigma(W_{xi} x_t + W_{hi} h_{t-1} + b_i) && \text{input gate: how much to write}\\
# f_t &= \sigma(W_{xf} x_t + W_{hf} h_{t-1} + b_f) && \text{forget gate: how much to keep}\\
# g_t &= \tanh(W_{xg} x_t + W_{hg} h_{t-1} + b_g) && \text{candidate } \tilde C_t\text{: what to write}\\
# o_t &= \sigma(W_{xo} x_t + W_{ho} h_{t-1} + b_o) && \text{output gate: how much to show}\\
# c_t &= f_t \odot c_{t-1} + i_t \odot g_t && \text{cell state}\\
# h_t &= o_t \odot \tanh(c_t) && \text{hidden state (the output)}
# \end{aligned}
# $$
#
# Along the cell state, $\partial c_t / \partial c_{t-1} = \operatorname{diag}(f_t)$ (plus
# paths through $h$): no weight matrix, no squashing. If the forget gate stays near 1, the
# memory — and its gradient — survives many steps. We derive the whole backward pass in
# section 6 and check this Jacobian in section 7.
#
# **Notation.** Many texts (Olah's *Understanding LSTM Networks*, for one) write each gate as
# one matrix acting on the concatenation, $f_t = \sigma(W_f\,[h_{t-1}, x_t] + b_f)$; that $W_f$
# is just $[W_{hf} \mid W_{xf}]$ side by side. The candidate is $\tilde C_t$ there and $g_t$ in
# PyTorch's documentation; the code uses `g`, as PyTorch does. Here is every symbol with its name in `course_utils.lstm`
# (rows of the stacked weights, hidden size $H$):
#
# | math | code | shape | rows of the stack |
# | --- | --- | --- | --- |
# | $x_t$, $h_{t-1}$, $c_{t-1}$ | `x`, `h_prev`, `c_prev` | (B, I), (B, H), (B, H) | |
# | $i_t, f_t, g_t, o_t$ | `i`, `f`, `g`, `o` | (B, H) each | |
# | $W_{xi}, W_{xf}, W_{xg}, W_{xo}$ | `W_x` = PyTorch's `weight_ih_l0` | (4H, I) | `0:H`, `H:2H`, `2H:3H`, `3H:4H` |
# | $W_{hi}, W_{hf}, W_{hg}, W_{ho}$ | `W_h` = `weight_hh_l0` | (4H, H) | same |
# | $b_i, b_f, b_g, b_o$ | `b` = `bias_ih_l0 + bias_hh_l0` | (4H,) | same |
# | $c_t$, $h_t$ | `c`, `h` | (B, H) | |
#
# Inputs are batched as rows, so $W_{xf} x_t$ becomes `x @ W_x[H:2H].T`. All four blocks are
# computed with one matrix product each for `x` and `h_prev`, then split.

# %% [markdown]
# ## 2. The cell from scratch, checked against `torch.nn.LSTM`
#
# `torch.nn.LSTM` stores the four blocks stacked in the order **i, f, g, o**:

# %%
seed_everything(0)
n_in, H, B, T = 4, 5, 3, 6  # n_in is the input size I
reference = torch.nn.LSTM(n_in, H).double().to(device)  # float64: the comparison tests the maths, not rounding
for name, p in reference.named_parameters():
    print(f"{name:14s} {tuple(p.shape)}")
print("row blocks of weight_ih_l0:", {k: (s.start, s.stop) for k, s in gate_slices(H).items()})

# %% [markdown]
# We copy its weights into numpy (`lstm_weights_from_torch` adds the two bias vectors,
# section 3 says why) and run our numpy cell over a sequence, step by step, with
# `lstm_forward_numpy`. The input is time-major, `(T, B, I)`, PyTorch's default layout.

# %%
xs = torch.randn(T, B, n_in, dtype=torch.float64)  # (T, B, n_in)
weights = lstm_weights_from_torch(reference)  # {"W_x": (4H, n_in), "W_h": (4H, H), "b": (4H,)}
zeros = np.zeros((B, H))
hs_numpy, (h_numpy, c_numpy) = lstm_forward_numpy(xs.numpy(), zeros, zeros, **weights)  # (T, B, H)

with torch.no_grad():
    hs_torch, (h_torch, c_torch) = reference(xs.to(device))  # (T, B, H); state (1, B, H)
rtol, atol = tolerance(torch.float64, device)
check_close("numpy LSTM outputs vs torch.nn.LSTM", hs_torch, torch.from_numpy(hs_numpy), rtol=rtol, atol=atol)
check_close("numpy final cell state vs torch.nn.LSTM", c_torch[0], torch.from_numpy(c_numpy), rtol=rtol, atol=atol)

# %% [markdown]
# The PyTorch version, `course_utils.lstm.LSTM`, has two paths. Asked for the gates (or built
# with peepholes), it runs `LSTMCell` step by step in a Python loop, every step visible to
# autograd. A plain LSTM instead projects the inputs of all $T$ steps at once and runs the same
# equations through `LSTMHandwrittenBPTT`, whose backward pass is written by hand (section 6; the appendix checks it). `LSTM.from_torch` copies the weights.
# Like `torch.nn.LSTM` (and the course's `RNN` of notebook 01), it takes and returns the
# state with a leading layer axis: `(h, c)`, each `(1, B, H)`.
# We also compare all four gates of one step with the numpy cell, naming each gate, so a
# wrong block would show up by name:

# %%
ours = LSTM.from_torch(reference)
with torch.no_grad():
    hs_ours, (h_ours, c_ours), gates_ours = ours(xs.to(device), return_gates=True)
check_close("course LSTM outputs vs torch.nn.LSTM", hs_ours, hs_torch, rtol=rtol, atol=atol)
check_close("course LSTM final state (h, c), each (1, B, H), vs torch.nn.LSTM", torch.stack([h_ours, c_ours]),
            torch.stack([h_torch, c_torch]), rtol=rtol, atol=atol)

_, _, gates_numpy = lstm_cell_numpy(xs[0].numpy(), zeros, zeros, **weights)  # step t = 0
stacked_numpy = np.concatenate([gates_numpy[k] for k in LSTM_GATES], axis=1)  # (B, 4H), blocks i, f, g, o
stacked_ours = torch.cat([gates_ours[k][0] for k in LSTM_GATES], dim=1)  # (B, 4H)
check_close("gates at t=0, torch vs numpy", stacked_ours, torch.from_numpy(stacked_numpy),
            rtol=rtol, atol=atol, parts=gate_slices(H))

# %% [markdown]
# The layout matters. Read the blocks in another order — say `i, f, o, g`, swapping the
# last two — and the cell is a different function:

# %%
s = gate_slices(H)
order = np.r_[s["i"], s["f"], s["o"], s["g"]]  # row indices in the wrong order
swapped = {"W_x": weights["W_x"][order], "W_h": weights["W_h"][order], "b": weights["b"][order]}
hs_swapped, _ = lstm_forward_numpy(xs.numpy(), zeros, zeros, **swapped)
print(f"max |difference| with g and o swapped: {np.abs(hs_swapped - hs_numpy).max():.3f}")
assert np.abs(hs_swapped - hs_numpy).max() > 1e-2

# %% [markdown]
# ## 3. Counting parameters
#
# Each of the four blocks has a weight matrix for the input ($H \times I$), one for the
# previous hidden state ($H \times H$) and a bias ($H$). The usual count is
#
# $$N = 4\,\big((I + H)\,H + H\big),$$
#
# which for an example with $I = 100$, $H = 50$ is computed below. `torch.nn.LSTM(100, 50)`
# reports more:

# %%
seed_everything(0)
example = torch.nn.LSTM(100, 50)
textbook = lstm_param_count(100, 50, n_biases=1)
pytorch = count_parameters(example)
print(f"textbook 4*((I+H)*H + H)   = {textbook:,}")
print(f"torch.nn.LSTM(100, 50)     = {pytorch:,}   (= 4*((I+H)*H + 2H) = {lstm_param_count(100, 50, n_biases=2):,})")
print(f"course_utils LSTMCell      = {count_parameters(LSTMCell(100, 50)):,}")
print(f"difference                 = {pytorch - textbook} = 4H: one extra bias vector per block")
assert pytorch == lstm_param_count(100, 50, n_biases=2) and pytorch - textbook == 4 * 50

# %% [markdown]
# PyTorch (following cuDNN) keeps two biases, `bias_ih` (added to $W_x x$) and `bias_hh`
# (added to $W_h h$). Inside an LSTM they are only ever *added*, so only their sum matters:
# the 200 extra numbers are redundant. Check it: move $\delta$ from one bias to the other and
# the output does not change.

# %%
x100 = torch.randn(7, 2, 100)  # (T, B, I)
with torch.no_grad():
    before, _ = example(x100)
    delta = torch.randn(4 * 50)
    example.bias_ih_l0 += delta
    example.bias_hh_l0 -= delta
    after, _ = example(x100)
print(f"max |output change| after moving a random delta between the biases: {(after - before).abs().max():.1e}")
assert torch.allclose(after, before, atol=1e-5)

# %% [markdown]
# (The same is *not* true of PyTorch's GRU, notebook 04.) So both counts are right: the
# textbook counts the parameters the function needs, PyTorch counts what it stores.

# %% [markdown]
# ## 4. A variant: the peephole LSTM
#
# In the LSTM above the gates see $x_t$ and $h_{t-1}$, but not the cell state itself —
# $h_{t-1}$ is only a squashed, output-gated view of it. Gers & Schmidhuber (2000) added
# **peephole connections**: diagonal weights $p_i, p_f, p_o$ (one number per unit) from the cell
# state to the gates,
#
# $$
# i_t = \sigma(\dots + p_i \odot c_{t-1}),\qquad
# f_t = \sigma(\dots + p_f \odot c_{t-1}),\qquad
# o_t = \sigma(\dots + p_o \odot c_t),
# $$
#
# the output gate looking at the *new* cell state. That is $3H$ more parameters. PyTorch has
# no peephole LSTM, so we check our PyTorch cell against the numpy one, with random
# peephole weights, and check that zero peepholes give back `torch.nn.LSTMCell`:

# %%
seed_everything(1)
cell = LSTMCell(n_in, H, peephole=True).double().to(device)
with torch.no_grad():
    cell.peephole.normal_()  # (3, H): rows p_i, p_f, p_o
x, h_prev, c_prev = (torch.randn(B, n, dtype=torch.float64) for n in (n_in, H, H))
with torch.no_grad():
    h_peep, c_peep = cell(x.to(device), (h_prev.to(device), c_prev.to(device)))
w = {k: getattr(cell, k).detach().cpu().numpy() for k in ("W_x", "W_h", "b", "peephole")}
h_ref, c_ref, _ = lstm_cell_numpy(x.numpy(), h_prev.numpy(), c_prev.numpy(), **w)
check_close("peephole cell h, torch vs numpy", h_peep, torch.from_numpy(h_ref), rtol=rtol, atol=atol)

plain = torch.nn.LSTMCell(n_in, H).double().to(device)
with torch.no_grad():
    cell.W_x.copy_(plain.weight_ih)
    cell.W_h.copy_(plain.weight_hh)
    cell.b.copy_(plain.bias_ih + plain.bias_hh)
    cell.peephole.zero_()
    state = (h_prev.to(device), c_prev.to(device))
    check_close("peephole cell with p = 0 vs torch.nn.LSTMCell", cell(x.to(device), state)[0],
                plain(x.to(device), state)[0], rtol=rtol, atol=atol)
n_plain, n_peep = count_parameters(LSTMCell(n_in, H)), count_parameters(LSTMCell(n_in, H, peephole=True))
print(f"parameters (one bias per block): plain {n_plain}, peephole {n_peep} = plain + 3H = {n_plain} + {3 * H}")
assert n_peep == n_plain + 3 * H

# %% [markdown]
# ## 5. A long-range task: the adding problem
#
# Each sequence has $T$ steps with two inputs: a value $u_t \sim U[0, 1]$ and a marker that is
# 1 at exactly two steps, one in each half of the sequence. The target is the sum of the two
# marked values. The model reads the whole sequence and answers at the end, so it must hold
# the first value for at least $T/2$ steps while ignoring everything unmarked.
#
# The trivial answer is the constant 1 (the mean of $u_1 + u_2$); its MSE is
# $\operatorname{Var}(u_1 + u_2) = 2 \cdot \tfrac{1}{12} = \tfrac16$. A model that has not
# learned to remember sits at that baseline.

# %%
T_ADD, HIDDEN, STEPS, BATCH, LR = 50, 32, 800, 64, 1e-2
x_test, y_test = adding_problem(2000, T_ADD, seed=12345)
print("one sequence: values", x_test[0, :6, 0].numpy().round(2), "... markers at", x_test[0, :, 1].nonzero().flatten().tolist(),
      "target", round(y_test[0].item(), 3))
baseline = torch.mean((y_test - 1.0) ** 2).item()
print(f"test MSE of always answering 1: {baseline:.4f} (theory 1/6 = {BASELINE_MSE:.4f})")

# %% [markdown]
# We train a plain tanh RNN (`torch.nn.RNN`, as in notebook 02) and an LSTM, both with
# $H$ = 32 units, the same fresh batches (one pass over `STEPS` batches of 64 new
# sequences), Adam and gradient clipping. The only LSTM-specific choice: its forget-gate bias
# starts at 1 rather than near 0 (`set_forget_bias`), so $f \approx \sigma(1)$ from the
# start (printed below) — a standard trick (Jozefowicz et al. 2015): more of the cell state,
# and of the gradient along it, survives each step at the start of training. At this length
# and budget it is not what makes the LSTM learn: with PyTorch's own initialisation ($b_f$
# near 0) the same run also ends far below the baseline (measured on a CPU: test MSE 0.0011,
# against 0.0005 with $b_f = 1$). Exercise 4 measures what the bias does change.

# %%
mse = supervised(torch.nn.functional.mse_loss)
train_batches = adding_batches(STEPS, BATCH, T_ADD, seed=1)
adding_models, initial_models, adding_histories, adding_test = {}, {}, {}, {}
for kind in ("RNN", "LSTM"):
    seed_everything(0)
    model = SequenceToOne(kind, input_size=2, hidden_size=HIDDEN, forget_bias=1.0).to(device)
    adding_models[kind] = model
    initial_models[kind] = copy.deepcopy(model)  # kept untrained, for section 7
    if kind == "LSTM":
        f_start = torch.sigmoid(model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0)[gate_slices(HIDDEN)["f"]]
        print(f"LSTM forget gate for zero input and state: sigmoid(b_f) = {f_start[0]:.2f} in every unit")
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    adding_histories[kind] = fit(model, train_batches, mse, optimizer, clip_grad_norm=1.0, desc=kind)
    adding_test[kind] = evaluate(model, [(x_test, y_test)], mse)
    print(f"{kind}: test MSE {adding_test[kind]:.4f}  (baseline {baseline:.4f}), {adding_histories[kind].seconds:.1f} s")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
for ax, kind in zip(axes, ("RNN", "LSTM"), strict=True):
    ax.plot(adding_histories[kind].losses, alpha=0.4, label="train (per batch)")
    ax.axhline(baseline, color="k", ls="--", label="baseline: answer 1")
    ax.axhline(adding_test[kind], color="C3", label=f"test MSE {adding_test[kind]:.3f}")
    ax.set_yscale("log")
    ax.set_title(f"{kind}, adding problem T={T_ADD}")
    ax.set_xlabel("optimiser step")
    ax.legend()
axes[0].set_ylabel("MSE")
plt.show()
print(f"The LSTM's test MSE is {adding_test['LSTM']:.4f}, {baseline / adding_test['LSTM']:.0f} times below the baseline; "
      f"the RNN's is {adding_test['RNN']:.4f}, {adding_test['RNN'] / baseline:.0%} of the baseline.")
assert adding_test["LSTM"] < 0.05 * baseline, "the LSTM should solve the adding problem"
assert adding_test["RNN"] > 0.6 * baseline, "the plain RNN should stay near the baseline"

# %% [markdown]
# ### Yardsticks: half the task scores 1/12
#
# Between "nothing learned" (1/6) and "solved" there is a trap worth a number. A model that
# remembers only *one* of the two marked values — say the second, which is never more than
# $T/2$ steps from the answer — can do no better than answer $u_2 + \mathbb{E}[u_1] = u_2 + \tfrac12$.
# Its error is $u_1 - \tfrac12$, so its MSE is
# $\operatorname{Var}(u_1) = \tfrac1{12} \approx 0.083$, half the baseline's
# $\operatorname{Var}(u_1 + u_2) = \tfrac16$. A training curve that flattens near 0.083 has
# learned half the task. `adding_yardsticks` builds these predictions from the inputs; we
# measure them on the test set and place the two trained models against them.

# %%
yardsticks = {name: torch.mean((pred - y_test) ** 2).item() for name, pred in adding_yardsticks(x_test).items()}
for name, value in yardsticks.items():
    print(f"{name:19s} test MSE {value:.4f}")
print(f"theory: 1/6 = {BASELINE_MSE:.4f}, 1/12 = {HALF_TASK_MSE:.4f}")
check_close("constant 1 vs 1/6", yardsticks["constant 1"], BASELINE_MSE, rtol=0.1, atol=0.0)
for name in ("first marker only", "second marker only"):
    check_close(f"{name} vs 1/12", yardsticks[name], HALF_TASK_MSE, rtol=0.1, atol=0.0)
print(f"LSTM {adding_test['LSTM']:.4f}: {HALF_TASK_MSE / adding_test['LSTM']:.0f} times below the half-task "
      f"yardstick, so it uses both values; RNN {adding_test['RNN']:.4f}: above 1/12, so not even one value is "
      "remembered well.")
assert adding_test["LSTM"] < 0.1 * HALF_TASK_MSE < HALF_TASK_MSE < adding_test["RNN"]

# %% [markdown]
# The RNN's loss drops to the baseline quickly — it learns to answer about 1 — and stays
# there: no gradient signal from the first marker reaches it. The LSTM also sits on the
# plateau for a while, then finds the solution.
#
# ## 6. The backward pass, by hand
#
# Autograd computes the LSTM's gradients for us, but one step's backward pass is short
# enough to derive, and it shows where the cell state's gradient goes. Take one step and
# suppose the gradients of the loss with respect to its two outputs have arrived from later:
# $\delta h_t = \partial L / \partial h_t$ (`dh`: from the output at step $t$ and from step
# $t+1$) and $\delta c_t = \partial L / \partial c_t$ (`dc`: from step $t+1$). Name the
# **pre-activations** $a_t = x_t W_x^\top + h_{t-1} W_h^\top + b$ (`a`, shape (B, 4H)) and
# their blocks $a_i, a_f, a_g, a_o$, so that $i_t = \sigma(a_i)$, $f_t = \sigma(a_f)$,
# $g_t = \tanh(a_g)$, $o_t = \sigma(a_o)$. Everything is element-wise except in step 4;
# $\sigma' = \sigma(1 - \sigma)$ and $\tanh' = 1 - \tanh^2$.
#
# 1. $c_t$ reaches the loss twice: directly, and through $h_t = o_t \odot \tanh(c_t)$. The
#    total gradient at $c_t$ (the code adds it into `dc`) is
#    $$\bar\delta c_t = \delta c_t + \delta h_t \odot o_t \odot \big(1 - \tanh^2(c_t)\big).$$
# 2. The four pre-activations (`dA`, (B, 4H)), from $c_t = f_t \odot c_{t-1} + i_t \odot g_t$ and $h_t$:
#    $$
#    \begin{aligned}
#    \delta a_i &= \bar\delta c_t \odot g_t \odot i_t (1 - i_t), &
#    \delta a_f &= \bar\delta c_t \odot c_{t-1} \odot f_t (1 - f_t),\\
#    \delta a_g &= \bar\delta c_t \odot i_t \odot (1 - g_t^2), &
#    \delta a_o &= \delta h_t \odot \tanh(c_t) \odot o_t (1 - o_t).
#    \end{aligned}
#    $$
# 3. **The cell path**: $c_{t-1}$ enters $c_t$ only through $f_t \odot c_{t-1}$, so
#    $$\delta c_{t-1} = \bar\delta c_t \odot f_t \qquad (\texttt{dc\_prev}).$$
# 4. Stack $\delta a = [\delta a_i, \delta a_f, \delta a_g, \delta a_o]$ in PyTorch's order
#    i, f, g, o and go back through $a_t = x_t W_x^\top + h_{t-1} W_h^\top + b$:
#    $$
#    \delta x_t = \delta a\, W_x,\quad \delta h_{t-1} = \delta a\, W_h,\quad
#    \delta W_x = \delta a^\top x_t,\quad \delta W_h = \delta a^\top h_{t-1},\quad
#    \delta b = \textstyle\sum_{\text{batch}} \delta a
#    $$
#    (`dx`, `dh_prev`, `dW_x`, `dW_h`, `db`; with column vectors, $\delta h_{t-1} = W_h^\top \delta a$).
#
# Step 3 is the LSTM's point: between $\delta c_t$ and $\delta c_{t-1}$ there is only the
# factor $f_t$ — no weight matrix, no squashing. Step 4 is the other road back in time,
# through the gates and $W_h$, like a plain RNN's. Exercise 3 asks you to write one step in numpy,
# Exercise 5 the loop over a whole sequence that carries both $\delta h$ and $\delta c$ back.
#
# **Over time.** The course's `LSTM` runs exactly this derivation in a loop from $t = T-1$ down
# to $0$ (`LSTMHandwrittenBPTT`); the appendix at the end matches it line by line and checks it
# against autograd.

# %% [markdown]
# ## 7. Why it helps: gradients across time lags
#
# First the claim of sections 1 and 6, checked with autograd: with $x_t$ and $h_{t-1}$ fixed, the
# Jacobian of $c_t$ with respect to $c_{t-1}$ is exactly $\operatorname{diag}(f_t)$.

# %%
seed_everything(2)
cell = LSTMCell(n_in, H).double()
x, h_prev, c_prev = (torch.randn(1, n, dtype=torch.float64) for n in (n_in, H, H))
jacobian = torch.autograd.functional.jacobian(lambda c: cell(x, (h_prev, c))[1], c_prev)[0, :, 0, :]  # (H, H)
f_gate = cell.step(x, (h_prev, c_prev))[2]["f"][0]  # (H,)
check_close("dc_t/dc_{t-1} vs diag(f_t)", jacobian, torch.diag(f_gate).detach())

# %% [markdown]
# Now the whole model. `gradient_by_lag` measures $\lVert \partial \hat y / \partial x_t \rVert$,
# how much the prediction at the end moves with the input $k = T-1-t$ steps earlier
# (averaged over 256 test sequences), for both models before and after training:

# %%
probe = x_test[:256].to(device)
lags = {
    "RNN, at initialisation": gradient_by_lag(initial_models["RNN"], probe),
    "RNN, trained": gradient_by_lag(adding_models["RNN"], probe),
    "LSTM, at initialisation": gradient_by_lag(initial_models["LSTM"], probe),
    "LSTM, trained": gradient_by_lag(adding_models["LSTM"], probe),
}
fig, ax = plt.subplots(figsize=(7, 3.5))
for (label, norms), style in zip(lags.items(), ("C0:", "C0-", "C1:", "C1-"), strict=True):
    ax.semilogy(norms.numpy(), style, label=label)
ax.set_xlabel("lag k (steps before the end)")
ax.set_ylabel(r"$\|\partial \hat y / \partial x_{T-1-k}\|$")
ax.legend()
plt.show()
for label, norms in lags.items():
    print(f"{label:24s} lag 0: {norms[0]:.1e}   lag {T_ADD - 1}: {norms[-1]:.1e}   ratio {norms[-1] / norms[0]:.1e}")
assert lags["LSTM, trained"][-1] / lags["LSTM, trained"][0] > 100 * lags["RNN, trained"][-1] / lags["RNN, trained"][0]

# %% [markdown]
# Read the ratios, not the absolute values. The RNN's sensitivity to the first
# inputs is many orders of magnitude below its sensitivity to the last one: the gradient
# that should teach it to remember the first marker vanishes, exactly the problem of
# notebook 02, before and after training. The trained LSTM's curve is nearly flat — it
# keeps a gradient alive over the whole sequence. Note the LSTM at initialisation: it decays
# too. Gates do not make
# gradients survive by themselves; they make it *possible* to learn a forget gate near 1
# where memory is needed, and then the gradient survives.
#
# ## 8. Vanishing is tamed, exploding is not
#
# A common summary table of recurrent cells says that LSTMs "mitigate exploding
# gradients". Half of that is wrong, and section 6 says which half. Along the cell path,
# $\delta c_{t-1} = \bar\delta c_t \odot f_t$, and a forget gate is a sigmoid, so this factor is
# never above 1: the cell path cannot blow a gradient up, and with $f_t$ near 1 it hardly
# shrinks it either — that is how the LSTM tames **vanishing** gradients. But it is not the
# only road back in time: $\delta h_{t-1} = \delta a\, W_h$ runs through the recurrent
# weights and the gates, as in a plain RNN, and products of those Jacobians can grow as
# geometrically as notebook 02's. Nothing in the cell bounds them.
#
# We measure it on an LSTM that looks like one built to remember: forget bias 4 (so
# $f \approx 0.98$ at the start) and recurrent weights $W_h$ at 8 times PyTorch's initial
# scale. For each lag $k$ we compare the gradient of the prediction with respect to the
# input $k$ steps back (as in section 7) with the cell path's own factor, the product of the
# forget gates over those $k$ steps (averaged over units and sequences).

# %%
seed_everything(0)
FORGET_BIAS, W_H_SCALE = 4.0, 8.0
wild = SequenceToOne("LSTM", input_size=2, hidden_size=HIDDEN, forget_bias=FORGET_BIAS).to(device)
with torch.no_grad():
    wild.rnn.weight_hh_l0.mul_(W_H_SCALE)
wild_lags = gradient_by_lag(wild, probe)  # (T,) by lag k
with torch.no_grad():
    _, _, wild_gates = LSTM.from_torch(time_first_copy(wild.rnn))(probe.transpose(0, 1), return_gates=True)
f_gates = wild_gates["f"].cpu()  # (T, 256, H)
# the cell path from c_{T-1} back to c_{T-1-k}: the product of f over the k steps after T-1-k
cell_path = torch.cat([torch.ones(1, *f_gates.shape[1:]), f_gates.flip(0)[:-1].cumprod(0)]).mean(dim=(1, 2))  # (T,)
tame_lags = lags["LSTM, at initialisation"]

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.semilogy((wild_lags / wild_lags[0]).numpy(), "C3-", label=f"LSTM, f bias {FORGET_BIAS:g}, W_h x {W_H_SCALE:g}: full gradient")
ax.semilogy(cell_path.numpy(), "C3:", label="... its cell path alone: product of f")
ax.semilogy((tame_lags / tame_lags[0]).numpy(), "C1:", label="LSTM at initialisation (section 7): full gradient")
ax.axhline(1.0, color="k", lw=0.5)
ax.set_xlabel("lag k (steps before the end)")
ax.set_ylabel("gradient at lag k / at lag 0")
ax.legend(fontsize=8)
plt.show()
growth = (wild_lags.max() / wild_lags[0]).item()
print(f"largest gradient over the lags: {growth:.1e} times the gradient at lag 0 (at lag {int(wild_lags.argmax())}); "
      f"the cell path's factor stays at or below {cell_path.max():.2f} (at lag {T_ADD - 1}: {cell_path[-1]:.2f})")
assert growth > 100, "the LSTM's gradient should explode with the lag"
assert cell_path.max() <= 1.0, "the cell path's factor is a product of sigmoids"

# %% [markdown]
# The cell path's factor (dotted red) decays, as promised, and never exceeds 1; the full
# gradient (solid red) grows by orders of magnitude with the lag. The growth comes from
# the road through $W_h$. Training can push a model into that regime: the gradient norms
# that `fit` recorded before clipping while the LSTM of section 5 learned the adding problem
# (it was trained with `clip_grad_norm=1.0`):

# %%
norms_before_clip = np.array(adding_histories["LSTM"].grad_norms)  # (STEPS,)
median_norm = np.median(norms_before_clip)
spike_step = int(norms_before_clip.argmax())
loss_before_spike = float(np.mean(adding_histories["LSTM"].losses[max(spike_step - 20, 0):spike_step + 1]))
print(f"gradient norm before clipping: median {median_norm:.3f}, largest {norms_before_clip.max():.2f} "
      f"({norms_before_clip.max() / median_norm:.0f} times the median) at step {spike_step}; "
      f"clipped (norm above 1) in {np.mean(norms_before_clip > 1.0):.0%} of the steps")
print(f"training loss over the 20 steps before the largest spike: {loss_before_spike:.4f} (baseline {baseline:.4f})")
fig, ax = plt.subplots(figsize=(7, 3))
ax.semilogy(norms_before_clip, lw=0.8)
ax.axhline(1.0, color="C3", ls="--", label="clipping threshold")
ax.set(xlabel="optimiser step", ylabel="gradient norm before clipping", title="LSTM, adding problem (section 5)")
ax.legend()
plt.show()
assert norms_before_clip.max() > 5 * median_norm, "the LSTM's gradient norm should spike during training"
assert median_norm < 1.0, "clipping at 1 should leave the typical step alone"

# %% [markdown]
# The LSTM's gradient norm spikes during training, far above its typical size. The two
# measurements show different things. The scaled LSTM shows the mechanism: through $W_h$ an
# LSTM's gradient *can* grow with the lag, and nothing in the cell bounds it. The training run
# shows only that the norm jumps, not why: a steep wall of the loss surface would do that too,
# and we did not measure the gradient by lag at that step (compare the printed loss before the
# spike with the baseline to see whether the model had already learned to remember).
#
# **Gates fix vanishing gradients, not exploding ones.** The cell path gives the gradient a
# road along which it need not decay; a gradient can still jump far above its usual size, gated
# cell or not. So this notebook and the next clip the gradient norm of *every* model (notebook
# 02, section 5): clipping leaves the usual gradients alone and rescales a large one to norm 1
# before the optimiser sees it.
#
# ## 9. The gates at work
#
# ### On the adding problem
#
# We copy the trained `torch.nn.LSTM` into our loop version (which returns the gates) and
# run it on one test sequence. The model is batch-first, ours time-major: `LSTM.from_torch`
# refuses a batch-first layer (its copy would read inputs the other way round), so we copy a
# time-first twin (`time_first_copy`, the same weights) and transpose the inputs ourselves.

# %%
lstm_loop = LSTM.from_torch(time_first_copy(adding_models["LSTM"].rnn))
with torch.no_grad():
    _, _, gates = lstm_loop(x_test[:500].transpose(0, 1).to(device), return_gates=True)  # each (T, 500, H)
gates = {k: v.cpu() for k, v in gates.items()}
markers = x_test[:500, :, 1].T.bool()  # (T, 500)
fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
axes[0].bar(range(T_ADD), x_test[0, :, 0], color=np.where(markers[:, 0], "C3", "0.7"))
axes[0].set_ylabel("value u_t\n(red: marked)")
for ax, k in zip(axes[1:], ("i", "f"), strict=True):
    im = ax.imshow(gates[k][:, 0].T, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_ylabel(f"gate {k}\n(unit)")
fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6)
axes[-1].set_xlabel("time step t")
plt.show()
i_on = gates["i"][markers].mean(0)  # (H,) mean input gate of each unit at marked steps
i_off = gates["i"][~markers].mean(0)  # (H,) ... and at the other steps
unit = int((i_on - i_off).argmax())
print(f"unit {unit}: input gate {i_on[unit]:.2f} at marked steps, {i_off[unit]:.2f} at the others")
f_mean = gates["f"].mean(dim=(0, 1))  # (H,) mean forget gate of each unit
print(f"units with mean forget gate above 0.9: {int((f_mean > 0.9).sum())} of {HIDDEN}; "
      f"forget gate of unit {unit}: {f_mean[unit]:.2f}")
assert i_on[unit] - i_off[unit] > 0.3, "some unit should open its input gate at the marked steps"

# %% [markdown]
# Over 500 test sequences, the printed unit opens its input gate at the marked steps and
# much less elsewhere: it writes when there is something to write. In the heatmaps, look
# for rows of the input gate that light up only at the red bars, and for forget-gate rows
# that stay close to 1 (yellow) all along: memory that is kept. The printed count says how
# many units keep their memory on average; the others do other work (or none).
#
# ### On real text
#
# The adding problem was designed to need memory. On real data the gates are less tidy. We
# train a small character-level LSTM language model on the course's corpus (Python's own
# help texts, `course_utils.data.text.load_corpus`) for a few hundred steps, then look at its
# gates on a line of held-out text. Its first layer is an embedding of size 32: the one-hot
# vector of a character times a $(V, 32)$ matrix, i.e. a lookup of that matrix's row
# (notebook 02, section 5).

# %%
text = load_corpus()
vocab = CharVocab.from_text(text)
ids = vocab.encode(text)
split = int(0.9 * len(ids))
print(f"{len(text):,} characters, {vocab.size} distinct; train {split:,}, validation {len(ids) - split:,}")
char_train = lm_batches(ids[:split], n_batches=300, batch_size=32, seq_len=64, seed=0)
char_val = lm_batches(ids[split:], n_batches=20, batch_size=32, seq_len=64, seed=1)
counts = np.bincount(ids[:split], minlength=vocab.size) + 1
unigram = -np.mean(np.log(counts / counts.sum())[ids[split:]])  # nats per character

seed_everything(0)
char_model = RecurrentLM("LSTM", vocab.size, embed_size=32, hidden_size=128).to(device)
char_history = fit(char_model, char_train, next_token_loss, torch.optim.Adam(char_model.parameters(), lr=1e-2),
                   clip_grad_norm=1.0, desc="char LSTM")
char_val_loss = evaluate(char_model, char_val, next_token_loss)
print(f"validation loss {char_val_loss:.3f} nats/char, perplexity {np.exp(char_val_loss):.1f} "
      f"(unigram frequencies: {unigram:.3f}, perplexity {np.exp(unigram):.1f}); "
      f"next-character accuracy {char_accuracy(char_model, char_val):.1%}; {char_history.seconds:.1f} s")
assert char_val_loss < unigram - 1.0

# %%
held_out_lines = [line for line in text[split:].split("\n") if 50 < len(line) < 90 and line[0].isupper()]
snippet = next((line for line in held_out_lines if '"' in line), held_out_lines[0])
print(repr(snippet))
loop = LSTM.from_torch(time_first_copy(char_model.rnn))
with torch.no_grad():
    emb = char_model.embed(torch.from_numpy(vocab.encode(snippet)).to(device))[:, None]  # (L, 1, E)
    _, _, text_gates = loop(emb, return_gates=True)  # each (L, 1, H)
units = slice(0, 24)
fig, axes = plt.subplots(3, 1, figsize=(12, 7), sharex=True)
for ax, k in zip(axes, ("i", "f", "o"), strict=True):
    im = ax.imshow(text_gates[k][:, 0, units].cpu().T, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_ylabel(f"gate {k}\n(unit)")
axes[-1].set_xticks(range(len(snippet)), [c if c != " " else "␣" for c in snippet], fontsize=7)
fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6)
plt.show()
with torch.no_grad():
    _, _, all_gates = loop(char_model.embed(char_val[0][0].to(device)).transpose(0, 1), return_gates=True)
for k in ("i", "f", "o"):
    v = all_gates[k]
    print(f"gate {k}: mean {v.mean():.2f}; below 0.1: {(v < 0.1).float().mean():.0%}, above 0.9: {(v > 0.9).float().mean():.0%}")

# %% [markdown]
# Each row of a heatmap is one unit, each column one character of the held-out line. Some
# units switch at spaces or punctuation, others stay open or shut for the whole line; the
# printed shares (over a validation batch) show how many gate values are close to 0 or 1 —
# the gates act as soft switches, not as fixed mixing weights.

# %% [markdown]
# ## 10. Exercises
#
# ### Exercise 1 (2 points, about 15 minutes): the LSTM cell forward
#
# Implement one LSTM step for a batch in numpy, with the weights in PyTorch's layout
# (rows `i, f, g, o`, see section 1). Return `(h, c)`, both of shape `(B, H)`. You may use
# `course_utils.lstm.sigmoid` or write $\sigma(a) = 1/(1+e^{-a})$ yourself.

# %% nbgrader={"grade": false, "grade_id": "lstm_cell_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_lstm_cell_forward(x, h_prev, c_prev, W_x, W_h, b):
    """One LSTM step. x: (B, I); h_prev, c_prev: (B, H); W_x: (4H, I); W_h: (4H, H); b: (4H,).

    Returns (h, c), each (B, H).
    """
    ### BEGIN SOLUTION
    H = h_prev.shape[1]
    a = x @ W_x.T + h_prev @ W_h.T + b  # (B, 4H)
    i = 1 / (1 + np.exp(-a[:, :H]))
    f = 1 / (1 + np.exp(-a[:, H:2 * H]))
    g = np.tanh(a[:, 2 * H:3 * H])
    o = 1 / (1 + np.exp(-a[:, 3 * H:]))
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "lstm_cell_forward_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.lstm import check_lstm_cell

check_lstm_cell(my_lstm_cell_forward)  # names the usual mistakes: gate order, (c, h), h = o * c, ...
torch_cell = torch.nn.LSTMCell(7, 2).double()  # and against PyTorch's own cell
xt, ht, ct = torch.randn(1, 7, dtype=torch.float64), torch.randn(1, 2, dtype=torch.float64), torch.randn(1, 2, dtype=torch.float64)
with torch.no_grad():
    h_t, c_t = torch_cell(xt, (ht, ct))
wt = lstm_weights_from_torch(torch_cell)
h_got, c_got = my_lstm_cell_forward(xt.numpy(), ht.numpy(), ct.numpy(), wt["W_x"], wt["W_h"], wt["b"])
check_close("c vs torch.nn.LSTMCell (batch 1)", c_got, c_t.numpy())
check_close("h vs torch.nn.LSTMCell (batch 1)", h_got, h_t.numpy())


# %% nbgrader={"grade": true, "grade_id": "lstm_cell_forward_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_lstm_cell(my_lstm_cell_forward, seed=1)
rng = np.random.default_rng(0)
big = (rng.normal(size=(6, 3)), rng.normal(size=(6, 4)), rng.normal(size=(6, 4)),
       5 * rng.normal(size=(16, 3)), 5 * rng.normal(size=(16, 4)), rng.normal(size=16))
h_exp, c_exp, _ = lstm_cell_numpy(*big)
h_got, c_got = my_lstm_cell_forward(*big)
check_close("c with large pre-activations", c_got, c_exp)
check_close("h with large pre-activations", h_got, h_exp)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 (1 point, about 5 minutes): what the gates do
#
# Gates are soft switches. Give gate values `(i, f, o)`, each between 0 and 1, that make
# one step of the cell (section 1's equations) do the following, whatever the candidate
# `g` and the previous cell state `c_prev` are:
#
# - `"hold"`: keep the memory exactly, $c_t = c_{t-1}$, and output nothing, $h_t = 0$;
# - `"replace"`: forget the old memory and store the candidate, $c_t = g_t$, and show it, $h_t = \tanh(c_t)$;
# - `"reveal"`: keep the memory exactly and show it, $h_t = \tanh(c_{t-1})$.
#
# (A sigmoid never reaches exactly 0 or 1, so a trained cell only approximates these; the
# check allows that.)

# %% nbgrader={"grade": false, "grade_id": "gate_values", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_gate_values(goal: str) -> tuple[float, float, float]:
    """Gate values (i, f, o) that make one LSTM step do `goal` ("hold", "replace" or "reveal")."""
    ### BEGIN SOLUTION
    return {"hold": (0.0, 1.0, 0.0), "replace": (1.0, 0.0, 1.0), "reveal": (0.0, 1.0, 1.0)}[goal]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "gate_values_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.lstm import check_lstm_gate_values

check_lstm_gate_values(my_gate_values, goals=("hold", "replace"))  # names each gate that is off, and what it does


# %% nbgrader={"grade": true, "grade_id": "gate_values_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_lstm_gate_values(my_gate_values, goals=("reveal",), seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3 (3 points, about 25 minutes): the LSTM cell backward
#
# Implement the backward pass of one LSTM step in numpy: section 6's derivation. `dh` and
# `dc`, each `(B, H)`, are the gradients of the loss with respect to the step's new `h` and
# `c`, arrived from later. `cache` is a dict with the step's inputs and what its forward
# pass computed: `x (B, I)`, `h_prev`, `c_prev (B, H)`, `W_x (4H, I)`, `W_h (4H, H)`, the
# gates `i, f, g, o (B, H)` (after their nonlinearities) and the new cell state `c (B, H)`;
# `course_utils.lstm.lstm_cell_cache(x, h_prev, c_prev, W_x, W_h, b)` builds one, to try
# your code on. Return `(dx, dh_prev, dc_prev, dW_x, dW_h, db)`, shaped like `x`, `h_prev`,
# `c_prev`, `W_x`, `W_h` and `b (4H,)`, the stacked gradients in PyTorch's row order
# i, f, g, o. The check compares all six with autograd and names the usual mistakes.

# %% nbgrader={"grade": false, "grade_id": "lstm_cell_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_lstm_cell_backward(dh, dc, cache):
    """Backward of one LSTM step. dh, dc: (B, H); cache: see above.

    Returns (dx (B, I), dh_prev (B, H), dc_prev (B, H), dW_x (4H, I), dW_h (4H, H), db (4H,)).
    """
    i, f, g, o, c, c_prev = (cache[k] for k in ("i", "f", "g", "o", "c", "c_prev"))  # (B, H) each
    # Step 1. dc_total (B, H): all of the loss's gradient that reaches c_t, the dc that arrives
    # directly and what dh brings through h_t = o * tanh(c_t).
    ### BEGIN SOLUTION
    dc_total = dc + dh * o * (1 - np.tanh(c) ** 2)
    ### END SOLUTION
    # Step 2. da_i, da_f, da_g, da_o (B, H) each: the gradient at each block's pre-activation.
    # c_t = f * c_prev + i * g and h_t = o * tanh(c_t); sigmoid' = s (1 - s), tanh' = 1 - t^2.
    ### BEGIN SOLUTION
    da_i = dc_total * g * i * (1 - i)
    da_f = dc_total * c_prev * f * (1 - f)
    da_g = dc_total * i * (1 - g**2)
    da_o = dh * np.tanh(c) * o * (1 - o)
    ### END SOLUTION
    dA = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # (B, 4H): PyTorch's row order i, f, g, o
    # Step 3. The six gradients: x and h_prev reach the step through the pre-activations
    # (dA and the weights), c_prev through c_t = f * c_prev + ..., the weights and the bias
    # through dA (summed over the batch).
    ### BEGIN SOLUTION
    return (dA @ cache["W_x"], dA @ cache["W_h"], dc_total * f,
            dA.T @ cache["x"], dA.T @ cache["h_prev"], dA.sum(axis=0))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "lstm_cell_backward_test", "locked": true, "points": 1.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.lstm import check_lstm_cell_backward
from course_utils.lstm import lstm_cell_backward_autograd, lstm_cell_cache

check_lstm_cell_backward(my_lstm_cell_backward)  # vs autograd; names: dc through h, f in dc_prev, g's slope, gate order, ...
torch_cell = torch.nn.LSTMCell(3, 2).double()  # and with PyTorch's initial weights, batch of 1
wt = lstm_weights_from_torch(torch_cell)
step = (np.ones((1, 3)), np.full((1, 2), 0.5), np.full((1, 2), -1.0), wt["W_x"], wt["W_h"], wt["b"])
upstream = (np.array([[1.0, -2.0]]), np.array([[0.5, 0.0]]))  # dh, dc
got = my_lstm_cell_backward(*upstream, lstm_cell_cache(*step)[2])
for name, g_got, g_exp in zip(("dx", "dh_prev", "dc_prev", "dW_x", "dW_h", "db"), got,
                              lstm_cell_backward_autograd(*upstream, *step), strict=True):
    check_close(f"{name} vs autograd (torch.nn.LSTMCell's weights)", g_got, g_exp)


# %% nbgrader={"grade": true, "grade_id": "lstm_cell_backward_hidden_test", "locked": true, "points": 1.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_lstm_cell_backward(my_lstm_cell_backward, seed=1)
rng = np.random.default_rng(0)
big = (rng.normal(size=(6, 3)), rng.normal(size=(6, 4)), rng.normal(size=(6, 4)),
       3 * rng.normal(size=(16, 3)), 3 * rng.normal(size=(16, 4)), rng.normal(size=16))
up = (rng.normal(size=(6, 4)), rng.normal(size=(6, 4)))
for g_got, g_exp in zip(my_lstm_cell_backward(*up, lstm_cell_cache(*big)[2]), lstm_cell_backward_autograd(*up, *big),
                        strict=True):
    check_close("a gradient with large pre-activations", g_got, g_exp, quiet=True)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4 (2 points, about 10 minutes): make an LSTM learn the adding problem, fast
#
# Choose three hyperparameters so that an LSTM solves the adding problem of section 5 with
# sequences of length $T$ = 30 in only 500 optimiser steps of 32 fresh sequences each (Adam,
# gradient norm clipped at 1 — section 8 says why):
#
# - `forget_bias`: the forget gate's bias $b_f$ at the start of training (section 5 used 1),
# - `hidden_size`: the number of units (at most 64),
# - `lr`: Adam's learning rate.
#
# The check measures two things. First, before any training, how much of the cell state the
# forget gate keeps: the product of $f_t$ over the last $T/2$ = 15 steps (averaged over units
# and test sequences), the share of the state at the middle of the sequence (the latest step
# the first marker can be at) still there at the end, which is also the factor on the gradient
# along the cell path (section 8's dotted curve). It must be **at least 2 %**; below that the
# check does not train. Then it trains (a few seconds) and the test MSE must be **below 0.02**,
# an eighth of the baseline's 1/6. Why both: on sequences this short, Adam also trains an
# LSTM whose forget gate starts at 0.5 to the target (measured: MSE 0.0025 and 0.0056 on the
# check's two seeds with $b_f = 0$), so the MSE alone does not show what the bias is for.
#
# The check says what it measured and how far that is from the target; the hidden test
# builds and trains again from two other random starts, so aim with some margin.

# %% nbgrader={"grade": false, "grade_id": "adding_config", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_adding_config():
    """Hyperparameters for the LSTM: {"forget_bias": float, "hidden_size": int, "lr": float}."""
    ### BEGIN SOLUTION
    return {"forget_bias": 2.0, "hidden_size": 32, "lr": 1e-2}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "adding_config_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.long_range import check_adding_config

check_adding_config(my_adding_config(), "LSTM")  # trains with your choice; says how far from the target you are


# %% nbgrader={"grade": true, "grade_id": "adding_config_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_adding_config(my_adding_config(), "LSTM", seed=1)
check_adding_config(my_adding_config(), "LSTM", seed=2)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 5 (3 points, about 25 minutes): backpropagation through a whole sequence
#
# Exercise 3 is one step. Now run it over a sequence, as `torch.nn.LSTM`'s backward does.
# The forward pass runs the cell over $T$ steps and keeps each step's cache
# (`course_utils.lstm.lstm_forward_cache(xs, h0, c0, W_x, W_h, b)` returns `hs (T, B, H)` and
# the list of caches, each the dict exercise 3 reads). The loss reads every hidden state,
# $L = \sum_t \ell_t(h_t)$, and `dhs[t]` $= \partial \ell_t / \partial h_t$ (shape `(T, B, H)`) is
# what each step's output sends back.
#
# Write `my_lstm_backward(dhs, caches)`, calling **your** `my_lstm_cell_backward` once per
# step. Return `(dxs, dh0, dc0, dW_x, dW_h, db)`: `dxs (T, B, I)`, the gradients with respect to
# the initial states $h_0$, $c_0$ `(B, H)`, and the weights' gradients shaped like the weights.
# What the loop must get right:
#
# - **order**: from $t = T-1$ down to $0$, since step $t$ needs what step $t+1$ sends back;
# - **two carries**: $h_t$ reaches the loss through $\ell_t$ *and* through step $t+1$, so step
#   $t$'s `dh` is `dhs[t]` plus the `dh_prev` step $t+1$ returned; $c_t$ reaches it only
#   through step $t+1$, so step $t$'s `dc` is the `dc_prev` step $t+1$ returned (zeros at $t = T-1$);
# - **sums**: the same $W_x, W_h, b$ act at every step, so their gradients add up over $t$.
#
# The first check compares all six with `torch.nn.LSTM` and autograd in float64 and names the
# usual mistakes (the dc carry dropped, `dhs[t]` not added, a loop forwards, gradients not
# summed). The second runs **your** cell of exercise 1 over a sequence (its hidden states
# against `torch.nn.LSTM`'s) and compares your gradients with finite differences of that
# forward pass, $\big(L(\theta + \epsilon) - L(\theta - \epsilon)\big) / 2\epsilon$ for every entry,
# printing the relative error of each (CS231n's test: below $10^{-7}$ is right).

# %% nbgrader={"grade": false, "grade_id": "lstm_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_lstm_backward(dhs, caches):
    """BPTT over a sequence. dhs: (T, B, H); caches: one per step, as my_lstm_cell_backward reads.

    Returns (dxs (T, B, I), dh0 (B, H), dc0 (B, H), dW_x (4H, I), dW_h (4H, H), db (4H,)).
    """
    ### BEGIN SOLUTION
    T = len(caches)
    dh_next, dc_next = np.zeros_like(dhs[0]), np.zeros_like(dhs[0])  # (B, H): nothing comes back after T-1
    dxs = [None] * T
    dW_x, dW_h = np.zeros_like(caches[0]["W_x"]), np.zeros_like(caches[0]["W_h"])
    db = np.zeros(dW_h.shape[0])
    for t in range(T - 1, -1, -1):
        dxs[t], dh_next, dc_next, dWx_t, dWh_t, db_t = my_lstm_cell_backward(dhs[t] + dh_next, dc_next, caches[t])
        dW_x, dW_h, db = dW_x + dWx_t, dW_h + dWh_t, db + db_t
    return np.stack(dxs), dh_next, dc_next, dW_x, dW_h, db
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "lstm_backward_test", "locked": true, "points": 1.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.lstm import check_lstm_backward

check_lstm_backward(my_lstm_backward)  # vs torch.nn.LSTM; names: dc carry, dhs[t] not added, forwards, no sum
check_lstm_backward(my_lstm_backward, cell_forward=my_lstm_cell_forward)  # and finite differences of your forward


# %% nbgrader={"grade": true, "grade_id": "lstm_backward_hidden_test", "locked": true, "points": 1.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_lstm_backward(my_lstm_backward, seed=1)
check_lstm_backward(my_lstm_backward, seed=2)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - The LSTM adds a **cell state** updated by gated addition, $c_t = f_t \odot c_{t-1} + i_t \odot g_t$;
#   the **output gate** decides how much of $\tanh(c_t)$ becomes $h_t$.
# - `torch.nn.LSTM` stacks the four blocks in the order **i, f, g, o**; our numpy and PyTorch
#   cells match it to float64 rounding once the weights are copied.
# - Parameter counts: $4((I+H)H + H)$ counts one bias per block; PyTorch stores two
#   (`bias_ih`, `bias_hh`), $4H$ more, and only their sum matters.
# - Peephole connections let the gates see the cell state, for $3H$ more parameters.
# - Backward, one step: $\bar\delta c_t = \delta c_t + \delta h_t \odot o_t \odot (1 - \tanh^2 c_t)$,
#   the four pre-activation gradients from it, $\delta c_{t-1} = \bar\delta c_t \odot f_t$ and
#   $\delta h_{t-1} = \delta a\, W_h$; the course's `LSTM` runs exactly this over time
#   (appendix), and matches autograd.
# - Over a sequence (exercise 5), from $t = T-1$ down to 0: step $t$ receives
#   $\delta h_t = \partial\ell_t/\partial h_t + \delta h_t^{\text{from } t+1}$ and the carried $\delta c_t$,
#   and the weights' gradients are summed over the steps.
# - On the adding problem, 1/6 is "nothing remembered" and 1/12 is "one of the two values remembered".
# - Along the cell state the Jacobian is $\operatorname{diag}(f_t)$; a trained LSTM keeps
#   gradients alive over the whole sequence where a plain RNN's vanish, and so it solves the
#   adding problem that keeps the RNN at the baseline.
# - Gates fix vanishing gradients, not exploding ones (measured in section 8), so every model is clipped.
#
# Next: **04 · GRU**, a lighter gated cell, and RNN vs LSTM vs GRU side by side.

# %% [markdown]
# ## Appendix: the course's LSTM runs section 6's derivation
#
# For a plain LSTM, `course_utils.lstm.LSTM` (the module of section 2) does not
# let autograd record its steps: it runs `LSTMHandwrittenBPTT` (`course_utils/lstm_backward.py`),
# whose backward is section 6's derivation in a loop from $t = T-1$ down to $0$:
#
# | derivation | `LSTMHandwrittenBPTT.backward` |
# | --- | --- |
# | 1. $\bar\delta c_t = \delta c_t + \delta h_t \odot o_t \odot (1 - \tanh^2 c_t)$ | `dc.addcmul_(dh, dc_by_dh[t])` |
# | 2. $\delta a_i, \delta a_f, \delta a_g$ $= \bar\delta c_t \odot$ (their local slopes) | `dc[:, None, :] * by_dc[t]` |
# | 2. $\delta a_o = \delta h_t \odot \tanh(c_t) \odot o_t(1 - o_t)$ | `dh * by_dh[t]` |
# | 3. $\delta c_{t-1} = \bar\delta c_t \odot f_t$ | `dc.mul_(f[t])` |
# | 4. $\delta h_{t-1} = \delta a\, W_h$, plus the output's own gradient at $t-1$ | `torch.addmm(grad_hs[t - 1], dA[t], W_h)` |
# | 4. $\delta W_h = \sum_t \delta a_t^\top h_{t-1}$ | one matmul over all steps, after the loop |
#
# ($\delta x$, $\delta W_x$ and $\delta b$ are left to autograd: the function receives
# $x_t W_x^\top + b$, computed for all steps at once, and returns $\delta a$ as its gradient.)
# We check it against autograd running the same cell step by step, on a loss that sends a
# gradient into every $h_t$ and into $c_T$:

# %%
n_in, H, B, T = 4, 5, 3, 6  # section 2's sizes, restated so that the appendix stands on its own
seed_everything(3)
bptt_model = LSTM(n_in, H).double().to(device)
xs_b = torch.randn(T, B, n_in, dtype=torch.float64, device=device, requires_grad=True)  # (T, B, n_in)
h0_b, c0_b = (torch.randn(1, B, H, dtype=torch.float64, device=device, requires_grad=True) for _ in range(2))
out_weights = torch.randn(T, B, H, dtype=torch.float64, device=device)  # L = sum(out_weights * hs) + sum(c_T^2)


def gradients(run):
    """The backward's name and every gradient of L, where run() returns (hs (T, B, H), (h_T, c_T))."""
    for leaf in (xs_b, h0_b, c0_b):
        leaf.grad = None
    bptt_model.zero_grad()
    hs, (_, c_T) = run()
    ((out_weights * hs).sum() + (c_T**2).sum()).backward()
    grads = {"x": xs_b.grad, "h_0": h0_b.grad, "c_0": c0_b.grad}
    return hs.grad_fn.name(), grads | {name: p.grad for name, p in bptt_model.cell.named_parameters()}


def step_by_step():  # the cell of section 2, step after step: autograd records every operation
    h, c, hs = h0_b[0], c0_b[0], []  # (B, H): the cell works on one step, without the layer axis
    for x in xs_b:  # x: (B, n_in)
        h, c = bptt_model.cell(x, (h, c))
        hs.append(h)
    return torch.stack(hs), (h, c)


by_hand_fn, by_hand = gradients(lambda: bptt_model(xs_b, (h0_b, c0_b)))
autograd_fn, by_autograd = gradients(step_by_step)
print(f"backward of the course LSTM: {by_hand_fn}; of the step-by-step loop: {autograd_fn}")
for name in by_autograd:
    check_close(f"dL/d{name}, hand-written BPTT vs autograd", by_hand[name], by_autograd[name], rtol=rtol, atol=atol)
assert by_hand_fn == f"{LSTMHandwrittenBPTT.__name__}Backward"
assert max((by_hand[k] - by_autograd[k]).abs().max().item() for k in by_autograd) < 1e-10

# %%
report_run_time()
