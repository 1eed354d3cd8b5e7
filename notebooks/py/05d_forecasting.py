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
# # 05d · Output types IV: forecasting a real time series
#
# Forecasting is many-to-one regression: a window of past values in, the next value out.
# It is also where it is easiest to fool yourself — a model that looks good on a plot can
# be worse than "same as last year". This notebook forecasts the yearly **sunspot number**
# one year ahead and compares an RNN and an LSTM with honest baselines.
#
# **Objectives.** By the end of this notebook you will
# 1. split a series **by time** into training, validation and test years, and fit the
#    scaling on the training years only;
# 2. measure the naive baselines (persistence, the training mean) and a linear
#    autoregression, whose least-squares fit you check a second, independent way;
# 3. train an RNN and an LSTM, early-stopped on the validation years, over several seeds,
#    choose between them on the validation years, and report what they achieve on the
#    test years — even when a linear model wins, and why it does here;
# 4. forecast several years ahead by feeding forecasts back, and tell which order carries
#    further on the validation years;
# 5. see why a course should not promise stock-price prediction.
#
# Helpers: `course_utils/forecasting.py` (windows, scaling, the autoregression, the RNN forecaster).

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
import numpy as np
import torch

from course_utils import check_close, fit, report_run_time, seed_everything, start_notebook, supervised
from course_utils.data import load_sunspots
from course_utils.exercises.forecasting import HORIZON, ar_order_rmse
from course_utils.forecasting import (
    RNNForecaster,
    Standardizer,
    ar_predict,
    fit_ar,
    recursive_forecast,
    rmse,
    windows,
    windows_for_years,
)

device = start_notebook()

# %% [markdown]
# ## 1. The data and the split
#
# Yearly mean sunspot numbers 1700-2008 (`data/sunspots.csv`, a copy of the data set that
# ships with statsmodels; public domain). The series has a cycle of roughly 11 years whose
# peaks vary a lot in height.
#
# The split is **by time**, never at random: a forecast may only use the past.
# - training: target years 1700-1900 (the networks) or 1700-1920 (the baselines of section 3),
# - validation: 1901-1920, for early stopping and choices,
# - test: 1921-1987, touched once, after every choice is made.

# %%
years, sunspots = load_sunspots()
train_end, val_end, test_start, test_end = 1900, 1920, 1921, 1987
print(f"{len(years)} years, {years[0]}-{years[-1]}")
fig, ax = plt.subplots(figsize=(9, 2.8))
ax.plot(years, sunspots, color="k", lw=1)
ax.axvspan(years[0], train_end, alpha=0.12, color="C0", label="train")
ax.axvspan(train_end, val_end, alpha=0.2, color="C1", label="validation")
ax.axvspan(val_end, test_end, alpha=0.12, color="C2", label="test")
ax.set_ylabel("sunspot number")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# ## 2. Windows
#
# A one-step forecaster with a window of $p$ years learns
# $\hat{y}_t = f(y_{t-p}, \dots, y_{t-1})$. The data set is every window of the series
# with the value that follows it.
#
# ### Exercise 1 (1 point, about 10 minutes): sliding windows
#
# Write `my_windows(series, p)`: for a 1-d numpy array of length $T$, return `X` of shape
# `(T - p, p)` with `X[i] = series[i : i + p]` and `y` of shape `(T - p,)` with
# `y[i] = series[i + p]`.

# %% nbgrader={"grade": false, "grade_id": "windows", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_windows(series: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(X (T-p, p), y (T-p,)) with X[i] = series[i:i+p], y[i] = series[i+p]."""
    ### BEGIN SOLUTION
    X = np.stack([series[i : i + p] for i in range(len(series) - p)])
    y = series[p:].copy()
    return X, y
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "windows_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.core.checks import refuse_reference

my_windows_checked = refuse_reference(my_windows, ("windows", "windows_for_years"))  # the course's own fails
s = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
X, y = my_windows_checked(s, 2)
check_close("X of my_windows_checked([1, 2, 3, 4, 5], 2)", X, np.array([[1.0, 2.0], [2.0, 3.0], [3.0, 4.0]]))
check_close("y of my_windows_checked([1, 2, 3, 4, 5], 2)", y, np.array([3.0, 4.0, 5.0]))


# %% nbgrader={"grade": true, "grade_id": "windows_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.core.checks import refuse_reference

my_windows_checked = refuse_reference(my_windows, ("windows", "windows_for_years"))  # the course's own fails
X, y = my_windows_checked(sunspots, 9)
X_ref, y_ref = windows(sunspots, 9)
check_close("windows of the sunspots, p = 9", X, X_ref)
check_close("targets of the sunspots, p = 9", y, y_ref)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Baselines first
#
# - **persistence**: $\hat{y}_t = y_{t-1}$ ("same as last year");
# - **training mean**: $\hat{y}_t = \bar{y}_{\text{train}}$;
# - **AR(p)**, a linear autoregression $\hat{y}_t = \sum_{k=1}^{p} w_k\, y_{t-k} + b$,
#   fitted by least squares on the training years, coefficients then frozen.
#
# The error measure is the root mean squared error, in sunspot numbers:
# $\mathrm{RMSE} = \sqrt{\tfrac{1}{N}\sum_t (\hat{y}_t - y_t)^2}$.
#
# ### Exercise 2 (1 point, about 10 minutes): fit an autoregression
#
# Write `my_fit_ar(X, y)`: the least-squares coefficients `[w_1, ..., w_p, b]` (shape
# `(p + 1,)`, intercept last) of `y ≈ X @ w + b`. Append a column of ones to `X` and use
# `np.linalg.lstsq`.

# %% nbgrader={"grade": false, "grade_id": "fit_ar", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_fit_ar(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares [w_1, ..., w_p, b] for y ≈ X @ w + b."""
    ### BEGIN SOLUTION
    design = np.hstack([X, np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "fit_ar_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.core.checks import refuse_reference

my_fit_ar_checked = refuse_reference(my_fit_ar, ("fit_ar",))  # the course's own fails
X_toy = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [2.0, 1.0]])
y_toy = X_toy @ np.array([2.0, -1.0]) + 0.5  # exactly linear: the fit must recover it
check_close("my_fit_ar on an exact linear toy", my_fit_ar_checked(X_toy, y_toy), np.array([2.0, -1.0, 0.5]), atol=1e-9)


# %% nbgrader={"grade": true, "grade_id": "fit_ar_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.core.checks import refuse_reference

my_fit_ar_checked = refuse_reference(my_fit_ar, ("fit_ar",))  # the course's own fails
X9, y9, _ = windows_for_years(sunspots, years, 9, 1700, 1920)
check_close("AR(9) on the sunspots", my_fit_ar_checked(X9, y9), fit_ar(X9, y9), rtol=1e-6, atol=1e-8)
### END HIDDEN TESTS

# %% [markdown]
# The baselines, measured here: the mean and the AR models are fitted on 1700-1920 and
# tested one step ahead on 1921-1987. The least-squares AR(9) is checked against a solution
# computed a second, independent way (the normal equations, in float64), and the ranking
# the rest of the notebook relies on (each AR beats persistence, which beats the mean) is
# asserted with margin.

# %%
results = {}
X9_train, y9_train, _ = windows_for_years(sunspots, years, 9, years[0], val_end)
X9_test, y9_test, test_years = windows_for_years(sunspots, years, 9, test_start, test_end)
results["persistence"] = rmse(X9_test[:, -1], y9_test)
results["training mean (1700-1920)"] = rmse(np.full_like(y9_test, sunspots[years <= val_end].mean()), y9_test)
ar_coefs = {}
for p in (2, 9):
    Xp, yp, _ = windows_for_years(sunspots, years, p, years[0], val_end)
    Xp_test, yp_test, _ = windows_for_years(sunspots, years, p, test_start, test_end)
    ar_coefs[p] = fit_ar(Xp, yp)
    results[f"AR({p}), fitted 1700-1920"] = rmse(ar_predict(ar_coefs[p], Xp_test), yp_test)

design = np.hstack([X9_train, np.ones((len(X9_train), 1))])
normal_eq = np.linalg.solve(design.T @ design, design.T @ y9_train)
check_close("AR(9): lstsq vs normal equations", ar_coefs[9], normal_eq, rtol=1e-6, atol=1e-8)
for name, value in results.items():
    print(f"{name:28s} test RMSE {value:5.1f}")
ar2, ar9 = results["AR(2), fitted 1700-1920"], results["AR(9), fitted 1700-1920"]
assert ar9 < 0.95 * ar2 and ar2 < 0.8 * results["persistence"] < 0.8 * results["training mean (1700-1920)"]

# %% [markdown]
# ## 4. An RNN and an LSTM
#
# The networks read a window of $p = 20$ years (about two cycles) as a sequence of 20
# scalars and map the last hidden state to the forecast — the many-to-one wiring of 05a
# with a regression head. Inputs and targets are standardised,
# $z = (y - \mu)/\sigma$, with $\mu, \sigma$ of the **training years only**: using the
# whole series (as the common `MinMaxScaler().fit_transform(all data)` does) leaks the
# future's range into training.
#
# Training uses years up to 1900; the 20 validation years choose the epoch to keep
# (early stopping) and, later, the network to report. The set is small (a few hundred
# windows), so each epoch is one full-batch step, and a single seed can be lucky: we train
# three seeds per model and report the spread (min-max) beside the mean.
#
# ### Exercise 3 (1 point, about 10 minutes): standardise with the training years only
#
# Write `my_standardize(series, years, train_end)`: return $z = (y - \mu)/\sigma$ for the
# **whole** series (shape `(T,)`), where $\mu$ and $\sigma$ are the mean and the standard
# deviation (numpy's default, `ddof=0`) of the values whose year is `<= train_end`. The
# cell after the check does the same with the course's `Standardizer`.

# %% nbgrader={"grade": false, "grade_id": "standardize", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_standardize(series: np.ndarray, years: np.ndarray, train_end: int) -> np.ndarray:
    """z (T,) = (series - mu) / sigma, with mu and sigma of the years <= train_end only."""
    ### BEGIN SOLUTION
    train = series[years <= train_end]
    return (series - train.mean()) / train.std()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "standardize_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.forecasting import check_standardize

check_standardize(my_standardize)  # a drifting toy series: leaking the later years shows


# %% nbgrader={"grade": true, "grade_id": "standardize_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_standardize(my_standardize, seed=1)
check_close("my_standardize on the sunspots", my_standardize(sunspots, years, 1900),
            Standardizer.fit(sunspots[years <= 1900]).transform(sunspots))
### END HIDDEN TESTS

# %%
p = 20
scaler = Standardizer.fit(sunspots[years <= train_end])
z = scaler.transform(sunspots)
Xz_train, yz_train, _ = windows_for_years(z, years, p, years[0], train_end)
Xz_val, yz_val, _ = windows_for_years(z, years, p, train_end + 1, val_end)
Xz_test, yz_test, _ = windows_for_years(z, years, p, test_start, test_end)
print(f"scaler fitted on 1700-{train_end}: mean {scaler.mean:.1f}, std {scaler.std:.1f}")
print(f"windows: train {len(Xz_train)}, validation {len(Xz_val)}, test {len(Xz_test)}")


def as_tensor(a):
    return torch.tensor(a, dtype=torch.float32, device=device)


def train_forecaster(cell, seed, epochs=300, lr=1e-2):
    """Full-batch Adam; keep the weights of the epoch with the lowest validation error (fit's keep_best)."""
    seed_everything(seed)
    model = RNNForecaster(32, cell=cell).to(device)
    train = [(as_tensor(Xz_train), as_tensor(yz_train))]  # one batch: the whole training set
    val = [(as_tensor(Xz_val), as_tensor(yz_val))]
    history = fit(model, train, supervised(torch.nn.functional.mse_loss), torch.optim.Adam(model.parameters(), lr=lr),
                  epochs=epochs, val_data=val, clip_grad_norm=1.0, keep_best=True, device=device, progress=False)
    model.eval()
    curve = scaler.std * np.sqrt(history.val_losses)  # validation RMSE in sunspots per epoch (the scaler is affine)
    return model, curve


def test_forecast(model):
    with torch.no_grad():
        return scaler.inverse(model(as_tensor(Xz_test)).cpu().numpy())


seeds = range(3)
runs = {cell: [train_forecaster(cell, seed) for seed in seeds] for cell in ("rnn", "lstm")}
net_val = {cell: np.array([min(curve) for _, curve in r]) for cell, r in runs.items()}  # best validation RMSE

fig, ax = plt.subplots(figsize=(6, 3))
for cell, r in runs.items():
    ax.plot(r[0][1], label=f"{cell.upper()} (seed 0)")
ax.set_xlabel("epoch (one full-batch step)")
ax.set_ylabel("validation RMSE")
ax.set_ylim(0, 60)
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# **Choose on validation.** Which network do we report? The one with the lower validation
# RMSE (mean over the seeds): the test years are not looked at until the choice is made.

# %%
for cell in net_val:
    print(f"{cell.upper():4s} validation RMSE over {len(seeds)} seeds: mean {net_val[cell].mean():.1f}, "
          f"min-max {net_val[cell].min():.1f}-{net_val[cell].max():.1f}")
best_net = min(net_val, key=lambda c: net_val[c].mean())  # chosen on validation, never on test
other = "lstm" if best_net == "rnn" else "rnn"
print(f"chosen on validation: {best_net.upper()}")

# %% [markdown]
# Now the test years, once. For a fair comparison, the same AR(9) refitted on the networks'
# own training years (1700-1900) is added to the table. Every row is one-step-ahead RMSE on
# 1921-1987; for the networks, the mean and the spread (min-max) over the seeds:

# %%
X9_own, y9_own, _ = windows_for_years(sunspots, years, 9, years[0], train_end)
ar9_own = fit_ar(X9_own, y9_own)
results["AR(9), fitted 1700-1900"] = rmse(ar_predict(ar9_own, X9_test), y9_test)
net_pred = {cell: [test_forecast(model) for model, _ in r] for cell, r in runs.items()}  # the test years, once
net_rmse = {cell: np.array([rmse(pred, y9_test) for pred in preds]) for cell, preds in net_pred.items()}
for cell in ("rnn", "lstm"):
    results[f"{cell.upper()} (p = 20, H = 32), 1700-1900"] = net_rmse[cell].mean()

print(f"{'model':36s} {'test RMSE':>9s}")
for name, value in results.items():
    spread = ""
    for cell in ("rnn", "lstm"):
        if name.startswith(cell.upper() + " "):
            spread = f"  (min-max over {len(seeds)} seeds: {net_rmse[cell].min():.1f}-{net_rmse[cell].max():.1f})"
    print(f"{name:36s} {value:9.1f}{spread}")

ar9 = results["AR(9), fitted 1700-1920"]
chosen = net_rmse[best_net]
print(f"\nThe network chosen on validation ({best_net.upper()}) scores {chosen.min():.1f}-{chosen.max():.1f} on test: "
      f"{'better' if chosen.mean() < ar9 else 'worse'} than AR(9) ({ar9:.1f}) on average and better than "
      f"persistence ({results['persistence']:.1f}) on every seed.")
print(f"The other network ({other.upper()}) scores {net_rmse[other].min():.1f}-{net_rmse[other].max():.1f}: "
      f"validation's choice {'is' if chosen.mean() <= net_rmse[other].mean() else 'is not'} the better one "
      "on the test years.")
print(f"Seeds on which the chosen network's test RMSE is above AR(9)'s: {int((chosen > ar9).sum())} of {len(chosen)} "
      f"(lowest {chosen.min():.2f} against {ar9:.2f})")
assert chosen.max() < 0.85 * results["persistence"], "every seed of the chosen network should beat persistence"
assert (chosen > ar9).all(), "the network chosen on validation loses to AR(9) on every seed"
all_runs = np.concatenate(list(net_rmse.values()))
assert chosen.mean() > ar9 and all_runs.min() > 0.97 * ar9, "no network should clearly beat AR(9) here"

# %% [markdown]
# Read the table, not the hopes: with fewer than two hundred training windows (printed
# above) every network beats the naive baselines, and none beats the **ten-parameter linear
# model** AR(9) by more than a hair; the network that validation chose loses to it on every
# seed. The spread over seeds (printed beside each network) is as large as some of the
# gaps between rows. Small, smooth, almost linear series are the home ground of classical
# models; recurrent networks pay off with more data, many related series, or strong
# non-linearity.
#
# ### Why the networks lose here: a quiet validation period and a record peak
#
# The split itself is part of the story. Compare each period with the training years'
# range: the validation years stay well inside it, while the test years hold the highest
# cycle of the whole record, above anything the networks were trained on.

# %%
periods = {"training": (years[0], train_end), "validation": (train_end + 1, val_end), "test": (test_start, test_end)}
in_period = {name: (years >= a) & (years <= b) for name, (a, b) in periods.items()}
peaks = {name: sunspots[pick].max() for name, pick in in_period.items()}
train_max = peaks["training"]
above = in_period["test"] & (sunspots > train_max)  # the test years higher than every training year
print("highest yearly sunspot number: " + ", ".join(f"{name} {value:.0f}" for name, value in peaks.items()))
print(f"test years above the training maximum ({train_max:.0f}): {years[above].tolist()}")

fig, ax = plt.subplots(figsize=(9, 2.8))
ax.plot(years, sunspots, color="k", lw=1)
for (name, (a, b)), color in zip(periods.items(), ("C0", "C1", "C2"), strict=True):
    ax.axvspan(a, b, alpha=0.15, color=color, label=f"{name} (max {peaks[name]:.0f})")
ax.axhline(train_max, color="C3", ls="--", lw=1, label="training maximum")
ax.plot(years[above], sunspots[above], "o", color="C3", ms=4, label="test years above it")
ax.set_xlim(1850, test_end)
ax.set_xlabel("year")
ax.set_ylabel("sunspot number")
ax.set_title("the split: a quiet validation period, a record test peak")
ax.legend(fontsize=7, loc="upper left")
plt.show()
assert peaks["validation"] < 0.75 * train_max, "the validation years should be quiet"
assert peaks["test"] > 1.15 * train_max and above.sum() >= 3, "the test years should exceed the training range"

# %% [markdown]
# Consequences. Early stopping chose each network's epoch on twenty calm years, which say
# little about forecasting a record cycle; and a network fitted to the training years has
# never produced, nor been corrected on, values this high. AR(9) is linear: it extrapolates
# a rising cycle at the same slope whatever its height. Split the test error between the
# years above the training maximum and the rest:

# %%
def split_rmse(pred):
    """RMSE on the test years above the training maximum, and on the other test years."""
    peak = above[in_period["test"]]  # (67,) the same years as y9_test
    return rmse(pred[peak], y9_test[peak]), rmse(pred[~peak], y9_test[~peak])


ar_peak, ar_rest = split_rmse(ar_predict(ar9_own, X9_test))
print(f"{'AR(9), fitted 1700-1900':24s} above the training max {ar_peak:5.1f}   other test years {ar_rest:5.1f}")
ratios = []
for cell, preds in net_pred.items():
    for seed, pred in zip(seeds, preds, strict=True):
        peak_rmse, rest_rmse = split_rmse(pred)
        ratios.append((peak_rmse / ar_peak, rest_rmse / ar_rest))
        print(f"{cell.upper() + f', seed {seed}':24s} above the training max {peak_rmse:5.1f}   "
              f"other test years {rest_rmse:5.1f}")
ratios = np.array(ratios)  # (runs, 2): network / AR(9), on the peak years and on the rest
print(f"network / AR(9) RMSE over the runs: peak years {ratios[:, 0].min():.2f}-{ratios[:, 0].max():.2f}, "
      f"other years {ratios[:, 1].min():.2f}-{ratios[:, 1].max():.2f}")
assert ratios[:, 0].min() > 1.25 and (ratios[:, 0] > ratios[:, 1] + 0.2).all()

# %% [markdown]
# On the years above the training maximum every network run is far worse than AR(9); on
# the other test years the networks come close to it. Most of AR's advantage is earned on
# the record peak, the part of the test period that the training and validation years gave
# no example of — a reason to read one split's verdict with care, not a law about networks.
# For the same reason the network that validation prefers need not be the better one on
# test (the printout above says whether it is): twenty calm years are a weak guide.
#
# ### A common mistake: the "prediction" is a hidden state
#
# A common tutorial pattern defines a forecaster with a recurrent layer and a linear output
# layer, but returns the recurrent layer's hidden state as the "prediction" — the output
# layer is never used, so no loss ever trains it — and then applies the scaler's inverse
# to that vector to get "sunspot numbers". The hidden state holds $H$ numbers per window,
# not one, each in $(-1, 1)$. A scaler with one mean and one standard deviation broadcasts
# over the wrong-size array without a word; the shape check in `rmse` is what stops it.
# The course's `RNNForecaster` maps the last hidden state through its `Linear` layer to one
# number per window:

# %%
seed_everything(0)
untrained = RNNForecaster(32, cell="lstm").to(device).eval()
with torch.no_grad():
    _, (h_n, _) = untrained.rnn(as_tensor(Xz_test).unsqueeze(-1))  # h_n (1, N, H): the pattern's "prediction"
wrong = scaler.inverse(h_n.cpu().numpy())  # broadcasts silently: (1, N, H) "sunspot numbers"
right = test_forecast(runs["lstm"][0][0])  # (N,): the Linear head's output, one number per window
print(f"the pattern's 'forecast' has shape {wrong.shape}; the targets {y9_test.shape}; the course's {right.shape}")
try:
    rmse(wrong, y9_test)
    caught = ""
except ValueError as err:
    caught = str(err)
print("rmse refuses it:", caught)
first_unit = wrong[0, :, 0]  # even one number per window: a hidden unit in (-1, 1), rescaled
print(f"one hidden unit, inverse-scaled, as a forecast: range {first_unit.min():.0f}-{first_unit.max():.0f} "
      f"(bounded by mean ± std = {scaler.mean - scaler.std:.0f}..{scaler.mean + scaler.std:.0f}), "
      f"RMSE {rmse(first_unit, y9_test):.1f}; the course's LSTM, seed 0: {rmse(right, y9_test):.1f}")
assert wrong.shape == (1, len(y9_test), 32) and right.shape == y9_test.shape and "shape" in caught
assert first_unit.max() < scaler.mean + scaler.std < y9_test.max()
assert rmse(first_unit, y9_test) > results["persistence"] > rmse(right, y9_test)

# %% [markdown]
# The forecasts on the test years:

# %%
fig, ax = plt.subplots(figsize=(9, 3.2))
ax.plot(test_years, y9_test, "k-", lw=2, label="observed")
ax.plot(test_years, X9_test[:, -1], ":", label=f"persistence ({results['persistence']:.1f})")
ax.plot(test_years, ar_predict(ar_coefs[9], X9_test), "--", label=f"AR(9) ({ar9:.1f})")
best_pred = net_pred[best_net][0]
ax.plot(test_years, best_pred, "-", label=f"{best_net.upper()} (chosen on validation), seed 0 "
        f"({rmse(best_pred, y9_test):.1f})")
ax.axhline(train_max, color="C3", ls="--", lw=1, label="training maximum")
ax.set_xlabel("year")
ax.set_ylabel("sunspot number")
ax.set_title("one-step-ahead forecasts, test years (RMSE in brackets)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Persistence is the observed curve shifted one year right. A model that has learnt little
# looks similar — *lagging* the truth — and the eye mistakes that for a good fit; the RMSE
# table does not.
#
# ## 5. Several years ahead
#
# A one-step forecast reads the true value of every past year. To forecast $h$ years ahead
# the model must read its **own** forecasts for the years in between: with the window
# $(y_{t-p+1}, \dots, y_t)$ it forecasts $\hat{y}_{t+1}$, then slides the window to
# $(y_{t-p+2}, \dots, y_t, \hat{y}_{t+1})$ and forecasts $\hat{y}_{t+2}$, and so on: a
# **recursive** forecast. Its errors compound, so a model that looks fine one step ahead
# can drift. The window keeps the order of `windows`, oldest first: `coef[0]` multiplies
# the oldest value, `coef[p - 1]` the newest, and `coef[-1]` is the intercept $b$.
#
# ### Exercise 4 (2 points, about 15 minutes): a recursive multi-step forecast
#
# Write `my_recursive_forecast(coef, history, steps)`: `coef` holds AR(p) coefficients
# `[w_1, ..., w_p, b]` as returned by `fit_ar`, `history` (a 1-d array of at least $p$
# values, oldest first) the known past. Return the next `steps` values (shape `(steps,)`),
# each forecast from the last $p$ values known or forecast so far.

# %% nbgrader={"grade": false, "grade_id": "recursive_forecast", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_recursive_forecast(coef: np.ndarray, history: np.ndarray, steps: int) -> np.ndarray:
    """The next `steps` values (steps,), feeding each forecast back into the window."""
    ### BEGIN SOLUTION
    p = len(coef) - 1
    window = list(history[-p:])
    out = []
    for _ in range(steps):
        y_next = float(np.dot(coef[:-1], window) + coef[-1])
        out.append(y_next)
        window = window[1:] + [y_next]
    return np.array(out)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "recursive_forecast_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.forecasting import check_recursive_forecast

check_recursive_forecast(my_recursive_forecast)


# %% nbgrader={"grade": true, "grade_id": "recursive_forecast_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_recursive_forecast(my_recursive_forecast, seed=1)
past = sunspots[years <= 1900]
check_close("AR(9) on the sunspots, 12 years ahead from 1900", my_recursive_forecast(ar9_own, past, 12),
            recursive_forecast(ar9_own, past, 12))
### END HIDDEN TESTS

# %% [markdown]
# How far does each order carry? For every validation year $t$ (1901-1920), AR(p), fitted
# on 1700-1900, forecasts $t$ from the values up to $t - 5$ (`ar_order_rmse`, which uses
# `recursive_forecast`); the training mean is the baseline, and the one-step RMSE is
# printed beside it. The test years stay untouched.

# %%
print(f"{'model':>8s} {'1 year ahead':>13s} {HORIZON} years ahead (validation RMSE)")
ahead = {}
for order in (1, 2, 9):
    X_o, y_o, _ = windows_for_years(sunspots, years, order, years[0], train_end)
    X_v, y_v, _ = windows_for_years(sunspots, years, order, train_end + 1, val_end)
    one_step = rmse(ar_predict(fit_ar(X_o, y_o), X_v), y_v)
    ahead[order], mean_rmse = ar_order_rmse(order)
    print(f"{'AR(' + str(order) + ')':>8s} {one_step:13.1f} {ahead[order]:8.1f}")
print(f"{'mean':>8s} {'':13s} {mean_rmse:8.1f}")
assert ahead[1] > mean_rmse > ahead[9], "AR(1) should lose to the mean 5 years ahead, AR(9) beat it"

# %% [markdown]
# An AR(1) forecast decays geometrically towards its fixed point, so a few years out it
# is worse than simply predicting the training mean; an order that spans a cycle keeps
# the oscillation going.
#
# ### Exercise 5 (2 points, about 10 minutes): pick the forecaster that carries 5 years ahead
#
# Two forecasters, AR(3) and AR(12), fitted on the training years (1700-1900). One year
# ahead, on the validation years 1901-1920, they are about level (next cell). Which of the
# two forecasts the validation years **5 years ahead** (as in the cell above) with the lower
# RMSE, and why? Return `{"winner": 3 or 12, "reason": ...}`, with `reason` one of the
# entries of `AR_PICK_REASONS` (printed below). Decide before you measure: the check first
# checks the reason (a wrong one fails with what the measurements say against it), then
# forecasts with both orders 5 years ahead and compares; the hidden check does the same
# fitted on 1700-1880 and on 1700-1860, measured on the 20 years after each.

# %%
from course_utils.exercises.forecasting import AR_PAIR, AR_PICK_REASONS, check_ar_pick

for order in AR_PAIR:
    X_o, y_o, _ = windows_for_years(sunspots, years, order, years[0], train_end)
    X_v, y_v, _ = windows_for_years(sunspots, years, order, train_end + 1, val_end)
    print(f"AR({order}): one year ahead, validation RMSE {rmse(ar_predict(fit_ar(X_o, y_o), X_v), y_v):.1f}")
print("the reasons to choose from:", ", ".join(map(repr, AR_PICK_REASONS)))

# %% nbgrader={"grade": false, "grade_id": "ar_pick", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_ar_pick() -> dict:
    """{"winner": 3 or 12, "reason": an entry of AR_PICK_REASONS}: the better forecaster 5 years ahead."""
    ### BEGIN SOLUTION
    return {"winner": 12, "reason": "its window spans a cycle, so its fed-back forecast keeps oscillating"}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ar_pick_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check_ar_pick(my_ar_pick())  # validation years 1901-1920; says which order won, and by how much


# %% nbgrader={"grade": true, "grade_id": "ar_pick_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_ar_pick(my_ar_pick(), seed=1)
check_ar_pick(my_ar_pick(), seed=2)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Why not stock prices?
#
# Many tutorials end their time-series section with a "stock price predictor"; a typical one fits its
# scaler on all the data, calls methods that do not exist, and scores itself with
# "accuracy = 100 % − MAPE". A course should not promise this, for reasons we can show:
#
# - In a liquid market, predictable price moves get traded away: to a good approximation
#   tomorrow's price is today's plus an unpredictable change (a random walk). Then
#   persistence is the best forecast there is, and any model can at most match it.
# - A price is a large, slowly moving number, so even persistence gets a tiny percentage
#   error. "100 % − MAPE" then reports a near-perfect "accuracy" for a forecast that knows
#   nothing.
#
# A simulated random walk (daily returns with 1 % volatility) makes the point in numbers:

# %%
rng = np.random.default_rng(0)
prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, size=2000)))  # a random-walk price
X_p, y_p = windows(prices, 9)
half = len(y_p) // 2
coef_p = fit_ar(X_p[:half], y_p[:half])
pred_ar, pred_persist = ar_predict(coef_p, X_p[half:]), X_p[half:, -1]
truth = y_p[half:]
mape = np.mean(np.abs(pred_persist - truth) / truth) * 100
up_right = np.mean(np.sign(pred_ar - X_p[half:, -1]) == np.sign(truth - X_p[half:, -1]))
print(f"persistence: RMSE {rmse(pred_persist, truth):.3f}, '100 % - MAPE' accuracy {100 - mape:.1f} %")
print(f"AR(9) trained on the first half: RMSE {rmse(pred_ar, truth):.3f}")
print(f"AR(9) gets the direction of the next move right {up_right:.1%} of the time (a coin: 50 %)")
assert 100 - mape > 98 and rmse(pred_ar, truth) > 0.98 * rmse(pred_persist, truth) and abs(up_right - 0.5) < 0.05

# %% [markdown]
# A near-perfect "accuracy" for a forecast that knows nothing, no gain over persistence, and
# a coin flip on the direction: on prices, the honest result of the methods in this course is
# "no better than naive". Forecast things with structure — physical cycles, seasons,
# demand — and always print the naive baselines next to your model.
#
# ## Summary
#
# - Split time series **by time**; fit scalers and models on the training years only;
#   choose epochs on a validation period; look at the test period once.
# - Always report **persistence** and the **training mean**; a linear **AR(p)** is the
#   baseline a network must beat, and on small smooth series it is hard to beat.
# - Report the spread over seeds, not the best seed.
# - Forecasting several steps ahead feeds the model's own forecasts back; errors compound,
#   and an order too short for the cycle loses even to the training mean.
# - A good-looking forecast plot can be persistence in disguise; RMSE tables against
#   baselines are the evidence. Stock prices are close to a random walk: do not promise to
#   predict them.
#
# This closes the output types. Next: **05e · subword tokens**, what the transformers of
# 08 on read instead of characters; then **06 · attention**, which removes the seq2seq
# bottleneck of 05c.

# %%
report_run_time()
