"""Notebook 03, the exercises on :mod:`course_utils.lstm`.

Checks that name the usual mistakes: ``check_lstm_cell``, ``check_lstm_gate_values``.
"""

from __future__ import annotations

import numpy as np

from ..checks import CheckFailed, check_close, check_shape, check_type, name_mistake, refuse_reference
from ..gated import (
    gate_slices,
    read_gate_values,
    reorder_blocks,
    sigmoid,
)
from ..lstm import LSTM_GATES, lstm_cell_numpy


def _lstm_mistakes(x, h_prev, c_prev, W_x, W_h, b) -> dict[str, np.ndarray]:
    """``{hint: stacked (h, c)}`` that the usual wrong LSTM steps return (notebook 03, exercise 1)."""
    h, c, gates = lstm_cell_numpy(x, h_prev, c_prev, W_x, W_h, b)
    i, f, o = gates["i"], gates["f"], gates["o"]
    a_g = (x @ W_x.T + h_prev @ W_h.T + b)[:, gate_slices(h.shape[1])["g"]]  # (B, H)
    c_sigmoid_g = f * c_prev + i * sigmoid(a_g)
    c_forget_h = f * h_prev + i * gates["g"]
    mistakes = {"return (c, h) instead of (h, c)": np.stack([c, h])}
    for read in (("i", "f", "o", "g"), ("i", "g", "f", "o"), ("f", "i", "g", "o")):  # ("i", "g", "f", "o"): TF 1's
        weights = (reorder_blocks(w, read, LSTM_GATES) for w in (W_x, W_h, b))
        h2, c2, _ = lstm_cell_numpy(x, h_prev, c_prev, *weights)
        mistakes[f"read the stacked rows as {', '.join(read)} (PyTorch's order is i, f, g, o)"] = np.stack([h2, c2])
    mistakes |= {
        "compute h = o * c, without the tanh of c": np.stack([o * c, c]),
        "use the old cell state in h (o * tanh(c_prev)) instead of the new c": np.stack([o * np.tanh(c_prev), c]),
        "squash the candidate g with a sigmoid instead of tanh": np.stack([o * np.tanh(c_sigmoid_g), c_sigmoid_g]),
        "multiply the forget gate with h_prev instead of c_prev": np.stack([o * np.tanh(c_forget_h), c_forget_h]),
        "leave out the bias b": np.stack(lstm_cell_numpy(x, h_prev, c_prev, W_x, W_h, 0 * b)[:2]),
    }
    return mistakes


def check_lstm_cell(fn, seed: int = 0) -> None:
    """Test ``fn(x, h_prev, c_prev, W_x, W_h, b) -> (h, c)`` against :func:`lstm_cell_numpy`.

    Fails naming the shape that is wrong or the usual mistake the values match: (c, h)
    returned, another gate order, ``h = o * c``, the old cell state in h, a sigmoid
    candidate, the forget gate on h_prev, no bias.
    """
    refuse_reference(fn, ("lstm_cell_numpy", "lstm_cell_torch", "LSTMCell", "lstm_forward_numpy", "LSTM"))
    rng = np.random.default_rng(seed)
    B, n_in, H = 3, 4, 5
    args = (rng.normal(size=(B, n_in)), rng.normal(size=(B, H)), rng.normal(size=(B, H)),
            rng.normal(size=(4 * H, n_in)), rng.normal(size=(4 * H, H)), rng.normal(size=4 * H))
    result = fn(*[a.copy() for a in args])
    check_type("the result", result, tuple)
    if len(result) != 2:
        raise CheckFailed(f"return two arrays, (h, c); got a tuple of {len(result)}")
    h_got, c_got = result
    check_shape("h", h_got, (B, H))
    check_shape("c", c_got, (B, H))
    h_exp, c_exp, _ = lstm_cell_numpy(*args)
    got = np.stack([np.asarray(h_got, dtype=np.float64), np.asarray(c_got, dtype=np.float64)])
    name_mistake("(h, c)", got, np.stack([h_exp, c_exp]), _lstm_mistakes(*args))
    check_close("c (the new cell state)", c_got, c_exp)
    check_close("h (the new hidden state)", h_got, h_exp)


LSTM_GATE_GOALS = {"hold": (0.0, 1.0, 0.0), "replace": (1.0, 0.0, 1.0), "reveal": (0.0, 1.0, 1.0)}  # goal -> (i, f, o)


_LSTM_GATE_ROLES = {
    "i": "i scales what is written, c = f * c_prev + i * g: i = 0 writes nothing, i = 1 writes all of g",
    "f": "f scales the old memory, c = f * c_prev + i * g: f = 1 keeps c_prev, f = 0 erases it",
    "o": "o scales what is shown, h = o * tanh(c): o = 0 outputs nothing, o = 1 shows tanh(c)",
}


def check_lstm_gate_values(fn, goals: tuple[str, ...] = ("hold", "replace", "reveal"), seed: int = 0) -> None:
    """Test ``fn(goal) -> (i, f, o)``, gate values that make one LSTM step do ``goal`` (notebook 03, exercise 2).

    Runs the step with those gates on random ``c_prev`` and ``g``; fails naming each gate that
    is off and what that gate does.
    """
    rng = np.random.default_rng(seed)
    c_prev, g = rng.normal(size=5), np.tanh(rng.normal(size=5))  # (5,) each
    for goal in goals:
        got = read_gate_values(fn(goal), goal, "ifo", LSTM_GATE_GOALS[goal], _LSTM_GATE_ROLES)
        c = got["f"] * c_prev + got["i"] * g
        h = got["o"] * np.tanh(c)
        c_want = {"hold": c_prev, "replace": g, "reveal": c_prev}[goal]
        h_want = {"hold": np.zeros(5), "replace": np.tanh(g), "reveal": np.tanh(c_prev)}[goal]
        check_close(f"c_t for {goal!r}", c, c_want, atol=0.02, rtol=0.0)
        check_close(f"h_t for {goal!r}", h, h_want, atol=0.02, rtol=0.0)
