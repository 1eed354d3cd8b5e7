import math
import re

import pytest
import torch
import torch.nn.functional as F

from course_utils import CheckFailed
from course_utils.exercises.self_attention import (
    ATTENTION_CHALLENGE,
    attention_config_loss,
    check_attention_config,
    check_attention_mask,
)
from course_utils.self_attention import (
    MultiHeadAttention,
    OneLayerAttentionLM,
    average_past_loop,
    causal_mask,
    mean_weight_by_offset,
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


def test_average_of_the_past_three_ways_then_causal_attention():
    """Notebook 07, section 1 (after Karpathy's "Let's build GPT"): loop = tril / row sums = softmax of masked zeros."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 3, generator=g, dtype=torch.float64)  # (B, T, C)
    by_loop = average_past_loop(x)
    assert torch.allclose(by_loop[:, 3], x[:, :4].mean(1), rtol=0, atol=1e-15)
    tril = torch.tril(torch.ones(7, 7, dtype=torch.float64))
    by_matmul = (tril / tril.sum(-1, keepdim=True)) @ x
    zeros = torch.zeros(7, 7, dtype=torch.float64).masked_fill(~causal_mask(7), float("-inf"))
    by_softmax = torch.softmax(zeros, dim=-1) @ x
    torch.testing.assert_close(by_matmul, by_loop, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(by_softmax, by_matmul, rtol=1e-12, atol=1e-12)
    # data-dependent scores in place of the zeros: causal self-attention
    q, k, v = (torch.randn(7, 4, generator=g, dtype=torch.float64) for _ in range(3))
    scores = (q @ k.T / 2.0).masked_fill(~causal_mask(7), float("-inf"))  # sqrt(d_k) = 2
    torch.testing.assert_close(torch.softmax(scores, -1) @ v, scaled_dot_product_attention(q, k, v, causal_mask(7))[0],
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.softmax(scores, -1) @ v, F.scaled_dot_product_attention(q, k, v, is_causal=True),
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(\.\.\., T, C\)"):
        average_past_loop(torch.ones(3))


def test_masks():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    m = padding_mask(torch.tensor([2, 3]), 3)
    assert m.shape == (2, 1, 3) and m[0, 0].tolist() == [True, True, False]
    with pytest.raises(ValueError, match="lengths"):
        padding_mask(torch.tensor([[2]]), 3)


def test_fully_masked_row_gives_zero_weights_and_zero_output_not_nan():
    q = k = v = torch.randn(1, 2, 4)
    mask = torch.tensor([[False, False], [True, True]])
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert not out.isnan().any() and (w[0, 0] == 0).all() and (out[0, 0] == 0).all()
    assert torch.allclose(w[0, 1].sum(), torch.tensor(1.0))
    # torch's softmax gives NaN on the same row: the difference the docstring names.
    scores = (q @ k.transpose(1, 2)).masked_fill(~mask, float("-inf"))
    assert torch.softmax(scores, -1)[0, 0].isnan().all()
    mha = MultiHeadAttention(4, 2)
    out_mha, w_mha = mha(q, mask)
    assert torch.equal(w_mha[0, :, 0], torch.zeros(2, 2))
    assert torch.allclose(out_mha[0, 0], mha.out_proj.bias)  # zero heads, then W_O's bias


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
    with pytest.raises(TypeError, match=r"torch.bool tensor \(True = may attend\), got torch.float32.*mask == 0"):
        scaled_dot_product_attention(q, k, v, torch.zeros(4, 4))
    with pytest.raises(TypeError, match=r"torch.bool .*got torch.int64.*\.bool\(\)"):
        scaled_dot_product_attention(q, k, v, causal_mask(4).long())
    with pytest.raises(ValueError, match=r"does not broadcast to the scores' \(2, 4, 4\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 4, dtype=torch.bool))
    # A (B, Tk) key-padding mask given to the function: told how to reshape it.
    with pytest.raises(ValueError, match=r"key-padding mask\? .*mask\[:, None, :\] has shape \(2, 1, 4\)"):
        scaled_dot_product_attention(torch.randn(2, 3, 8), k, v, torch.ones(2, 4, dtype=torch.bool))
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(3, 5, 8)
    with pytest.raises(TypeError, match=r"torch.bool .*got torch.float32"):
        mha(x, torch.ones(5, 5))
    with pytest.raises(TypeError, match=r"torch.bool .*got list"):
        mha(x, [[True] * 5] * 5)
    with pytest.raises(ValueError, match=r"\(B, Tk\) key-padding mask\? .*mask\[:, None, :\]"):
        mha(x, torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, Tk\) key-padding mask\? .*mask\[:, None, :\]"):
        mha(x, torch.ones(3, 6, dtype=torch.bool), kv=torch.randn(3, 6, 8))
    # kv of the wrong width or batch size: a ValueError naming kv, its shape, the expected one and x's.
    with pytest.raises(ValueError, match=r"kv has shape \(3, 6, 4\), expected \(3, Tk, 8\)\..*x has shape \(3, 5, 8\)"):
        mha(x, kv=torch.randn(3, 6, 4))
    with pytest.raises(ValueError, match=r"kv has shape \(2, 6, 8\), expected \(3, Tk, 8\)\..*x has shape \(3, 5, 8\)"):
        mha(x, kv=torch.randn(2, 6, 8))
    out_kv, w_kv = mha(x, kv=torch.randn(3, 6, 8))  # cross-attention with the right kv
    assert out_kv.shape == (3, 5, 8) and w_kv.shape == (3, 2, 5, 6)
    out, w = mha(x, torch.ones(3, 1, 5, dtype=torch.bool))  # the suggested (B, 1, Tk) form works
    assert out.shape == (3, 5, 8) and torch.allclose(w.sum(-1), torch.ones(3, 2, 5))
    # A query that may attend nowhere: zero weights in both modules, never NaN.
    none = torch.zeros(2, 4, 4, dtype=torch.bool)
    assert torch.equal(scaled_dot_product_attention(q, k, v, none)[1], torch.zeros(2, 4, 4))
    assert torch.equal(masked_softmax(torch.randn(2, 3), torch.zeros(2, 3, dtype=torch.bool)), torch.zeros(2, 3))
    with pytest.raises(TypeError, match="torch.bool"):
        masked_softmax(torch.randn(2, 3), torch.ones(2, 3))


def test_mean_weight_by_offset_by_hand():
    T = 6
    # A head that always looks one position back (the first query, with nothing behind it, at itself).
    previous = torch.zeros(T, T)
    previous[0, 0] = 1.0
    previous[torch.arange(1, T), torch.arange(T - 1)] = 1.0
    assert torch.equal(mean_weight_by_offset(previous, 3), torch.tensor([0.0, 1.0, 0.0]))
    # A causal head spread evenly: query t gives 1 / (t + 1) to every key; queries t >= 2 are averaged.
    uniform = causal_mask(T).float() / torch.arange(1, T + 1)[:, None]
    expected = sum(1 / (t + 1) for t in range(2, T)) / (T - 2)
    assert torch.allclose(mean_weight_by_offset(uniform, 3), torch.full((3,), expected))
    # Leading axes are kept: (B, h, T, T) -> (B, h, max_offset).
    stacked = torch.stack([previous, uniform])[None].expand(2, 2, T, T)
    got = mean_weight_by_offset(stacked, 3)
    assert got.shape == (2, 2, 3) and torch.equal(got[1, 0], mean_weight_by_offset(previous, 3))
    with pytest.raises(ValueError, match="max_offset must be from 1 to T = 6, got 7"):
        mean_weight_by_offset(uniform, 7)
    with pytest.raises(ValueError, match=r"weights has shape \(6, 5\), expected \(5, 5\)"):
        mean_weight_by_offset(torch.ones(6, 5), 2)


def test_one_layer_lm_positions_and_attention_weights():
    torch.manual_seed(0)
    lm = OneLayerAttentionLM(10, 8, d_model=16, n_heads=2)
    assert torch.equal(lm.pos, torch.zeros(8, 16))  # the default: positions start at zero
    lm = OneLayerAttentionLM(10, 8, d_model=16, n_heads=2, position_std=1.0)
    assert 0.7 < lm.pos.std().item() < 1.3
    ids = torch.randint(0, 10, (3, 8))
    w = lm.attention_weights(ids)
    assert w.shape == (3, 2, 8, 8) and (w.triu(1) == 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(3, 2, 8))
    assert lm(ids).shape == (3, 8, 10)
    with pytest.raises(ValueError, match="at most the context, 8"):
        lm(torch.randint(0, 10, (3, 9)))
    with pytest.raises(ValueError, match=r"ids has shape \(8,\), expected \(B, T\)"):
        lm(ids[0])
    with pytest.raises(ValueError, match="attention=False"):
        OneLayerAttentionLM(10, 8, attention=False).attention_weights(ids)
    with pytest.raises(ValueError, match="position_std must be >= 0"):
        OneLayerAttentionLM(10, 8, position_std=-1.0)


def test_empty_sequences_get_clear_errors():
    from course_utils.data.dates import encode_source
    from course_utils.output_types import masked_mean

    with pytest.raises(ValueError, match="no valid step in row 1"):
        masked_mean(torch.randn(2, 3, 4), torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="non-empty list"):
        encode_source([])
    with pytest.raises(ValueError, match="non-empty list"):
        encode_source("3 May 1999")


# ----------------------------------------------------------------------------- exercise 3: the attention mask

def _mask_answer(lengths, T, *, diagonal=0, upper=False, invert=False, rows=False, le=False):
    causal = torch.ones(T, T, dtype=torch.bool).tril(diagonal)
    causal = causal.T if upper else causal
    pos = torch.arange(T)
    real = (pos[None, :] <= lengths[:, None]) if le else (pos[None, :] < lengths[:, None])  # (B, T)
    mask = causal & (real[:, :, None] if rows else real[:, None, :])  # (B, T, T)
    return ~mask if invert else mask


MASK_MISTAKES = {  # keyword arguments of _mask_answer -> words the feedback must contain
    "diagonal masked": ({"diagonal": -1}, "mask the diagonal too"),
    "upper triangle": ({"upper": True}, "keep the upper triangle (triu)"),
    "convention inverted": ({"invert": True}, "invert the convention"),
    "padding on queries": ({"rows": True}, "mask the padded queries (rows) instead of the padded keys"),
    "off by one": ({"le": True}, "<= lengths instead of < lengths"),
}


def test_check_attention_mask_passes_a_right_mask(capsys):
    check_attention_mask(_mask_answer)
    check_attention_mask(_mask_answer, seed=1)
    assert "OK the mask for lengths [6, 1" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", MASK_MISTAKES)
def test_check_attention_mask_names_each_mistake(mistake):
    kwargs, words = MASK_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_attention_mask(lambda lengths, T: _mask_answer(lengths, T, **kwargs))


def test_check_attention_mask_refuses_the_reference_and_malformed_masks():
    with pytest.raises(CheckFailed, match="calls causal_mask, padding_mask, an existing implementation"):
        check_attention_mask(lambda lengths, T: causal_mask(T) & padding_mask(lengths, T))
    with pytest.raises(CheckFailed, match=r"dtype torch.float32: return bools \(torch.bool\)"):
        check_attention_mask(lambda lengths, T: _mask_answer(lengths, T).float())
    with pytest.raises(CheckFailed, match=r"has shape \(4, 1, 6\)"):
        check_attention_mask(lambda lengths, T: _mask_answer(lengths, T)[:, :1])
    with pytest.raises(CheckFailed, match="Did you forget a `return`|but it is a NoneType"):
        check_attention_mask(lambda lengths, T: None)


# ----------------------------------------------------------------------------- exercise 4: outcome-graded config

GOOD_ATTENTION_CONFIG = {"d_model": 32, "n_heads": 4, "lr": 2e-2}
BARELY_MISSES = {"d_model": 32, "n_heads": 4, "lr": 1e-2}  # section 7's heads and rate: too slow for 60 steps
ATTENTION_CONFIG_MISTAKES = {  # name -> (config, words the feedback must contain)
    "tiny learning rate": ({"d_model": 32, "n_heads": 4, "lr": 1e-4}, "a learning rate of 0.0001 is small"),
    "one head": ({"d_model": 32, "n_heads": 1, "lr": 3e-2}, "1 head(s)"),
    "one-feature heads": ({"d_model": 8, "n_heads": 8, "lr": 1e-2}, "heads of d_k = 1 features are very narrow"),
}


@pytest.mark.slow
def test_check_attention_config_passes_a_good_config(capsys):
    check_attention_config(GOOD_ATTENTION_CONFIG)
    assert "OK after 60 steps, your one-layer attention model reaches" in capsys.readouterr().out


@pytest.mark.parametrize("name", ATTENTION_CONFIG_MISTAKES)
def test_check_attention_config_says_how_far_and_names_the_culprit(name):
    config, words = ATTENTION_CONFIG_MISTAKES[name]
    with pytest.raises(CheckFailed, match=r"times the target, .* nats above it\. Likely culprit: .*"
                       + re.escape(words)):
        check_attention_config(config)


@pytest.mark.slow
def test_a_config_that_barely_misses_is_told_how_far_it_is():
    loss = attention_config_loss(BARELY_MISSES)
    target = ATTENTION_CHALLENGE["target"]
    assert target <= loss < 1.02 * target  # close, but not there
    words = (rf"validation loss of {loss:.3f} nats/char \(target: below {target}\): 1\.\d\d times the target.*"
             r"a learning rate of 0\.01 is small for 60 steps")
    with pytest.raises(CheckFailed, match=words):
        check_attention_config(BARELY_MISSES)


@pytest.mark.slow
def test_attention_config_loss_is_seeded_and_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = attention_config_loss(GOOD_ATTENTION_CONFIG, seed=4)
    assert torch.equal(torch.rand(3), before)
    assert attention_config_loss(GOOD_ATTENTION_CONFIG, seed=4) == first


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"d_model": 32, "n_heads": 4}, "exactly the keys d_model, n_heads, lr"),
        ({"d_model": 64, "n_heads": 4, "lr": 0.01}, "d_model should be a whole number from 1 to 32"),
        ({"d_model": 32.0, "n_heads": 4, "lr": 0.01}, "d_model should be a whole number"),
        ({"d_model": 30, "n_heads": 4, "lr": 0.01}, "d_model = 30 is not divisible by n_heads = 4"),
        ({"d_model": 32, "n_heads": 4, "lr": 1.0}, r"lr should be a number in \(0, 0.1\]"),
    ],
)
def test_check_attention_config_rejects_malformed_configs_before_training(config, words):
    with pytest.raises(CheckFailed, match=words):
        check_attention_config(config)


def _attention(scale="sqrt", dim=-1, mask_mode="fill"):
    """A learner's scaled dot-product attention, right by default; each keyword makes one plausible mistake."""
    def my_attention(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1)
        scores = scores / {"sqrt": math.sqrt(q.shape[-1]), "d_k": q.shape[-1], "none": 1.0}[scale]
        if mask is not None and mask_mode == "fill":
            scores = scores.masked_fill(~mask, float("-inf"))
        if mask is not None and mask_mode == "inverted":
            scores = scores.masked_fill(mask, float("-inf"))
        weights = torch.softmax(scores, dim=dim)
        if mask is not None and mask_mode == "after":
            weights = weights * mask
        return weights @ v, weights
    return my_attention


def test_check_attention_passes_and_names_each_mistake(capsys):
    from course_utils.exercises.self_attention import check_attention

    check_attention(_attention())
    check_attention(_attention(), seed=1)
    assert "OK my_attention" in capsys.readouterr().out
    for options, words in [(dict(scale="none"), "leave out the scaling by sqrt(d_k)"),
                           (dict(scale="d_k"), "divide by d_k instead of sqrt(d_k)"),
                           (dict(dim=-2), "normalise over the queries"),
                           (dict(mask_mode="inverted"), "take mask = True as 'hidden'"),
                           (dict(mask_mode="after"), "zero the masked weights after the softmax")]:
        with pytest.raises(CheckFailed, match=re.escape(words)):
            check_attention(_attention(**options))
    fused = "scaled_dot_product_attention"  # reached by getattr: no name in the code shows it
    with pytest.raises(CheckFailed, match="reaches torch"):  # the fused kernel, however reached
        check_attention(lambda q, k, v, mask=None: (getattr(torch.nn.functional, fused)(q, k, v, attn_mask=mask),
                                                    None))


def test_check_split_merge_heads_passes_and_names_the_plain_reshape(capsys):
    from course_utils.exercises.self_attention import check_split_merge_heads

    def split(x, h):
        B, T, D = x.shape
        return x.view(B, T, h, D // h).transpose(1, 2)

    def merge(x):
        B, h, T, d = x.shape
        return x.transpose(1, 2).reshape(B, T, h * d)

    check_split_merge_heads(split, merge)
    assert "OK my_split_heads and my_merge_heads" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="reshape x straight to"):
        check_split_merge_heads(lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1), merge)
    with pytest.raises(CheckFailed, match="reshape the heads straight to"):
        check_split_merge_heads(split, lambda x: x.reshape(x.shape[0], x.shape[2], -1))
