"""The book builds cleanly as two sites (``en/``, ``zh/``) and a landing page, offline, each
edition with its own language, interface, search, sidebar and language switcher.

The build itself happens once per session (``built_book`` in conftest.py, which runs
``tools/build_book.py`` like ``make book``).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from book_helpers import LANGS, ROOT, load_notebook, read_toc, source_file, tags

HTML_LANG = {"en": "en", "zh": "zh-TW"}
# Simplified-only characters (test_notebook_conventions.SIMPLIFIED, and some of the interface's)
SIMPLIFIED = set(
    "损数传计络层权类标签据实现动态习题练码图为这个们时对与样过还没说应该问发开关"
    "机会从两义种点边间长么读写输页顶转导览储网编辑错误总块当节显"
)


def test_build_succeeds(built_book):
    print(f"book build took {built_book.seconds:.1f} s")
    warnings = "\n".join(built_book.warnings)
    assert built_book.returncode == 0 and not warnings, (
        f"jupyter-book build -W -n --keep-going exited {built_book.returncode} with "
        f"{len(built_book.warnings)} warning(s):\n{warnings or built_book.output[-3000:]}"
    )


def _pages(html, lang):
    """The edition's pages (html files outside _static, _sources, ...)."""
    site = html / lang
    return [p for p in site.rglob("*.html") if not p.relative_to(site).parts[0].startswith("_")]


def test_only_toc_files_are_built(built_book):
    html = built_book.require_html()
    toc = read_toc()
    assert (html / "index.html").is_file()
    for lang in LANGS:
        built = {p.relative_to(html / lang).with_suffix("").as_posix() for p in _pages(html, lang)}
        built -= {"genindex", "search"}
        assert built == set(toc[lang]), (lang, sorted(built ^ set(toc[lang])))
    assert {p.name for p in html.iterdir() if p.is_dir()} == set(LANGS)


def test_build_script_derives_any_chapter_list():
    """tools/build_book.py takes each edition's chapters from the root toc, whatever they are."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    toc = {
        "format": "jb-book",
        "root": "index",
        "parts": [
            {
                "caption": "English",
                "chapters": [
                    {"file": "chapters/en/index"},
                    {"file": "chapters/en/11_second_order"},
                    {
                        "file": "chapters/en/12_across_devices",
                        "sections": [{"file": "chapters/en/12a"}],
                    },
                ],
            },
            {
                "caption": "繁體中文",
                "chapters": [
                    {"file": "chapters/zh/index"},
                    {"file": "chapters/zh/11_second_order"},
                ],
            },
        ],
    }
    assert build_book.edition_toc(toc, "en") == {
        "format": "jb-book",
        "root": "index",
        "chapters": [
            {"file": "11_second_order"},
            {"file": "12_across_devices", "sections": [{"file": "12a"}]},
        ],
    }
    assert build_book.edition_toc(toc, "zh")["chapters"] == [{"file": "11_second_order"}]
    real = build_book.load_yaml(ROOT / "_toc.yml")
    for lang in LANGS:
        derived = build_book.edition_toc(real, lang)
        names = [derived["root"]] + [e["file"] for e in derived["chapters"]]
        assert names == read_toc()[lang]
        config = build_book.edition_config(build_book.load_yaml(ROOT / "_config.yml"), lang)
        assert config["repository"]["path_to_book"] == f"chapters/{lang}"
        assert config["sphinx"]["config"]["html_search_language"] == lang


# --- offline: no page loads anything from another host -------------------------------

REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
# Attributes that make the browser fetch something (not <a href>, which is a link).
LOADING_ATTRS = {
    "script": ["src"],
    "img": ["src", "srcset"],
    "iframe": ["src"],
    "source": ["src", "srcset"],
    "video": ["src", "poster"],
    "audio": ["src"],
    "embed": ["src"],
    "object": ["data"],
    "track": ["src"],
    "input": ["src"],
}
CSS_REMOTE = re.compile(r"""(url\(\s*['"]?\s*(https?:)?//|@import\s+['"]\s*(https?:)?//)""", re.I)
# A string in JavaScript naming a remote file to load: a CDN host, or a URL ending in the
# suffix of something a page loads.
JS_REMOTE = re.compile(
    r"""["'`](https?:)?//(?P<url>[^"'`\s]*?(cdn|unpkg\.com|jsdelivr|googleapis|gstatic|"""
    r"""githack|statically|cloudflare)[^"'`\s]*|[^"'`\s]+?\.(m?js|css|woff2?|ttf|otf|eot|json))"""
    r"""(\?[^"'`\s]*)?["'`]""",
    re.I,
)
# Remote strings that MathJax 3.2.2's tex-chtml.js (and a11y/sre.js) carry but never fetch in
# this book: the Speech Rule Engine's built-in defaults, which MathJax replaces by its own
# [mathjax]/sre path, and two polyfills for Internet Explorer. The browser test watches the
# actual requests of the pages with the network off.
JS_ALLOWED = {
    "_static/mathjax/": (
        "cdn.jsdelivr.net/npm/speech-rule-engine@",
        "cdn.jsdelivr.net/npm/sre-mathmaps-ie@",
        "cdn.jsdelivr.net/npm/wicked-good-xpath@",
    ),
}


class _Loads(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.remote, self._in = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in LOADING_ATTRS.get(tag, []):
            value = attrs.get(name) or ""
            if any(REMOTE.match(v.strip().split(" ")[0]) for v in value.split(",") if v.strip()):
                self.remote.append(f"<{tag} {name}={value!r}>")
        if tag == "link" and REMOTE.match(attrs.get("href") or ""):
            rel = (attrs.get("rel") or "").lower()
            if rel not in ("canonical", "alternate", "next", "prev"):
                self.remote.append(f"<link rel={rel!r} href={attrs['href']!r}>")
        if CSS_REMOTE.search(attrs.get("style") or ""):
            self.remote.append(f"<{tag} style={attrs['style']!r}>")
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "style" and CSS_REMOTE.search(data):
            self.remote.append(f"<style>: {CSS_REMOTE.search(data).group(0)}")
        if self._in == "script":
            self.remote += [f"<script>: {m.group(0)}" for m in JS_REMOTE.finditer(data)]


def _remote_loads(path, rel):
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".html":
        parser = _Loads()
        parser.feed(text)
        return parser.remote
    if path.suffix == ".css":
        return [m.group(0) for m in CSS_REMOTE.finditer(text)]
    allowed = next((v for k, v in JS_ALLOWED.items() if f"/{k}" in f"/{rel}"), ())
    return [
        m.group(0)
        for m in JS_REMOTE.finditer(text)
        if not any(a in m.group("url") for a in allowed)
    ]


def test_no_remote_resources(built_book):
    html = built_book.require_html()
    files = [p for p in html.rglob("*") if p.suffix in (".html", ".js", ".css") and p.is_file()]
    assert files
    found = {}
    for path in files:
        rel = path.relative_to(html).as_posix()
        loads = _remote_loads(path, rel)
        if loads:
            found[rel] = sorted(set(loads))[:5]
    assert not found, "pages or assets load from other hosts:\n" + json.dumps(
        found, indent=1, ensure_ascii=False
    )


@pytest.mark.parametrize("lang", LANGS)
def test_mathjax_is_served_from_the_site(built_book, lang):
    site = built_book.require_html() / lang
    page = (site / "index.html").read_text(encoding="utf-8")
    src = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, re.I)
    assert [s.split("?")[0] for s in src] == ["_static/mathjax/tex-chtml.js"], src
    assert (site / "_static/mathjax/tex-chtml.js").is_file()
    assert (site / "_static/mathjax/output/chtml/fonts/woff-v2").is_dir()


# --- search ----------------------------------------------------------------------------


def _search_index(html):
    text = (html / "searchindex.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])


def _docs_for(index, term):
    docs = set()
    for table in ("terms", "titleterms"):
        hits = index[table].get(term, [])
        docs |= {hits} if isinstance(hits, int) else set(hits)
    return {index["docnames"][i] for i in docs}


@pytest.mark.parametrize("lang", LANGS)
def test_each_edition_indexes_its_own_pages(built_book, lang):
    index = _search_index(built_book.require_html() / lang)
    assert set(index["docnames"]) == set(read_toc()[lang])
    # the English index stems (gradients -> gradient); the Chinese one is cut by jieba
    cjk = [t for t in index["terms"] if re.search(r"[\u4e00-\u9fff]", t)]
    if lang == "en":
        assert "gradient" in index["terms"] and "gradients" not in index["terms"]
    else:
        assert len(cjk) > 500


@pytest.mark.parametrize(
    "term, lang",
    [
        ("梯度", "zh"),
        ("交叉熵", "zh"),
        ("損失函數", "zh"),
        ("反向傳播", "zh"),
        ("gradient", "en"),
    ],
)
def test_search_index(built_book, term, lang):
    index = _search_index(built_book.require_html() / lang)
    chapters = {d for d in index["docnames"] if d != "index"}
    if not chapters:
        pytest.skip(f"no {lang} chapter is in the toc and built yet")
    docs = _docs_for(index, term)
    assert docs & chapters, (
        f"the {lang} search index maps {term!r} to {sorted(docs)}, no chapter; "
        f"terms like it: {sorted(t for t in index['terms'] if term[:1] in t)[:20]}"
    )


# --- page furniture ----------------------------------------------------------------------


def test_landing_page_links_both_editions(built_book):
    html = built_book.require_html()
    landing = (html / "index.html").read_text(encoding="utf-8")
    assert 'href="en/index.html"' in landing and 'href="zh/index.html"' in landing
    assert "localStorage" in landing and "navigator.languages" in landing
    en = (html / "en/index.html").read_text(encoding="utf-8")
    zh = (html / "zh/index.html").read_text(encoding="utf-8")
    assert 'href="../zh/index.html"' in en
    assert 'href="../en/index.html"' in zh


_SWITCH = re.compile(r'<a class="[^"]*\bcelib-lang-switch\b[^"]*" href="([^"]+)"')


@pytest.mark.parametrize("lang", LANGS)
def test_edition_pages(built_book, lang):
    """lang attribute, switcher to the same page, own sidebar, no set-up cell, no idN anchors."""
    html = built_book.require_html()
    other = {"en": "zh", "zh": "en"}[lang]
    pages = _pages(html, lang)
    assert pages
    for page in pages:
        rel = page.relative_to(html / lang).as_posix()
        text = page.read_text(encoding="utf-8")
        assert f'<html lang="{HTML_LANG[lang]}"' in text, rel
        assert _SWITCH.findall(text) == ["../" * rel.count("/") + f"../{other}/{rel}"], rel
        assert (html / other / rel).is_file(), rel
        nav = re.search(r'<nav class="bd-links bd-docs-nav"[^>]*>(.*?)</nav>', text, re.S)
        assert nav, rel
        links = re.findall(r'href="([^"]+)"', nav.group(1))
        assert links and not [u for u in links if u.startswith(("../", "http"))], (rel, links)
        assert "google.colab" not in text, f"{rel}: the Colab set-up cell is shown"
        if lang == "zh":
            auto = re.findall(r'<section id="(id\d+)"', text)
            assert not auto, f"{rel}: sections with anchors {auto}"


def test_zh_interface_is_chinese(built_book):
    html = built_book.require_html()
    page = html / "zh/02_the_gradient.html"
    if not page.is_file():
        pytest.skip("chapter 2 is not built")
    text = page.read_text(encoding="utf-8")
    for zh in ("搜尋本書", "上一頁", "下一頁", "列印成 PDF", "開啟於 Colab", "開啟於 Binder"):
        assert zh in text, zh
    for en in (
        "Search this book",
        "Show code cell",
        "Launch on",
        "Toggle primary sidebar",
        "Contents",
        "Previous",
        "Next",
    ):
        assert en not in text, en
    # pydata-sphinx-theme has no zh_TW catalog; its zh one is Simplified Chinese
    for page in _pages(html, "zh"):
        if "gloss" in page.stem:  # the glossary shows the mainland terms on purpose
            continue
        simplified = sorted(set(page.read_text(encoding="utf-8")) & SIMPLIFIED)
        assert not simplified, f"{page.name}: Simplified characters {simplified}"
    en = (html / "en/02_the_gradient.html").read_text(encoding="utf-8")
    assert "Search this book" in en and "搜尋本書" not in en


def _cjk(text):
    return {ord(c) for c in text if "\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f"}


@pytest.mark.parametrize("lang", LANGS)
def test_cjk_web_font(built_book, lang):
    """Each edition serves a subset of Noto Sans CJK TC holding every CJK character it shows
    (the en edition: the switcher's 「繁體中文」 and the glossary); the landing page uses the
    zh edition's."""
    from fontTools.ttLib import TTFont

    from celib.plotting import cjk_font_path

    html = built_book.require_html()
    static = html / lang / "_static"
    css = (static / "celib-cjk-font.css").read_text(encoding="utf-8")
    assert "unicode-range" in css and not re.search(r"url\(\s*['\"]?(https?:)?//", css)
    font_file = static / re.search(r'url\("([^"]+)"\)', css).group(1)
    size = font_file.stat().st_size
    print(f"{lang} web font {font_file.name}: {size / 1024:.0f} KiB")
    assert size < 2 * 2**20
    subset = set(TTFont(font_file).getBestCmap())
    full = set(TTFont(cjk_font_path(), lazy=True).getBestCmap())
    used = set()
    for page in _pages(html, lang):
        text = page.read_text(encoding="utf-8")
        assert "_static/celib-cjk-font.css" in text, page
        used |= _cjk(text)
    if lang == "zh":
        landing = (html / "index.html").read_text(encoding="utf-8")
        assert 'href="zh/_static/celib-cjk-font.css"' in landing
        used |= _cjk(landing)
    missing = (used & full) - subset
    assert used and not missing, sorted(chr(c) for c in missing)[:20]
    assert len(subset) < 3 * len(used) + 500


def _built_notebooks(html):
    for lang in LANGS:
        for name in read_toc()[lang]:
            path = source_file(lang, name)
            if path is not None and path.suffix == ".ipynb":
                yield path, html / lang / f"{name}.html"


def test_launch_buttons(built_book):
    html = built_book.require_html()
    pages = list(_built_notebooks(html))
    if not pages:
        pytest.skip("no chapter notebook built yet")
    repo = "celib-book/cross-entropy-gradient"
    for nb, page in pages:
        rel = nb.relative_to(ROOT).as_posix()
        text = page.read_text(encoding="utf-8")
        assert f"https://colab.research.google.com/github/{repo}/blob/main/{rel}" in text, page
        assert f"https://mybinder.org/v2/gh/{repo}/main?urlpath=lab/tree/{rel}" in text, page


def test_hide_input_cells_are_behind_a_toggle(built_book):
    html = built_book.require_html()
    checked = 0
    for nb, page in _built_notebooks(html):
        hidden = sum(
            "hide-input" in tags(c) for c in load_notebook(nb)["cells"] if c["cell_type"] == "code"
        )
        if not hidden:
            continue
        text = page.read_text(encoding="utf-8")
        cells = re.findall(r'<div class="cell [^"]*\btag_hide-input\b[^"]*"', text)
        toggles = re.findall(
            r'<div class="cell [^"]*\btag_hide-input\b[^"]*">\s*'
            r'<details class="[^"]*\bhide above-input\b',
            text,
        )
        assert len(cells) == len(toggles) == hidden, (page, hidden, len(cells), len(toggles))
        checked += 1
    if not checked:
        pytest.skip("no built notebook has a cell tagged hide-input yet")


def test_pytest_does_not_collect_build_output(request):
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "_build" in config["tool"]["pytest"]["ini_options"]["norecursedirs"]
    collected = [item.nodeid for item in request.session.items if "_build/" in item.nodeid]
    assert not collected, collected[:5]
