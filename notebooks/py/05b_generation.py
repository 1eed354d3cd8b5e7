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
# # 05b · Output types II: one-to-many (spell a surname in a given language)
#
# In 05a a sequence went in and one label came out. Now the reverse: **one** input — a
# language — and a **sequence** out, a surname that sounds like that language, produced
# one character at a time, each sampled character fed back as the next input.
#
# **Objectives.** By the end of this notebook you will
# 1. train a conditional character-level model on real surnames and measure it on held-out
#    names (bits per character) against count-based baselines;
# 2. see that the condition matters, by turning the generator into a classifier;
# 3. implement sampling with a **temperature** and see what $T = 0.5, 1, 1.5$ do to samples.
#
# Many tutorial text generators (a `TextGenerator` or `CharRNN` class) sample from
# **untrained, random weights**, so their "generated text" is noise; some also compute the
# softmax without subtracting the maximum, which overflows for large logits. Here the
# model is trained first, and the softmax is the stable one.
#
# Helpers: `course_utils/output_types.py` (the models of 05a-05c, the conditioned generator among them).

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

from course_utils import check_close, fit, report_run_time, seed_everything, start_notebook
from course_utils.data.names import load_surnames, spelling_batches, stratified_split
from course_utils.data.text import CharVocab
from course_utils.exercises.output_types import GENERATION_CHALLENGE, generation_stats, names_speller
from course_utils.output_types import ConditionalCharLM, spell
from course_utils.shared.lm import sample_next, temperature_softmax

device = start_notebook()

# %% [markdown]
# ## 1. Data
#
# The surnames of 05a (Faker's locale lists, eight Latin-script languages, names listed in
# two languages dropped), with the same stratified 80/10/10 split. Token 0 marks both the
# start and the end of a name, so the model also learns *when to stop*.

# %%
names, labels, classes = load_surnames()
vocab = CharVocab.from_text("".join(names))
V = vocab.size + 1  # characters + the start/end token 0
ids = [vocab.encode(n) + 1 for n in names]
train_idx, val_idx, test_idx = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
cond, inputs, targets = spelling_batches(ids, labels, train_idx[:1], 1)[0]
print(f"{len(names)} names, {len(classes)} languages, {V} tokens")
print(f"'{names[train_idx[0]]}' ({classes[cond[0]]}): inputs {inputs[0].tolist()}")
print(f"{' ' * (len(names[train_idx[0]]) + len(classes[cond[0]]) + 5)}targets {targets[0].tolist()}")

# %% [markdown]
# ## 2. The model
#
# The language $c$ sets the initial state, then a GRU reads the name so far:
# $$h_0 = \tanh(W_c\, \mathbf{1}_c), \qquad h_t = \mathrm{GRU}(e(x_t), h_{t-1}), \qquad
#   p(x_{t+1} \mid x_{\le t}, c) = \operatorname{softmax}(W_{hy} h_t + b_y).$$
# Training is **teacher forcing**: at every step the input is the *true* previous
# character (the `inputs` row above), and the loss is the cross-entropy of each next
# character, ignoring the padding (`-100`). At generation time there is no true name: the
# model reads its own samples.

# %%
def loss_fn(model, batch):
    cond, inputs, targets = batch
    logits = model(cond, inputs)  # (B, T, V)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-100)


seed_everything(0)
model = ConditionalCharLM(V, len(classes), embed=32, hidden=128).to(device)
rng = np.random.default_rng(0)
val_batches = spelling_batches(ids, labels, val_idx, 1024)
history = fit(model, lambda epoch: spelling_batches(ids, labels, train_idx, 64, rng), loss_fn,
              torch.optim.Adam(model.parameters(), lr=5e-3), epochs=7, val_data=val_batches, clip_grad_norm=1.0)

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(1, len(history.val_losses) + 1), np.array(history.val_losses) / math.log(2), "o-")
ax.set_xlabel("epoch")
ax.set_ylabel("validation bits per character")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 3. Is it any good? Held-out bits per character
#
# The test names were never seen. We measure the average negative log-likelihood of their
# characters (end token included) in bits, against three baselines fitted on the training
# names: uniform over the tokens, the character frequencies (unigram), and the frequencies
# given the previous character (bigram, add-one smoothing).

# %%
@torch.no_grad()
def name_nll(model, index, cond_override=None):
    """Total NLL in nats of each name at `index` (and its number of predicted tokens)."""
    model.eval()
    totals, counts = [], []
    for cond, inputs, targets in spelling_batches(ids, labels, index, 1024):
        if cond_override is not None:
            cond = torch.full_like(cond, cond_override)
        logits = model(cond.to(device), inputs.to(device))
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets.to(device), ignore_index=-100,
                                                reduction="none")  # (B, T)
        totals.append(nll.sum(1).cpu())
        counts.append((targets != -100).sum(1))
    return torch.cat(totals).numpy(), torch.cat(counts).numpy()


def count_model_bits(index, order):
    """Bits per token of the names at `index` under unigram (order 1) or bigram (2) counts from training."""
    counts = np.ones((V, V)) if order == 2 else np.ones((1, V))  # add-one smoothing
    for i in train_idx:
        seq = np.concatenate([[0], ids[i], [0]])
        rows = seq[:-1] if order == 2 else np.zeros(len(seq) - 1, dtype=int)
        np.add.at(counts, (rows, seq[1:]), 1)
    probs = counts / counts.sum(1, keepdims=True)
    total, n = 0.0, 0
    for i in index:
        seq = np.concatenate([[0], ids[i], [0]])
        rows = seq[:-1] if order == 2 else np.zeros(len(seq) - 1, dtype=int)
        total -= np.log2(probs[rows, seq[1:]]).sum()
        n += len(seq) - 1
    return total / n


nll, n_tokens = name_nll(model, test_idx)
bits = {"uniform": math.log2(V), "unigram counts": count_model_bits(test_idx, 1),
        "bigram counts": count_model_bits(test_idx, 2), "GRU, given the language": nll.sum() / n_tokens.sum() / math.log(2)}
for name, b in bits.items():
    print(f"{name:24s} {b:.3f} bits per character (test)")
assert bits["GRU, given the language"] < bits["bigram counts"] < bits["unigram counts"]

# %% [markdown]
# ### The condition matters: the generator is also a classifier
#
# If the model has learnt *how each language spells*, then by Bayes' rule
# $\hat{c} = \arg\max_c \; \log p(\text{name} \mid c) + \log p(c)$ should recover the
# language of a test name. We score each test name under all eight conditions.

# %%
scores = np.stack([-name_nll(model, test_idx, cond_override=c)[0] for c in range(len(classes))], axis=1)  # (N, C)
log_prior = np.log(np.bincount(labels[train_idx]) / len(train_idx))
bayes_acc = float(((scores + log_prior).argmax(1) == labels[test_idx]).mean())
own = scores[np.arange(len(test_idx)), labels[test_idx]]
print(f"Bayes-rule test accuracy of the generator: {bayes_acc:.3f} (chance by majority class: "
      f"{(labels[test_idx] == np.argmax(log_prior)).mean():.3f})")
print(f"mean log-likelihood of a test name: {own.mean():.2f} nats under its own language, "
      f"{(scores.sum(1) - own).mean() / (len(classes) - 1):.2f} nats under the others")
majority_acc = float((labels[test_idx] == np.argmax(log_prior)).mean())
assert bayes_acc > majority_acc + 0.3, "the generator should classify far better than the majority class"

# %% [markdown]
# A model trained only to *spell* also classifies names, far above the majority class
# (printed above). Notebook 05a trains dedicated many-to-one classifiers on the same split;
# compare its printed test accuracy with this one — they were trained differently, so read
# the comparison as a hint, not a measurement. What the model knows about spelling works in
# both directions.
#
# ## 4. Sampling with a temperature
#
# To generate, start from token 0 and the language's $h_0$, sample a character from
# $p(x_{t+1} \mid x_{\le t}, c)$, feed it back, and stop at token 0. The **temperature**
# $T$ reshapes the distribution before sampling:
# $$p_T(k) = \frac{\exp(z_k / T)}{\sum_j \exp(z_j / T)}
#          = \frac{\exp((z_k - m)/T)}{\sum_j \exp((z_j - m)/T)}, \qquad m = \max_j z_j .$$
# $T = 1$ is the model's own distribution; $T < 1$ sharpens it towards the most likely
# character ($T \to 0$ is greedy decoding); $T > 1$ flattens it towards uniform.
#
# ### Exercise 1 (1 point, about 10 minutes): the temperature softmax
#
# Implement `temperature_softmax(logits, temperature)` for a tensor of any shape,
# normalising over the last axis, stable for large logits, and raising `ValueError` for
# a temperature that is not positive.

# %% nbgrader={"grade": false, "grade_id": "temperature_softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_temperature_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / temperature) over the last axis."""
    ### BEGIN SOLUTION
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = logits / temperature
    z = z - z.max(dim=-1, keepdim=True).values
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "temperature_softmax_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.lm import check_temperature_softmax

check_temperature_softmax(my_temperature_softmax)  # names: no max shift, T multiplied or ignored, the wrong axis


# %% nbgrader={"grade": true, "grade_id": "temperature_softmax_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.exercises.lm import check_temperature_softmax

check_temperature_softmax(my_temperature_softmax, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 (1 point, about 10 minutes): draw the next character
#
# Implement `my_sample_next(logits, temperature, generator)`: for `logits` of shape
# `(B, V)`, return a long tensor of shape `(B,)` with one id per row drawn from the
# temperature softmax. Use the course's `temperature_softmax` (imported above) and
# `torch.multinomial(..., generator=generator)`. The check draws many samples and compares
# their frequencies with the probabilities.

# %% nbgrader={"grade": false, "grade_id": "sample_next", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_sample_next(logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One id per row of logits (B, V), drawn from softmax(logits / temperature): shape (B,)."""
    ### BEGIN SOLUTION
    probs = temperature_softmax(logits, temperature)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sample_next_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.core.checks import refuse_reference

my_sample_next_checked = refuse_reference(my_sample_next, ("sample_next",))  # the course's own fails
from course_utils import check_shape

logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).repeat(20000, 1)
draws = my_sample_next_checked(logits, 0.5, torch.Generator().manual_seed(0))
check_shape("my_sample_next(logits, 0.5)", draws, (20000,))
freq = torch.bincount(draws, minlength=4).double() / len(draws)
check_close("sample frequencies at T = 0.5", freq, torch.softmax(logits[0].double() / 0.5, dim=-1), rtol=0, atol=0.015)


# %% nbgrader={"grade": true, "grade_id": "sample_next_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.core.checks import refuse_reference

my_sample_next_checked = refuse_reference(my_sample_next, ("sample_next",))  # the course's own fails
draws = my_sample_next_checked(logits, 2.0, torch.Generator().manual_seed(1))
freq = torch.bincount(draws, minlength=4).double() / len(draws)
check_close("sample frequencies at T = 2", freq, torch.softmax(logits[0].double() / 2.0, dim=-1), rtol=0, atol=0.015)
assert draws.dtype == torch.long, f"ids should be int64, got {draws.dtype}"
### END HIDDEN TESTS

# %% [markdown]
# The course's `sample_next` (the same function) is what the model's `sample` method
# calls. One more visible check, on the trained model's real next-character logits: the
# temperature softmax against `torch.softmax(z / T)`.

# %%
with torch.no_grad():
    model.eval()
    z_real = model(torch.arange(len(classes), device=device), torch.zeros(len(classes), 1, dtype=torch.long,
                                                                           device=device))[:, 0]  # (C, V)
for T in (0.5, 1.0, 1.5):
    check_close(f"first-letter distribution at T={T}", temperature_softmax(z_real, T), torch.softmax(z_real / T, -1))

# %% [markdown]
# ### Samples at $T = 0.5$, $1.0$ and $1.5$, side by side
#
# Each column reuses the same random numbers (the generator is re-seeded), so a row shows
# how one draw changes with the temperature alone.

# %%
def generate(lang, n, temperature, seed):
    g = torch.Generator().manual_seed(seed)
    cond = torch.full((n,), lang, dtype=torch.long, device=device)
    return [vocab.decode(np.array(s, dtype=np.int64) - 1) for s in model.sample(cond, temperature, 24, g)]


temperatures = (0.5, 1.0, 1.5)
for lang in ("Irish", "Italian", "Slovak", "Dutch"):
    k = classes.index(lang)
    columns = [generate(k, 5, T, seed=k) for T in temperatures]
    print(f"{lang:9s}" + "".join(f"{'T = ' + str(T):22s}" for T in temperatures))
    for row in zip(*columns, strict=True):
        print(" " * 9 + "".join(f"{s:22s}" for s in row))
    print()

# %% [markdown]
# **Try it.** Move the temperature slider (and pick a language): the bars are the model's
# distribution of the **first letter** of a name, $p_T$, for the 15 letters most likely at
# $T = 1$ (outlined); below the chart, eight names sampled at that temperature, with the
# same random numbers at every temperature. Where widgets are off (the course website) you
# see the figure at $T = 0.5$ and $T = 1.5$ instead.

# %%
from course_utils.core.widgets import slider_plot

model.eval()
first_logits = z_real.cpu()  # (C, V): next-token logits at the start of a name, per language
top = first_logits.softmax(-1).argsort(dim=-1, descending=True)[:, :15]  # (C, 15) token ids by p_1
token_names = ["end"] + [vocab.decode(np.array([i])) for i in range(V - 1)]  # token 0 ends a name


def plot_temperature(temperature: float, language: str) -> None:
    """First-letter distribution at this temperature, and eight names sampled with it."""
    k = classes.index(language)
    p_T = temperature_softmax(first_logits[k], temperature)  # (V,)
    p_1 = temperature_softmax(first_logits[k], 1.0)
    entropy = -(p_T * torch.log2(p_T.clamp_min(1e-30))).sum().item()
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(range(15), p_T[top[k]], label=f"T = {temperature:.1f}")
    ax.bar(range(15), p_1[top[k]], fill=False, edgecolor="black", label="T = 1")
    ax.set_xticks(range(15), [token_names[i] for i in top[k]])
    ax.set_ylim(0, max(0.25, 1.1 * p_T[top[k]].max().item()))  # compare with the T = 1 outlines
    ax.set_ylabel("p(first letter)")
    ax.set_title(f"{language}, T = {temperature:.1f}: entropy {entropy:.2f} bits "
                 f"(uniform over {V} tokens: {math.log2(V):.2f})")
    ax.legend()
    plt.show()
    with torch.no_grad():
        print(f"T = {temperature:.1f}:", ", ".join(generate(k, 8, temperature, seed=0)))


temperature_widget = slider_plot(plot_temperature, static=[{"temperature": 0.5}, {"temperature": 1.5}],
                                  temperature=(0.1, 2.5, 0.1, 1.0), language=classes)

# %% [markdown]
# And measured over 400 samples per temperature (50 per language): how many copy a
# training name, how many are **real surnames the model never saw** (they are in the
# held-out validation or test lists), how long they are, and how typical they are — their
# bits per character under the model itself at $T = 1$ (lower: more predictable spelling).

# %%
train_set = {names[i] for i in train_idx}
held_out = {names[i] for i in np.concatenate([val_idx, test_idx])}


def sample_bits(samples, langs):
    """Bits per character of generated names under the model at T = 1 (end token included)."""
    sample_ids = [vocab.encode(s) + 1 for s in samples]
    nll, n = 0.0, 0
    with torch.no_grad():
        for cond, inputs, targets in spelling_batches(sample_ids, np.array(langs), np.arange(len(samples)), 1024):
            logits = model(cond.to(device), inputs.to(device))
            nll += torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.to(device).reshape(-1),
                                                     ignore_index=-100, reduction="sum").item()
            n += int((targets != -100).sum())
    return nll / n / math.log(2)


print(f"{'T':>4s} {'copies':>7s} {'real, unseen':>13s} {'mean length':>12s} {'bits/char':>10s}")
stats = {}
for T in temperatures:
    samples = [s for k in range(len(classes)) for s in generate(k, 50, T, seed=100 + k)]
    langs = [k for k in range(len(classes)) for _ in range(50)]
    stats[T] = (np.mean([s in train_set for s in samples]), np.mean([s in held_out for s in samples]),
                np.mean([len(s) for s in samples]), sample_bits(samples, langs))
    print(f"{T:4.1f} {stats[T][0]:7.3f} {stats[T][1]:13.3f} {stats[T][2]:12.1f} {stats[T][3]:10.2f}")
assert stats[0.5][3] < stats[1.0][3] < stats[1.5][3], "a lower temperature should give more predictable samples"

# %%
print(f"At T = 0.5, {stats[0.5][0]:.1%} of the samples copy a training name and their spelling costs the model "
      f"{stats[0.5][3]:.2f} bits per character; at T = 1.5 only {stats[1.5][0]:.1%} do, and the cost "
      f"rises to {stats[1.5][3]:.2f} bits (held-out real names: {bits['GRU, given the language']:.2f}).")

# %% [markdown]
# Low temperature plays safe: common endings, frequent names, repetition. High temperature
# is inventive but misspells. $T = 1$ samples the distribution the model actually learnt,
# the one whose held-out likelihood we measured; other temperatures trade fidelity for
# safety or for variety.
#
# ### Exercise 3 (2 points, about 15 minutes): spell a whole name
#
# Write the generation loop yourself: `my_spell(model, lang, temperature, max_len, generator)`
# returns one name for the language `lang` (an int) as a list of token ids, **without** the
# start and end token 0. Start from `h = model.initial_state(torch.tensor([lang]))` and the
# token 0 (shape `(1, 1)`); at each step run `o, h = model.rnn(model.embed(token), h)`, draw
# the next id from `model.out(o[:, 0])` with the course's `sample_next(logits, temperature,
# generator)`, stop at token 0, else keep it and feed it back; stop after `max_len` tokens.
# The check runs your loop on a small stand-in speller with the same interface
# (`BigramSpeller`, a bigram table per language built from the training names) and compares
# it draw for draw with the course's `spell`.

# %% nbgrader={"grade": false, "grade_id": "spell", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_spell(model, lang: int, temperature: float, max_len: int, generator: torch.Generator | None = None) -> list:
    """One name (token ids, no start or end token) for language `lang`, sampled token by token."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        h = model.initial_state(torch.tensor([lang]))  # (1, 1, H)
        token, name = torch.zeros(1, 1, dtype=torch.long), []
        for _ in range(max_len):
            o, h = model.rnn(model.embed(token), h)  # (1, 1, H)
            next_id = sample_next(model.out(o[:, 0]), temperature, generator)  # (1,)
            if next_id.item() == 0:
                break
            name.append(next_id.item())
            token = next_id[:, None]
    return name
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "spell_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.output_types import check_spell

check_spell(my_spell)  # six names on the stand-in speller, draw for draw against the course's spell


# %% nbgrader={"grade": true, "grade_id": "spell_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_spell(my_spell, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4 (2 points, about 10 minutes): new names that look real
#
# Choose a `temperature` and a `top_k` (keep only the $k$ most likely tokens before the
# temperature softmax; `None` keeps all) so that 400 sampled names (50 per language) are
# **new** — at most 15% copy a training name or repeat an earlier sample — and **plausible**:
# their spelling costs at most as many bits per character, under a bigram model of the
# training names, as real names that the training never saw. The check samples with the
# stand-in speller of exercise 3 (a fraction of a second) and says how far you are from
# each target; the hidden tests sample with two other seeds, so aim with some margin.

# %% nbgrader={"grade": false, "grade_id": "generation_settings", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_generation_settings():
    """Sampling settings: {"temperature": float, "top_k": int or None}."""
    ### BEGIN SOLUTION
    return {"temperature": 1.0, "top_k": 12}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "generation_settings_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.output_types import check_generation_settings

check_generation_settings(my_generation_settings())  # samples with your settings; says how far from each target


# %% nbgrader={"grade": true, "grade_id": "generation_settings_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_generation_settings(my_generation_settings(), seed=1)
check_generation_settings(my_generation_settings(), seed=2)
### END HIDDEN TESTS

# %% [markdown]
# Both extremes miss, for the stand-in speller, as measured below: $T = 0.5$ repeats itself and
# $T = 1$ without a cut misspells. (Your setting lies between; the check above measured it.)
# The course's `spell` takes the same `top_k`; here are names from the trained GRU with a
# small cut, $k = 5$ at $T = 1$: every character comes from the five most likely.

# %%
speller, speller_ids, speller_train, _ = names_speller()
outcome = {(T, k): generation_stats({"temperature": T, "top_k": k}, speller, speller_ids, speller_train, len(classes))
           for T, k in ((0.5, None), (1.0, None))}
for (T, k), o in outcome.items():
    print(f"T = {T}, top_k = {k}: {o['copies']:.1%} copies or repeats, {o['bits']:.3f} bits per character "
          f"(targets: {GENERATION_CHALLENGE['max_copies']:.0%}, {o['target_bits']:.3f})")
assert outcome[0.5, None]["copies"] > GENERATION_CHALLENGE["max_copies"]
assert outcome[1.0, None]["bits"] > outcome[1.0, None]["target_bits"]
model.eval()
for lang in ("Irish", "Italian"):
    g = torch.Generator().manual_seed(0)
    drawn = spell(model, torch.full((6,), classes.index(lang), device=device), 1.0, 24, g, top_k=5)
    print(f"{lang:8s}", ", ".join(vocab.decode(np.array(s, dtype=np.int64) - 1) for s in drawn))

# %% [markdown]
# ## Summary
#
# - **One-to-many**: a single input (the language) sets $h_0$; the output sequence is
#   produced step by step, each output fed back as the next input, until an end token.
# - Train with **teacher forcing** (true previous characters), generate by **sampling**.
#   Evaluate on held-out data (bits per character) against count baselines, never by
#   eyeballing samples alone.
# - A conditional generator is also a classifier, via Bayes' rule.
# - The **temperature** $T$ divides the logits: $T<1$ sharper and repetitive, $T>1$ flatter
#   and noisier. Compute the softmax stably (subtract the maximum).
#
# Next: **05c**, many-to-many — aligned (tagging) and unaligned (encoder-decoder).

# %%
report_run_time()
