"""The built book in a real browser, with the network cut off.

Headless Chromium (Debian package ``chromium``) loads pages of the session's build from a
local HTTP server on 127.0.0.1; every other host name resolves to nothing. ``--dump-dom``
with a virtual-time budget returns the DOM after the scripts (MathJax, Sphinx search) ran,
and Chromium's network log lists every request the pages made. Test pages under
``/_celib_test/`` (served from memory, not written into the site) drive the site's pages in an
iframe: clicks on the language switcher, the fonts a page loaded, the width of code blocks.
A screenshot shows whether Chinese text is drawn with real glyphs or as boxes ("tofu").

Without Chromium the tests skip with the reason, or fail when ``CI`` is set (CI must run
them: ``.ci/run`` installs Chromium and sets CI=true). Set ``CHROMIUM=/path/to/chrome`` to
use another build.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from book_helpers import read_toc

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\[|\\(frac|partial|sum|mathrm|log|exp|begin|end|left|"
    r"right|nabla|cdot|text|operatorname)\b"
)


def _find_browser():
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() or shutil.which(explicit) else None
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


@pytest.fixture(scope="module")
def browser():
    path = _find_browser()
    if path is None:
        message = (
            "Chromium is not installed, so the browser checks (MathJax typesetting, "
            "search pages) did not run: apt-get install chromium, or set CHROMIUM "
            "to a Chromium or Chrome binary"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI is set: these checks must run)")
        pytest.skip(message)
    return path


TEST_PAGES: dict[str, str] = {}  # /_celib_test/<name> -> HTML, served by _Handler


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # quiet; remember what was asked for
        self.server.log.append((self.path, args[1] if len(args) > 1 else ""))

    def do_GET(self):
        name = self.path.split("?")[0].removeprefix("/_celib_test/")
        if self.path.startswith("/_celib_test/") and name in TEST_PAGES:
            body = TEST_PAGES[name].encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@pytest.fixture(scope="module")
def site(built_book):
    html = built_book.require_html()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(html))
    )
    server.log = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", html, server.log
    finally:
        server.shutdown()
        server.server_close()


def _chromium(browser, profile, lang="en-US", window="1280,900"):
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--lang={lang}",
        f"--accept-lang={lang}",
        f"--window-size={window}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ]


def load(browser, base, path, *, lang="en-US", profile=None, window="1280,900"):
    """(dom, requests): the DOM after scripts ran, and every URL the page requested.

    ``lang``: the browser's language preference; ``profile``: a user-data folder to keep
    (localStorage) from one load to the next.
    """
    with tempfile.TemporaryDirectory(prefix="celib-chromium-") as tmp:
        netlog = Path(tmp) / "netlog.json"
        cmd = _chromium(browser, profile or tmp, lang, window) + [
            f"--log-net-log={netlog}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{base}/{path}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "</html>" in proc.stdout, (
            f"chromium failed on {path}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
        )
        return proc.stdout, _page_requests(netlog)


def screenshot(browser, base, path, png, *, window="480,160"):
    with tempfile.TemporaryDirectory(prefix="celib-chromium-") as tmp:
        cmd = _chromium(browser, tmp, "zh-TW", window) + [
            "--virtual-time-budget=10000",
            f"--screenshot={png}",
            f"{base}/{path}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and Path(png).is_file(), (
            f"chromium could not take a screenshot of {path}: exit {proc.returncode}\n"
            f"{proc.stderr[-2000:]}"
        )


def _page_requests(netlog):
    """URLs requested by pages (not by the browser's own services) according to the net log."""
    text = netlog.read_text(encoding="utf-8", errors="replace").rstrip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short still has its events
        log = json.loads(text.rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if event["type"] == start_job and "127.0.0.1" in params.get("network_isolation_key", ""):
            urls.append(params["url"])
    return urls


class _Text(HTMLParser):
    """Visible text: no scripts, styles, code, or MathJax output."""

    SKIP = {"script", "style", "pre", "code", "textarea", "mjx-container", "noscript"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def visible_text(dom):
    parser = _Text()
    parser.feed(dom)
    return " ".join(parser.parts)


def _pages_with_math(html, lang):
    """The edition's front page and its first chapter page that has display math."""
    pages = [f"{lang}/index.html"]
    for name in read_toc()[lang]:
        page = html / lang / f"{name}.html"
        if (
            name != "index"
            and page.is_file()
            and ('class="math notranslate nohighlight"' in page.read_text(encoding="utf-8"))
        ):
            pages.append(f"{lang}/{name}.html")
            break
    return pages


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_equations_typeset_offline(browser, site, lang):
    base, html, log = site
    pages = _pages_with_math(html, lang)
    for page in pages:
        dom, requests = load(browser, base, page)
        static = (html / page).read_text(encoding="utf-8")
        expected = static.count('class="math notranslate nohighlight"')
        typeset = dom.count("<mjx-container")
        assert typeset >= expected, (
            f"{page}: {typeset} typeset equations (mjx-container) for {expected} in the page"
        )
        raw = sorted(set(m.group(0) for m in RAW_TEX.finditer(visible_text(dom))))
        assert not raw, f"{page}: raw TeX visible in the page: {raw}"
        remote = [u for u in requests if not u.startswith(base)]
        assert not remote, f"{page} requested other hosts: {remote[:5]}"
    missing = [path for path, status in log if status == "404" and "favicon" not in path]
    assert not missing, f"the pages asked for files the site lacks: {missing[:10]}"
    if len(pages) < 2:
        pytest.skip(f"checked the front pages only: no {lang} chapter with display math built yet")


def _search_hits(browser, base, lang, query):
    dom, requests = load(browser, base, f"{lang}/search.html?q={quote(query)}")
    m = re.search(r'<ul class="search">(.*?)</ul>', dom, re.S)
    links = re.findall(r'<a href="([^"]+)"', m.group(1)) if m else []
    return [link.split("#")[0].split("?")[0].removeprefix("./") for link in links], dom, requests


@pytest.mark.parametrize(
    "query, lang, page",
    [
        ("gradients", "en", "02_the_gradient.html"),  # English stemming: gradients -> gradient
        ("梯度", "zh", "02_the_gradient.html"),
        ("交叉熵", "zh", "01_softmax_and_cross_entropy.html"),
    ],
)
def test_search_page_finds_the_chapter(browser, site, query, lang, page):
    base, html, _ = site
    if not (html / lang / page).is_file():
        pytest.skip(f"{lang}/{page} is not built")
    hits, dom, requests = _search_hits(browser, base, lang, query)
    assert page in hits, f"{lang}/search.html?q={query} lists {hits}, not {page}"
    assert all(not h.startswith(("../", "http")) for h in hits), hits
    assert not [u for u in requests if not u.startswith(base)]
    if lang == "zh":
        status = re.search(r'<p class="search-summary">(.*?)</p>', dom, re.S)
        assert status and not re.search(r"[A-Za-z]{4}", status.group(1)), (
            f"the search summary is not in Chinese: {status and status.group(1)}"
        )


HTML_LANG = {"en": "en", "zh": "zh-TW"}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_lang_attribute_and_interface(browser, site, lang):
    base, html, _ = site
    dom, _ = load(browser, base, f"{lang}/02_the_gradient.html")
    assert re.search(rf'<html lang="{HTML_LANG[lang]}"', dom), dom[:300]
    text = visible_text(dom)
    if lang == "zh":
        for word in ("上一頁", "下一頁", "English"):
            assert word in text, word
        assert 'placeholder="搜尋本書…"' in dom
        for word in ("Previous", "Next", "Contents", "Show code cell"):
            assert word not in text, word
    else:
        assert "繁體中文" in text and "Search this book" in dom


@pytest.mark.parametrize(
    "prefs, lang", [("zh-TW", "zh"), ("zh-CN", "zh"), ("en-US", "en"), ("fr-FR", "en")]
)
def test_landing_page_follows_the_browser_language(browser, site, prefs, lang):
    base, _, _ = site
    dom, requests = load(browser, base, "index.html", lang=prefs)
    assert re.search(rf'<html lang="{HTML_LANG[lang]}"', dom), (prefs, dom[:300])
    assert any(u.startswith(f"{base}/{lang}/index.html") for u in requests), requests[:5]


def test_landing_page_remembers_the_choice(browser, site):
    base, _, _ = site
    with tempfile.TemporaryDirectory(prefix="celib-profile-") as profile:
        dom, _ = load(browser, base, "index.html?lang=zh", lang="en-US", profile=profile)
        assert '<html lang="zh-TW"' in dom
        dom, _ = load(browser, base, "index.html", lang="en-US", profile=profile)
        assert '<html lang="zh-TW"' in dom, "the landing page forgot the reader's choice"
    dom, _ = load(browser, base, "index.html?choose", lang="zh-TW")
    assert '<html lang="mul"' in dom and 'href="en/index.html"' in dom


# A test page that clicks the language switcher of the page in the iframe, twice.
ROUND_TRIP = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<iframe id="f" src="/en/%(page)s" width="1200" height="800"></iframe><pre id="result"></pre>
<script>
var steps = [], f = document.getElementById("f");
function done() { document.getElementById("result").textContent = JSON.stringify(steps); }
f.addEventListener("load", function () {
  var d = f.contentDocument, a = d.querySelector("a.celib-lang-switch");
  steps.push({path: f.contentWindow.location.pathname, lang: d.documentElement.lang,
              stored: localStorage.getItem("celib-book-lang"), switcher: a && a.textContent.trim()});
  if (steps.length < 3 && a) { a.click(); } else { done(); }
});
</script></body></html>"""


def _result(dom):
    m = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert m and m.group(1).strip(), f"the test page wrote no result:\n{dom[-2000:]}"
    import html as _html

    return json.loads(_html.unescape(m.group(1)))


def test_language_switcher_round_trip(browser, site):
    base, html, _ = site
    page = "02_the_gradient.html"
    TEST_PAGES["round-trip.html"] = ROUND_TRIP % {"page": page}
    steps = _result(load(browser, base, "_celib_test/round-trip.html")[0])
    assert [(s["path"], s["lang"]) for s in steps] == [
        (f"/en/{page}", "en"),
        (f"/zh/{page}", "zh-TW"),
        (f"/en/{page}", "en"),
    ], steps
    assert [s["stored"] for s in steps] == [None, "zh", "en"], steps
    assert [s["switcher"] for s in steps] == ["繁體中文", "English", "繁體中文"], steps


# A test page that reports, for a page of the site in the iframe, the fonts it loaded, the
# font of its text, and code blocks wider than their box.
INSPECT = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<iframe id="f" src="/%(page)s" width="%(width)s" height="900"></iframe><pre id="result"></pre>
<script>
var f = document.getElementById("f");
f.addEventListener("load", function () {
  var d = f.contentDocument;
  d.fonts.ready.then(function () {
    var faces = [];
    d.fonts.forEach(function (face) { faces.push([face.family.replace(/"/g, ""), face.status]); });
    var p = d.querySelector("article p") || d.body;
    var wide = [];
    d.querySelectorAll("pre").forEach(function (pre) {
      if (pre.scrollWidth > pre.clientWidth + 1) wide.push(pre.textContent.slice(0, 60));
    });
    document.getElementById("result").textContent = JSON.stringify({
      faces: faces, family: f.contentWindow.getComputedStyle(p).fontFamily,
      check: d.fonts.check('16px "Celib Noto Sans TC"', "梯度"), wide: wide});
  });
});
</script></body></html>"""


def _inspect(browser, base, page, width=1200):
    name = f"inspect-{page.replace('/', '-')}-{width}.html"
    TEST_PAGES[name] = INSPECT % {"page": page, "width": width}
    dom, requests = load(browser, base, f"_celib_test/{name}")
    return _result(dom), requests


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_pages_load_the_web_font(browser, site, lang):
    """Chinese on the page (all of zh; 「繁體中文」 in en) is drawn with the site's subset."""
    base, _, _ = site
    report, requests = _inspect(browser, base, f"{lang}/02_the_gradient.html")
    assert ["Celib Noto Sans TC", "loaded"] in report["faces"], report
    assert report["family"].startswith('"Celib Noto Sans TC"'), report
    assert any(f"/{lang}/_static/fonts/celib-noto-sans-tc." in u for u in requests)
    if lang == "zh":
        assert report["check"], report


@pytest.mark.parametrize("page", ["en/index.html", "zh/index.html"])
@pytest.mark.parametrize("width", [1200, 700])
def test_front_page_code_fits(browser, site, page, width):
    base, _, _ = site
    report, _ = _inspect(browser, base, page, width)
    assert not report["wide"], f"{page} at {width}px: code blocks cut off: {report['wide']}"


GLYPHS = "梯度交叉熵損失"
GLYPH_PAGE = """<!DOCTYPE html><html lang="zh-TW"><head><meta charset="utf-8">
<link rel="stylesheet" href="/zh/_static/celib-cjk-font.css">
<style>html, body { margin: 0; background: #fff; color: #000; }
div { font-size: 40px; line-height: 60px; height: 60px; padding-left: 10px; white-space: nowrap; }
#web { font-family: "Celib Noto Sans TC", monospace; } #system { font-family: monospace; }</style>
</head><body><div id="web">%(text)s</div><div id="system">%(text)s</div>
<script>document.fonts.load('40px "Celib Noto Sans TC"', "%(text)s");</script></body></html>"""


def _column_patterns(ink):
    """How many different inked columns a row of text has. A row of tofu boxes has only
    their sides and their top-and-bottom columns; real glyphs have dozens."""
    return len({col.tobytes() for col in ink.T if col.any()})


def _has_cjk_system_font():
    fc = shutil.which("fc-list")
    if not fc:
        return None
    out = subprocess.run([fc, ":lang=zh-tw", "family"], capture_output=True, text=True).stdout
    return bool(out.strip())


def test_chinese_renders_with_glyphs_not_tofu(browser, site, tmp_path):
    """Chinese text in the web font shows as distinct glyphs; on a machine without a CJK system
    font, the same text without it shows as identical boxes (the check can tell the two)."""
    from matplotlib.image import imread

    base, _, _ = site
    TEST_PAGES["glyphs.html"] = GLYPH_PAGE % {"text": GLYPHS}
    png = tmp_path / "glyphs.png"
    screenshot(browser, base, "_celib_test/glyphs.html", png)
    image = imread(png)[..., :3].mean(axis=2)
    web, system = image[0:60] < 0.5, image[60:120] < 0.5
    patterns = _column_patterns(web)
    print(f"distinct ink columns: web font {patterns}, system fonts {_column_patterns(system)}")
    assert patterns >= 40, (
        f"the row in the web font has {patterns} different ink columns: boxes (tofu), not "
        f"glyphs; screenshot {png}"
    )
    if _has_cjk_system_font() is False:
        tofu = _column_patterns(system)
        assert tofu <= 8, (
            f"without the web font and with no CJK system font, {tofu} different ink columns: "
            f"the check cannot tell glyphs from tofu; screenshot {png}"
        )
