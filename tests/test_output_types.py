import re

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_utils import CheckFailed
from course_utils.attention import AttentionSeq2Seq
from course_utils.data.padding import pad_batch
from course_utils.data.synthetic import letters_only, reversal_pairs, segmentation_data
from course_utils.exercises.output_types import (
    CLASSIFIER_CHALLENGE,
    TAGGER_CHALLENGE,
    check_classifier_config,
    check_exact_match,
    check_last_valid,
    check_tagger_config,
    classifier_config_accuracy,
    tagger_config_f1,
)
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
    tagger_split,
)
from course_utils.shared.metrics import exact_match


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
    tgt_in = shift_right(tgt, BOS)
    one_call = model(src, src_lengths, tgt_in, teacher_forcing=1.0)
    # p just below 1: the step-by-step loop, with every coin choosing the true token
    loop = model(src, src_lengths, tgt_in, teacher_forcing=1.0 - 1e-12, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loop, one_call)
    alone = model.encode(*pad_batch([[7, 8]], PAD))
    torch.testing.assert_close(model.encode(src, src_lengths)[:, 1], alone[:, 0])
    # p = 0: the decoder reads its own argmax, exactly what greedy decoding does
    free = model(src, src_lengths, tgt_in, teacher_forcing=0.0)
    tokens, weights = model.greedy(src, src_lengths, tgt.shape[1])
    torch.testing.assert_close(free.argmax(-1), tokens)
    assert weights is None  # no attention: the decoder sees one vector


def test_seq2seq_models_share_one_decoding_interface():
    """05c's EncoderDecoder decodes like 06's AttentionSeq2Seq: greedy(src, lengths, steps, bos) -> (ids, weights)."""
    src, src_lengths = pad_batch([[3, 4, 5, 6], [7, 8]], PAD)
    for model in (EncoderDecoder(vocab_size=9, embed=4, hidden=6), AttentionSeq2Seq(9, 9, embed=4, hidden=6)):
        tokens, _ = model.eval().greedy(src, src_lengths, 5, bos=BOS)
        assert tokens.shape == (2, 5) and tokens.dtype == torch.long
        assert model(src, src_lengths, shift_right(torch.full((2, 5), 4), BOS)).shape == (2, 5, 9)


def test_seq2seq_refuses_bad_input_with_a_clear_message():
    model = EncoderDecoder(vocab_size=9, embed=4, hidden=6)
    src, src_lengths = pad_batch([[3, 4, 5, 6], [7, 8]], PAD)
    with pytest.raises(ValueError, match=r"tgt_in has shape \(3, 4\), expected \(2, T\)"):
        model(src, src_lengths, torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="lengths must all be at least 1"):
        model.encode(src, torch.tensor([4, 0]))


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


# ---------------------------------------------------------------- graded exercises (05a and 05c)

def test_classifier_pooling_ignores_padding():
    torch.manual_seed(0)
    for pooling in ("mean", "max"):
        model = SequenceClassifier(10, 4, 6, 3, pooling=pooling, bidirectional=pooling == "max").eval()
        seqs = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 1]]
        x, lengths = pad_batch(seqs)
        alone = torch.cat([model(*pad_batch([s])) for s in seqs])
        torch.testing.assert_close(model(x, lengths), alone)
    with pytest.raises(ValueError, match="pooling must be one of last, mean, max"):
        SequenceClassifier(10, 4, 6, 3, pooling="first")


def _last_valid_ok(outputs, lengths):
    return outputs[torch.arange(len(lengths)), lengths - 1]


LAST_VALID_MISTAKES = {  # name -> (function, words the feedback must contain)
    "padded last step": (lambda o, n: o[:, -1], r"outputs\[:, -1\], the last step of the padded batch"),
    "off by one": (lambda o, n: o[torch.arange(len(n)), n.clamp(max=o.shape[1] - 1)],
                   "index with lengths instead of lengths - 1"),
    "off by one, on a batch as long as its longest sequence": (  # step T does not exist: an IndexError
        lambda o, n: o[torch.arange(len(n)), n - (1 if n.max() < o.shape[1] else 0)],
        r"raised IndexError.*the last real step of sequence b is lengths\[b\] - 1"),
    "first step": (lambda o, n: o[:, 0], r"outputs\[:, 0\], the first step"),
    "batch axis": (lambda o, n: o.gather(0, (n - 1).view(-1, 1, 1).expand(-1, 1, o.shape[2])).squeeze(1),
                   "index the batch axis with lengths - 1"),
    "every length for every row": (lambda o, n: o[:, n - 1], r"Pair row b with its own length"),
    "mean": (lambda o, n: masked_mean(o, length_mask(n, o.shape[1])), "mean over the valid steps"),
    "no return": (lambda o, n: None, "Did you forget a `return`"),
}


def test_check_last_valid_passes_the_reference(capsys):
    check_last_valid(_last_valid_ok)
    check_last_valid(_last_valid_ok, seed=1)
    assert "OK my_last_valid" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(LAST_VALID_MISTAKES))
def test_check_last_valid_names_the_mistake(name):
    fn, words = LAST_VALID_MISTAKES[name]
    with pytest.raises(CheckFailed, match=words):
        check_last_valid(fn)


def test_check_last_valid_refuses_the_reference():
    with pytest.raises(CheckFailed, match="calls last_valid, an existing implementation"):
        check_last_valid(lambda o, n: last_valid(o, n))


# The outcome-graded exercise of 05a: configurations a learner might hand in.
GOOD_CLASSIFIER = {"cell": "gru", "hidden_size": 64, "lr": 1e-2, "pooling": "last"}
CLASSIFIER_MISTAKES = {  # name -> (config, words the feedback must contain)
    "Adam's default learning rate": ({"cell": "gru", "hidden_size": 64, "lr": 1e-3, "pooling": "last"},
                                     "a learning rate of 0.001 is small"),
    "too few units": ({"cell": "gru", "hidden_size": 8, "lr": 1e-2, "pooling": "last"}, "8 units are few"),
}
CLASSIFIER_BARELY_MISSES = {"cell": "gru", "hidden_size": 64, "lr": 1e-2, "pooling": "mean"}


@pytest.mark.slow
def test_check_classifier_config_passes_a_good_config(capsys):
    check_classifier_config(GOOD_CLASSIFIER)
    assert "OK after 150 steps of 64 names, your classifier reaches" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(CLASSIFIER_MISTAKES))
@pytest.mark.slow
def test_check_classifier_config_says_how_far_and_names_the_culprit(name):
    config, words = CLASSIFIER_MISTAKES[name]
    with pytest.raises(CheckFailed, match=r"times the target's 0\.25\. Likely culprit: .*" + re.escape(words)):
        check_classifier_config(config)


@pytest.mark.slow
def test_a_classifier_config_that_barely_misses_is_told_how_far_it_is():
    target = CLASSIFIER_CHALLENGE["target"]
    words = rf"validation accuracy of (0\.\d+) \(target: at least {target}.*: its error rate .* is 1\.\d times .*" \
            r"pooling 'mean' mixes the states"
    with pytest.raises(CheckFailed, match=words) as failed:
        check_classifier_config(CLASSIFIER_BARELY_MISSES)
    acc = float(re.search(words, str(failed.value)).group(1))
    assert target - 0.05 < acc < target  # close, but not there: within 1.2 times the allowed error


@pytest.mark.slow
def test_classifier_config_accuracy_is_seeded_and_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = classifier_config_accuracy(GOOD_CLASSIFIER, seed=1)
    assert torch.equal(torch.rand(3), before)
    assert classifier_config_accuracy(GOOD_CLASSIFIER, seed=1) == first


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"cell": "gru", "hidden_size": 64, "lr": 0.01}, "exactly the keys cell, hidden_size, lr, pooling"),
        ({**GOOD_CLASSIFIER, "cell": "GRU"}, "cell should be 'rnn', 'lstm' or 'gru', got 'GRU'"),
        ({**GOOD_CLASSIFIER, "hidden_size": 256}, "hidden_size should be a whole number from 1 to 64"),
        ({**GOOD_CLASSIFIER, "lr": 0.5}, r"lr should be a number in \(0, 0.1\]"),
        ({**GOOD_CLASSIFIER, "pooling": "first"}, "pooling should be one of 'last', 'mean', 'max'"),
        ("gru", "exactly the keys .*; got str"),
    ],
)
def test_check_classifier_config_rejects_malformed_configs_before_training(config, words):
    with pytest.raises(CheckFailed, match=words):
        check_classifier_config(config)


def _exact_match_ok(pred, targets, pad):
    return ((pred[:, : targets.shape[1]] == targets) | (targets == pad)).all(1)


EXACT_MATCH_MISTAKES = {  # name -> (function, words the feedback must contain)
    "padding compared": (lambda p, t, pad: (p[:, : t.shape[1]] == t).all(1), "compare the padding too"),
    "token accuracy": (lambda p, t, pad: ((p[:, : t.shape[1]] == t) & (t != pad)).sum(1) / (t != pad).sum(1),
                       "average over the tokens"),
    "prediction's pad": (lambda p, t, pad: ((p[:, : t.shape[1]] == t) | (p[:, : t.shape[1]] == pad)).all(1),
                         "where the prediction is pad instead of those where the target is pad"),
    "any": (lambda p, t, pad: ((p[:, : t.shape[1]] == t) & (t != pad)).any(1), r"any token to be right \(any\)"),
    "pred not cut": (lambda p, t, pad: ((p == t) | (t == pad)).all(1), r"compare pred\[:, :T\] with the targets"),
    "a float per sequence": (lambda p, t, pad: _exact_match_ok(p, t, pad).float(), "has dtype float32, expected bool"),
}


def test_check_exact_match_passes_the_reference(capsys):
    check_exact_match(_exact_match_ok)
    check_exact_match(_exact_match_ok, seed=1)
    assert "OK my_exact_match" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(EXACT_MATCH_MISTAKES))
def test_check_exact_match_names_the_mistake(name):
    fn, words = EXACT_MATCH_MISTAKES[name]
    with pytest.raises(CheckFailed, match=words):
        check_exact_match(fn)


def test_check_exact_match_refuses_the_reference():
    with pytest.raises(CheckFailed, match="calls exact_match"):
        check_exact_match(lambda p, t, pad: exact_match(p, t, ignore_index=pad))


def test_tagger_split_is_by_runs_and_never_reads_the_test_block():
    n = 6489
    for seed in range(3):
        train, val = tagger_split(n, seed)
        assert len(np.intersect1d(train, val)) == 0
        assert len(train) + len(val) == n - n // 20  # the last 5 %, the test block, is left out
        assert 0.045 < len(val) / n < 0.055
        assert len(val) == 10 * (n // 200) and np.sum(np.diff(val) != 1) <= 9  # ten runs of consecutive chunks
    assert not np.array_equal(tagger_split(n, 0)[1], tagger_split(n, 1)[1])


# The outcome-graded exercise of 05c: configurations a learner might hand in.
GOOD_TAGGER = {"bidirectional": True, "hidden_size": 32, "lr": 2e-2}
TAGGER_MISTAKES = {  # name -> (config, words the feedback must contain)
    "unidirectional": ({"bidirectional": False, "hidden_size": 48, "lr": 1e-2}, "a unidirectional tagger decides"),
    "Adam's default learning rate": ({"bidirectional": True, "hidden_size": 32, "lr": 1e-3},
                                     "a learning rate of 0.001 is small"),
}
TAGGER_BARELY_MISSES = {"bidirectional": True, "hidden_size": 16, "lr": 1e-2}


@pytest.mark.slow
def test_check_tagger_config_passes_a_good_config(capsys):
    check_tagger_config(GOOD_TAGGER)
    assert "OK after 150 steps of 16 chunks, your tagger reaches" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(TAGGER_MISTAKES))
@pytest.mark.slow
def test_check_tagger_config_says_how_far_and_names_the_culprit(name):
    config, words = TAGGER_MISTAKES[name]
    with pytest.raises(CheckFailed, match=r"times the target's 0\.18\. Likely culprit: .*" + re.escape(words)):
        check_tagger_config(config)


@pytest.mark.slow
def test_a_tagger_config_that_barely_misses_is_told_how_far_it_is():
    target = TAGGER_CHALLENGE["target"]
    words = rf"validation F1 of (0\.\d+) .*\(target: at least {target}.*: its 1 - F1 .* is 1\.\d times .*" \
            "16 units per direction are few"
    with pytest.raises(CheckFailed, match=words) as failed:
        check_tagger_config(TAGGER_BARELY_MISSES)
    f1 = float(re.search(words, str(failed.value)).group(1))
    assert target - 0.05 < f1 < target  # close, but not there: within 1.3 times the allowed 1 - F1


def test_tagger_config_f1_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    tagger_config_f1({"bidirectional": False, "hidden_size": 4, "lr": 1e-2}, seed=2)
    assert torch.equal(torch.rand(3), before)


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"bidirectional": True, "hidden_size": 32}, "exactly the keys bidirectional, hidden_size, lr"),
        ({**GOOD_TAGGER, "bidirectional": "yes"}, "bidirectional should be True or False"),
        ({**GOOD_TAGGER, "hidden_size": 64}, r"hidden_size should be a whole number from 1 to 48 \(per direction\)"),
        ({**GOOD_TAGGER, "lr": 0}, r"lr should be a number in \(0, 0.1\]"),
    ],
)
def test_check_tagger_config_rejects_malformed_configs_before_training(config, words):
    with pytest.raises(CheckFailed, match=words):
        check_tagger_config(config)


def test_check_exact_match_lets_an_unattempted_exercise_say_so():
    def not_yet(pred, targets, pad):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check_exact_match(not_yet)
