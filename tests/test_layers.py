"""torch.nn's recurrent layers by name, the LSTM's forget bias, parameter counts (course_utils.shared.layers)."""

import pytest
import torch

from course_utils.shared.gated import gate_slices
from course_utils.shared.layers import (
    RECURRENT_LAYERS,
    count_parameters,
    layer_class,
    recurrent_layer,
    set_forget_bias,
    time_first_copy,
)


def test_layer_class_accepts_any_letter_case():
    assert set(RECURRENT_LAYERS) == {"rnn", "lstm", "gru"}
    assert layer_class("LSTM") is layer_class("lstm") is torch.nn.LSTM
    assert layer_class("Gru") is torch.nn.GRU and layer_class("rnn") is torch.nn.RNN
    with pytest.raises(ValueError, match=r"kind must be one of rnn, lstm, gru .*got 'transformer'"):
        layer_class("transformer")
    with pytest.raises(ValueError, match="kind must be one of"):
        layer_class(None)


def test_recurrent_layer_is_batch_first_and_passes_kwargs():
    for kind, cls in (("rnn", torch.nn.RNN), ("LSTM", torch.nn.LSTM), ("gru", torch.nn.GRU)):
        layer = recurrent_layer(kind, 2, 3)
        assert type(layer) is cls and layer.batch_first
        out, _ = layer(torch.zeros(4, 5, 2))  # (B, T, I)
        assert out.shape == (4, 5, 3)
    deep = recurrent_layer("gru", 2, 3, num_layers=2, bidirectional=True)
    assert deep.num_layers == 2 and deep.bidirectional and deep.batch_first
    with pytest.raises(ValueError, match="kind"):
        recurrent_layer("Transformer", 2, 3)


def test_set_forget_bias_and_recurrent_layer():
    layer = recurrent_layer("LSTM", 2, 3, forget_bias=1.0)
    f = gate_slices(3)["f"]
    torch.testing.assert_close(layer.bias_ih_l0[f] + layer.bias_hh_l0[f], torch.ones(3))
    set_forget_bias(layer, 2.5)
    torch.testing.assert_close(layer.bias_ih_l0[f] + layer.bias_hh_l0[f], torch.full((3,), 2.5))
    assert layer.batch_first
    assert isinstance(recurrent_layer("GRU", 2, 3), torch.nn.GRU)
    torch.manual_seed(0)
    keep = recurrent_layer("lstm", 2, 3)  # forget_bias=None keeps PyTorch's initialisation
    assert not torch.allclose(keep.bias_ih_l0[f] + keep.bias_hh_l0[f], torch.ones(3))


def test_set_forget_bias_sets_every_layer_and_direction():
    lstm = torch.nn.LSTM(2, 3, num_layers=2, bidirectional=True)
    set_forget_bias(lstm, 1.5)
    f = gate_slices(3)["f"]
    names = [name for name, _ in lstm.named_parameters()]
    ih = [n for n in names if n.startswith("bias_ih_l")]
    hh = [n for n in names if n.startswith("bias_hh_l")]
    assert sorted(ih) == ["bias_ih_l0", "bias_ih_l0_reverse", "bias_ih_l1", "bias_ih_l1_reverse"]
    assert len(hh) == 4
    for name in ih:
        torch.testing.assert_close(getattr(lstm, name)[f], torch.full((3,), 1.5))
    for name in hh:
        torch.testing.assert_close(getattr(lstm, name)[f], torch.zeros(3))
    # the other gates' rows are untouched: not all equal to 1.5 or 0
    assert not torch.allclose(lstm.bias_ih_l1[:3], torch.full((3,), 1.5))
    # and through recurrent_layer, for a stacked bidirectional layer too
    layer = recurrent_layer("lstm", 2, 3, forget_bias=1.0, num_layers=2, bidirectional=True)
    for name in ih:
        torch.testing.assert_close(getattr(layer, name)[f] + getattr(layer, name.replace("_ih_", "_hh_"))[f],
                                   torch.ones(3))


def test_count_parameters():
    assert count_parameters(torch.nn.Linear(3, 4)) == 16  # 3 * 4 weights + 4 biases
    frozen = torch.nn.Linear(3, 4)
    frozen.bias.requires_grad_(False)
    assert count_parameters(frozen) == 12  # only trainable scalars
    assert count_parameters(torch.nn.LSTM(100, 50)) == 30_400


def test_time_first_copy_has_the_same_weights_and_reads_time_first():
    from course_utils.lstm import LSTM

    torch.manual_seed(0)
    layer = recurrent_layer("lstm", 3, 4)  # batch-first
    x = torch.randn(2, 5, 3)  # (B, T, I)
    twin = time_first_copy(layer)
    assert layer.batch_first and not twin.batch_first
    with torch.no_grad():
        torch.testing.assert_close(twin(x.transpose(0, 1))[0].transpose(0, 1), layer(x)[0])
        torch.testing.assert_close(LSTM.from_torch(twin)(x.transpose(0, 1))[0].transpose(0, 1), layer(x)[0])
