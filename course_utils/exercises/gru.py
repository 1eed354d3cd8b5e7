"""Notebook 04, the exercises on :mod:`course_utils.gru`.

Checks that name the usual mistakes: ``check_gru_cell``, ``check_gru_gate_values``,
``check_gru_forward``.
"""

from __future__ import annotations

import numpy as np

from ..core.checks import CheckFailed, check_close, check_shape, check_type, name_mistake, refuse_reference
from ..gru import GRU_GATES, gru_cell_numpy, gru_forward_numpy
from ..shared.gated import (
    gate_slices,
    read_gate_values,
    reorder_blocks,
)


def _gru_mistakes(x, h_prev, W_x, W_h, b_x, b_hh) -> dict[str, np.ndarray]:
    """``{hint: h}`` that the usual wrong GRU steps return (notebook 04, exercise 1)."""
    h, gates = gru_cell_numpy(x, h_prev, W_x, W_h, b_x, b_hh)
    r, z = gates["r"], gates["z"]
    s = gate_slices(h.shape[1], GRU_GATES)
    n_bias_outside = np.tanh(x @ W_x[s["n"]].T + b_x[s["n"]] + r * (h_prev @ W_h[s["n"]].T) + b_hh[s["n"]])
    n_no_tanh = x @ W_x[s["n"]].T + b_x[s["n"]] + r * (h_prev @ W_h[s["n"]].T + b_hh[s["n"]])
    z_r_n = [reorder_blocks(w, ("z", "r", "n"), GRU_GATES) for w in (W_x, W_h, b_x, b_hh)]
    return {
        "use the other convention, h = z * n + (1 - z) * h_prev (the course's, PyTorch's: (1 - z) * n + z * h_prev)":
            gru_cell_numpy(x, h_prev, W_x, W_h, b_x, b_hh, z_weights="candidate")[0],
        "apply r to h_prev before the recurrent matmul (Cho et al.'s GRU); PyTorch applies r after it, to "
        "W_hn h_prev + b_hn": gru_cell_numpy(x, h_prev, W_x, W_h, b_x, b_hh, reset_after=False)[0],
        "follow the original paper both ways (r before the matmul, h = z * n + (1 - z) * h_prev)":
            gru_cell_numpy(x, h_prev, W_x, W_h, b_x, b_hh, z_weights="candidate", reset_after=False)[0],
        "leave b_hn outside the reset gate (r * (W_hn h_prev) + b_hn instead of r * (W_hn h_prev + b_hn))":
            (1 - z) * n_bias_outside + z * h_prev,
        "read the stacked rows as z, r, n (PyTorch's order is r, z, n)": gru_cell_numpy(x, h_prev, *z_r_n)[0],
        "forget the tanh of the candidate n": (1 - z) * n_no_tanh + z * h_prev,
        "return the candidate n instead of the new state h": gates["n"],
    }


def check_gru_cell(fn, seed: int = 0) -> None:
    """Test ``fn(x, h_prev, W_x, W_h, b_x, b_hh) -> h`` against :func:`gru_cell_numpy`.

    Fails naming the shape that is wrong or the usual mistake the values match: the other
    z convention, r before the matmul, b_hn outside r, another gate order, no tanh on n.
    """
    fn = refuse_reference(fn, ("gru_cell_numpy", "gru_cell_torch", "GRUCell", "gru_forward_numpy", "GRU"))
    rng = np.random.default_rng(seed)
    B, n_in, H = 3, 4, 5
    args = (rng.normal(size=(B, n_in)), rng.normal(size=(B, H)), rng.normal(size=(3 * H, n_in)),
            rng.normal(size=(3 * H, H)), rng.normal(size=3 * H), rng.normal(size=3 * H))
    got = fn(*[a.copy() for a in args])
    if isinstance(got, tuple):
        raise CheckFailed(f"return h alone (one array of shape {(B, H)}), not a tuple of {len(got)}")
    check_shape("h", got, (B, H))
    expected = gru_cell_numpy(*args)[0]
    name_mistake("h", got, expected, _gru_mistakes(*args))
    check_close("h (the new hidden state)", got, expected)


_GRU_GATE_ROLES = {
    "z": "z is the share of the old state, h = (1 - z) * n + z * h_prev in the course's (PyTorch's) convention: "
         "z = 1 keeps h_prev, z = 0 takes the candidate n (the other convention, Chung et al.'s, "
         "z * n + (1 - z) * h_prev, is the opposite)",
    "r": "r scales the recurrent part of the candidate, n = tanh(W_xn x + b_xn + r * (W_hn h_prev + b_hn)): "
         "r = 0 shuts h_prev out of n, r = 1 lets all of it in",
}


def check_gru_gate_values(fn, goals: tuple[str, ...] = ("copy", "ignore", "rnn"), seed: int = 0) -> None:
    """Test ``fn(goal) -> (r, z)``, gate values that make one GRU step do ``goal`` (notebook 04, exercise 2).

    Goals: ``"copy"`` (h = h_prev), ``"ignore"`` (h depends on x only), ``"rnn"`` (a plain tanh
    RNN step on x and h_prev). Runs the step with those gates; fails naming each gate that
    is off and what that gate does (the z convention included).
    """
    # goal -> (r, z), None: any r; the answers, kept inside the check so that no learner's code can import them
    wanted = {"copy": (None, 1.0), "ignore": (0.0, 0.0), "rnn": (1.0, 0.0)}
    rng = np.random.default_rng(seed)
    h_prev, a_xn, a_hn = (rng.normal(size=5) for _ in range(3))  # (5,) each: x W_xn^T + b_xn, h_prev W_hn^T + b_hn
    for goal in goals:
        got = read_gate_values(fn(goal), goal, "rz", wanted[goal], _GRU_GATE_ROLES)
        h = (1 - got["z"]) * np.tanh(a_xn + got["r"] * a_hn) + got["z"] * h_prev
        h_want = {"copy": h_prev, "ignore": np.tanh(a_xn), "rnn": np.tanh(a_xn + a_hn)}[goal]
        check_close(f"h_t for {goal!r}", h, h_want, atol=0.02, rtol=0.0)


def _gru_forward_mistakes(xs, h0, *weights) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{hint: (hs, h_T)}`` that the usual wrong loops over time return (notebook 04, exercise 3)."""
    hs, _ = gru_forward_numpy(xs, h0, *weights)
    from_h0 = np.stack([gru_cell_numpy(x, h0, *weights)[0] for x in xs])  # (T, B, H)
    other_z = gru_forward_numpy(xs, h0, *weights, z_weights="candidate")
    r_before = gru_forward_numpy(xs, h0, *weights, reset_after=False)
    return {
        "start every step from h0: carry the state, h = step(x_t, h), so that step t starts from h_{t-1}":
            (from_h0, from_h0[-1]),
        "store each step's input state (h_0 .. h_{T-1}) in hs instead of its output (h_1 .. h_T)":
            (np.concatenate([h0[None], hs[:-1]]), hs[-1]),
        "return the first step's state as h_T instead of the last one": (hs, hs[0]),
        "return h0 as h_T instead of the last step's state": (hs, h0),
        "use the other convention, h = z * n + (1 - z) * h_prev (the course's, PyTorch's: (1 - z) * n + z * h_prev)":
            other_z,
        "apply r to h_prev before the recurrent matmul (Cho et al.'s GRU); PyTorch applies r after it": r_before,
    }


def check_gru_forward(fn, seed: int = 0) -> None:
    """Test ``fn(xs, h0, W_x, W_h, b_x, b_hh) -> (hs, h_T)`` against :func:`gru_forward_numpy` (notebook 04, ex. 3).

    Fails naming the shape that is wrong or the usual mistake the values match: the state
    not carried from step to step, hs off by one step, the wrong final state, the other z
    convention, r before the matmul.
    """
    fn = refuse_reference(fn, ("gru_forward_numpy", "GRU"))  # calling the learner's own cell is the point
    rng = np.random.default_rng(seed)
    T, B, n_in, H = 6, 3, 4, 5
    xs, h0 = rng.normal(size=(T, B, n_in)), rng.normal(size=(B, H))
    weights = (rng.normal(size=(3 * H, n_in)), rng.normal(size=(3 * H, H)), rng.normal(size=3 * H),
               rng.normal(size=3 * H))
    result = fn(xs.copy(), h0.copy(), *[w.copy() for w in weights])
    check_type("the result", result, tuple)
    if len(result) != 2:
        raise CheckFailed(f"return two things, (hs, h_T); got a tuple of {len(result)}")
    hs_got, h_got = result
    check_shape("hs (every step's new state)", hs_got, (T, B, H))
    check_shape("h_T (the last state)", h_got, (B, H))
    hs_exp, h_exp = gru_forward_numpy(xs, h0, *weights)
    mistakes = _gru_forward_mistakes(xs, h0, *weights)
    name_mistake("hs", hs_got, hs_exp, {hint: value[0] for hint, value in mistakes.items()})
    name_mistake("h_T", h_got, h_exp, {hint: value[1] for hint, value in mistakes.items()})
    check_close("hs (every step's new state)", hs_got, hs_exp)
    check_close("h_T (the last state)", h_got, h_exp)
