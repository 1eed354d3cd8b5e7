"""The record-and-replay pieces of the grader (course_tools.grading.replay), without kernels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_tokens import in_place

from course_tools.grading import replay
from course_tools.grading.replay import ReplayError, Uncrossable, decode, encode
from course_utils.core.checks import CheckFailed, refuse_reference


@pytest.mark.parametrize("value", [
    None, True, 3, -2**70, 0.1, float("inf"), 1 + 2j, "text", [1, (2.5, "a")], {"lr": 0.01, 3: [None]},
    np.arange(6.0).reshape(2, 3), np.float32(1.5), np.array([1, 2], dtype=np.int8),
    torch.ones(2, 3, dtype=torch.float64),
    torch.device("cpu"), torch.float16,
])
def test_data_crosses_unchanged(value):
    back = decode(json.loads(json.dumps(encode(value))))
    assert type(back) is type(value)
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and np.array_equal(back, value)
    elif isinstance(value, torch.Tensor):
        assert back.dtype == value.dtype and torch.equal(back, value)
    else:
        assert back == value


@pytest.mark.parametrize("value", [np.array([1, "a"], dtype=object), object(), type("F", (float,), {})(1.0),
                                   torch.nn.Linear(2, 2), lambda x: x])
def test_what_is_not_plain_data_does_not_cross(value):
    with pytest.raises(Uncrossable):
        encode(value)


def test_a_recording_cannot_run_code_in_the_clean_kernel(tmp_path):
    evil = {"my_f": {"value": {"pickle": "cos\nsystem\n(S'echo owned'\ntR."}}}
    (tmp_path / "r.json").write_text(json.dumps(evil))
    with pytest.raises(ReplayError, match="unknown kind of value"):
        replay.bind({}, str(tmp_path / "r.json"), [])
    with pytest.raises(ReplayError, match="Python objects"):
        decode({"ndarray": {"dtype": "|O", "shape": [1], "data": ""}})


def _learner_function(x):
    return x * 2


def test_a_recorded_call_replays_only_with_the_same_arguments(tmp_path):
    ns = {"my_f": _learner_function, "check": "the real check"}
    replay.record_start(ns, ["my_f"])
    assert ns["my_f"](np.arange(3.0)).tolist() == [0.0, 2.0, 4.0]
    replay.record_finish(ns, str(tmp_path / "r.json"))
    assert ns["my_f"] is _learner_function  # put back

    clean = {"check": "the real check"}
    replay.bind(clean, str(tmp_path / "r.json"), ["check"])
    assert clean["my_f"](np.arange(3.0)).tolist() == [0.0, 2.0, 4.0]
    with pytest.raises(ReplayError, match="called more often"):
        clean["my_f"](np.arange(3.0))
    replay.bind(clean, str(tmp_path / "r.json"), ["check"])
    with pytest.raises(ReplayError, match="other arguments"):
        clean["my_f"](np.arange(4.0))
    assert not isinstance(ReplayError("x"), Exception)  # a check's `except Exception` does not swallow it


def test_errors_and_in_place_changes_replay(tmp_path):
    def fills(a):
        a[:] = 7.0

    def unfinished(z):
        raise NotImplementedError()

    ns = {"fills": fills, "unfinished": unfinished}
    replay.record_start(ns, ["fills", "unfinished"])
    ns["fills"](np.zeros(3))
    with pytest.raises(NotImplementedError):
        ns["unfinished"](1)
    replay.record_finish(ns, str(tmp_path / "r.json"))
    clean = {}
    replay.bind(clean, str(tmp_path / "r.json"), [])
    target = np.zeros(3)
    clean["fills"](target)
    assert target.tolist() == [7.0, 7.0, 7.0]
    with pytest.raises(NotImplementedError):
        clean["unfinished"](1)


def test_a_torch_generator_crosses_with_its_state_and_what_a_call_draws_from_it(tmp_path):
    def draws(logits, generator=None):  # like sample_next: the draw moves the generator on
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1)

    logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    ns = {"my_draws": draws}
    replay.record_start(ns, ["my_draws"])
    g = torch.Generator().manual_seed(0)
    first = ns["my_draws"](logits, generator=g)
    after_learner = torch.rand(3, generator=g)  # what the test cell draws next from the same generator
    replay.record_finish(ns, str(tmp_path / "r.json"))

    clean = {}
    replay.bind(clean, str(tmp_path / "r.json"), [])
    g = torch.Generator().manual_seed(0)
    assert torch.equal(clean["my_draws"](logits, generator=g), first)
    assert torch.equal(torch.rand(3, generator=g), after_learner)  # the state moved on as in the learner's kernel
    replay.bind(clean, str(tmp_path / "r.json"), [])
    with pytest.raises(ReplayError, match="other arguments"):  # another seed is another argument
        clean["my_draws"](logits, generator=torch.Generator().manual_seed(1))

    back = decode(json.loads(json.dumps(encode(torch.Generator().manual_seed(5)))))
    assert type(back) is torch.Generator and torch.equal(back.get_state(), torch.Generator().manual_seed(5).get_state())
    with pytest.raises(ReplayError, match="cannot be rebuilt"):
        decode({"generator": encode(np.zeros(3, dtype=np.uint8))["ndarray"], "generator_device": "cpu"})


def test_the_reference_check_reads_recorded_code_names(tmp_path):
    from course_utils.core.checks import _softmax as softmax

    def my_softmax(z):
        return softmax(z)

    ns = {"my_softmax": my_softmax}
    replay.record_start(ns, ["my_softmax"])
    replay.record_finish(ns, str(tmp_path / "r.json"))
    clean = {}
    replay.bind(clean, str(tmp_path / "r.json"), [])
    with pytest.raises(CheckFailed, match="calls softmax"):
        refuse_reference(clean["my_softmax"], ("softmax",))
    assert clean["my_softmax"].__name__ == "my_softmax"


def test_the_reference_check_in_the_clean_kernel_reads_what_the_names_resolved_to(tmp_path):
    """A notebook helper and a local named like references pass; a reference's name read as an attribute does not."""
    ns = {"__name__": "__main__"}
    exec("def log_softmax(z):\n    return z - z.max()\n"
         "def my_softmax(z):\n    grad = {'a': z}\n    return log_softmax(next(grad[k] for k in grad))\n"
         "def my_greedy(model, z):\n    return model.softmax(z)\n", ns)
    replay.record_start(ns, ["my_softmax", "my_greedy"])
    replay.record_finish(ns, str(tmp_path / "r.json"))
    clean = {}
    replay.bind(clean, str(tmp_path / "r.json"), [])
    refuse_reference(clean["my_softmax"], ("log_softmax", "grad"))  # the learner's own: no refusal
    with pytest.raises(CheckFailed, match="my_greedy calls softmax"):  # no profiler runs here: the name decides
        refuse_reference(clean["my_greedy"], ("softmax",))


def test_the_random_state_crosses_so_random_inputs_match(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    replay.record_start({}, [])
    expected = torch.randint(0, 100, (5,)), np.random.rand(2)
    replay.record_finish({}, str(tmp_path / "r.json"))
    torch.manual_seed(99)
    np.random.seed(99)
    replay.bind({}, str(tmp_path / "r.json"), [])
    assert torch.equal(torch.randint(0, 100, (5,)), expected[0]) and np.array_equal(np.random.rand(2), expected[1])


def test_only_functions_are_wrapped_a_model_is_a_value(tmp_path):
    block = torch.nn.Linear(2, 2)
    ns = {"block": block, "my_f": _learner_function}
    replay.record_start(ns, ["block", "my_f"])
    assert ns["block"] is block  # a model keeps its attributes: it is recorded as a value
    assert ns["my_f"].__name__ == "_learner_function" and ns["my_f"].__code__ is _learner_function.__code__
    replay.record_finish(ns, str(tmp_path / "r.json"))
    with pytest.raises(ReplayError, match="torch.nn.modules.linear.Linear"):
        replay.bind({}, str(tmp_path / "r.json"), [])


def _learner_forward(block, x):
    return block(x) * 1.0


def test_a_call_with_a_course_model_replays_where_the_clean_kernel_builds_the_same_model(tmp_path):
    from course_utils.transformer import Block

    torch.manual_seed(0)
    block, x = Block(8, 2), torch.randn(2, 3, 8)
    ns = {"my_forward": _learner_forward}
    replay.record_start(ns, ["my_forward"])
    expected = ns["my_forward"](block, x)
    replay.record_finish(ns, str(tmp_path / "r.json"))

    torch.manual_seed(0)  # the clean kernel's test cell builds its own, equal block
    same = Block(8, 2)
    clean = {}
    replay.bind(clean, str(tmp_path / "r.json"), [])
    assert torch.equal(clean["my_forward"](same, x), expected)
    other_weights = Block(8, 2)
    other_heads = Block(8, 4)  # parameters of the same shapes: only the head count differs
    other_heads.load_state_dict(same.state_dict())
    other_mode = Block(8, 2)
    other_mode.load_state_dict(same.state_dict())
    other_mode.eval()
    for other in (other_weights, other_heads, other_mode):
        replay.bind(clean, str(tmp_path / "r.json"), [])
        with pytest.raises(ReplayError, match="other arguments"):
            clean["my_forward"](other, x)


def test_a_model_of_the_learners_own_class_does_not_fingerprint():
    class Mine(torch.nn.Linear):  # the same state as a Linear, any forward
        pass

    with pytest.raises(Uncrossable, match="Mine"):
        replay.digest((Mine(2, 2),), {})
    wrapped = torch.nn.Sequential(torch.nn.Linear(2, 2), Mine(2, 2))  # inside a trusted container too
    with pytest.raises(Uncrossable, match="Mine"):
        replay.digest((wrapped,), {})


def _learner_groups(model, weight_decay):
    params = list(model.parameters())
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def _learner_copies(model, weight_decay):
    return [{"params": [p.detach() for p in model.parameters()], "weight_decay": weight_decay}]


def _recipe_model():
    from course_utils.recipe import RecipeGPT

    torch.manual_seed(0)
    return RecipeGPT(11, 8, 16, 4, 2, tie_weights=True)


def _record(tmp_path, fn, *args):
    ns = {"my_f": fn}
    replay.record_start(ns, ["my_f"])
    answer = ns["my_f"](*args)
    replay.record_finish(ns, str(tmp_path / "r.json"))
    clean = {}
    replay.bind(clean, str(tmp_path / "r.json"), [])
    return answer, clean["my_f"]


def test_a_models_own_parameters_returned_are_the_clean_kernels_own(tmp_path):
    """Returning a model argument's parameters crosses as references: the clean kernel's stand-in
    returns its own model's parameters (the very objects: an optimiser built on them trains it)."""
    model = _recipe_model()
    answer, stand_in = _record(tmp_path, _learner_groups, model, 0.1)
    clean_model = _recipe_model()  # the clean kernel's test cell builds its own, equal model
    groups = stand_in(clean_model, 0.1)
    assert [[id(p) for p in g["params"]] for g in groups] == [[id(p) for p in g["params"]]
                                                              for g in _learner_groups(clean_model, 0.1)]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert clean_model.head.weight is clean_model.embed.weight and sum(len(g["params"]) for g in groups) == len(
        list(clean_model.parameters()))  # the tied matrix once, as in the learner's kernel


def test_a_copy_of_a_parameter_stays_a_copy(tmp_path):
    model = _recipe_model()
    _, stand_in = _record(tmp_path, _learner_copies, model, 0.1)
    clean_model = _recipe_model()
    params = {id(p) for p in clean_model.parameters()}
    (group,) = stand_in(clean_model, 0.1)
    assert group["params"] and not any(id(p) in params for p in group["params"])
    assert all(torch.equal(a, b) for a, b in zip(group["params"], clean_model.parameters(), strict=True))


def test_an_argument_returned_is_the_clean_kernels_argument(tmp_path):
    def scale_(x):
        return x.mul_(2)

    x = torch.arange(3.0)
    _, stand_in = _record(tmp_path, scale_, x)
    y = torch.arange(3.0)
    assert stand_in(y) is y and y.tolist() == [0.0, 2.0, 4.0]  # the in-place change, then the object itself


def test_a_reference_to_something_changed_in_place_falls_back(tmp_path):
    def zero_first(model):
        p = next(model.parameters())
        with torch.no_grad():
            p.zero_()  # a model's in-place change is not repeated in the clean kernel
        return p

    _, stand_in = _record(tmp_path, zero_first, _recipe_model())
    with pytest.raises(ReplayError, match="changing it in place"):
        stand_in(_recipe_model())


def test_a_tied_model_and_an_untied_one_with_equal_weights_differ():
    from course_utils.recipe import RecipeGPT

    torch.manual_seed(0)
    tied = RecipeGPT(11, 8, 16, 4, 2, tie_weights=True)
    untied = RecipeGPT(11, 8, 16, 4, 2, tie_weights=True)
    untied.head.weight = torch.nn.Parameter(tied.embed.weight.detach().clone())
    untied.load_state_dict(tied.state_dict())
    assert replay.digest((tied,), {}) != replay.digest((untied,), {})


def test_a_forged_reference_names_only_the_calls_own_objects(tmp_path):
    with pytest.raises(ReplayError, match="outside a call's arguments"):
        decode({"ref": ["0"], "fingerprint": ""})
    with pytest.raises(ReplayError, match="does not have"):
        decode({"ref": ["0", "parameter", "__class__"], "fingerprint": ""}, replay._referable((torch.ones(1),), {}))


def test_arrays_inside_a_dict_argument_changed_in_place_replay(tmp_path):
    def double_first(grads):
        grads["a"] *= 2
        return dict(grads)

    answer, stand_in = _record(tmp_path, double_first, {"a": np.ones(2), "b": [np.zeros(1)]})
    grads = {"a": np.ones(2), "b": [np.zeros(1)]}
    got = stand_in(grads)
    assert grads["a"].tolist() == [2.0, 2.0] and got is not grads and got["a"] is grads["a"]


def test_a_dict_argument_returned_is_the_clean_kernels_own(tmp_path):
    def unchanged(grads):
        return grads, 1.0

    _, stand_in = _record(tmp_path, unchanged, {"a": np.ones(2)})
    grads = {"a": np.ones(2)}
    got, norm = stand_in(grads)
    assert got is grads and norm == 1.0


def _clip_in_place(grads, max_norm):
    norm = float(np.sqrt(sum((g ** 2).sum() for g in grads.values())))
    for g in grads.values():
        g *= min(1.0, max_norm / (norm + 1e-6))
    return dict(grads), norm


def _clip_returns_its_input(grads, max_norm):
    norm = float(np.sqrt(sum((g ** 2).sum() for g in grads.values())))
    if norm <= max_norm:
        return grads, norm
    return {k: g * (max_norm / (norm + 1e-6)) for k, g in grads.items()}, norm


@pytest.mark.parametrize("fn, reason", [(_clip_in_place, "in place"),
                                        (_clip_returns_its_input, "the dict it was given")])
def test_a_check_asking_about_its_own_arguments_decides_in_the_clean_kernel(tmp_path, fn, reason):
    """02's check_clip_grad_norm asks whether the answer changed its input in place or returned it:
    the clean kernel answers as the learner's did (it used to call on, find no recording, and
    leave the verdict to the learner's kernel)."""
    from course_utils.exercises.bptt import check_clip_grad_norm

    ns = {"my_clip": fn}
    replay.record_start(ns, ["my_clip"])
    with pytest.raises(CheckFailed, match=reason):
        check_clip_grad_norm(ns["my_clip"])
    replay.record_finish(ns, str(tmp_path / "r.json"))
    clean = {}
    replay.bind(clean, str(tmp_path / "r.json"), [])
    with pytest.raises(CheckFailed, match=reason):
        check_clip_grad_norm(clean["my_clip"])


def _mask_right(gamma):
    c = torch.cumsum(torch.log(gamma), -1)  # (..., T)
    diff = c[..., :, None] - c[..., None, :]  # (..., T, T)
    T = gamma.shape[-1]
    return torch.exp(diff.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")))


def _mask_nan_gradient(gamma):  # the same values; exp overflows above the diagonal, so the backward pass gives NaN
    c = torch.cumsum(torch.log(gamma), -1)
    T = gamma.shape[-1]
    return torch.exp(c[..., :, None] - c[..., None, :]).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), 0.0)


@pytest.mark.parametrize("fn, passes", [(_mask_right, True), (_mask_nan_gradient, False)])
def test_the_gradient_of_an_answer_crosses_with_it(tmp_path, fn, passes):
    """09b's check_decay_mask calls the answer on a gamma that requires grad and backpropagates its
    sum: the clean kernel's stand-in gives the learner's gradient (it used to return a tensor with no
    graph, so a NaN gradient passed)."""
    from course_utils.exercises.linear_attention import check_decay_mask

    ns = {"my_decay_mask": fn}
    replay.record_start(ns, ["my_decay_mask"])
    try:
        check_decay_mask(ns["my_decay_mask"])  # the learner's kernel: the recorder leaves the graph to the check
        passed = True
    except CheckFailed:
        passed = False
    assert passed == passes
    replay.record_finish(ns, str(tmp_path / "r.json"))
    clean = {}
    replay.bind(clean, str(tmp_path / "r.json"), [])
    if passes:
        check_decay_mask(clean["my_decay_mask"])
    else:
        with pytest.raises(CheckFailed, match="gradient with respect to gamma contains NaN"):
            check_decay_mask(clean["my_decay_mask"])


def test_only_the_gradient_of_the_answers_sum_is_known(tmp_path):
    x = torch.arange(3.0, requires_grad=True)
    _, stand_in = _record(tmp_path, lambda t: t * t, x)
    y = torch.arange(3.0, requires_grad=True)
    out = stand_in(y)
    out.sum().backward(retain_graph=True)
    assert y.grad.tolist() == [0.0, 2.0, 4.0]
    with pytest.raises(ReplayError, match="sum only"):
        (out * 2).sum().backward()


def _merge_in_place(ids, pair, new_id):
    """05e's in-place mistake (tests/test_tokens.py), returning a new list of the merged ids."""
    return list(in_place(ids, pair, new_id))


@pytest.mark.parametrize("fn", [_merge_in_place, in_place])  # in_place returns the list it was given
def test_a_list_argument_changed_in_place_replays(tmp_path, fn):
    """05e's check_merge_pair asks whether the answer changed the list it was given: the clean
    kernel sees the change (it used to pass an in-place merge that returned the right list)."""
    from course_utils.exercises.tokens import check_merge_pair

    ns = {"my_merge_pair": fn}
    replay.record_start(ns, ["my_merge_pair"])
    with pytest.raises(CheckFailed, match="changed the list it was given"):
        check_merge_pair(ns["my_merge_pair"])
    replay.record_finish(ns, str(tmp_path / "r.json"))
    clean = {}
    replay.bind(clean, str(tmp_path / "r.json"), [])
    with pytest.raises(CheckFailed, match="changed the list it was given"):
        check_merge_pair(clean["my_merge_pair"])
