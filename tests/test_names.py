import numpy as np
import pytest

from course_utils.data.names import (
    LANGUAGES,
    load_surnames,
    locale_surnames,
    name_batches,
    names_source,
    spelling_batches,
    stratified_split,
)


def test_surnames_are_real_unique_and_unambiguous():
    names, labels, classes = load_surnames()
    assert classes == sorted(LANGUAGES)
    assert len(names) == len(set(names)) == len(labels) > 8000
    assert all(n == n.lower() and n for n in names)
    counts = np.bincount(labels)
    assert counts.min() > 300
    italian = set(np.array(names)[labels == classes.index("Italian")])
    assert "abatantuono" in italian  # the first name of Faker's it_IT list
    # a name listed under two languages is dropped from both
    spanish_raw = {n.lower() for n in locale_surnames("es_ES")}
    french_raw = {n.lower() for n in locale_surnames("fr_FR")}
    shared = spanish_raw & french_raw
    assert shared and not shared & set(names)
    assert "Faker" in names_source() and "it_IT" in names_source()


def test_stratified_split():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    train, val, test = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(100))
    assert np.bincount(labels[train]).tolist() == [40, 24, 16]
    assert np.bincount(labels[val]).tolist() == [5, 3, 2]
    again = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    assert all((a == b).all() for a, b in zip((train, val, test), again, strict=True))
    with pytest.raises(ValueError):
        stratified_split(labels, (0.5, 0.5, 0.5))
    with pytest.raises(ValueError):
        stratified_split(labels.reshape(10, 10))


def test_batches():
    ids = [np.array([3, 4, 5]), np.array([6]), np.array([7, 8])]
    labels = np.array([1, 0, 1])
    x, lengths, y = name_batches(ids, labels, np.array([0, 1, 2]), 2)[0]
    assert x.tolist() == [[3, 4, 5], [6, 0, 0]] and lengths.tolist() == [3, 1] and y.tolist() == [1, 0]
    shuffled = name_batches(ids, labels, np.arange(3), 3, rng=np.random.default_rng(0))[0]
    assert sorted(shuffled[2].tolist()) == [0, 1, 1]
    cond, inputs, targets = spelling_batches(ids, labels, np.array([0, 1]), 2)[0]
    assert cond.tolist() == [1, 0]
    assert inputs.tolist() == [[0, 3, 4, 5], [0, 6, 0, 0]]
    assert targets.tolist() == [[3, 4, 5, 0], [6, 0, -100, -100]]
