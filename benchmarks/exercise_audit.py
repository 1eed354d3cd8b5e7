"""Issue 29's closing-note table: every graded exercise of the course, tried as a learner who wants the points.

Writes ``benchmarks/results/exercise_audit.md`` with three tables:

1. one row per graded exercise (all notebooks, read with :mod:`course_tools.grading.cells`): its checks, and the routes
   to the course's own implementation (an alias, ``importlib``, ``getattr`` on the module; tests/test_refusal_routes.py)
   tried against each check that has one, with the verdict;
2. the challenges: for each, the settings the notebook shows before it (assembled into answers), the setting that
   ignores the exercise's idea and the solution, with the verdict on each graded seed (measured, CPU, one thread);
3. the mistakes the issue lists, each run through its check (the fixtures of the tests), with the message.

Run: ``python benchmarks/exercise_audit.py`` (``--no-challenges`` skips the training runs of table 2, which take
minutes; ``--only 07_self_attention 08d_training_recipe`` measures only those notebooks' challenges). A row of table 2
that this run does not measure keeps the verdicts of the file it rewrites (or says "not measured" where it has none).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from course_tools.grading.cells import grade_id, is_grade, is_solution  # noqa: E402
from course_tools.grading.shown import SHOWN, challenge, graded_seeds  # noqa: E402
from course_utils import CheckFailed  # noqa: E402
from course_utils.exercises.attention import (  # noqa: E402
    BROKEN_SEQ2SEQ,
    SEQ2SEQ_DIAGNOSIS_GRADING,
    SEQ2SEQ_GRADING,
    check_additive_attention,
)
from course_utils.exercises.bptt import check_char_rnn_loss, check_rnn_backward  # noqa: E402
from course_utils.exercises.forecasting import _AR_PICK_REFUTATIONS, AR_ORDER_GRADING, AR_PICK_GRADING  # noqa: E402
from course_utils.exercises.kv_cache import check_grouped_attention  # noqa: E402
from course_utils.exercises.linear_attention import check_decay_mask  # noqa: E402
from course_utils.exercises.lm import check_temperature_softmax  # noqa: E402
from course_utils.exercises.lstm import check_lstm_backward, check_lstm_cell_backward  # noqa: E402
from course_utils.exercises.min_rnns import check_min_gru_step  # noqa: E402
from course_utils.exercises.output_types import (  # noqa: E402
    BROKEN_CLASSIFIER,
    BROKEN_TAGGER,
    CLASSIFIER_DIAGNOSIS_GRADING,
    CLASSIFIER_GRADING,
    TAGGER_FIX_GRADING,
    TAGGER_GRADING,
)
from course_utils.exercises.recipe import check_decay_groups, check_noam_rate  # noqa: E402
from course_utils.exercises.rnn import check_rnn_cell  # noqa: E402
from course_utils.exercises.rope import check_rotary_attention  # noqa: E402
from course_utils.exercises.self_attention import check_attention, check_split_merge_heads  # noqa: E402
from course_utils.exercises.seq2seq_transformer import (  # noqa: E402
    BROKEN_DECODER,
    DECODER_DIAGNOSIS_GRADING,
    TRANSFORMER_GRADING,
)
from course_utils.exercises.transformer import check_block_forward  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "exercise_audit.md"
ROUTES = ("alias", "importlib", "getattr")


def _load_test_module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exercises() -> list[dict]:
    """Every graded exercise: notebook, grade_id, points, and the ``check_*`` functions its test cells call."""
    rows = []
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]*_*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        for cell in cells:
            if not (is_solution(cell) and grade_id(cell)):
                continue
            gid = grade_id(cell)
            tests = [c for c in cells if is_grade(c) and grade_id(c) in (f"{gid}_test", f"{gid}_hidden_test")]
            if not tests:
                continue
            points = sum(c.metadata["nbgrader"].get("points", 0) for c in tests)
            checks = sorted({m for c in tests for m in re.findall(r"\b(check_\w+)\(", c.source)})
            wrapped = sorted({r for c in tests for refs in re.findall(r"refuse_reference\(\w+, \(([^)]*)\)", c.source)
                              for r in re.findall(r"\w+", refs)})
            rows.append({"notebook": path.stem, "grade_id": gid, "points": points, "checks": checks,
                         "wrapped": wrapped})
    return rows


def refusal_routes() -> dict[str, dict[str, str]]:
    """``{check: {route: verdict}}`` for every check that refuses a reference of the course's library."""
    routes = _load_test_module("test_refusal_routes")
    found = {}
    for module, check, reference in routes.CASES:
        check_fn = getattr(importlib.import_module(module), check)
        n_functions = sum(p.default is p.empty for p in inspect.signature(check_fn).parameters.values())
        verdicts = {}
        for route, learner in routes._routes(*reference).items():
            try:
                check_fn(*[learner] * n_functions)
                verdicts[route] = "PASSED (not refused)"
            except CheckFailed as err:
                refused = "an existing implementation" in str(err)
                verdicts[route] = "refused" if refused else f"failed otherwise: {str(err)[:80]}"
            except Exception as err:  # noqa: BLE001 - a crash is a verdict too
                verdicts[route] = f"error {type(err).__name__}"
        found[check] = {"reference": f"{reference[0]}.{reference[1]}", **verdicts}
    return found


def challenge_rows() -> list[tuple]:
    """``(notebook, grade_id, label, grading, answer, seeds)`` for each challenge answer to measure."""
    rows = []
    solutions = {"clip_settings": (3 / 64, 64.0), "adding_config": {"forget_bias": 2.0, "hidden_size": 32, "lr": 1e-2},
                 "esn_config": {"spectral_radius": 1.1, "input_scale": 0.5, "alpha": 1e-8},
                 "char_rnn_config": {"hidden_size": 128, "lr": 1e-2, "seq_len": 32},
                 "gru_adding_config": {"update_bias": 2.0, "hidden_size": 32, "lr": 1e-2},
                 "generation_settings": {"temperature": 1.0, "top_k": 12},
                 "attention_config": {"d_model": 32, "n_heads": 8, "lr": 3e-2},
                 "training_recipe": {"warmup_steps": 10, "peak_lr": 2e-2},
                 "decoder_diagnosis": {"cause": "the decoder sees the characters it must predict",
                                       "change": {"self_mask": "causal"}},
                 "post_ln_recipe": {"warmup_steps": 60, "peak_lr": 2e-2}}
    for spec in SHOWN:
        seeds = tuple(sorted(set(graded_seeds(spec.notebook, spec.grade_id))))
        if len(seeds) < 3:  # the three seeds: the next ones, measured though no test grades them
            seeds += tuple(s for s in range(max(seeds) + 1, max(seeds) + 4))[:3 - len(seeds)]
        grading = challenge(spec)
        for answer in spec.combinations:
            rows.append((spec.notebook, spec.grade_id, "shown", grading, answer, seeds))
        rows.append((spec.notebook, spec.grade_id, "idea-less", grading, spec.idea_less, seeds))
        rows.append((spec.notebook, spec.grade_id, "solution", grading, solutions[spec.grade_id], seeds))
    right = next(r for r, why in _AR_PICK_REFUTATIONS.items() if why is None)
    rows += [
        ("05a_classification", "classifier_diagnosis", "shown (the broken run)", CLASSIFIER_GRADING, BROKEN_CLASSIFIER,
         (0, 1, 2)),
        ("05a_classification", "classifier_diagnosis", "idea-less (a wrong cause)", CLASSIFIER_DIAGNOSIS_GRADING,
         {"cause": "pooling loses the ending", "change": {"pooling": "mean"}}, (0, 1, 2)),
        ("05a_classification", "classifier_diagnosis", "solution", CLASSIFIER_DIAGNOSIS_GRADING,
         {"cause": "learning rate too small", "change": {"lr": 1e-2}}, (0, 1, 2)),
        ("05c_tagging_seq2seq", "tagger_fix", "shown (the broken run)", TAGGER_GRADING, BROKEN_TAGGER, (0, 1, 2)),
        ("05c_tagging_seq2seq", "tagger_fix", "idea-less (more units)", TAGGER_FIX_GRADING, {"hidden_size": 48},
         (0, 1, 2)),
        ("05c_tagging_seq2seq", "tagger_fix", "solution", TAGGER_FIX_GRADING, {"bidirectional": True}, (0, 1, 2)),
        ("05d_forecasting", "ar_pick", "shown (AR(9), as the old order challenge)", AR_ORDER_GRADING, 9,
         (0, 1, 2)),
        ("05d_forecasting", "ar_pick", "idea-less (the one-year leader)", AR_PICK_GRADING,
         {"winner": 3, "reason": right}, (0, 1, 2)),
        ("05d_forecasting", "ar_pick", "solution", AR_PICK_GRADING, {"winner": 12, "reason": right}, (0, 1, 2)),
        ("06_attention", "seq2seq_diagnosis", "shown (the broken run)", SEQ2SEQ_GRADING, BROKEN_SEQ2SEQ, (0, 1, 2)),
        ("06_attention", "seq2seq_diagnosis", "idea-less (more units)", SEQ2SEQ_GRADING,
         {**BROKEN_SEQ2SEQ, "hidden_size": 64}, (0, 1, 2)),
        ("06_attention", "seq2seq_diagnosis", "solution", SEQ2SEQ_DIAGNOSIS_GRADING,
         {"cause": "one fixed-size context", "change": {"attention": "additive"}}, (0, 1, 2)),
        ("08b_encoder_decoder", "decoder_diagnosis", "shown (the broken run)", TRANSFORMER_GRADING, BROKEN_DECODER,
         (0, 1, 2)),
        ("08b_encoder_decoder", "decoder_diagnosis", "idea-less (a wrong cause: a noisy rate)",
         DECODER_DIAGNOSIS_GRADING, {"cause": "learning rate too large", "change": {"lr": 1e-3}}, (0, 1, 2)),
        ("08b_encoder_decoder", "decoder_diagnosis", "right cause, wrong mask fixed", DECODER_DIAGNOSIS_GRADING,
         {"cause": "the decoder sees the characters it must predict", "change": {"memory_mask": "none"}},
         (0, 1, 2)),
    ]
    return rows


def verdict(grading, answer, seed: int) -> str:
    try:
        settings = grading.validate(answer)
    except CheckFailed as err:
        return f"refused ({str(err)[:70]})"
    got = grading.measure(answer, seed=seed)
    met = grading.judge(settings, got, seed).met
    if isinstance(got, float):
        score = f"{got:.3f}"
    elif isinstance(got, tuple):
        score = f"{got[0]:.3f}" if isinstance(got[0], float) else ""
    elif isinstance(got, dict) and "copies" in got:  # 05b's samples: copies and bits per character
        score = f"copies {got['copies']:.1%}, {got['bits']:.3f} bits/char (target {got['target_bits']:.3f})"
    elif isinstance(got, dict) and len(got) <= 2:  # two runs compared
        score = ", ".join(f"{k}: {v:.3g}" for k, v in got.items())
    elif isinstance(got, dict):
        score = f"worst {max(got.values()):.3f}"
    elif getattr(got, "mse", 0) is None:  # the adding problem's untrained model kept too little
        score = f"not trained, kept {got.second_half:.2g}"
    else:
        score = next((f"{getattr(got, a):.3g}" for a in ("mse", "val_loss") if getattr(got, a, None) is not None), "")
    return f"{'pass' if met else 'fail'} {score}".strip()


def listed_mistakes() -> list[tuple[str, str, str]]:
    """``(exercise, mistake, message)`` for each mistake issue 29 lists (and 08d exercises 3 and 4's, issue 33), run
    through its check."""
    t_bptt, t_lstm, t_lm = (_load_test_module(n) for n in ("test_bptt", "test_lstm", "test_lm"))
    t_att, t_self, t_tr, t_min = (_load_test_module(n) for n in ("test_attention", "test_self_attention",
                                                                   "test_transformer", "test_min_rnns"))
    t_kv = _load_test_module("test_kv_cache")
    t_recipe = _load_test_module("test_recipe")
    t_rope = _load_test_module("test_rope")

    def exp_then_fill(gamma):
        c = torch.cumsum(gamma.log(), dim=-1)
        T = gamma.shape[-1]
        return (c[..., :, None] - c[..., None, :]).exp().masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), 0.0)

    def merge(x):
        B, h, T, d = x.shape
        return x.transpose(1, 2).reshape(B, T, h * d)

    cases = [
        ("01 ex. 1", "x_t @ W_xh without .T",
         lambda: check_rnn_cell(lambda x, h, Wx, Wh, b: np.tanh(x @ Wx + h @ Wh.T + b))),
        ("02 ex. 2", "the carry added after tanh'",
         lambda: check_rnn_backward(lambda *a: t_bptt._sequence_backward(*a, mistake="carry after tanh'"))),
        ("02 ex. 2b", "the loss averaged over time too",
         lambda: check_char_rnn_loss(t_bptt._my_char_rnn_loss(scale="time"))),
        ("02 ex. 2b", "dlogits without the target", lambda: check_char_rnn_loss(t_bptt._my_char_rnn_loss(
            subtract_target=False))),
        ("03 ex. 3", "a wrong o-gate slope (tanh's)",
         lambda: check_lstm_cell_backward(lambda *a: t_lstm._lstm_backward_step(*a, o_slope="tanh"))),
        ("03 ex. 5", "the dc carry dropped",
         lambda: check_lstm_backward(t_lstm._learner_sequence_backward(carry_dc=False))),
        ("03 ex. 5", "dhs[t] not added to the carried dh",
         lambda: check_lstm_backward(t_lstm._learner_sequence_backward(dh="carried"))),
        ("03 ex. 5", "a loop forwards in time",
         lambda: check_lstm_backward(t_lstm._learner_sequence_backward(forwards=True))),
        ("03 ex. 5", "parameter gradients not summed over time",
         lambda: check_lstm_backward(t_lstm._learner_sequence_backward(sum_over_time=False))),
        ("05b ex. 1", "softmax without the max shift",
         lambda: check_temperature_softmax(t_lm._temperature_softmax(shift=False))),
        ("06 ex. 3", "a forgotten mask", lambda: check_additive_attention(t_att._additive(mask_mode="none"))),
        ("07 ex. 1", "no sqrt(d_k)", lambda: check_attention(t_self._attention(scale="none"))),
        ("07 ex. 1", "the softmax over the wrong axis", lambda: check_attention(t_self._attention(dim=-2))),
        ("07 ex. 2", "a plain reshape",
         lambda: check_split_merge_heads(lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1), merge)),
        ("08 ex. 2", "a post-LN block", lambda: check_block_forward(t_tr._block_forward(post_ln=True))),
        ("08c ex. 3", "repeat (tiling) instead of repeat_interleave",
         lambda: check_grouped_attention(t_kv._grouped(expand="tile"))),
        ("08c ex. 3", "expanded along the time axis", lambda: check_grouped_attention(t_kv._grouped(axis=2))),
        ("08c ex. 3", "queries shared instead of keys and values",
         lambda: check_grouped_attention(t_kv._grouped(share_queries="mean"))),
        ("08d ex. 3", "decay chosen by name (the LayerNorm gains decayed)",
         lambda: check_decay_groups(t_recipe._by_name)),
        ("08d ex. 3", "one group, everything decayed", lambda: check_decay_groups(t_recipe._everything)),
        ("08d ex. 3", "minGPT's lists by module type (a tied matrix in both groups)",
         lambda: check_decay_groups(t_recipe._min_gpt)),
        ("08d ex. 3", "only the layers walked (in_proj and pos in no group)",
         lambda: check_decay_groups(t_recipe._walk_layers)),
        ("08d ex. 4", "steps counted from 0 (0**-0.5)", lambda: check_noam_rate(t_recipe._from_zero)),
        ("08d ex. 4", "steps counted from 0, t = 0 dodged (off by one)",
         lambda: check_noam_rate(t_recipe._from_zero_guarded)),
        ("08d ex. 4", "the warm-up exponent -0.5 instead of -1.5", lambda: check_noam_rate(t_recipe._warmup_exponent)),
        ("08d ex. 4", "d_model**-0.5 left out", lambda: check_noam_rate(t_recipe._no_d_model)),
        ("08d ex. 4", "max instead of min", lambda: check_noam_rate(t_recipe._max)),
        ("08d ex. 4", "the multiplier (peak 1) instead of the rate", lambda: check_noam_rate(t_recipe._multiplier)),
        ("08d ex. 4", "a peak at the wrong step (warm-up term step / warmup)",
         lambda: check_noam_rate(t_recipe._wrong_peak)),
        ("08e ex. 1", "rotating by -m theta", lambda: check_rotary_attention(t_rope._rotary(sign=-1.0))),
        ("08e ex. 1", "rotating the values too", lambda: check_rotary_attention(t_rope._rotary(rotate_v=True))),
        ("08e ex. 1", "q and k paired differently",
         lambda: check_rotary_attention(t_rope._rotary(k_pairing="halves"))),
        ("09 ex. 3", "04's z convention", lambda: check_min_gru_step(t_min._min_gru_step(convention="04"))),
        ("09 ex. 3", "a tanh on h~", lambda: check_min_gru_step(t_min._min_gru_step(tanh=True))),
        ("09b ex. 3", "exp() then masked_fill", lambda: check_decay_mask(exp_then_fill)),
    ]
    rows = []
    for where, mistake, run in cases:
        try:
            run()
            message = "PASSED (not named)"
        except CheckFailed as err:
            message = " ".join(str(err).split())
        rows.append((where, mistake, message))
    return rows


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def previous_verdicts() -> dict[tuple[str, ...], str]:
    """``{(notebook, exercise, answer, setting): verdicts}`` of table 2 in the file this run rewrites."""
    if not OUT.exists():
        return {}
    text = OUT.read_text(encoding="utf-8").split("## 2. ")[-1].split("## 3. ")[0]
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 5 and cells[4] not in ("verdict per seed", "---", "not measured in this run"):
            found[tuple(cells[:4])] = cells[4]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-challenges", action="store_true", help="skip the training runs (table 2)")
    parser.add_argument("--skip", nargs="*", default=[], metavar="NOTEBOOK",
                        help="notebooks whose challenge rows are not measured in this run (a busy machine)")
    parser.add_argument("--only", nargs="*", default=None, metavar="NOTEBOOK",
                        help="measure only these notebooks' challenge rows (the others keep the file's verdicts)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    lines = ["# Issue 29: the exercises, tried as a learner who wants the points", "",
             "Written by `python benchmarks/exercise_audit.py` (CPU, one thread). Regenerate it after changing an "
             "exercise. A run may measure only some notebooks' challenges (`--only`); the other rows of table 2 "
             "keep the verdicts of the run before. Seeds marked '(not graded)' are measured beyond those the "
             "exercise's tests grade, so that each challenge has three.", ""]

    routes = refusal_routes()
    lines += ["## 1. Every graded exercise, and the routes to the course's own implementation", "",
              "Routes: `alias` (`from course_utils.x import ref as step`), `importlib`, `getattr` on the module; "
              "each is a learner's function whose names do not show what it calls (tests/test_refusal_routes.py). "
              "'-': the exercise's checks grade an outcome or a value, with no course implementation to call.", "",
              "| notebook | exercise | points | checks | reference | alias | importlib | getattr |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in exercises():
        refusing = [c for c in row["checks"] if c in routes]
        ref = "; ".join(routes[c]["reference"] for c in refusing) or "-"
        cells = [" / ".join(routes[c][r] for c in refusing) or "-" for r in ROUTES]
        if not refusing and row["wrapped"]:  # the test cell wraps the learner's function itself
            ref = "refuse_reference in the test cell: " + ", ".join(row["wrapped"])
            cells = ["wrapped, route not run here"] * 3
        lines.append(f"| {row['notebook']} | {row['grade_id']} | {row['points']:g} | "
                     f"{', '.join(row['checks'])} | {ref} | " + " | ".join(cells) + " |")

    mistakes = ["", "## 3. The mistakes the issue lists, and the message each gets", "",
                "| exercise | mistake | message |", "| --- | --- | --- |"]
    mistakes += [f"| {w} | {m} | {_cell(msg[:400])} |" for w, m, msg in listed_mistakes()]
    lines += ["", "## 2. The challenges: shown settings, the idea-less setting and the solution, per graded seed", "",
              "'shown': an answer assembled from values the notebook shows before the exercise; 'refused': the "
              "check refuses it before training (a wrong cause or reason, or a change the format does not allow).",
              ""]
    rows = challenge_rows()
    outcome = [f"{r['notebook']} {r['grade_id']}" for r in exercises()
               if r["grade_id"].endswith(("config", "settings", "recipe"))]  # the configuration challenges
    listed = {f"{n} {g}" for n, g, *_ in rows}
    missing = [e for e in outcome if e not in listed]
    if missing:
        lines += [f"Challenges with no row here yet (their shown settings are not listed in "
                  f"`course_tools.grading.shown`): {', '.join(missing)}.", ""]
    lines += ["| notebook | exercise | answer | setting | verdict per seed |", "| --- | --- | --- | --- | --- |"]
    kept = previous_verdicts()
    table = [f"| {n} | {g} | {label} | `{_cell(repr(a))}` | "
             f"{kept.get((n, g, label, f'`{_cell(repr(a))}`'), 'not measured in this run')} |"
             for n, g, label, _, a, _ in rows]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    measured: dict[tuple, str] = {}  # an idea-less setting that is also a shown one is trained once
    for i, (notebook, gid, label, grading, answer, seeds) in enumerate(rows):
        if not (args.no_challenges or notebook in args.skip or (args.only is not None and notebook not in args.only)):
            graded = set(graded_seeds(notebook, gid)) if any(s.notebook == notebook for s in SHOWN) else set(seeds)
            key = (notebook, gid, repr(answer), id(grading))
            if key not in measured:
                measured[key] = "; ".join(f"seed {s}{'' if s in graded else ' (not graded)'}: "
                                          f"{verdict(grading, answer, s)}" for s in seeds)
            got = measured[key]
            print(notebook, gid, label, got, flush=True)
            table[i] = f"| {notebook} | {gid} | {label} | `{_cell(repr(answer))}` | {_cell(got)} |"
        took = time.perf_counter() - start
        OUT.write_text("\n".join(lines + table + mistakes + ["", f"Took {took:.0f} s so far.", ""]), encoding="utf-8")
    took = time.perf_counter() - start
    OUT.write_text("\n".join(lines + table + mistakes + ["", f"Took {took:.0f} s.", ""]), encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)} in {took:.0f} s")


if __name__ == "__main__":
    main()
