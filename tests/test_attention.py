import numpy as np
import pytest
import torch

from course_utils.attention import (
    AdditiveAttention,
    AttentionSeq2Seq,
    DotAttention,
    additive_attention,
    additive_attention_loop,
    dot_attention,
    greedy_exact_match,
    masked_softmax,
    teacher_forcing_loss,
)
from course_utils.seed import seed_everything


def params(B=3, S=5, Hq=4, Hk=6, A=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, generator=g, dtype=torch.float64)
    k = torch.randn(B, S, Hk, generator=g, dtype=torch.float64)
    W_q = torch.randn(A, Hq, generator=g, dtype=torch.float64)
    W_k = torch.randn(A, Hk, generator=g, dtype=torch.float64)
    v = torch.randn(A, generator=g, dtype=torch.float64)
    lengths = torch.tensor([5, 3, 1])[:B]
    mask = torch.arange(S)[None] < lengths[:, None]
    return q, k, W_q, W_k, v, lengths, mask


def test_masked_softmax_zero_at_padding():
    scores = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 100.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    w = masked_softmax(scores, mask)
    assert torch.allclose(w[0], torch.softmax(scores[0], 0))
    assert torch.allclose(w[1], torch.tensor([0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match="mask"):
        masked_softmax(scores, mask[:, :2])


def test_additive_matches_hand_computed_loop():
    q, k, W_q, W_k, v, lengths, mask = params()
    ctx, w = additive_attention(q, k, mask, W_q, W_k, v)
    for b in range(3):
        c_ref, w_ref = additive_attention_loop(q[b].numpy(), k[b].numpy(), int(lengths[b]),
                                               W_q.numpy(), W_k.numpy(), v.numpy())
        np.testing.assert_allclose(ctx[b].numpy(), c_ref, rtol=1e-10)
        np.testing.assert_allclose(w[b].numpy(), w_ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(w.sum(1), torch.ones(3, dtype=torch.float64))
    assert (w[2, 1:] == 0).all() and torch.allclose(ctx[2], k[2, 0])  # one real position


def test_additive_one_step_by_hand():
    # S = 2, A = 1: e_j = v tanh(W_q q + W_k k_j).
    q = torch.tensor([[1.0]])
    k = torch.tensor([[[1.0], [-1.0]]])
    ctx, w = additive_attention(q, k, None, torch.tensor([[1.0]]), torch.tensor([[1.0]]), torch.tensor([2.0]))
    e = torch.tensor([2 * float(np.tanh(2.0)), 0.0])
    expected_w = torch.softmax(e, 0)
    assert torch.allclose(w[0], expected_w) and torch.allclose(ctx[0, 0], expected_w[0] - expected_w[1])


def test_loop_does_not_overflow():
    keys = np.ones((3, 1))
    _, w = additive_attention_loop(np.ones(1), keys, 3, np.ones((1, 1)), np.ones((1, 1)), np.array([1000.0]))
    assert np.allclose(w, 1 / 3)


def test_dot_attention():
    q, k, *_, mask = params(Hq=6)
    ctx, w = dot_attention(q, k, mask)
    scores = torch.einsum("bh,bsh->bs", q, k).masked_fill(~mask, -torch.inf)
    assert torch.allclose(w, torch.softmax(scores, -1))
    W = torch.eye(6, dtype=torch.float64) * 2
    assert torch.allclose(dot_attention(q, k, mask, W)[1], torch.softmax(scores * 2, -1))
    assert torch.allclose(ctx, torch.einsum("bs,bsh->bh", w, k))
    with pytest.raises(ValueError, match="W"):
        dot_attention(q, k, mask, torch.eye(5))


def test_shape_errors():
    q, k, W_q, W_k, v, _, mask = params()
    with pytest.raises(ValueError, match="query"):
        additive_attention(q[:, :3], k, mask, W_q, W_k, v)
    with pytest.raises(ValueError, match="W_k"):
        additive_attention(q, k, mask, W_q, W_k[:, :2], v)
    with pytest.raises(ValueError, match="attention must be"):
        AttentionSeq2Seq(10, 5, attention="luong")


def test_modules_gradients_match_finite_differences():
    torch.manual_seed(0)
    for module in (AdditiveAttention(4, 6, 5), DotAttention(4, 6)):
        module.double()
        q, k, *_, mask = params()
        inputs = (q.requires_grad_(), k.requires_grad_())
        assert torch.autograd.gradcheck(lambda q, k, m=module, mask=mask: m(q, k, mask)[0], inputs)


@pytest.mark.parametrize("kind", ["additive", "dot", None])
def test_seq2seq_shapes_padding_and_greedy(kind):
    seed_everything(0)
    model = AttentionSeq2Seq(12, 5, embed=8, hidden=16, attention=kind).eval()
    src = torch.randint(1, 12, (4, 7))
    lengths = torch.tensor([7, 5, 3, 1])
    src[1, 5:], src[2, 3:], src[3, 1:] = 0, 0, 0
    tgt = torch.randint(1, 5, (4, 6))
    logits = model(src, lengths, tgt)
    assert logits.shape == (4, 6, 5)
    # Padding does not change the result: the same rows with less padding give the same logits.
    short = model(src[1:, :5], lengths[1:], tgt[1:])
    assert torch.allclose(logits[1:], short, atol=1e-6)
    tokens, weights = model.greedy(src, lengths, 6)
    assert tokens.shape == (4, 6)
    if kind is None:
        assert weights is None
    else:
        assert weights.shape == (4, 6, 7) and (weights[3, :, 1:] == 0).all()
        assert torch.allclose(weights.sum(-1), torch.ones(4, 6))
    # Greedy decoding feeds back its own argmax, exactly as teacher forcing on those tokens.
    tf = model(src, lengths, torch.cat([torch.zeros(4, 1, dtype=torch.long), tokens[:, :-1]], 1)).argmax(-1)
    assert torch.equal(tf, tokens)
    assert greedy_exact_match(model, src, lengths, tokens).all()


def test_seq2seq_learns_to_copy():
    seed_everything(0)
    model = AttentionSeq2Seq(6, 6, embed=8, hidden=32, attention="additive")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        src = torch.randint(1, 6, (32, 5))
        loss = teacher_forcing_loss(model, (src, torch.full((32,), 5), src))
        opt.zero_grad()
        loss.backward()
        opt.step()
    src = torch.randint(1, 6, (256, 5))
    assert greedy_exact_match(model, src, torch.full((256,), 5), src).float().mean() > 0.9
