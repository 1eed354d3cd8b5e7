"""Notebook 03, the exercises on :mod:`course_utils.lstm`.

Checks that name the usual mistakes: ``check_lstm_cell``, ``check_lstm_gate_values``,
``check_lstm_cell_backward``, ``check_lstm_backward`` (the backward over a whole sequence).
"""

from __future__ import annotations

import numpy as np
import torch

from ..bptt import numerical_gradient, relative_error
from ..core.checks import CheckFailed, check_close, check_shape, check_type, name_mistake, refuse_reference
from ..lstm import (
    LSTM_BACKWARD_NAMES,
    LSTM_GATES,
    LSTM_SEQUENCE_BACKWARD_NAMES,
    lstm_backward_torch,
    lstm_cell_backward_autograd,
    lstm_cell_backward_numpy,
    lstm_cell_cache,
    lstm_cell_numpy,
    lstm_forward_cache,
    lstm_gate_gradients,
    lstm_weights_from_torch,
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


def _sequence_backward(dhs: np.ndarray, caches: list, *, carry_dc: bool = True, dh: str = "add",
                       forwards: bool = False, sum_over_time: bool = True) -> tuple[np.ndarray, ...]:
    """The backward over the sequence, right (the defaults) or with one of the usual mistakes, from the right cell."""
    T = len(caches)
    dh_next, dc_next = np.zeros_like(dhs[0]), np.zeros_like(dhs[0])  # (B, H)
    dxs, totals = [None] * T, None
    for t in (range(T) if forwards else reversed(range(T))):
        upstream = {"add": dhs[t] + dh_next, "own only": dhs[t],
                    "carried only": dhs[t] if t == T - 1 else dh_next}[dh]
        dxs[t], dh_next, dc_next, *params = lstm_cell_backward_numpy(upstream, dc_next if carry_dc else 0 * dc_next,
                                                                     caches[t])
        totals = params if totals is None or not sum_over_time else [a + p for a, p in zip(totals, params, strict=True)]
    return np.stack(dxs), dh_next, dc_next, *totals


def _sequence_backward_mistakes(dhs: np.ndarray, caches: list) -> dict[str, tuple]:
    """``{hint: (dxs, dh0, dc0, dW_x, dW_h, db)}`` that the usual wrong loops over time return (exercise 5)."""
    return {
        "drop the dc carry (zeros as every step's dc): c_t reaches the loss through c_{t+1}, so step t's dc is the "
        "dc_prev that step t+1 returned (zeros only at t = T-1)": _sequence_backward(dhs, caches, carry_dc=False),
        "use the carried dh without adding the step's own upstream dhs[t]: h_t reaches the loss through its output "
        "at t too, so step t's dh is dhs[t] + the dh_prev that step t+1 returned":
            _sequence_backward(dhs, caches, dh="carried only"),
        "use dhs[t] alone as step t's dh, dropping the dh_prev that step t+1 returned: step t's dh is their sum":
            _sequence_backward(dhs, caches, dh="own only"),
        "iterate forwards in time: go from t = T-1 down to 0, since step t needs what step t+1 sends back":
            _sequence_backward(dhs, caches, forwards=True),
        "keep one step's parameter gradients instead of summing them: the same W_x, W_h, b act at every step, so "
        "dW_x, dW_h and db are sums over t": _sequence_backward(dhs, caches, sum_over_time=False),
    }


def _finite_differences(fn, cell_forward, seed: int) -> None:
    """Run ``cell_forward`` over a sequence (vs ``torch.nn.LSTM``); ``fn``'s gradients vs its finite differences."""
    cell_forward = refuse_reference(cell_forward, ("lstm_cell_numpy", "lstm_cell_torch", "LSTMCell", "LSTM"))
    rng = np.random.default_rng(100 + seed)
    T, B, n_in, H = 4, 2, 3, 3
    lstm = torch.nn.LSTM(n_in, H).double()  # PyTorch's initial weights
    params = {"xs": rng.normal(size=(T, B, n_in)), "h0": rng.normal(size=(B, H)), "c0": rng.normal(size=(B, H))}
    params |= lstm_weights_from_torch(lstm)
    dhs = rng.normal(size=(T, B, H))  # L = sum(dhs * hs): dL/dh_t = dhs[t]

    def hs_of_yours() -> np.ndarray:  # (T, B, H): your cell, step after step
        h, c, hs = params["h0"], params["c0"], []
        for x in params["xs"]:
            h, c = cell_forward(x, h, c, params["W_x"], params["W_h"], params["b"])
            hs.append(np.asarray(h, dtype=np.float64))
        return np.stack(hs)

    with torch.no_grad():
        torch_hs, _ = lstm(torch.from_numpy(params["xs"]),
                           (torch.from_numpy(params["h0"])[None], torch.from_numpy(params["c0"])[None]))
    check_close("hs of your cell run over the sequence, vs torch.nn.LSTM", hs_of_yours(), torch_hs.numpy(), quiet=True)
    _, caches = lstm_forward_cache(**params)
    grads = fn(dhs.copy(), caches)
    for (name, array), got in zip(params.items(), grads, strict=True):
        numeric = numerical_gradient(lambda: float(np.sum(dhs * hs_of_yours())), array)  # perturbs array in place
        error = relative_error(np.asarray(got, dtype=np.float64), numeric)
        print(f"d{name:4s} relative error vs finite differences of your forward: {error:.1e}")
        if not error < 1e-7:
            raise CheckFailed(f"d{name} is off from the finite differences of your forward pass: relative error "
                              f"{error:.1e}, where a right gradient gives below 1e-7")


def check_lstm_backward(fn, seed: int = 0, cell_forward=None) -> None:
    """Test ``fn(dhs, caches) -> (dxs, dh0, dc0, dW_x, dW_h, db)``, BPTT over a sequence (notebook 03, exercise 5).

    ``caches`` is one :func:`course_utils.lstm.lstm_cell_cache` per step (from
    :func:`course_utils.lstm.lstm_forward_cache`). Compared with ``torch.nn.LSTM`` and autograd in
    float64; fails naming the output that is wrong and the usual mistake its values match: the dc
    carry dropped, dhs[t] not added to the carried dh (or the carried dh dropped), a loop forwards
    in time, parameter gradients not summed over time. With ``cell_forward`` (exercise 1's cell,
    ``(x, h_prev, c_prev, W_x, W_h, b) -> (h, c)``) it also runs that cell over a sequence,
    against ``torch.nn.LSTM``, and compares ``fn``'s gradients with the finite differences of
    that forward pass (CS231n's gradient check), printing each relative error.
    """
    fn = refuse_reference(fn, ("lstm_backward_numpy", "lstm_backward_torch", "lstm_cell_backward_numpy",
                               "lstm_cell_backward_autograd", "LSTMHandwrittenBPTT", "LSTM", "backward", "grad"))
    rng = np.random.default_rng(seed)
    T, B, n_in, H = 5, 3, 4, 5
    xs, h0, c0 = rng.normal(size=(T, B, n_in)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    W_x, W_h, b = 0.5 * rng.normal(size=(4 * H, n_in)), 0.5 * rng.normal(size=(4 * H, H)), 0.5 * rng.normal(size=4 * H)
    b[gate_slices(H)["f"]] += 1.0  # forget gates near 0.7: the cell path carries enough to show a dropped dc carry
    dhs = rng.normal(size=(T, B, H))
    _, caches = lstm_forward_cache(xs, h0, c0, W_x, W_h, b)
    result = fn(dhs.copy(), [{k: v.copy() for k, v in cache.items()} for cache in caches])
    check_type("the result", result, tuple)
    names = LSTM_SEQUENCE_BACKWARD_NAMES
    if len(result) != len(names):
        raise CheckFailed(f"return six arrays, ({', '.join(names)}); got a tuple of {len(result)}")
    expected = lstm_backward_torch(dhs, xs, h0, c0, W_x, W_h, b)
    mistakes = _sequence_backward_mistakes(dhs, caches)
    for k, name in enumerate(names):
        check_shape(name, result[k], expected[k].shape)
        name_mistake(name, result[k], expected[k], {hint: value[k] for hint, value in mistakes.items()})
        try:
            check_close(f"{name} (vs torch.nn.LSTM and autograd)", result[k], expected[k], quiet=True)
        except CheckFailed as error:
            raise CheckFailed(f"{error} If exercise 3's check fails too, fix my_lstm_cell_backward first: this "
                              "loop calls it at every step.") from None
    print(f"OK my_lstm_backward: {', '.join(names)} equal torch.nn.LSTM's gradients (autograd, float64)")
    if cell_forward is not None:
        _finite_differences(fn, cell_forward, seed)
        print("OK my_lstm_backward: every gradient equals the finite differences of your own forward pass")
