import numpy as np
import pytest
import torch

from course_utils.data.text import CharVocab, corpus_source, load_corpus


def test_corpus_is_real_english_text():
    text = load_corpus()
    assert len(text) > 400_000
    assert "assert" in text[:200] and " the " in text
    assert "Python" in corpus_source()


def test_max_chars():
    assert load_corpus(100) == load_corpus()[:100]
    with pytest.raises(ValueError):
        load_corpus(0)


def test_vocab_round_trip():
    vocab = CharVocab.from_text("hello world")
    assert vocab.size == 8 and vocab.chars[0] == " "
    ids = vocab.encode("low")
    assert ids.dtype == np.int64 and ids.tolist() == [vocab.chars.index(c) for c in "low"]
    assert vocab.decode(ids) == "low"
    assert vocab.decode(torch.tensor(ids)) == "low"


def test_vocab_errors():
    vocab = CharVocab.from_text("ab")
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        vocab.encode("az")
    with pytest.raises(ValueError, match="0..1"):
        vocab.decode([2])
    with pytest.raises(ValueError):
        CharVocab.from_text("")
