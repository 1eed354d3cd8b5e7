"""Language modelling (course_utils.lm): windows, the loss, RecurrentLM, train_lm, sampling."""

import math
import re

import numpy as np
import pytest
import torch

from course_utils.lm import (
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
    from course_utils.lm import ngram_probabilities

    unigram, bigram = ngram_probabilities(np.array([0, 1, 1, 2]), 4)
    np.testing.assert_allclose(unigram, np.array([2, 3, 2, 1]) / 8)  # counts + 1 over 4 + 4
    np.testing.assert_allclose(bigram[1], np.array([1, 2, 2, 1]) / 6)  # after 1: 1 and 2 once each
    np.testing.assert_allclose(bigram.sum(axis=1), np.ones(4))


# ----------------------------------------------------------------------------- notebook 05b's exercises 3 and 4

from course_utils import CheckFailed  # noqa: E402
from course_utils.lm import (  # noqa: E402
    END,
    BigramSpeller,
    _check_generation_settings,
    bigram_bits,
    check_generation_settings,
    check_spell,
    generation_stats,
    names_speller,
    spell,
)

REFERENCE_SETTINGS = {"temperature": 1.0, "top_k": 12}  # notebook 05b's answer to exercise 4


def _my_spell(feed_back=True, stop=True, keep_end=False, keep_start=False, use_state=True):
    """A learner's speller, right by default; each keyword makes one plausible mistake."""
    @torch.no_grad()
    def my_spell(model, lang, temperature, max_len, generator):
        h = model.initial_state(torch.tensor([lang]))
        h = h if use_state else torch.zeros_like(h)
        token, name = torch.tensor([[0]]), [0] if keep_start else []
        for _ in range(max_len):
            o, h = model.rnn(model.embed(token), h)
            next_id = sample_next(model.out(o[:, 0]), temperature, generator)  # (1,)
            if stop and next_id.item() == 0:
                if keep_end:
                    name.append(0)
                break
            name.append(next_id.item())
            token = next_id[:, None] if feed_back else torch.tensor([[0]])
        return name
    return my_spell


SPELL_MISTAKES = {  # keyword arguments -> words the feedback must contain
    "no feedback": (dict(feed_back=False), "feed the start token 0 at every step"),
    "no stop": (dict(stop=False), "keep drawing after the end token 0"),
    "end token": (dict(keep_end=True), "keep the end token 0 at the end"),
    "start token": (dict(keep_start=True), "keep the start token 0 at the front"),
    "zero state": (dict(use_state=False), "start from zeros instead of the language's state"),
}


def test_bigram_speller_is_a_conditional_speller_built_without_random_numbers():
    state = torch.random.get_rng_state()
    model = BigramSpeller([[1, 2], [2]], [0, 1], 3, 2)
    assert torch.equal(torch.random.get_rng_state(), state)
    logits = model(torch.tensor([0, 1]), torch.tensor([[0, 1], [0, 2]]))  # (B, T, V)
    assert logits.shape == (2, 2, 3)
    np.testing.assert_allclose(logits.detach().exp().sum(-1).numpy(), np.ones((2, 2)), rtol=1e-5)  # log probabilities
    assert logits[0, 0, 1] > logits[1, 0, 1] and logits[1, 0, 2] > logits[0, 0, 2]  # each language its own start
    assert len(model.sample(torch.tensor([0, 1]), 1.0, 5, torch.Generator().manual_seed(0))) == 2


def test_spell_stops_at_the_end_token_and_is_seeded():
    model = names_speller()[0]
    names = spell(model, torch.tensor([0, 1, 2, 2]), 1.0, 10, torch.Generator().manual_seed(0))
    assert len(names) == 4 and all(END not in n and len(n) <= 10 for n in names)
    assert any(len(n) < 10 for n in names)
    assert names == spell(model, torch.tensor([0, 1, 2, 2]), 1.0, 10, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="cond has shape"):
        spell(model, torch.tensor([[0]]))


@pytest.mark.parametrize("seed", [0, 1])
def test_check_spell_passes_a_right_answer_and_leaves_the_global_rng_alone(seed, capsys):
    state = torch.random.get_rng_state()
    check_spell(_my_spell(), seed=seed)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert "OK my_spell" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", SPELL_MISTAKES)
def test_check_spell_names_each_mistake(mistake):
    options, words = SPELL_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_spell(_my_spell(**options))


def test_check_spell_refuses_the_model_s_own_sampler_and_odd_answers():
    with pytest.raises(CheckFailed, match="calls sample, an existing implementation"):
        check_spell(lambda model, lang, T, n, g: model.sample(torch.tensor([lang]), T, n, g)[0])
    with pytest.raises(CheckFailed, match="should be a list of token ids .*forget a `return`"):
        check_spell(lambda model, lang, T, n, g: None)


def test_bigram_bits_by_hand():
    # Training names "1" and "12" (ids), V = 3: after 0, 1 twice; after 1: 0 once, 2 once; after 2: 0 once.
    bits = bigram_bits([[1]], [[1], [1, 2]], 3)  # the pairs (0, 1) and (1, 0)
    expected = -(math.log2(3 / 5) + math.log2(2 / 5)) / 2  # add-one counts: row 0 = (1, 3, 1), row 1 = (2, 1, 2)
    assert bits == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(5))
def test_the_reference_settings_meet_both_targets_with_margin(seed, capsys):
    model, ids, train_idx, n_classes = names_speller()
    stats = generation_stats(REFERENCE_SETTINGS, model, ids, train_idx, n_classes, seed=seed)
    assert stats["copies"] < 0.8 * 0.15 and stats["bits"] < stats["target_bits"] - 0.04
    state = torch.random.get_rng_state()
    check_generation_settings(REFERENCE_SETTINGS, seed=seed)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert "OK of 400 names sampled with temperature 1 and top_k 12" in capsys.readouterr().out


def test_the_check_is_seeded():
    model, ids, train_idx, n_classes = names_speller()
    a, b, c = (generation_stats(REFERENCE_SETTINGS, model, ids, train_idx, n_classes, seed=s) for s in (0, 0, 1))
    assert a == b and a != c


def test_settings_that_barely_miss_are_told_how_far_they_are():
    model, ids, train_idx, n_classes = names_speller()
    settings = {"temperature": 1.0, "top_k": None}  # no cut: the rare characters misspell, a little
    for seed in (0, 1):
        stats = generation_stats(settings, model, ids, train_idx, n_classes, seed=seed)
        assert stats["target_bits"] < stats["bits"] < 1.1 * stats["target_bits"]  # close, but not there
        with pytest.raises(CheckFailed, match=r"bits per character above the plausibility target \(1\.\d\d times "
                                              r"it\): the samples misspell \(a high temperature"):
            check_generation_settings(settings, seed=seed)


def test_settings_that_play_safe_are_told_to_raise_the_temperature():
    with pytest.raises(CheckFailed, match=r"[1-3]\.\d times the share of copies allowed: the samples play safe"):
        check_generation_settings({"temperature": 0.5, "top_k": None})


def test_settings_that_copy_training_names_are_told_to_raise_the_temperature(capsys):
    ids = [np.array([1, 2]), np.array([2, 1]), np.array([1, 1])]
    parrot = BigramSpeller([ids[0]] * 200, [0] * 200, 3, 1)  # spells one training name at low temperature
    with pytest.raises(CheckFailed, match=r"\d+\.\d times the share of copies allowed: the samples play safe"):
        _check_generation_settings({"temperature": 0.3, "top_k": 1}, parrot, ids, np.arange(1), 1)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"temperature": 1.0}, "exactly the keys temperature, top_k"),
        ({"temperature": 0.0, "top_k": None}, "temperature should be a number from 0.05 to 5"),
        ({"temperature": "1", "top_k": None}, "temperature should be a number"),
        ({"temperature": 1.0, "top_k": 0}, "top_k should be None .* or a whole number from 1 to"),
        ({"temperature": 1.0, "top_k": 2.5}, "top_k should be None"),
        ([1.0, 5], "return a dict with exactly the keys"),
    ],
)
def test_check_generation_settings_rejects_malformed_settings(settings, words):
    with pytest.raises(CheckFailed, match=words):
        check_generation_settings(settings)
