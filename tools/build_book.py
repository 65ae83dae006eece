"""Build the book: one site per edition and a landing page that chooses between them.

    PYTHONPATH=$PWD .venv/bin/python tools/build_book.py            (= make book)

Output (``--output``, default ``_build``)::

    _build/html/index.html     the landing page (from the root index.md): follows the browser's
                               language preference, remembers the reader's choice
    _build/html/en/            the English edition  (chapters/en/, <html lang="en">)
    _build/html/zh/            the Chinese edition  (chapters/zh/, <html lang="zh-TW">)

The root ``_config.yml`` and ``_toc.yml`` are the only configuration. For each edition this
script derives a config and a toc into ``_build/src/book-<lang>/`` (next to symbolic links to the
edition's files) and builds that folder with ``jupyter-book build -W -n --keep-going``:

- toc: the parts of the root toc whose files are all under ``chapters/<lang>/``; the first of
  them is the edition's front page. Any chapter list works.
- config: the root config, with per edition the title (the root title is "English ·
  中文"), ``repository.path_to_book`` (launch buttons open ``chapters/<lang>/<page>.ipynb``),
  the Sphinx ``language`` (``en`` / ``zh_TW``: interface strings), the search language (``en``:
  English stemming; ``zh``: jieba with the user dictionary) and ``celib_edition`` (read by
  ``_ext/celib_book_ext.py``: language switcher, Chinese web font, links between editions).

The two editions are built at the same time (``--jobs``); the exit status is non-zero when
either build fails or warns.
"""

from __future__ import annotations

import argparse
import copy
import html
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Per edition: Sphinx language (interface), search language, the switcher's label, and Sphinx
# settings of its own (myst-nb's toggle labels have no translation catalog).
EDITIONS = {
    "en": {"language": "en", "search": "en", "label": "English", "config": {}},
    "zh": {
        "language": "zh_TW",
        "search": "zh",
        "label": "繁體中文",
        "config": {
            "nb_code_prompt_show": "顯示程式碼儲存格內容",
            "nb_code_prompt_hide": "隱藏程式碼儲存格內容",
        },
    },
}
# The edition whose web font (_static/celib-cjk-font.css) the landing page uses.
FONT_EDITION = "zh"
# Where the landing page keeps the reader's choice (the switcher on every page writes it too).
STORAGE_KEY = "celib-book-lang"


def load_yaml(path):
    return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}


# --- toc ---------------------------------------------------------------------------------


def _files(entries):
    for entry in entries or []:
        if "file" in entry:
            yield entry["file"]
        yield from _files(entry.get("sections"))


def _strip(entries, prefix):
    out = []
    for entry in entries or []:
        entry = dict(entry)
        if "file" in entry:
            entry["file"] = entry["file"][len(prefix) :]
        if "sections" in entry:
            entry["sections"] = _strip(entry["sections"], prefix)
        out.append(entry)
    return out


def edition_toc(toc, lang):
    """The edition's toc: its parts of the root toc, with paths relative to chapters/<lang>/.

    Raises
    ------
    ValueError
        When no part of the root toc belongs to ``lang``, or a part mixes editions.
    """
    prefix = f"chapters/{lang}/"
    parts = []
    for part in toc.get("parts") or [{"chapters": toc.get("chapters") or []}]:
        files = list(_files(part.get("chapters")))
        mine = [f for f in files if f.startswith(prefix)]
        if mine and len(mine) != len(files):
            raise ValueError(
                f"_toc.yml: the part {part.get('caption')!r} mixes {prefix} with "
                f"other files: {[f for f in files if not f.startswith(prefix)]}"
            )
        if mine:
            parts.append(part)
    if not parts:
        raise ValueError(f"_toc.yml: no part lists files under {prefix}")
    chapters = _strip(parts[0]["chapters"], prefix)
    first = chapters.pop(0)
    if "sections" in first:
        raise ValueError(f"_toc.yml: the edition's front page {prefix}{first['file']} has sections")
    out = {"format": toc.get("format", "jb-book"), "root": first["file"]}
    if toc.get("defaults"):
        out["defaults"] = toc["defaults"]
    if len(parts) == 1:
        out["chapters"] = chapters
    else:
        rest = []
        for part in parts[1:]:
            part = dict(part)
            part["chapters"] = _strip(part["chapters"], prefix)
            rest.append(part)
        first_part = {k: v for k, v in parts[0].items() if k not in ("chapters", "caption")}
        out["parts"] = [dict(first_part, chapters=chapters)] + rest
    return out


# --- config ------------------------------------------------------------------------------


def edition_title(title, lang):
    """ "English title · 中文標題" -> the edition's half (the whole title if there is no ' · ')."""
    halves = [t.strip() for t in str(title).split(" · ")]
    if len(halves) != len(EDITIONS):
        return str(title)
    return halves[list(EDITIONS).index(lang)]


def edition_config(config, lang, root=ROOT):
    cfg = copy.deepcopy(config)
    ed = EDITIONS[lang]
    cfg["title"] = edition_title(cfg.get("title", ""), lang)
    repo = cfg.setdefault("repository", {})
    base = str(repo.get("path_to_book") or "").strip("/")
    repo["path_to_book"] = "/".join(p for p in (base, "chapters", lang) if p)
    sphinx = cfg.setdefault("sphinx", {})
    sphinx["local_extensions"] = {
        name: str((root / path).resolve())
        for name, path in (sphinx.get("local_extensions") or {}).items()
    }
    conf = sphinx.setdefault("config", {})
    conf["language"] = ed["language"]
    conf["html_search_language"] = ed["search"]
    options = dict(conf.get("html_search_options") or {})
    if ed["search"] == "zh":
        if options.get("dict"):
            options["dict"] = str((root / options["dict"]).resolve())
        conf["html_search_options"] = options
    else:
        options.pop("dict", None)
        if options:
            conf["html_search_options"] = options
        else:
            conf.pop("html_search_options", None)
    conf.update(ed["config"])
    conf["celib_edition"] = lang
    conf["celib_editions"] = {k: v["label"] for k, v in EDITIONS.items()}
    if lang == FONT_EDITION:  # the landing page's Chinese is drawn with this edition's font
        conf["celib_font_text"] = "".join(sorted({c for c in landing_page(root) if c > "\u2e80"}))
    return cfg


def prepare_edition(lang, src, root=ROOT):
    """Write the edition's config and toc into ``src`` and link its files there."""
    config = load_yaml(root / "_config.yml")
    toc = load_yaml(root / "_toc.yml")
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    folder = root / "chapters" / lang
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name in ("_config.yml", "_toc.yml"):
            continue
        (src / path.name).symlink_to(path)
    # files the config names relative to the book's folder (sphinxcontrib-bibtex's bib files)
    bibs = config.get("bibtex_bibfiles") or []
    for rel in [bibs] if isinstance(bibs, str) else bibs:
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to((root / rel).resolve())
    cfg = edition_config(config, lang, root)
    header = "# Written by tools/build_book.py from the root _config.yml / _toc.yml; edit those.\n"
    (src / "_config.yml").write_text(
        header + yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    (src / "_toc.yml").write_text(
        header + yaml.safe_dump(edition_toc(toc, lang), allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return src


def _jupyter_book():
    exe = Path(sys.executable).with_name("jupyter-book")
    return str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book")


def build_edition(lang, out, root=ROOT, fresh=False):
    """Build one edition into ``out/html/<lang>``; (returncode, output, seconds)."""
    # not src/<lang>: "../zh/x.ipynb" in an en page must not find a file (see celib_book_ext)
    src = prepare_edition(lang, out / "src" / f"book-{lang}", root)
    work = out / "editions" / lang
    cmd = [
        _jupyter_book(),
        "build",
        str(src),
        "--builder",
        "html",
        "-W",
        "-n",
        "--keep-going",
        "--path-output",
        str(work),
    ]
    if fresh:
        cmd.append("--all")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=root, capture_output=True, text=True, encoding="utf-8", errors="replace", env=env
    )
    seconds = time.perf_counter() - start
    built = work / "_build" / "html"
    target = out / "html" / lang
    if target.exists():
        shutil.rmtree(target)
    if built.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(built, target)
    output = proc.stdout + proc.stderr
    return proc.returncode, output, seconds


# --- landing page ------------------------------------------------------------------------

LANDING_CSS = """
body { font-family: "Celib Noto Sans TC", system-ui, -apple-system, "Segoe UI", Roboto,
                    "Noto Sans", sans-serif;
       max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.6; color: #222; }
h1 { font-size: 1.7rem; line-height: 1.3; }
pre { background: #f5f5f5; padding: .6rem .8rem; white-space: pre-wrap; overflow-wrap: anywhere; }
code { font-size: .95em; }
.editions { display: flex; flex-wrap: wrap; gap: 1rem; margin: 1.5rem 0; }
.editions a { display: block; padding: .8rem 1.4rem; border: 1px solid #888; border-radius: .4rem;
              text-decoration: none; font-size: 1.2rem; }
.editions a:hover { background: #eef; }
"""

LANDING_JS = """
(function () {
  var key = "%(key)s", editions = %(editions)s, choice = null;
  function remember(lang) { try { localStorage.setItem(key, lang); } catch (e) {} }
  document.querySelectorAll("a[data-edition]").forEach(function (a) {
    a.addEventListener("click", function () { remember(a.getAttribute("data-edition")); });
  });
  var params = new URLSearchParams(location.search);
  if (params.has("choose")) return;              // index.html?choose: show the page, no redirect
  if (editions[params.get("lang")]) remember(params.get("lang"));
  try { choice = localStorage.getItem(key); } catch (e) {}
  if (!editions[choice]) {
    choice = "%(default)s";
    var prefs = navigator.languages || [navigator.language || ""];
    for (var i = 0; i < prefs.length; i++) {
      var base = String(prefs[i]).toLowerCase().split("-")[0];
      if (editions[base]) { choice = base; break; }
    }
  }
  location.replace(editions[choice]);
})();
"""


def landing_page(root=ROOT):
    """The landing page's HTML, from the root toc's front page (index.md)."""
    from markdown_it import MarkdownIt

    toc = load_yaml(root / "_toc.yml")
    config = load_yaml(root / "_config.yml")
    text = (root / f"{toc['root']}.md").read_text(encoding="utf-8")
    body = MarkdownIt("commonmark").render(text)
    # links to an edition's pages: chapters/<lang>/<page>.md|.ipynb -> <lang>/<page>.html
    pattern = r'href="chapters/(' + "|".join(EDITIONS) + r')/([^"#]*?)\.(?:md|ipynb)(#[^"]*)?"'
    body = re.sub(
        pattern, lambda m: f'href="{m[1]}/{m[2]}.html{m[3] or ""}" data-edition="{m[1]}"', body
    )
    # the paragraph holding the edition links becomes the chooser's buttons
    body = re.sub(
        r"<ul>\s*((?:<li><a [^>]*data-edition[^>]*>.*?</a></li>\s*)+)</ul>",
        lambda m: '<nav class="editions">' + re.sub(r"</?li>", "", m[1]) + "</nav>",
        body,
        count=1,
        flags=re.S,
    )
    editions = "{" + ", ".join(f'"{k}": "{k}/index.html"' for k in EDITIONS) + "}"
    script = LANDING_JS % {"key": STORAGE_KEY, "editions": editions, "default": "en"}
    title = html.escape(str(config.get("title", "")))
    return (
        '<!DOCTYPE html>\n<html lang="mul">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n"
        f'<link rel="stylesheet" href="{FONT_EDITION}/_static/celib-cjk-font.css">\n'
        f"<style>{LANDING_CSS}</style>\n</head>\n<body>\n{body}"
        f"<script>{script}</script>\n</body>\n</html>\n"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output",
        default=str(ROOT / "_build"),
        help="build folder (default: _build); the site is <output>/html",
    )
    parser.add_argument("--editions", nargs="+", default=list(EDITIONS), choices=list(EDITIONS))
    parser.add_argument("--jobs", type=int, default=2, help="editions built at the same time")
    parser.add_argument("--all", action="store_true", help="re-read every page")
    args = parser.parse_args(argv)
    out = Path(args.output).resolve()
    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = dict(
            zip(
                args.editions,
                pool.map(lambda lang: build_edition(lang, out, fresh=args.all), args.editions),
            )
        )
    (out / "html").mkdir(parents=True, exist_ok=True)
    (out / "html" / "index.html").write_text(landing_page(), encoding="utf-8")
    (out / "html" / ".nojekyll").write_text("", encoding="utf-8")
    status = 0
    for lang, (code, output, seconds) in results.items():
        warnings = [line for line in output.splitlines() if "WARNING" in line]
        print(f"=== edition {lang}: exit {code}, {len(warnings)} warning(s), {seconds:.1f} s")
        if code or warnings:
            print(output[-6000:] if not warnings else "\n".join(warnings))
            status = status or code or 1
    html_dir = out / "html"
    size = sum(p.stat().st_size for p in html_dir.rglob("*") if p.is_file())
    print(
        f"The book is in {html_dir / 'index.html'} ({size / 2**20:.1f} MiB, "
        f"{time.perf_counter() - start:.1f} s)"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
