"""Sphinx extension for the book (loaded through ``_config.yml``, ``sphinx.local_extensions``).

What Jupyter Book 1 does not do on its own:

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
4. Two editions (``tools/build_book.py`` builds each with ``celib_edition`` = ``en`` / ``zh``):
   a language switcher in every page's header, going to the same page of the other edition
   (a relative link; the choice is kept in ``localStorage`` for the landing page); links in the
   prose to the other edition (``[English version](../en/02_the_gradient.ipynb)``) become
   relative links to its pages; sections whose title gives no ASCII id (``id6``) get an id
   from the title itself (``#練習-2.1``), kept as the first id so the page's table of contents
   uses it.
5. Traditional Chinese glyphs on any machine: each edition serves a subset of Noto Sans CJK
   TC (the font of the figures, pip package ``cvttf-notosanscjk-regular``), made with fontTools
   at the end of the build from the CJK characters its pages use (woff2 when brotli is
   installed, else woff), declared with @font-face in ``_static/celib-cjk-font.css``: the zh
   edition's text, and in the en edition the switcher's 「繁體中文」 and the glossary's terms.
   ``celib_font_text`` adds characters used elsewhere (the landing page uses the zh font).
"""

from __future__ import annotations

import gettext
import hashlib
import os
import posixpath
import re
import shutil
import unicodedata
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)

# MathJax files never loaded by a page that uses tex-chtml.js.
MATHJAX_UNUSED = [
    "latest.js",
    "node-main.js",
    "startup.js",
    "mml-chtml.js",
    "mml-svg.js",
    "tex-mml-chtml.js",
    "tex-mml-svg.js",
    "tex-svg.js",
    "tex-svg-full.js",
    "tex-chtml-full.js",
    "tex-chtml-full-speech.js",
    "output/svg.js",
    "output/svg",
]


def _check_search(app, config):
    if config.html_search_language != "zh":
        return
    try:
        import jieba  # noqa: F401
    except ImportError:
        logger.warning(
            "html_search_language is 'zh' but jieba is not installed: Chinese "
            "words will not be searchable (pip install jieba)",
            type="celib",
            subtype="search",
        )
    options = dict(config.html_search_options or {})
    path = options.get("dict")
    if path:
        resolved = Path(path) if os.path.isabs(path) else Path(app.srcdir) / path
        if not resolved.is_file():
            logger.warning(
                f"html_search_options['dict'] = {path!r}: no such file under {app.srcdir}",
                type="celib",
                subtype="search",
            )
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


# --- two editions ---------------------------------------------------------------------

HERE = Path(__file__).resolve().parent
STORAGE_KEY = "celib-book-lang"  # the landing page (tools/build_book.py) reads it
HTML_LANG = {"en": "en", "zh": "zh-TW"}
SWITCH_TITLE = {"en": "Read this page in English", "zh": "以繁體中文閱讀本頁"}


def _other_edition(config):
    editions = list(config.celib_editions or {})
    others = [e for e in editions if e != config.celib_edition]
    return others[0] if others else None


def _setup_edition(app, config):
    if not config.celib_edition:
        return
    # first, so that its components replace the theme's of the same name
    config.templates_path = [str(HERE / "templates")] + list(config.templates_path or [])
    config.html_static_path = list(config.html_static_path or []) + [str(HERE / "static")]
    options = dict(config.html_theme_options or {})
    table = INTERFACE.get(config.celib_edition, {})
    if "Search this book..." in table:  # a theme option, not looked up in a catalog
        options["search_bar_text"] = table["Search this book..."]
    end = options.get("article_header_end") or ["article-header-buttons.html"]
    if isinstance(end, str):
        end = [e.strip() for e in end.split(",") if e.strip()]
    if "celib-lang-switch.html" not in end:
        end = ["celib-lang-switch.html"] + list(end)
    options["article_header_end"] = end
    config.html_theme_options = options


_EDITION_LINK = re.compile(r"^(?P<path>[^#?]+)\.(?:ipynb|md)(?P<anchor>#.*)?$")


class CrossEditionLinks(SphinxTransform):
    """``[English version](../en/02_the_gradient.ipynb)`` in the zh edition: the other
    edition is another site, so the link becomes a relative URL of its page."""

    default_priority = 100

    def apply(self, **kwargs):
        lang = self.config.celib_edition
        if not lang:
            return
        docdir = posixpath.dirname(f"{lang}/{self.env.docname}")
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst":
                continue
            m = _EDITION_LINK.match(node.get("reftarget", ""))
            if not m:
                continue
            target = posixpath.normpath(posixpath.join(docdir, m["path"]))
            edition = target.split("/", 1)[0]
            if edition == lang or edition not in (self.config.celib_editions or {}):
                continue
            uri = posixpath.relpath(target, docdir) + ".html" + (m["anchor"] or "")
            ref = nodes.reference(
                "", "", *node.children, refuri=uri, internal=False, classes=["celib-edition-link"]
            )
            node.replace_self(ref)


_AUTO_ID = re.compile(r"^id\d+$")


def _slug(text):
    text = unicodedata.normalize("NFKC", text).strip().lower()
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        out.append(ch if cat[0] in "LN" or ch in "._" else "-")
    return re.sub(r"-{2,}", "-", "".join(out)).strip("-.")


class ReadableSectionIds(SphinxTransform):
    """A section with Chinese in its title and no label of its own gets, as its first id, one
    made from the whole title (``#練習-2.1-單一列的梯度``), not docutils' ``id6`` or the ASCII
    left-overs (``softmax`` for 「方法一：softmax 的雅可比矩陣」). Labelled sections
    (``(zh-ex-2-1)=``) keep their label as the anchor."""

    default_priority = 850  # before sphinx.transforms.DoctreeReadEvent (880): the page's toc

    def apply(self, **kwargs):
        if not self.config.celib_edition:
            return
        taken = set(self.document.ids)
        for section in self.document.findall(nodes.section):
            title = next(iter(section.findall(nodes.title)), None)
            if title is None:
                continue
            ids = section.get("ids", [])
            derived = {nodes.make_id(title.astext())}
            if not ids or not all(_AUTO_ID.match(i) or i in derived for i in ids):
                continue  # a label of its own
            if not all(_AUTO_ID.match(i) for i in ids) and not any(
                _wide(c) for c in title.astext()
            ):
                continue  # docutils' id from an ASCII title is fine
            # the title's words, not the TeX of its math
            text = "".join(
                t.astext()
                for t in title.findall(nodes.Text)
                if not isinstance(t.parent, nodes.math)
            )
            slug = _slug(text) or _slug(title.astext())
            if not slug:
                continue
            candidate, n = slug, 1
            while candidate in taken:
                n += 1
                candidate = f"{slug}-{n}"
            taken.add(candidate)
            section["ids"].insert(0, candidate)
            self.document.ids[candidate] = section


# Interface strings in Taiwan usage (zh-style.md) for ``language = "zh_TW"``: what Sphinx and
# sphinx-book-theme leave in English, and what pydata-sphinx-theme, which has no zh_TW catalog,
# would take from its Simplified Chinese (zh) one. Also used by the templates in _ext/templates.
INTERFACE = {
    "zh": {
        # sphinx-book-theme
        "Search this book...": "搜尋本書…",
        "Launch on": "開啟於",
        "Launch interactive content": "在線上執行",
        "Repository": "儲存庫",
        "Open issue": "回報問題",
        "Toggle primary sidebar": "顯示或隱藏目錄側欄",
        "Toggle secondary sidebar": "顯示或隱藏本頁大綱",
        # pydata-sphinx-theme
        "Announcement": "公告",
        "Back to top": "回到頁首",
        "Breadcrumb": "導覽路徑",
        'Built with the <a href="%(PST_url)s">PyData Sphinx Theme</a> %(theme_version)s.': '以 <a href="%(PST_url)s">PyData Sphinx Theme</a> %(theme_version)s 建置。',
        "Click to collapse": "收合",
        "Click to expand": "展開",
        "Color mode": "色彩模式",
        "Copyright %(copyright)s": "%(copyright)s 版權所有",
        "© Copyright %(copyright)s.": "© %(copyright)s 版權所有。",
        'Created using <a href="https://www.sphinx-doc.org/">Sphinx</a> %(sphinx_version)s.': '以 <a href="https://www.sphinx-doc.org/">Sphinx</a> %(sphinx_version)s 建立。',
        "Dark": "深色",
        "Light": "淺色",
        "System Settings": "跟隨系統設定",
        "Edit": "編輯",
        "Edit on %(provider)s": "在 %(provider)s 上編輯",
        "Error": "錯誤",
        "General Index": "總索引",
        "Global Module Index": "全域模組索引",
        "Home": "首頁",
        "Indices": "索引",
        "Last updated on %(last_updated)s.": "最後更新於 %(last_updated)s。",
        "On this page": "本頁內容",
        "Please activate JavaScript to enable the search functionality.": "請啟用 JavaScript 才能使用搜尋功能。",
        "Python Module Index": "Python 模組索引",
        "Search": "搜尋",
        "Section Navigation": "章節導覽",
        "Show Source": "顯示原始碼",
        "Site navigation": "網站導覽",
        "Skip to main content": "跳到主要內容",
        "Version warning": "版本警告",
        "next": "下一頁",
        "next page": "下一頁",
        "previous": "上一頁",
        "previous page": "上一頁",
    },
}


class _Table(gettext.NullTranslations):
    def __init__(self, table, fallback=None):
        super().__init__()
        self._table = table
        if fallback is not None:
            self.add_fallback(fallback)

    def gettext(self, message):
        if message in self._table:
            return self._table[message]
        return self._fallback.gettext(message) if self._fallback else message


def _translate_interface(app):
    """Add INTERFACE to every message catalog Sphinx has loaded (Sphinx's, the themes')."""
    table = INTERFACE.get(app.config.celib_edition)
    if not table:
        return
    from sphinx import locale

    for key, translator in list(locale.translators.items()):
        catalog = getattr(translator, "_catalog", None)
        if isinstance(catalog, dict):
            catalog.update(table)
        else:
            locale.translators[key] = _Table(table, translator)


def _edition_context(app, pagename, templatename, context, doctree):
    lang = app.config.celib_edition
    other = _other_edition(app.config)
    if not lang or not other:
        return
    prefix = "../" * (pagename.count("/") + 1)
    context["language"] = HTML_LANG.get(lang, context.get("language"))
    context["celib_switch"] = {
        "href": f"{prefix}{other}/{pagename}.html",
        "edition": other,
        "hreflang": HTML_LANG.get(other, other),
        "label": app.config.celib_editions[other],
        "title": SWITCH_TITLE.get(other, ""),
        "key": STORAGE_KEY,
    }


# --- Traditional Chinese web font ------------------------------------------------------

FONT_FAMILY = "Celib Noto Sans TC"
FONT_STEM = "celib-noto-sans-tc"
FONT_CSS = "celib-cjk-font.css"
# What the @font-face may be used for: CJK punctuation, ideographs, full-width forms. Characters
# the subset lacks fall through to the next font of the list.
UNICODE_RANGE = (
    "U+2E80-2FDF, U+3000-303F, U+3100-312F, U+31A0-31BF, U+3200-9FFF, "
    "U+F900-FAFF, U+FE10-FE1F, U+FE30-FE4F, U+FF00-FFEF, U+20000-2FA1F"
)


def _wide(ch):
    return ord(ch) >= 0x2E80 and unicodedata.east_asian_width(ch) in ("W", "F")


def _used_characters(outdir, extra=""):
    chars = {c for c in extra if _wide(c)}
    files = list(outdir.rglob("*.html")) + list((outdir / "_sources").rglob("*.txt"))
    files += [p for p in (outdir / "_static").glob("*.js") if "translations" in p.name]
    for path in files:
        chars |= {c for c in path.read_text(encoding="utf-8", errors="ignore") if _wide(c)}
    return "".join(sorted(chars))


def _web_font(app, exc):
    if exc is not None or app.builder.format != "html" or not _needs_font(app.config):
        return
    outdir = Path(app.outdir)
    static = outdir / "_static"
    fonts = static / "fonts"
    try:
        from celib.plotting import cjk_font_path

        source = cjk_font_path()
    except ImportError:
        source = None
    if not source or not Path(source).is_file():
        logger.warning(
            "the Noto Sans CJK TC font (pip package cvttf-notosanscjk-regular) is "
            "not installed: the zh pages get no web font",
            type="celib",
            subtype="font",
        )
        return
    try:
        import brotli  # noqa: F401

        flavor = "woff2"
    except ImportError:
        flavor = "woff"
    chars = _used_characters(outdir, app.config.celib_font_text)
    if not chars:
        return
    key = hashlib.sha256(f"{source}\n{flavor}\n{chars}".encode()).hexdigest()
    font = fonts / f"{FONT_STEM}.{flavor}"
    stamp = fonts / f"{FONT_STEM}.sha256"
    if not (font.is_file() and stamp.is_file() and stamp.read_text() == key):
        from fontTools import subset

        fonts.mkdir(parents=True, exist_ok=True)
        for old in fonts.glob(f"{FONT_STEM}.*"):
            old.unlink()
        options = subset.Options()
        options.flavor = flavor
        options.hinting = False
        options.desubroutinize = True
        options.name_IDs = [0, 1, 2, 3, 4, 5, 6]  # keeps the font's copyright and licence notice
        options.layout_features = ["*"]
        tt = subset.load_font(source, options)
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=[ord(c) for c in chars])
        subsetter.subset(tt)
        subset.save_font(tt, str(font), options)
        stamp.write_text(key)
    css = (
        f"/* {FONT_FAMILY}: a subset of Noto Sans CJK TC (SIL Open Font License 1.1) with "
        f"the {len(chars)} characters of this site, made by _ext/celib_book_ext.py. */\n"
        f'@font-face {{\n  font-family: "{FONT_FAMILY}";\n  font-style: normal;\n'
        f"  font-weight: 400;\n  font-display: swap;\n"
        f'  src: url("fonts/{font.name}") format("{flavor}");\n'
        f"  unicode-range: {UNICODE_RANGE};\n}}\n"
        f"html[lang] {{\n"
        f'  --pst-font-family-base: "{FONT_FAMILY}", var(--pst-font-family-base-system);\n'
        f'  --pst-font-family-heading: "{FONT_FAMILY}", var(--pst-font-family-base-system);\n'
        f"  --pst-font-family-monospace: var(--pst-font-family-monospace-system), "
        f'"{FONT_FAMILY}";\n}}\n'
    )
    (static / FONT_CSS).write_text(css, encoding="utf-8")
    logger.info(
        f"celib: web font {font.name}: {len(chars)} characters, "
        f"{font.stat().st_size / 1024:.0f} KiB"
    )


def _needs_font(config):
    return bool(config.celib_edition)


def _add_font_css(app):
    if app.config.celib_edition and app.builder.format == "html":
        app.add_css_file("celib-book.css")
    if _needs_font(app.config) and app.builder.format == "html":
        app.add_css_file(FONT_CSS)


def setup(app):
    app.add_config_value("celib_edition", "", "html", [str])
    app.add_config_value("celib_editions", {}, "html", [dict])
    app.add_config_value("celib_font_text", "", "html", [str])
    app.connect("config-inited", _setup_edition)
    app.connect("builder-inited", _add_font_css)
    app.connect("builder-inited", _translate_interface)
    app.add_transform(CrossEditionLinks)
    app.add_transform(ReadableSectionIds)
    app.connect("html-page-context", _edition_context)
    app.connect("build-finished", _web_font)
    app.connect("config-inited", _check_search)
    app.connect("html-page-context", _drop_thebe, priority=900)
    # after sphinx-mathjax-offline's copy (default priority 500)
    app.connect("build-finished", _prune_mathjax, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
