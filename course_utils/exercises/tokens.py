"""Notebook 05e, the exercises on :mod:`course_utils.tokens`.

Checks that name the usual mistakes: ``check_merge_pair`` (the merge step of BPE) and
``check_count_pairs`` (the pair counts it chooses from).
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from ..core.checks import CheckFailed, name_mistake, refuse_reference
from ..tokens import IdPair, Word, count_pairs, merge_pair

# ----------------------------------------------------------------------------- the merge step


def _merge_variant(ids: Sequence[int], pair: IdPair, new_id: int, mistake: str) -> list[int]:
    """merge_pair with one usual mistake."""
    if mistake == "only_first":
        for i in range(len(ids) - 1):
            if (ids[i], ids[i + 1]) == pair:
                return [*ids[:i], new_id, *ids[i + 2 :]]
        return list(ids)
    if mistake == "step_one":  # the pair's second id is looked at again after a merge
        out = []
        for i in range(len(ids)):
            out.append(new_id if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair else ids[i])
        return out
    if mistake == "drop_second":  # step one place, and drop the pair's second id where it is not merged again
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                out.append(new_id)
            elif not (i > 0 and (ids[i - 1], ids[i]) == pair):
                out.append(ids[i])
            i += 1
        return out
    if mistake == "drop_last":  # the loop stops one short and the last id is never appended
        out, i = [], 0
        while i < len(ids) - 1:
            if (ids[i], ids[i + 1]) == pair:
                out.append(new_id)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        return out
    if mistake == "right_to_left":
        reverse = merge_pair(list(reversed(ids)), (pair[1], pair[0]), new_id)
        return list(reversed(reverse))
    if mistake == "either_order":
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) in (pair, pair[::-1]):
                out.append(new_id)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        return out
    raise ValueError(f"unknown mistake {mistake!r}")


MERGE_MISTAKES = {
    "only_first": "merge only the first occurrence of the pair: every occurrence is replaced, in one pass",
    "step_one": "step one place after a merge instead of two: the pair's second id is used again, so (a, a, a) "
                "merges twice and a merged pair leaves its second id behind",
    "drop_second": "step one place after a merge and then skip the id that was merged: an id can belong to one "
                   "merge only, so (a, a, a) gives (new, a), not (new, new)",
    "drop_last": "stop the loop one short (i < len(ids) - 1) and never append the last id when it is not merged",
    "right_to_left": "scan from the right: BPE merges left to right, so (a, a, a) gives (new, a), not (a, new)",
    "either_order": "merge (b, a) as well as (a, b): a pair is ordered",
}

# (ids, pair, new_id): each mistake shows on at least one case.
MERGE_CASES = [
    ([1, 2, 3, 1, 2], (1, 2), 9),  # two occurrences, the last at the very end
    ([5, 5, 5], (5, 5), 7),  # overlapping occurrences: one merge, at the left
    ([5, 5, 5, 5], (5, 5), 7),
    ([2, 1, 2, 4], (1, 2), 8),  # (2, 1) is not the pair; an unmerged id at the end
    ([3, 4], (1, 2), 6),  # nothing to merge
    ([1], (1, 2), 6),
    ([], (1, 2), 6),
]


def _as_ids(name: str, got) -> list[int]:
    if isinstance(got, np.ndarray):
        got = got.tolist()
    if not isinstance(got, (list, tuple)) or not all(isinstance(i, (int, np.integer)) for i in got):
        raise CheckFailed(f"{name} should return a list of ints (token ids), got {type(got).__name__}"
                          + (f" {got!r}"[:80] if isinstance(got, (list, tuple)) else ""))
    return [int(i) for i in got]


def check_merge_pair(fn, seed: int = 0) -> None:
    """Test ``fn(ids, pair, new_id) -> list`` against :func:`course_utils.tokens.merge_pair`.

    Fixed cases (overlaps, the last id, a reversed pair, nothing to merge, empty) and random
    ones. Names the usual mistakes: only the first occurrence merged, one step instead of
    two after a merge (so ``(a, a, a)`` merges twice), the last id dropped, a right-to-left
    scan, the pair taken in either order, the input changed in place.
    """
    fn = refuse_reference(fn, ("merge_pair", "train_bpe", "train_bpe_slow", "encode_word", "BPETokenizer"))
    rng = random.Random(seed)
    cases = list(MERGE_CASES)
    for _ in range(20):
        ids = [rng.randrange(3) for _ in range(rng.randrange(2, 16))]
        cases.append((ids, (rng.randrange(3), rng.randrange(3)), 256 + rng.randrange(10)))
    for ids, pair, new_id in cases:
        given = list(ids)
        name = f"my_merge_pair({ids}, {pair}, {new_id})"
        got = _as_ids(name, fn(given, pair, new_id))
        if given != list(ids):
            raise CheckFailed(f"{name} changed the list it was given (now {given}): build a new list and leave "
                              "ids as it was; the caller still needs it")
        expected = merge_pair(ids, pair, new_id)
        if got == expected:
            continue
        mistakes = {hint: np.array(_merge_variant(ids, pair, new_id, key), dtype=np.int64)
                    for key, hint in MERGE_MISTAKES.items()}
        name_mistake(name, np.array(got, dtype=np.int64), np.array(expected, dtype=np.int64), mistakes)
        raise CheckFailed(f"{name} returned {got}, expected {expected}: replace each occurrence of the pair, "
                          "scanning left to right, and step past both of its ids")
    print(f"OK my_merge_pair: {len(cases)} sequences, overlapping pairs and the last id included")


# ----------------------------------------------------------------------------- counting pairs


def _count_variant(words: dict[Word, int], mistake: str) -> dict[IdPair, int]:
    """count_pairs with one usual mistake."""
    counts: Counter[IdPair] = Counter()
    if mistake == "across_words":  # the words joined into one sequence, in the order given
        joined = [i for w, n in words.items() for _ in range(n) for i in w]
        counts.update(pairwise(joined))
        return dict(counts)
    for word, n in words.items():
        pairs = list(pairwise(word))
        if mistake == "unweighted":
            n = 1
        elif mistake == "once_per_word":
            pairs = list(set(pairs))
        elif mistake == "skip_last":
            pairs = pairs[:-1]
        elif mistake == "non_overlapping":
            pairs, i = [], 0
            while i < len(word) - 1:
                pairs.append((word[i], word[i + 1]))
                i += 2 if word[i] == word[i + 1] else 1  # an (a, a) takes both ids, as a merge would
        for pair in pairs:
            counts[pair] += n
    return dict(counts)


COUNT_MISTAKES = {
    "across_words": "count pairs across word boundaries (the last id of one pre-token with the first of the next): "
                    "merges never cross a pre-token, so count inside each word only",
    "unweighted": "count each distinct word once: weight its pairs by the word's count",
    "once_per_word": "count a pair once per word (a set): count it at every position, so (a, b, a, b) holds "
                     "(a, b) twice",
    "non_overlapping": "count only non-overlapping (a, a) pairs: the rule (Sennrich's and the library's) counts "
                       "every position, so (a, a, a) holds (a, a) twice",
    "skip_last": "leave out each word's last pair (range(len(word) - 2) is one short)",
}

COUNT_CASES = [
    {(1, 2, 3): 2, (3, 1): 5},  # (3, 1) inside a word; (3, 3) only across the two words
    {(4, 4, 4): 3, (4, 5, 4, 5): 1, (6,): 7},  # overlapping pairs, a pair twice in a word, a one-id word
    {(1, 2): 1, (2, 1): 4, (1, 2, 1): 2},
]


def _as_counts(name: str, got) -> dict[IdPair, int]:
    if not isinstance(got, dict):
        raise CheckFailed(f"{name} should return a dict (or Counter) from pairs to counts, got {type(got).__name__}")
    out = {}
    for key, value in got.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise CheckFailed(f"{name} has the key {key!r}: each key is a pair of ids, a tuple (a, b)")
        if value:  # a Counter may hold zeros
            out[(int(key[0]), int(key[1]))] = int(value)
    return out


def _vector(counts: dict[IdPair, int], keys: list[IdPair]) -> np.ndarray:
    return np.array([counts.get(k, 0) for k in keys], dtype=np.int64)


def check_count_pairs(fn, seed: int = 0) -> None:
    """Test ``fn(words) -> {pair: count}`` against :func:`course_utils.tokens.count_pairs`.

    ``words`` maps each pre-token (a tuple of ids) to its count. Names the usual mistakes:
    pairs counted across words, the counts ignored, a pair counted once per word or without
    its overlaps, the last pair of each word left out.
    """
    fn = refuse_reference(fn, ("count_pairs", "train_bpe", "train_bpe_slow", "BPETokenizer"))
    rng = random.Random(seed)
    cases = [dict(c) for c in COUNT_CASES]
    for _ in range(5):
        words = {tuple(rng.randrange(4) for _ in range(rng.randrange(1, 7))): rng.randrange(1, 6) for _ in range(6)}
        cases.append(words)
    for words in cases:
        name = f"my_count_pairs({words})"
        given = copy.deepcopy(words)
        got = _as_counts(name, fn(given))
        if given != words:
            raise CheckFailed(f"{name} changed the dict it was given: count without changing words")
        expected = dict(count_pairs(words))
        if got == expected:
            continue
        variants = {key: _count_variant(words, key) for key in COUNT_MISTAKES}
        keys = sorted(set(got) | set(expected) | {p for v in variants.values() for p in v})
        name_mistake(name, _vector(got, keys), _vector(expected, keys),
                     {COUNT_MISTAKES[key]: _vector(v, keys) for key, v in variants.items()})
        wrong = next(k for k in keys if got.get(k, 0) != expected.get(k, 0))
        raise CheckFailed(f"{name}: the pair {wrong} counted {got.get(wrong, 0)} times, expected "
                          f"{expected.get(wrong, 0)}: add the word's count for every adjacent pair inside each word")
    print(f"OK my_count_pairs: {len(cases)} word lists, repeated and overlapping pairs included")
