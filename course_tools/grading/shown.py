"""The settings a notebook shows before a configuration challenge, and whether a combination of them passes it.

Issue 29, item 2: a learner who copies the values a notebook shows (its sections' own settings) and combines them must
not pass the challenge that follows. :data:`SHOWN` lists, per challenge, the values shown before the exercise (each
with the source line that shows it, so that a change to the notebook breaks a fast test until the list follows) and
the combinations a learner can assemble from them; :func:`verdicts` runs one combination on each seed the notebook's
visible and hidden tests grade (read from the test cells).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from .cells import grade_id

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Shown:
    """A challenge's shown settings: ``lines`` are source lines (read before the exercise) that show the values;
    ``combinations`` the answers assembled from them; ``grading`` a ``module:attribute[key]`` for the
    :class:`course_utils.core.checks.Challenge`; ``idea_less`` the answer that ignores the exercise's idea."""

    notebook: str
    grade_id: str
    grading: str
    lines: tuple[str, ...]
    combinations: tuple[Any, ...]
    idea_less: Any
    solution_note: str = ""


SHOWN = (
    # 02's exercise 4 trains on the loss summed over 64 characters: the thresholds the notebook shows (3 in section 5,
    # 1 for Adam in section 6, 5 in section 7's numpy RNN) are for a mean loss, 64 times too small for the sum.
    Shown("02_bptt", "clip_settings", "course_utils.exercises.bptt:CLIP_GRADING",
          ("clip_lr, clip_c, clip_steps = 2.0, 3.0, 150", "choose `lr` **at least 3/64**"),
          tuple((3 / 64, c) for c in (3.0, 1.0, 5.0)), (3 / 64, 16.0)),
    Shown("03_lstm", "adding_config", "course_utils.exercises.long_range:ADDING_GRADING[LSTM]",
          ("T_ADD, HIDDEN, STEPS, BATCH, LR = 50, 32, 800, 64, 1e-2", "forget_bias=1.0).to(device)",
           "FORGET_BIAS, W_H_SCALE = 4.0, 8.0"),
          tuple({"forget_bias": b, "hidden_size": 32, "lr": 1e-2} for b in (0.0, 1.0, 4.0)),
          {"forget_bias": 0.0, "hidden_size": 32, "lr": 1e-2}),
    Shown("09_modern_rnns", "esn_config", "course_utils.exercises.esn:ESN_GRADING",
          ("N_RES, RHO, ALPHA, WASHOUT, N_TRAIN = 300, 0.95, 1e-7, 200, 2000", "for rho_esp in (RHO, 1.1):",
           'section_setting = {"spectral_radius": RHO, "input_scale": 0.5, "alpha": ALPHA}'),
          tuple({"spectral_radius": r, "input_scale": 0.5, "alpha": 1e-7} for r in (0.95, 1.1)),
          {"spectral_radius": 0.95, "input_scale": 0.5, "alpha": 1e-8}),
    Shown("01_rnn", "char_rnn_config", "course_utils.exercises.rnn:CHAR_RNN_GRADING",
          ("seq_len, batch_size, hidden_size, steps = 32, 32, 128, 300",
           "optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)"),
          ({"hidden_size": 128, "lr": 3e-3, "seq_len": 32},),
          {"hidden_size": 128, "lr": 3e-3, "seq_len": 32}),
    Shown("04_gru", "gru_adding_config", "course_utils.exercises.long_range:ADDING_GRADING[GRU]",
          ("T_ADD, HIDDEN_ADD, STEPS, LR = 50, 32, 800, 1e-2",
           "model = SequenceToOne(kind, 2, HIDDEN_ADD, forget_bias=1.0).to(device)",
           "(PyTorch starts it near 0, so $z \\approx 0.5$)"),
          tuple({"update_bias": b, "hidden_size": 32, "lr": 1e-2} for b in (0.0, 1.0)),
          {"update_bias": 0.0, "hidden_size": 32, "lr": 1e-2}),
    Shown("05b_generation", "generation_settings", "course_utils.exercises.output_types:names_generation_grading()",
          ("temperatures = (0.5, 1.0, 1.5)",),
          tuple({"temperature": t, "top_k": None} for t in (0.5, 1.0, 1.5)),
          {"temperature": 1.0, "top_k": None}),
    Shown("07_self_attention", "attention_config", "course_utils.exercises.self_attention:ATTENTION_GRADING",
          ("CONTEXT, BATCH, STEPS, LR, POSITION_STD = 64, 32, 400, 1e-2, 1.0", "n_heads = by_offset.shape[0]",
           "the width $D$ (at most 32, half of section 7's)"),
          ({"d_model": 32, "n_heads": 4, "lr": 1e-2},),
          {"d_model": 32, "n_heads": 4, "lr": 1e-2}),
    Shown("08_transformers", "training_recipe", "course_utils.exercises.transformer:RECIPE_GRADING",
          ("batch_size=32, lr=3e-3, eval_every=40", "N_SCHEDULE, W_SCHEDULE, PEAK = STEPS, 40, 3e-3"),
          tuple({"warmup_steps": w, "peak_lr": 3e-3} for w in (0, 40)),
          {"warmup_steps": 0, "peak_lr": 3e-3}),
    # 08b's exercise 3 is a diagnosis of BROKEN_DECODER (its decoder's self-attention unmasked): the answers a
    # learner assembles from section 4 (its learning rate, its width) with the right cause, and the idea-less fix
    # (a smaller rate, as for a noisy run), all leave the decoder reading the characters it must predict.
    Shown("08b_encoder_decoder", "decoder_diagnosis",
          "course_utils.exercises.seq2seq_transformer:DECODER_DIAGNOSIS_GRADING",
          ("show_source(comparison_model)", "1e-2 for the transformer"),
          tuple({"cause": "the decoder sees the characters it must predict", "change": change}
                for change in ({"lr": 1e-2}, {"d_model": 32})),
          {"cause": "the decoder sees the characters it must predict", "change": {"lr": 1e-3}}),
    Shown("08d_training_recipe", "post_ln_recipe", "course_utils.exercises.recipe:POST_LN_GRADING",
          ("lr=2e-2, warmup_steps=0,", '"post-LN, 10 warm-up steps": replace(DEEP, post_ln=True, warmup_steps=10),',
           "n_layers=2, lr=1e-2, warmup_steps=20,"),
          tuple({"warmup_steps": w, "peak_lr": 2e-2} for w in (0, 10, 20)),
          {"warmup_steps": 0, "peak_lr": 2e-2}),
)


def source_before_exercise(notebook: str, gid: str) -> str:
    """The notebook's jupytext source up to the exercise's solution cell."""
    text = (REPO / "notebooks" / "py" / f"{notebook}.py").read_text(encoding="utf-8")
    return text.split(f'"grade_id": "{gid}"')[0]


def graded_seeds(notebook: str, gid: str) -> tuple[int, ...]:
    """The seeds the exercise's visible and hidden test cells pass to its check (0 where a call gives none)."""
    seeds = []
    for cell in nbformat.read(REPO / "notebooks" / f"{notebook}.ipynb", as_version=4).cells:
        if grade_id(cell) in (f"{gid}_test", f"{gid}_hidden_test"):
            code = "\n".join(line.split("#")[0] for line in cell.source.splitlines())
            for call in re.findall(r"check_\w+\(my_\w+(?:\(\))?(.*)\)", code):
                found = re.search(r"seed=(\d+)", call)
                seeds.append(int(found[1]) if found else None)
    defaults = {"clip_settings": 1}  # check_clip_settings's default seed
    return tuple(s if s is not None else defaults.get(gid, 0) for s in seeds)


def challenge(spec: Shown):
    """The :class:`Challenge` ``spec.grading`` names (``module:attribute``, ``module:attribute[key]`` or
    ``module:function()``)."""
    module, attribute = spec.grading.split(":")
    name, _, key = attribute.partition("[")
    found = getattr(importlib.import_module(module), name.removesuffix("()"))
    if name.endswith("()"):  # a function that builds the challenge (05b's, on its speller)
        found = found()
    return found[key.rstrip("]")] if key else found


def verdicts(spec: Shown, answer: Any, seeds: tuple[int, ...] | None = None) -> dict[int, bool]:
    """``{seed: met}`` for ``answer`` on each graded seed (or ``seeds``), measured as the check does."""
    grading = challenge(spec)
    settings = grading.validate(answer)
    return {seed: grading.judge(settings, grading.measure(answer, seed=seed), seed).met
            for seed in (seeds if seeds is not None else graded_seeds(spec.notebook, spec.grade_id))}
