"""Language modelling (course_utils.shared.lm): windows, the loss, RecurrentLM, train_lm, sampling."""

import math
import re

import numpy as np
import pytest
import torch

from course_utils.shared.lm import (
    CharData,
    LMRun,
    RecurrentLM,
    char_accuracy,
    estimate_loss,
    generate,
    lm_batches,
    next_token_loss,
    random_windows,
    sample_next,
    temperature_softmax,
    train_lm,
)

CPU = torch.device("cpu")


def test_lm_batches_shift_targets_by_one():
    ids = np.arange(100)
    batches = lm_batches(ids, n_batches=3, batch_size=4, seq_len=10, seed=0)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == y.shape == (4, 10)
    torch.testing.assert_close(y, x + 1)  # ids are consecutive, so the next id is id + 1
    with pytest.raises(ValueError, match=r"ids has 5 tokens, expected more than context \+ 1 = 11"):
        lm_batches(np.arange(5), 1, 1, seq_len=10)
    with pytest.raises(ValueError, match=r"ids has shape \(3, 30\), expected \(N,\)\."):
        lm_batches(np.zeros((3, 30), dtype=int), 1, 1, seq_len=4)


def test_windows_are_shifted_by_one():
    ids = torch.arange(100)
    x, y = random_windows(ids, 10, 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 10) and torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="context"):
        random_windows(ids[:5], 10, 4, torch.Generator())


def test_recurrent_lm_learns_a_deterministic_sequence():
    torch.manual_seed(0)
    ids = np.tile(np.arange(5), 60)  # 0 1 2 3 4 0 1 ...: the next character is always determined
    batches = lm_batches(ids, 40, 8, 12, seed=0)
    model = RecurrentLM("lstm", 5, 8, 16)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    first = next_token_loss(model, batches[0]).item()
    for batch in batches:
        opt.zero_grad()
        next_token_loss(model, batch).backward()
        opt.step()
    assert first == pytest.approx(np.log(5), abs=0.3)  # untrained: about uniform over 5 symbols
    assert next_token_loss(model, batches[0]).item() < 0.1
    assert char_accuracy(model, batches[:5]) == 1.0
    assert model.training  # char_accuracy restores the mode


def test_recurrent_lm_shapes_and_errors():
    model = RecurrentLM("lstm", 10, embed_size=64, hidden_size=128, num_layers=2)
    assert model(torch.zeros(3, 7, dtype=torch.long)).shape == (3, 7, 10)
    assert model.rnn.num_layers == 2 and model.rnn.batch_first
    with pytest.raises(ValueError, match=r"ids has shape \(3,\), expected \(B, T\)\."):
        model(torch.zeros(3, dtype=torch.long))


def test_train_lm_errors():
    model = RecurrentLM("lstm", 5, embed_size=8, hidden_size=8)
    data = CharData.from_text("abcde" * 20)
    with pytest.raises(ValueError, match="steps and eval_every must be >= 1"):
        train_lm(model, data, steps=0, context=4, device=CPU, progress=False)
    with pytest.raises(ValueError, match="steps and eval_every must be >= 1"):
        train_lm(model, data, steps=10, context=4, eval_every=0, device=CPU, progress=False)


def test_train_lm_runs_the_step_budget():
    torch.manual_seed(0)
    data = CharData.from_text("the cat sat on the mat. " * 40)
    model = RecurrentLM("lstm", data.vocab.size, embed_size=8, hidden_size=16)
    run = train_lm(model, data, steps=25, context=8, batch_size=4, eval_every=10, device=CPU, progress=False)
    assert isinstance(run, LMRun)
    assert run.steps == [10, 20, 25]  # evaluated every 10 steps and at the end of the budget
    assert len(run.val_losses) == math.ceil(25 / 10) and len(run.train_losses) == 25
    assert len(run.seconds) == len(run.steps)
    assert all(a < b for a, b in zip(run.seconds, run.seconds[1:], strict=False)) and run.seconds[0] > 0
    assert estimate_loss(model, data.val, 8, device=CPU) == pytest.approx(run.val_losses[-1])


def test_temperature_softmax_and_sampling():
    z = torch.tensor([[1.0, 2.0, 3.0], [1000.0, 1001.0, 1002.0]])
    for T in (0.3, 1.0, 2.5):
        torch.testing.assert_close(temperature_softmax(z, T), torch.softmax(z / T, dim=-1))
    assert temperature_softmax(z, 1e-3)[0].argmax() == 2 and temperature_softmax(z, 1e-3)[0, 2] > 0.999
    torch.testing.assert_close(temperature_softmax(z, 1e4), torch.full((2, 3), 1 / 3), atol=1e-3, rtol=0)
    with pytest.raises(ValueError):
        temperature_softmax(z, 0.0)
    logits = torch.tensor([[0.0, 1.0, 2.0]]).repeat(30000, 1)
    draws = sample_next(logits, 0.7, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).float() / len(draws)
    torch.testing.assert_close(freq, torch.softmax(logits[0] / 0.7, -1), atol=0.01, rtol=0)
    with pytest.raises(ValueError, match="logits"):
        sample_next(logits[0], 1.0)


def test_generate_extends_the_prompt_and_rejects_non_positive_temperature():
    torch.manual_seed(0)
    data = CharData.from_text("abcab" * 20)
    model = RecurrentLM("gru", data.vocab.size, embed_size=4, hidden_size=8)
    sample = generate(model, data.vocab, "ab", 10, context=4, seed=3)
    assert sample.startswith("ab") and len(sample) == 12 and set(sample) <= set("abc")
    assert generate(model, data.vocab, "ab", 10, context=4, seed=3) == sample  # seeded
    for temperature in (0.0, -1.0, float("nan"), None):
        with pytest.raises(ValueError, match=r"temperature must be positive \(a number > 0\), got"):
            generate(model, data.vocab, "ab", 5, context=4, temperature=temperature)
    assert generate(model, data.vocab, "ab", 0, context=4) == "ab"  # nothing to add


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"prompt": ""}, "prompt must be a non-empty string"),
        ({"prompt": "abz!"}, "contains characters that are not in the vocabulary: '!', 'z'"),
        ({"n_chars": -1}, "n_chars must be a whole number >= 0, got -1"),
        ({"n_chars": 2.5}, "n_chars must be a whole number >= 0, got 2.5"),
        ({"context": 0}, "context must be a whole number >= 1, got 0"),
    ],
)
def test_generate_rejects_bad_arguments_with_clear_errors(kwargs, words):
    torch.manual_seed(0)
    data = CharData.from_text("abcab" * 20)
    model = RecurrentLM("gru", data.vocab.size, embed_size=4, hidden_size=8)
    args = {"prompt": "ab", "n_chars": 5, "context": 4, **kwargs}
    with pytest.raises(ValueError, match=re.escape(words)):
        generate(model, data.vocab, args["prompt"], args["n_chars"], context=args["context"])


def test_generate_at_low_temperature_approaches_greedy():
    torch.manual_seed(0)
    data = CharData.from_text("abcab" * 20)
    model = RecurrentLM("gru", data.vocab.size, embed_size=4, hidden_size=8).eval()
    ids = torch.from_numpy(data.vocab.encode("ab"))[None]  # (1, 2)
    for _ in range(6):  # greedy decoding by hand
        ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert generate(model, data.vocab, "ab", 6, context=100, temperature=1e-3) == data.vocab.decode(ids[0])


def _sampler(transform=lambda logits, T: logits / T, shift=True, draw=True, squeeze=True):
    """A learner's sampler, right by default; each keyword makes one plausible mistake."""
    def sample(logits, temperature, generator):
        scaled = transform(logits, temperature)
        if shift:
            scaled = scaled - scaled.max(dim=-1, keepdim=True).values
        probs = scaled.exp() / scaled.exp().sum(dim=-1, keepdim=True)
        if not draw:
            return probs.argmax(-1)
        ids = torch.multinomial(probs, 1, generator=generator)
        return ids.squeeze(1) if squeeze else ids
    return sample


SAMPLER_MISTAKES = {  # keyword arguments -> words the feedback must contain
    "times T": (dict(transform=lambda logits, T: logits * T), "multiply the logits by the temperature"),
    "no temperature": (dict(transform=lambda logits, T: logits), "ignore the temperature"),
    "argmax": (dict(draw=False), "argmax instead of drawing"),
    "no shift": (dict(shift=False), "subtract the row's max"),
    "(B, 1)": (dict(squeeze=False), "one id per row (squeeze(1))"),
}


def test_check_sample_next_passes_any_correct_sampler(capsys):
    from course_utils.exercises.lm import check_sample_next

    check_sample_next(_sampler())

    def categorical(logits, temperature, generator):  # another correct way to draw: inverse CDF
        probs = torch.softmax(logits / temperature, dim=-1)
        u = torch.rand(logits.shape[0], 1, generator=generator, dtype=probs.dtype)
        return (probs.cumsum(-1) < u).sum(-1).clamp_max(logits.shape[-1] - 1)

    check_sample_next(categorical, seed=2)
    assert "OK my_sample_next" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", SAMPLER_MISTAKES)
def test_check_sample_next_names_each_mistake(mistake):
    from course_utils import CheckFailed
    from course_utils.exercises.lm import check_sample_next

    options, words = SAMPLER_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_sample_next(_sampler(**options))
    with pytest.raises(CheckFailed, match="calls sample_next, an existing implementation"):
        check_sample_next(lambda logits, T, g: sample_next(logits, T, g))


def test_ngram_probabilities_are_add_one_smoothed_frequencies():
    from course_utils.shared.lm import ngram_probabilities

    unigram, bigram = ngram_probabilities(np.array([0, 1, 1, 2]), 4)
    np.testing.assert_allclose(unigram, np.array([2, 3, 2, 1]) / 8)  # counts + 1 over 4 + 4
    np.testing.assert_allclose(bigram[1], np.array([1, 2, 2, 1]) / 6)  # after 1: 1 and 2 once each
    np.testing.assert_allclose(bigram.sum(axis=1), np.ones(4))


# ----------------------------------------------------------------------------- 05b, exercise 1: the temperature softmax


def _temperature_softmax(shift=True, mistake=None):
    """A learner's temperature softmax, right by default; ``mistake`` makes one plausible mistake."""
    def my_temperature_softmax(logits, temperature):
        if mistake != "no ValueError" and not temperature > 0:
            raise ValueError("temperature must be positive")
        z = logits * temperature if mistake == "multiply" else logits / temperature
        if mistake in ("ignore", "after"):
            z = logits
        axis = 0 if mistake == "axis" else -1
        if shift:
            z = z - z.max(dim=axis, keepdim=True).values
        e = torch.exp(z)
        p = e / e.sum(dim=axis, keepdim=True)
        return p / temperature if mistake == "after" else p
    return my_temperature_softmax


def test_check_temperature_softmax_passes_a_right_answer_and_names_each_mistake(capsys):
    from course_utils import CheckFailed
    from course_utils.exercises.lm import check_temperature_softmax

    check_temperature_softmax(_temperature_softmax())
    check_temperature_softmax(_temperature_softmax(), seed=1)
    assert "OK my_temperature_softmax" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="contains inf or NaN: exp.*Subtract each row's max"):
        check_temperature_softmax(_temperature_softmax(shift=False))
    for mistake, words in [("multiply", "multiply the logits by the temperature"), ("ignore", "ignore the temperature"),
                           ("after", "apply the temperature after the softmax"), ("axis", "over the first axis"),
                           ("no ValueError", "should raise ValueError")]:
        with pytest.raises(CheckFailed, match=re.escape(words)):
            check_temperature_softmax(_temperature_softmax(mistake=mistake))
