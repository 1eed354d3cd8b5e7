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
# # 01 · RNN: the recurrent connection
#
# **Objectives.** By the end of this notebook you will
# 1. know why sequences need a model with memory, and how an RNN differs from a feed-forward network,
# 2. read the RNN equations $h_t = \tanh(W_{xh} x_t + W_{hh} h_{t-1} + b_h)$, $y_t = g(W_{hy} h_t + b_y)$
#    and follow a forward pass through $t = 0..3$ with real numbers,
# 3. implement the cell and the sequence forward pass in numpy, batched, and check both against `torch.nn.RNN`,
# 4. train a small character-level RNN on real text and see that its memory helps.
#
# Helpers: `course_utils/rnn.py` (open it: the numpy and PyTorch RNN are a page each) and
# `course_utils/numpy_lm.py` (text cut into parallel streams for training).

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

from course_utils import check_close, fit, plot_losses, report_run_time, seed_everything, start_notebook, tolerance
from course_utils.exercises.rnn import check_rnn_cell, check_rnn_forward
from course_utils.rnn import RNN, CharRNN, params_from_torch, rnn_cell_forward, rnn_forward, rnn_output, softmax

device = start_notebook()

# %% [markdown]
# ## 1. Temporal data: order matters
#
# Temporal data comes with an order: stock prices, sensor readings, the words of a sentence,
# the characters of a program. Shuffle it and its meaning changes: *dog bites man* is not
# *man bites dog*. A model that looks at each element on its own, or at an unordered bag
# of elements, cannot tell those two apart. The usual comparison, slightly sharpened:
#
# | | feed-forward network | recurrent network |
# | --- | --- | --- |
# | architecture | layers in one direction, no cycles | a loop: the hidden state feeds back into the next step |
# | data | each input on its own, fixed size | a sequence of any length, one step at a time |
# | memory | none | the hidden state $h_t$ summarises $x_0..x_t$ |
# | parameters | one set per layer | one set, **shared by every time step** |
# | training | backpropagation | backpropagation *through time* (notebook 02), harder: gradients vanish or explode |
#
# A quick demonstration with random weights: a bag-of-words sum gives the same vector for
# both sentences, while the final hidden state of an RNN differs.

# %%
rng = seed_everything(0)
words = ["dog", "bites", "man"]
embedding = {w: rng.normal(size=4) for w in words}  # a random 4-d vector per word
W_xh, W_hh, b_h = rng.normal(size=(8, 4)), rng.normal(size=(8, 8)) * 0.5, np.zeros(8)


def encode(sentence: str) -> np.ndarray:
    return np.stack([embedding[w] for w in sentence.split()])[:, None, :]  # (T, B=1, 4)


for sentence in ["dog bites man", "man bites dog"]:
    x = encode(sentence)
    h_last = rnn_forward(x, np.zeros((1, 8)), W_xh, W_hh, b_h)[-1, 0]
    print(f"{sentence!r}: bag-of-words sum[:3] = {x.sum(axis=0)[0, :3].round(3)}, RNN h_T[:3] = {h_last[:3].round(3)}")
bag_same = np.allclose(encode("dog bites man").sum(0), encode("man bites dog").sum(0))
h_a = rnn_forward(encode("dog bites man"), np.zeros((1, 8)), W_xh, W_hh, b_h)[-1]
h_b = rnn_forward(encode("man bites dog"), np.zeros((1, 8)), W_xh, W_hh, b_h)[-1]
print(f"bag of words identical: {bag_same}; RNN final states differ by {np.abs(h_a - h_b).max():.3f} (max abs)")
assert bag_same and np.abs(h_a - h_b).max() > 1e-3

# %% [markdown]
# ## 2. The recurrent connection and unfolding through time
#
# At each step $t$ the RNN combines the current input $x_t$ with its previous hidden state
# $h_{t-1}$, the network's memory:
#
# $$h_t = \tanh(W_{xh} x_t + W_{hh} h_{t-1} + b_h), \qquad y_t = g(W_{hy} h_t + b_y).$$
#
# $W_{xh}$ (`W_xh`, shape $H \times I$) maps the input to the hidden space, $W_{hh}$ (`W_hh`,
# $H \times H$) is the **recurrent** connection, $W_{hy}$ (`W_hy`, $O \times H$) maps the state
# to the output, and $g$ is the output's activation: the identity for regression, softmax
# for classification. ($g$ is also written $\sigma$, and $b_h$ is sometimes called the "output
# bias"; the output bias is $b_y$.)
#
# **Unfolding.** Draw one copy of the cell per time step and the loop becomes a deep
# feed-forward graph $x_0 \to h_0 \to h_1 \to \dots$ in which every copy uses **the same**
# weights $W_{xh}, W_{hh}, W_{hy}, b_h, b_y$: weight sharing. That is why one RNN handles
# sequences of any length, and why its gradient is a sum over time steps (notebook 02).
#
# We number steps from $t = 0$, as the code does. The first step is often written
# $h_0 = f(W_{xh} x_0 + b_h)$, "without $W_{hh}$"; that is the general formula with an initial
# state $h_{-1} = 0$, which is what the code does (`h_init`, which PyTorch calls `h_0`).
#
# ### The worked example, t = 0..3, with numbers
#
# A tiny RNN: input size $I = 2$, hidden size $H = 3$, output size $O = 2$ with a softmax.

# %%
rng = seed_everything(1)
n_in, H, n_out = 2, 3, 2  # I, H, O in the text
W_xh = rng.normal(size=(H, n_in)).round(1)
W_hh = (rng.normal(size=(H, H)) * 0.5).round(1)
b_h = rng.normal(size=H).round(1) * 0.5
W_hy = rng.normal(size=(n_out, H)).round(1)
b_y = np.zeros(n_out)
xs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -1.0]])  # x_0 .. x_3
np.set_printoptions(precision=3, suppress=True)
print("W_xh =\n", W_xh, "\nW_hh =\n", W_hh, "\nb_h =", b_h, "\nW_hy =\n", W_hy)

h = np.zeros(H)  # h_{-1} = 0
for t, x_t in enumerate(xs):
    a_t = W_xh @ x_t + W_hh @ h + b_h  # column-vector form, exactly the equation above
    h = np.tanh(a_t)
    y_t = softmax(W_hy @ h + b_y)
    print(f"t={t}: x_t={x_t}  W_xh x_t={W_xh @ x_t}  a_t={a_t}  h_t={h}  y_t={y_t}")
h_3 = h  # the last state, which section 3's batched code must reproduce

# %% [markdown]
# At $t = 0$ the recurrent term is $W_{hh} h_{-1} = 0$; from $t = 1$ on, $h_{t-1}$ carries
# what the network saw before. The same weights are used at all four steps.
#
# ## 3. A numpy implementation, batched
#
# In practice we process a **batch** of $B$ sequences at once and store vectors as rows. The
# course's shapes (the same as `torch.nn.RNN` with `batch_first=False`):
#
# | name | shape | meaning |
# | --- | --- | --- |
# | `x` | `(T, B, I)` | a batch of input sequences, time first |
# | `x_t` | `(B, I)` | the inputs at step `t` |
# | `h_prev`, `h_t`, `h_init` | `(B, H)` | hidden states |
# | `hs` | `(T, B, H)` | every hidden state $h_0 .. h_{T-1}$ |
# | `W_xh`, `W_hh`, `b_h` | `(H, I)`, `(H, H)`, `(H,)` | stored output-by-input, like `torch.nn` |
#
# With rows, the column form's $W_{xh} x_t$ becomes the row form's $x_t W_{xh}^\top$. Write the
# step and the loop in this layout now, before the notebook uses them.
#
# ### Exercise 1 (2 points, about 10 minutes): the RNN cell
#
# Implement one step for a batch, with the shapes of the table above:
#
# $$h_t = \tanh(x_t W_{xh}^\top + h_{t-1} W_{hh}^\top + b_h)$$
#
# `x_t (B, I)`, `h_prev (B, H)`, `W_xh (H, I)`, `W_hh (H, H)`, `b_h (H,)`; return `h_t (B, H)`.

# %% nbgrader={"grade": false, "grade_id": "rnn_cell_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_rnn_cell_forward(x_t, h_prev, W_xh, W_hh, b_h):
    """One RNN step for a batch: returns h_t, shape (B, H)."""
    ### BEGIN SOLUTION
    return np.tanh(x_t @ W_xh.T + h_prev @ W_hh.T + b_h)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rnn_cell_forward_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Compares with course_utils.rnn.rnn_cell_forward and names the usual mistakes
# (no tanh, no bias, W_hh transposed, h_prev or x_t ignored).
check_rnn_cell(my_rnn_cell_forward)


# %% nbgrader={"grade": true, "grade_id": "rnn_cell_forward_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_rnn_cell(my_rnn_cell_forward, seed=11)
_rng = np.random.default_rng(3)
_x, _h = _rng.normal(size=(1, 6)), _rng.normal(size=(1, 2))
_W_xh, _W_hh, _b = _rng.normal(size=(2, 6)), _rng.normal(size=(2, 2)), _rng.normal(size=2)
check_close("h_t for B=1, I=6, H=2", my_rnn_cell_forward(_x, _h, _W_xh, _W_hh, _b),
            rnn_cell_forward(_x, _h, _W_xh, _W_hh, _b))
_torch_cell = torch.nn.RNNCell(6, 2).double()
with torch.no_grad():
    _expected = _torch_cell(torch.from_numpy(_x), torch.from_numpy(_h))
_p = {k: v.detach().numpy() for k, v in _torch_cell.named_parameters()}
check_close("h_t vs torch.nn.RNNCell", my_rnn_cell_forward(_x, _h, _p["weight_ih"], _p["weight_hh"],
            _p["bias_ih"] + _p["bias_hh"]), _expected)
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2 (2 points, about 10 minutes): the sequence forward pass
#
# Run the cell over a whole sequence: `x (T, B, I)`, `h_init (B, H)`; return every hidden
# state $h_0 .. h_{T-1}$ as one array `hs (T, B, H)`. Use your `my_rnn_cell_forward` (the same
# weights at every step) and carry $h$ from one step to the next.

# %% nbgrader={"grade": false, "grade_id": "rnn_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_rnn_forward(x, h_init, W_xh, W_hh, b_h):
    """All hidden states of the RNN over x: returns hs, shape (T, B, H)."""
    ### BEGIN SOLUTION
    h = h_init
    hs = []
    for t in range(x.shape[0]):
        h = my_rnn_cell_forward(x[t], h, W_xh, W_hh, b_h)
        hs.append(h)
    return np.stack(hs)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rnn_forward_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Compares with course_utils.rnn.rnn_forward; a wrong shape or a state that is not carried
# over is named.
check_rnn_forward(my_rnn_forward)


# %% nbgrader={"grade": true, "grade_id": "rnn_forward_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_rnn_forward(my_rnn_forward, seed=5, T=1)
check_rnn_forward(my_rnn_forward, seed=6, T=9)
_rnn = torch.nn.RNN(3, 4).double()
_x, _h0 = torch.randn(6, 2, 3, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64)
with torch.no_grad():
    _out, _ = _rnn(_x, _h0)
_p = params_from_torch(_rnn)
check_close("hs vs torch.nn.RNN", my_rnn_forward(_x.numpy(), _h0[0].numpy(), _p["W_xh"], _p["W_hh"], _p["b_h"]), _out)
### END HIDDEN TESTS

# %% [markdown]
# From here on the notebook calls the course's `rnn_cell_forward` and `rnn_forward`, the
# functions your checks compare with, so that it runs whether or not your exercises pass yet.
# They give the same numbers as the column-vector loop of section 2:

# %%
hs = rnn_forward(xs[:, None, :], np.zeros((1, H)), W_xh, W_hh, b_h)  # (T=4, B=1, H)
print("h_3 from rnn_forward:", hs[-1, 0], " y_3:", softmax(rnn_output(hs, W_hy, b_y))[-1, 0])
check_close("h_3", hs[-1, 0], h_3)

# %% [markdown]
# Wrong shapes are the most common bug in sequence code, so the helpers refuse them, name
# the argument that is wrong, and say what they expected. Each size is read from the
# argument that defines it ($H$ from the square `W_hh`, $I$ and $B$ from `x`), so the blame
# lands on the right argument:

# %%
bad_calls = [  # (the argument that is wrong, the call)
    ("x_t", lambda: rnn_cell_forward(xs[0], np.zeros((1, H)), W_xh, W_hh, b_h)),  # x_t without a batch axis
    ("x", lambda: rnn_forward(xs, np.zeros((1, H)), W_xh, W_hh, b_h)),  # (T, I): no batch axis
    ("W_xh", lambda: rnn_forward(xs[:, None, :], np.zeros((1, H)), W_xh.T, W_hh, b_h)),  # transposed W_xh
    ("x", lambda: rnn_forward(np.stack([xs, xs]), np.zeros((2, H)), W_xh, W_hh, b_h)),  # batch-first (B=2, T, I)
]
for blamed, bad_call in bad_calls:
    try:
        bad_call()
        raise AssertionError("a wrong shape went through")
    except ValueError as err:
        print("ValueError:", err)
        assert str(err).startswith(blamed + " has shape"), err

# %% [markdown]
# One mistake no shape check can catch: when $I = H$, a transposed `W_xh` has the right
# shape, `(H, H)`. Only the values tell, which is why every implementation in the course is
# also compared with PyTorch's numbers, as in the next section.

# %% [markdown]
# ## 4. PyTorch: by hand, then `torch.nn.RNN`
#
# `course_utils.rnn.RNN` is the same recurrence as an `nn.Module` with parameters `W_xh`,
# `W_hh`, `b_h` and the call signature of `torch.nn.RNN`: `out, h_n = rnn(x, h_0)` with
# `out (T, B, H)` and `h_n (1, B, H)`. It computes the input term for all steps in one matrix
# product, then loops over time.
#
# `torch.nn.RNN` computes $h_t = \tanh(x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh})$:
# **two** bias vectors that are simply added, so our $b_h$ = `bias_ih_l0 + bias_hh_l0`. We copy
# the weights of a randomly initialised `torch.nn.RNN` into both our implementations and compare
# in float32. (On a GPU, cuDNN may use TF32 arithmetic for the recurrent matrix products, so the
# comparison turns it off.)

# %%
seed_everything(0)
T, B, n_in, H = 7, 5, 4, 16
reference = torch.nn.RNN(n_in, H).to(device)  # float32, weights uniform in +-1/sqrt(H), both biases random
x = torch.randn(T, B, n_in, device=device)
h_0 = torch.randn(1, B, H, device=device)
ours = RNN.from_torch(reference)  # our module with reference's weights, b_h = b_ih + b_hh
params = params_from_torch(reference, dtype=np.float32)  # numpy float32 copies

with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
    out_ref, h_n_ref = reference(x, h_0)
    out_ours, h_n_ours = ours(x, h_0)
hs_np = rnn_forward(x.cpu().numpy(), h_0[0].cpu().numpy(), params["W_xh"], params["W_hh"], params["b_h"])

rtol, atol = tolerance(torch.float32, device)
check_close("course_utils.rnn.RNN vs torch.nn.RNN (out)", out_ours, out_ref, rtol=rtol, atol=atol)
check_close("course_utils.rnn.RNN vs torch.nn.RNN (h_n)", h_n_ours, h_n_ref, rtol=rtol, atol=atol)
check_close("numpy rnn_forward vs torch.nn.RNN", hs_np, out_ref.cpu().numpy(), rtol=rtol, atol=atol)
diff_torch = (out_ours - out_ref).abs().max().item()
diff_numpy = float(np.abs(hs_np - out_ref.cpu().numpy()).max())
print(f"max |difference|: PyTorch by hand {diff_torch:.2e}, numpy {diff_numpy:.2e} (float32); "
      f"asserted below atol = {atol:g} for float32 on {device.type}")
assert max(diff_torch, diff_numpy) < atol  # 1e-6 on the CPU; 1e-5 on a GPU

# %% [markdown]
# ## 5. A small trained example: next character on real text
#
# The course's corpus is the text of Python's own help pages (`pydoc_data.topics`, in the
# standard library, nothing to download). A character-level language model reads it one
# character at a time and predicts the next: inputs are one-hot vectors ($I$ = vocabulary
# size), the output is a softmax over the vocabulary, the loss is the cross-entropy.
# `course_utils.rnn.CharRNN` wraps our `RNN` with the output layer $W_{hy}, b_y$.
#
# The text is cut into $B$ parallel streams and chunks of $T$ characters
# (`course_utils.numpy_lm.stream_batches`); the last 10 % is held out for validation.

# %%
from course_utils.data.text import CharVocab, corpus_source, load_corpus
from course_utils.numpy_lm import stream_batches
from course_utils.shared.lm import next_token_loss

text = load_corpus()
vocab = CharVocab.from_text(text)
ids = vocab.encode(text)
n_val = len(ids) // 10
train_ids, val_ids = ids[:-n_val], ids[-n_val:]
print(f"{corpus_source()}: {len(text):,} characters, vocabulary of {vocab.size}")
print(f"train {len(train_ids):,}, validation {len(val_ids):,} characters")

seq_len, batch_size, hidden_size, steps = 32, 32, 128, 300
x_chunks, y_chunks = stream_batches(train_ids, batch_size, seq_len)  # (n_chunks, T, B) each
train_batches = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(x_chunks[:steps], y_chunks[:steps], strict=True)]
xv, yv = stream_batches(val_ids, batch_size, seq_len)
val_batches = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(xv[:40], yv[:40], strict=True)]

# The loss of a (T, B) chunk, from a zero state: mean cross-entropy per character (nats),
# `course_utils.shared.lm.next_token_loss`, the same loss as every language model of the course.

seed_everything(0)
model = CharRNN(vocab.size, hidden_size).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
history = fit(model, train_batches, next_token_loss, optimizer, epochs=1, val_data=val_batches, clip_grad_norm=1.0)
plot_losses(history, smooth_window=10, title=f"CharRNN, hidden {hidden_size}, {seq_len}-character chunks")
plt.show()

# %% [markdown]
# How good is that? A model **without memory** sees only the current character. A strong such
# model predicts the next character from the bigram frequencies of the training text, and a
# model that ignores the input altogether uses the character frequencies (unigram). We
# compute both on the validation text (with add-one smoothing) and compare:
#
# (`course_utils.shared.lm.ngram_probabilities` counts characters and pairs of the training text,
# with one pseudo-count each, and normalises the counts.)

# %%
from course_utils.shared.lm import ngram_probabilities

unigram, bigram = ngram_probabilities(train_ids, vocab.size)  # (V,), (V, V): bigram[a, b] = P(b | a)
bigram_loss = -np.log(bigram[val_ids[:-1], val_ids[1:]]).mean()
unigram_loss = -np.log(unigram[val_ids[1:]]).mean()
rnn_loss = history.val_losses[-1]
print(f"validation cross-entropy (nats per character): unigram {unigram_loss:.3f}, bigram {bigram_loss:.3f}, "
      f"RNN {rnn_loss:.3f} after {len(history.losses)} steps ({history.seconds:.1f} s)")
print(f"perplexity (e to the cross-entropy: the number of equally likely characters it amounts to): "
      f"unigram {np.exp(unigram_loss):.1f}, bigram {np.exp(bigram_loss):.1f}, RNN {np.exp(rnn_loss):.1f}")
assert rnn_loss < bigram_loss < unigram_loss, "the RNN should beat every model without memory"

# %% [markdown]
# The RNN beats the bigram model. That model is a smoothed count estimate, not a bound on what
# a model that looks at one character can do (other smoothings would score a little
# differently), but it is a strong one; the RNN's hidden state carries information from earlier
# characters that no model of the current character alone has. Notebook 02 trains the same
# kind of model in numpy, with the gradients computed by hand, for longer.
#
# ## 6. Exercises
#
# ### Exercise 3 (2 points, about 15 minutes): sampling with a temperature
#
# A language model gives logits $o$ over the vocabulary; to generate text we **draw** the next
# character from $\operatorname{softmax}(o / \tau)$. The temperature $\tau$ sharpens ($\tau < 1$)
# or flattens ($\tau > 1$) the distribution; $\tau \to 0$ is the argmax. Implement
# `my_sample_next(logits, temperature, generator)`: `logits` is `(B, V)`, return one id per row,
# shape `(B,)`, dtype `torch.long`, drawn with the given `torch.Generator` (e.g. with
# `torch.multinomial(probs, 1, generator=generator)`). Mind large logits at low temperature
# (notebook 00's softmax). The check draws many times and compares how often each id comes up
# with the softmax, so any correct sampler passes.

# %% nbgrader={"grade": false, "grade_id": "sample_next", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_sample_next(logits, temperature, generator):
    """One id per row of logits (B, V), drawn from softmax(logits / temperature): shape (B,)."""
    ### BEGIN SOLUTION
    scaled = logits / temperature
    probs = torch.softmax(scaled - scaled.max(dim=-1, keepdim=True).values, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sample_next_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.lm import check_sample_next

check_sample_next(my_sample_next)


# %% nbgrader={"grade": true, "grade_id": "sample_next_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_sample_next(my_sample_next, seed=3)
### END HIDDEN TESTS

# %% [markdown]
# The trained model of section 5, sampled at three temperatures with the course's own
# `course_utils.shared.lm.sample_next` (so this cell runs whether or not you did the exercise):

# %%
from course_utils.shared.lm import sample_next


@torch.no_grad()
def sample_text(model, prompt: str, n_chars: int, temperature: float, seed: int = 0) -> str:
    """Feed the prompt, then draw n_chars characters one at a time, carrying the hidden state."""
    model.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    ids = torch.from_numpy(vocab.encode(prompt)).to(device)[:, None]  # (T, 1): time first
    logits, h = model(ids)  # (T, 1, V), (1, 1, H)
    out = []
    for _ in range(n_chars):
        next_id = sample_next(logits[-1], temperature, g)  # (1,)
        out.append(int(next_id))
        logits, h = model(next_id[None], h)  # one step: (1, 1, V)
    return prompt + vocab.decode(np.array(out))


for temperature in (0.5, 1.0, 1.5):
    print(f"tau = {temperature}: {sample_text(model, 'The ', 80, temperature)!r}")

# %% [markdown]
# A low temperature $\tau$ keeps to the commonest patterns (and repeats them); a high one spreads
# the probability over rarer characters. Counted over longer samples:

# %%
variety = {tau: len(set(sample_text(model, "The ", 400, tau, seed=1))) for tau in (0.5, 1.5)}
print(f"distinct characters in 400 sampled: tau = 0.5: {variety[0.5]}, tau = 1.5: {variety[1.5]}")
assert variety[0.5] < variety[1.5]

# %% [markdown]
# ### Exercise 4 (2 points, about 10 minutes): the loss of a whole sequence
#
# Section 5 trained with `next_token_loss`, which is handed inputs and targets already
# shifted by one character. Here you write the loss from the model's raw outputs. The model
# reads `ids (T, B)` and returns `logits (T, B, V)`; `logits[t]` has seen `ids[0..t]` and
# predicts the **next** character, `ids[t + 1]`. So the last step has nothing to predict, and
# the loss is the mean, over the $(T-1) B$ predictions, of
#
# $$-\log \operatorname{softmax}(o_t)_{y} = -\Big(o_{t,y} - m_t - \log \sum_j e^{o_{t,j} - m_t}\Big),
#   \qquad y = \texttt{ids}[t+1],\; m_t = \max_j o_{t,j}.$$
#
# Write `my_sequence_loss(logits, ids)` with torch operations (not `cross_entropy` or
# `log_softmax`: the point is to write them), returning a 0-d tensor, so that it could train
# a model. Subtract $m_t$: logits of 1000 must not overflow.

# %% nbgrader={"grade": false, "grade_id": "sequence_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_sequence_loss(logits, ids):
    """Mean next-character cross-entropy (nats): logits (T, B, V) after reading ids (T, B); a 0-d tensor."""
    ### BEGIN SOLUTION
    z = logits[:-1]  # (T - 1, B, V): the steps that have a next character
    z = z - z.max(dim=-1, keepdim=True).values
    log_p = z - z.exp().sum(dim=-1, keepdim=True).log()  # (T - 1, B, V)
    return -log_p.gather(-1, ids[1:, :, None]).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sequence_loss_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Compares with course_utils.rnn.sequence_loss on small and on large logits, and names the
# usual mistakes (targets not shifted, the wrong axis, a sum instead of a mean, overflow).
from course_utils.exercises.rnn import check_sequence_loss

check_sequence_loss(my_sequence_loss)


# %% nbgrader={"grade": true, "grade_id": "sequence_loss_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_sequence_loss(my_sequence_loss, seed=7)
_ids = torch.from_numpy(val_ids[:65].copy()).reshape(13, 5)  # (T, B): real text
_V = int(val_ids.max()) + 1
_logits = 4 * torch.randn(13, 5, _V, dtype=torch.float64, generator=torch.Generator().manual_seed(7))  # (T, B, V)
check_close("my_sequence_loss on real text, (T, B, V) = (13, 5, vocabulary)", my_sequence_loss(_logits, _ids),
            torch.nn.functional.cross_entropy(_logits[:-1].reshape(-1, _V), _ids[1:].reshape(-1)))
### END HIDDEN TESTS

# %% [markdown]
# The course's `sequence_loss` computes the same thing. Because `logits[t]` depends only on
# `ids[0..t]`, running the model on the whole chunk and dropping the last step gives exactly
# the loss `next_token_loss` computes from the pre-shifted pair `(ids[:-1], ids[1:])`:

# %%
from course_utils.rnn import sequence_loss

chunk = torch.from_numpy(val_ids[: 33 * 8].copy()).reshape(8, 33).T.to(device)  # (T = 33, B = 8)
with torch.no_grad():
    whole = sequence_loss(model(chunk)[0], chunk)
    shifted = next_token_loss(model, (chunk[:-1], chunk[1:]))
print(f"sequence_loss on the whole chunk: {whole.item():.4f}; next_token_loss on the shifted pair: {shifted.item():.4f}")
check_close("sequence_loss vs next_token_loss", whole, shifted, rtol=1e-5, atol=1e-6)

# %% [markdown]
# ### Exercise 5 (3 points, about 15 minutes): train a char RNN that beats the bigram model
#
# An open task, graded by what your choice achieves. Choose the hidden size, Adam's learning
# rate and the window length `seq_len` (the $T$ of the training chunks) so that a `CharRNN`
# trained for **150 steps** on batches of 32 random windows reaches a validation loss below
# the bigram model's: section 5's smoothed count estimate, a strong model without memory. The check trains
# with your choice (seeded, on the CPU, a few seconds) and measures the loss on windows of 64
# held-out characters; the hidden check holds out another tenth of the text and uses another
# seed, so choose with some margin.
#
# Allowed: `hidden_size` 4..128, `lr` 1e-5..0.1, `seq_len` 2..32. Try candidates with
# `char_rnn_config_loss(config, seed=...)` (it returns the validation loss) and
# `bigram_val_loss(seed)` (the target), both in `course_utils.rnn`. Section 5's model, for a
# start, used 300 steps; you get half as many.

# %% nbgrader={"grade": false, "grade_id": "char_rnn_config", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_char_rnn_config():
    """Return {"hidden_size": int, "lr": float, "seq_len": int} for 150 steps of CharRNN training."""
    ### BEGIN SOLUTION
    return {"hidden_size": 128, "lr": 1e-2, "seq_len": 32}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "char_rnn_config_test", "locked": true, "points": 1.5, "schema_version": 3, "solution": false, "task": false}
# Trains a CharRNN with your choice (seed 0, the last tenth of the text held out) and says
# how far its validation loss is from the bigram model's.
from course_utils.exercises.rnn import check_char_rnn_config

check_char_rnn_config(my_char_rnn_config())


# %% nbgrader={"grade": true, "grade_id": "char_rnn_config_hidden_test", "locked": true, "points": 1.5, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_char_rnn_config(my_char_rnn_config(), seed=1)
check_char_rnn_config(my_char_rnn_config(), seed=2)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - An RNN keeps a hidden state $h_t = \tanh(W_{xh} x_t + W_{hh} h_{t-1} + b_h)$ and reads a
#   sequence one step at a time; outputs are $y_t = g(W_{hy} h_t + b_y)$.
# - Unfolded through time it is a deep network whose layers **share** their weights.
# - Batched shapes: `x (T, B, I)`, states `(B, H)`, weights output-by-input; with rows the
#   products become `x_t @ W_xh.T`. `torch.nn.RNN` adds two biases, `b_ih + b_hh` = our `b_h`.
# - Our numpy and PyTorch versions match `torch.nn.RNN` to float32 rounding (printed above),
#   and a small RNN trained on real text beats every model without memory.
# - The loss of a sequence pairs `logits[t]` with the **next** character `ids[t + 1]`, and
#   averages $-\log \operatorname{softmax}$ over every prediction, computed with the max subtracted.
#
# Next: **02 · BPTT**, how the gradient flows back through the unrolled graph, and why it
# vanishes or explodes.

# %%
report_run_time()
