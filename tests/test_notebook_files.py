"""Every notebook is stored as an output-free .ipynb paired with a jupytext percent .py.

The .ipynb is in notebooks/, the one file a learner sees per lecture; its .py pair is in notebooks/py/
(jupytext's paired-path prefix, ``formats: ipynb,py//py:percent``), the file reviewers read in a diff.
"""

import io
import re
import tokenize
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.paired_paths import paired_paths

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
IPYNB = sorted(NOTEBOOKS.glob("*.ipynb"))
TWINS = NOTEBOOKS / "py"
FORMATS = "ipynb,py//py:percent"
PY = sorted(TWINS.glob("*.py"))
DEVICE_NAMES = {"cpu", "cuda", "mps"}


def hard_coded_devices(code: str) -> list[str]:
    """Places in ``code`` that name a device instead of asking course_utils.get_device()."""
    found = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return re.findall(r"\.cuda\(|['\"](?:cuda(?::\d+)?|cpu|mps)['\"]", code)
    for i, tok in enumerate(tokens):
        if tok.type == tokenize.STRING:
            text = re.sub(r"^[rbuRBU]*(['\"]{1,3})(.*)\1$", r"\2", tok.string, flags=re.S)
            if text.lower() in DEVICE_NAMES or re.fullmatch(r"cuda:\d+", text):
                found.append(f"line {tok.start[0]}: {tok.line.strip()}")
        elif tok.type == tokenize.NAME and tok.string == "cuda" and 0 < i < len(tokens) - 1:
            if tokens[i - 1].string == "." and tokens[i + 1].string == "(":
                found.append(f"line {tok.start[0]}: {tok.line.strip()}")
    return found


def cells(nb):
    return [(c.cell_type, c.source.strip(), c.metadata.get("nbgrader")) for c in nb.cells]


def test_there_are_notebooks():
    assert IPYNB, "no notebooks found"


def test_every_notebook_has_a_pair():
    assert [p.stem for p in IPYNB] == [p.stem for p in PY], (
        "each notebooks/NAME.ipynb needs notebooks/py/NAME.py (run `make sync`)"
    )


def test_each_lecture_is_one_file_in_notebooks():
    assert not list(NOTEBOOKS.glob("*.py")), "the .py pairs belong in notebooks/py/ (formats: ipynb,py//py:percent)"


@pytest.mark.parametrize("path", IPYNB, ids=lambda p: p.name)
def test_pair_in_sync(path):
    ipynb = jupytext.read(path)
    twin = TWINS / f"{path.stem}.py"
    py = jupytext.read(twin)
    assert ipynb.metadata.get("jupytext", {}).get("formats") == FORMATS
    assert py.metadata.get("jupytext", {}).get("formats") == FORMATS
    assert [Path(p) for p, _ in paired_paths(str(path), "ipynb", FORMATS)] == [path, twin]  # as jupytext pairs them
    a, b = cells(ipynb), cells(py)
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        assert x == y, f"{path.name} cell {i} differs from its .py pair: run `make sync`"
    assert len(a) == len(b), f"{path.name} and its .py pair have {len(a)} and {len(b)} cells: run `make sync`"


@pytest.mark.parametrize("path", IPYNB, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    with_output = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_output, f"{path.name} stores outputs in cells {with_output}: run `make sync` to strip them"


@pytest.mark.parametrize("path", IPYNB, ids=lambda p: p.name)
def test_no_hard_coded_device(path):
    nb = nbformat.read(path, as_version=4)
    hits = [f"cell {i} {hit}" for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for hit in hard_coded_devices(c.source)]
    assert not hits, f"{path.name} names a device; use course_utils.get_device(): {hits}"


@pytest.mark.parametrize("code", [
    "x = x.cuda()",
    "device = 'cuda'",
    'model.to("cpu")',
    "torch.device('cuda:0')",
    "t = torch.zeros(3, device='mps')",
])
def test_scanner_catches_hard_coded_devices(code):
    assert hard_coded_devices(code)


@pytest.mark.parametrize("code", [
    "device = get_device()",
    "y = x.cpu().numpy()  # 'cuda' in a comment is fine",
    "print('runs on the cpu or cuda device')",
    "s = '2.13.0+cpu'",
])
def test_scanner_allows_device_agnostic_code(code):
    assert not hard_coded_devices(code)


# Learners never see the lecture material the course was built from: text that cites it by
# its file names ("seed 003", "the seed's trainer") points at nothing. Quote the claim instead.
SOURCE_CITATION = re.compile(r"(?i)\bseeds?\s*\(?\d{3}\b|\bseed's\b|\bseeds'\s+(?:version|trainer|code|text|`)|"
                             r"\bwhat the seeds\b")


def learner_facing_files(repo):
    return sorted([*TWINS.glob("*.py"), *(repo / "course_utils").rglob("*.py"), repo / "README.md"])


def test_no_citations_of_the_source_material(repo):
    cited = [f"{p.relative_to(repo)}:{n}: {line.strip()}" for p in learner_facing_files(repo)
             for n, line in enumerate(p.read_text().splitlines(), 1) if SOURCE_CITATION.search(line)]
    assert not cited, "quote the claim instead of citing the source material:\n" + "\n".join(cited)


@pytest.mark.parametrize("text", ["(seed 003)", "Seed 002's", "the seeds' `MinMaxScaler`", "the seed's trainer",
                                  "What the seeds get wrong", "The seeds (001) end"])
def test_citation_scanner_catches(text):
    assert SOURCE_CITATION.search(text)


@pytest.mark.parametrize("text", ["seed_everything(0)", "five seeds per model", "over seeds", "(seed 0)",
                                  "manual_seed(11)", "the seeds' spread"])
def test_citation_scanner_allows(text):
    assert not SOURCE_CITATION.search(text)
