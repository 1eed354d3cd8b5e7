"""Notebook 05b's one-to-many loop (course_utils.output_types.spell) and its exercises 3 and 4 (the speller check
and the generation challenge, course_utils.exercises.output_types)."""

import math
import re

import numpy as np
import pytest
import torch

from course_utils import CheckFailed
from course_utils.exercises.output_types import (
    BigramSpeller,
    bigram_bits,
    check_generation_settings,
    check_spell,
    generation_grading,
    generation_stats,
    names_speller,
)
from course_utils.output_types import END, spell
from course_utils.shared.lm import sample_next

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
    with pytest.raises(CheckFailed, match=r"reaches course_utils\.[\w.]*sample, an existing implementation"):
        check_spell(lambda model, lang, T, n, g: model.sample(torch.tensor([lang]), T, n, g)[0])  # the profiler's
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
        generation_grading(parrot, ids, np.arange(1), 1).check({"temperature": 0.3, "top_k": 1})


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
