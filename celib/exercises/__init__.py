"""Auto-checkers for the book's exercises, one module per chapter.

Usage in a notebook (the check cell of an exercise)::

    from celib.exercises import ch02
    ch02.check_gradient(my_gradient)     # ✓, ✗ and the first failing case, or "not attempted yet"

Each checker calls the learner's function with positional arguments on cases
that include edge cases and prints, in the notebook's language
(``celib.book.setup_notebook``; ``lang='en'`` or ``'zh'`` to override), one of
three reports: every case passed (✓); the first failing case with its input,
shapes, the first differing entries and the tolerance (✗); or "not attempted
yet" while the stub still raises ``NotImplementedError``. It returns a
:class:`CheckResult`, truthy only on a pass, which displays nothing in
Jupyter. The precision policy (float64 everywhere, float32 rejected) and the
report's format are described in ``celib.exercises._core``.

Each ``chNN`` module also has ``WRONG_ANSWERS`` (one typical wrong answer per
exercise, as source code defining the learner's function) and
``MORE_WRONG_ANSWERS`` (every typical mistake its checkers must reject); the
tests run them all.
"""

from ._core import LANGS, Case, CheckResult, exercise_title, run_checker

__all__ = ["Case", "CheckResult", "LANGS", "exercise_title", "run_checker"]
