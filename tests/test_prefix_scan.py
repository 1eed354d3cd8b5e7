"""Hillis-Steele, Blelloch and the two-level scan equal the loop; associativity; counted costs match the formulas."""

import pytest
import torch

from course_utils import CheckFailed
from course_utils.exercises.prefix_scan import check_combine_affine, check_hillis_steele_step
from course_utils.linear_recurrence import scan_chunked, scan_loop
from course_utils.prefix_scan import (
    ScanCost,
    blelloch_scan,
    combine_affine,
    counting_combine,
    hillis_steele_scan,
    hillis_steele_step,
    measured_scan_costs,
    pad_with_identity,
    scan_cost_formulas,
    sequential_scan,
    steps_for,
    two_level_scan,
)

SCANS = [hillis_steele_scan, blelloch_scan, two_level_scan, lambda a, b, h0: two_level_scan(a, b, h0, chunk=3)]


def inputs(T, B=2, H=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(T, B, H, generator=g, dtype=torch.float64) * 1.2 + 0.2  # (0.2, 1.4): growth too
    b = torch.randn(T, B, H, generator=g, dtype=torch.float64)
    h0 = torch.randn(B, H, generator=g, dtype=torch.float64)
    return a, b, h0


def test_operator_hand_case_and_associativity():
    a, b = combine_affine(torch.tensor(2.0), torch.tensor(1.0), torch.tensor(3.0), torch.tensor(-1.0))
    assert (a.item(), b.item()) == (6.0, 2.0)  # x -> 2x + 1, then y -> 3y - 1: x -> 6x + 2
    a1, b1, a2, b2, a3, b3 = torch.randn(6, 5, dtype=torch.float64)
    left = combine_affine(*combine_affine(a1, b1, a2, b2), a3, b3)
    right = combine_affine(a1, b1, *combine_affine(a2, b2, a3, b3))
    torch.testing.assert_close(torch.stack(left), torch.stack(right), rtol=1e-12, atol=1e-12)
    swapped = combine_affine(a2, b2, a1, b1)
    assert not torch.allclose(swapped[1], combine_affine(a1, b1, a2, b2)[1])  # not commutative


@pytest.mark.parametrize("T", [1, 2, 3, 5, 8, 13, 16, 31, 64, 100])
@pytest.mark.parametrize("scan", SCANS)
def test_scans_equal_the_loop_in_float64(scan, T):
    a, b, h0 = inputs(T, seed=T)
    torch.testing.assert_close(scan(a, b, h0), scan_loop(a, b, h0), rtol=1e-11, atol=1e-11)


def test_scans_without_h0_and_in_float32():
    a, b, _ = inputs(37)
    for scan in (hillis_steele_scan, blelloch_scan, two_level_scan):
        torch.testing.assert_close(scan(a.float(), b.float()), scan_loop(a, b).float(), rtol=1e-4, atol=1e-4)


def test_two_level_scan_equals_the_course_chunked_scan():
    a, b, h0 = inputs(50)
    for chunk in (1, 7, 10):
        torch.testing.assert_close(two_level_scan(a, b, h0, chunk=chunk), scan_chunked(a, b, h0, chunk=chunk),
                                   rtol=1e-12, atol=1e-12)


def test_identity_padding_leaves_the_prefixes_alone():
    a, b, _ = inputs(5)
    a_p, b_p = pad_with_identity(a, b, 8)
    assert a_p.shape == (8, 2, 3) and (a_p[5:] == 1).all() and (b_p[5:] == 0).all()
    torch.testing.assert_close(scan_loop(a_p, b_p)[:5], scan_loop(a, b))
    with pytest.raises(ValueError, match="length must be at least"):
        pad_with_identity(a, b, 3)


@pytest.mark.parametrize("T", [1, 2, 7, 8, 9, 64, 100, 1024])
def test_counted_costs_match_the_formulas(T):
    counted = measured_scan_costs(T)
    assert {name: (c.work, c.depth) for name, c in counted.items()} == scan_cost_formulas(T)
    L = steps_for(T)
    assert counted["sequential loop"].with_identity == 0
    assert counted["Hillis-Steele"].with_identity == 2**L - 1  # x_t with t < offset, each step
    if T == 2**L and T > 1:  # no padding: only the down-sweep's left spine starts from the identity
        assert counted["Blelloch"].with_identity == L


def test_costs_count_positions_not_lanes():
    one, wide = measured_scan_costs(13), measured_scan_costs(13, B=3, H=5)
    assert {k: vars(v) for k, v in one.items()} == {k: vars(v) for k, v in wide.items()}


def test_counting_combine_counts_each_call():
    cost = ScanCost()
    combine = counting_combine(cost, lanes=2)
    a, b = torch.full((4, 2), 0.5), torch.ones(4, 2)
    ident_a, ident_b = torch.ones(4, 2), torch.zeros(4, 2)
    ident_b[0, 1] = 1.0  # position 0 is not the identity in every lane
    got = combine(ident_a, ident_b, a, b)
    torch.testing.assert_close(torch.stack(got), torch.stack(combine_affine(ident_a, ident_b, a, b)))
    combine(a[0], b[0], a[1], b[1])  # one position, (B H,) = (2,)
    assert (cost.work, cost.depth, cost.with_identity) == (5, 2, 3)
    assert counting_combine(None, 2) is combine_affine


def test_cost_formulas_hand_values():
    costs = scan_cost_formulas(8)
    assert costs["Hillis-Steele"] == (8 * 3, 3)  # every step combines all 8 positions (1 + 2 + 4 with the identity)
    assert costs["Blelloch"] == (14, 6)
    cost = ScanCost()
    hillis_steele_scan(*inputs(8)[:2], cost=cost)
    assert (cost.work, cost.depth, cost.with_identity) == (24, 3, 7)
    cost = ScanCost()
    sequential_scan(*inputs(8), cost=cost)
    assert (cost.work, cost.depth) == (7, 7)


def test_sequential_scan_is_the_loop():
    a, b, h0 = inputs(9)
    torch.testing.assert_close(sequential_scan(a, b, h0), scan_loop(a, b, h0), rtol=1e-12, atol=1e-12)


def test_bad_inputs_have_clear_errors():
    a, b, h0 = inputs(6)
    with pytest.raises(ValueError, match=r"b has shape \(5, 2, 3\), expected \(6, 2, 3\)"):
        blelloch_scan(a, b[:5])
    with pytest.raises(ValueError, match="h0 has shape"):
        hillis_steele_scan(a, b, h0[:1])
    with pytest.raises(ValueError, match="chunk must be an integer >= 1, got 0"):
        two_level_scan(a, b, chunk=0)


# ----------------------------------------------------------------------------- the exercises' checks

def test_check_combine_accepts_a_right_answer():
    check_combine_affine(lambda a1, b1, a2, b2: (a1 * a2, a2 * b1 + b2))


@pytest.mark.parametrize("wrong, match", [
    (lambda a1, b1, a2, b2: (a1 * a2, a1 * b2 + b1), "other order"),
    (lambda a1, b1, a2, b2: (a1 * a2, a1 * b1 + b2), "its own a1"),
    (lambda a1, b1, a2, b2: (a2, a2 * b1 + b2), "forget to multiply the a's"),
    (lambda a1, b1, a2, b2: (a1 + a2, a2 * b1 + b2), "add the a's"),
    (lambda a1, b1, a2, b2: (a1 * a2, b1 + b2), "without scaling b1"),
    (lambda a1, b1, a2, b2: combine_affine(a1, b1, a2, b2), "calls combine_affine"),
])
def test_check_combine_names_the_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        check_combine_affine(wrong)


def right_step(a, b, offset):
    a_prev = torch.cat([torch.ones_like(a[:offset]), a[:-offset]])
    b_prev = torch.cat([torch.zeros_like(b[:offset]), b[:-offset]])
    return a_prev * a, a * b_prev + b


def test_check_step_accepts_a_right_answer():
    check_hillis_steele_step(right_step)
    check_hillis_steele_step(right_step, seed=1)


@pytest.mark.parametrize("wrong, match", [
    (lambda a, b, o: (
        torch.cat([a[o:], torch.ones_like(a[:o])]) * a, a * torch.cat([b[o:], torch.zeros_like(b[:o])]) + b),
     "shift the wrong way"),
    (lambda a, b, o: (torch.roll(a, o, 0) * a, a * torch.roll(b, o, 0) + b), "torch.roll"),
    (lambda a, b, o: (torch.cat([torch.zeros_like(a[:o]), a[:-o]]) * a,
                      a * torch.cat([torch.zeros_like(b[:o]), b[:-o]]) + b), "identity is \\(1, 0\\)"),
    (lambda a, b, o: right_step(a, b, o + 1), "offset \\+ 1"),
    (lambda a, b, o: right_step(a, b, o - 1) if o > 1 else right_step(a, b, o), "offset - 1"),
    (lambda a, b, o: (torch.cat([torch.ones_like(a[:o]), a[:-o]]) * a,
                      torch.cat([torch.ones_like(a[:o]), a[:-o]]) * b + torch.cat([torch.zeros_like(b[:o]), b[:-o]])),
     "wrong order"),
    (lambda a, b, o: hillis_steele_step(a, b, o), "calls hillis_steele_step"),
])
def test_check_step_names_the_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        check_hillis_steele_step(wrong)
