"""The instructors' toolkit of the course *Sequence Models, from RNNs to Transformers*.

For instructors and maintainers, not for learners (the notebooks import ``course_utils``
only):

- :mod:`.grading`: student versions of the notebooks and the autograder
  (``python -m course_tools.grading release|grade``, or ``make release`` / ``make grade``).
- :mod:`.website`: the course as a static website (``python -m course_tools.website``,
  or ``make site``).
- :mod:`.colab`: the Colab set-up cell that opens every notebook and the "Open in Colab"
  links (``python -m course_tools.colab``, run by ``make sync``).

Its dependencies (nbconvert, nbclient, jupyter-server-mathjax) are the ``tools`` extra:
``pip install -e '.[tools]'`` (``make setup`` installs ``.[test,tools]``).

Dependency rule: ``course_tools`` may import ``course_utils``; ``course_utils`` never
imports ``course_tools``, so the learners' library works without this package's extras.
"""
