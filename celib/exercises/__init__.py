"""Auto-checkers for the book's exercises, one module per chapter.

Usage in a notebook::

    from celib.exercises import ch02
    ch02.check_gradient(my_gradient)     # prints pass, or the first failing case

Each checker runs the learner's function on cases that include edge cases and
reports, in the notebook's language (``celib.book.setup_notebook``), either
that every case passed or the first failing case with its input, the expected
and the actual value. It also returns True or False.
"""

from ._core import Case, run_checker

__all__ = ["Case", "run_checker"]
