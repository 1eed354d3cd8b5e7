"""Learner-facing text speaks of sources the learner has: no "the lecture", "the slides", "the script".

The course is read without any lecture behind it. Where it corrects a common claim it quotes the claim
and names a real source (a paper, DLS, d2l, CS231n), never documents the learner never saw.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
# ("the script" alone is also a writing system, as in 05a's Latin-script languages: only "lecture script" counts)
ABSENT_SOURCES = re.compile(r"\b(the|a|our|this|popular|common) (lecture|lecture's|slides?|lecture notes|"
                            r"lecture script|lecture table)\b", re.IGNORECASE)


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_no_notebook_points_to_documents_the_learner_lacks(path):
    markdown = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    found = sorted({m.group(0) for m in ABSENT_SOURCES.finditer(markdown)})
    assert not found, f"{path.name} speaks of documents the learner does not have: {found}"


def test_the_pattern_catches_the_usual_phrasings():
    for text in ("as the lecture says", "the slides write", "a popular lecture script", "A common lecture table"):
        assert ABSENT_SOURCES.search(text), text
    assert not ABSENT_SOURCES.search("the lectures of this course: notebooks 01-09")
    assert not ABSENT_SOURCES.search("Latin-script languages, so that the script alone does not give the answer")
