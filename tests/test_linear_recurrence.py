"""The three scans of h_t = a_t * h_{t-1} + b_t agree with each other and with a hand-computed case."""

import re

import pytest
import torch

from course_utils import CheckFailed
from course_utils.exercises.linear_recurrence import check_scan_cumprod
from course_utils.linear_recurrence import scan_chunked, scan_cumprod, scan_log, scan_loop, scan_loop_indexed


def inputs(T=50, B=3, H=4, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(T, B, H, generator=g, dtype=torch.float64) * 0.7 + 0.3).to(dtype)  # (0.3, 1)
    b = (torch.rand(T, B, H, generator=g, dtype=torch.float64) + 0.1).to(dtype)  # positive, for the log scan
    h0 = (torch.rand(B, H, generator=g, dtype=torch.float64) + 0.1).to(dtype)
    return a, b, h0


def test_hand_computed_case():
    a = torch.tensor([0.5, 2.0, 0.1]).view(3, 1, 1)
    b = torch.tensor([1.0, -1.0, 3.0]).view(3, 1, 1)
    h0 = torch.tensor([[4.0]])
    expected = torch.tensor([3.0, 5.0, 3.5]).view(3, 1, 1)  # 0.5*4+1, 2*3-1, 0.1*5+3
    for fn in (scan_loop, scan_loop_indexed, lambda a, b, h: scan_chunked(a, b, h, chunk=2)):
        torch.testing.assert_close(fn(a, b, h0), expected)


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("chunk", [1, 7, 16, 64])
def test_chunked_matches_loop(dtype, rtol, chunk):
    a, b, h0 = inputs(dtype=dtype)
    b = b - 0.6  # the chunked scan takes any sign of b
    torch.testing.assert_close(scan_chunked(a, b, h0, chunk=chunk), scan_loop(a, b, h0), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_log_scan_matches_loop(dtype, rtol):
    a, b, h0 = inputs(dtype=dtype)
    torch.testing.assert_close(scan_log(a.log(), b.log(), h0.log()), scan_loop(a, b, h0), rtol=rtol, atol=0.0)
    # without h0 (h0 = 0)
    torch.testing.assert_close(scan_log(a.log(), b.log()), scan_loop(a, b), rtol=rtol, atol=0.0)


def test_gradients_through_scans_match_loop():
    a, b, h0 = inputs(T=40, dtype=torch.float64)
    w = torch.randn(a.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def grads(fn):
        leaves = [t.clone().requires_grad_() for t in (a, b, h0)]
        (fn(*leaves) * w).sum().backward()
        return [t.grad for t in leaves]

    expected = grads(scan_loop)
    for fn in (scan_loop_indexed, lambda a, b, h: scan_chunked(a, b, h, chunk=8),
               lambda a, b, h: scan_log(a.log(), b.log(), h.log())):
        for got, want in zip(grads(fn), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_chunked_takes_any_decay():
    """Only multiplications and additions: a decay of 1e-3 per step over chunks of 100 steps
    (a product of 1e-300, below float32's range), a = 0, negative a and a mild a > 1 match the loop."""
    a = torch.full((200, 1, 4), 1e-3)
    a[:, 0, 1], a[50, 0, 2], a[:, 0, 3] = -0.9, 0.0, 1.01
    b = torch.ones(200, 1, 4)
    torch.testing.assert_close(scan_chunked(a, b, chunk=100), scan_loop(a, b))


@pytest.mark.parametrize("T, chunk", [(23, 5), (23, None), (23, 1), (23, 23), (4, 10), (64, 8)])
def test_chunked_gradcheck(T, chunk):
    """Finite differences in float64, whole chunks and a tail (T % chunk steps), and chunk > T."""
    a, b, h0 = inputs(T=T, B=2, H=3, dtype=torch.float64)
    a, b, h0 = (t.requires_grad_() for t in (a, 2 * b - 1, h0))
    assert torch.autograd.gradcheck(lambda a, b, h: scan_chunked(a, b, h, chunk=chunk), (a, b, h0))


def test_chunked_gradients_in_float32_long_sequence():
    """T = 1000 in float32 against the loop's autograd, with an expanded upstream gradient (stride 0 in time)."""
    a, b, h0 = inputs(T=1000, B=2, H=8, dtype=torch.float32)
    grad_h = torch.randn(1, 2, 8, generator=torch.Generator().manual_seed(2)).expand(1000, 2, 8)

    def grads(fn):
        leaves = [t.clone().requires_grad_() for t in (a, b, h0)]
        fn(*leaves).backward(grad_h)
        return [t.grad for t in leaves]

    for got, want in zip(grads(scan_chunked), grads(scan_loop), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_chunked_only_computes_the_gradients_asked_for():
    a, b, h0 = inputs(T=30, dtype=torch.float64)
    a.requires_grad_()
    scan_chunked(a, b, h0, chunk=4).sum().backward()  # b and h0 need no gradient
    leaf = a.detach().clone().requires_grad_()
    scan_loop(leaf, b, h0).sum().backward()
    torch.testing.assert_close(a.grad, leaf.grad)
    assert b.grad is None and h0.grad is None
    a.requires_grad_(False)  # b and h0 only: h is then not saved for the backward pass
    b_only, h0_only = b.clone().requires_grad_(), h0.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda b, h: scan_chunked(a, b, h, chunk=4), (b_only, h0_only))


def test_chunked_errors():
    a, b, h0 = inputs(T=10, dtype=torch.float64)
    with pytest.raises(ValueError, match="chunk must be an integer >= 1, got 0"):
        scan_chunked(a, b, h0, chunk=0)
    with pytest.raises(ValueError, match="chunk must be an integer >= 1, got 2.5"):
        scan_chunked(a, b, h0, chunk=2.5)
    a.requires_grad_()
    (grad_a,) = torch.autograd.grad((scan_chunked(a, b, h0) ** 2).sum(), a, create_graph=True)
    with pytest.raises(RuntimeError, match="(?i)twice|double|once"):
        grad_a.sum().backward()  # the written-out backward is not itself differentiable


def test_chunked_promotes_dtypes_like_the_loop():
    a, b, h0 = inputs(T=12)
    for args in ((a, b.double(), h0), (a, b, h0.double())):
        got = scan_chunked(*args, chunk=5)
        assert got.dtype == scan_loop(*args).dtype == torch.float64
        torch.testing.assert_close(got, scan_loop(a.double(), b.double(), h0.double()))


@pytest.mark.parametrize("fn", [scan_loop, scan_chunked, scan_log])
def test_shape_errors_name_the_argument(fn):
    a, b, h0 = inputs()
    with pytest.raises(ValueError, match=r"b has shape \(49, 3, 4\), expected \(50, 3, 4\)"):
        fn(a, b[1:], h0)
    with pytest.raises(ValueError, match=r"h0 has shape \(3, 5\), expected \(3, 4\)"):
        fn(a, b, torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"a has shape \(50, 12\), expected \(T, B, H\)"):
        fn(a.reshape(50, 12), b, h0)
    with pytest.raises(ValueError, match="a has 0 time steps; a scan needs at least one"):
        fn(a[:0], b[:0], h0)


# ----------------------------------------------------------------------------- the cumulative form and its exercise

def test_scan_cumprod_matches_the_loop_and_underflows_on_long_sequences():
    a, b, h0 = inputs(T=20, dtype=torch.float64)
    torch.testing.assert_close(scan_cumprod(a, b - 0.6, h0), scan_loop(a, b - 0.6, h0), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(scan_cumprod(a, b), scan_loop(a, b))  # h0 = 0 by default
    a_long, b_long, h0_long = inputs(T=512, dtype=torch.float32)
    assert not torch.isfinite(scan_cumprod(a_long, b_long, h0_long)).all()  # A_t underflows below ~1e-38


def _cumulative(a, b, h0, *, no_h0=False, own_b=False, h0_late=False, batch_axis=False, with_h0=False):
    """A learner's loop-free scan, right by default; each flag is one plausible mistake."""
    dim = 1 if batch_axis else 0
    A = torch.cumprod(a, dim=dim)
    A_b = torch.cat([torch.ones_like(A[:1]), A[:-1]]) if own_b else A
    A_h = torch.cat([torch.ones_like(A[:1]), A[:-1]]) if h0_late else A
    h = A_h * (0 if no_h0 else h0) + A * torch.cumsum(b / A_b, dim=dim)
    return torch.cat([h0[None], h]) if with_h0 else h


CUMPROD_MISTAKES = {  # flag -> words the feedback must contain
    "no_h0": "drop the h0 term",
    "own_b": "so a_t multiplies its own b_t",
    "h0_late": "multiply h0 by A_{t-1} instead of A_t",
    "batch_axis": "over the batch axis (dim=1) instead of time (dim=0)",
    "with_h0": "return h_1 .. h_T, without h0",
}


def test_check_scan_cumprod_passes_a_right_answer_and_refuses_the_references(capsys):
    check_scan_cumprod(_cumulative)
    check_scan_cumprod(_cumulative, seed=1)
    assert "OK h (T=12, B=3, H=4)" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="calls scan_cumprod, an existing implementation"):
        check_scan_cumprod(lambda a, b, h0: scan_cumprod(a, b, h0))
    with pytest.raises(CheckFailed, match="calls scan_chunked, an existing implementation"):
        check_scan_cumprod(lambda a, b, h0: scan_chunked(a, b, h0))


@pytest.mark.parametrize("mistake", CUMPROD_MISTAKES)
def test_check_scan_cumprod_names_each_mistake(mistake):
    with pytest.raises(CheckFailed, match=re.escape(CUMPROD_MISTAKES[mistake])):
        check_scan_cumprod(lambda a, b, h0: _cumulative(a, b, h0, **{mistake: True}))


def _loop_answer(a, b, h0):
    hs, h = [], h0
    for a_t, b_t in zip(a, b, strict=True):
        h = a_t * h + b_t
        hs.append(h)
    return torch.stack(hs)


def test_check_scan_cumprod_refuses_a_loop_and_says_what_is_wrong():
    with pytest.raises(CheckFailed, match="runs a loop: the exercise is to compute every h_t at once"):
        check_scan_cumprod(_loop_answer)
    with pytest.raises(CheckFailed, match="runs a loop"):
        check_scan_cumprod(lambda a, b, h0: torch.stack([x for x in _cumulative(a, b, h0)]))
    with pytest.raises(CheckFailed, match="Did you forget a `return`"):
        check_scan_cumprod(lambda a, b, h0: None)
    with pytest.raises(CheckFailed, match=r"h \(T=12, B=3, H=4\) is off"):
        check_scan_cumprod(lambda a, b, h0: _cumulative(a, b, h0) + 1e-3)
