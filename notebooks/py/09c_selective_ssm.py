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
# # 09c · A minimal selective state-space model: Mamba's S6, and minGRU as its one-state case
#
# **Objectives.** By the end of this notebook you will have
# 1. discretised a diagonal continuous-time state-space model with the **zero-order hold**
#    (exactly, and with the first-order shortcut Mamba's code takes) and measured how far the
#    two are apart;
# 2. built **S6**, the selective SSM of Mamba (Gu & Dao 2023, Algorithm 2), whose step size
#    $\Delta_t$ and write/read vectors $B_t$, $C_t$ depend on the input, and computed its
#    recurrence three ways — one step at a time, notebook 09's loop scan, notebook 09's chunked
#    scan — that agree in values and gradients (float64);
# 3. shown **exactly** that minGRU is S6 with one state per channel: same weights, same numbers;
# 4. trained S6, its time-invariant (LTI) version, minGRU and `torch.nn.GRU` on the
#    **selective-copying** task at the same step budget, three seeds each, and read the table
#    for what it shows;
# 5. shown that S6 with **one decay per channel is notebook 09b's decayed linear attention**
#    ($q = C$, $k = B$, $v = \Delta \cdot u$, a 1-semiseparable mask: Mamba-2's state space duality),
#    recurrence and masked attention equal in float64;
# 6. built the **delta rule** (DeltaNet, gated DeltaNet), checked it against the gradient step on
#    $\frac12 \lVert S^\top k - v \rVert^2$ that it is, and, with $\beta \in [0, 2]$, used its reflections
#    to count **modulo 2 and modulo 3 exactly** with weights made by hand, where 09b's diagonal
#    recurrence could not count modulo 3.
#
# The helpers live in `course_utils/selective_ssm.py` (S6, the copying models, SSD; the checks are in
# `course_utils/exercises/selective_ssm.py`), `course_utils/delta_rule.py` (its check in
# `course_utils/exercises/delta_rule.py`) and `course_utils/data/selective_copy.py` (the
# task); the scans come from `course_utils/linear_recurrence.py` (notebook 09), minGRU from
# `course_utils/min_rnns.py`, linear attention from `course_utils/linear_attention.py` (09b).
# Sections 1, 2, 4 and 5 train nothing: each is an identity between computations, checked in
# float64, or a construction checked on every string up to 12 bits. Section 3 trains small
# models, three seeds each.

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
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_utils import check_close, report_run_time, seed_everything, start_notebook
from course_utils.core.device import set_cpu_threads

device = start_notebook()
seed_everything(0)

# %% [markdown]
# ## 1. S6: a state-space model whose parameters read the input
#
# A linear **state-space model** (SSM) maps an input signal $x(t)$ to an output $y(t)$
# through a state $h(t)$:
#
# $$h'(t) = A\, h(t) + B\, x(t), \qquad y(t) = C\, h(t) + D\, x(t).$$
#
# The diagonal state-space models (S4D and DSS, then Mamba) take $A$ **diagonal** — S4 itself
# used a diagonal-plus-low-rank $A$ from the HiPPO theory —, one state vector of size $N$ per channel, so each of the
# $N$ states of a channel is a scalar ODE $h' = a h + b x$ with $a < 0$ (a decay). The
# course's S6 writes $A$ = `-exp(A_log)`, of shape $(D, N)$, and starts from S4D-real's
# $A_n = -(n + 1)$.
#
# **Discretisation.** To run on a sequence $x_1, x_2, \dots$, hold $x$ constant for a step of
# length $\Delta$ (the **zero-order hold**, ZOH) and solve the ODE over the step exactly:
#
# $$h_t = \bar A\, h_{t-1} + \bar B\, x_t, \qquad \bar A = e^{\Delta A}, \qquad
# \bar B = \frac{e^{\Delta A} - 1}{A}\, B \quad \text{(element-wise, as } A \text{ is diagonal)}.$$
#
# Mamba's code uses the simpler $\bar B = \Delta B$ (the Euler rule), keeping the exact
# $\bar A$; since $e^{\Delta A} - 1 = \Delta A + O(\Delta^2)$, the two agree to **first
# order** in $\Delta$ for small $\Delta$: their gap shrinks like $\Delta^2$. For large $\Delta$
# (the "reset" regime below) they part: Euler's $\Delta B$ grows without bound, while the ZOH's
# $\bar B$ levels off at $B/|A|$. `discretize(delta, A, B_t, rule)`
# computes both, with $\Delta$ `delta` of shape $(\dots, D)$, $A$ `A` $(D, N)$ and $B$
# `B_t` $(\dots, N)$, returning $\bar A$, $\bar B$ of shape $(\dots, D, N)$. First a check
# against the ODE: for a constant input the ZOH step is the exact solution
# $h(\Delta) = e^{a \Delta} h_0 + \frac{e^{a\Delta} - 1}{a} b x$, which a fine Euler
# integration of $h' = a h + b x$ (100 000 substeps) reproduces:

# %%
from course_utils.selective_ssm import discretize

a, b, x_const, h_start, step = -2.0, 3.0, 0.5, 1.0, 0.7
A_bar, B_bar = discretize(torch.tensor([[step]], dtype=torch.float64), torch.tensor([[a]], dtype=torch.float64),
                          torch.tensor([[b]], dtype=torch.float64))
zoh_step = (A_bar * h_start + B_bar * x_const).item()
h_fine, n_sub = h_start, 100_000
for _ in range(n_sub):
    h_fine += step / n_sub * (a * h_fine + b * x_const)
print(f"one ZOH step: {zoh_step:.6f}; the ODE integrated with {n_sub} small steps: {h_fine:.6f}")
assert abs(zoh_step - h_fine) < 1e-4

A_demo = -torch.arange(1.0, 5.0, dtype=torch.float64)[None, :]  # (1, 4): S4D-real's A_n = -(n + 1)
B_demo = torch.ones(1, 4, dtype=torch.float64)
gaps = {}
for step_size in (1e-1, 1e-2, 1e-3):
    delta_demo = torch.tensor([[step_size]], dtype=torch.float64)
    exact = discretize(delta_demo, A_demo, B_demo, "zoh")[1]
    euler = discretize(delta_demo, A_demo, B_demo, "euler")[1]
    gaps[step_size] = (exact - euler).abs().max().item()
    print(f"Delta = {step_size:g}: max |Bbar_zoh - Bbar_euler| = {gaps[step_size]:.2e}")
assert 50 < gaps[1e-2] / gaps[1e-3] < 150  # ten times smaller Delta, about 100 times smaller gap: Delta^2

# %% [markdown]
# **Selection.** In S4 the step size and $B$, $C$ are fixed parameters: the model is
# **time-invariant** (LTI), the same filter at every step, whatever the input. S6 makes them
# functions of the current input $x_t$ (the layer's input, of width $I$), per channel $d$:
#
# $$\Delta_t = \operatorname{softplus}(x_t W_\Delta + b_\Delta) \in \mathbb{R}^D, \qquad
# B_t = x_t W_B + b_B \in \mathbb{R}^N, \qquad C_t = x_t W_C + b_C \in \mathbb{R}^N,$$
#
# $$h_t = e^{\Delta_t A} \odot h_{t-1} + \frac{e^{\Delta_t A} - 1}{A}\, B_t\, u_t, \qquad
# y_t = \sum_n C_{t,n}\, h_{t,:,n} + D_{skip} \odot u_t,$$
#
# with the channel input $u_t = x_t W_{in} + b_{in}$ (Mamba's input projection; with
# $W_{in} = I$ it is Algorithm 2's $x$), the state $h_t$ of shape $(B, D, N)$ for a batch,
# and the skip weight $D_{skip}$ `D_skip` $(D,)$. A large $\Delta_t$ resets the state towards
# the current input; $\Delta_t \to 0$ keeps the state and ignores the input: the model
# decides, token by token, what to write ($B_t$), what to keep ($\Delta_t$) and what to read
# ($C_t$). The course adds the biases $b_B$, $b_C$ (Mamba has none); section 2 uses them.
#
# ### Exercise 1 (2 points, about 10 minutes): the zero-order hold
#
# Write `my_discretize(delta, A, B_t)` for a batch: `delta` $(B, D)$ (positive), `A` $(D, N)$
# (negative), `B_t` $(B, N)$. Return the pair `(Abar, Bbar)`, each $(B, D, N)$, with
# $\bar A = e^{\Delta A}$ and the **exact** $\bar B = \frac{e^{\Delta A} - 1}{A} B$. Broadcasting
# does the work: `delta[..., None] * A` is $(B, D, N)$, `B_t[..., None, :]` is $(B, 1, N)$.
# (`torch.expm1` computes $e^z - 1$ accurately for small $z$.)

# %% nbgrader={"grade": false, "grade_id": "discretize", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_discretize(delta: torch.Tensor, A: torch.Tensor, B_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ZOH: Abar = exp(delta A), Bbar = (exp(delta A) - 1) / A * B; each (B, D, N)."""
    ### BEGIN SOLUTION
    dA = delta[..., None] * A  # (B, D, N)
    return torch.exp(dA), torch.expm1(dA) / A * B_t[..., None, :]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "discretize_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.selective_ssm import check_discretize

check_discretize(my_discretize)  # float64, (B, D, N) = (3, 4, 5) and (2, 3, 1)


# %% nbgrader={"grade": true, "grade_id": "discretize_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_discretize(my_discretize, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# **The recurrence is notebook 09's scan.** For every channel $d$ and state $n$, the update is
# the scalar linear recurrence $h_t = a_t h_{t-1} + b_t$ with $a_t = \bar A_{t,d,n}$ and
# $b_t = \bar B_{t,d,n} u_{t,d}$, and $a_t$ does not depend on $h$: so the $(D, N)$ states are
# flattened into the $H = D \cdot N$ axis of `course_utils.linear_recurrence` and run through
# `scan_loop` or `scan_chunked` (whose backward pass notebook 09 wrote out), then
# $y_t = \sum_n C_{t,n} h_{t,:,n} + D_{skip} u_t$ reads all the states at once.
# `selective_scan(..., method=...)` does that for `"loop"` and `"chunked"`, and for `"steps"`
# runs `selective_step` (one step, as in the equation) $T$ times: the reference. In float64:

# %%
from course_utils.selective_ssm import S6, selective_scan

T, B, D, N = 40, 3, 6, 4
g64 = torch.Generator().manual_seed(0)
u = torch.randn(T, B, D, generator=g64, dtype=torch.float64).to(device)  # (T, B, D)
delta = F.softplus(torch.randn(T, B, D, generator=g64, dtype=torch.float64)).to(device)  # (T, B, D), positive
A = (-torch.rand(D, N, generator=g64, dtype=torch.float64) * 3 - 0.1).to(device)  # (D, N), negative
B_t, C_t = (torch.randn(T, B, N, generator=g64, dtype=torch.float64).to(device) for _ in range(2))  # (T, B, N)
D_skip = torch.randn(D, generator=g64, dtype=torch.float64).to(device)  # (D,)
h0 = torch.randn(B, D, N, generator=g64, dtype=torch.float64).to(device)  # (B, D, N)
inputs = (u, delta, A, B_t, C_t, D_skip, h0)

y_steps, h_steps = selective_scan(*inputs, method="steps")
for method in ("loop", "chunked"):
    y_scan, h_scan = selective_scan(*inputs, method=method)
    check_close(f"y, method={method!r} against the step-by-step loop (float64)", y_scan, y_steps)
    check_close(f"h_T, method={method!r} against the step-by-step loop (float64)", h_scan, h_steps)

# %% [markdown]
# The gradients agree too: autograd through the step-by-step loop against the chunked scan's
# written-out backward, for every input, and a finite-difference `gradcheck` of the chunked
# form (float64):

# %%
grads = {}
for method in ("steps", "chunked"):
    leaves = [x.clone().requires_grad_() for x in inputs]
    y_m, h_m = selective_scan(*leaves, method=method)
    ((y_m**2).sum() + h_m.sum()).backward()
    grads[method] = [x.grad for x in leaves]
for label, g_chunk, g_step in zip(("u", "delta", "A", "B_t", "C_t", "D_skip", "h0"), grads["chunked"],
                                  grads["steps"], strict=True):
    check_close(f"d loss / d {label:6s}, chunked scan against the loop", g_chunk, g_step)
small = [x[:6, :1, :2].clone() if x.dim() == 3 else x for x in inputs]  # T = 6, B = 1, D = 2
small = [small[0], small[1], A[:2, :3], B_t[:6, :1, :3], C_t[:6, :1, :3], D_skip[:2], h0[:1, :2, :3]]
small = [x.clone().requires_grad_() for x in small]
assert torch.autograd.gradcheck(lambda *args: selective_scan(*args, method="chunked")[0], small)
print("gradcheck passed for the chunked selective scan (finite differences, float64)")

# %% [markdown]
# The layer `S6(input_size, d_model, state_size)` wraps this: it holds $W_{in}$, $W_\Delta$,
# $W_B$, $W_C$, `A_log` and `D_skip`, and maps $x$ $(T, B, I)$ to $y$ $(T, B, D)$ and the
# last state $(B, D, N)$. Its parameters: $2(ID + D)$ for $W_{in}$, $W_\Delta$ and their
# biases, $2(IN + N)$ for $W_B$, $W_C$, $DN$ for $A$ and $D$ for $D_{skip}$; $\Delta$'s bias
# starts so that $\operatorname{softplus}(b_\Delta)$ is log-uniform in a range (Mamba's).

# %%
layer = S6(5, D, N).double().to(device)
x_layer = torch.randn(T, B, 5, dtype=torch.float64, device=device)  # (T, B, I)
check_close("S6 layer: chunked scan against the step-by-step loop (float64)", layer(x_layer)[0],
            layer(x_layer, method="steps")[0])
n_params = sum(p.numel() for p in layer.parameters())
print(f"S6(5, {D}, {N}): {n_params} parameters; formula 2(ID + D) + 2(IN + N) + DN + D = "
      f"{2 * (5 * D + D) + 2 * (5 * N + N) + D * N + D}")
assert n_params == 2 * (5 * D + D) + 2 * (5 * N + N) + D * N + D

# %% [markdown]
# ### Exercise 2 (2 points, about 10 minutes): one selective step
#
# Write `my_selective_step(h, u_t, Abar_t, Bbar_t, C_t, D_skip)`: `h`, `Abar_t`, `Bbar_t`
# $(B, D, N)$, `u_t` $(B, D)$, `C_t` $(B, N)$, `D_skip` $(D,)$. Return `(y, h_new)` with
# $h_{new} = \bar A \odot h + \bar B \odot u_t$ (the input broadcast over the $N$ states of
# its channel) and $y = \sum_n C_n\, h_{new}[:, :, n] + D_{skip} \odot u_t$, of shape $(B, D)$.
# The output reads the **new** state. The check also runs your step over a sequence and
# compares it with the scan.

# %% nbgrader={"grade": false, "grade_id": "selective_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_selective_step(h: torch.Tensor, u_t: torch.Tensor, Abar_t: torch.Tensor, Bbar_t: torch.Tensor,
                      C_t: torch.Tensor, D_skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """h_new = Abar h + Bbar u, y = sum_n C_n h_new[..., n] + D_skip u; returns (y (B, D), h_new (B, D, N))."""
    ### BEGIN SOLUTION
    h_new = Abar_t * h + Bbar_t * u_t[..., None]  # (B, D, N)
    y = (h_new * C_t[:, None, :]).sum(-1) + D_skip * u_t  # (B, D)
    return y, h_new
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "selective_step_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.selective_ssm import check_selective_step

check_selective_step(my_selective_step)  # (B, D, N) = (3, 4, 4) and (2, 3, 5); then 6 steps against the scan


# %% nbgrader={"grade": true, "grade_id": "selective_step_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_selective_step(my_selective_step, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. minGRU is S6 with one state
#
# Take one state per channel ($N = 1$), $A = -1$ (`A_log` $= 0$), and the step size
# $\Delta_t = \operatorname{softplus}(k_t)$ with $k_t = x_t W_z^\top + b_z$, minGRU's gate
# pre-activation. Then
#
# $$\bar A_t = e^{-\operatorname{softplus}(k_t)} = \frac{1}{1 + e^{k_t}} = 1 - \sigma(k_t) = 1 - z_t,
# \qquad \bar B_t = \frac{e^{-\Delta_t} - 1}{-1} = 1 - e^{-\Delta_t} = z_t$$
#
# (the exact ZOH; the Euler rule would give $\Delta_t = \operatorname{softplus}(k_t) \ne z_t$).
# With the channel input $u_t = \tilde h_t = x_t W_h^\top + b_h$, $B_t = C_t = 1$ (weights 0,
# biases 1) and $D_{skip} = 0$, the S6 recurrence reads
#
# $$h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t, \qquad y_t = h_t:$$
#
# exactly minGRU (notebook 09, `candidate="linear"`). The connection is Gu & Dao's (2023,
# section 3.5.1, Theorem 1): a selective SSM with $N = 1$, $A = -1$, $B = 1$ and
# $\Delta = \operatorname{softplus}$ of a linear map of $x_t$ is a gated recurrence of this form;
# minGRU (Feng et al., 2024) is that gated recurrence. `s6_from_min_gru` builds that S6 from a
# course `MinGRU`, copying its weights; the two agree in float64, from any initial state:

# %%
from course_utils.min_rnns import MinGRU
from course_utils.selective_ssm import s6_from_min_gru

seed_everything(0)
min_gru = MinGRU(5, 7, candidate="linear").double().to(device)
as_s6 = s6_from_min_gru(min_gru)
x_mg = torch.randn(30, 4, 5, dtype=torch.float64, device=device)  # (T, B, I)
h0_mg = torch.randn(4, 7, dtype=torch.float64, device=device)  # (B, H)
h_min_gru, _ = min_gru(x_mg, h0_mg, method="chunked")
y_s6, h_T_s6 = as_s6(x_mg, h0_mg[..., None])  # the S6 state is (B, D, N = 1)
check_close("S6 (N = 1, A = -1, B = C = 1, exact ZOH) against minGRU (float64)", y_s6, h_min_gru)
check_close("and its last state", h_T_s6[..., 0], h_min_gru[-1])
check_close("Abar = exp(-softplus(k)) = 1 - sigmoid(k), for k from -30 to 30",
            torch.exp(-F.softplus(torch.linspace(-30, 30, 61, dtype=torch.float64))),
            1 - torch.sigmoid(torch.linspace(-30, 30, 61, dtype=torch.float64)))

# %% [markdown]
# **What they share, what selection adds.** Both are a **diagonal** linear recurrence whose
# coefficients are computed from the input alone (never from $h_{t-1}$), so both train with
# a parallel (here chunked) scan; in both the decay is input-dependent ($1 - z_t$ in minGRU,
# $e^{\Delta_t A}$ in S6). S6 adds, per channel, **$N$ states with different decay rates**
# ($A_n = -(n+1)$ at the start, learned after), which hold the past at several time scales,
# and input-dependent $B_t$ and $C_t$ shared by the channels: $B_t$ chooses **what is
# written** into which state at step $t$, $C_t$ **what is read** out of them. In minGRU the
# write and the read are fixed ($B = C = 1$) and one gate $z_t$ does both the forgetting and the
# writing.
#
# ## 3. Selective copying
#
# Gu & Dao (2023, section 3.1) motivate selection with the **selective-copying** task: $K$
# data tokens stand at random positions among blank tokens, and after them come $K$ marker
# tokens; at the $k$-th marker the model must output the $k$-th data token. The positions
# change from one sequence to the next. A time-invariant model applies the same filter at
# every step, blank or not, so what it remembers of a data token depends on how many steps
# ago it came; a selective one can skip the blanks ($\Delta_t \to 0$) and write only the
# data. Here: sequences of $T = 24$ tokens, $K = 4$
# data tokens drawn from 4 symbols, so chance is $1/4$ per output token and $1/256$ per
# sequence (all four right). The targets are $-100$ (`IGNORE`, the value `F.cross_entropy`
# skips) everywhere except at the markers:

# %%
from course_utils.data.selective_copy import IGNORE, copy_targets, selective_copying
from course_utils.selective_ssm import COPY_TASK

example = selective_copying(2, seed=0, **COPY_TASK)  # (2, T)
example_targets = copy_targets(example, COPY_TASK["n_data"])
for row, target in zip(example, example_targets, strict=True):
    print("tokens :", " ".join(f"{t:2d}" for t in row.tolist()))
    print("targets:", " ".join(" ." if t == IGNORE else f"{t:2d}" for t in target.tolist()))
print(f"(0 = blank, 1-{COPY_TASK['n_symbols']} = data, {COPY_TASK['n_symbols'] + 1} = marker; . = not scored)")

# %% [markdown]
# ### Exercise 3 (2 points, about 10 minutes): the targets
#
# Write `my_copy_targets(tokens, n_data)`: `tokens` $(n, T)$ int64 as above (blank 0, data
# $1 \dots$, the marker in the last `n_data` positions). Return the targets $(n, T)$ int64:
# `IGNORE` ($-100$) everywhere, except at the last `n_data` positions, which hold the
# sequence's data tokens (neither blank nor marker, in the first $T - $ `n_data` positions)
# in the order they appear. A loop over the rows is fine.

# %% nbgrader={"grade": false, "grade_id": "copy_targets", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_copy_targets(tokens: torch.Tensor, n_data: int) -> torch.Tensor:
    """Targets (n, T): -100 except at the last n_data positions, which hold the data tokens in order."""
    ### BEGIN SOLUTION
    T = tokens.shape[1]
    targets = torch.full_like(tokens, -100)  # (n, T)
    for row, target in zip(tokens, targets, strict=True):
        region = row[: T - n_data]  # (T - n_data,)
        target[T - n_data :] = region[region != 0]  # the data tokens, in order
    return targets
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "copy_targets_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.selective_ssm import check_copy_targets

check_copy_targets(my_copy_targets)  # 6 sequences of 20 tokens with 4 data tokens; 3 of 12 with 3


# %% nbgrader={"grade": true, "grade_id": "copy_targets_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_copy_targets(my_copy_targets, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# **The models.** Each is an embedding (width 16), two blocks and a linear read-out at every
# position. A block is Mamba's gated residual block around a recurrent layer:
# $x \leftarrow x + \mathrm{layer}(\mathrm{LN}(x)) \odot \mathrm{SiLU}(\mathrm{LN}(x) W_g)$,
# the same for every model; only the layer changes:
#
# - **S6**: $D = 16$ channels, $N = 4$ states each, exact ZOH, chunked scan;
# - **LTI**: the same layer with $\Delta$, $B$, $C$ learned constants (`selective=False`): no selection;
# - **minGRU** (`candidate="linear"`, chunked scan): S6's one-state case;
# - **GRU**: `torch.nn.GRU`, whose gates read $h_{t-1}$ (nonlinear, sequential).
#
# All train for the same 250 steps of 32 fresh sequences, Adam (learning rate $10^{-2}$),
# gradient norm clipped at 1, the loss on the marker positions only, three seeds. The
# learning rate and $\Delta$'s initial range ($[0.01, 1]$ instead of Mamba's $[0.001, 0.1]$,
# which is made for sequences of thousands of steps) were chosen on **validation** sequences
# (a held-out seed) when this notebook was written; the test sequences below (1000, another
# seed) are scored once, after training.

# %%
from course_utils.core.plotting import smooth
from course_utils.selective_ssm import MODEL_KINDS, TEST_SEED, train_copying

SEEDS = (0, 1, 2)
print(f"{set_cpu_threads(1)} CPU thread(s), device {device.type}")  # small models train fastest on one thread
results = {kind: [train_copying(kind, seed=s, eval_seed=TEST_SEED, device=device) for s in SEEDS]
           for kind in MODEL_KINDS}
set_cpu_threads()  # back to $COURSE_THREADS


def spread(kind: str, key: str) -> tuple[float, float, float]:
    values = sorted(r[key] for r in results[kind])
    return values[0], values[len(values) // 2], values[-1]


print(f"{'model':8s}{'parameters':>12s}{'per-token accuracy':>30s}{'whole-sequence accuracy':>30s}")
print(f"{'':20s}{'median [min-max], seeds 0-2':>30s}{'median [min-max]':>30s}")
for kind in MODEL_KINDS:
    tok_lo, tok_mid, tok_hi = spread(kind, "per_token")
    seq_lo, seq_mid, seq_hi = spread(kind, "sequence")
    print(f"{kind:8s}{results[kind][0]['params']:12d}{f'{tok_mid:.3f} [{tok_lo:.3f}-{tok_hi:.3f}]':>30s}"
          f"{f'{seq_mid:.3f} [{seq_lo:.3f}-{seq_hi:.3f}]':>30s}")
print("chance: 0.250 per token, 0.004 per sequence")

fig, ax = plt.subplots(figsize=(7, 3.5))
for i, kind in enumerate(MODEL_KINDS):
    for r in results[kind]:
        curve = smooth(r["losses"], 10)  # moving average over 10 steps
        ax.plot(curve, color=f"C{i}", alpha=0.7, label=kind if r is results[kind][0] else None)
ax.set(xlabel="training step", ylabel="loss on the markers (running mean)",
       title="selective copying: training loss, three seeds per model")
ax.legend()
plt.show()

# %% [markdown]
# **Reading the table.** Selection is what makes the SSM work here: at every seed, S6 scores
# above the best seed of its LTI twin, which differs from it only in that $\Delta$, $B$ and $C$
# do not read the input. The LTI layer learns something above chance but cannot pick the data
# out of the blanks. Against the recurrent networks, the honest summary at this budget: S6
# does **not** beat minGRU (its own one-state case, with fewer parameters) — their seeds
# overlap — and the GRU reaches the highest median (its seeds' range is in the table;
# one median of three seeds is not a fine ranking). The GRU is a nonlinear RNN, its gates read $h_{t-1}$, and it can solve this
# task too; what S6 brings is doing it with a recurrence that is **linear** in the state,
# computed by a parallel scan, which pays off on long sequences and parallel hardware, not on
# 24 tokens and one CPU thread. (Mamba also stacks many more layers, adds a short convolution
# before the scan, and trains far longer.) The asserts check each statement with a margin:

# %%
s6_low = spread("S6", "per_token")[0]
lti_high = spread("LTI", "per_token")[2]
print(f"per-token accuracy: S6 worst seed {s6_low:.3f}, LTI best seed {lti_high:.3f}")
assert s6_low > lti_high + 0.05  # selection matters
assert spread("LTI", "per_token")[0] > 0.30  # the LTI layer is above chance (0.25), not at it
assert spread("S6", "per_token")[0] <= spread("minGRU", "per_token")[2]  # their seeds overlap: S6 does not beat
assert spread("minGRU", "per_token")[0] <= spread("S6", "per_token")[2]  # minGRU at every seed, nor minGRU S6
assert results["minGRU"][0]["params"] < results["S6"][0]["params"]  # minGRU with fewer parameters
assert spread("GRU", "per_token")[1] > spread("S6", "per_token")[1] + 0.03  # the GRU's median is the highest
assert spread("GRU", "per_token")[1] > spread("minGRU", "per_token")[1] + 0.03

# %% [markdown]
# ## 4. S6 with a scalar decay is decayed linear attention (SSD)
#
# Restrict S6 to **one decay per channel**: $A_{d,n} = a_d$ for every state $n$ (Mamba-2's
# restriction, a scalar times the identity). Write $w_{t,d} = \frac{e^{\Delta_{t,d} a_d} - 1}{a_d}$
# (the exact ZOH; Mamba's Euler rule: $w_{t,d} = \Delta_{t,d}$), so that
# $\bar B_{t,d,n} = w_{t,d} B_{t,n}$, and $x_{t,d} = w_{t,d}\, u_{t,d}$. Unrolling the recurrence of
# channel $d$ from $h_0 = 0$,
#
# $$y_{t,d} = \sum_{s \le t} \underbrace{\exp\Big(\sum_{r=s+1}^{t} \Delta_{r,d}\, a_d\Big)}_{L_{ts}}
# \, (C_t^\top B_s)\, x_{s,d} + D_{skip,d}\, u_{t,d}, \qquad\text{i.e.}\qquad
# y_{:,d} = (L \circ C B^\top)\, x_{:,d} + D_{skip,d}\, u_{:,d}.$$
#
# That is notebook 09b's masked parallel form $\big((Q K^\top) \odot D\big) V$ with
# $q_t = C_t$, $k_t = B_t$, $v_t = x_t = w_t u_t$ (Mamba-2's $\Delta \cdot u$ under the Euler rule) and
# the decay $\gamma_t = e^{\Delta_t a}$: each channel is a head of decayed linear attention with a
# state of $N$ keys and one value. The mask $L$ is 09b's `decay_mask`; it is **1-semiseparable**
# (every block on or below its diagonal has rank one, since $L_{ts} = e^{c_t} e^{-c_s}$ with
# $c_t = \sum_{r \le t} \Delta_r a$), which is what lets the recurrence compute it in $O(T)$.
# `ssd_attention` computes the masked form with `einsum`; `ssd_qkv` hands the same numbers to
# 09b's `linear_attention_parallel` and `linear_attention_chunkwise`. All against the step-by-step
# recurrence of section 1 (with $A$ broadcast to $(D, N)$), in float64, for both rules:

# %%
from course_utils.linear_attention import decay_mask, linear_attention_chunkwise, linear_attention_parallel
from course_utils.selective_ssm import ssd_attention, ssd_qkv

a_channel = A[:, 0]  # (D,): one decay per channel, from section 1's inputs
ssd_gaps = {}
for rule in ("zoh", "euler"):
    y_rec, _ = selective_scan(u, delta, a_channel[:, None].expand(D, N), B_t, C_t, D_skip, rule=rule, method="steps")
    qkvg = ssd_qkv(u, delta, a_channel, B_t, C_t, rule=rule)  # q = C, k = B, v = w u, gamma = exp(Delta a)
    forms = {"(L o C B^T) x + D u": ssd_attention(u, delta, a_channel, B_t, C_t, D_skip, rule=rule),
             "09b linear_attention_parallel": linear_attention_parallel(*qkvg)[..., 0].permute(2, 0, 1) + D_skip * u,
             "09b linear_attention_chunkwise": linear_attention_chunkwise(*qkvg, chunk=8)[0][..., 0].permute(2, 0, 1)
             + D_skip * u}
    for label, y_form in forms.items():
        ssd_gaps[rule, label] = (y_form - y_rec).abs().max().item()
        print(f"rule {rule:5s}: {label:31s} against the S6 recurrence: max |difference| = {ssd_gaps[rule, label]:.1e}")
assert max(ssd_gaps.values()) < 1e-10
L_mask = decay_mask((delta[:, 0, 0] * a_channel[0]).exp())  # (T, T): batch 0, channel 0
block_ranks = [int(torch.linalg.matrix_rank(L_mask[t:, : t + 1])) for t in range(len(L_mask))]
print(f"rank of every block L[t:, :t+1] on and below the diagonal, t = 0 .. {len(L_mask) - 1}: {set(block_ranks)}")
assert set(block_ranks) == {1}

# %% [markdown]
# This is the **state space duality** of Dao and Gu (2024), *Transformers are SSMs:
# Generalized Models and Efficient Algorithms Through Structured State Space Duality* (Mamba-2):
# a selective SSM whose $A$ is a scalar per head and a masked attention with a
# 1-semiseparable mask are one function, computed either as a recurrence (linear in $T$, what
# generation uses) or as attention (matrix multiplications, what accelerators are good at);
# their SSD algorithm is 09b's chunkwise form, attention inside chunks and the recurrence
# between them. Mamba-2 also shares $\Delta$ and $a$ among the $P$ channels of a head (here every
# channel is its own head, $P = 1$) and reads $B$, $C$ once for all heads, as this S6 does. With
# a full diagonal $A$ (section 1's $a_{d,n}$ varying with $n$) each state has its own mask and the
# identity needs $N$ masks per channel instead of one: the scalar decay is what makes S6 *one*
# attention matrix per head.
#
# ### Exercise 4 (2 points, about 15 minutes): S6 as masked attention
#
# Write `my_ssd_attention(u, delta, a, B_t, C_t)`: `u`, `delta` $(T, B, D)$, `a` $(D,)$ (negative, one
# decay per channel), `B_t`, `C_t` $(T, B, N)$. Return $y$ $(T, B, D)$ with
# $y_{t,d} = \sum_{s \le t} L^{(d)}_{ts}\, (C_t \cdot B_s)\, \Delta_{s,d} u_{s,d}$ (the Euler rule, Mamba-2's
# $v = \Delta \cdot u$; no skip term), where $L^{(d)}_{ts} = \exp(c_{t,d} - c_{s,d})$ for $s \le t$, 0 above
# the diagonal, and $c = $ the cumulative sum of $\Delta a$ over time. Build the mask in log space, with
# $-\infty$ above the diagonal **before** the exponential (the check includes a sequence whose
# products fall below float64's range), and let `torch.einsum` do the sums: the scores are
# `einsum("tbn,sbn->bts", C_t, B_t)`.

# %% nbgrader={"grade": false, "grade_id": "ssd_attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_ssd_attention(u: torch.Tensor, delta: torch.Tensor, a: torch.Tensor, B_t: torch.Tensor,
                     C_t: torch.Tensor) -> torch.Tensor:
    """y = (L o C B^T) (Delta u) per channel, L_ts = exp(c_t - c_s) for s <= t; returns y (T, B, D)."""
    ### BEGIN SOLUTION
    c = torch.cumsum(delta * a, dim=0).permute(1, 2, 0)  # (B, D, T): c_t = sum_(r <= t) Delta_r a
    steps = u.shape[0]
    above = torch.ones(steps, steps, dtype=torch.bool, device=u.device).triu(1)  # s > t
    L = (c[..., :, None] - c[..., None, :]).masked_fill(above, float("-inf")).exp()  # (B, D, T, T)
    scores = torch.einsum("tbn,sbn->bts", C_t, B_t)  # (B, T, T): C_t . B_s
    return torch.einsum("bdts,bts,sbd->tbd", L, scores, delta * u)  # (T, B, D)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ssd_attention_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.selective_ssm import check_ssd_attention

check_ssd_attention(my_ssd_attention)  # (T, B, D, N) = (7, 2, 3, 4) and (12, 1, 2, 3); then T = 300


# %% nbgrader={"grade": true, "grade_id": "ssd_attention_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_ssd_attention(my_ssd_attention, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. The delta rule: a transition that is not diagonal
#
# Linear attention (09b) **adds** $k_t v_t^\top$ to the state, so reading the key $k$ back,
# $S^\top k$, returns the sum of every value ever written under keys like it. The **delta rule**
# (Schlag, Irie and Schmidhuber 2021, *Linear Transformers Are Secretly Fast Weight
# Programmers*; DeltaNet) first reads what the state holds under the (normalised) key, then
# replaces it: one step of gradient descent, with step size $\beta_t$, on the regression loss
# $\frac12 \lVert S^\top k_t - v_t \rVert^2$, whose gradient is $k_t (k_t^\top S - v_t^\top)$:
#
# $$S_t = S_{t-1} - \beta_t k_t \big(k_t^\top S_{t-1} - v_t^\top\big)
# = (I - \beta_t k_t k_t^\top)\, S_{t-1} + \beta_t k_t v_t^\top, \qquad o_t = S_t^\top q_t,
# \qquad \lVert k_t \rVert = 1.$$
#
# The convention is 09b's: $S$ is $(d_k, d_v)$, one row per key feature. The papers store the
# transpose, $S_t = S_{t-1}(I - \beta_t k_t k_t^\top) + \beta_t v_t k_t^\top$: the same numbers.
# **Gated DeltaNet** (Yang, Kautz and Hatamizadeh 2025, *Gated Delta Networks: Improving Mamba2
# with Delta Rule*) adds Mamba-2's decay, $S_t = \gamma_t (I - \beta_t k_t k_t^\top) S_{t-1} +
# \beta_t k_t v_t^\top$. The transition $I - \beta_t k_t k_t^\top$ is no longer diagonal, so notebook
# 09's scans of scalar recurrences do not apply; Yang, Wang, Zhang, Shen and Kim (2024), *Parallelizing
# Linear Transformers with the Delta Rule over Sequence Length*, train it chunkwise with a
# compact (WY) form of the products of these matrices, not built here. `delta_rule_recurrent`
# is the loop over `delta_rule_step`; in float64 against the gradient step itself, taken by
# autograd on the loss, with a decay:

# %%
from course_utils.delta_rule import delta_rule_recurrent
from course_utils.linear_attention import linear_attention_recurrent

g_dr = torch.Generator().manual_seed(1)
q_dr, k_dr = (torch.randn(2, 3, 12, 4, generator=g_dr, dtype=torch.float64) for _ in range(2))  # (B, NH, T, d_k)
v_dr = torch.randn(2, 3, 12, 5, generator=g_dr, dtype=torch.float64)  # (B, NH, T, d_v)
beta_dr = torch.rand(2, 3, 12, generator=g_dr, dtype=torch.float64) * 2  # (B, NH, T), in [0, 2]
gamma_dr = torch.rand(2, 3, 12, generator=g_dr, dtype=torch.float64) * 0.5 + 0.5
o_dr, S_dr = delta_rule_recurrent(q_dr, k_dr, v_dr, beta_dr, gamma_dr)
S_grad, o_grad = torch.zeros(2, 3, 4, 5, dtype=torch.float64), []
for t in range(12):  # the online-regression view: decay, then one gradient step of size beta_t
    key = k_dr[:, :, t] / k_dr[:, :, t].norm(dim=-1, keepdim=True)  # (B, NH, d_k)
    S_leaf = (gamma_dr[:, :, t, None, None] * S_grad).requires_grad_()
    loss = 0.5 * ((torch.einsum("bhkv,bhk->bhv", S_leaf, key) - v_dr[:, :, t]) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, S_leaf)
    S_grad = (S_leaf - beta_dr[:, :, t, None, None] * grad).detach()
    o_grad.append(torch.einsum("bhkv,bhk->bhv", S_grad, q_dr[:, :, t]))
check_close("gated delta rule against gradient steps on 1/2 ||S^T k - v||^2 (float64)", o_dr, torch.stack(o_grad, 2))
check_close("and the last state", S_dr, S_grad)

# %% [markdown]
# Two checks link it to 09b. With **orthonormal keys** ($k_t = e_t$), nothing is stored under
# $k_t$ before step $t$ writes it, the erase term $k_t k_t^\top S_{t-1}$ is 0, and the delta rule is
# linear attention with the values $\beta_t v_t$. With the **same key twice**, linear attention
# returns the sum of the two values, the delta rule ($\beta = 1$) the latest one:

# %%
eye_keys = torch.eye(4, dtype=torch.float64).expand(2, 3, 4, 4)  # (B, NH, T = 4, d_k = 4): k_t = e_t
check_close("delta rule with orthonormal keys against 09b's linear attention with values beta v",
            delta_rule_recurrent(q_dr[:, :, :4], eye_keys, v_dr[:, :, :4], beta_dr[..., :4])[0],
            linear_attention_recurrent(q_dr[:, :, :4], eye_keys, beta_dr[..., :4, None] * v_dr[:, :, :4])[0])
same_key = torch.tensor([1.0, 0.0], dtype=torch.float64).expand(1, 1, 2, 2)  # (1, 1, T = 2, d_k = 2)
two_values = torch.tensor([3.0, 5.0], dtype=torch.float64).view(1, 1, 2, 1)  # write 3, then 5, under one key
read_delta = delta_rule_recurrent(same_key, same_key, two_values, 1.0)[0][0, 0, -1, 0].item()
read_linear = linear_attention_recurrent(same_key, same_key, two_values)[0][0, 0, -1, 0].item()
print(f"write 3 then 5 under one key, read it back: delta rule {read_delta:g}, linear attention {read_linear:g}")
assert read_delta == 5.0 and read_linear == 8.0

# %% [markdown]
# ### Exercise 5 (2 points, about 10 minutes): one step of the delta rule
#
# Write `my_delta_rule_step(S, q, k, v, beta)` for a batch: `S` $(B, d_k, d_v)$, `q`, `k`
# $(B, d_k)$, `v` $(B, d_v)$, `beta` $(B,)$. Normalise the key first, $\hat k = k / \lVert k \rVert$
# (over its $d_k$ features; `q` is used as given), then return `(o, S_new)` with
# $S_{\text{new}} = (I - \beta \hat k \hat k^\top) S + \beta \hat k v^\top$ and $o = S_{\text{new}}^\top q$,
# of shape $(B, d_v)$. No $d_k \times d_k$ matrix is needed: $\hat k \hat k^\top S = \hat k\, (\hat k^\top S)$. The check
# also runs your step over a sequence with $\beta$ in $[0, 2]$ and compares it with `delta_rule_recurrent`.

# %% nbgrader={"grade": false, "grade_id": "delta_rule_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_delta_rule_step(S: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """S_new = (I - beta k k^T) S + beta k v^T with k normalised, o = S_new^T q; returns (o (B, d_v), S_new)."""
    ### BEGIN SOLUTION
    k = k / k.norm(dim=-1, keepdim=True)  # (B, d_k), unit length
    kS = (k[:, None, :] @ S)[:, 0]  # (B, d_v): k^T S
    b = beta[:, None, None]
    S_new = S - b * k[:, :, None] * kS[:, None, :] + b * k[:, :, None] * v[:, None, :]  # (B, d_k, d_v)
    o = (q[:, None, :] @ S_new)[:, 0]  # (B, d_v): S_new^T q
    return o, S_new
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "delta_rule_step_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.delta_rule import check_delta_rule_step

check_delta_rule_step(my_delta_rule_step)  # d_k = d_v = 4 and d_k = 3, d_v = 5; then 8 steps


# %% nbgrader={"grade": true, "grade_id": "delta_rule_step_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_delta_rule_step(my_delta_rule_step, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ### State tracking with reflections
#
# Notebook 09b's section 5 ended on a negative result: a diagonal transition $a_t \in (-1, 1)$ can
# flip a sign (parity) but not count modulo 3, which needs a rotation. The delta rule's
# transition $M = I - \beta k k^\top$ (unit $k$) has the eigenvalue $1 - \beta$ along $k$ and 1 on
# the $d_k - 1$ directions across it. DeltaNet takes $\beta = \sigma(\cdot) \in (0, 1)$:
# eigenvalues in $(0, 1]$, no negative one: the regime in which 09b's theorems rule parity out. Grazzi
# et al. (2024), *Unlocking State-Tracking in Linear RNNs Through Negative Eigenvalues*, widen it
# to $\beta \in (0, 2)$, eigenvalues in $(-1, 1]$; at $\beta = 2$, $M$ is a **reflection** (a Householder
# matrix, $M^2 = I$). And a product of two reflections is a rotation. Measured:

# %%
from course_utils.delta_rule import householder_count_inputs, transposition_key

k_unit = F.normalize(torch.randn(5, generator=g_dr, dtype=torch.float64), dim=0)  # (5,)
for beta_value in (0.5, 1.0, 2.0):
    M = torch.eye(5, dtype=torch.float64) - beta_value * torch.outer(k_unit, k_unit)
    eigenvalues = torch.linalg.eigvalsh(M)  # M is symmetric: real eigenvalues
    print(f"beta = {beta_value}: eigenvalues of I - beta k k^T: {[round(e, 6) for e in eigenvalues.tolist()]}")
    check_close(f"  they are 1 - beta and four 1s (beta = {beta_value})", eigenvalues,
                torch.tensor(sorted([1 - beta_value] + [1.0] * 4), dtype=torch.float64), quiet=True)
check_close("beta = 2: M M = I, a reflection", M @ M, torch.eye(5, dtype=torch.float64))
swap_01, swap_12 = (torch.eye(3, dtype=torch.float64) - 2 * torch.outer(kk, kk)
                    for kk in (transposition_key(0, 1, 3), transposition_key(1, 2, 3)))
P = swap_12 @ swap_01  # the two reflections of one bit, the first one applied first
print("swap_12 @ swap_01 =\n", P.round(decimals=12).numpy())
rotation_eigenvalues = torch.linalg.eigvals(P)
print(f"its eigenvalues: {[f'{e:.4f}' for e in rotation_eigenvalues.tolist()]}; angles "
      f"{sorted(round(float(e.angle().abs()) * 180 / torch.pi, 6) for e in rotation_eigenvalues)} degrees")
check_close("P^3 = I: a cyclic permutation of three coordinates", torch.linalg.matrix_power(P, 3),
            torch.eye(3, dtype=torch.float64))
assert sorted(round(float(e.angle().abs()) * 180 / torch.pi, 6) for e in rotation_eigenvalues) == [0.0, 120.0, 120.0]

# %% [markdown]
# **What one delta-rule step per token can represent.** Each step's transition is symmetric,
# with real eigenvalues $1$ and $1 - \beta$. On the string $1 1 1 \dots$ one layer that gives a token
# its keys, $\beta$ and values from the token alone applies the same affine map
# $S \mapsto M S + \beta k v^\top$ at every step; along each eigenvector of $M$ the state converges
# ($|1 - \beta| < 1$), flips with period 2 ($\beta = 2$) or moves by the same amount at every
# step (eigenvalue 1: a counter, exact only while the numbers stay small enough for the float
# format). A period of 3 is not among them, so in finite precision, at every length, one
# step per token can track **parity** (a reflection per one) but cannot count **modulo 3**
# (a sketch of the argument, not a theorem of this course). Two steps per token can: the
# product of two reflections is the $120°$ rotation above, a cyclic permutation. Siems et al.
# (2025), *DeltaProduct*, take several delta-rule steps per token for this reason.
#
# `householder_count_inputs(bits, m)` builds those weights by hand: every bit becomes $m - 1$
# delta-rule steps with the keys $(e_i - e_{i+1})/\sqrt 2$ of the transpositions, $\beta = 2 \cdot$bit
# and $v = 0$; the state starts at $S_0 = I$ and after $n$ ones it is $P^n$, so the output for
# $q = e_0$ is the one-hot vector of $n \bmod m$. Parity is $m = 2$: one step per bit, a single
# reflection. We run it in float32, the course's training dtype, on **every** bit string of 12
# bits (4096 strings, their prefixes cover every string of 1 to 12 bits, the output read after
# every bit) and on 64 random strings of 2000 bits; and, as the contrast, the same weights with
# $\beta$ capped at 1 (DeltaNet's range), where a one **projects** instead of reflecting:

# %%
import itertools

all_strings = torch.tensor(list(itertools.product([0, 1], repeat=12)), dtype=torch.float32)  # (4096, 12)
long_strings = torch.randint(0, 2, (64, 2000), generator=torch.Generator().manual_seed(2)).float()  # (64, 2000)


def count_outputs(bits, m, beta_max=2.0):
    """The delta rule's output after every bit, (B, T, m), for householder_count_inputs (float32)."""
    q_c, k_c, v_c, beta_c, S0_c = householder_count_inputs(bits, m, beta_max=beta_max)
    out, _ = delta_rule_recurrent(q_c, k_c, v_c, beta_c, S0=S0_c)
    return out[:, 0, m - 2 :: m - 1]  # (B, T, m): after the last of each bit's m - 1 steps


counting, drifts = {}, {}
for m in (2, 3):
    for label, bits_m in (("all 12-bit strings", all_strings), ("64 strings of 2000 bits", long_strings)):
        out_m = count_outputs(bits_m, m)
        target = bits_m.cumsum(1).long() % m  # (B, T): ones so far, mod m
        accuracy = (out_m.argmax(-1) == target).float().mean().item()
        drift = (out_m - F.one_hot(target, m).float()).abs().max().item()
        counting[m, label] = accuracy
        drifts[m, label] = drift
        print(f"mod {m}, beta = 2, {label:24s}: accuracy {accuracy:.4f} at every prefix; "
              f"max |output - one-hot| = {drift:.1e}")
assert all(accuracy == 1.0 for accuracy in counting.values())
assert max(drifts.values()) < 1e-2  # far from the 0.5 at which an argmax could flip
capped = count_outputs(all_strings, 2, beta_max=1.0)  # (4096, 12, 2)
after_a_one = capped[all_strings.cumsum(1) > 0]  # (prefixes with a one, 2)
spread_capped = (after_a_one - after_a_one[0]).abs().max().item()
print(f"parity with beta capped at 1: every prefix holding a one gives the output {after_a_one[0].tolist()}, "
      f"up to {spread_capped:.1e}: odd and even are one state")
assert spread_capped < 1e-5

# %% [markdown]
# With $\beta = 2$ the hand-made delta rule counts modulo 2 and modulo 3 without a single error,
# on every string up to 12 bits and on strings of 2000 bits. Its output is the exact one-hot
# vector up to float32 rounding (the printed drift: a few $10^{-6}$ on 12 bits, larger after
# 2000 bits, yet far from the $0.5$ at which the answer could change): a reflection is
# orthogonal, so it carries an error along without amplifying it. With $\beta$ capped at 1 the first one projects the state onto a line, and every
# later one leaves it there: parity is lost after the first one. This is what the
# construction can represent; whether training **finds** it is a separate question, which
# Grazzi et al. study on larger models and which this notebook does not measure.

# %% [markdown]
# ## Summary
#
# - A diagonal SSM $h' = Ah + Bx$, discretised with the **zero-order hold**, steps as
#   $h_t = e^{\Delta A} h_{t-1} + \frac{e^{\Delta A} - 1}{A} B x_t$; Mamba's code takes
#   $\bar B = \Delta B$, which agrees to first order (the gap fell about 100 times per 10 times
#   smaller $\Delta$, measured).
# - **S6** makes $\Delta_t$, $B_t$ and $C_t$ functions of the input. Every one of its $D \times N$
#   states is still the scalar recurrence $h_t = a_t h_{t-1} + b_t$ of notebook 09, so the
#   scans of notebook 09 run it: the loop, the scans and their gradients agree in float64.
# - **minGRU is S6 with $N = 1$**, $A = -1$, $\Delta = \operatorname{softplus}(k)$, $B = C = 1$:
#   $e^{-\operatorname{softplus}(k)} = 1 - \sigma(k)$ and the exact ZOH gives $\bar B = \sigma(k)$.
#   Checked with copied weights in float64.
# - On selective copying, at 250 steps and three seeds: S6 well above its time-invariant twin
#   (selection matters), not better than minGRU (their seeds overlap), and below `nn.GRU`'s
#   median (see the table for each model's range over seeds). S6's case is the
#   parallel scan, not accuracy on 24 tokens.
# - **SSD**: with one decay per channel, S6 *is* decayed linear attention, $y = (L \circ C B^\top)(w \cdot u)$
#   with $w = \Delta$ (Euler) or $(e^{\Delta a} - 1)/a$ (ZOH) and the 1-semiseparable mask
#   $L_{ts} = e^{\sum_{r=s+1}^t \Delta_r a}$: recurrence, masked attention and 09b's parallel and
#   chunkwise forms agreed to about $10^{-14}$ in float64, and every block of $L$ below its diagonal
#   had rank 1.
# - **The delta rule** $S_t = \gamma_t (I - \beta_t k_t k_t^\top) S_{t-1} + \beta_t k_t v_t^\top$ is a gradient
#   step on $\frac12 \lVert S^\top k_t - v_t \rVert^2$ (checked against autograd); with orthonormal keys it
#   is linear attention, with a repeated key it overwrites where linear attention adds.
# - **Reflections track state.** $I - \beta k k^\top$ has the eigenvalue $1 - \beta$; with $\beta = 2$ it is a
#   reflection and one delta-rule step per bit computes parity; two reflections per bit make a
#   $120°$ rotation and count modulo 3. Weights made by hand: no error on all strings up to 12
#   bits and on strings of 2000 bits, in float32. With $\beta$ capped at 1 (DeltaNet's range) a one
#   projects and parity is lost. One symmetric step per token has no period 3 (the sketch in
#   section 5); whether training finds these weights was not measured here.
#
# **References.** A. Gu and T. Dao (2023), *Mamba: Linear-Time Sequence Modeling with Selective
# State Spaces* (Algorithm 2, section 3.1). A. Gu, K. Goel, A. Gupta, C. Ré (2022), *On the
# Parameterization and Initialization of Diagonal State Space Models* (S4D). L. Feng, F. Tung,
# M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi (2024), *Were RNNs All We Needed?* (minGRU).
# The copying memory task that selective copying varies goes back to S. Hochreiter and
# J. Schmidhuber (1997), *Long Short-Term Memory*; M. Arjovsky, A. Shah, Y. Bengio (2016),
# *Unitary Evolution Recurrent Neural Networks*, popularised the form used today.
# T. Dao and A. Gu (2024), *Transformers are SSMs: Generalized Models and Efficient Algorithms
# Through Structured State Space Duality*, ICML (Mamba-2). I. Schlag, K. Irie, J. Schmidhuber
# (2021), *Linear Transformers Are Secretly Fast Weight Programmers*, ICML (the delta rule).
# S. Yang, B. Wang, Y. Zhang, Y. Shen, Y. Kim (2024), *Parallelizing Linear Transformers with the
# Delta Rule over Sequence Length*, NeurIPS (DeltaNet). S. Yang, J. Kautz, A. Hatamizadeh (2025),
# *Gated Delta Networks: Improving Mamba2 with Delta Rule*, ICLR. R. Grazzi, J. Siems, A. Zela,
# J. K. H. Franke, F. Hutter, M. Pontil (2024), *Unlocking State-Tracking in Linear RNNs Through
# Negative Eigenvalues* (ICLR 2025). J. Siems et al. (2025), *DeltaProduct*.
#
# Next: this is the last notebook of the course for now; the README's lecture table lists
# them all, with their Colab and student links.

# %%
report_run_time()
