"""The one shape validator (course_utils.core.shapes.require_shape) and its message."""

import numpy as np
import pytest
import torch

from course_utils.core.shapes import format_shape, require_attention_mask, require_shape, shape_matches, shape_of


def test_ints_must_match():
    require_shape("h", torch.zeros(3, 4), (3, 4))
    with pytest.raises(ValueError, match=r"^h has shape \(3, 5\), expected \(3, 4\)\.$"):
        require_shape("h", torch.zeros(3, 5), (3, 4))
    with pytest.raises(ValueError, match=r"^W has shape \(2, 4\), expected \(3, 4\)\.$"):
        require_shape("W", np.zeros((2, 4)), (3, 4))


def test_names_and_none_match_any_size():
    for shape in [(1, 4), (7, 4), (0, 4)]:
        require_shape("h_prev", torch.zeros(shape), ("B", 4))
        require_shape("h_prev", np.zeros(shape), (None, 4))
    require_shape("x", torch.zeros(2, 3, 5), ("B", "T", None))
    # a name matches any size, but an int next to it is still checked
    with pytest.raises(ValueError, match=r"^h_prev has shape \(3, 5\), expected \(B, 4\)\.$"):
        require_shape("h_prev", torch.zeros(3, 5), ("B", 4))
    with pytest.raises(ValueError, match=r"^v has shape \(3,\), expected \(\*, 3\)\.$"):
        require_shape("v", np.zeros(3), (None, 3))


def test_wrong_number_of_axes():
    with pytest.raises(ValueError, match=r"^x has shape \(4,\), expected \(B, T\)\.$"):
        require_shape("x", torch.zeros(4), ("B", "T"))
    with pytest.raises(ValueError, match=r"^x has shape \(4, 6\), expected \(B, T, 2\)\.$"):
        require_shape("x", torch.zeros(4, 6), ("B", "T", 2))
    with pytest.raises(ValueError, match=r"^b has shape \(2, 8\), expected \(8,\)\.$"):
        require_shape("b", torch.zeros(2, 8), (8,))
    with pytest.raises(ValueError, match=r"^s has shape \(\), expected \(N,\)\.$"):
        require_shape("s", 3.0, ("N",))  # a scalar (no .shape) has no axes
    require_shape("s", torch.tensor(3.0), ())


def test_hint_is_appended():
    with pytest.raises(ValueError, match=r"^W has shape \(4, 3\), expected \(3, 4\)\. Did you transpose it\?$"):
        require_shape("W", torch.zeros(4, 3), (3, 4), hint="Did you transpose it?")


def test_helpers():
    assert format_shape(("B", 4)) == "(B, 4)"
    assert format_shape((None, 3)) == "(*, 3)"
    assert format_shape((5,)) == "(5,)"
    assert format_shape(()) == "()"
    assert shape_of(np.zeros((2, 3))) == (2, 3) and shape_of(torch.zeros(1)) == (1,) and shape_of([1, 2]) == ()
    assert shape_matches((2, 3), ("B", 3)) and not shape_matches((2, 3), ("B",)) and not shape_matches((2, 3), (2, 4))


# ----------------------------------------------------------------------------- attention masks


def test_attention_mask_accepts_bools_that_broadcast():
    require_attention_mask("mask", torch.ones(4, 4, dtype=torch.bool).tril(), (2, 4, 4))
    require_attention_mask("mask", torch.ones(2, 1, 4, dtype=torch.bool), (2, 4, 4))
    require_attention_mask("mask", torch.ones(2, 1, 1, 4, dtype=torch.bool), (2, 3, 4, 4))


@pytest.mark.parametrize(
    ("mask", "words"),
    [
        (torch.zeros(4, 4), r"mask must be a torch.bool tensor \(True = may attend\), got torch.float32.*mask == 0"),
        (torch.ones(4, 4, dtype=torch.long), r"got torch.int64\. .*0/1 ints with \.bool\(\)"),
        (np.ones((4, 4), dtype=bool), r"must be a torch.bool tensor .*got bool"),
        ([[True] * 4] * 4, r"must be a torch.bool tensor .*got list"),
    ],
)
def test_attention_mask_of_another_type_is_a_type_error(mask, words):
    with pytest.raises(TypeError, match=words):
        require_attention_mask("mask", mask, (2, 4, 4))


def test_attention_mask_that_does_not_broadcast_names_both_shapes():
    with pytest.raises(ValueError, match=r"mask has shape \(3, 4\), which does not broadcast to the scores' "
                       r"\(2, 4, 4\) \(\.\.\., Tq, Tk\)\.$"):
        require_attention_mask("mask", torch.ones(3, 4, dtype=torch.bool), (2, 4, 4))


@pytest.mark.parametrize(
    ("scores_shape", "words"),
    [
        ((3, 5, 6), r"A \(B, Tk\) key-padding mask\? .*pad\[:, None, :\] has shape \(3, 1, 6\)"),
        ((3, 2, 5, 6), r"A \(B, Tk\) key-padding mask\? .*pad\[:, None, None, :\] has shape \(3, 1, 1, 6\)"),
    ],
)
def test_key_padding_mask_is_told_how_to_reshape(scores_shape, words):
    with pytest.raises(ValueError, match=r"pad has shape \(3, 6\), which does not broadcast.*" + words):
        require_attention_mask("pad", torch.ones(3, 6, dtype=torch.bool), scores_shape)
