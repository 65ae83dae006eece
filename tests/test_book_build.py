"""The Jupyter Book builds cleanly, offline, with working Chinese and English search.

The build itself happens once per session (``built_book`` in conftest.py).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from book_helpers import ROOT, load_notebook, read_toc, source_file, tags


def test_build_succeeds(built_book):
    print(f"book build took {built_book.seconds:.1f} s")
    warnings = "\n".join(built_book.warnings)
    assert built_book.returncode == 0 and not warnings, (
        f"jupyter-book build -W -n --keep-going exited {built_book.returncode} with "
        f"{len(built_book.warnings)} warning(s):\n{warnings or built_book.output[-3000:]}")


def test_only_toc_files_are_built(built_book):
    html = built_book.require_html()
    built = {p.relative_to(html).with_suffix("").as_posix() for p in html.rglob("*.html")
             if not p.relative_to(html).parts[0].startswith("_")}
    built -= {"genindex", "search"}
    assert built == set(read_toc()["all"])


# --- offline: no page loads anything from another host -------------------------------

REMOTE = re.compile(r"^\s*(https?:)?//", re.I)
# Attributes that make the browser fetch something (not <a href>, which is a link).
LOADING_ATTRS = {"script": ["src"], "img": ["src", "srcset"], "iframe": ["src"],
                 "source": ["src", "srcset"], "video": ["src", "poster"], "audio": ["src"],
                 "embed": ["src"], "object": ["data"], "track": ["src"], "input": ["src"]}
CSS_REMOTE = re.compile(r"""(url\(\s*['"]?\s*(https?:)?//|@import\s+['"]\s*(https?:)?//)""", re.I)
# A string in JavaScript naming a remote file to load: a CDN host, or a URL ending in the
# suffix of something a page loads.
JS_REMOTE = re.compile(
    r"""["'`](https?:)?//(?P<url>[^"'`\s]*?(cdn|unpkg\.com|jsdelivr|googleapis|gstatic|"""
    r"""githack|statically|cloudflare)[^"'`\s]*|[^"'`\s]+?\.(m?js|css|woff2?|ttf|otf|eot|json))"""
    r"""(\?[^"'`\s]*)?["'`]""", re.I)
# Remote strings that MathJax 3.2.2's tex-chtml.js (and a11y/sre.js) carry but never fetch in
# this book: the Speech Rule Engine's built-in defaults, which MathJax replaces by its own
# [mathjax]/sre path, and two polyfills for Internet Explorer. The browser test watches the
# actual requests of the pages with the network off.
JS_ALLOWED = {
    "_static/mathjax/": ("cdn.jsdelivr.net/npm/speech-rule-engine@",
                         "cdn.jsdelivr.net/npm/sre-mathmaps-ie@",
                         "cdn.jsdelivr.net/npm/wicked-good-xpath@"),
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
    allowed = next((v for k, v in JS_ALLOWED.items() if rel.startswith(k)), ())
    return [m.group(0) for m in JS_REMOTE.finditer(text)
            if not any(a in m.group("url") for a in allowed)]


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
        found, indent=1, ensure_ascii=False)


def test_mathjax_is_served_from_the_site(built_book):
    html = built_book.require_html()
    page = (html / "index.html").read_text(encoding="utf-8")
    src = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, re.I)
    assert src == ["_static/mathjax/tex-chtml.js"], src
    assert (html / "_static/mathjax/tex-chtml.js").is_file()
    assert (html / "_static/mathjax/output/chtml/fonts/woff-v2").is_dir()


# --- search ----------------------------------------------------------------------------

def _search_index(html):
    text = (html / "searchindex.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1:text.rindex(")")])


def _docs_for(index, term):
    docs = set()
    for table in ("terms", "titleterms"):
        hits = index[table].get(term, [])
        docs |= {hits} if isinstance(hits, int) else set(hits)
    return {index["docnames"][i] for i in docs}


@pytest.mark.parametrize("term, lang", [
    ("梯度", "zh"), ("交叉熵", "zh"), ("損失函數", "zh"), ("反向傳播", "zh"),
    ("gradient", "en"),
])
def test_search_index(built_book, term, lang):
    index = _search_index(built_book.require_html())
    chapters = {d for d in index["docnames"] if d.startswith(f"chapters/{lang}/")
                and not d.endswith("/index")}
    if not chapters:
        pytest.skip(f"no {lang} chapter is in the toc and built yet")
    docs = _docs_for(index, term)
    assert docs & chapters, (
        f"the search index maps {term!r} to {sorted(docs)}, no {lang} chapter; "
        f"terms like it: {sorted(t for t in index['terms'] if term[:1] in t)[:20]}")


# --- page furniture ----------------------------------------------------------------------

def test_landing_page_links_both_editions(built_book):
    html = built_book.require_html()
    landing = (html / "index.html").read_text(encoding="utf-8")
    assert 'href="chapters/en/index.html"' in landing
    assert 'href="chapters/zh/index.html"' in landing
    en = (html / "chapters/en/index.html").read_text(encoding="utf-8")
    zh = (html / "chapters/zh/index.html").read_text(encoding="utf-8")
    assert 'href="../zh/index.html"' in en
    assert 'href="../en/index.html"' in zh


def _built_notebooks(html):
    for doc in read_toc()["all"]:
        lang, _, name = doc.removeprefix("chapters/").partition("/")
        path = source_file(lang, name) if name else None
        if path is not None and path.suffix == ".ipynb":
            yield path, html / f"{doc}.html"


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
        hidden = sum("hide-input" in tags(c) for c in load_notebook(nb)["cells"]
                     if c["cell_type"] == "code")
        if not hidden:
            continue
        text = page.read_text(encoding="utf-8")
        cells = re.findall(r'<div class="cell tag_hide-input[^"]*"', text)
        toggles = re.findall(r'<div class="cell tag_hide-input[^"]*">\s*'
                             r'<details class="[^"]*\bhide above-input\b', text)
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
