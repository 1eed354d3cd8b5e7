"""Notebook 03, the exercises on :mod:`course_utils.lstm`.

Checks that name the usual mistakes: ``check_lstm_cell``, ``check_lstm_gate_values``,
``check_lstm_cell_backward``.
"""

from __future__ import annotations

import numpy as np

from ..core.checks import CheckFailed, check_close, check_shape, check_type, name_mistake, refuse_reference
from ..lstm import (
    LSTM_BACKWARD_NAMES,
    LSTM_GATES,
    lstm_cell_backward_autograd,
    lstm_cell_backward_numpy,
    lstm_cell_cache,
    lstm_cell_numpy,
    lstm_gate_gradients,
)
from ..shared.gated import (
    gate_slices,
    read_gate_values,
    reorder_blocks,
    sigmoid,
)


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
    fn = refuse_reference(fn, ("lstm_cell_numpy", "lstm_cell_torch", "LSTMCell", "lstm_forward_numpy", "LSTM"))
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
    # goal -> (i, f, o): the answers, kept inside the check so that no learner's code can import them
    wanted = {"hold": (0.0, 1.0, 0.0), "replace": (1.0, 0.0, 1.0), "reveal": (0.0, 1.0, 1.0)}
    rng = np.random.default_rng(seed)
    c_prev, g = rng.normal(size=5), np.tanh(rng.normal(size=5))  # (5,) each
    for goal in goals:
        got = read_gate_values(fn(goal), goal, "ifo", wanted[goal], _LSTM_GATE_ROLES)
        c = got["f"] * c_prev + got["i"] * g
        h = got["o"] * np.tanh(c)
        c_want = {"hold": c_prev, "replace": g, "reveal": c_prev}[goal]
        h_want = {"hold": np.zeros(5), "replace": np.tanh(g), "reveal": np.tanh(c_prev)}[goal]
        check_close(f"c_t for {goal!r}", c, c_want, atol=0.02, rtol=0.0)
        check_close(f"h_t for {goal!r}", h, h_want, atol=0.02, rtol=0.0)


def _lstm_backward_mistakes(dh: np.ndarray, dc: np.ndarray, cache: dict[str, np.ndarray]) -> dict[str, tuple]:
    """``{hint: (dx, dh_prev, dc_prev, dW_x, dW_h, db)}`` that the usual wrong derivations return (exercise 3)."""
    right = lstm_cell_backward_numpy(dh, dc, cache)
    f, g, H = cache["f"], cache["g"], dh.shape[1]
    delta_c = dc + dh * cache["o"] * (1 - np.tanh(cache["c"]) ** 2)  # (B, H)
    dA = lstm_gate_gradients(delta_c, dh, cache)  # (B, 4H), i, f, g, o

    def from_dA(dA: np.ndarray, dc_prev: np.ndarray = right[2]) -> tuple:  # what follows from a (wrong) dA
        return dA @ cache["W_x"], dA @ cache["W_h"], dc_prev, dA.T @ cache["x"], dA.T @ cache["h_prev"], dA.sum(0)

    blocks = gate_slices(H)
    sigmoid_slope = dA.copy()
    sigmoid_slope[:, blocks["g"]] *= g / (1 + g)  # g (1 - g) in place of 1 - g^2
    o = cache["o"]
    tanh_slope_o = dA.copy()
    tanh_slope_o[:, blocks["o"]] *= (1 + o) / o  # 1 - o^2 in place of o (1 - o)
    order = "(PyTorch's rows, and so the stacked gradient, are i, f, g, o)"
    return {
        "forget that c_t also reaches the loss through h_t = o * tanh(c_t): add dh * o * (1 - tanh(c)^2) to dc "
        "before using it": from_dA(lstm_gate_gradients(dc, dh, cache), dc * f),
        "leave the forget gate out of dc_prev (it is dc_prev = f * (dc + dh * o * (1 - tanh(c)^2)), since "
        "c_t = f * c_prev + ...)": (*right[:2], delta_c, *right[3:]),
        "use the sigmoid's derivative g * (1 - g) for the candidate g, which is a tanh: its derivative is 1 - g^2":
            from_dA(sigmoid_slope),
        "use tanh's derivative 1 - o^2 for the output gate o, which is a sigmoid: its derivative is o * (1 - o)":
            from_dA(tanh_slope_o),
        **{f"stack the gate gradients as {', '.join(wrong)} {order}":
           from_dA(np.concatenate([dA[:, blocks[k]] for k in wrong], axis=1))
           for wrong in (("i", "f", "o", "g"), ("f", "i", "g", "o"))},
        "pass dh straight through as dh_prev: h_prev reaches the step only through the pre-activations, so "
        "dh_prev = dA @ W_h (W_h^T times dA, for column vectors)": (right[0], dh, *right[2:]),
        "add the upstream dh to dh_prev: dh belongs to h_t; dh_prev is dA @ W_h alone (the loop over time adds "
        "the output's own gradient at step t - 1)": (right[0], right[1] + dh, *right[2:]),
    }


def check_lstm_cell_backward(fn, seed: int = 0) -> None:
    """Test ``fn(dh, dc, cache) -> (dx, dh_prev, dc_prev, dW_x, dW_h, db)`` against autograd (notebook 03, exercise 3).

    Fails naming the output that is wrong and the usual mistake its values match: no dc
    through h, no forget gate in dc_prev, a sigmoid slope for g, another gate order in the
    stacked gradient, dh_prev without W_h; a wrong stacked gradient also names its gate blocks.
    """
    fn = refuse_reference(fn, ("lstm_cell_backward_numpy", "lstm_cell_backward_autograd", "LSTMHandwrittenBPTT",
                          "backward", "grad"))  # autograd too: the exercise is the derivation
    rng = np.random.default_rng(seed)
    B, n_in, H = 3, 4, 5
    args = (rng.normal(size=(B, n_in)), rng.normal(size=(B, H)), rng.normal(size=(B, H)),
            0.5 * rng.normal(size=(4 * H, n_in)), 0.5 * rng.normal(size=(4 * H, H)), 0.5 * rng.normal(size=4 * H))
    dh, dc = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    _, _, cache = lstm_cell_cache(*args)
    result = fn(dh.copy(), dc.copy(), {k: v.copy() for k, v in cache.items()})
    check_type("the result", result, tuple)
    if len(result) != len(LSTM_BACKWARD_NAMES):
        raise CheckFailed(f"return six arrays, ({', '.join(LSTM_BACKWARD_NAMES)}); got a tuple of {len(result)}")
    expected = lstm_cell_backward_autograd(dh, dc, *args)
    mistakes = _lstm_backward_mistakes(dh, dc, cache)
    # the stacked gradients first: a wrong one is named by its gate block (i, f, g, o) before dx inherits it
    order = sorted(range(len(LSTM_BACKWARD_NAMES)), key=lambda k: LSTM_BACKWARD_NAMES[k] not in ("db", "dW_x", "dW_h"))
    for k in order:
        name, got = LSTM_BACKWARD_NAMES[k], result[k]
        if name == "dh_prev" and np.shape(got) == (B, n_in):
            raise CheckFailed("dh_prev has shape (B, I), the input's: h_prev enters through W_h, so dh_prev = dA @ W_h")
        check_shape(name, got, expected[k].shape)
        name_mistake(name, got, expected[k], {hint: value[k] for hint, value in mistakes.items()})
        blocks = gate_slices(H) if name in ("dW_x", "dW_h", "db") else None  # rows i, f, g, o
        check_close(f"{name} (vs autograd)", got, expected[k], parts=blocks, axis=0, quiet=True)
    print(f"OK my_lstm_cell_backward: {', '.join(LSTM_BACKWARD_NAMES)} equal autograd's")
