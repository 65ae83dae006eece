"""Sphinx extension for the book (loaded through ``_config.yml``, ``sphinx.local_extensions``).

Three things Jupyter Book 1 does not do on its own:

1. Chinese search. ``html_search_language: zh`` needs ``jieba``; without it Sphinx silently
   indexes Chinese text as whole runs of characters, and it silently ignores a user dictionary
   it cannot find (its path is opened relative to the current directory). Here the dictionary
   path is resolved against the book's folder, and either failure is a build warning, which
   ``-W`` turns into a failed build.
2. Offline pages. ``sphinx_thebe`` (always loaded by Jupyter Book) puts a script on every page
   that names ``https://unpkg.com/thebe...``; with ``launch_buttons.thebe: false`` it does
   nothing, so it is dropped from the pages.
3. Site size. ``sphinx-mathjax-offline`` copies all of MathJax 3 (24 MB, every combined
   component). The pages load ``tex-chtml.js`` only, plus what it loads on demand (TeX
   extensions, CHTML fonts, menu, accessibility); the other combined builds and ``latest.js``
   (which looks up MathJax versions on CDNs) are removed from the built site.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

# MathJax files never loaded by a page that uses tex-chtml.js.
MATHJAX_UNUSED = [
    "latest.js", "node-main.js", "startup.js",
    "mml-chtml.js", "mml-svg.js", "tex-mml-chtml.js", "tex-mml-svg.js",
    "tex-svg.js", "tex-svg-full.js", "tex-chtml-full.js", "tex-chtml-full-speech.js",
    "output/svg.js", "output/svg",
]


def _check_search(app, config):
    if config.html_search_language != "zh":
        return
    try:
        import jieba  # noqa: F401
    except ImportError:
        logger.warning("html_search_language is 'zh' but jieba is not installed: Chinese "
                       "words will not be searchable (pip install jieba)", type="celib",
                       subtype="search")
    options = dict(config.html_search_options or {})
    path = options.get("dict")
    if path:
        resolved = Path(path) if os.path.isabs(path) else Path(app.srcdir) / path
        if not resolved.is_file():
            logger.warning(f"html_search_options['dict'] = {path!r}: no such file under "
                           f"{app.srcdir}", type="celib", subtype="search")
        options["dict"] = str(resolved)
        config.html_search_options = options


def _drop_thebe(app, pagename, templatename, context, doctree):
    theme_options = app.config.html_theme_options or {}
    if (theme_options.get("launch_buttons") or {}).get("thebe"):
        return
    scripts = context.get("script_files")
    if not scripts:
        return

    def is_thebe(js):
        name = str(getattr(js, "filename", "") or "")
        body = (getattr(js, "attributes", None) or {}).get("body", "")
        return name.endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body

    context["script_files"] = [js for js in scripts if not is_thebe(js)]


def _prune_mathjax(app, exc):
    if exc is not None or app.builder.format != "html":
        return
    root = Path(app.outdir) / "_static" / "mathjax"
    if not (root / "tex-chtml.js").is_file():
        return
    for rel in MATHJAX_UNUSED:
        path = root / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def setup(app):
    app.connect("config-inited", _check_search)
    app.connect("html-page-context", _drop_thebe, priority=900)
    # after sphinx-mathjax-offline's copy (default priority 500)
    app.connect("build-finished", _prune_mathjax, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
