"""course_utils.tokens (notebook 05e): byte-pair encoding against hand-worked cases, a slow recount,
HuggingFace ``tokenizers``; the language-model helpers; and the exercises' checks with their mistakes."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch
from tokenizers import pre_tokenizers

from course_utils import CheckFailed
from course_utils.data.text import load_corpus
from course_utils.exercises.tokens import (
    COUNT_CASES,
    COUNT_MISTAKES,
    MERGE_CASES,
    MERGE_MISTAKES,
    _count_variant,
    _merge_variant,
    check_count_pairs,
    check_merge_pair,
)
from course_utils.shared.lm import RecurrentLM
from course_utils.tokens import (
    BPETokenizer,
    bits_per_char,
    bytes_to_unicode,
    count_pairs,
    gru_lm_macs,
    library_bpe,
    library_merges,
    library_tokens,
    matched_hidden_size,
    merge_pair,
    pretokenize,
    tiled_windows,
    total_nll,
    train_bpe,
    train_bpe_slow,
    train_token_lm,
    word_counts,
)

UNSEEN = "Grüße aus Köln — naïve café, 東京 and 🙂!\tTabs,  two  spaces, it's 2026's\r\nend   "


@pytest.fixture(scope="module")
def corpus_head() -> str:
    return load_corpus(60_000)


# ----------------------------------------------------------------------------- pre-tokens


def test_pretokens_join_back_to_the_text_and_keep_the_space_before_a_word():
    assert pretokenize("Hello world, it's  2 cats") == ["Hello", " world", ",", " it", "'s", " ", " 2", " cats"]
    assert "".join(pretokenize(UNSEEN)) == UNSEEN


def test_pretokens_equal_the_library_s_gpt2_split(corpus_head):
    """The stdlib regex splits as the library's ByteLevel pre-tokeniser (GPT-2's \\p{L} / \\p{N} pattern)."""
    to_char = bytes_to_unicode()
    split = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    for text in (corpus_head, UNSEEN):
        ours = ["".join(to_char[b] for b in w.encode()) for w in pretokenize(text)]
        assert ours == [w for w, _ in split.pre_tokenize_str(text)]


def test_bytes_to_unicode_is_gpt2_s_table():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"
    assert sorted(table.values()) == sorted(pre_tokenizers.ByteLevel.alphabet())


# ----------------------------------------------------------------------------- the step and training


@pytest.mark.parametrize(("ids", "pair", "new_id"), MERGE_CASES)
def test_merge_pair_on_the_exercise_cases(ids, pair, new_id):
    expected = {(1, 2, 3, 1, 2): [9, 3, 9], (5, 5, 5): [7, 5], (5, 5, 5, 5): [7, 7], (2, 1, 2, 4): [2, 8, 4],
                (3, 4): [3, 4], (1,): [1], (): []}[tuple(ids)]
    assert merge_pair(ids, pair, new_id) == expected


def test_count_pairs_counts_inside_words_at_every_position():
    assert count_pairs({(1, 2, 3): 2, (3, 1): 5}) == {(1, 2): 2, (2, 3): 2, (3, 1): 5}
    assert count_pairs({(4, 4, 4): 3, (6,): 7}) == {(4, 4): 6}


def test_train_bpe_by_hand():
    """(1, 1, 1) x 1 and (1, 2) x 2: (1, 2) and (1, 1) both count 2, the smaller pair wins the tie."""
    merges, counts = train_bpe({(1, 1, 1): 1, (1, 2): 2}, 5)
    assert merges == [(1, 1), (1, 2), (256, 1)] and counts == [2, 2, 1]  # then no pair is left


def test_train_bpe_equals_the_slow_recount(corpus_head):
    words = word_counts(corpus_head[:20_000])
    assert train_bpe(words, 120)[0] == train_bpe_slow(words, 120)
    rng = random.Random(0)
    for _ in range(20):
        words = Counter(tuple(rng.randrange(3) for _ in range(rng.randrange(1, 8))) for _ in range(15))
        assert train_bpe(words, 12)[0] == train_bpe_slow(words, 12)


def test_merge_counts_fall_and_each_merge_is_a_new_token(corpus_head):
    merges, counts = train_bpe(word_counts(corpus_head), 200)
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))
    assert len(set(BPETokenizer(tuple(merges)).vocab)) == 256 + 200


def test_round_trip_on_seen_and_unseen_text(corpus_head):
    tokenizer = BPETokenizer.train(corpus_head, 150)
    for text in (corpus_head, UNSEEN, ""):
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids, errors="strict") == text
        assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert len(tokenizer.encode(corpus_head)) < 0.6 * len(corpus_head.encode())
    assert tokenizer.decode([0xC3]) == "\ufffd"  # half a character: replaced, not an error
    with pytest.raises(UnicodeDecodeError):
        tokenizer.decode([0xC3], errors="strict")


def test_encoding_applies_the_earliest_merge_first():
    tokenizer = BPETokenizer(((98, 99), (97, 98)))  # "bc" learnt before "ab"
    assert tokenizer.encode("abc") == [97, 256]
    assert BPETokenizer(((97, 98), (98, 99))).encode("abc") == [256, 99]
    assert tokenizer.truncated(0).encode("abc") == [97, 98, 99]


def test_from_pair_bytes_rebuilds_the_merges(corpus_head):
    tokenizer = BPETokenizer.train(corpus_head[:20_000], 60)
    assert BPETokenizer.from_pair_bytes(tokenizer.pair_bytes()) == tokenizer
    with pytest.raises(ValueError, match="two merges make"):
        BPETokenizer.from_pair_bytes([(b"a", b"b"), (b"ab", b"c"), (b"a", b"b")])


def test_same_merges_and_tokens_as_the_library_once_bytes_are_numbered_alike(corpus_head):
    """The library numbers the 256 bytes by their printable stand-ins; ties go to the smaller ids in both."""
    n = 300
    library = library_bpe(corpus_head, n)
    theirs = library_merges(library)
    vocab = library.get_vocab()
    order = sorted(range(256), key=lambda b: vocab[bytes_to_unicode()[b]])  # the byte of the library's id 0, 1, ...
    relabel = {b: i for i, b in enumerate(order)}
    words = {tuple(relabel[b] for b in w): n_w for w, n_w in word_counts(corpus_head).items()}
    merges, _ = train_bpe(words, n)
    table = [bytes([b]) for b in order]
    for a, b in merges:
        table.append(table[a] + table[b])
    assert [(table[a], table[b]) for a, b in merges] == theirs
    ours = BPETokenizer.from_pair_bytes(theirs)
    assert [ours.vocab[i] for i in ours.encode(UNSEEN + corpus_head[:5000])] == library_tokens(
        library, UNSEEN + corpus_head[:5000])


# ----------------------------------------------------------------------------- language models on tokens


def test_macs_are_the_weight_matrices_a_token_goes_through():
    model = RecurrentLM("gru", 50, 8, 12)
    weights = sum(p.numel() for name, p in model.named_parameters() if "weight" in name and "embed" not in name)
    assert gru_lm_macs(50, 8, 12) == weights


def test_matched_hidden_size_is_the_largest_within_budget():
    budget = gru_lm_macs(512, 32, 128)
    h = matched_hidden_size(103, 32, budget)
    assert gru_lm_macs(103, 32, h) <= budget < gru_lm_macs(103, 32, h + 1)


def test_tiled_windows_predict_each_token_after_the_first_once():
    ids = torch.arange(23)
    batches = tiled_windows(ids, context=5, batch_size=2)
    targets = torch.cat([y.reshape(-1) for _, y in batches])
    inputs = torch.cat([x.reshape(-1) for x, _ in batches])
    assert targets.tolist() == list(range(1, 23)) and inputs.tolist() == list(range(22))
    with pytest.raises(ValueError, match="at least two"):
        tiled_windows(ids[:1], 5, 2)


def test_bits_per_char_of_a_model_that_knows_nothing_is_log2_v_per_token():
    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.zeros(*x.shape, 7) + 0 * self.w

    ids = torch.randint(0, 7, (41,))
    assert total_nll(Uniform(), tiled_windows(ids, 8, 3)) == pytest.approx(40 * math.log(7))
    assert bits_per_char(Uniform(), ids, n_chars=80, context=8) == pytest.approx(40 * math.log2(7) / 80)


def test_train_token_lm_keeps_the_best_validation_checkpoint():
    torch.manual_seed(0)
    ids = torch.tensor([0, 1, 2, 3] * 60)
    model = RecurrentLM("gru", 4, 8, 16)
    history = train_token_lm(model, ids, ids[:81], steps=40, context=8, batch_size=8, lr=0.02, seed=0,
                             eval_every=10, device=torch.device("cpu"), progress=False)
    assert len(history.val_losses) == 4 and history.best_epoch == min(range(4), key=history.val_losses.__getitem__)
    assert history.val_losses[history.best_epoch] < 0.5 * math.log(4)  # the cycle is learnt
    with pytest.raises(ValueError, match="multiple of eval_every"):
        train_token_lm(model, ids, ids, steps=15, context=8, batch_size=8, lr=0.01, seed=0, eval_every=10)


# ----------------------------------------------------------------------------- exercise 1: the merge step


def solution_merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def test_check_merge_pair_accepts_a_solution(capsys):
    check_merge_pair(solution_merge)
    check_merge_pair(solution_merge, seed=1)
    check_merge_pair(lambda ids, pair, new_id: tuple(solution_merge(ids, pair, new_id)))  # any sequence of ints
    assert "OK my_merge_pair" in capsys.readouterr().out


def test_each_merge_mistake_shows_on_the_fixed_cases():
    for key in MERGE_MISTAKES:
        assert any(_merge_variant(*case, key) != merge_pair(*case) for case in MERGE_CASES), key


# Learners' merges with one mistake each, written as a learner would (not from the check's variants).
def only_first(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


def one_step(ids, pair, new_id):
    out = []
    for i in range(len(ids)):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
        else:
            out.append(ids[i])
    return out


def overlapping_twice(ids, pair, new_id):
    out, merged_last = [], False
    for i in range(len(ids)):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            merged_last = True
        elif merged_last:
            merged_last = False  # the pair's second id: skip it
        else:
            out.append(ids[i])
    return out


def loop_one_short(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            ids[i : i + 2] = [new_id]
        i += 1
    return ids


def from_the_right(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i > 0 and (ids[i - 1], ids[i]) == tuple(pair):
            out.insert(0, new_id)
            i -= 2
        else:
            out.insert(0, ids[i])
            i -= 1
    return out


def either_order(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and {ids[i], ids[i + 1]} == set(pair) and len(set(pair)) == len({ids[i], ids[i + 1]}):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def as_strings(ids, pair, new_id):
    return [str(i) for i in solution_merge(ids, pair, new_id)]


@pytest.mark.parametrize(("wrong", "message"), [
    (only_first, "only the first occurrence"),
    (one_step, "step one place after a merge instead of two"),
    (overlapping_twice, "an id can belong to one merge only"),
    (loop_one_short, "never append the last id"),
    (in_place, "changed the list it was given"),
    (from_the_right, "scan from the right"),
    (either_order, r"merge \(b, a\) as well"),
    (as_strings, "should return a list of ints"),
])
def test_check_merge_pair_names_the_mistake(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_merge_pair(wrong)


def test_check_merge_pair_refuses_the_reference():
    def delegate(ids, pair, new_id):
        return merge_pair(ids, pair, new_id)

    with pytest.raises(CheckFailed, match="calls merge_pair"):
        check_merge_pair(delegate)

    def through_the_tokenizer(ids, pair, new_id):
        return BPETokenizer((tuple(pair),)).encode_word(bytes(ids)) if max(ids, default=0) < 256 else ids

    with pytest.raises(CheckFailed, match="BPETokenizer"):
        check_merge_pair(through_the_tokenizer)


# ----------------------------------------------------------------------------- exercise 2: counting pairs


def solution_count(words):
    counts = {}
    for word, n in words.items():
        for i in range(len(word) - 1):
            counts[word[i], word[i + 1]] = counts.get((word[i], word[i + 1]), 0) + n
    return counts


def test_check_count_pairs_accepts_a_solution(capsys):
    check_count_pairs(solution_count)
    check_count_pairs(lambda words: Counter(solution_count(words)), seed=1)
    assert "OK my_count_pairs" in capsys.readouterr().out


def test_each_count_mistake_shows_on_the_fixed_cases():
    for key in COUNT_MISTAKES:
        assert any(_count_variant(case, key) != count_pairs(case) for case in COUNT_CASES), key


def across_words(words):
    ids = [i for word, n in words.items() for _ in range(n) for i in word]
    counts = Counter()
    for i in range(len(ids) - 1):
        counts[ids[i], ids[i + 1]] += 1
    return counts


def ignore_counts(words):
    return Counter(p for word in words for p in zip(word, word[1:], strict=False))


def as_a_set(words):
    counts = Counter()
    for word, n in words.items():
        for pair in set(zip(word, word[1:], strict=False)):
            counts[pair] += n
    return counts


def one_short(words):
    counts = Counter()
    for word, n in words.items():
        for i in range(len(word) - 2):
            counts[word[i], word[i + 1]] += n
    return counts


def like_a_merge(words):
    counts = Counter()
    for word, n in words.items():
        i = 0
        while i < len(word) - 1:
            counts[word[i], word[i + 1]] += n
            i += 2 if word[i] == word[i + 1] else 1
    return counts


def string_keys(words):
    return {f"{a},{b}": n for (a, b), n in solution_count(words).items()}


@pytest.mark.parametrize(("wrong", "message"), [
    (across_words, "across word boundaries"),
    (ignore_counts, "count each distinct word once"),
    (as_a_set, "once per word"),
    (one_short, "last pair"),
    (like_a_merge, "non-overlapping"),
    (string_keys, "each key is a pair of ids"),
])
def test_check_count_pairs_names_the_mistake(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_count_pairs(wrong)


def test_check_count_pairs_refuses_the_reference():
    with pytest.raises(CheckFailed, match="calls count_pairs"):
        check_count_pairs(lambda words: count_pairs(words))
