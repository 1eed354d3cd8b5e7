"""Notebooks 05a and 05b, section 1: real surnames by language, read from Faker's person-name locales.

Faker (MIT licence, pinned in pyproject.toml) ships lists of common surnames for each
locale. We read those lists directly from the provider modules (no random sampling, so
the data set is the same on every machine with the same Faker version), lowercase them,
and drop every name that appears under more than one language: its label would be
ambiguous (``garcia`` is listed as Spanish and as French, for instance).
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..core.shapes import require_shape
from .padding import pad_batch

# language -> Faker locales whose surname lists it pools (Latin script only: with Cyrillic
# or Greek names the task would be solved by the alphabet alone).
LANGUAGES: dict[str, tuple[str, ...]] = {
    "Croatian": ("hr_HR",),
    "Dutch": ("nl_NL",),
    "French": ("fr_FR",),
    "German": ("de_DE", "de_AT"),
    "Irish": ("ga_IE",),
    "Italian": ("it_IT",),
    "Slovak": ("sk_SK",),
    "Spanish": ("es_ES",),
}


def locale_surnames(locale: str) -> list[str]:
    """The surname list of one Faker locale, in the order Faker stores it."""
    module = importlib.import_module(f"faker.providers.person.{locale}")
    return list(module.Provider.last_names)  # a tuple, list or OrderedDict (name -> weight)


def load_surnames(
    languages: Mapping[str, Sequence[str]] = LANGUAGES,
) -> tuple[list[str], np.ndarray, list[str]]:
    """Lower-cased surnames with their language labels.

    Returns:
        ``(names, labels, classes)``: ``names[i]`` has language ``classes[labels[i]]``;
        names are unique and sorted within each language, ``labels`` is int64.
    """
    per_language = {
        lang: {n.strip().lower() for loc in locales for n in locale_surnames(loc) if n.strip()}
        for lang, locales in languages.items()
    }
    counts = Counter(n for names in per_language.values() for n in names)
    classes = sorted(per_language)
    names, labels = [], []
    for k, lang in enumerate(classes):
        unique = sorted(n for n in per_language[lang] if counts[n] == 1)
        names += unique
        labels += [k] * len(unique)
    return names, np.array(labels, dtype=np.int64), classes


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a train/validation/test split that keeps each class's share.

    Each class is shuffled with ``seed`` and cut by ``fractions``; the three index arrays
    are disjoint, sorted, and together cover ``range(len(labels))``.
    """
    labels = np.asarray(labels)
    require_shape("labels", labels, ("N",))
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions should be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n_train = round(fractions[0] * len(idx))
        n_val = round(fractions[1] * len(idx))
        parts[0] += idx[:n_train].tolist()
        parts[1] += idx[n_train : n_train + n_val].tolist()
        parts[2] += idx[n_train + n_val :].tolist()
    return tuple(np.sort(np.array(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]


def names_source(languages: Mapping[str, Sequence[str]] = LANGUAGES) -> str:
    """One line naming where the names came from (for notebooks and data/README.md)."""
    from importlib.metadata import version

    locales = ", ".join(f"{lang}: {'+'.join(locs)}" for lang, locs in languages.items())
    return f"surname lists of Faker {version('faker')} (MIT licence), locales {locales}"


def index_chunks(index: np.ndarray, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """``index`` cut into consecutive chunks of ``batch_size`` (the last may be shorter), shuffled first if ``rng``."""
    index = np.asarray(index)
    if rng is not None:
        index = rng.permutation(index)
    return [index[start : start + batch_size] for start in range(0, len(index), batch_size)]


def name_batches(
    ids: Sequence[np.ndarray], labels: np.ndarray, index: np.ndarray, batch_size: int,
    rng: np.random.Generator | None = None, pad_value: int = 0,
) -> list[tuple]:
    """Padded batches ``(x (B, T), lengths (B,), y (B,))`` of the names at ``index``.

    ``ids[i]`` is the id sequence of name ``i``. With ``rng`` the order is shuffled (a new
    order on every call, e.g. once per epoch); without it the order of ``index`` is kept.
    """
    batches = []
    for chunk in index_chunks(index, batch_size, rng):
        x, lengths = pad_batch([ids[i] for i in chunk], pad_value)
        batches.append((x, lengths, torch.as_tensor(labels[chunk], dtype=torch.long)))
    return batches


def spelling_batches(
    ids: Sequence[np.ndarray], labels: np.ndarray, index: np.ndarray, batch_size: int,
    rng: np.random.Generator | None = None,
) -> list[tuple]:
    """Batches ``(cond (B,), inputs (B, T), targets (B, T))`` for a language-conditioned speller.

    Token 0 marks the start and the end of a name, so ``ids`` must use ids >= 1 for
    characters. Inputs are ``[0, c_1, ..., c_n]`` padded with 0; targets are
    ``[c_1, ..., c_n, 0]`` padded with -100, the value ``cross_entropy`` ignores.
    """
    batches = []
    for chunk in index_chunks(index, batch_size, rng):
        seqs = [np.concatenate([[0], ids[i], [0]]) for i in chunk]  # 0, c_1..c_n, 0
        padded, lengths = pad_batch(seqs, pad_value=0)  # (B, n_max + 2)
        inputs, targets = padded[:, :-1].clone(), padded[:, 1:].clone()
        steps = torch.arange(targets.shape[1])[None, :]
        targets[steps >= (lengths - 1)[:, None]] = -100  # beyond each name's end token
        batches.append((torch.as_tensor(labels[chunk], dtype=torch.long), inputs, targets))
    return batches
