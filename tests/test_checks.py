import re
import sys

import numpy as np
import pytest
import torch

from course_utils import CheckFailed, check_close, check_scalar, check_shape, check_type, tolerance
from course_utils.core.checks import (
    Challenge,
    Verdict,
    check_softmax,
    name_mistake,
    refuse_reference,
    require_keys,
)


class AlwaysEqual:
    """A submission's trick: equal to everything."""

    def __eq__(self, other):
        return True

    __hash__ = None


class SneakyArray(np.ndarray):
    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool)


def test_passes_and_reports_max_difference(capsys):
    x = np.linspace(0, 1, 6).reshape(2, 3)
    result = check_close("x", x + 1e-12, x)
    # None, not the difference: nbgrader would read a number on a test cell's last line as partial credit
    assert result is None
    assert "OK x: shape (2, 3), max |difference| = 1.00e-12" in capsys.readouterr().out


def test_torch_and_numpy_mix():
    t = torch.arange(4.0)
    check_close("t", t, t.numpy().copy(), quiet=True)


def test_value_error_names_index_and_size():
    expected = np.zeros((2, 3))
    got = expected.copy()
    got[1, 2] = 0.5
    with pytest.raises(CheckFailed, match=r"1 of 6 values differ.*0\.5 at index \(1, 2\)"):
        check_close("h", got, expected)


def test_parts_name_the_gate_that_is_off():
    expected = np.zeros((2, 8), dtype=np.float32)
    got = expected.copy()
    got[:, 4:6] = 1.0  # the third of four gates
    gates = {"i": slice(0, 2), "f": slice(2, 4), "g": slice(4, 6), "o": slice(6, 8)}
    with pytest.raises(CheckFailed, match=r"Parts that are off: g\. Correct: i, f, o\."):
        check_close("gates", got, expected, parts=gates)


def test_shape_error_hints_transpose():
    with pytest.raises(CheckFailed, match=r"shape \(3, 2\), expected \(2, 3\).*transposed"):
        check_close("W", np.zeros((3, 2)), np.zeros((2, 3)))


def test_shape_error_hints_missing_axis():
    with pytest.raises(CheckFailed, match="2 dimensions instead of 3"):
        check_shape("x", np.zeros((4, 5)), (1, 4, 5))


def test_dtype_mismatch():
    with pytest.raises(CheckFailed, match="dtype float32, expected float64"):
        check_close("y", np.zeros(3, dtype=np.float32), np.zeros(3))


@pytest.mark.parametrize("bad", [AlwaysEqual(), None, [0.0, 0.0], "0"])
def test_non_arrays_do_not_pass(bad):
    with pytest.raises(CheckFailed, match="should be a numpy array or a torch tensor"):
        check_close("out", bad, np.zeros(2))


def test_none_suggests_missing_return():
    with pytest.raises(CheckFailed, match="forget a `return`"):
        check_close("out", None, np.zeros(2))


def test_ndarray_subclass_with_lying_eq_does_not_pass():
    sneaky = np.full(3, 7.0).view(SneakyArray)
    with pytest.raises(CheckFailed):
        check_close("out", sneaky, np.zeros(3))


def test_nan_is_reported():
    with pytest.raises(CheckFailed, match=r"NaN \(first at index \(1,\)\)"):
        check_close("p", np.array([0.0, np.nan]), np.zeros(2))


def test_tolerance_depends_on_dtype_and_device():
    assert tolerance(np.float64) == (1e-7, 1e-9)
    assert tolerance(torch.float32) == (1e-5, 1e-6)
    assert tolerance(torch.float32, "cuda") == pytest.approx((1e-4, 1e-5))
    assert tolerance(torch.int64) == (0.0, 0.0)
    assert tolerance(torch.bfloat16)[0] > tolerance(torch.float16)[0]


def test_float32_tolerance_rejects_a_real_error():
    a = torch.ones(4)
    with pytest.raises(CheckFailed):
        check_close("a", a + 1e-3, a)


def test_check_scalar():
    check_scalar("loss", torch.tensor(0.5), 0.5)
    with pytest.raises(CheckFailed, match="is 0.6, expected 0.5"):
        check_scalar("loss", 0.6, 0.5)
    with pytest.raises(CheckFailed, match="should be a number"):
        check_scalar("loss", AlwaysEqual(), 0.5)
    with pytest.raises(CheckFailed, match="single number"):
        check_scalar("loss", torch.ones(2), 1.0)


def test_check_type():
    check_type("n", 3, int)
    with pytest.raises(CheckFailed, match="should be a int or float, but it is a str"):
        check_type("n", "3", (int, float))


def _softmax_right(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _exp_normalised(z, shift, axis=-1):
    e = np.exp(z - shift)
    return e / e.sum(axis=axis, keepdims=True)


SOFTMAX_MISTAKES = {  # a learner's plausible wrong answer -> words the feedback must contain
    "no max-shift": (lambda z: _exp_normalised(z, 0.0), "without subtracting its max"),
    "one global max": (lambda z: _exp_normalised(z, z.max()), "max of the whole array"),
    "first axis": (lambda z: _exp_normalised(z, z.max(axis=0, keepdims=True), axis=0), "first axis"),
    "no division": (lambda z: np.exp(z - z.max(axis=-1, keepdims=True)), "divide by the sum"),
    "whole-array sum": (lambda z: _exp_normalised(z, z.max(axis=-1, keepdims=True), axis=None), "sum of the whole"),
    "whole-array softmax": (lambda z: np.exp(z - z.max()) / np.exp(z - z.max()).sum(), "whole array at once"),
    "no keepdims": (lambda z: np.exp(z - z.max(axis=-1)) / np.exp(z - z.max(axis=-1)).sum(axis=-1), "keepdims"),
    "float32": (lambda z: _softmax_right(z).astype(np.float32), "dtype float32"),
}


def test_check_softmax_passes_a_right_softmax(capsys):
    check_softmax(_softmax_right)
    check_softmax(_softmax_right, seed=7)
    assert "OK my_softmax" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", SOFTMAX_MISTAKES)
def test_check_softmax_names_each_mistake(mistake):
    fn, words = SOFTMAX_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)), np.errstate(all="ignore"):
        check_softmax(fn)


def test_name_mistake_is_silent_when_right_or_unrecognised():
    expected = np.array([1.0, 2.0])
    name_mistake("x", expected.copy(), expected, {"add one": expected + 1, "not applicable": None})
    name_mistake("x", expected * 3, expected, {"add one": expected + 1})  # no candidate: check_close reports
    with pytest.raises(CheckFailed, match="when you add one"):
        name_mistake("x", expected + 1, expected, {"add one": expected + 1})


def test_refuse_reference_catches_a_call_to_the_course_implementation_even_nested():
    from course_utils.rnn import rnn_cell_forward, softmax

    def calls_it(z):
        return softmax(z)

    def hides_it(z):
        inner = lambda v: torch.softmax(torch.from_numpy(v), -1).numpy()  # noqa: E731
        return inner(z)

    for fn in (calls_it, hides_it):  # names that resolve to the course's or torch's function: refused before a call
        with pytest.raises(CheckFailed, match=r"calls softmax, an existing implementation.*yourself from array "
                                              r"operations \(numpy or torch\)"):
            check_softmax(fn)
    refuse_reference(_softmax_right, ("softmax",))  # a real solution passes
    refuse_reference(np.exp, ("softmax",))  # not Python code: left to the value checks
    assert rnn_cell_forward  # imported for the next test's namespace


def test_check_rnn_cell_refuses_the_reference_but_check_rnn_forward_allows_the_cell():
    from course_utils.exercises.rnn import check_rnn_cell, check_rnn_forward
    from course_utils.rnn import rnn_cell_forward

    def cell(x_t, h_prev, W_xh, W_hh, b_h):
        return rnn_cell_forward(x_t, h_prev, W_xh, W_hh, b_h)

    with pytest.raises(CheckFailed, match="cell calls rnn_cell_forward"):
        check_rnn_cell(cell)

    def forward(x, h_init, W_xh, W_hh, b_h):
        h, hs = h_init, []
        for x_t in x:
            h = rnn_cell_forward(x_t, h, W_xh, W_hh, b_h)
            hs.append(h)
        return np.stack(hs)

    check_rnn_forward(forward)


def test_learning_rate_hints_name_the_side_and_the_budget():
    from course_utils.core.checks import learning_rate_hints

    assert learning_rate_hints(1e-4, 3e-3, 3e-2, 150) == [
        "a learning rate of 0.0001 is small for 150 steps: Adam moves each weight by about lr per step"]
    assert learning_rate_hints(0.5, 3e-3, 3e-2, large_note=", even with clipping") == [
        "a learning rate of 0.5 is large: the updates overshoot, even with clipping"]
    assert learning_rate_hints(1e-2, 3e-3, 3e-2) == []


def test_outcome_verdict_prints_ok_or_names_how_far_and_the_culprits(capsys):
    from course_utils.core.checks import outcome_verdict

    def no_hints_on_a_pass():
        raise AssertionError("hints are read only on a miss")

    outcome_verdict("loss 1.9 (target: below 2.0)", True, "unused", no_hints_on_a_pass)
    assert capsys.readouterr().out == "OK loss 1.9 (target: below 2.0).\n"
    with pytest.raises(CheckFailed, match=r"^loss 2\.2 \(target: below 2\.0\): 1\.1 times the target\. "
                                          r"Likely culprit: lr is small; few units\.$"):
        outcome_verdict("loss 2.2 (target: below 2.0)", False, "1.1 times the target",
                        lambda: ["lr is small", "few units"])
    with pytest.raises(CheckFailed, match=r"1\.1 times the target\.$"):  # no hint: no "Likely culprit"
        outcome_verdict("loss 2.2 (target: below 2.0)", False, "1.1 times the target", list)


@pytest.mark.parametrize(("answer", "got"),
                         [({"a": 1}, r"\['a'\]"), ([1, 2], "list"), ({"a": 1, "b": 2, "c": 3}, "'c'")])
def test_require_keys_names_the_keys_wanted_and_got(answer, got):
    require_keys({"b": 1, "a": 2}, ("a", "b"))  # any order
    with pytest.raises(CheckFailed, match=rf"return a dict with exactly the keys a, b; got .*{got}"):
        require_keys(answer, ("a", "b"))


# ----------------------------------------------------------------------------- Challenge: the outcome-graded exercises


def _toy_challenge(calls: list[str]) -> Challenge:
    """A challenge whose score is the answer's "x" doubled; the target is a score of at least 10."""
    def validate(answer):
        calls.append("validate")
        if not isinstance(answer, dict) or not isinstance(answer.get("x"), int):
            raise CheckFailed("x should be a whole number")
        return answer["x"]

    def measure(answer, seed):
        calls.append("measure")
        return 2 * answer["x"] + seed

    def hints(x):
        calls.append("hints")
        return ["x is small"] if x < 5 else []

    return Challenge(validate, measure, lambda x, got, seed: Verdict(f"scored {got} (target: 10)", got >= 10,
                                                                     f"{10 - got} short"), hints)


def test_a_challenge_validates_before_measuring_and_hints_only_on_a_miss(capsys):
    calls: list[str] = []
    challenge = _toy_challenge(calls)
    with pytest.raises(CheckFailed, match="x should be a whole number"):
        challenge.check({"x": "3"})
    assert calls == ["validate"]  # nothing was measured
    calls.clear()
    challenge.check({"x": 5})
    assert calls == ["validate", "measure"] and capsys.readouterr().out == "OK scored 10 (target: 10).\n"
    calls.clear()
    with pytest.raises(CheckFailed, match=r"^scored 7 \(target: 10\): 3 short\. Likely culprit: x is small\.$"):
        challenge.check({"x": 3}, seed=1)
    assert calls == ["validate", "measure", "hints"]
    assert challenge.score({"x": 3}, seed=2) == 8


def test_refuse_reference_allows_reading_a_reference_object_s_parts_but_not_calling_it():
    from course_utils.transformer import Block

    block, x = Block(8, 2), torch.randn(1, 3, 8)
    by_parts = refuse_reference(lambda b, x: x + b.attn(b.ln1(x))[0], ("Block",))
    by_parts(block, x)  # the parts of the block: the exercise
    with pytest.raises(CheckFailed, match="reaches course_utils.transformer.Block"):
        refuse_reference(lambda b, x: b(x), ("Block",))(block, x)  # the block itself


# ----------------------------------------------------------------------------- refuse_reference: the hand-off routes


def _decay_setting():
    from course_utils.recipe import decay_groups

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    return decay_groups, model


HANDED_OFF = r"hands work to another thread or process .*compute its answer itself, in one thread"


def test_refuse_reference_refuses_a_thread_pool_made_inside_the_call():
    import concurrent.futures

    import course_utils.recipe

    decay_groups, model = _decay_setting()
    learner = lambda m, wd: concurrent.futures.ThreadPoolExecutor(1).submit(  # noqa: E731
        getattr(course_utils.recipe, "decay" + "_groups"), m, wd).result()
    with pytest.raises(CheckFailed, match=rf"{HANDED_OFF}|reaches course_utils\.recipe\.decay_groups"):
        refuse_reference(learner, ("decay_groups",))(model, 0.1)
    honest = lambda m, wd: concurrent.futures.ThreadPoolExecutor(1).submit(len, list(m.parameters())).result()  # noqa: E731
    with pytest.raises(CheckFailed, match=HANDED_OFF + ".*"):
        refuse_reference(honest, ("decay_groups",))(model, 0.1)  # any hand-off, even of the learner's own work
    assert decay_groups(model, 0.1)  # the reference itself is fine outside the check


def test_refuse_reference_refuses_a_thread_pool_made_before_the_call():
    import concurrent.futures

    decay_groups, model = _decay_setting()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(len, []).result()  # its worker thread already runs, with no profiler
        hidden = decay_groups  # a name the static layer does not know
        for learner in (lambda m, wd: pool.submit(hidden, m, wd).result(),
                        lambda m, wd: list(pool.map(hidden, [m], [wd]))[0]):
            with pytest.raises(CheckFailed, match=r"hands work to another thread or process "
                                                  r"\(concurrent\.futures\.\w+\.(submit|map)\)"):
                refuse_reference(learner, ("decay_groups",))(model, 0.1)


def test_refuse_reference_refuses_a_thread_and_a_process():
    import subprocess
    import threading

    _, model = _decay_setting()

    def in_a_thread(m, wd):
        out = []
        thread = threading.Thread(target=lambda: out.append(len(list(m.parameters()))))
        thread.start()
        thread.join()
        return out

    def in_a_process(m, wd):
        return subprocess.run(["true"], check=True).returncode

    for learner, where in ((in_a_thread, r"threading\.start"), (in_a_process, r"subprocess\.__init__")):
        with pytest.raises(CheckFailed, match=rf"{learner.__name__} hands work to another thread or process "
                                              rf"\({where}\)"):
            refuse_reference(learner, ("decay_groups",))(model, 0.1)
    assert sys.getprofile() is None and threading.getprofile() is None  # the check's hooks are gone


def test_refuse_reference_refuses_switching_off_the_tracer():
    from course_utils.rnn import softmax as step

    def switches_off(z):
        sys.setprofile(None)
        return step(z)

    def swaps_it(z):
        sys.setprofile(lambda *args: None)
        raise ValueError("and fails")

    for learner in (switches_off, swaps_it):
        with pytest.raises(CheckFailed, match=rf"{learner.__name__} switched off the check's tracer"):
            refuse_reference(learner, ("log_softmax",))(np.zeros((2, 3)))
        assert sys.getprofile() is None


def test_refuse_reference_lets_numpy_and_torch_ops_through():
    x = torch.randn(64, 64)
    fn = refuse_reference(lambda a, b: (a @ a.T).relu().sum() + float(np.linalg.norm(b @ b)), ("softmax",))
    fn(x, np.ones((64, 64)))  # their threads are C++'s, no hand-off

    from course_utils.core.training import progress_bar

    def with_a_bar(n):
        return sum(progress_bar(iterable=range(n), disable=False))  # tqdm's monitor thread is not the learner's

    assert refuse_reference(with_a_bar, ("softmax",))(3) == 3


def test_refuse_reference_passes_a_local_named_like_a_reference():
    """An honest solution whose local ``grad``, used in a comprehension, is named like a reference (autograd's)."""
    def my_rnn_backward(dh):
        return {"W": dh.sum(), "b": dh.mean()}

    def my_rnn_loss_and_grads(dh):
        grad = my_rnn_backward(dh)
        return {k: grad[k] * 2 for k in sorted(grad)}  # `grad`: a free name of the comprehension

    fn = refuse_reference(my_rnn_loss_and_grads, ("rnn_backward", "backward", "grad"))
    assert fn(np.ones(3)) == {"W": 6.0, "b": 2.0}


def test_refuse_reference_passes_a_notebook_helper_named_like_a_reference():
    notebook = {"__name__": "__main__", "np": np}
    exec("def log_softmax(z):\n"
         "    shifted = z - z.max(axis=-1, keepdims=True)\n"
         "    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))\n"
         "def my_softmax(z):\n"
         "    return np.exp(log_softmax(z))\n", notebook)
    check_softmax(notebook["my_softmax"])  # the learner's own log_softmax, in the notebook
    notebook["log_softmax"] = torch.log_softmax  # now the name resolves to torch's
    with pytest.raises(CheckFailed, match="my_softmax calls log_softmax, an existing implementation"):
        check_softmax(notebook["my_softmax"])
