"""Notebook 02, sections 1-7 and its five exercises: backpropagation through time for the vanilla RNN, in numpy.

The RNN is that of :mod:`course_utils.rnn`.

Forward (t = 0 .. T-1, batch of B, see :mod:`course_utils.rnn` for shapes)::

    a_t = x_t W_xh^T + h_{t-1} W_hh^T + b_h      h_t = tanh(a_t)
    o_t = h_t W_hy^T + b_y                        L = (1/B) sum_b sum_t L_t

Backward, from the last step to the first, with ``dh_t`` the *total* gradient dL/dh_t::

    do_t   = dL/do_t                             (softmax - one-hot, or y - target)
    dh_t   = do_t W_hy + da_{t+1} W_hh           (da_T = 0)
    da_t   = dh_t * (1 - h_t**2)                 (tanh' = 1 - tanh**2)
    dW_hy  = sum_t do_t^T h_t      db_y = sum_t do_t
    dW_hh  = sum_t da_t^T h_{t-1}  dW_xh = sum_t da_t^T x_t   db_h = sum_t da_t
    dh_init = da_0 W_hh

Also here: the losses with their gradients, central finite differences, gradient clipping
(by global norm and by value), the norm of dL/dh_k as the gradient flows back in time, the
clipping experiment of section 5 (:func:`clipping_run`: a PyTorch character RNN started at
spectral radius 2, trained with SGD, clipped or not), and the checks of the exercises
(:func:`check_rnn_cell_backward`, :func:`check_rnn_backward`, :func:`check_clip_grad_norm`,
:func:`check_clip_settings`), which name the usual mistakes.
Gradients are dicts keyed like the parameters (``"W_xh"``, ``"W_hh"``, ``"b_h"``, ...).

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.bptt`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from .core.device import get_device
from .core.seed import seed_everything
from .core.shapes import require_shape
from .core.training import fit
from .rnn import Params, one_hot, rnn_forward, rnn_output
from .shared.lm import CharData, RecurrentLM, lm_batches, next_token_loss, validation_windows

Grads = dict[str, np.ndarray]


# ----------------------------------------------------------------------------- losses


def cross_entropy_loss(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy summed over time, averaged over the batch, and dL/dlogits.

    Args:
        logits: ``(T, B, V)``; targets: class ids ``(T, B)``.

    Returns:
        ``(L, dlogits)`` with ``L = (1/B) sum_{t,b} -log softmax(o_t)[y_t]`` and
        ``dlogits = (softmax(o) - onehot(y)) / B``, shape ``(T, B, V)``.
    """
    require_shape("logits", logits, ("T", "B", "V"))
    require_shape("targets", targets, logits.shape[:2])
    T, B, V = logits.shape
    if not np.issubdtype(np.asarray(targets).dtype, np.integer):
        raise TypeError(f"targets are class ids (integers), got dtype {np.asarray(targets).dtype}")
    if targets.size and (targets.min() < 0 or targets.max() >= V):
        raise ValueError(f"targets are class ids in 0..{V - 1} (V = {V}); got values from {targets.min()} "
                         f"to {targets.max()}: a negative id would silently index from the end")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # (T, B, V)
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]  # (T, B)
    dlogits = np.exp(log_probs)
    np.put_along_axis(dlogits, targets[..., None], np.take_along_axis(dlogits, targets[..., None], -1) - 1, -1)
    return float(-picked.sum() / B), dlogits / B


def mse_loss(y: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Half squared error summed over time and outputs, averaged over the batch, and dL/dy.

    ``L = (1/B) sum_{t,b} 1/2 ||y_t - target_t||^2``, so ``dL/dy = (y - target) / B``.
    Shapes: ``y`` and ``targets`` both ``(T, B, O)``.
    """
    require_shape("y", y, ("T", "B", "O"))
    require_shape("targets", targets, y.shape)
    B = y.shape[1]
    diff = y - targets
    return float(0.5 * (diff**2).sum() / B), diff / B


LOSSES: dict[str, Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]] = {
    "cross_entropy": cross_entropy_loss,
    "mse": mse_loss,
}


# ----------------------------------------------------------------------------- backward


def rnn_cell_backward(
    dh_t: np.ndarray,
    h_t: np.ndarray,
    x_t: np.ndarray,
    h_prev: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
) -> Grads:
    """Backward through one step ``h_t = tanh(x_t W_xh^T + h_prev W_hh^T + b_h)``.

    Args:
        dh_t: the total gradient dL/dh_t, ``(B, H)``.
        h_t: the step's output ``(B, H)`` (tanh' is computed from it: ``1 - h_t**2``).
        x_t ``(B, I)``, h_prev ``(B, H)``, W_xh ``(H, I)``, W_hh ``(H, H)``: the step's inputs.

    Returns:
        ``{"x_t": (B, I), "h_prev": (B, H), "W_xh": (H, I), "W_hh": (H, H), "b_h": (H,)}``,
        the gradient of L with respect to each (this step's share, for the weights).
    """
    require_shape("W_xh", W_xh, ("hidden_size", "input_size"))
    H, n_in = W_xh.shape
    require_shape("W_hh", W_hh, (H, H))
    require_shape("x_t", x_t, ("B", n_in))
    B = x_t.shape[0]
    for name, value in (("dh_t", dh_t), ("h_t", h_t), ("h_prev", h_prev)):
        require_shape(name, value, (B, H))
    da = dh_t * (1.0 - h_t**2)  # (B, H)
    return {"x_t": da @ W_xh, "h_prev": da @ W_hh, "W_xh": da.T @ x_t, "W_hh": da.T @ h_prev, "b_h": da.sum(axis=0)}


def rnn_backward(
    dhs: np.ndarray,
    x: np.ndarray,
    h_init: np.ndarray,
    hs: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
) -> Grads:
    """BPTT through a whole sequence.

    Args:
        dhs: dL/dh_t coming *from the outputs* at each step (not through h_{t+1}), ``(T, B, H)``.
        x ``(T, B, I)``, h_init ``(B, H)``, hs ``(T, B, H)``: the forward pass's inputs and states.

    Returns:
        ``{"W_xh", "W_hh", "b_h", "h_init", "x"}``: gradients summed over time.
    """
    require_shape("hs", hs, ("T", "B", W_hh.shape[0]))
    require_shape("dhs", dhs, hs.shape)
    require_shape("x", x, (*hs.shape[:2], W_xh.shape[1]))
    require_shape("h_init", h_init, hs.shape[1:])
    T = hs.shape[0]
    h_prevs = np.concatenate([h_init[None], hs[:-1]])  # (T, B, H): h_{t-1} for every t
    das = np.empty_like(hs)  # (T, B, H)
    dh_next = np.zeros_like(h_init)  # the gradient arriving from step t+1, (B, H)
    for t in reversed(range(T)):
        da = (dhs[t] + dh_next) * (1.0 - hs[t] ** 2)  # (B, H)
        das[t] = da
        dh_next = da @ W_hh  # dL/dh_{t-1} through the recurrence
    flat = das.reshape(-1, das.shape[-1])  # (T*B, H): sum over time and batch in one product
    return {
        "W_xh": flat.T @ x.reshape(-1, x.shape[-1]),
        "W_hh": flat.T @ h_prevs.reshape(-1, h_prevs.shape[-1]),
        "b_h": flat.sum(axis=0),
        "h_init": dh_next,
        "x": das @ W_xh,
    }


def rnn_loss_and_grads(
    params: Params,
    x: np.ndarray,
    h_init: np.ndarray,
    targets: np.ndarray,
    loss: str = "cross_entropy",
) -> tuple[float, Grads, np.ndarray]:
    """Forward, loss and BPTT for the RNN with an output layer.

    Args:
        params: ``{"W_xh", "W_hh", "b_h", "W_hy", "b_y"}`` (see :func:`course_utils.rnn.init_rnn_params`).
        x ``(T, B, I)``, h_init ``(B, H)``; targets ``(T, B)`` ids for ``"cross_entropy"``,
        ``(T, B, O)`` values for ``"mse"``.

    Returns:
        ``(L, grads, hs)``: the loss, gradients for every parameter plus ``"h_init"``, and
        the hidden states ``(T, B, H)`` (``hs[-1]`` carries over to the next chunk).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    hs = rnn_forward(x, h_init, params["W_xh"], params["W_hh"], params["b_h"])  # (T, B, H)
    out = rnn_output(hs, params["W_hy"], params["b_y"])  # (T, B, O)
    value, dout = LOSSES[loss](out, targets)
    flat_dout = dout.reshape(-1, dout.shape[-1])  # (T*B, O)
    grads = {
        "W_hy": flat_dout.T @ hs.reshape(-1, hs.shape[-1]),
        "b_y": flat_dout.sum(axis=0),
    }
    dhs = dout @ params["W_hy"]  # (T, B, H)
    back = rnn_backward(dhs, x, h_init, hs, params["W_xh"], params["W_hh"])
    grads.update(W_xh=back["W_xh"], W_hh=back["W_hh"], b_h=back["b_h"], h_init=back["h_init"])
    return value, grads, hs


def char_rnn_loss_and_grads(
    params: Params, ids: np.ndarray, targets: np.ndarray, h_init: np.ndarray
) -> tuple[float, Grads]:
    """The char-RNN's whole loss and its gradients: one-hot inputs, the RNN, softmax cross-entropy at every step.

    ``ids``, ``targets``: ``(T, B)`` character ids (the targets are the ids one step later);
    ``params`` as :func:`rnn_loss_and_grads` with ``W_xh (H, V)``. Returns ``(L, grads)`` with
    ``L`` summed over time and averaged over the batch, ``grads`` for the five parameters.
    """
    x = one_hot(ids, params["W_xh"].shape[1])  # (T, B, V)
    value, grads, _ = rnn_loss_and_grads(params, x, h_init, targets)
    grads.pop("h_init")
    return value, grads


# ----------------------------------------------------------------------------- gradient checks


def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Central differences ``(f(w + eps) - f(w - eps)) / (2 eps)`` for every entry of ``array``.

    ``f`` takes no argument and reads ``array``, which is perturbed in place and restored.
    """
    if array.dtype != np.float64:
        raise ValueError(f"numerical gradients need float64, got {array.dtype}")
    grad = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        old = array[i]
        array[i] = old + eps
        f_plus = f()
        array[i] = old - eps
        f_minus = f()
        array[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / max(||a||, ||b||)`` (0 when both are zero): scale-free, unlike max |a - b|."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def random_chunk_lengths(length: int, mean_k: float, rng: np.random.Generator) -> list[int]:
    """Randomized truncation: cut after each step with probability ``1 / mean_k``; the chunk lengths (sum ``length``).

    The lengths are geometric with mean about ``mean_k``, so a gradient now and then reaches far
    further back than ``mean_k`` steps (d2l, section 9.7; Tallec & Ollivier 2017 also reweight
    the gradient to make it unbiased, which this does not).
    """
    cuts = np.flatnonzero(rng.random(length - 1) < 1.0 / mean_k) + 1  # positions 1..length-1 to cut before
    return np.diff(np.concatenate([[0], cuts, [length]])).astype(int).tolist()


# ----------------------------------------------------------------------------- clipping


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """The L2 norm of all gradients together, as if flattened into one vector."""
    return float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))


def clip_grad_norm(grads: Mapping[str, np.ndarray], max_norm: float, eps: float = 1e-6) -> tuple[Grads, float]:
    """Rescale all gradients by ``min(1, max_norm / (norm + eps))``; keeps their direction.

    The same rule as ``torch.nn.utils.clip_grad_norm_``. Returns ``(clipped copies, norm before)``.
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    norm = global_norm(grads)
    scale = min(1.0, max_norm / (norm + eps))
    return {k: g * scale for k, g in grads.items()}, norm


def clip_grad_value(grads: Mapping[str, np.ndarray], clip_value: float) -> Grads:
    """Clamp every entry to ``[-clip_value, clip_value]`` (like ``torch.nn.utils.clip_grad_value_``).

    Unlike clipping by norm, this can change the gradient's direction.
    """
    if clip_value <= 0:
        raise ValueError(f"clip_value must be positive, got {clip_value}")
    return {k: np.clip(g, -clip_value, clip_value) for k, g in grads.items()}


# ----------------------------------------------------------------------------- gradient flow


def scaled_orthogonal(size: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """``radius`` times a random orthogonal matrix: every eigenvalue and singular value has modulus ``radius``."""
    q, r = np.linalg.qr(rng.normal(size=(size, size)))
    return radius * q * np.sign(np.diag(r))  # sign fix: uniformly distributed orthogonal q


def hidden_grad_norms(
    x: np.ndarray,
    h_init: np.ndarray,
    W_xh: np.ndarray,
    W_hh: np.ndarray,
    b_h: np.ndarray,
    dh_last: np.ndarray,
    linear: bool = False,
) -> np.ndarray:
    """How the gradient of a loss at the last step shrinks or grows as it flows back in time.

    Runs the RNN over ``x (T, B, I)``, then back-propagates ``dL/dh_{T-1} = dh_last (B, H)``
    with no other loss. ``linear=True`` drops the tanh (h_t = a_t) to isolate W_hh's effect.

    Returns:
        ``norms (T + 1,)``: ``norms[j]`` is the mean over the batch of ``||dL/dh_{T-1-j}||``
        at time lag ``j``; ``norms[T]`` is the gradient reaching ``h_init``.
    """
    if linear:
        require_shape("x", x, ("T", "B", W_xh.shape[1]))
        hs = np.empty((x.shape[0], x.shape[1], W_hh.shape[0]))
        h = h_init
        for t in range(x.shape[0]):
            h = x[t] @ W_xh.T + h @ W_hh.T + b_h
            hs[t] = h
    else:
        hs = rnn_forward(x, h_init, W_xh, W_hh, b_h)  # (T, B, H)
    require_shape("dh_last", dh_last, hs.shape[1:])
    T = hs.shape[0]
    norms = np.empty(T + 1)
    dh = dh_last  # dL/dh_{T-1}
    for j in range(T + 1):
        norms[j] = np.linalg.norm(dh, axis=-1).mean()
        if j < T:
            t = T - 1 - j
            da = dh if linear else dh * (1.0 - hs[t] ** 2)
            dh = da @ W_hh  # dL/dh_{t-1}
    return norms


# ----------------------------------------------------------------------------- clipping, measured


@dataclass
class ClipRun:
    """What :func:`clipping_run` recorded: one entry per SGD step."""

    lr: float
    max_norm: float | None
    losses: list[float] = field(default_factory=list)  # training loss per step (nats/char)
    grad_norms: list[float] = field(default_factory=list)  # global gradient norm per step, BEFORE clipping
    val_loss: float = math.inf  # after the last step; inf if the run diverged
    diverged_at: int | None = None  # the first step whose loss was not finite

    @property
    def clipped_fraction(self) -> float:
        """The fraction of steps whose gradient norm exceeded ``max_norm`` (0 without clipping)."""
        if self.max_norm is None or not self.grad_norms:
            return 0.0
        return float(np.mean(np.array(self.grad_norms) > self.max_norm))


def exploding_rnn_lm(vocab_size: int, hidden_size: int = 128, embed_size: int = 32, radius: float = 2.0,
                     seed: int = 0) -> RecurrentLM:
    """A character RNN (:class:`~course_utils.shared.lm.RecurrentLM`) whose W_hh starts at ``radius`` x orthogonal.

    With ``radius > 1`` the gradient through many steps can grow like ``radius**k``: the
    first gradients of a 64-character chunk have norms in the hundreds.
    """
    model = RecurrentLM("rnn", vocab_size, embed_size, hidden_size)
    with torch.no_grad():
        W_hh = scaled_orthogonal(hidden_size, radius, np.random.default_rng(seed))  # (H, H)
        model.rnn.weight_hh_l0.copy_(torch.tensor(W_hh, dtype=model.rnn.weight_hh_l0.dtype))
    return model


def clipping_run(data: CharData, lr: float, max_norm: float | None, *, steps: int = 150, seed: int = 0,
                 batch_size: int = 32, seq_len: int = 64, radius: float = 2.0,
                 device: torch.device | None = None, loss_fn: Callable = next_token_loss) -> ClipRun:
    """Train :func:`exploding_rnn_lm` with plain SGD for ``steps`` steps, clipping by global norm or not.

    The batches (random windows of the training text) and the initialisation depend on
    ``seed`` only, so two runs with the same seed differ in ``lr`` and ``max_norm`` alone.
    A run whose loss stops being finite is stopped (``diverged_at``, ``val_loss = inf``).
    ``loss_fn(model, batch)`` is the loss SGD descends (the mean next-character loss unless given);
    the validation loss is always that mean, over the fixed :func:`course_utils.shared.lm.validation_windows`.
    """
    if lr <= 0 or steps < 1 or (max_norm is not None and max_norm <= 0):
        raise ValueError(f"need lr > 0, steps >= 1 and max_norm > 0 or None; got {lr}, {steps}, {max_norm}")
    device = device or get_device()
    batches = lm_batches(data.train, steps, batch_size, seq_len, seed=seed)  # each (B, T)
    seed_everything(seed)
    model = exploding_rnn_lm(data.vocab.size, radius=radius, seed=seed).to(device)
    history = fit(model, batches, loss_fn, torch.optim.SGD(model.parameters(), lr=lr), clip_grad_norm=max_norm,
                  stop_on_divergence=True, device=device, progress=False)
    run = ClipRun(lr, max_norm, history.losses, history.grad_norms, diverged_at=history.diverged_at)
    if run.diverged_at is not None:
        return run
    model.eval()
    with torch.no_grad():
        val = [next_token_loss(model, (x.to(device), y.to(device))).item()
               for x, y in validation_windows(data.val, seq_len, n_batches=4, batch_size=64)]
    run.val_loss = float(np.mean(val)) if np.all(np.isfinite(val)) else math.inf
    return run
