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
# # 05a · Output types I: one-to-one and many-to-one (which language is this surname?)
#
# Notebooks 01-04 built the recurrent layer. The same layer can be *wired* in several ways,
# depending on what comes in and what must come out:
#
# | wiring | input | output | example | where |
# | --- | --- | --- | --- | --- |
# | one-to-one | one vector | one label | a feed-forward classifier | **05a** |
# | many-to-one | a sequence | one label | the language of a surname | **05a** |
# | one-to-many | one vector | a sequence | spell a name in a given language | 05b |
# | many-to-many, aligned | a sequence | one label per step | find word boundaries | 05c |
# | many-to-many, unaligned | a sequence | another sequence | encoder-decoder (seq2seq) | 05c |
# | forecasting | a series | its next value | sunspots | 05d |
#
# Every wiring shares its weights across time steps; only *where we read outputs* and
# *what we feed back* change.
#
# **Objectives.** By the end of this notebook you will
# 1. batch sequences of different lengths with padding, masks and `pack_padded_sequence`,
#    and see the silent bug padding causes without them;
# 2. train a one-to-one baseline and a many-to-one GRU on the same real task, with a
#    proper train/validation/test split;
# 3. stack recurrent layers (a deep RNN) and check the stack against `torch.nn.GRU`;
# 4. read a confusion matrix.
#
# It runs in well under a minute on a laptop CPU.
#
# Helpers: `course_utils/output_types.py` (the models of 05a-05c, with their masks).

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
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_utils import check_close, evaluate, fit, report_run_time, seed_everything, start_notebook, tolerance
from course_utils.core.plotting import plot_confusion
from course_utils.data.names import load_surnames, name_batches, names_source, stratified_split
from course_utils.data.padding import pad_batch
from course_utils.data.text import CharVocab
from course_utils.output_types import BagOfCharsMLP, SequenceClassifier, last_valid, stacked_rnn
from course_utils.shared.metrics import confusion_matrix

device = start_notebook()

# %% [markdown]
# ## 1. The data: real surnames in eight languages
#
# Faker, a package the course installs, ships lists of common surnames for many locales.
# We read them directly from its provider modules (no random sampling) and keep eight
# Latin-script languages, so that the script alone does not give the answer. The alphabet
# still gives some names away: letters such as ß, ñ, ľ, ť or đ occur in the training names
# of one language only (the vocabulary, those letters and how many validation names carry
# one are printed two cells below). A name listed under two languages has no single correct
# label, so we drop it. Everything is lower-cased.

# %%
names, labels, classes = load_surnames()
print(names_source())
print(f"{len(names)} unique surnames, {len(classes)} languages")
for k, lang in enumerate(classes):
    examples = [n for n, y in zip(names, labels, strict=True) if y == k][::97][:5]
    print(f"  {lang:9s} {int((labels == k).sum()):5d}  e.g. {', '.join(examples)}")

# %% [markdown]
# The classes are unbalanced: always answering the largest class is the first baseline
# any classifier must beat. We split each language 80/10/10 into training, validation
# (for choices such as the model's depth) and test (touched once, at the end).
#
# Characters become ids; id 0 is reserved for padding, so a character's id is its index in
# the vocabulary plus one.

# %%
vocab = CharVocab.from_text("".join(names))
ids = [vocab.encode(n) + 1 for n in names]  # id 0 = padding
train_idx, val_idx, test_idx = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
majority = np.bincount(labels[train_idx]).argmax()
majority_val = float((labels[val_idx] == majority).mean())  # the baseline for choices
print(f"vocabulary: {vocab.size} characters ({''.join(vocab.chars)!r})")
print(f"train {len(train_idx)}, validation {len(val_idx)}, test {len(test_idx)} names")
print(f"always '{classes[majority]}': validation accuracy {majority_val:.3f}")
langs_of = {}  # character -> the languages whose training names contain it
for i in train_idx:
    for ch in set(names[i]):
        langs_of.setdefault(ch, set()).add(int(labels[i]))
telltale = {ch for ch, langs in langs_of.items() if len(langs) == 1}  # letters of one language only
val_telltale = [i for i in val_idx if telltale & set(names[i])]
telltale_right = np.mean([langs_of[next(iter(telltale & set(names[i])))] == {int(labels[i])} for i in val_telltale])
print(f"{len(telltale)} characters occur in the training names of one language only ({''.join(sorted(telltale))!r}); "
      f"{len(val_telltale) / len(val_idx):.0%} of the validation names contain one, and for "
      f"{telltale_right:.0%} of those it names the right language")
assert 0.03 < len(val_telltale) / len(val_idx) < 0.5 and telltale_right > 0.9, \
    "a few names, not most, should carry a letter that gives their language away"

# %% [markdown]
# ## 2. Batches of different lengths: padding, masks and packing
#
# A batch is a rectangle `(B, T)`, but names have different lengths $T_b$. We **pad**
# every name on the right with id 0 up to the longest, and keep the `lengths`:

# %%
x, lengths = pad_batch([ids[i] for i in (0, 3000, 6000)])
print(x)
print("lengths:", lengths.tolist())

# %% [markdown]
# Padding is harmless only if no computation reads it. A many-to-one model classifies
# the state after the *last real character*, $h_{T_b}$. A recurrent layer run over the
# padded rectangle keeps going through the padding, and its final state $h_{T}$ is **not**
# $h_{T_b}$ for any name shorter than the longest. PyTorch's answer is a
# `PackedSequence`: `pack_padded_sequence(x, lengths)` tells the layer where each sequence
# ends, and `h_n` then holds each sequence's state at its own last step.
#
# A visible check: run a GRU on each name alone (no padding at all), on the padded batch,
# and on the packed batch.

# %%
seed_everything(0)
gru = torch.nn.GRU(4, 8, batch_first=True).to(device)
embed = torch.nn.Embedding(vocab.size + 1, 4).to(device)
with torch.no_grad():
    e = embed(x.to(device))  # (B, T, 4)
    alone = torch.stack([gru(e[b : b + 1, : lengths[b]])[1][0, 0] for b in range(len(lengths))])  # (B, 8)
    _, h_padded = gru(e)  # runs through the padding
    packed_out, h_packed = gru(pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False))
    out_unpacked, _ = pad_packed_sequence(packed_out, batch_first=True)  # (B, T, 8), zeros after each end
rtol, atol = tolerance(torch.float32, device)
print("padded batch, per name:", (h_padded[0] - alone).abs().amax(1).tolist())
check_close("h_n of the packed batch", h_packed[0], alone, rtol=rtol, atol=atol)
check_close("outputs at each last real step", last_valid(out_unpacked, lengths), alone, rtol=rtol, atol=atol)
assert (h_padded[0] - alone).abs().amax(1).cpu()[lengths < lengths.max()].min() > 1e-3, "padding should change h_T"

# %% [markdown]
# Only the longest name (no padding) comes out right from the plain padded run; the packed
# run matches every name. `last_valid(outputs, lengths)` is the by-hand alternative: it
# gathers `outputs[b, lengths[b] - 1]`, which is correct for a **unidirectional** layer.
#
# Packing covers recurrent layers. Everything else that reduces over time — a mean over
# the steps, a loss summed over the steps — needs a **mask**,
# $m_{bt} = [\,t < T_b\,]$, to leave the padding out:
# $$\bar{h}_b = \frac{\sum_t m_{bt}\, h_{bt}}{\sum_t m_{bt}} .$$

# %% [markdown]
# ### Exercise 1 (1 point, about 10 minutes): the mask
#
# Write `my_length_mask(lengths, max_len)`: for `lengths` of shape `(B,)`, return a boolean
# tensor of shape `(B, max_len)` that is `True` at step `t` of row `b` exactly when
# `t < lengths[b]`. Put it on the same device as `lengths`. No Python loop is needed:
# compare `torch.arange(max_len)` with `lengths` by broadcasting.

# %% nbgrader={"grade": false, "grade_id": "length_mask", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean mask (B, max_len): True where step t < lengths[b]."""
    ### BEGIN SOLUTION
    steps = torch.arange(max_len, device=lengths.device)
    return steps[None, :] < lengths[:, None]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "length_mask_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.core.checks import refuse_reference

my_length_mask_checked = refuse_reference(my_length_mask, ("length_mask",))  # the course's own fails
from course_utils import check_shape, check_type

got = my_length_mask_checked(torch.tensor([3, 1, 4]), 5)
check_type("my_length_mask(...)", got, torch.Tensor)
check_shape("my_length_mask(torch.tensor([3, 1, 4]), 5)", got, (3, 5))
expected = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
check_close("my_length_mask(torch.tensor([3, 1, 4]), 5)", got, expected)


# %% nbgrader={"grade": true, "grade_id": "length_mask_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.core.checks import refuse_reference

my_length_mask_checked = refuse_reference(my_length_mask, ("length_mask",))  # the course's own fails
from course_utils.output_types import length_mask as reference_mask

lens = torch.randint(1, 9, (17,))
check_close("a random mask", my_length_mask_checked(lens, 12), reference_mask(lens, 12))
check_close("a mask with max_len == max(lengths)", my_length_mask_checked(lens, int(lens.max())), reference_mask(lens))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 (1 point, about 10 minutes): the masked mean
#
# Write `my_masked_mean(h, mask)` for `h` of shape `(B, T, H)` and a boolean `mask` `(B, T)`:
# the mean of `h[b, t]` over the steps where `mask[b, t]` is True, shape `(B, H)`
# (the formula above). Padding values must have no influence at all.

# %% nbgrader={"grade": false, "grade_id": "masked_mean", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of h (B, T, H) over the steps where mask (B, T) is True: (B, H)."""
    ### BEGIN SOLUTION
    weights = mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
    return (h * weights).sum(dim=1) / weights.sum(dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "masked_mean_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.core.checks import refuse_reference

my_masked_mean_checked = refuse_reference(my_masked_mean, ("masked_mean",))  # the course's own fails
h = torch.arange(24, dtype=torch.float32).reshape(2, 4, 3)
mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
expected = torch.stack([h[0, :2].mean(0), h[1].mean(0)])
check_close("my_masked_mean(h, mask)", my_masked_mean_checked(h, mask), expected)


# %% nbgrader={"grade": true, "grade_id": "masked_mean_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.core.checks import refuse_reference

my_masked_mean_checked = refuse_reference(my_masked_mean, ("masked_mean",))  # the course's own fails
from course_utils.output_types import masked_mean as reference_mean

g = torch.Generator().manual_seed(3)
h = torch.randn(5, 7, 4, generator=g)
mask = torch.arange(7)[None, :] < torch.tensor([7, 1, 3, 5, 2])[:, None]
check_close("my_masked_mean, random", my_masked_mean_checked(h, mask), reference_mean(h, mask))
h2 = h.clone()
h2[~mask] = 1e6  # garbage in the padding must not matter
check_close("my_masked_mean ignores padding", my_masked_mean_checked(h2, mask), reference_mean(h, mask))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3 (1 point, about 10 minutes): the last real step
#
# A recurrent layer run on a padded batch returns `outputs` of shape `(B, T, H)`; for a
# unidirectional layer, sequence $b$'s summary is its output at its last real step,
# $h_{T_b}$ = `outputs[b, lengths[b] - 1]`. Write `my_last_valid(outputs, lengths)`, shape
# `(B, H)`, without a Python loop: index the time axis with one step per row
# (`torch.arange(B)` pairs each row with its own length). The padded steps after
# `lengths[b]` hold whatever the layer computed there and must not be read.

# %% nbgrader={"grade": false, "grade_id": "last_valid", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_last_valid(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """outputs[b, lengths[b] - 1] for every row b of outputs (B, T, H): shape (B, H)."""
    ### BEGIN SOLUTION
    rows = torch.arange(outputs.shape[0], device=outputs.device)
    return outputs[rows, lengths.to(outputs.device) - 1]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "last_valid_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.output_types import check_last_valid

check_last_valid(my_last_valid)  # names the usual mistake when your values match it


# %% nbgrader={"grade": true, "grade_id": "last_valid_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_last_valid(my_last_valid, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. One-to-one: a feed-forward baseline
#
# Before any recurrence, the question every sequence model should answer: *does order
# matter?* The one-to-one model gets a fixed-size vector per name — its character
# frequencies, a "bag of characters", computed with the masked mean of one-hot vectors —
# and a two-layer perceptron maps it to the eight classes. It sees that a name contains a
# `č` or a `k`, but not in which order its letters come.
#
# The training loop is `course_utils.fit`; a batch is `(x, lengths, y)`. Fresh shuffled
# batches every epoch come from a function of the epoch number.

# %%
def loss_fn(model, batch):
    x, lengths, y = batch
    return torch.nn.functional.cross_entropy(model(x, lengths), y)


@torch.no_grad()
def predict(model, index):
    """Predicted classes for the names at `index`, as a numpy array."""
    model.eval()
    preds = [model(x.to(device), lengths).argmax(-1).cpu() for x, lengths, _ in name_batches(ids, labels, index, 1024)]
    return torch.cat(preds).numpy()


def accuracy(model, index):
    return float((predict(model, index) == labels[index]).mean())


def train(model, epochs, lr, seed=0):
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    val_batches = name_batches(ids, labels, val_idx, 1024)
    return fit(model, lambda epoch: name_batches(ids, labels, train_idx, 64, rng), loss_fn, optimizer,
               epochs=epochs, val_data=val_batches, clip_grad_norm=1.0)


seed_everything(0)
mlp = BagOfCharsMLP(vocab.size + 1, hidden=128, num_classes=len(classes)).to(device)
mlp_history = train(mlp, epochs=12, lr=3e-3)
results = {}  # model -> (validation accuracy, parameters)
results["one-to-one: bag of characters + MLP"] = (accuracy(mlp, val_idx),
                                                  sum(p.numel() for p in mlp.parameters()))
print(f"bag-of-characters MLP: validation accuracy {results['one-to-one: bag of characters + MLP'][0]:.3f}")

# %% [markdown]
# ## 4. Many-to-one: a GRU reads the name
#
# Now the recurrent model. With embedding $e(x_t)$ and the GRU of notebook 04,
# $$h_t = \mathrm{GRU}(e(x_t), h_{t-1}), \qquad h_0 = 0, \qquad
#   \hat{y}_b = \operatorname{softmax}(W_{hy} h_{T_b} + b_y),$$
# one output for the whole sequence, read at each name's own last step $T_b$
# (`SequenceClassifier` packs the batch, as checked in section 2). The loss is the
# cross-entropy of $\hat{y}_b$ with the true language.

# %%
seed_everything(0)
gru1 = SequenceClassifier(vocab.size + 1, embed=32, hidden=64, num_classes=len(classes), cell="gru").to(device)
gru1_history = train(gru1, epochs=6, lr=5e-3)
results["many-to-one: GRU, 1 layer"] = (accuracy(gru1, val_idx),
                                        sum(p.numel() for p in gru1.parameters()))
print(f"GRU: validation accuracy {results['many-to-one: GRU, 1 layer'][0]:.3f}")

# %% [markdown]
# ## 5. Deep (stacked) RNNs
#
# A deep RNN feeds the sequence of hidden states of layer $\ell-1$ as the *input
# sequence* of layer $\ell$:
# $$h_t^{(\ell)} = \mathrm{GRU}^{(\ell)}\big(h_t^{(\ell-1)}, h_{t-1}^{(\ell)}\big),
#   \qquad h_t^{(0)} = e(x_t).$$
# `torch.nn.GRU(num_layers=2)` does exactly that. A visible check: two one-layer GRUs run
# one after the other (`stacked_rnn`), with the weights copied from the two-layer GRU.

# %%
seed_everything(0)
deep = torch.nn.GRU(4, 8, num_layers=2, batch_first=True).to(device)
layers = [torch.nn.GRU(4, 8, batch_first=True), torch.nn.GRU(8, 8, batch_first=True)]
with torch.no_grad():
    for depth, layer in enumerate(layers):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer, f"{name}_l0").copy_(getattr(deep, f"{name}_l{depth}"))
    layers = [layer.to(device) for layer in layers]
    xs = torch.randn(3, 6, 4, device=device)
    out_ref, h_ref = deep(xs)
    out_ours, h_ours = stacked_rnn(layers, xs)
check_close("stacked outputs (B, T, H)", out_ours, out_ref, rtol=rtol, atol=atol)
check_close("final states of both layers (L, B, H)", h_ours, h_ref, rtol=rtol, atol=atol)

# %% [markdown]
# Does depth help here? Train a two-layer GRU with the same settings and compare on the
# **validation** set, the set meant for such choices.

# %%
seed_everything(0)
gru2 = SequenceClassifier(vocab.size + 1, embed=32, hidden=64, num_classes=len(classes), cell="gru",
                          num_layers=2).to(device)
gru2_history = train(gru2, epochs=6, lr=5e-3)
results["many-to-one: GRU, 2 layers"] = (accuracy(gru2, val_idx),
                                         sum(p.numel() for p in gru2.parameters()))

print(f"{'model':40s} {'val acc':>8s} {'params':>8s}  (the test set waits for the chosen model)")
print(f"{'majority class':40s} {majority_val:8.3f} {0:8d}")
for name, (val_acc, n_params) in results.items():
    print(f"{name:40s} {val_acc:8.3f} {n_params:8d}")

# %% [markdown]
# How well does each model fit the names it trained on, compared with names it never saw?
# One panel per model: the training loss (the mean over each epoch's steps, so it lags the
# weights by about half an epoch) and the validation loss after each epoch. The star is the
# training loss of the final weights over the whole training set, measured like the
# validation loss: the fair point to compare with the last validation value.

# %%
models = {"bag-of-characters MLP": (mlp, mlp_history), "GRU, 1 layer": (gru1, gru1_history),
          "GRU, 2 layers": (gru2, gru2_history)}
train_end, val_end = {}, {}  # model -> loss of the final weights on the training / validation names
fig, axes = plt.subplots(1, 3, figsize=(13, 3.5), sharey=True)
for ax, (name, (model, hist)) in zip(axes, models.items(), strict=True):
    epochs = np.arange(1, len(hist.val_losses) + 1)
    train_per_epoch = [np.mean(chunk) for chunk in np.array_split(hist.losses, len(epochs))]
    train_end[name] = evaluate(model, name_batches(ids, labels, train_idx, 1024), loss_fn, device)
    val_end[name] = hist.val_losses[-1]
    ax.plot(epochs, train_per_epoch, "o-", label="training (mean over the epoch)")
    ax.plot(epochs, hist.val_losses, "o-", label="validation (end of epoch)")
    ax.plot(epochs[-1], train_end[name], "k*", markersize=12, label="training, final weights")
    ax.set_title(name)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("cross-entropy")
axes[0].legend()
plt.tight_layout()
plt.show()
gaps = {name: val_end[name] - train_end[name] for name in models}
for name, (_, hist) in models.items():
    print(f"{name:22s} final weights: training {train_end[name]:.3f}, validation {val_end[name]:.3f}, "
          f"gap {gaps[name]:.3f}; lowest validation loss after epoch {int(np.argmin(hist.val_losses)) + 1} "
          f"of {len(hist.val_losses)}")
gru_names = ("GRU, 1 layer", "GRU, 2 layers")
assert all(gaps[name] > gaps["bag-of-characters MLP"] + 0.1 for name in gru_names), \
    "the prose below reads a much larger train/validation gap for the GRUs than for the bag of characters"
assert all(models[name][1].val_losses[-1] > min(models[name][1].val_losses[:-2]) - 0.02 for name in gru_names), \
    "the prose below reads that the GRUs' validation loss stopped improving in the last two epochs"

# %% [markdown]
# The numbers under the panels say two things. The GRUs fit the names they trained on far
# better than names they never saw: their gap between training and validation loss is
# much larger than that of the bag of characters, whose few features leave little to
# memorise.
# And the GRUs' validation loss stopped improving over the last two epochs while their
# training loss kept falling: they have started to memorise names, so more epochs would
# not help here, which is why the number of epochs is small. (Accuracy, which only asks
# for the right class to score highest, can still creep up while the loss stalls.)

# %%
gru_val = results["many-to-one: GRU, 1 layer"][0]
mlp_val = results["one-to-one: bag of characters + MLP"][0]
deep_val = results["many-to-one: GRU, 2 layers"][0]
best_name = "many-to-one: GRU, 2 layers" if deep_val > gru_val else "many-to-one: GRU, 1 layer"
best = gru2 if deep_val > gru_val else gru1
se = np.sqrt(gru_val * (1 - gru_val) / len(val_idx))
print(f"Reading the characters in order lifts validation accuracy from {mlp_val:.3f} (bag of characters) "
      f"to {gru_val:.3f} (GRU); a second layer gives {deep_val:.3f}, so validation picks '{best_name}'.")
print(f"For scale: the standard error of an accuracy near {gru_val:.2f} on {len(val_idx)} names is {se:.3f}; "
      f"the GRU's lead over the bag of characters is {gru_val - mlp_val:.3f}, "
      f"the one- vs two-layer gap {abs(deep_val - gru_val):.3f}.")
assert mlp_val > majority_val + 0.1, "the bag of characters should clearly beat the majority class"
assert gru_val > mlp_val + 3 * se, "the GRU should beat the bag of characters by more than the noise"

# %% [markdown]
# The choice is made, on validation. Compare the one- vs two-layer gap with the standard
# error printed above: a difference within about two standard errors is close to a coin
# toss. Validation still has to pick one, and the test set then reports on that pick,
# once, in section 6.
#
# ### Exercise 4 (2 points, about 15 minutes): diagnose a classifier that learns too little
#
# The budget: 150 optimiser steps of 64 names (Adam, gradient norm clipped at 1, embeddings
# of size 16), and a **validation** accuracy of at least 0.75. The classifier
# `BROKEN_CLASSIFIER` below misses it. Its fields: `cell` (`"rnn"`, `"lstm"` or `"gru"`),
# `hidden_size` (at most 64), `lr` (Adam's learning rate) and `pooling`, how the states
# $h_1 \dots h_{T_b}$ become the one vector that is classified: `"last"` takes $h_{T_b}$
# (section 4), `"mean"` the masked mean of exercise 2 over the valid steps, `"max"` the
# largest value of each unit over the valid steps. The next cell trains it as the check will
# (a couple of seconds) and prints its training loss every 25 steps: that is your evidence.
#
# **Diagnose it**: return `{"cause": ..., "change": {field: new value}}`, with `cause` one
# of the names in `CLASSIFIER_CAUSES` (printed below, in alphabetical order) and a change of
# **one** field that fixes the run. A wrong cause fails with what in the evidence rules it
# out; then the check trains the fixed classifier on its own train/validation split (the test names are never
# read) and says how far from the target it is; the hidden test trains again on two other
# splits from other random starts, so aim with some margin.

# %%
from course_utils.exercises.output_types import (
    BROKEN_CLASSIFIER,
    CLASSIFIER_CAUSES,
    CLASSIFIER_CHALLENGE,
    check_classifier_diagnosis,
    classifier_config_run,
)

broken_accuracy, broken_losses = classifier_config_run(BROKEN_CLASSIFIER)
stretch_means = [float(np.mean(broken_losses[i:i + 25])) for i in range(0, len(broken_losses), 25)]
print(f"{BROKEN_CLASSIFIER}: validation accuracy {broken_accuracy:.3f} after {CLASSIFIER_CHALLENGE['steps']} steps "
      f"(target: at least {CLASSIFIER_CHALLENGE['target']})")
print("training loss, mean of each 25 steps:", "  ".join(f"{m:.3f}" for m in stretch_means))
print("the causes to choose from:", ", ".join(map(repr, CLASSIFIER_CAUSES)))
assert broken_accuracy < CLASSIFIER_CHALLENGE["target"]
assert all(b < a for a, b in zip(stretch_means, stretch_means[1:], strict=False))  # falls at every stretch ...
assert stretch_means[-2] - stretch_means[-1] > 0.05 * stretch_means[-1]  # ... and still falls when the budget ends

# %% nbgrader={"grade": false, "grade_id": "classifier_diagnosis", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_classifier_diagnosis():
    """{"cause": a name in CLASSIFIER_CAUSES, "change": {field: new value}} for BROKEN_CLASSIFIER."""
    ### BEGIN SOLUTION
    return {"cause": "learning rate too small", "change": {"lr": 1e-2}}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "classifier_diagnosis_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check_classifier_diagnosis(my_classifier_diagnosis())  # checks the cause, trains the fix, says how far it is


# %% nbgrader={"grade": true, "grade_id": "classifier_diagnosis_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_classifier_diagnosis(my_classifier_diagnosis(), seed=1)
check_classifier_diagnosis(my_classifier_diagnosis(), seed=2)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. The test set, once: the chosen model's final report
#
# Every choice above (the model, its depth, its number of epochs) was made on validation.
# Now, and only now, the chosen model meets the test names: one accuracy, against the
# majority-class baseline on the same names.
#
# Accuracy averages over classes of very different sizes. The confusion matrix shows, for
# each true language (row), where its test names went; the diagonal is each class's recall.

# %%
test_pred = predict(best, test_idx)  # the one pass over the test names
test_acc = float((test_pred == labels[test_idx]).mean())
majority_test = float((labels[test_idx] == majority).mean())
print(f"{best_name}: test accuracy {test_acc:.3f} (majority class on the same names: {majority_test:.3f}; "
      f"validation accuracy was {results[best_name][0]:.3f})")
cm = confusion_matrix(labels[test_idx], test_pred, len(classes))
recall = cm.diagonal() / cm.sum(1)
plot_confusion(cm, classes, title=f"{best_name}, test set")
plt.tight_layout()
plt.show()
for k in np.argsort(recall):
    off = cm[k].copy()
    off[k] = 0
    print(f"  {classes[k]:9s} recall {recall[k]:.2f}; most often mistaken for {classes[off.argmax()]}")
print(f"balanced accuracy (mean recall) {recall.mean():.3f}; plain accuracy {np.trace(cm) / cm.sum():.3f}")

# %% [markdown]
# Read the printout row by row: which languages are recognised best, which worst, and
# whether the confusions stay within a language family (Romance, Slavic, Germanic), where
# spelling habits are shared. Small classes have the least training data, which is one
# more reason to look at recall per class rather than accuracy alone.
#
# ## Summary
#
# - **Padding** makes a batch rectangular; **packing** (`pack_padded_sequence`) keeps a
#   recurrent layer from reading the padding, and a **mask** does the same for every other
#   reduction over time. Without them, the final state of every short sequence is wrong,
#   silently.
# - **One-to-one** is a feed-forward net on a fixed-size input; it is the baseline that
#   tells you whether order matters. Here it does: the **many-to-one** GRU, which reads the
#   characters in order and classifies its last state, is clearly more accurate.
# - A **deep RNN** stacks layers, each reading the hidden-state sequence of the one below;
#   `torch.nn.GRU(num_layers=L)` matched our stack to rounding error. More depth is a choice
#   for the validation set, not a free gain.
# - Report per-class recall (the confusion matrix) when classes are unbalanced.
#
# Next: **05b**, one-to-many: the same kind of model run in reverse — a language in,
# a name out.

# %%
report_run_time()
