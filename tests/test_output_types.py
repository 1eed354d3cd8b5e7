import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_utils.data.padding import pad_batch
from course_utils.data.synthetic import letters_only, reversal_pairs, segmentation_data
from course_utils.output_types import (
    BOS,
    EOS,
    PAD,
    BagOfCharsMLP,
    ConditionalCharLM,
    EncoderDecoder,
    SequenceClassifier,
    Tagger,
    bidirectional_rnn,
    last_valid,
    length_mask,
    linear_schedule,
    masked_mean,
    reverse_padded,
    shift_right,
    stacked_rnn,
)


def test_pad_batch_and_mask():
    x, lengths = pad_batch([[3, 4, 5], [7], [1, 2]], pad_value=0)
    assert x.tolist() == [[3, 4, 5], [7, 0, 0], [1, 2, 0]]
    assert lengths.tolist() == [3, 1, 2]
    assert length_mask(lengths).tolist() == [[True, True, True], [True, False, False], [True, True, False]]
    assert length_mask(lengths, 4).shape == (3, 4)
    with pytest.raises(ValueError):
        pad_batch([[1], []])
    with pytest.raises(ValueError, match=r"lengths has shape \(2, 3\), expected \(B,\)\."):
        length_mask(torch.ones(2, 3, dtype=torch.long))


def test_masked_mean_ignores_padding():
    torch.manual_seed(0)
    h = torch.randn(3, 5, 4)
    lengths = torch.tensor([5, 2, 1])
    mask = length_mask(lengths, 5)
    expected = torch.stack([h[b, : lengths[b]].mean(0) for b in range(3)])
    torch.testing.assert_close(masked_mean(h, mask), expected)
    h2 = h.clone()
    h2[~mask] = 1e6
    torch.testing.assert_close(masked_mean(h2, mask), expected)
    with pytest.raises(ValueError, match="mask"):
        masked_mean(h, mask[:, :4])
    with pytest.raises(ValueError, match=r"x has shape \(5, 4\), expected \(B, T, H\)\."):
        masked_mean(h[0], mask)


def test_last_valid_matches_packed_final_state():
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 6, batch_first=True)
    x = torch.randn(4, 7, 3)
    lengths = torch.tensor([7, 3, 5, 1])
    packed_out, h = gru(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    out, _ = pad_packed_sequence(packed_out, batch_first=True)
    torch.testing.assert_close(last_valid(out, lengths), h[0])
    for b in range(4):  # and each equals running the sequence alone
        torch.testing.assert_close(h[0, b], gru(x[b : b + 1, : lengths[b]])[1][0, 0])
    with pytest.raises(ValueError, match="lengths"):
        last_valid(out, lengths[:2])


def test_reverse_padded():
    x = torch.arange(8.0).reshape(2, 4)
    assert reverse_padded(x, torch.tensor([4, 2])).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    y = torch.randn(3, 6, 2)
    lens = torch.tensor([6, 1, 4])
    torch.testing.assert_close(reverse_padded(reverse_padded(y, lens), lens), y)
    with pytest.raises(ValueError):
        reverse_padded(y, lens[:2])


@pytest.mark.parametrize("cell", [torch.nn.GRU, torch.nn.LSTM, torch.nn.RNN])
def test_bidirectional_from_two_layers_matches_torch(cell):
    torch.manual_seed(0)
    ref = cell(4, 5, batch_first=True, bidirectional=True)
    fwd, bwd = cell(4, 5, batch_first=True), cell(4, 5, batch_first=True)
    with torch.no_grad():
        for half, suffix in ((fwd, ""), (bwd, "_reverse")):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(half, f"{name}_l0").copy_(getattr(ref, f"{name}_l0{suffix}"))
    x = torch.randn(3, 6, 4)
    lens = torch.tensor([6, 2, 4])
    packed, _ = ref(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False))
    expected, _ = pad_packed_sequence(packed, batch_first=True)
    got = bidirectional_rnn(fwd, bwd, x, lens) * length_mask(lens, 6).unsqueeze(-1)
    torch.testing.assert_close(got, expected)
    full, _ = ref(x)  # no padding: all lengths equal
    torch.testing.assert_close(bidirectional_rnn(fwd, bwd, x), full)


@pytest.mark.parametrize("cell", [torch.nn.GRU, torch.nn.LSTM])
def test_stacked_matches_num_layers(cell):
    torch.manual_seed(0)
    deep = cell(3, 4, num_layers=3, batch_first=True)
    layers = [cell(3, 4, batch_first=True), cell(4, 4, batch_first=True), cell(4, 4, batch_first=True)]
    with torch.no_grad():
        for depth, layer in enumerate(layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layer, f"{name}_l0").copy_(getattr(deep, f"{name}_l{depth}"))
    x = torch.randn(2, 5, 3)
    out, h = deep(x)
    h = h[0] if isinstance(h, tuple) else h
    got_out, got_h = stacked_rnn(layers, x)
    torch.testing.assert_close(got_out, out)
    torch.testing.assert_close(got_h, h)


def test_classifier_ignores_padding():
    torch.manual_seed(0)
    for kwargs in ({"cell": "gru"}, {"cell": "lstm", "num_layers": 2}, {"cell": "rnn", "bidirectional": True}):
        model = SequenceClassifier(10, 4, 6, 3, **kwargs).eval()
        seqs = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 1]]
        x, lengths = pad_batch(seqs)
        batch = model(x, lengths)
        alone = torch.cat([model(*pad_batch([s])) for s in seqs])
        torch.testing.assert_close(batch, alone)
    with pytest.raises(ValueError, match=r"x has shape \(5,\), expected \(B, T\)\."):
        model(x[0], lengths)


def test_bag_of_chars_features():
    model = BagOfCharsMLP(5, 8, 2)
    x, lengths = pad_batch([[1, 1, 2], [3]])
    feats = model.features(x, lengths)
    torch.testing.assert_close(feats, torch.tensor([[0, 2 / 3, 1 / 3, 0, 0], [0, 0, 0, 1.0, 0]]))
    assert model(x, lengths).shape == (2, 2)


def test_conditional_lm_sampling_at_low_temperature_is_greedy():
    torch.manual_seed(0)
    model = ConditionalCharLM(vocab_size=6, num_classes=2, embed=4, hidden=8).eval()
    cond = torch.tensor([0, 1])
    got = model.sample(cond, temperature=1e-6, max_len=5, generator=torch.Generator().manual_seed(0))
    for b in range(2):  # greedy decoding by hand, through forward()
        seq = [0]
        for _ in range(5):
            nxt = int(model(cond[b : b + 1], torch.tensor([seq]))[0, -1].argmax())
            if nxt == 0:
                break
            seq.append(nxt)
        assert got[b] == seq[1:]
    assert model(cond, torch.zeros(2, 3, dtype=torch.long)).shape == (2, 3, 6)
    with pytest.raises(ValueError, match="cond"):
        model(cond[:1], torch.zeros(2, 3, dtype=torch.long))


def test_bidirectional_tagger_sees_the_future():
    torch.manual_seed(0)
    x = torch.randint(0, 5, (1, 6))
    x2 = x.clone()
    x2[0, -1] = (x[0, -1] + 1) % 5
    for bidirectional, changes in ((False, False), (True, True)):
        tagger = Tagger(5, 3, 4, 2, bidirectional=bidirectional)
        first = tagger(x)[0, 0], tagger(x2)[0, 0]
        assert (not torch.allclose(*first)) == changes
        assert tagger(x).shape == (1, 6, 2)


def test_shift_right_and_schedule():
    y = torch.tensor([[5, 6, 7], [8, EOS, PAD]])
    assert shift_right(y).tolist() == [[BOS, 5, 6], [BOS, 8, EOS]]
    assert shift_right(y, bos=9)[:, 0].tolist() == [9, 9]
    assert linear_schedule(0, 10) == 1.0 and linear_schedule(5, 10) == 0.5 and linear_schedule(20, 10) == 0.0
    assert linear_schedule(5, 10, 1.0, 0.5) == 0.75
    with pytest.raises(ValueError):
        linear_schedule(0, 0)


def test_seq2seq_teacher_forcing_paths_agree_and_padding_is_ignored():
    torch.manual_seed(0)
    model = EncoderDecoder(vocab_size=9, embed=4, hidden=6).eval()
    src, src_lengths = pad_batch([[3, 4, 5, 6], [7, 8]], PAD)
    tgt, _ = pad_batch([[6, 5, 4, 3, EOS], [8, 7, EOS]], PAD)
    one_call = model(src, src_lengths, tgt, teacher_forcing=1.0)
    # p just below 1: the step-by-step loop, with every coin choosing the true token
    loop = model(src, src_lengths, tgt, teacher_forcing=1.0 - 1e-12, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loop, one_call)
    alone = model.encode(*pad_batch([[7, 8]], PAD))
    torch.testing.assert_close(model.encode(src, src_lengths)[:, 1], alone[:, 0])
    # p = 0: the decoder reads its own argmax, exactly what greedy decoding does
    free = model(src, src_lengths, tgt, teacher_forcing=0.0)
    torch.testing.assert_close(free.argmax(-1), model.greedy_decode(src, src_lengths, tgt.shape[1]))


def test_text_tasks():
    assert letters_only("Hello, World!  It's 3.11") == "hello world it s"
    letters, tags = segmentation_data("The cat, the hat.", chunk=4)
    # "thecatthehat" -> 12 letters, 3 chunks; words end after e, t, e, t
    assert "".join(chr(97 + c) for c in letters.ravel()) == "thecatthehat"
    assert tags.ravel().tolist() == [0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1]
    pairs = reversal_pairs("abcdefghij", 20, 2, 5, np.random.default_rng(0))
    assert all(b == a[::-1] and 2 <= len(a) <= 5 and a in "abcdefghij" for a, b in pairs)
    with pytest.raises(ValueError):
        reversal_pairs("abc", 1, 2, 5, np.random.default_rng(0))
