"""course_utils.core.notebook: the lines every notebook starts and ends with, and show_source."""

import inspect

import pytest

from course_utils.attention import additive_attention_loop
from course_utils.core.notebook import show_source
from course_utils.seq2seq_transformer import DecoderLayer


def test_show_source_prints_the_code_under_its_file_and_line(capsys):
    text = show_source(additive_attention_loop)
    _, line = inspect.getsourcelines(additive_attention_loop)
    assert text.splitlines()[0] == f"# course_utils/attention.py, line {line}"
    assert text.splitlines()[1].startswith("def additive_attention_loop(")
    assert capsys.readouterr().out == text + "\n"


def test_show_source_dedents_a_method():
    text = show_source(DecoderLayer.forward)
    assert text.splitlines()[1].startswith("def forward(self")  # not indented as in its class


def test_show_source_refuses_what_has_no_python_source():
    with pytest.raises(TypeError, match="show_source needs a function, class or method written in Python, got"):
        show_source(len)
