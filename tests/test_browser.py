"""The built book in a real browser, with the network cut off.

Headless Chromium (Debian package ``chromium``) loads pages of the session's build from a
local HTTP server on 127.0.0.1; every other host name resolves to nothing. ``--dump-dom``
with a virtual-time budget returns the DOM after the scripts (MathJax, Sphinx search) ran,
and Chromium's network log lists every request the pages made.

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
RAW_TEX = re.compile(r"\$\$|\\\(|\\\[|\\(frac|partial|sum|mathrm|log|exp|begin|end|left|"
                     r"right|nabla|cdot|text|operatorname)\b")


def _find_browser():
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() or shutil.which(explicit) else None
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


@pytest.fixture(scope="module")
def browser():
    path = _find_browser()
    if path is None:
        message = ("Chromium is not installed, so the browser checks (MathJax typesetting, "
                   "search pages) did not run: apt-get install chromium, or set CHROMIUM "
                   "to a Chromium or Chrome binary")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI is set: these checks must run)")
        pytest.skip(message)
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # quiet; remember what was asked for
        self.server.log.append((self.path, args[1] if len(args) > 1 else ""))


@pytest.fixture(scope="module")
def site(built_book):
    html = built_book.require_html()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(html)))
    server.log = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", html, server.log
    finally:
        server.shutdown()
        server.server_close()


def load(browser, base, path):
    """(dom, requests): the DOM after scripts ran, and every URL the page requested."""
    with tempfile.TemporaryDirectory(prefix="celib-chromium-") as profile:
        netlog = Path(profile) / "netlog.json"
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-extensions", "--no-first-run",
               "--no-default-browser-check", f"--user-data-dir={profile}",
               "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
               f"--log-net-log={netlog}", "--virtual-time-budget=20000",
               "--dump-dom", f"{base}/{path}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "</html>" in proc.stdout, (
            f"chromium failed on {path}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
        return proc.stdout, _page_requests(netlog)


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
    pages = [f"chapters/{lang}/index.html"]
    for doc in read_toc()["all"]:
        if doc.startswith(f"chapters/{lang}/") and not doc.endswith("/index"):
            page = html / f"{doc}.html"
            if page.is_file() and 'class="math notranslate nohighlight"' in page.read_text(
                    encoding="utf-8"):
                pages.append(f"{doc}.html")
                break
    return pages


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_equations_typeset_offline(browser, site, lang):
    base, html, log = site
    pages = ["index.html"] + _pages_with_math(html, lang)
    for page in pages:
        dom, requests = load(browser, base, page)
        static = (html / page).read_text(encoding="utf-8")
        expected = static.count('class="math notranslate nohighlight"')
        typeset = dom.count("<mjx-container")
        assert typeset >= expected, (
            f"{page}: {typeset} typeset equations (mjx-container) for {expected} in the page")
        raw = sorted(set(m.group(0) for m in RAW_TEX.finditer(visible_text(dom))))
        assert not raw, f"{page}: raw TeX visible in the page: {raw}"
        remote = [u for u in requests if not u.startswith(base)]
        assert not remote, f"{page} requested other hosts: {remote[:5]}"
    missing = [path for path, status in log if status == "404" and "favicon" not in path]
    assert not missing, f"the pages asked for files the site lacks: {missing[:10]}"
    if len(pages) < 3:
        pytest.skip(f"checked the front pages only: no {lang} chapter with display math built yet")


def _search_hits(browser, base, query):
    dom, requests = load(browser, base, f"search.html?q={quote(query)}")
    m = re.search(r'<ul class="search">(.*?)</ul>', dom, re.S)
    links = re.findall(r'<a href="([^"]+)"', m.group(1)) if m else []
    return [link.split("#")[0].split("?")[0] for link in links], requests


@pytest.mark.parametrize("query, lang", [("梯度", "zh"), ("交叉熵", "zh"), ("gradient", "en")])
def test_search_page_finds_the_chapter(browser, site, query, lang):
    base, html, _ = site
    chapters = [d for d in read_toc()["all"] if d.startswith(f"chapters/{lang}/")
                and not d.endswith("/index") and (html / f"{d}.html").is_file()]
    if not chapters:
        pytest.skip(f"no {lang} chapter built yet")
    hits, requests = _search_hits(browser, base, query)
    assert any(h.startswith(f"chapters/{lang}/") and not h.endswith("/index.html")
               for h in hits), f"search.html?q={query} lists {hits}, no {lang} chapter"
    assert not [u for u in requests if not u.startswith(base)]
