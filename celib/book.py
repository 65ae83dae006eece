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


def glue(name, value):
    """Record ``value`` under ``name`` for the page's prose, as MyST-NB's ``glue``.

    A markdown cell of the same notebook shows it with ``{glue:text}`name```. Pass the
    string the reader should see, formatted in the code cell (``f"{x:.4f}"``): the stored
    output is exactly what the page shows and what nbval compares, so the prose can never
    drift from the code. Nothing is displayed in Jupyter.

    Parameters
    ----------
    name : str
        Key, unique within the notebook; both editions use the same keys.
    value : str or int or float
        Preferably a formatted string; NumPy scalars are converted to Python ones.

    Returns
    -------
    None
        Where MyST-NB is not installed (Colab with only ``celib``), nothing is recorded.
    """
    if isinstance(value, np.generic):
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=False)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci(value, digits=1):
    """A number in scientific notation for the prose: ``sci(4.8e-06)`` is ``'4.8 × 10⁻⁶'``.

    Glue the result (``glue("key", sci(x))``) where the prose would write
    :math:`4.8 \\times 10^{-6}`; a glued value cannot sit inside ``$...$``.

    Parameters
    ----------
    value : float
        A finite real number.
    digits : int, default 1
        Digits after the decimal point of the mantissa.

    Returns
    -------
    str
        ``'<mantissa> × 10<exponent in superscript digits>'``; ``'0'`` for zero.

    Raises
    ------
    ValueError
        If ``value`` is not finite.
    """
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"sci: value must be finite, got {value!r}")
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    return f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def device():
    """'cuda' where a GPU is present, else 'cpu' (outputs must not depend on it)."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _setup_matplotlib():
    try:
        import matplotlib  # noqa: F401  (only whether it is installed)
    except ImportError:
        return
    from . import plotting

    plotting.use_book_style()


def peak_extra_bytes(fn):
    """Peak resident memory that ``fn()`` adds to this process, in bytes (Linux).

    Writing 5 to ``/proc/self/clear_refs`` resets the kernel's high-water mark
    ``VmHWM`` to the current resident size ``VmRSS`` (Linux manual, ``proc(5)``);
    after ``fn()`` the difference ``VmHWM - VmRSS before`` is the call's peak. So that
    freed memory cannot hide a later peak, glibc is told to serve every allocation
    above 64 KiB with its own mapping, returned to the system when freed
    (``mallopt(M_MMAP_THRESHOLD)``). Works for NumPy and torch's CPU allocator alike,
    which keeps no statistics of its own. Run ``fn`` once before measuring it, so
    that one-time set-up is not counted.

    Parameters
    ----------
    fn : callable
        Called once with no arguments; its result is discarded.

    Returns
    -------
    int
        Bytes (a multiple of the 4 KiB page; a few hundred KiB vary from run to run).

    Raises
    ------
    RuntimeError
        Where /proc cannot reset the mark (not Linux, or Linux before 4.0).
    """
    import ctypes
    import gc
    import re

    def status_kib(field):
        with open("/proc/self/status") as f:
            return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 16)  # M_MMAP_THRESHOLD = 64 KiB
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        before = status_kib("VmRSS")
    except OSError as exc:
        raise RuntimeError(f"peak_extra_bytes needs Linux's /proc/self/clear_refs: {exc}") from None
    if status_kib("VmHWM") > before + 1024:  # the reset did not take
        raise RuntimeError("/proc/self/clear_refs did not reset VmHWM; the peak would be wrong")
    fn()
    return (status_kib("VmHWM") - before) * 1024
