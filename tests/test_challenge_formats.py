"""Issue 29, item 3: the configuration challenges of 05-06 in other formats than "choose a config".

05a and 06 give a broken run to diagnose (a cause from a menu, then a one-field fix that the check trains), 05c a
config to fix (one field), 05d two forecasters to pick between (and why). The format's own rules are checked without
training; the training runs (the fix passes, the idea-less change fails) are slow.
"""

from __future__ import annotations

import re

import pytest

from course_utils import CheckFailed
from course_utils.core.checks import changed_config, check_cause
from course_utils.exercises.attention import (
    _SEQ2SEQ_REFUTATIONS,
    BROKEN_SEQ2SEQ,
    SEQ2SEQ_CAUSES,
    check_seq2seq_diagnosis,
)
from course_utils.exercises.forecasting import _AR_PICK_REFUTATIONS, AR_PICK_REASONS, ar_pair_rmse, check_ar_pick
from course_utils.exercises.output_types import (
    _CLASSIFIER_REFUTATIONS,
    BROKEN_CLASSIFIER,
    BROKEN_TAGGER,
    CLASSIFIER_CAUSES,
    check_classifier_diagnosis,
    check_tagger_fix,
)

BROKEN = {"bidirectional": False, "hidden_size": 32, "lr": 2e-2}


def test_changed_config_applies_one_change_and_refuses_the_rest():
    assert changed_config(BROKEN, {"bidirectional": True}, 1) == {**BROKEN, "bidirectional": True}
    assert changed_config(BROKEN, {"lr": 1e-2, "hidden_size": 32}, 1)["lr"] == 1e-2  # an unchanged value is no change
    with pytest.raises(CheckFailed, match="changes 2 fields .* allows 1: find the field that breaks the run"):
        changed_config(BROKEN, {"bidirectional": True, "hidden_size": 48}, 1)
    with pytest.raises(CheckFailed, match="names 'layers', which the given config does not have"):
        changed_config(BROKEN, {"layers": 2}, 1)
    with pytest.raises(CheckFailed, match="changes nothing"):
        changed_config(BROKEN, {"bidirectional": False}, 1)
    with pytest.raises(CheckFailed, match=r"should be a dict \{field: new value\}"):
        changed_config(BROKEN, ["bidirectional", True], 1)


def test_check_cause_names_what_rules_a_wrong_cause_out():
    causes = {"right": None, "wrong": "the evidence says otherwise"}
    check_cause("right", causes)
    with pytest.raises(CheckFailed, match="'wrong' does not fit the evidence: the evidence says otherwise"):
        check_cause("wrong", causes)
    with pytest.raises(CheckFailed, match="should be one of 'right', 'wrong'"):
        check_cause("other", causes)


@pytest.mark.parametrize(("menu", "causes"), [
    (CLASSIFIER_CAUSES, _CLASSIFIER_REFUTATIONS), (SEQ2SEQ_CAUSES, _SEQ2SEQ_REFUTATIONS),
    (AR_PICK_REASONS, _AR_PICK_REFUTATIONS)])
def test_the_menu_shown_is_names_only_in_an_order_that_tells_nothing(menu, causes):
    # the notebooks import the menu: a tuple of names, alphabetical, with no trace of which one is right
    assert isinstance(menu, tuple) and all(isinstance(cause, str) for cause in menu)
    assert list(menu) == sorted(causes) and len(set(menu)) == len(menu)


@pytest.mark.parametrize(("check", "causes", "field"), [
    (check_classifier_diagnosis, _CLASSIFIER_REFUTATIONS, "lr"),
    (check_seq2seq_diagnosis, _SEQ2SEQ_REFUTATIONS, "hidden_size")])
def test_a_diagnosis_with_a_wrong_cause_fails_before_training(check, causes, field):
    assert sum(why is None for why in causes.values()) == 1  # one right cause
    for cause, why in causes.items():
        if why is not None:
            with pytest.raises(CheckFailed, match=re.escape(why)):
                check({"cause": cause, "change": {field: 64 if field == "hidden_size" else 1e-2}})


def test_the_broken_configs_are_valid_and_one_field_from_the_fix():
    assert BROKEN_TAGGER == BROKEN and BROKEN_SEQ2SEQ["attention"] == "none" and BROKEN_CLASSIFIER["lr"] == 1e-3


def test_check_ar_pick_passes_the_cycle_and_names_the_slips(capsys):
    right = next(r for r, why in _AR_PICK_REFUTATIONS.items() if why is None)
    for seed in range(5):  # AR(12) wins five years ahead on every split (and AR(3) is level one year ahead)
        got = ar_pair_rmse(seed)
        assert got[12] < got[3]
        check_ar_pick({"winner": 12, "reason": right}, seed=seed)
    assert "you picked AR(12)" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match=r"AR\(12\) wins, by 1\.7\. Likely culprit: a forecast of AR\(3\) fed back"):
        check_ar_pick({"winner": 3, "reason": right})
    with pytest.raises(CheckFailed, match="does not fit the evidence: one year ahead the two are level"):
        check_ar_pick({"winner": 12, "reason": "it is ahead one year ahead"})
    with pytest.raises(CheckFailed, match="winner should be one of the orders 3 and 12"):
        check_ar_pick({"winner": 9, "reason": right})


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fixes_pass_and_the_idea_less_changes_fail(seed):
    """The graded seeds; each run is also measured in the comments beside its broken config."""
    check_tagger_fix({"bidirectional": True}, seed=seed)
    with pytest.raises(CheckFailed, match="Likely culprit: a unidirectional tagger"):
        check_tagger_fix({"hidden_size": 48}, seed=seed)
    check_classifier_diagnosis({"cause": "learning rate too small", "change": {"lr": 1e-2}}, seed=seed)
    check_seq2seq_diagnosis({"cause": "one fixed-size context", "change": {"attention": "additive"}}, seed=seed)
