import math
import re

import pytest
import torch

from course_utils import CheckFailed
from course_utils.exercises.sampling import check_filter_logits
from course_utils.sampling import distinct_ngrams, filter_logits, sample_token, top_p_mask


def _loop_reference(logits: torch.Tensor, top_k, top_p) -> torch.Tensor:
    """Written differently: per row and per token, in Python floats, with the definitions in words."""
    out = logits.clone()
    for b, row in enumerate(logits.tolist()):
        z = max(row)
        probs = [math.exp(v - z) for v in row]
        total = sum(probs)
        probs = [q / total for q in probs]
        for j, v in enumerate(row):
            larger = sum(1 for u in row if u > v)  # tokens strictly above: top-k keeps j if fewer than k
            # nucleus keeps j if the tokens sorted before it (likelier, or tied and of lower index) hold < p
            mass_above = sum(q for i, q in enumerate(probs) if q > probs[j] or (q == probs[j] and i < j))
            if (top_k is not None and larger >= top_k) or (top_p is not None and mass_above >= top_p):
                out[b, j] = float("-inf")
    return out


@pytest.mark.parametrize("top_k,top_p", [(1, None), (3, None), (None, 0.3), (None, 0.9), (4, 0.7), (12, None),
                                         (None, 1.0)])
def test_filter_matches_loop_reference(top_k, top_p):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 12, generator=g, dtype=torch.float64) * 2
    assert torch.equal(filter_logits(logits, top_k, top_p), _loop_reference(logits, top_k, top_p))


def test_hand_cases():
    logits = torch.tensor([[3.0, 1.0, 3.0, 0.0]])
    # ties with the k-th value are kept: top-1 of [3, 1, 3, 0] keeps both 3s
    assert torch.isfinite(filter_logits(logits, top_k=1)).tolist() == [[True, False, True, False]]
    # k = 1 on a row without ties is the argmax
    row = torch.tensor([[0.5, 2.0, -1.0]])
    assert torch.isfinite(filter_logits(row, top_k=1))[0].nonzero().item() == row.argmax().item()
    # k = V changes nothing; p = 1 changes nothing
    assert torch.equal(filter_logits(row, top_k=3), row)
    assert torch.equal(filter_logits(row, top_p=1.0), row)
    # probabilities 1/2, 1/4, 1/4 (exact in binary): p = 1/2 is covered exactly by the first token
    halves = torch.tensor([[0.5, 0.25, 0.25]]).log()
    assert torch.isfinite(filter_logits(halves, top_p=0.5)).tolist() == [[True, False, False]]
    # just above 1/2: the second token crosses p and is kept; the third, tied with it, is not (smallest set)
    assert torch.isfinite(filter_logits(halves, top_p=0.51)).tolist() == [[True, True, False]]
    # 1/2, 1/4, 1/8, 1/8 at p = 0.8: the smallest set reaching 0.8 has three tokens (notebook 08c's hand case)
    eighths = torch.tensor([[0.5, 0.25, 0.125, 0.125]]).log()
    assert torch.isfinite(filter_logits(eighths, top_p=0.8)).tolist() == [[True, True, True, False]]
    # ties within the sorted row: the lower index comes first, whatever the row's order
    assert torch.isfinite(filter_logits(torch.tensor([[0.125, 0.125, 0.25, 0.5]]).log(), top_p=0.8)).tolist() == \
        [[True, False, True, True]]
    # a tiny p always keeps the likeliest token
    assert torch.isfinite(filter_logits(torch.tensor([[0.0, 0.1, 0.0]]), top_p=1e-9)).tolist() == [[False, True, False]]


def test_top_p_always_keeps_the_argmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 20, generator=g) * 3
    for p in (1e-6, 0.1, 0.5):
        mask = top_p_mask(logits, p)
        assert mask.gather(1, logits.argmax(-1, keepdim=True)).all()


def test_errors_name_the_argument():
    logits = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        filter_logits(logits, top_k=0)
    with pytest.raises(TypeError, match="top_k must be a whole number"):
        filter_logits(logits, top_k=2.5)
    with pytest.raises(ValueError, match=re.escape("top_p must lie in (0, 1]")):
        filter_logits(logits, top_p=0.0)
    with pytest.raises(ValueError, match=re.escape("top_p must lie in (0, 1]")):
        filter_logits(logits, top_p=1.5)
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        sample_token(logits, temperature=0.0)
    with pytest.raises(ValueError, match="logits"):
        filter_logits(torch.zeros(5), top_k=1)


def test_sample_token_respects_the_filter_and_greedy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 10, generator=g)
    ids = sample_token(logits, 1.0, top_k=3, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(filter_logits(logits, top_k=3)).gather(1, ids[:, None]).all()
    assert torch.equal(sample_token(logits, 1.0, top_k=1, generator=torch.Generator().manual_seed(2)),
                       logits.argmax(-1))


def test_distinct_ngrams():
    assert distinct_ngrams(["abab"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_ngrams(["aaaa", "aa"], 1) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="shorter than n"):
        distinct_ngrams(["ab"], 3)


def _right(logits, top_k, top_p):
    out = logits.clone()
    probs = torch.softmax(logits, -1)
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
    before = sorted_p.cumsum(-1) - sorted_p
    keep = torch.ones_like(logits, dtype=torch.bool)
    if top_p is not None:
        keep &= torch.zeros_like(keep).scatter(1, order, before < top_p)
    if top_k is not None:
        keep &= logits >= logits.topk(top_k, -1).values[:, -1:]
    return out.masked_fill(~keep, float("-inf"))


def test_check_accepts_a_solution():
    check_filter_logits(_right)
    check_filter_logits(_right, seed=1)


def _probabilities(logits, top_k, top_p):
    return torch.softmax(_right(logits, top_k, top_p), -1)


def _crossing_dropped(logits, top_k, top_p):
    probs = torch.softmax(logits, -1)
    sorted_p, order = probs.sort(-1, descending=True)
    keep = torch.ones_like(logits, dtype=torch.bool)
    if top_p is not None:
        keep &= torch.zeros_like(keep).scatter(1, order, sorted_p.cumsum(-1) <= top_p)
    if top_k is not None:
        keep &= logits >= logits.topk(top_k, -1).values[:, -1:]
    return logits.masked_fill(~keep, float("-inf"))


def _ties_kept(logits, top_k, top_p):
    """The nucleus widened to every token tied with the last one kept (not the smallest set)."""
    keep = torch.isfinite(_right(logits, None, top_p))
    if top_p is not None:
        probs = torch.softmax(logits, -1)
        keep = probs >= probs.masked_fill(~keep, float("inf")).min(-1, keepdim=True).values
    if top_k is not None:
        keep &= logits >= logits.topk(top_k, -1).values[:, -1:]
    return logits.masked_fill(~keep, float("-inf"))


def _last_tied_first(logits, top_k, top_p):
    """Right, but of tied tokens the higher index comes first: the other smallest set, also accepted."""
    flipped = _right(logits.flip(-1), top_k, top_p).flip(-1)
    return flipped


def test_check_accepts_either_tied_token():
    check_filter_logits(_last_tied_first)


def _batch_k(logits, top_k, top_p):
    out = _right(logits, None, top_p)
    if top_k is not None:
        out = out.masked_fill(logits < logits.flatten().topk(top_k).values[-1], float("-inf"))
    return out


@pytest.mark.parametrize("fn,words", [
    (_probabilities, "return probabilities"),
    (_crossing_dropped, "the token that crosses p must be kept"),
    (_batch_k, "the k largest logits of the whole batch"),
    (_ties_kept, "the nucleus is the *smallest* set"),
])
def test_check_names_the_mistake(fn, words):
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_filter_logits(fn)


def test_check_refuses_the_reference():
    def delegate(logits, top_k, top_p):
        return filter_logits(logits, top_k, top_p)

    with pytest.raises(CheckFailed, match="calls filter_logits, an existing implementation"):
        check_filter_logits(delegate)
