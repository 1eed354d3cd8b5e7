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
# # 00 · Setup: your environment, and how this course works
#
# **Objectives.** By the end of this notebook you will have
# 1. checked that the pinned packages are installed and that PyTorch runs on your device,
# 2. seen how the course is organised (notebooks, the `course_utils` package, data),
# 3. solved a first graded exercise and seen how its checks tell you what is wrong,
# 4. trained a first tiny model with the course's training loop.
#
# It runs in a few seconds on a laptop CPU.

# %%
# Colab set-up: on Google Colab, fetch the course and its data (once, ~20 s). Elsewhere: nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    COURSE_URL = "https://github.com/seqmodels-course/sequence-models"
    COURSE_DIR = "/content/seqmodels"
    if not os.path.isdir(COURSE_DIR):
        subprocess.run(["git", "clone", "--depth=1", COURSE_URL, COURSE_DIR], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "faker==40.63.0"], check=True)
    if COURSE_DIR not in sys.path:
        sys.path.insert(0, COURSE_DIR)

# %% [markdown]
# ## How the course is organised
#
# | notebook | topic | its helpers in `course_utils` |
# | --- | --- | --- |
# | 00_setup | environment, exercises, the training loop | `device`, `seed`, `checks`, `training`, `plotting`, `data` |
# | 01_rnn | the recurrent connection, unfolding through time | `rnn` |
# | 02_bptt | backpropagation through time, vanishing and exploding gradients | `bptt`, `char_rnn` |
# | 03_lstm | the LSTM cell and long-range memory | `lstm`, `long_range` |
# | 04_gru | the GRU cell, RNN vs LSTM vs GRU | `gru` |
# | 05a-05d | classification, generation, tagging and seq2seq, forecasting | `output_types`, `names`, `forecasting` |
# | 06_attention | attention in encoder-decoder models | `attention`, `dates` |
# | 07_self_attention | self-attention and multi-head attention | `self_attention` |
# | 08_transformers | the transformer and a tiny GPT | `transformer` |
# | 09_modern_rnns | echo state networks, IndRNN, minGRU/minLSTM and parallel scans | `esn`, `min_rnns`, `scan` |
#
# Each notebook follows the same path: objectives, the math, an implementation from
# scratch, a check against PyTorch's own layer, plots, an experiment on real data, graded
# exercises, and a summary. Code you will reuse lives in `course_utils`, one file per idea,
# named after the notebook that introduces it — open it whenever you want to see how
# something works. Small data sets ship in `data/` (see `data/README.md`); nothing is
# downloaded, so the course runs offline.

# %% [markdown]
# ## 1. Check the environment
#
# The course pins exact versions in `pyproject.toml` (and `environment.yml` for conda), so
# every learner sees the same numbers. The cell below prints what you have and warns if a
# version differs from the pin — the course may still run, but some numbers can change.

# %%
import platform
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import course_utils
from course_utils import describe_device, get_device, seed_everything

pyproject = Path(course_utils.__file__).resolve().parent.parent / "pyproject.toml"
pins = {}
for requirement in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
    name, pinned = re.split(r"==", requirement)
    pins[name] = pinned

print(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}")
mismatches = []
for name, pinned in pins.items():
    installed = version(name)
    same = installed.split("+")[0] == pinned  # torch's CPU build is '2.13.0+cpu'
    print(f"  {name:24s} {installed:14s} {'ok' if same else 'pinned ' + pinned}")
    if not same:
        mismatches.append(name)
print("All pinned versions match." if not mismatches else f"WARNING: versions differ for {mismatches}")

# %% [markdown]
# ## 2. The device
#
# Every notebook asks `course_utils.get_device()` where to run, and never writes `"cuda"` or
# `"cpu"` itself. Without settings it picks a CUDA GPU if there is one, then Apple's `mps`,
# then the CPU. To force a choice, set the environment variable `COURSE_DEVICE` before
# starting Jupyter, e.g. `COURSE_DEVICE=cpu make lab`. Asking for `cuda` on a machine
# without one is an error, not a quiet fall-back to the CPU: you should know where your
# timings come from.

# %%
device = get_device()
print("Running on:", describe_device(device))

# %% [markdown]
# A matrix product on that device, compared with the same product in float64 on the CPU.
# The check allows the rounding error of float32 on this device (`course_utils.tolerance`):
# results from different devices agree to a tolerance, never bit for bit.

# %%
from course_utils import check_close, tolerance

seed_everything(0)
a = torch.randn(256, 128)
b = torch.randn(128, 64)
on_device = a.to(device) @ b.to(device)  # (256, 64), computed on `device`
reference = (a.double() @ b.double()).float()  # (256, 64), float64 on the CPU, rounded
rtol, atol = tolerance(torch.float32, device)
# Each entry sums 128 products, so its float32 rounding error is about sqrt(128) times one
# rounding: we widen atol by that factor.
check_close("a @ b", on_device, reference, rtol=rtol, atol=atol * 128**0.5 * 10)

# %% [markdown]
# ## 3. Reproducible runs
#
# `seed_everything(seed)` seeds Python's `random`, numpy and torch in one call. On the CPU
# the same seed gives the same numbers on every run:

# %%
seed_everything(42)
first = torch.randn(3)
seed_everything(42)
second = torch.randn(3)
print(first, second)
assert torch.equal(first, second), "the same seed should give the same numbers on the CPU"

# %% [markdown]
# ## 4. How exercises work
#
# Exercises are cells with a solution block between two marker comments (their exact form
# is in `CONTRIBUTING.md`). In the
# *student* notebooks (folder `student/`) that block is replaced by
# `raise NotImplementedError()`: write your code there. The cell after it is a **check**:
# run it, and it tells you what is wrong — a shape, a dtype, which values are off and by
# how much — or prints `OK`. Instructors grade the same cells with hidden tests as well, so
# make your function correct in general, not just on the visible example.
#
# The cells follow the conventions of [nbgrader](https://nbgrader.readthedocs.io), so an
# instructor can use nbgrader or the course's own grader (`python -m course_utils.grading`;
# see the README's section for instructors).
#
# ### Exercise 0 (1 point): a numerically stable softmax
#
# $$\operatorname{softmax}(z)_j = \frac{e^{z_j}}{\sum_k e^{z_k}}
#   = \frac{e^{z_j - m}}{\sum_k e^{z_k - m}}, \qquad m = \max_k z_k .$$
#
# Both forms are equal, but only the second is safe: $e^{1000}$ overflows to `inf`, while
# after subtracting $m$ every exponent is at most $e^0 = 1$. Implement `softmax(z)` for a
# numpy array `z` of any shape, normalising over the **last** axis.

# %% nbgrader={"grade": false, "grade_id": "softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of z, shape preserved."""
    ### BEGIN SOLUTION
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "softmax_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils import check_close

z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
check_close("softmax(z)", softmax(z), torch.softmax(torch.from_numpy(z), dim=-1))
### BEGIN HIDDEN TESTS
big = np.array([1000.0, 1001.0, 1002.0])
check_close("softmax of large values", softmax(big), torch.softmax(torch.from_numpy(big), dim=-1))
rng = np.random.default_rng(7)
z3 = rng.normal(size=(2, 3, 5))
check_close("softmax of a 3-d array", softmax(z3), torch.softmax(torch.from_numpy(z3), dim=-1))
### END HIDDEN TESTS

# %% [markdown]
# Try breaking it: change the solution to normalise over the first axis, or to drop the
# `- m`, and run the check again to see what it reports.

# %% [markdown]
# ## 5. Data and a first training run
#
# Data ships in `data/` with its provenance and a SHA-256 hash. `course_utils.data`
# checks the hash before handing you the file, so everyone trains on the same numbers.
# Here is the yearly sunspot number, a series we will forecast in notebook 05:

# %%
from course_utils.data import load_sunspots

years, sunspots = load_sunspots()
print(f"{len(years)} years, {years[0]}-{years[-1]}; mean {sunspots.mean():.1f}, max {sunspots.max():.0f}")
fig, ax = plt.subplots(figsize=(8, 2.5))
ax.plot(years, sunspots)
ax.set_xlabel("year")
ax.set_ylabel("sunspot number")
plt.show()

# %% [markdown]
# The course's training loop, `course_utils.fit`, is the loop you would write by hand —
# forward, loss, backward, optional gradient clipping, optimiser step — with a progress bar
# and a loss history. Its one convention: `loss_fn(model, batch)` returns the loss of a
# batch, and `supervised(criterion)` builds the usual `criterion(model(x), y)`.
#
# As a first model, a linear **autoregression**: predict this year's (scaled) sunspot
# number from the previous $p = 2$ years, $\hat y_t = w_1 y_{t-1} + w_2 y_{t-2} + b$.

# %%
from course_utils import fit, plot_losses, supervised

seed_everything(0)
p = 2
series = torch.tensor(sunspots / sunspots.max(), dtype=torch.float32)  # scaled to [0, 1]
windows = series.unfold(0, p + 1, 1)  # (N, p + 1): p past values, then the target
x, y = windows[:, :p], windows[:, p:]  # (N, p), (N, 1)
batches = list(zip(x.split(32), y.split(32), strict=True))

model = torch.nn.Linear(p, 1).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
history = fit(model, batches, supervised(torch.nn.functional.mse_loss), optimizer, epochs=40)
plot_losses(history, logy=True, xlabel="optimiser step", title="AR(2) on sunspots")
plt.show()

# %% [markdown]
# How good is that? Compare with the least-squares solution of the same linear model,
# which gradient descent should approach, and with the naive forecast "same as last year":

# %%
design = torch.cat([x, torch.ones(len(x), 1)], dim=1).double()  # (N, p + 1)
solution = torch.linalg.lstsq(design, y.double()).solution
lstsq_mse = torch.mean((design @ solution - y.double()) ** 2).item()
model.eval()
with torch.no_grad():
    fit_mse = torch.mean((model(x.to(device)).cpu() - y) ** 2).item()
naive_mse = torch.mean((x[:, -1:] - y) ** 2).item()
print(f"MSE, gradient descent : {fit_mse:.5f}")
print(f"MSE, least squares    : {lstsq_mse:.5f}")
print(f"MSE, same as last year: {naive_mse:.5f}")
assert fit_mse < 1.05 * lstsq_mse, "training should get within 5% of the least-squares optimum"
assert fit_mse < naive_mse

# %% [markdown]
# ## Summary
#
# - `get_device()` picks where to run; `COURSE_DEVICE` overrides it, and an unavailable
#   request is an error.
# - `seed_everything()` makes CPU runs repeatable; checks compare with tolerances per dtype
#   and device.
# - Exercises live between two solution markers; the check cell after
#   each one explains what is wrong.
# - `fit()` trains any model with a progress bar and returns its loss history;
#   `plot_losses()` draws it.
#
# Next: **01 · RNN**, the recurrent connection.
