import math

import pytest
import torch

from course_utils.data.text import load_corpus
from course_utils.layers import count_parameters
from course_utils.lm import estimate_loss, generate
from course_utils.transformer import MLP, Block, TinyGPT, sinusoidal_positions, train_char_lm

CPU = torch.device("cpu")


def test_sinusoidal_by_hand():
    pe = sinusoidal_positions(3, 4)
    # D = 4: frequencies 1 and 1/100.
    expected = torch.tensor([[math.sin(t), math.cos(t), math.sin(t / 100), math.cos(t / 100)] for t in range(3)])
    assert torch.allclose(pe, expected, atol=1e-6)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(3, 5)


def test_sinusoidal_shift_is_a_rotation():
    # PE[t + k] is a fixed linear map of PE[t], the same for every t.
    pe = sinusoidal_positions(50, 8).double()
    k = 3
    M = torch.linalg.lstsq(pe[:-k], pe[k:]).solution
    assert torch.allclose(pe[:-k] @ M, pe[k:], atol=1e-5)


def test_block_is_pre_layernorm_with_residuals():
    torch.manual_seed(0)
    block = Block(16, 4).double()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    mask = torch.ones(5, 5, dtype=torch.bool).tril()
    h = x + block.attn(block.ln1(x), mask)[0]
    expected = h + block.mlp.proj(torch.nn.functional.gelu(block.mlp.fc(block.ln2(h))))
    assert torch.allclose(block(x, mask), expected)
    assert count_parameters(MLP(16)) == 16 * 64 + 64 + 64 * 16 + 16


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", None])
def test_gpt_is_causal(positions):
    torch.manual_seed(0)
    model = TinyGPT(10, context=8, d_model=16, n_heads=2, n_layers=2, positions=positions).eval()
    ids = torch.randint(0, 10, (2, 8))
    changed = ids.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 10
    a, b = model(ids), model(changed)
    assert a.shape == (2, 8, 10)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6) and not torch.allclose(a[:, 5:], b[:, 5:])


def test_gpt_without_positions_ignores_order():
    torch.manual_seed(0)
    model = TinyGPT(10, context=6, d_model=16, n_heads=2, n_layers=1, positions=None).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    swapped = torch.tensor([[2, 1, 3, 4, 5, 6]])  # same set of tokens before position 2
    assert torch.allclose(model(ids)[0, 2:], model(swapped)[0, 2:], atol=1e-6)
    learned = TinyGPT(10, context=6, d_model=16, n_heads=2, n_layers=1).eval()
    assert not torch.allclose(learned(ids)[0, 2:], learned(swapped)[0, 2:], atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="positions"):
        TinyGPT(10, 8, positions="rotary")
    with pytest.raises(ValueError, match="ids has shape"):
        TinyGPT(10, 8, d_model=16)(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="kind"):
        train_char_lm("abc" * 50, kind="rnn", steps=1)


def test_training_on_any_text_learns():
    text = "the cat sat on the mat. " * 200
    model, data, run = train_char_lm(text, "gpt", context=16, steps=60, device=CPU,
                                     d_model=32, n_heads=2, n_layers=1)
    uniform = math.log(data.vocab.size)
    assert run.val_losses[-1] < 0.5 * uniform and run.steps[-1] == 60
    assert estimate_loss(model, data.val, 16, device=CPU) == pytest.approx(run.val_losses[-1])
    sample = generate(model, data.vocab, "the ", 20, context=16)
    assert sample.startswith("the ") and len(sample) == 24


def test_lstm_baseline_trains_on_the_corpus():
    model, data, run = train_char_lm(load_corpus(50_000), "lstm", context=32, steps=40, device=CPU,
                                     hidden_size=64)
    assert run.val_losses[-1] < run.val_losses[0] or run.val_losses[-1] < math.log(data.vocab.size) - 0.5
