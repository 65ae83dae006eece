"""Figures with Chinese labels draw with the bundled Noto Sans CJK TC font, without warnings;
``import celib`` stays free of matplotlib."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest


def test_import_celib_does_not_import_matplotlib_or_torch():
    code = (
        "import sys, celib, celib.book; "
        "print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_chinese_labels_draw_without_missing_glyphs():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties, fontManager
    from matplotlib.ft2font import FT2Font

    from celib import plotting
    from celib.book import setup_notebook

    if plotting.cjk_font_path() is None:
        pytest.fail("cvttf-notosanscjk-regular is not installed (it is in celib[book])")
    with matplotlib.rc_context():
        setup_notebook("zh")
        families = matplotlib.rcParams["font.family"]
        assert families == ["DejaVu Sans", "Noto Sans CJK TC"], families
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig, ax = plt.subplots(figsize=(3, 2))
            ax.plot([0, 1], [1, -1], label="機率")
            ax.set_xlabel("梯度 −1.5")
            ax.set_title("交叉熵損失函數的梯度")
            ax.legend()
            fig.canvas.draw()
            plt.close(fig)
        assert [str(w.message) for w in caught] == []

        # The font that draws each character, as matplotlib's glyph fallback chooses it:
        # the first font of the family list that has the glyph.
        paths = fontManager._find_fonts_by_props(FontProperties(family=families))
        charmaps = [(p, FT2Font(p).get_charmap()) for p in paths]
        used = {
            ch: os.path.realpath(next(p for p, cmap in charmaps if ord(ch) in cmap))
            for ch in "梯度g"
        }
    assert used["梯"] == used["度"] == os.path.realpath(plotting.cjk_font_path())
    assert os.path.basename(used["g"]) == "DejaVuSans.ttf"
