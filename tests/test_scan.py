"""The three scans of h_t = a_t * h_{t-1} + b_t agree with each other and with a hand-computed case."""

import pytest
import torch

from course_utils.scan import scan_chunked, scan_log, scan_loop, scan_loop_indexed


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


def test_chunked_raises_when_the_decay_underflows():
    a = torch.full((200, 1, 2), 1e-3)
    b = torch.ones(200, 1, 2)
    with pytest.raises(FloatingPointError, match="smaller chunk"):
        scan_chunked(a, b, chunk=100)
    torch.testing.assert_close(scan_chunked(a, b, chunk=4), scan_loop(a, b))  # small chunks are fine


@pytest.mark.parametrize("fn", [scan_loop, scan_chunked, scan_log])
def test_shape_errors_name_the_argument(fn):
    a, b, h0 = inputs()
    with pytest.raises(ValueError, match=r"b has shape \(49, 3, 4\), expected \(50, 3, 4\)"):
        fn(a, b[1:], h0)
    with pytest.raises(ValueError, match=r"h0 has shape \(3, 5\), expected \(3, 4\)"):
        fn(a, b, torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"a has shape \(50, 12\), expected \(T, B, H\)"):
        fn(a.reshape(50, 12), b, h0)
