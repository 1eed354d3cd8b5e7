"""Exercises and autograding in nbgrader's format.

- :mod:`.cells`: which cells are solutions and tests; the markers.
- :mod:`.release`: student versions of the notebooks; a public tree, one notebook at a time.
- :mod:`.collect`: Canvas, Moodle and Gradescope downloads into the grader's folders; late policies.
- :mod:`.grade`: grade one submission against its source notebook.
- :mod:`.executor`: run cells with time and memory limits, surviving a dead kernel.
- :mod:`.runner`: grade a folder of submissions, in parallel.
- :mod:`.gradebook`: the results store, the gradebook, LMS exports and feedback files.
- :mod:`.batch`: grade a class into a folder: checked inputs, one submission per (student,
  notebook), results stored as they finish, regrades merged, ``--resume``, ``--shard``, ``merge``.

Command line: ``python -m course_tools.grading release|collect|grade|apply-late|merge|check``.
"""
