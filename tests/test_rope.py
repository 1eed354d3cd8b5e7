import math

import numpy as np
import pytest
import torch

from course_utils import CheckFailed
from course_utils.rope import (
    PositionsGPT,
    RotaryBlock,
    RotaryMultiHeadAttention,
    apply_rope,
    loss_by_position,
    rope_angles,
    rope_frequencies,
    rotary_attention,
)
from course_utils.self_attention import causal_mask, scaled_dot_product_attention


def _complex_rope(x: torch.Tensor, positions: torch.Tensor, pairing: str = "interleaved") -> torch.Tensor:
    """Independent float64 reference: pair j as the complex number a + ib, times e^(i m 10000^(-2j/d))."""
    d = x.shape[-1]
    if pairing == "interleaved":
        z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    else:
        z = torch.complex(x.double()[..., : d // 2], x.double()[..., d // 2 :])
    theta = torch.tensor([10000.0 ** (-2 * j / d) for j in range(d // 2)], dtype=torch.float64)
    z = z * torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64), positions.double()[:, None] * theta)
    if pairing == "interleaved":
        return torch.view_as_real(z).flatten(-2)
    return torch.cat((z.real, z.imag), dim=-1)


def test_frequencies_and_angles_by_hand():
    theta = rope_frequencies(8)
    assert theta.tolist() == pytest.approx([1.0, 0.1, 0.01, 0.001], rel=1e-12)
    angles = rope_angles(torch.tensor([0, 3]), 8)
    assert angles.shape == (2, 4) and angles[1].tolist() == pytest.approx([3.0, 0.3, 0.03, 0.003], rel=1e-12)
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(7)


def test_a_pair_turns_by_m_theta_by_hand():
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64).repeat(3, 1)  # (T=3, d=4)
    out = apply_rope(x)
    # pair 0 (theta = 1): (1, 0) turns to (cos m, sin m); pair 1 (theta = 0.01): (0, 1) to (-sin 0.01m, cos 0.01m)
    for m in range(3):
        assert out[m].tolist() == pytest.approx([math.cos(m), math.sin(m), -math.sin(0.01 * m), math.cos(0.01 * m)])


@pytest.mark.parametrize("pairing", ["interleaved", "halves"])
def test_apply_rope_equals_complex_multiplication(pairing):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 50, 16, dtype=torch.float64, generator=g)
    positions = torch.arange(50) * 7 + 3
    got = apply_rope(x, positions, pairing=pairing)
    assert torch.allclose(got, _complex_rope(x, positions, pairing), rtol=0, atol=1e-12)
    assert torch.allclose(got.norm(dim=-1), x.norm(dim=-1), atol=1e-12)  # a rotation keeps lengths
    x32 = x.float()
    assert apply_rope(x32, positions, pairing=pairing).dtype == torch.float32
    assert torch.allclose(apply_rope(x32, positions, pairing=pairing).double(), got, atol=1e-5)


def test_the_two_pairings_differ_by_a_permutation_of_features():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 12, dtype=torch.float64, generator=g)
    perm = torch.cat((torch.arange(0, 12, 2), torch.arange(1, 12, 2)))  # interleaved -> halves layout
    assert torch.allclose(apply_rope(x, pairing="interleaved")[:, perm], apply_rope(x[:, perm], pairing="halves"),
                          atol=1e-12)
    assert not torch.allclose(apply_rope(x, pairing="interleaved"), apply_rope(x, pairing="halves"), atol=1e-3)
    with pytest.raises(ValueError, match="pairing"):
        apply_rope(x, pairing="odd")


@pytest.mark.parametrize("pairing", ["interleaved", "halves"])
def test_scores_depend_only_on_the_offset(pairing):
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(16, dtype=torch.float64, generator=g), torch.randn(16, dtype=torch.float64, generator=g)

    def score(m: int, n: int) -> float:
        rq = apply_rope(q[None], torch.tensor([m]), pairing=pairing)[0]
        rk = apply_rope(k[None], torch.tensor([n]), pairing=pairing)[0]
        return float(rq @ rk)

    for offset in (0, 1, 5, -3):
        values = [score(m, m - offset) for m in (3, 10, 100, 1000)]
        assert max(values) - min(values) < 1e-10, (offset, values)
    assert abs(score(10, 9) - score(10, 4)) > 1e-3  # but different offsets differ


def test_rotary_attention_rotates_q_and_k_only_and_places_queries_last():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 6, 8, dtype=torch.float64, generator=g) for _ in range(3))
    out, w = rotary_attention(q, k, v, causal_mask(6))
    ref = scaled_dot_product_attention(_complex_rope(q, torch.arange(6)), _complex_rope(k, torch.arange(6)), v,
                                       causal_mask(6))
    assert torch.allclose(out, ref[0], atol=1e-12) and torch.allclose(w, ref[1], atol=1e-12)
    last, _ = rotary_attention(q[:, -2:], k, v)  # the last two queries against all six keys
    assert torch.allclose(last, rotary_attention(q, k, v)[0][:, -2:], atol=1e-12)
    shifted = rotary_attention(q, k, v, causal_mask(6))[0]  # same positions + 40 give the same output
    q40, k40 = apply_rope(q, torch.arange(40, 46)), apply_rope(k, torch.arange(40, 46))
    assert torch.allclose(shifted, scaled_dot_product_attention(q40, k40, v, causal_mask(6))[0], atol=1e-10)


def test_rotary_multi_head_attention_and_block_shapes():
    torch.manual_seed(0)
    attn = RotaryMultiHeadAttention(16, 4)
    x = torch.randn(2, 5, 16)
    out, w = attn(x, causal_mask(5))
    assert out.shape == (2, 5, 16) and w.shape == (2, 4, 5, 5)
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 5), atol=1e-6) and (w[..., 0, 1:] == 0).all()
    with pytest.raises(ValueError, match="self-attention"):
        attn(x, kv=x)
    assert isinstance(RotaryBlock(16, 4).attn, RotaryMultiHeadAttention)


def test_positions_gpt_adds_a_table_only_for_learned_and_sinusoidal():
    torch.manual_seed(0)
    ids = torch.randint(0, 11, (2, 8))
    for positions in ("learned", "sinusoidal", "rope"):
        model = PositionsGPT(11, 32, positions, d_model=16, n_heads=2)
        assert model(ids).shape == (2, 8, 11)
        assert isinstance(model.pos, torch.nn.Parameter) == (positions == "learned")
        assert (model.pos.abs().sum() == 0) == (positions == "rope")
        assert all(isinstance(b, RotaryBlock) == (positions == "rope") for b in model.blocks)
    # without any position information a causal model still sees order through the mask; RoPE adds it in the scores
    with pytest.raises(ValueError, match="positions must be"):
        PositionsGPT(11, 32, "alibi")
    with pytest.raises(ValueError, match="max_len"):
        PositionsGPT(11, 8, "rope")(torch.zeros(1, 9, dtype=torch.long))


def test_learned_rows_beyond_training_get_no_gradient():
    torch.manual_seed(0)
    model = PositionsGPT(11, 32, "learned", d_model=16, n_heads=2)
    x = torch.randint(0, 11, (4, 8))
    model(x).sum().backward()
    grad = model.pos.grad
    assert grad[:8].abs().sum() > 0 and (grad[8:] == 0).all()


def test_loss_by_position_reads_fixed_windows():
    torch.manual_seed(0)
    model = PositionsGPT(5, 16, "rope", d_model=8, n_heads=2).train()
    ids = torch.randint(0, 5, (200,))
    a, b = loss_by_position(model, ids, 16, n_windows=8), loss_by_position(model, ids, 16, n_windows=8)
    assert a.shape == (16,) and torch.equal(a, b) and model.training
    uniform = PositionsGPT(5, 16, "rope", d_model=8, n_heads=2)
    for p in uniform.head.parameters():
        torch.nn.init.zeros_(p)  # logits 0: the loss is log 5 at every position
    assert torch.allclose(loss_by_position(uniform, ids, 16, n_windows=8), torch.full((16,), math.log(5)), atol=1e-6)
    with pytest.raises(ValueError, match="too few"):
        loss_by_position(model, ids[:20], 16)


# ----------------------------------------------------------------------------- the exercise's check

def _rotary(*, sign=1.0, exponent=2.0, base=10000.0, q_pairing="interleaved", k_pairing="interleaved",
            rotate_q=True, rotate_k=True, rotate_v=False, causal=True):
    """A learner's rotary attention, right by default; each keyword makes one of the usual mistakes."""
    def rotate(x, pairing):
        T, d = x.shape[-2:]
        theta = base ** (-exponent * torch.arange(d // 2, dtype=x.dtype) / d)  # (d/2,)
        angle = sign * torch.arange(T, dtype=x.dtype)[:, None] * theta  # (T, d/2)
        if pairing == "interleaved":
            a, b = x[..., 0::2], x[..., 1::2]
        else:
            a, b = x[..., : d // 2], x[..., d // 2 :]
        ra, rb = a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()
        if pairing == "interleaved":
            return torch.stack((ra, rb), dim=-1).flatten(-2)
        return torch.cat((ra, rb), dim=-1)

    def my_rotary_attention(q, k, v):
        q = rotate(q, q_pairing) if rotate_q else q
        k = rotate(k, k_pairing) if rotate_k else k
        v = rotate(v, "interleaved") if rotate_v else v
        T = q.shape[-2]
        mask = torch.ones(T, T, dtype=torch.bool).tril() if causal else None
        return scaled_dot_product_attention(q, k, v, mask)[0]
    return my_rotary_attention


ROTARY_MISTAKES = {
    "-theta": (dict(sign=-1.0), r"rotate by -m theta"),
    "only q": (dict(rotate_k=False), "rotate q but not k"),
    "only k": (dict(rotate_q=False), "rotate k but not q"),
    "values": (dict(rotate_v=True), "rotate the values too"),
    "j/d": (dict(exponent=1.0), r"base\^\(-j/d\)"),
    "feature index": (dict(exponent=4.0), "with i the feature"),
    "positive exponent": (dict(exponent=-2.0), r"base\^\(\+2j/d\)"),
    "base": (dict(base=1000.0), "base 1000"),
    "halves": (dict(q_pairing="halves", k_pairing="halves"), "pair the two halves"),
    "mixed": (dict(k_pairing="halves"), "mixing the two conventions"),
    "mixed other way": (dict(q_pairing="halves"), "mixing the two conventions"),
    "no mask": (dict(causal=False), "causal mask"),
}


@pytest.mark.parametrize("seed", [0, 1])
def test_check_rotary_attention_passes_a_right_answer(seed, capsys):
    from course_utils.exercises.rope import check_rotary_attention

    check_rotary_attention(_rotary(), seed=seed)
    assert "OK my_rotary_attention" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", ROTARY_MISTAKES)
def test_check_rotary_attention_names_each_mistake(mistake):
    from course_utils.exercises.rope import check_rotary_attention

    kwargs, words = ROTARY_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=words):
        check_rotary_attention(_rotary(**kwargs))


def test_check_rotary_attention_refuses_the_reference_and_wrong_returns():
    from course_utils.exercises.rope import check_rotary_attention

    with pytest.raises(CheckFailed, match="calls rotary_attention, an existing implementation"):
        check_rotary_attention(lambda q, k, v: rotary_attention(q, k, v, causal_mask(q.shape[-2]))[0])
    with pytest.raises(CheckFailed, match="calls apply_rope"):
        check_rotary_attention(lambda q, k, v: scaled_dot_product_attention(apply_rope(q), apply_rope(k), v,
                                                                            causal_mask(q.shape[-2]))[0])
    with pytest.raises(CheckFailed, match="torch tensor"):
        check_rotary_attention(lambda q, k, v: q.numpy())
    with pytest.raises(CheckFailed, match="shape"):
        check_rotary_attention(lambda q, k, v: v[..., :4])
    with pytest.raises(CheckFailed, match="off|differ|expected"):
        check_rotary_attention(lambda q, k, v: v * 1.01)


def test_the_mistakes_are_all_distinguishable():
    from course_utils.exercises.rope import _attention, _rotary_mistakes, _rotate

    g = np.random.default_rng(0)
    q, k, v = (2 * g.standard_normal((2, 2, 7, 8)) for _ in range(3))
    values = [_attention(_rotate(q), _rotate(k), v), *_rotary_mistakes(q, k, v).values()]
    for i in range(len(values)):
        for j in range(i):
            assert not np.allclose(values[i], values[j], atol=1e-4), (i, j)
