"""Notebooks 01-05c, 05e, 07 and 08 (the text experiments): the course's character corpus and a character vocabulary.

The corpus is the English text of Python's own help topics (`pydoc_data.topics`, in the
standard library, PSF licence): about 0.47 M characters of prose and code, always
installed, never downloaded. Every character-level language model in the course (the
numpy char-RNN of 02, the LSTM and the tiny GPT of 08) trains on it, so results compare.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def load_corpus(max_chars: int | None = None) -> str:
    """The help-topic texts of this Python, joined in sorted key order.

    The text depends a little on the Python version (3.11 here); notebooks print
    its length rather than relying on a fixed one.
    """
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key] for key in sorted(topics))
    if max_chars is not None:
        if max_chars <= 0:
            raise ValueError(f"max_chars must be positive, got {max_chars}")
        text = text[:max_chars]
    return text


def corpus_source() -> str:
    """One line naming where the corpus came from (for notebooks and data/README.md)."""
    return f"pydoc_data.topics from Python {sys.version.split()[0]} (standard library, PSF licence)"


@dataclass(frozen=True)
class CharVocab:
    """A bijection between the characters of a text and the integers 0..size-1."""

    chars: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls(tuple(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Character ids of ``text``, shape ``(len(text),)``, dtype int64."""
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.array([index[c] for c in text], dtype=np.int64)
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text for a sequence of ids (numpy array, list or 1-d tensor)."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must lie in 0..{self.size - 1}, got {ids.min()}..{ids.max()}")
        return "".join(self.chars[i] for i in ids)
