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
# # 08e · Rotary positions and length extrapolation
#
# **Objectives.** By the end of this notebook you will be able to
# 1. build **rotary position embeddings** (RoPE; Su et al., 2021, "RoFormer"), which rotate
#    queries and keys instead of adding a vector to the input, and check them against complex
#    multiplication in float64;
# 2. show numerically that the rotated score $\tilde q_m \cdot \tilde k_n$ depends on the
#    positions only through $m - n$, and name the two ways of pairing features;
# 3. measure **length extrapolation**: tiny GPTs with learned, sinusoidal and rotary positions,
#    trained on windows of $T$ characters and scored on $T$, $2T$ and $4T$, over three seeds;
# 4. write causal attention with rotary positions (Exercise 1).
#
# The helpers live in `course_utils/rope.py`; the blocks and the sinusoidal encodings are
# notebook 08's (`course_utils/transformer.py`), attention is notebook 07's
# (`course_utils/self_attention.py`), and the text is the course's corpus (`course_utils/shared/lm.py`).

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

from course_utils import check_close, report_run_time, seed_everything, start_notebook
from course_utils.rope import (
    PAIRINGS,
    PositionsGPT,
    apply_rope,
    loss_by_position,
    rope_frequencies,
    rotary_attention,
    sliding_window_mask,
)
from course_utils.self_attention import causal_mask, scaled_dot_product_attention
from course_utils.shared.lm import CharData, corpus_data, train_lm
from course_utils.transformer import sinusoidal_positions

device = start_notebook()
seed_everything(0)

# %% [markdown]
# ## 1. Positions as rotations
#
# Notebook 08 told attention where each token sits by **adding** a position vector $p_m$ to
# the token's embedding, learned or sinusoidal. The score between a query at position $m$ and
# a key at position $n$ then mixes content and absolute positions:
# $(W_Q(x_m + p_m)) \cdot (W_K(x_n + p_n))$. RoPE adds nothing. It **rotates** each query and
# each key by an angle proportional to its position, inside attention. The $d$ features of a
# head form $d/2$ pairs; pair $j$ turns by the angle $m\,\theta_j$ with
#
# $$\theta_j = b^{-2j/d}, \qquad j = 0, \dots, d/2 - 1, \qquad b = 10000,$$
#
# the frequencies of 08's sinusoidal encodings. For a pair $(a, b)$ of features of $q_m$:
#
# $$\begin{pmatrix} \tilde a \\ \tilde b \end{pmatrix} = R(m\theta_j) \begin{pmatrix} a \\ b \end{pmatrix},
# \qquad R(\alpha) = \begin{pmatrix} \cos\alpha & -\sin\alpha \\ \sin\alpha & \cos\alpha \end{pmatrix}.$$
#
# Written $\tilde q_m = R_m q_m$ with $R_m$ block-diagonal, and the same for keys,
#
# $$\tilde q_m \cdot \tilde k_n = q_m^\top R_m^\top R_n\, k_n = q_m^\top R_{n-m}\, k_n,$$
#
# since rotations compose by adding angles, $R(\alpha)^\top R(\beta) = R(\beta - \alpha)$. The
# score sees the content of $q_m$ and $k_n$ and their **offset** $m - n$, never $m$ or $n$
# alone. The same in complex numbers: pair $j$ is $z_j = a + i b$ and the rotation is a
# product, $\tilde z_j = z_j\, e^{i m \theta_j}$; then $\tilde q_m \cdot \tilde k_n =
# \operatorname{Re} \sum_j q_j \overline{k_j}\, e^{i (m - n) \theta_j}$.
#
# In code, `rope_frequencies(d)` is $\theta$ and `apply_rope(x)` rotates `x` of shape
# `(..., T, d)`, row $m$ by $m\,\theta_j$. The frequencies for $d = 16$, and the first
# property of a rotation: it keeps every vector's length, at far positions too. (Exercise 1
# asks you to write this rotation yourself; section 5, after it, checks `apply_rope` against
# the complex product.)

# %%
d = 16
theta = rope_frequencies(d)  # (d/2,)
print("theta_j:", ", ".join(f"{t:.4g}" for t in theta.tolist()))
check_close("theta_j", theta, torch.tensor([10000.0 ** (-2 * j / d) for j in range(d // 2)], dtype=torch.float64))

g = torch.Generator().manual_seed(0)
x = torch.randn(2, 4, 40, d, dtype=torch.float64, generator=g)  # (B, h, T, d)
positions = torch.arange(40) * 13  # far positions too
check_close("lengths after the rotation", apply_rope(x, positions).norm(dim=-1), x.norm(dim=-1), rtol=0, atol=1e-12)

# %% [markdown]
# **Which features form a pair** is a convention, and both are in use. RoFormer pairs
# neighbours, $(x_{2j}, x_{2j+1})$, `pairing="interleaved"`: the course's choice, the same
# layout as 08's sinusoidal table (sine in column $2i$, cosine in $2i + 1$). GPT-NeoX, and
# many implementations after it, pair the two halves, $(x_j, x_{j + d/2})$,
# `pairing="halves"`, which needs no strided indexing. Both are valid: one is the other with
# the features permuted, and a permutation of the features is absorbed by the learned $W_Q$
# and $W_K$. What is not valid is **mixing** them, say loading weights trained with one into
# code written for the other, or rotating $q$ one way and $k$ the other. Checked: the halves
# pairing on $x$ is the interleaved one on the permuted features, permuted back.

# %%
perm = torch.cat((torch.arange(0, d, 2), torch.arange(1, d, 2)))  # feature 2j -> j, 2j + 1 -> j + d/2
check_close("halves pairing = interleaved on permuted features",
            apply_rope(x[..., perm], positions, pairing="halves"), apply_rope(x, positions)[..., perm],
            rtol=0, atol=1e-12)
gap = (apply_rope(x, positions, pairing="halves") - apply_rope(x, positions)).abs().max().item()
print(f"but on the same features the two pairings differ by up to {gap:.2f}")
assert gap > 0.5, "the two pairings should rotate different features together"

# %% [markdown]
# ## 2. The score depends only on the offset
#
# Put the **same** query vector $q$ at every position $m$ and the same key $k$ at every
# position $n$, and fill the matrix $S_{mn} = \tilde q_m \cdot \tilde k_n$. If the score depends
# only on $m - n$, $S$ is constant along each diagonal (a Toeplitz matrix). With 08's
# additive sinusoidal positions instead ($q_m = W_Q(x + p_m)$, $k_n = W_K(x + p_n)$ with one
# token embedding $x$), it should not be. Measured: the largest spread along a diagonal.

# %%
T_SHOW = 32
q, k = torch.randn(d, dtype=torch.float64, generator=g), torch.randn(d, dtype=torch.float64, generator=g)
m = torch.arange(T_SHOW)


def diagonal_spread(S: torch.Tensor) -> float:
    """Largest max - min along any diagonal m - n = const of a square matrix."""
    return max((S.diagonal(o).max() - S.diagonal(o).min()).item() for o in range(-len(S) + 1, len(S)))


scores = {}
for pairing in PAIRINGS:
    Q = apply_rope(q.expand(T_SHOW, d), m, pairing=pairing)  # (T, d): row m is q rotated by m theta
    K = apply_rope(k.expand(T_SHOW, d), m, pairing=pairing)
    scores[f"RoPE, {pairing}"] = Q @ K.T  # (T, T)
W_Q, W_K = (torch.randn(d, d, dtype=torch.float64, generator=g) / d**0.5 for _ in range(2))
token = torch.randn(d, dtype=torch.float64, generator=g)
X = token + sinusoidal_positions(T_SHOW, d).double()  # (T, d): one token at every position
scores["sinusoidal, added"] = (X @ W_Q) @ (X @ W_K).T
spread = {name: diagonal_spread(S) for name, S in scores.items()}
for name, s in spread.items():
    print(f"{name:22s} largest spread along a diagonal {s:.2e} (scores range {scores[name].min():.2f} "
          f"to {scores[name].max():.2f})")
assert max(spread["RoPE, interleaved"], spread["RoPE, halves"]) < 1e-12, "RoPE's scores should depend on m - n only"
assert spread["sinusoidal, added"] > 0.1, "added sinusoids should make the score depend on m and n themselves"

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
for ax, (name, S) in zip(axes, scores.items(), strict=True):
    im = ax.imshow(S.numpy(), cmap="RdBu_r")
    ax.set_title(f"q·k, {name}")
    ax.set_xlabel("key position n")
    ax.set_ylabel("query position m")
    fig.colorbar(im, ax=ax, fraction=0.046)
plt.tight_layout()
plt.show()

# %% [markdown]
# RoPE's two matrices are constant along every diagonal, to float64 rounding, in both
# pairings (they differ from each other because different features are paired, not
# because one is wrong). The additive encoding's matrix is not: the same pair of tokens at
# the same distance scores differently at different places in the sequence.

# %% [markdown]
# ## 3. Three tiny GPTs that differ only in their positions
#
# `PositionsGPT` is 08's tiny GPT (embedding, 2 pre-LayerNorm blocks of 4 heads, $D = 64$, a
# read-out) with `positions` one of
#
# - `"learned"`: a trained table of position vectors added to the embeddings (08's default);
# - `"sinusoidal"`: 08's fixed table, added;
# - `"rope"`: nothing added; each block's attention is `RotaryMultiHeadAttention`, 07's
#   `MultiHeadAttention` with `apply_rope` on every head's queries and keys (not on the
#   values: they carry content to the output, and the scores already hold the positions).
#
# Each is trained on windows of $T = 16$ characters and then scored on windows of $T$, $2T$
# and $4T$. **A learned table cannot even index a position it does not have.** Here the table
# is made $4T$ rows long from the start, and the rows $T..4T-1$ are never read in training, so
# they get no gradient and keep their random initialisation (standard deviation 0.02, as
# 08's): beyond $T$ the learned model reads untrained rows. (Another choice would be to reuse
# the last trained row for every later position; either way the model has learned nothing
# about those positions.) The sinusoidal table and the rotations are defined for any position.
#
# Every model trains 300 Adam steps (08's rate, 0.003; batches of 32 windows), the same for
# all, on seeds 0, 1 and 2. The corpus's held-out tail is split in two: the first half is
# the validation text that training reports on (at length $T$), the second half the test
# text the lengths are scored on. Nothing is chosen from any of these numbers: the setting is
# 08's, fixed before the runs, each model is its last step, and the validation loss is only
# printed (the test text is never used to choose anything).

# %%
T, STEPS, SEEDS, LENGTHS, N_WINDOWS = 16, 300, (0, 1, 2), (16, 32, 64), 256
KINDS = ("learned", "sinusoidal", "rope")
corpus = corpus_data()
half = len(corpus.val) // 2
data = CharData(corpus.vocab, corpus.train, corpus.val[:half])  # validation: the first half of the tail
test_ids = corpus.val[half:]  # test: the second half, scored at every length
print(f"training {len(data.train):,}, validation {len(data.val):,}, test {len(test_ids):,} characters")

models, val_bits, start_tables = {}, {}, {}
for kind in KINDS:
    for seed in SEEDS:
        torch.manual_seed(seed)
        model = PositionsGPT(corpus.vocab.size, max(LENGTHS), kind).to(device)
        start_tables[kind, seed] = model.pos.detach().clone()
        run = train_lm(model, data, steps=STEPS, context=T, seed=seed, device=device, eval_every=STEPS,
                       progress=False)
        models[kind, seed] = model
        val_bits[kind, seed] = run.val_losses[-1] / np.log(2)
    print(f"{kind:10s} validation at T = {T}: " + ", ".join(f"{val_bits[kind, s]:.3f}" for s in SEEDS)
          + " bits/char (seeds 0-2)")
untouched = all(torch.equal(models["learned", s].pos[T:], start_tables["learned", s][T:]) for s in SEEDS)
print("learned rows T..4T-1 unchanged by training:", untouched)
assert untouched, "rows the training windows never reach should get no gradient"

# %% [markdown]
# Each model scores 256 windows of the test text, the same windows for every model, at each
# length $L$: the mean next-character loss over all $L$ positions, in bits per character
# (`loss_by_position`, whose curves the plot below shows). The table gives the mean over the
# three seeds and their range.

# %%
LOG2 = np.log(2)
curves = {(kind, seed, L): loss_by_position(models[kind, seed], test_ids, L, N_WINDOWS).numpy() / LOG2
          for kind in KINDS for seed in SEEDS for L in LENGTHS}  # (L,) bits per char at each position
bits = {(kind, L): np.array([curves[kind, s, L].mean() for s in SEEDS]) for kind in KINDS for L in LENGTHS}
print(f"{'positions':12s}" + "".join(f"{'L = ' + str(L):>22s}" for L in LENGTHS))
for kind in KINDS:
    print(f"{kind:12s}" + "".join(f"{bits[kind, L].mean():10.3f} ({bits[kind, L].min():.2f}-{bits[kind, L].max():.2f})"
                                  for L in LENGTHS))

# %%
fig, ax = plt.subplots(figsize=(7, 3.6))
L = max(LENGTHS)
for kind in KINDS:
    c = np.array([curves[kind, s, L] for s in SEEDS])  # (seeds, L)
    line, = ax.plot(np.arange(L), c.mean(0), label=kind)
    ax.fill_between(np.arange(L), c.min(0), c.max(0), color=line.get_color(), alpha=0.25)
ax.axvline(T - 0.5, color="gray", ls=":", label=f"trained length T = {T}")
ax.set_xlabel("position in a window of 4T characters")
ax.set_ylabel("loss (bits/char), seeds 0-2")
ax.set_title("Loss at each position, full causal attention")
ax.legend()
plt.show()

# %% [markdown]
# Read at the trained length first, then beyond it. The claims, each asserted on the numbers
# above (the per-position curves give the loss on positions $T..2T-1$ and $2T..4T-1$):

# %%
def region(kind: str, lo: int, hi: int) -> np.ndarray:
    """(seeds,) mean loss over positions lo..hi-1 of the 4T windows."""
    return np.array([curves[kind, s, 4 * T][lo:hi].mean() for s in SEEDS])


near, far = {kind: region(kind, T, 2 * T) for kind in KINDS}, {kind: region(kind, 2 * T, 4 * T) for kind in KINDS}
for kind in KINDS:
    print(f"{kind:10s} positions 0..T-1 {region(kind, 0, T).mean():.3f}, T..2T-1 {near[kind].mean():.3f}, "
          f"2T..4T-1 {far[kind].mean():.3f} bits/char")
gap = bits["sinusoidal", T] - bits["rope", T]  # (seeds,)
print("at length T, sinusoidal minus RoPE, seed by seed:", ", ".join(f"{x:.3f}" for x in gap), "bits/char")
# at the trained length: RoPE below sinusoidal seed by seed (same batches), both below learned on every seed
assert (bits["rope", T] < bits["sinusoidal", T]).all()
assert max(bits["rope", T].max(), bits["sinusoidal", T].max()) < bits["learned", T].min()
# at 4T every model is worse than at T, on every seed: none of the three extrapolates
for kind in KINDS:
    assert bits[kind, 4 * T].min() > bits[kind, T].max(), kind
# just beyond T (positions T..2T-1) RoPE degrades least, on every seed
assert near["rope"].max() < min(near["learned"].min(), near["sinusoidal"].min())
# far beyond (2T..4T-1) RoPE loses that lead: well above its own T..2T-1 loss on every seed, and above the
# learned model's on average over the seeds
assert (far["rope"] - near["rope"]).min() > 0.4
assert far["rope"].mean() > far["learned"].mean()

# %% [markdown]
# What was measured: at the trained length RoPE has the lowest loss, below the sinusoidal
# model on each seed (by the small margins printed above) and both below the learned table
# on every seed at this small budget. At $4T$ each of the three is worse
# than at $T$, on every seed. So **none of them extrapolates** in this test. RoPE degrades
# least just past $T$ (positions $T..2T-1$, every seed), but on positions $2T..4T-1$ its loss
# rises by more than 0.4 bits on every seed and, averaged over the seeds, ends above the
# learned model's, whose rows there are untrained small noise. RoPE there meets offsets
# $m - n$ up to $4T - 1$, while training showed it $0..T-1$ only: a pair whose angle
# $(T-1)\,\theta_j$ stayed below a full turn in training now takes angles it never took.
# Counted for this model's heads ($d = D / h = 16$):

# %%
d_head = models["rope", 0].embed.embedding_dim // models["rope", 0].blocks[0].attn.n_heads  # 64 / 4
turns = ((T - 1) * rope_frequencies(d_head) / (2 * np.pi)).numpy()  # (d/2,): full turns seen in training
unseen = int((turns < 1).sum())
print("turns of each pair over offsets 0..T-1:", ", ".join(f"{t:.3g}" for t in turns))
print(f"{unseen} of {d_head // 2} pairs never completed a turn in training; at offset 4T - 1 they turn "
      f"{(4 * T - 1) / (T - 1):.1f} times further")
assert unseen >= d_head // 4, "most pairs should meet new angles beyond T"

# %% [markdown]
# This matches what others found on full language models (Press et al., 2022, "Train short,
# test long", which proposes ALiBi; Chen et al., 2023, position interpolation): RoPE by
# itself does not make a model read longer texts.
#
# ## 4. What relative positions do buy: a sliding window
#
# A relative encoding has one thing no absolute one can offer. Let each position attend only
# to its last $T$ keys (`sliding_window_mask`, a band of width $T$ under the diagonal). Every
# query then meets offsets $0..T-1$ only, exactly those of training, and with RoPE the scores
# depend on nothing else: a model trained at $T$ reads any length as it read length $T$,
# with a full window of context at every position past the first $T$. Learned and
# sinusoidal models, windowed the same way, still meet absolute positions they never saw.

# %%
print(sliding_window_mask(6, 3).int())  # query m sees keys m-2..m
windowed = {(kind, s): loss_by_position(models[kind, s], test_ids, 4 * T, N_WINDOWS, window=T).numpy() / LOG2
            for kind in KINDS for s in SEEDS}
beyond = {kind: np.array([windowed[kind, s][T:].mean() for s in SEEDS]) for kind in KINDS}
for kind in KINDS:
    print(f"{kind:10s} window of T keys, positions T..4T-1: {beyond[kind].mean():.3f} "
          f"({beyond[kind].min():.2f}-{beyond[kind].max():.2f}); at length T: {bits[kind, T].mean():.3f} bits/char")

fig, ax = plt.subplots(figsize=(7, 3.6))
for kind in KINDS:
    c = np.array([windowed[kind, s] for s in SEEDS])  # (seeds, 4T)
    line, = ax.plot(np.arange(4 * T), c.mean(0), label=kind)
    ax.fill_between(np.arange(4 * T), c.min(0), c.max(0), color=line.get_color(), alpha=0.25)
ax.axvline(T - 0.5, color="gray", ls=":", label=f"T = {T}")
ax.set_xlabel("position in a window of 4T characters")
ax.set_ylabel("loss (bits/char), seeds 0-2")
ax.set_title(f"Each position sees its last T = {T} keys")
ax.legend()
plt.show()

# %% [markdown]
# Asserted: windowed, RoPE's loss on positions $T..4T-1$ is **below** its own loss at length
# $T$ on every seed (each of those positions has a full $T$ characters of context, while the
# score at length $T$ averages over positions with 1 to $T$), and below both absolute
# encodings windowed; the learned and sinusoidal models stay worse there than at length $T$.

# %%
for s_i, s in enumerate(SEEDS):
    assert beyond["rope"][s_i] < bits["rope", T][s_i], s
assert beyond["rope"].max() < min(beyond["learned"].min(), beyond["sinusoidal"].min())
for kind in ("learned", "sinusoidal"):
    assert beyond[kind].min() > bits[kind, T].max(), kind

# %% [markdown]
# ### Exercise 1 (2 points, about 15 minutes): causal attention with rotary positions
#
# Write `my_rotary_attention(q, k, v)`: `q`, `k`, `v` of shape `(B, h, T, d)`, positions
# $0..T-1$, returning the `(B, h, T, d)` output of causal attention whose queries and keys are
# rotated as in section 1: neighbours $(x_{2j}, x_{2j+1})$ form pair $j$, which turns by
# $m\,\theta_j$ with $\theta_j = 10000^{-2j/d}$. Build the angles and the rotation yourself from
# torch operations (not `apply_rope`, `rotary_attention` or `rope_frequencies`); for the
# attention itself you may call 07's `scaled_dot_product_attention` and `causal_mask`
# (imported above). The check compares with a float64 reference written with complex numbers
# and names the usual slips: rotating by $-m\theta_j$, a wrong exponent or base in $\theta_j$,
# rotating the values, rotating only $q$ (or only $k$), pairing the halves, mixing the two
# pairings, a missing mask.

# %% nbgrader={"grade": false, "grade_id": "rotary_attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_rotary_attention(q, k, v):
    """Causal attention with RoPE on q and k: q, k, v (B, h, T, d) -> (B, h, T, d)."""
    ### BEGIN SOLUTION
    T, d = q.shape[-2:]
    theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=q.dtype) / d)  # (d/2,)
    angle = torch.arange(T, dtype=q.dtype)[:, None] * theta  # (T, d/2)
    cos, sin = angle.cos(), angle.sin()

    def rotate(x):
        a, b = x[..., 0::2], x[..., 1::2]  # (B, h, T, d/2) each
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)

    return scaled_dot_product_attention(rotate(q), rotate(k), v, causal_mask(T, q.device))[0]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "rotary_attention_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from course_utils.exercises.rope import check_rotary_attention

check_rotary_attention(my_rotary_attention)  # names: -theta, exponent or base, values rotated, only q, pairings


# %% nbgrader={"grade": true, "grade_id": "rotary_attention_hidden_test", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Hidden tests (the other half of this exercise's points): they run when your notebook is graded.
### BEGIN HIDDEN TESTS
check_rotary_attention(my_rotary_attention, seed=1)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Two checks, after the exercise
#
# Exercise 1's rotation is the pair form, with cosines and sines. Section 1's complex form gives
# an independent reference: pair $j$ as $z_j = x_{2j} + i\,x_{2j+1}$, times $e^{i m \theta_j}$,
# back to real pairs. Written in float64, it matches `apply_rope` to rounding, at the far
# positions of section 1 ($0, 13, \dots, 507$):

# %%
def complex_rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Reference: pair (x_2j, x_2j+1) as x_2j + i x_2j+1, times e^(i m theta_j), back to real pairs."""
    d = x.shape[-1]
    theta = 10000.0 ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d)  # (d/2,)
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())  # (..., T, d/2)
    turn = torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64),
                       positions.double()[:, None] * theta)  # (T, d/2): e^(i m theta_j)
    return torch.view_as_real(z * turn).flatten(-2)  # (..., T, d)


check_close("apply_rope(x)", apply_rope(x, positions), complex_rope(x, positions), rtol=0, atol=1e-12)

# %% [markdown]
# A consequence of section 2's result worth knowing: shifting **every** position by the same
# amount changes nothing, so rotary attention cannot tell where a window starts. Causal
# attention with RoPE at positions $0..T-1$ (`rotary_attention`) and at $40..40+T-1$ (the
# complex rotation above, then 07's attention) gives the same output:

# %%
q4, k4, v4 = (torch.randn(2, 4, 12, d, dtype=torch.float64, generator=g) for _ in range(3))  # (B, h, T, d)
out_0 = rotary_attention(q4, k4, v4, causal_mask(12))[0]
at_40 = torch.arange(40, 52)
out_40 = scaled_dot_product_attention(complex_rope(q4, at_40), complex_rope(k4, at_40), v4, causal_mask(12))[0]
check_close("output at positions 40.. against 0..", out_40, out_0, rtol=0, atol=1e-10)

# %% [markdown]
# ## Summary
#
# - **RoPE** (Su et al., 2021) rotates each pair of query and key features by $m\,\theta_j$,
#   $\theta_j = 10000^{-2j/d}$; checked here against complex multiplication in float64. It
#   is applied to queries and keys only, inside every attention layer.
# - **Relative by construction:** $\tilde q_m \cdot \tilde k_n = q_m^\top R_{n-m} k_n$, so the
#   scores depend on $m - n$ only (constant along diagonals to $10^{-12}$), in either pairing:
#   neighbours $(x_{2j}, x_{2j+1})$, RoFormer's and the course's, or halves
#   $(x_j, x_{j+d/2})$, GPT-NeoX's. Pick one and use it throughout.
# - **Length extrapolation, measured** (2-block tiny GPTs, 300 steps at $T = 16$, three seeds):
#   RoPE was best at the trained length; at $4T$ all three encodings were worse than at $T$,
#   RoPE least so just past $T$ and, on average, worse than the learned table far past it.
#   RoPE alone does not extrapolate. With a sliding window of $T$ keys, RoPE read a window of $4T$ with a lower
#   loss than at $T$, which neither absolute encoding could.
#
# Next: **09 · Modern RNNs**, recurrent models that train in parallel.

# %%
report_run_time()
