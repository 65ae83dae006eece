"""Figures for the book: a style with a CJK font that the install itself brings.

The Traditional Chinese font (Noto Sans CJK TC) comes from the pip package
``cvttf-notosanscjk-regular``; no system font is assumed.
"""

from __future__ import annotations


def cjk_font_path():
    """Path of the bundled Noto Sans CJK TC font, or None if the package is absent."""
    try:
        import cvttf_NotoSansCJK_Regular as font_pkg
    except ImportError:
        return None
    return font_pkg.get_TTF_path()


def use_book_style():
    """Register the CJK font and put it in matplotlib's font fallback list."""
    import matplotlib
    from matplotlib import font_manager

    matplotlib.use("Agg") if matplotlib.get_backend().lower() == "" else None
    path = cjk_font_path()
    families = ["DejaVu Sans"]
    if path is not None:
        font_manager.fontManager.addfont(path)
        families.append(font_manager.FontProperties(fname=path).get_name())
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["font.sans-serif"] = families
    matplotlib.rcParams["axes.unicode_minus"] = False
    matplotlib.rcParams["figure.dpi"] = 100
    matplotlib.rcParams["svg.hashsalt"] = "celib"
