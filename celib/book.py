"""Set-up shared by the book's notebooks: print options, seeds, figures, device.

Every notebook's third cell (after the title and the Colab install cell, see
CONTRIBUTING.md) is::

    import numpy as np
    import celib
    from celib.book import setup_notebook
    LANG = "en"          # "zh" in the Chinese edition: the one line that differs
    setup_notebook(LANG)

so that printed numbers are identical on every machine (nbval compares them).
This module imports numpy only; matplotlib (``celib.plotting``) and torch are
imported inside ``setup_notebook`` when they are installed.
"""

from __future__ import annotations

import random

import numpy as np

LANGUAGES = ("en", "zh")


def setup_notebook(lang="en", seed=0):
    """Fix print options and seeds; configure matplotlib for both editions.

    Parameters
    ----------
    lang : {'en', 'zh'}
        The edition; figures and exercise checkers speak this language.
    seed : int
        Seeds Python's, NumPy's legacy and torch's generators (if torch is
        installed). Notebooks should still prefer ``np.random.default_rng(seed)``.

    Raises
    ------
    ValueError
        For a language other than 'en' or 'zh'.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {LANGUAGES}, got {lang!r}")
    np.set_printoptions(precision=4, suppress=True, linewidth=88)
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.manual_seed(seed)
        torch.set_printoptions(precision=4, sci_mode=False, linewidth=88)
    _setup_matplotlib()
    global CURRENT_LANG
    CURRENT_LANG = lang


CURRENT_LANG = "en"


def device():
    """'cuda' where a GPU is present, else 'cpu' (outputs must not depend on it)."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _setup_matplotlib():
    try:
        import matplotlib
    except ImportError:
        return
    from . import plotting

    plotting.use_book_style()
