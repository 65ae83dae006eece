"""The two editions say the same thing: same chapters, code, outputs and display equations.

Only prose, comments in code, the ``LANG = "en"`` / ``LANG = "zh"`` line, the Colab cell's
``os.chdir("/content/book/chapters/<lang>")`` line and the outputs of cells tagged
``lang-output`` may differ (CONTRIBUTING.md, "Chapters"). One test per chapter,
so a failure names it; a chapter that exists in neither language is skipped, not passed.
"""

from __future__ import annotations

import io
import re
import tokenize

import pytest
from book_helpers import (
    ROOT,
    chapter_names,
    display_math,
    load_notebook,
    output_text,
    read_toc,
    source,
    source_file,
    tags,
)

CHAPTERS = chapter_names()
LANG_LINE = re.compile(r"""^(\s*)LANG\s*=\s*["'](en|zh)["']\s*$""")
# The Colab cell (cell 2) changes directory into its own edition's folder.
CHDIR_LINE = re.compile(r"""^(\s*)os\.chdir\(["']/content/book/chapters/(en|zh)["']\)\s*$""")


def test_toc_lists_the_same_chapters_in_both_languages():
    toc = read_toc()
    assert toc["en"] == toc["zh"], "the English and Chinese parts of _toc.yml differ"


def _both(name):
    en, zh = source_file("en", name), source_file("zh", name)
    if en is None and zh is None:
        pytest.skip(f"{name}: not written yet in either language")
    assert en is not None, f"chapters/zh/{zh.name} has no English counterpart chapters/en/{zh.name}"
    assert zh is not None, f"chapters/en/{en.name} has no Chinese counterpart chapters/zh/{en.name}"
    assert en.suffix == zh.suffix, f"{name}: {en.name} in English but {zh.name} in Chinese"
    return en, zh


def normalise_code(code):
    """Code without comments, trailing spaces or blank lines; the LANG line and the Colab
    cell's chdir into chapters/<lang> made neutral."""
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(code).readline)
            if t.type != tokenize.COMMENT
        ]
        code = tokenize.untokenize(tokens)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        code = "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in code.splitlines())
    lines = []
    for line in code.splitlines():
        line = LANG_LINE.sub(r"\1LANG = <lang>", line.rstrip())
        line = CHDIR_LINE.sub(r'\1os.chdir("/content/book/chapters/<lang>")', line)
        if line.strip():
            lines.append(line)
    return "\n".join(lines)


def _sanitizers():
    """The regexes of tests/nbval_sanitize.cfg, which nbval applies before comparing."""
    import configparser

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "tests" / "nbval_sanitize.cfg", encoding="utf-8")
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


SANITIZERS = _sanitizers()


def _clean(text):
    for regex, replace in SANITIZERS:
        text = regex.sub(replace, text)
    return text


def normalise_outputs(cell):
    """What nbval compares, minus images (figure labels are in the reader's language).

    As in nbval, stream outputs of the same name are merged (how the kernel splits a printed
    text into chunks depends on timing) and the sanitizers are applied.
    """
    out, streams = [], {}
    for o in cell.get("outputs", []):
        kind = o["output_type"]
        if kind == "stream":
            if o["name"] in streams:
                out[streams[o["name"]]][2] += output_text(o)
            else:
                streams[o["name"]] = len(out)
                out.append([kind, o["name"], output_text(o)])
        elif kind in ("execute_result", "display_data"):
            data = o.get("data", {})
            out.append(
                [
                    kind,
                    sorted(
                        (k, _clean("".join(v) if isinstance(v, list) else str(v)))
                        if not k.startswith("image/")
                        else (k, "<image>")
                        for k, v in data.items()
                    ),
                ]
            )
        elif kind == "error":
            out.append([kind, o.get("ename"), _clean(o.get("evalue", ""))])
    for item in out:
        if item[0] == "stream":
            item[2] = _clean(item[2])
    return out


def _code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _markdown(path):
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    nb = load_notebook(path)
    return "\n\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


def _paired_code_cells(name, what):
    """The code cells of both editions, pairwise; skip a markdown page (it has no ``what``)."""
    en, zh = _both(name)
    if en.suffix != ".ipynb":
        pytest.skip(f"{name}: a markdown page has no {what}")
    a, b = _code_cells(load_notebook(en)), _code_cells(load_notebook(zh))
    assert len(a) == len(b), f"{name}: {len(a)} code cells in English, {len(b)} in Chinese"
    return enumerate(zip(a, b), 1)


@pytest.mark.parametrize("name", CHAPTERS)
def test_same_code(name):
    for i, (x, y) in _paired_code_cells(name, "code cells"):
        assert normalise_code(source(x)) == normalise_code(source(y)), (
            f"{name}: code cell {i} differs (comments and the LANG line aside)\n"
            f"--- en\n{source(x)}\n--- zh\n{source(y)}"
        )
        assert tags(x) == tags(y), f"{name}: code cell {i} has tags {tags(x)} vs {tags(y)}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_same_outputs(name):
    for i, (x, y) in _paired_code_cells(name, "outputs"):
        if "lang-output" in tags(x) | tags(y):
            continue
        assert normalise_outputs(x) == normalise_outputs(y), (
            f"{name}: the stored outputs of code cell {i} differ (tag the cell 'lang-output' "
            f"if its output is meant to be in the reader's language)\n--- en\n"
            f"{normalise_outputs(x)}\n--- zh\n{normalise_outputs(y)}"
        )


@pytest.mark.parametrize("name", CHAPTERS)
def test_same_display_equations(name):
    en, zh = _both(name)
    a, b = display_math(_markdown(en)), display_math(_markdown(zh))
    for i, (x, y) in enumerate(zip(a, b), 1):
        assert x == y, f"{name}: display equation {i} differs\n--- en\n{x}\n--- zh\n{y}"
    assert len(a) == len(b), (
        f"{name}: {len(a)} display equations in English, {len(b)} in Chinese; the extra ones: "
        f"{(a[len(b) :] or b[len(a) :])[:3]}"
    )
