import math

import pytest
import torch

from course_utils import CheckFailed
from course_utils.beam_search import (
    beam_search,
    beam_step,
    bigram_table_model,
    exhaustive_search,
    greedy_search,
    normalised_score,
)
from course_utils.exercises.beam_search import _beam_case, _beam_step_variant, check_beam_step

# Vocabulary 0 = start, 1 = A, 2 = B, 3 = C; no end token, outputs of 2 tokens.
# Greedy takes A (0.5) and then at best 1/3: 0.167. B (0.4) then A (0.9) is 0.36.
GREEDY_TRAP = torch.tensor([
    [0.0, 0.5, 0.4, 0.1],
    [0.0, 1 / 3, 1 / 3, 1 / 3],
    [0.0, 0.9, 0.05, 0.05],
    [0.0, 1 / 3, 1 / 3, 1 / 3],
], dtype=torch.float64)

# Vocabulary 0 = start, 1 = a, 2 = b, 3 = end. p(end) = 0.4 at once; a b end = 0.6 * 0.8 * 0.8 = 0.384.
# The plain sum prefers [end]; the mean log-prob per token prefers [a, b, end].
SHORT_TRAP = torch.tensor([
    [0.0, 0.6, 0.0, 0.4],
    [0.0, 0.0, 0.8, 0.2],
    [0.0, 0.1, 0.1, 0.8],
    [0.0, 0.0, 0.0, 1.0],
], dtype=torch.float64)


def test_width_one_equals_greedy_on_a_random_table():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(6, 6, generator=g, dtype=torch.float64) * 2, dim=1)
    fn = bigram_table_model(probs)
    for eos in (None, 5):
        for alpha in (0.0, 1.0):
            beam = beam_search(fn, None, n=1, bos=0, max_len=6, beam_width=1, alpha=alpha, eos=eos)
            greedy = greedy_search(fn, None, n=1, bos=0, max_len=6, eos=eos)
            assert torch.equal(beam[0], greedy[0])
            assert torch.allclose(beam[1], greedy[1]) and torch.equal(beam[2], greedy[2])


def test_beam_finds_what_brute_force_proves_best_and_greedy_misses():
    fn = bigram_table_model(GREEDY_TRAP)
    best, score = exhaustive_search(fn, None, vocab_size=4, bos=0, max_len=2, alpha=0.0)
    assert best == (2, 1) and score == pytest.approx(math.log(0.36))
    tokens, total, _ = beam_search(fn, None, n=1, bos=0, max_len=2, beam_width=2, alpha=0.0)
    assert tokens[0].tolist() == [2, 1] and total.item() == pytest.approx(math.log(0.36))
    greedy, g_total, _ = greedy_search(fn, None, n=1, bos=0, max_len=2)
    assert greedy[0].tolist()[0] == 1 and g_total.item() == pytest.approx(math.log(0.5 / 3))


def test_length_normalisation_changes_the_winner():
    fn = bigram_table_model(SHORT_TRAP)
    plain, plain_score = exhaustive_search(fn, None, vocab_size=4, bos=0, max_len=4, alpha=0.0, eos=3)
    mean, mean_score = exhaustive_search(fn, None, vocab_size=4, bos=0, max_len=4, alpha=1.0, eos=3)
    assert plain == (3,) and plain_score == pytest.approx(math.log(0.4))
    assert mean == (1, 2, 3) and mean_score == pytest.approx(math.log(0.384) / 3)
    for alpha, want, length in ((0.0, [3, 3, 3, 3], 1), (1.0, [1, 2, 3, 3], 3)):
        tokens, total, n = beam_search(fn, None, n=1, bos=0, max_len=4, beam_width=3, alpha=alpha, eos=3)
        assert tokens[0].tolist() == want and n.item() == length  # after the end token: filler


def test_beam_matches_brute_force_on_random_tables_and_batches():
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        probs = torch.softmax(torch.randn(4, 4, generator=g, dtype=torch.float64) * 2, dim=1)
        fn = bigram_table_model(probs)
        _, best = exhaustive_search(fn, None, vocab_size=4, bos=0, max_len=3, alpha=1.0, eos=3)
        tokens, total, length = beam_search(fn, None, n=2, bos=0, max_len=3, beam_width=64, alpha=1.0, eos=3)
        assert normalised_score(total, length, 1.0).tolist() == pytest.approx([best, best])
        assert torch.equal(tokens[0], tokens[1])


def test_beam_search_is_never_worse_than_greedy_in_its_own_score():
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(5, 5, generator=g, dtype=torch.float64) * 3, dim=1)
    fn = bigram_table_model(probs)
    _, greedy_total, _ = greedy_search(fn, None, n=1, bos=0, max_len=5)
    for width in (2, 3, 5):
        _, total, _ = beam_search(fn, None, n=1, bos=0, max_len=5, beam_width=width, alpha=0.0)
        assert total.item() >= greedy_total.item() - 1e-12


def test_bad_arguments_get_clear_errors():
    fn = bigram_table_model(GREEDY_TRAP)
    with pytest.raises(ValueError, match="beam_width must be a whole number >= 1, got 0"):
        beam_search(fn, None, n=1, bos=0, max_len=2, beam_width=0)
    with pytest.raises(ValueError, match="max_len"):
        beam_search(fn, None, n=1, bos=0, max_len=0, beam_width=2)
    with pytest.raises(ValueError, match="alpha must lie in"):
        beam_search(fn, None, n=1, bos=0, max_len=2, beam_width=2, alpha=-1.0)
    with pytest.raises(ValueError, match="each row of probs must sum to 1"):
        bigram_table_model(GREEDY_TRAP * 2)


def solution_beam_step(total, length, finished, log_probs, beam_width, alpha, eos):
    N, K, V = log_probs.shape
    cand = total[:, :, None] + log_probs
    only_self = torch.full_like(log_probs, float("-inf"))
    only_self[:, :, eos] = 0.0
    cand = torch.where(finished[:, :, None], total[:, :, None] + only_self, cand)
    cand_len = (length + (~finished).long())[:, :, None].expand(N, K, V)
    cand_fin = finished[:, :, None] | (torch.arange(V) == eos)
    score = (cand / cand_len.double() ** alpha).flatten(1)
    best = score.topk(beam_width, dim=1).indices
    return (best // V, best % V, cand.flatten(1).gather(1, best), cand_len.flatten(1).gather(1, best),
            cand_fin.flatten(1).gather(1, best))


def test_check_beam_step_accepts_a_solution():
    check_beam_step(solution_beam_step)
    check_beam_step(solution_beam_step, seed=1)


def test_the_beam_step_mistakes_differ_from_the_answer():
    for seed in (0, 1):
        args = (*_beam_case(seed), 3, 1.0, 4)
        right = torch.cat([x.double() for x in beam_step(*args)[2:]], dim=1)
        for kw in ({"norm": "none"}, {"norm": "step"}, {"expand_finished": True}):
            wrong = torch.cat([x.double() for x in _beam_step_variant(*args, **kw)[2:]], dim=1)
            assert not torch.allclose(right, wrong), (seed, kw)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"norm": "none"}, "plain sum of log-probs"),
    ({"norm": "step"}, "finished beam's length grow"),
    ({"expand_finished": True}, "extend finished beams"),
])
def test_check_beam_step_names_the_mistake(kwargs, message):
    def wrong(total, length, finished, log_probs, beam_width, alpha, eos, norm="length", expand_finished=False):
        """A learner's beam step with one mistake, written from the learner's own solution (not the course's)."""
        N, K, V = log_probs.shape
        if expand_finished:
            finished = torch.zeros_like(finished)
        parent, tok, tot, ln, fin = solution_beam_step(total, length, finished, log_probs, K * V, 0.0, eos)
        if norm == "step":
            ln = ln + finished.gather(1, parent).long()
        score = tot if norm == "none" else tot / ln.double() ** alpha
        order = score.topk(beam_width, dim=1).indices
        return tuple(x.gather(1, order) for x in (parent, tok, tot, ln, fin))

    with pytest.raises(CheckFailed, match=message):
        check_beam_step(lambda *args: wrong(*args, **kwargs))


def test_check_beam_step_refuses_the_reference():
    def delegate(total, length, finished, log_probs, beam_width, alpha, eos):
        return beam_step(total, length, finished, log_probs, beam_width, alpha, eos)

    with pytest.raises(CheckFailed, match="calls beam_step"):
        check_beam_step(delegate)
