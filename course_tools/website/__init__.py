"""The course as a static website (``python -m course_tools.website``); see :mod:`.build`."""

from .build import BuildError, build, lectures

__all__ = ["BuildError", "build", "lectures"]
