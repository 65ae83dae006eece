"""Figures for the book: a style with a CJK font that the install itself brings.

The Traditional Chinese font (Noto Sans CJK TC) comes from the pip package
``cvttf-notosanscjk-regular`` (the ``book`` extra); no system font is assumed.

Matplotlib falls back from one font to the next glyph by glyph only across the
entries of ``rcParams["font.family"]``; a generic family such as
``"sans-serif"`` resolves to a single font. So the family list itself is set to
``["DejaVu Sans", "Noto Sans CJK TC"]``: Latin letters, digits and the minus
sign come from DejaVu Sans, Chinese characters from Noto Sans CJK TC.

This module imports matplotlib; ``import celib`` does not import this module.
"""

from __future__ import annotations

import warnings

LATIN_FAMILY = "DejaVu Sans"  # ships with matplotlib itself


def cjk_font_path():
    """Path of the bundled Noto Sans CJK TC font, or None if the package is absent.

    Returns
    -------
    str or None
        The ``.otf`` file inside the ``cvttf_NotoSansCJK_Regular`` package.
    """
    try:
        import cvttf_NotoSansCJK_Regular as font_pkg
    except ImportError:
        return None
    return font_pkg.get_TTF_path()


def register_cjk_font():
    """Add the bundled CJK font to matplotlib's font manager (once).

    Returns
    -------
    str or None
        The font's family name ("Noto Sans CJK TC"), or None when the font
        package is not installed.
    """
    from matplotlib import font_manager

    path = cjk_font_path()
    if path is None:
        return None
    name = font_manager.FontProperties(fname=path).get_name()
    if not any(f.fname == path for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(path)
    return name


def font_families():
    """The ``font.family`` fallback list the book uses: DejaVu Sans, then the CJK font."""
    name = register_cjk_font()
    if name is None:
        warnings.warn(
            "the font package cvttf-notosanscjk-regular is not installed, so Chinese "
            "labels in figures will be drawn as empty boxes; install it with "
            "pip install 'celib[book]'",
            stacklevel=3,
        )
        return [LATIN_FAMILY]
    return [LATIN_FAMILY, name]


def use_book_style():
    """Set matplotlib's rcParams for the book's figures (both editions)."""
    import matplotlib

    matplotlib.rcParams["font.family"] = font_families()
    matplotlib.rcParams["axes.unicode_minus"] = True  # DejaVu Sans has U+2212
    matplotlib.rcParams["figure.dpi"] = 100
    matplotlib.rcParams["svg.hashsalt"] = "celib"
