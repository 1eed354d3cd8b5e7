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
# # 05c · Output types III: many-to-many, aligned and unaligned
#
# Two ways for a sequence to come out of a sequence:
#
# - **aligned**: one output per input step, $y_t$ for $x_t$ — tagging. We tag word
#   boundaries in text whose spaces were removed, and find that a **bidirectional** RNN,
#   which also reads the future, beats a unidirectional one (measured);
# - **unaligned**: the output has its own length and order — an **encoder-decoder**
#   (seq2seq). The encoder squeezes the whole input into one vector; the decoder unrolls
#   it, trained with **teacher forcing** and **scheduled sampling**. On a task that must
#   carry every input character through that vector, its accuracy falls with the input's
#   length (measured): the bottleneck that attention (notebook 06) is built to remove.
#
# **Objectives.** Build a bidirectional layer from two unidirectional ones and check it
# against `torch.nn.GRU(bidirectional=True)`; measure when the future helps; train and
# evaluate a seq2seq model on held-out data; see the fixed-size bottleneck in numbers. Every
# comparison and choice is made on a validation set; each test set is read once, for the
# chosen model.
#
# Helpers: `course_utils/output_types.py` (the models of 05a-05c: the tagger and the encoder-decoder here).

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

from course_utils import check_close, fit, report_run_time, seed_everything, start_notebook, tolerance
from course_utils.data.padding import pad_batch
from course_utils.data.synthetic import letters_only, reversal_pairs, segmentation_data
from course_utils.data.text import corpus_source, load_corpus
from course_utils.output_types import (
    BOS,
    EOS,
    PAD,
    EncoderDecoder,
    Tagger,
    bidirectional_rnn,
    length_mask,
    linear_schedule,
    reverse_padded,
    shift_right,
    tagger_split,
)
from course_utils.shared.metrics import binary_f1, exact_match

device = start_notebook()
rtol, atol = tolerance(torch.float32, device)

# %% [markdown]
# ## 1. A bidirectional layer, by hand
#
# A bidirectional RNN runs two independent recurrent layers, one left to right and one
# right to left, and concatenates their states at every step:
# $$\overrightarrow{h}_t = f(x_t, \overrightarrow{h}_{t-1}), \qquad
#   \overleftarrow{h}_t = g(x_t, \overleftarrow{h}_{t+1}), \qquad
#   h_t = [\overrightarrow{h}_t ; \overleftarrow{h}_t].$$
# So $h_t$ summarises the whole sequence, seen from position $t$. The backward layer is an
# ordinary layer that reads the sequence **reversed**; with padding, each sequence must be
# reversed *within its own length*, or the backward layer would start on padding.
#
# ### Exercise 1 (1 point, about 10 minutes): reverse within the length
#
# Write `my_reverse_padded(x, lengths)`: for `x` of shape `(B, T, F)` and `lengths`
# `(B,)`, return a tensor of the same shape where row `b` holds
# `x[b, lengths[b]-1], ..., x[b, 0]` followed by its padding, unchanged.

# %% nbgrader={"grade": false, "grade_id": "reverse_padded", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each x[b, :lengths[b]] in place of itself; padding stays at the end."""
    ### BEGIN SOLUTION
    out = x.clone()
    for b, n in enumerate(lengths.tolist()):
        out[b, :n] = x[b, :n].flip(0)
    return out
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "reverse_padded_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.core.checks import refuse_reference

my_reverse_padded_checked = refuse_reference(my_reverse_padded, ("reverse_padded", "bidirectional_rnn"))  # the course's own fails
x = torch.arange(8, dtype=torch.float32).reshape(2, 4, 1)  # rows [0 1 2 3] and [4 5 6 7]
got = my_reverse_padded_checked(x, torch.tensor([4, 2]))
check_close("my_reverse_padded(x, [4, 2])", got, torch.tensor([[3.0, 2, 1, 0], [5, 4, 6, 7]]).reshape(2, 4, 1))


# %% nbgrader={"grade": true, "grade_id": "reverse_padded_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.core.checks import refuse_reference

my_reverse_padded_checked = refuse_reference(my_reverse_padded, ("reverse_padded", "bidirectional_rnn"))  # the course's own fails
g = torch.Generator().manual_seed(0)
x = torch.randn(6, 9, 3, generator=g)
lens = torch.tensor([9, 1, 4, 7, 2, 9])
check_close("random batch", my_reverse_padded_checked(x, lens), reverse_padded(x, lens))
check_close("reversing twice is the identity", my_reverse_padded_checked(my_reverse_padded_checked(x, lens), lens), x)
### END HIDDEN TESTS

# %% [markdown]
# With the course's `reverse_padded` (the same function), `bidirectional_rnn` builds the
# layer from two `torch.nn.GRU`s. The visible check copies the weights of PyTorch's own
# bidirectional GRU into the two halves and compares the outputs on a padded, packed batch
# of three sequences of different lengths (valid steps only).

# %%
seed_everything(0)
bi_ref = torch.nn.GRU(5, 7, batch_first=True, bidirectional=True).to(device)
fwd, bwd = (torch.nn.GRU(5, 7, batch_first=True).to(device) for _ in range(2))
with torch.no_grad():
    for half, suffix in ((fwd, ""), (bwd, "_reverse")):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(half, f"{name}_l0").copy_(getattr(bi_ref, f"{name}_l0{suffix}"))
    xs = torch.randn(3, 6, 5, device=device)
    lens = torch.tensor([6, 3, 4])
    packed_out, _ = bi_ref(pack_padded_sequence(xs, lens, batch_first=True, enforce_sorted=False))
    ref, _ = pad_packed_sequence(packed_out, batch_first=True)  # (B, T, 2H), zeros on padding
    ours = bidirectional_rnn(fwd, bwd, xs, lens) * length_mask(lens, 6).to(device).unsqueeze(-1)
check_close("bidirectional outputs (forward half)", ours[..., :7], ref[..., :7], rtol=rtol, atol=atol)
check_close("bidirectional outputs (backward half)", ours[..., 7:], ref[..., 7:], rtol=rtol, atol=atol)

# %% [markdown]
# ## 2. Aligned many-to-many: where do the words end?
#
# Take the course's English corpus (the help texts of Python, in the standard library),
# keep the letters, remove the spaces — `thequickbrownfox` — and tag each letter 1 if a
# word ends there. Deciding whether `the` ends after `e` needs the **next** letters
# (`the|quick` but `theory`): the tag depends on the future. A unidirectional RNN must
# decide at $t$ having read only $x_{\le t}$; a bidirectional one sees the whole chunk.
#
# The text is cut into chunks of 48 letters, split by position so that the sets share no
# passage: the last 5 % of the chunks is the **test** block, read once, for the chosen tagger
# only; from the first 95 %, `tagger_split` (seeded) sets aside ten runs of consecutive
# chunks from all over the text, 5 % of the data, for **validation** (the comparison and the
# choice of tagger), and the rest trains. Exercise 4 uses the same split.
#
# Most letters do not end a word, so accuracy flatters a tagger that rarely says 1. The
# score that counts is the **F1** of the tag 1, counted over every letter of the set:
# with $tp$ the letters correctly tagged 1, precision $= tp / \#\{\text{predicted } 1\}$,
# recall $= tp / \#\{\text{true } 1\}$ and F1 their harmonic mean (`binary_f1`).

# %%
text = load_corpus()
print(corpus_source())
letters, tags = segmentation_data(text, chunk=48)  # (N, 48) each
X, Y = torch.from_numpy(letters), torch.from_numpy(tags)
train_rows, val_rows = tagger_split(len(X), seed=0)  # ten runs of the first 95 % validate
test_rows = np.arange(len(X) - len(X) // 20, len(X))  # the last 5 %: read once, at the end
alphabet = "abcdefghijklmnopqrstuvwxyz"
print(f"{len(letters)} chunks of 48 letters; {tags.mean():.1%} of the letters end a word")
print(f"train {len(train_rows)}, validation {len(val_rows)}, test {len(test_rows)} chunks")
print("example:", "".join(alphabet[i] for i in letters[0]), "\n tags:  ", "".join(map(str, tags[0])))


def tag_batches(rng):
    order = rng.permutation(train_rows)
    return [(X[order[i : i + 64]], Y[order[i : i + 64]]) for i in range(0, len(order), 64)]


def tag_loss(model, batch):
    x, y = batch
    return torch.nn.functional.cross_entropy(model(x).reshape(-1, 2), y.reshape(-1))


@torch.no_grad()
def tag_scores(model, rows):
    """Per-letter accuracy and F1 of the 'word ends here' tag on the chunks `rows`."""
    model.eval()
    pred = model(X[rows].to(device)).argmax(-1).cpu()
    y = Y[rows]
    return (pred == y).float().mean().item(), binary_f1(pred, y), pred


taggers, tag_results = {}, {}
for name, hidden, bidirectional in (("unidirectional GRU, H=64", 64, False),
                                    ("unidirectional GRU, H=96 (as many weights)", 96, False),
                                    ("bidirectional GRU, H=64 per direction", 64, True)):
    seed_everything(0)
    model = Tagger(26, embed=16, hidden=hidden, num_tags=2, bidirectional=bidirectional).to(device)
    rng = np.random.default_rng(0)
    fit(model, lambda epoch, rng=rng: tag_batches(rng), tag_loss, torch.optim.Adam(model.parameters(), lr=1e-2),
        epochs=2, clip_grad_norm=1.0, desc=name)
    taggers[name] = model
    val_acc, val_f1, _ = tag_scores(model, val_rows)
    tag_results[name] = (val_acc, val_f1, sum(p.numel() for p in model.parameters()))

print(f"{'tagger (validation chunks)':44s} {'accuracy':>9s} {'F1':>6s} {'params':>7s}")
print(f"{'always 0 (no boundary)':44s} {1 - Y[val_rows].float().mean():9.3f} {0:6.3f} {0:7d}")
for name, (acc, f1, n) in tag_results.items():
    print(f"{name:44s} {acc:9.3f} {f1:6.3f} {n:7d}")
best_uni = max((k for k in tag_results if k.startswith("uni")), key=lambda k: tag_results[k][1])
uni_f1 = tag_results[best_uni][1]
bi_f1 = tag_results["bidirectional GRU, H=64 per direction"][1]
print(f"Reading the future raises the validation F1 of the boundary tag from {uni_f1:.3f} (the better "
      f"unidirectional tagger: {best_uni}) to {bi_f1:.3f}.")
assert bi_f1 > uni_f1 + 0.05, "the bidirectional tagger should clearly beat the unidirectional ones"

# %% [markdown]
# The unidirectional tagger with 96 hidden units has about as many weights as the
# bidirectional one, so the gain is not a matter of size: it is the information about the
# future. Here is a test chunk segmented by both models (a space wherever a model puts a
# boundary):

# %%
def segment(row, pred):
    return "".join(alphabet[c] + (" " if t else "") for c, t in zip(letters[row], pred.tolist(), strict=True))


row = int(val_rows[3])  # a validation chunk: the test block waits for the chosen tagger
for name in ("unidirectional GRU, H=96 (as many weights)", "bidirectional GRU, H=64 per direction"):
    pred = tag_scores(taggers[name], slice(row, row + 1))[2][0]
    print(f"{name.split(',')[0]:15s} {segment(row, pred)}")
print(f"{'truth':15s} {segment(row, Y[row])}")

# %% [markdown]
# Validation chooses the tagger with the highest F1; the test block is read now, once, for
# that tagger alone.

# %%
chosen = max(tag_results, key=lambda k: tag_results[k][1])  # by validation F1
test_acc, test_f1, _ = tag_scores(taggers[chosen], test_rows)
print(f"chosen on validation: {chosen}")
print(f"its test scores, measured once: F1 {test_f1:.3f}, per-letter accuracy {test_acc:.3f} "
      f"(validation F1 {tag_results[chosen][1]:.3f}; always 0 on the test block: accuracy "
      f"{1 - Y[test_rows].float().mean():.3f}, F1 0)")

# %% [markdown]
# A bidirectional model needs the whole input before it emits anything, so it suits
# tagging a finished sentence, not predicting the next word or streaming speech.
#
# ## 3. Unaligned many-to-many: an encoder-decoder without attention
#
# When the output has its own length and order, no step of the output belongs to a step
# of the input. The **encoder** reads the input $x_1 \dots x_S$ and keeps only its final
# state $c = h_S^{\text{enc}}$, the *context*; the **decoder** starts from $s_0 = c$ and
# produces the output one token at a time:
# $$s_t = \mathrm{GRU}(e(y_{t-1}), s_{t-1}), \qquad
#   p(y_t \mid y_{<t}, x) = \operatorname{softmax}(W_{hy} s_t + b_y), \qquad y_0 = \texttt{BOS},$$
# until it emits `EOS`. Everything the decoder knows about the input passes through the
# fixed-size vector $c$.
#
# **The task**: spell a snippet of real text backwards — `the cat` → `tac eht`. The
# snippets are random pieces of the course corpus (lower-case letters and spaces), 1 to 20
# characters long. Split by position again: training snippets come from the first 80 % of
# the text, validation snippets (for the analysis and the one choice below) from the next
# 10 %, test snippets from the last 10 %, read once for the chosen model. The answer is
# exact, so accuracy is easy to measure.

# %%
clean = letters_only(text)
cut_val, cut_test = int(0.8 * len(clean)), int(0.9 * len(clean))
train_text, val_text, test_text = clean[:cut_val], clean[cut_val:cut_test], clean[cut_test:]
chars = " " + alphabet
V = 3 + len(chars)  # PAD, BOS, EOS, then the characters


def encode(s):
    return [3 + chars.index(c) for c in s]


def decode(ids):
    out = []
    for i in ids:
        if i == EOS:
            break
        out.append(chars[i - 3] if i >= 3 else "?")
    return "".join(out)


def make_batch(pairs):
    src, src_lengths = pad_batch([encode(a) for a, _ in pairs], PAD)
    tgt, _ = pad_batch([encode(b) + [EOS] for _, b in pairs], PAD)
    return src, src_lengths, tgt


max_len, steps = 20, 400
rng = np.random.default_rng(0)
train_batches = [make_batch(reversal_pairs(train_text, 64, 1, max_len, rng)) for _ in range(steps)]
eval_lengths = list(range(2, max_len + 1, 2))  # 200 snippets of each length, seeded
val_sets = {n: make_batch(reversal_pairs(val_text, 200, n, n, np.random.default_rng(1000 + n)))
            for n in eval_lengths}
test_sets = {n: make_batch(reversal_pairs(test_text, 200, n, n, np.random.default_rng(2000 + n)))
             for n in eval_lengths}
print(reversal_pairs(train_text, 3, 8, 14, np.random.default_rng(0)))

# %% [markdown]
# ### Teacher forcing and scheduled sampling
#
# In training, what should the decoder read as $y_{t-1}$? **Teacher forcing** feeds the
# true previous token: training is fast (one call over the whole shifted target) and
# stable. But at test time the decoder reads its *own* guesses, a distribution it never
# saw in training — *exposure bias*: one early mistake can derail the rest.
# **Scheduled sampling** (Bengio et al., 2015) feeds the true token with probability $p$
# and the model's own guess otherwise, and lowers $p$ during training (here linearly from
# 1 to 0.5). A trainer that flips one coin per *sequence* with a fixed ratio of 0.5, as
# many tutorials do under this name, uses a fixed teacher-forcing ratio, not a schedule.
#
# ### Exercise 2 (1 point, about 10 minutes): decoder inputs for teacher forcing
#
# Write `my_shift_right(targets, bos)`: for targets `(B, T)`, return `(B, T)` decoder
# inputs `[bos, y_1, ..., y_{T-1}]` — the target shifted one step to the right, `bos` first.

# %% nbgrader={"grade": false, "grade_id": "shift_right", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_shift_right(targets: torch.Tensor, bos: int) -> torch.Tensor:
    """Decoder inputs [bos, y_1, ..., y_{T-1}] for targets (B, T)."""
    ### BEGIN SOLUTION
    start = torch.full_like(targets[:, :1], bos)
    return torch.cat([start, targets[:, :-1]], dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "shift_right_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.core.checks import refuse_reference

my_shift_right_checked = refuse_reference(my_shift_right, ("shift_right",))  # the course's own fails
y = torch.tensor([[5, 6, 7, 2], [8, 2, 0, 0]])
check_close("my_shift_right(y, 1)", my_shift_right_checked(y, 1), torch.tensor([[1, 5, 6, 7], [1, 8, 2, 0]]))


# %% nbgrader={"grade": true, "grade_id": "shift_right_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
from course_utils.core.checks import refuse_reference

my_shift_right_checked = refuse_reference(my_shift_right, ("shift_right",))  # the course's own fails
from course_utils.output_types import shift_right as reference_shift_right

y = torch.randint(0, 30, (7, 11), generator=torch.Generator().manual_seed(0))
check_close("random targets", my_shift_right_checked(y, 9), reference_shift_right(y, 9))
check_close("length-1 targets", my_shift_right_checked(y[:, :1], 4), torch.full((7, 1), 4))
### END HIDDEN TESTS

# %% [markdown]
# ### Scoring a decoded sequence: exact match
#
# A reversal is right only if *every* character is, and the `EOS` after them; what the
# decoder writes after `EOS` does not matter, since decoding stops there. The targets are
# padded with `PAD` after their `EOS`, and greedy decoding runs for a fixed number of steps,
# so the prediction may be longer than the target. A sequence $b$ is an exact match when
# $\hat{y}_{bt} = y_{bt}$ at every position $t$ where $y_{bt} \ne$ `PAD`.
#
# ### Exercise 3 (1 point, about 10 minutes): exact match, padding ignored
#
# Write `my_exact_match(pred, targets, pad)`: for predictions `(B, T_pred)` with
# `T_pred >= T` and targets `(B, T)`, return a boolean tensor `(B,)`, True where the
# prediction equals the target at every non-pad position of the target.

# %% nbgrader={"grade": false, "grade_id": "exact_match", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_exact_match(pred: torch.Tensor, targets: torch.Tensor, pad: int) -> torch.Tensor:
    """(B,) bool: pred[b, :T] equals targets[b] wherever targets[b] is not pad."""
    ### BEGIN SOLUTION
    same = pred[:, : targets.shape[1]] == targets  # (B, T)
    return (same | (targets == pad)).all(dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "exact_match_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.output_types import check_exact_match

check_exact_match(my_exact_match)  # names the usual mistake when your values match it


# %% nbgrader={"grade": true, "grade_id": "exact_match_hidden_test", "locked": true, "points": 0.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_exact_match(my_exact_match, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# Both models below are identical and see the same 400 batches; only what the decoder
# reads during training differs. (`EncoderDecoder.forward` takes the decoder inputs
# `shift_right(tgt, BOS)` of exercise 2 and the teacher-forcing probability $p$; with
# $p = 1$ it is plain teacher forcing, computed in one call. Its `greedy(src, lengths,
# steps, bos)` decodes as notebook 06's models do.)

# %%
def train_seq2seq(schedule, seed=0):
    seed_everything(seed)
    model = EncoderDecoder(V, embed=32, hidden=128).to(device)
    coin = torch.Generator().manual_seed(seed)
    step = iter(range(steps))

    def loss_fn(model, batch):
        src, src_lengths, tgt = batch
        tgt_in = shift_right(tgt, BOS)  # the decoder's inputs (exercise 2)
        logits = model(src, src_lengths, tgt_in, teacher_forcing=schedule(next(step)), generator=coin)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), ignore_index=PAD)

    history = fit(model, train_batches, loss_fn, torch.optim.Adam(model.parameters(), lr=3e-3), clip_grad_norm=1.0)
    return model, history


@torch.no_grad()
def seq2seq_scores(model, sets):
    """Exact-match and per-character accuracy of greedy decoding on `sets`, by input length."""
    model.eval()
    exact, per_char, preds = {}, {}, {}
    for n, (src, src_lengths, tgt) in sets.items():
        pred = model.greedy(src.to(device), src_lengths, tgt.shape[1], BOS)[0].cpu()  # (B, n + 1)
        exact[n] = exact_match(pred, tgt, ignore_index=PAD).float().mean().item()
        per_char[n] = (pred[:, :n] == tgt[:, :n]).float().mean().item()
        preds[n] = pred
    return exact, per_char, preds


schedules = {"teacher forcing (p = 1)": lambda step: 1.0,
             "scheduled sampling (p: 1 -> 0.5)": lambda step: linear_schedule(step, steps, 1.0, 0.5)}
seq2seq = {name: train_seq2seq(schedule) for name, schedule in schedules.items()}
scores = {name: seq2seq_scores(model, val_sets) for name, (model, _) in seq2seq.items()}  # validation

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, (exact, per_char, _) in scores.items():
    axes[0].plot(eval_lengths, [exact[n] for n in eval_lengths], "o-", label=name)
    axes[1].plot(eval_lengths, [per_char[n] for n in eval_lengths], "o-", label=name)
axes[0].set_ylabel("exact-match accuracy")
axes[1].set_ylabel("per-character accuracy")
for ax in axes:
    ax.set_xlabel("input length (characters)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
axes[0].legend()
plt.suptitle("seq2seq without attention, validation snippets (200 per length)")
plt.tight_layout()
plt.show()

print(f"{'input length':>28s}" + "".join(f"{n:6d}" for n in eval_lengths))
for name, (exact, per_char, _) in scores.items():
    label = name.split(" (")[0]  # "teacher forcing", "scheduled sampling"
    print(f"{label + ', exact':>28s}" + "".join(f"{exact[n]:6.2f}" for n in eval_lengths))
    print(f"{label + ', per character':>28s}" + "".join(f"{per_char[n]:6.2f}" for n in eval_lengths))
tf_exact, tf_char, _ = scores["teacher forcing (p = 1)"]
print(f"Teacher forcing: {tf_exact[4]:.0%} of 4-character snippets are reversed exactly, "
      f"{tf_exact[12]:.0%} at 12 and {tf_exact[20]:.0%} at 20 characters; per character "
      f"{tf_char[4]:.0%}, {tf_char[12]:.0%} and {tf_char[20]:.0%}.")
assert tf_exact[4] > 0.75 and tf_exact[20] < 0.25, "exact match should fall steeply with length"
assert tf_char[4] > tf_char[20] + 0.3, "so should the accuracy per character, not only per sequence"

# %% [markdown]
# Short inputs are reversed almost perfectly; long ones almost never, although every
# length was trained on equally often. Exact match would fall with length even if every
# character had the same chance $p$ of being right ($p^n$ for $n$ characters); the right
# panel shows more than that: the chance of each *single* character being right falls too.
# But greedy per-character accuracy mixes two causes. The decoder may have *forgotten* the
# character (the fixed-size vector cannot hold it), or it may have been *derailed*: greedy
# output is compared with the target position by position, so once the decoder drops or
# inserts one character, every later position is shifted and counts as wrong, even if the
# decoder still "knows" the rest — the exposure bias of the previous section. To separate
# them, score the same model a second way: **teacher-forced** accuracy feeds the *true*
# previous characters and asks only for the next one, so no earlier error can carry over.
# Its curve is the memory effect; the gap between it and greedy is the compounding. For the
# 16-character snippets, both by output position:

# %%
n = 16
model_tf = seq2seq["teacher forcing (p = 1)"][0]
_, _, preds = scores["teacher forcing (p = 1)"]
src, src_lengths, tgt = val_sets[n]
greedy_right = preds[n][:, :n] == tgt[:, :n]  # (200, n): greedy, its own guesses fed back
with torch.no_grad():
    logits = model_tf(src.to(device), src_lengths, shift_right(tgt, BOS).to(device)).cpu()  # true inputs fed
forced_right = logits.argmax(-1)[:, :n] == tgt[:, :n]
greedy_acc, forced_acc = greedy_right.float().mean(0), forced_right.float().mean(0)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(1, n + 1), forced_acc, "o-", label="teacher-forced (true previous characters)")
ax.plot(range(1, n + 1), greedy_acc, "s-", label="greedy (its own previous guesses)")
ax.set_xlabel(f"output position (1 = last input character), input length {n}")
ax.set_ylabel("accuracy")
ax.set_ylim(0, 1.02)
ax.legend()
ax.grid(alpha=0.3)
plt.show()
for b in range(3):
    print(f"{decode(src[b].tolist()):>18s} -> {decode(preds[n][b].tolist()):18s} (truth: {decode(tgt[b].tolist())})")
print(f"{'position':>14s}" + "".join(f"{t:5d}" for t in range(1, n + 1)))
print(f"{'teacher-forced':>14s}" + "".join(f"{a:5.2f}" for a in forced_acc))
print(f"{'greedy':>14s}" + "".join(f"{a:5.2f}" for a in greedy_acc))
errors = ~greedy_right
after_error = errors & (errors.long().cumsum(1) > 1)  # an error with an earlier error in the same output
share_after = after_error.sum().item() / errors.sum().item()
late_forced, late_greedy = forced_acc[7:].mean().item(), greedy_acc[7:].mean().item()
print(f"positions 8 to {n}: teacher-forced accuracy {late_forced:.2f} on average "
      f"({forced_acc[7:].min():.2f} to {forced_acc[7:].max():.2f}), greedy {late_greedy:.2f}")
print(f"{share_after:.0%} of greedy's errors follow an earlier error in the same output")
assert forced_acc[0] > forced_acc[7:].mean() + 0.15, "even with true inputs, late positions should be harder (memory)"
assert late_forced > late_greedy + 0.25, "most of greedy's late loss should be compounding, not memory"
assert share_after > 0.7, "most greedy errors should come after an earlier error"
assert forced_acc[7:].max() - forced_acc[7:].min() < 0.15, "teacher-forced accuracy should level off after position 8"

# %% [markdown]
# Two effects, measured apart. **Memory** (the teacher-forced curve): the first output
# characters are the *last* ones the encoder read, still fresh in $c$; with the true previous
# characters given, accuracy still falls over the first eight positions — the beginning of
# the input had to survive the most steps of being squeezed into the same 128 numbers — and
# then levels off. That is the **bottleneck**: however long the input, the
# decoder sees one fixed-size vector, and on a task that must carry *every* input character
# through it, the longest inputs suffer most. **Compounding** (the gap between the curves):
# greedy decoding falls much further, and most of its errors come after an earlier error in
# the same output — a dropped or repeated character shifts everything after it. Exposure bias
# turns a moderate memory loss into a near-total loss of exact matches.
# (Sutskever et al., 2014, reversed their *source* sentences for exactly this reason: it
# puts the first words to translate close to the decoder.) Notebook 06 lets the decoder look
# back at *every* encoder state — attention.
#
# Scheduled sampling was designed for long outputs, where an early mistake compounds. Did
# it help here? The measured comparison on validation decides, not the promise; the rule,
# fixed before looking: keep plain teacher forcing (simpler and faster) unless scheduled
# sampling's mean exact match over the lengths is ahead by more than 0.03.

# %%
ss_mean = np.mean(list(scores["scheduled sampling (p: 1 -> 0.5)"][0].values()))
tf_mean = np.mean(list(tf_exact.values()))
gap = ss_mean - tf_mean
if abs(gap) < 0.03:
    verdict = "no clear difference (under 0.03)"
elif gap > 0:
    verdict = f"scheduled sampling ahead by {gap:.3f}"
else:
    verdict = f"plain teacher forcing ahead by {-gap:.3f}"
print(f"Mean validation exact match over lengths: teacher forcing {tf_mean:.3f}, scheduled sampling {ss_mean:.3f}; "
      f"the difference {gap:+.3f}: {verdict}.")
chosen_seq2seq = "scheduled sampling (p: 1 -> 0.5)" if gap > 0.03 else "teacher forcing (p = 1)"
test_exact, test_char, _ = seq2seq_scores(seq2seq[chosen_seq2seq][0], test_sets)  # the one pass over the test set
print(f"chosen on validation: {chosen_seq2seq}; its test scores, measured once:")
print(f"{'input length':>14s}" + "".join(f"{n:6d}" for n in eval_lengths))
print(f"{'exact match':>14s}" + "".join(f"{test_exact[n]:6.2f}" for n in eval_lengths))
print(f"{'per character':>14s}" + "".join(f"{test_char[n]:6.2f}" for n in eval_lengths))

# %% [markdown]
# ### Exercise 4 (2 points, about 15 minutes): fix a tagger that misses the word ends
#
# Back to section 2, with a budget: 150 optimiser steps of 16 chunks of 48 letters (Adam,
# gradient norm clipped at 1, embeddings of size 16), and a **validation** F1 of at least
# 0.82 for the word-end tag. The GRU tagger below misses it; the next cell trains it as the
# check will (a few seconds) and prints its F1.
#
# **Change one field** of `BROKEN_TAGGER` so that the tagger reaches the target: return
# `{field: new value}` (`bidirectional`: `True` or `False`; `hidden_size`: units per
# direction, at most 48; `lr`: Adam's learning rate). The check refuses a change of two
# fields, trains the fixed tagger and measures the F1 on validation chunks taken, by
# position, from ten places in the text that it leaves out of training (the test chunks are
# never read); the hidden test trains again from another random start and validates on ten
# other places. Which field breaks this run is the question: what does the tagger know at
# letter $t$ when it must say whether a word ends there?

# %%
from course_utils.exercises.output_types import BROKEN_TAGGER, TAGGER_CHALLENGE, check_tagger_fix, tagger_config_f1

broken_f1 = tagger_config_f1(BROKEN_TAGGER)
print(f"{BROKEN_TAGGER}: validation F1 {broken_f1:.3f} after {TAGGER_CHALLENGE['steps']} steps "
      f"(target: at least {TAGGER_CHALLENGE['target']})")
assert broken_f1 < TAGGER_CHALLENGE["target"]

# %% nbgrader={"grade": false, "grade_id": "tagger_fix", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_tagger_fix():
    """One field of BROKEN_TAGGER and its new value: {field: value}."""
    ### BEGIN SOLUTION
    return {"bidirectional": True}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "tagger_fix_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
check_tagger_fix(my_tagger_fix())  # trains the fixed tagger; says how far from the target it is


# %% nbgrader={"grade": true, "grade_id": "tagger_fix_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_tagger_fix(my_tagger_fix(), seed=1)
check_tagger_fix(my_tagger_fix(), seed=2)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - **Aligned many-to-many** (tagging): one output per step. When a tag depends on what
#   comes next, a **bidirectional** RNN — two layers, one reading backwards, states
#   concatenated — beats a unidirectional one of the same size. We built it from two GRUs
#   and matched `torch.nn.GRU(bidirectional=True)`.
# - **Unaligned many-to-many** (seq2seq): an encoder compresses the input into one vector,
#   a decoder unrolls it. Train with **teacher forcing** (`shift_right`), optionally
#   **scheduled sampling**; decode greedily, token by token, until `EOS`.
# - Without attention, on the reversal task, accuracy falls with input length, per
#   character as well as per sequence. Two causes, measured apart: with the true previous
#   characters fed (teacher-forced), the characters read first are still the hardest — a
#   fixed-size context is a bottleneck for a task that must carry every input character
#   through it; greedy decoding loses far more, because one dropped or inserted character
#   shifts every later one (exposure bias compounding). (Which inputs suffer most depends
#   on the task; notebook 06 measures its own.)
# - Compare and choose on validation; read the test set once, for the chosen model.
#
# Next: **05d**, forecasting, closes this chapter; then **06 · attention** lets the
# decoder look back at every encoder state.

# %%
report_run_time()
