import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.self_attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)


def test_sdpa_by_hand():
    # One query, two keys: scores [1, 0] / sqrt(1) -> softmax -> mix of the values.
    q = torch.tensor([[1.0]])
    k = torch.tensor([[1.0], [0.0]])
    v = torch.tensor([[10.0], [20.0]])
    out, w = scaled_dot_product_attention(q, k, v)
    a = math.e / (math.e + 1)
    assert torch.allclose(w, torch.tensor([[a, 1 - a]]))
    assert torch.allclose(out, torch.tensor([[10 * a + 20 * (1 - a)]]))


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_matches_torch(masked):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g, dtype=torch.float64) for _ in range(3))
    mask = causal_mask(5) if masked else None
    out, w = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(out, ref, atol=1e-12)
    if masked:
        assert (w.triu(1) == 0).all()


def test_masks():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    m = padding_mask(torch.tensor([2, 3]), 3)
    assert m.shape == (2, 1, 3) and m[0, 0].tolist() == [True, True, False]
    with pytest.raises(ValueError, match="lengths"):
        padding_mask(torch.tensor([[2]]), 3)


def test_fully_masked_row_gives_zeros_not_nan():
    q = k = v = torch.randn(1, 2, 4)
    mask = torch.tensor([[False, False], [True, True]])
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert not out.isnan().any() and (w[0, 0] == 0).all()


def test_padding_keys_get_no_weight():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 6, generator=g)
    mask = padding_mask(torch.tensor([4, 2]), 4)
    out, w = scaled_dot_product_attention(x, x, x, mask)
    assert (w[1, :, 2:] == 0).all()
    out_short, _ = scaled_dot_product_attention(x[1:, :, :], x[1:, :2], x[1:, :2])
    assert torch.allclose(out[1:], out_short, atol=1e-6)


def test_split_merge_heads():
    x = torch.arange(2 * 3 * 8.0).view(2, 3, 8)
    h = split_heads(x, 4)
    assert h.shape == (2, 4, 3, 2)
    assert torch.equal(h[1, 2, 0], x[1, 0, 4:6])  # head 2 takes features 4..5
    assert torch.equal(merge_heads(h), x)
    with pytest.raises(ValueError, match="divisible"):
        split_heads(x, 3)
    with pytest.raises(ValueError, match=r"\(B, h, T, d_k\)"):
        merge_heads(x)


@pytest.mark.parametrize("mask_kind", [None, "causal", "padding"])
def test_mha_matches_torch(mask_kind):
    torch.manual_seed(0)
    B, T, D, h = 3, 6, 16, 4
    ours = MultiHeadAttention(D, h).double()
    ref = torch.nn.MultiheadAttention(D, h, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.in_proj_weight)
        ref.in_proj_bias.normal_()
        ours.in_proj_bias.copy_(ref.in_proj_bias)
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    x = torch.randn(B, T, D, dtype=torch.float64)
    if mask_kind == "causal":
        ours_out, ours_w = ours(x, causal_mask(T))
        ref_out, ref_w = ref(x, x, x, attn_mask=~causal_mask(T), average_attn_weights=False)
    elif mask_kind == "padding":
        lengths = torch.tensor([6, 4, 1])
        ours_out, ours_w = ours(x, padding_mask(lengths, T))
        ref_out, ref_w = ref(x, x, x, key_padding_mask=~padding_mask(lengths, T)[:, 0], average_attn_weights=False)
    else:
        ours_out, ours_w = ours(x)
        ref_out, ref_w = ref(x, x, x, average_attn_weights=False)
    assert torch.allclose(ours_out, ref_out, atol=1e-12)
    assert torch.allclose(ours_w, ref_w, atol=1e-12)


def test_mha_errors():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="x has shape"):
        MultiHeadAttention(8, 2)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="k has shape"):
        scaled_dot_product_attention(torch.randn(2, 4), torch.randn(2, 3), torch.randn(2, 3))


def test_masks_follow_one_convention_with_clear_errors():
    """Bools, True = may attend; float/int masks, key-padding masks and a wrong kv get messages."""
    from course_utils.attention import masked_softmax
    from course_utils.self_attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention

    torch.manual_seed(0)
    q = k = v = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"torch.bool .*0 and -inf .*mask == 0"):
        scaled_dot_product_attention(q, k, v, torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"torch.bool .*\.bool\(\)"):
        scaled_dot_product_attention(q, k, v, causal_mask(4).long())
    with pytest.raises(ValueError, match=r"does not broadcast to the scores' \(2, 4, 4\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 4, dtype=torch.bool))
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(3, 5, 8)
    with pytest.raises(ValueError, match=r"\(B, Tk\) key-padding mask\? .*mask\[:, None, :\]"):
        mha(x, torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"kv has shape \(3, 6, 4\), expected \(3, Tk, 8\)"):
        mha(x, kv=torch.randn(3, 6, 4))
    out, w = mha(x, torch.ones(3, 1, 5, dtype=torch.bool))  # the suggested (B, 1, Tk) form works
    assert out.shape == (3, 5, 8) and torch.allclose(w.sum(-1), torch.ones(3, 2, 5))
    # A query that may attend nowhere: zero weights in both modules, never NaN.
    none = torch.zeros(2, 4, 4, dtype=torch.bool)
    assert torch.equal(scaled_dot_product_attention(q, k, v, none)[1], torch.zeros(2, 4, 4))
    assert torch.equal(masked_softmax(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.bool)), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="torch.bool"):
        masked_softmax(torch.randn(2, 3), torch.ones(2, 3))


def test_empty_sequences_get_clear_errors():
    from course_utils.data.dates import encode_source
    from course_utils.output_types import masked_mean

    with pytest.raises(ValueError, match="no valid step in row 1"):
        masked_mean(torch.randn(2, 3, 4), torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="non-empty list"):
        encode_source([])
    with pytest.raises(ValueError, match="non-empty list"):
        encode_source("3 May 1999")
