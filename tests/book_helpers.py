"""Helpers shared by the book's tests (parity, conventions, build, browser).

Not a test module; imported as ``book_helpers`` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
LANGS = ("en", "zh")
SOURCE_SUFFIXES = (".ipynb", ".md")


def read_toc():
    """The documents of _toc.yml.

    Returns
    -------
    dict
        ``all``: every document in order (the root first); ``en`` / ``zh``: the names under
        ``chapters/<lang>/`` in order, without folder or suffix.
    """
    import yaml

    data = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = {"all": [data["root"]], "en": [], "zh": []}

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files["all"].append(entry["file"])
                for lang in LANGS:
                    prefix = f"chapters/{lang}/"
                    if entry["file"].startswith(prefix):
                        files[lang].append(entry["file"][len(prefix) :])
            walk(entry.get("sections"))

    for part in data.get("parts", []):
        walk(part.get("chapters"))
    walk(data.get("chapters"))
    return files


def source_file(lang, name):
    """The chapter's source file (.ipynb or .md) in one language, or None."""
    for suffix in SOURCE_SUFFIXES:
        path = CHAPTERS / lang / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def chapter_names():
    """Every chapter name, in the order of the toc, then any file not in the toc."""
    toc = read_toc()
    names = []
    for name in toc["en"] + toc["zh"]:
        if name not in names:
            names.append(name)
    for lang in LANGS:
        folder = CHAPTERS / lang
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix in SOURCE_SUFFIXES and path.stem not in names:
                    names.append(path.stem)
    return names


def notebooks():
    """Every chapter notebook of both languages (sorted), checkpoints left out."""
    found = []
    for lang in LANGS:
        folder = CHAPTERS / lang
        if folder.is_dir():
            found += sorted(
                p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
            )
    return found


def load_notebook(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def source(cell):
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


def markdown_texts(lang, skip=()):
    """(label, text) for each markdown cell of an edition's notebooks and each of its .md
    pages (except the file names in ``skip``)."""
    folder = ROOT / "chapters" / lang
    for path in sorted(folder.glob("*.ipynb")):
        for i, cell in enumerate(load_notebook(path)["cells"], start=1):
            if cell["cell_type"] == "markdown":
                yield f"{path.relative_to(ROOT)} (cell {i})", source(cell)
    for path in sorted(folder.glob("*.md")):
        if path.name not in skip:
            yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def output_text(output):
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else text


_FENCE = re.compile(
    r"^(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=fence)\s*$", re.M | re.S
)


def display_math(markdown):
    """Display equations of a markdown text, in order: ``$$...$$`` blocks and ``{math}``
    directives (backtick or colon fences). Labels and whitespace are normalised away, since
    labels must differ between the editions (they are global to the book)."""
    found = []
    pieces = []  # markdown with non-math code blocks removed, math directives kept in place
    last = 0
    for m in _FENCE.finditer(markdown):
        pieces.append(markdown[last : m.start()])
        last = m.end()
        if m.group("info").strip().startswith("{math}"):
            body = "\n".join(
                line
                for line in m.group("body").splitlines()
                if not re.match(r"^\s*:\w[\w-]*:", line)
            )
            pieces.append(f"\x00MATH{len(found)}\x00")
            found.append(body)
    pieces.append(markdown[last:])
    text = "".join(pieces)
    out = []
    for m in re.finditer(r"\$\$(.+?)\$\$|\x00MATH(\d+)\x00", text, re.S):
        out.append(m.group(1) if m.group(1) is not None else found[int(m.group(2))])
    return [_normalise_tex(t) for t in out]


def _normalise_tex(tex):
    tex = re.sub(r"\\label\{[^}]*\}", "", tex)
    return re.sub(r"\s+", " ", tex).strip()
