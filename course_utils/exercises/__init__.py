"""Every notebook's graded exercises: the checks and outcome-graded challenges, one module per lecture module.

``course_utils.exercises.attention`` holds the exercises on :mod:`course_utils.attention`, and so
on: checks that name the usual mistakes (built with :func:`course_utils.core.checks.name_mistake`),
the references a solution must not call (:func:`course_utils.core.checks.refuse_reference`), and the
challenges graded by outcome, each a :class:`course_utils.core.checks.Challenge` (validate the
answer, measure it inside :func:`course_utils.core.seed.seeded_run`, judge it against the target,
hint on a miss) behind a ``check_<name>`` the notebook calls. They sit apart from the concept modules, so a
concept module reads as the lesson; they may import any of the library, and nothing in the
library imports them.
"""
