"""Notebook 05c, sections 2-3: text tasks made from the course corpus (word segmentation, reversal).

Both are generated from text with a fixed seed, so they need no download: segmentation
turns text with its spaces removed into one tag per letter; reversal pairs a random
snippet with its mirror image.
"""

from __future__ import annotations

import numpy as np


def letters_only(text: str) -> str:
    """Lower-case ``text`` and keep the letters a-z, every other run of characters becoming one space."""
    out, space = [], True
    for ch in text.lower():
        if "a" <= ch <= "z":
            out.append(ch)
            space = False
        elif not space:
            out.append(" ")
            space = True
    return "".join(out).strip()


def segmentation_data(text: str, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Word segmentation as tagging: letters with the spaces removed, and their tags.

    ``tags[i] = 1`` if letter ``i`` ends a word (a space followed it), else 0. Returns
    ``(letters, tags)``, both int64 of shape ``(N, chunk)``: ids 0..25 for a..z, the text
    cut into consecutive chunks (the remainder is dropped).
    """
    words = letters_only(text).split()
    letters = np.frombuffer("".join(words).encode("ascii"), dtype=np.uint8).astype(np.int64) - ord("a")
    tags = np.zeros(len(letters), dtype=np.int64)
    tags[np.cumsum([len(w) for w in words]) - 1] = 1
    n = len(letters) // chunk
    return letters[: n * chunk].reshape(n, chunk), tags[: n * chunk].reshape(n, chunk)


def reversal_pairs(text: str, n: int, min_len: int, max_len: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``n`` random snippets of ``text`` with length in ``[min_len, max_len]``, each with its reverse."""
    if not 1 <= min_len <= max_len < len(text):
        raise ValueError(f"need 1 <= min_len <= max_len < len(text), got {min_len}, {max_len}, {len(text)}")
    lengths = rng.integers(min_len, max_len + 1, size=n)
    starts = rng.integers(0, len(text) - lengths)
    return [(text[s : s + k], text[s : s + k][::-1]) for s, k in zip(starts, lengths, strict=True)]
