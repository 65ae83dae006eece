"""Each chapter notebook follows CONTRIBUTING.md: the first three cells, stored outputs of a
clean top-to-bottom run, no warnings stored, Taiwan usage in the Chinese prose, and the
five-cell layout of every exercise (found by its cell tags).

The Colab cell is compared with the one written in CONTRIBUTING.md itself (one per edition),
so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import unicodedata

import pytest
from book_helpers import ROOT, load_notebook, notebooks, output_text, source, tags

NOTEBOOKS = notebooks()
PARAMS = [pytest.param(p, id=p.relative_to(ROOT / "chapters").as_posix()) for p in NOTEBOOKS] or [
    pytest.param(
        None, marks=pytest.mark.skip(reason="no chapter notebook in chapters/en or chapters/zh yet")
    )
]

# Characters that exist only in Simplified Chinese (the pre-stop hook's list, less 入, which
# is the same in both scripts: 輸入).
SIMPLIFIED = set(
    "损数传计络层权类标签据实现动态习题练码图为这个们时对与样过还没说应该问发开关"
    "机会从两义种点边间长么读写输"
)
# Mainland terms written in Traditional characters (../shared/zh-style.md, right column).
MAINLAND_TERMS = ["概率", "默認", "內存", "顯存", "鏈式法則", "歸一化", "接口", "代碼"]


def _colab_cell_from_contributing(lang):
    """The Colab cell of CONTRIBUTING.md: its first ```python block under "Cell 2" is the
    English cell, the second the Chinese one."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = re.search(r"- Cell 2 .*?(?=\n- Cell 3)", text, re.S)
    assert section, "CONTRIBUTING.md no longer describes Cell 2 (the Colab cell)"
    blocks = re.findall(r"```python\n(.*?)\n\s*```", section.group(0), re.S)
    assert len(blocks) == 2, (
        "CONTRIBUTING.md should show the Colab cell (Cell 2) twice, "
        "English then Chinese, each in a ```python block"
    )
    return textwrap.dedent(blocks[{"en": 0, "zh": 1}[lang]]).strip()


def _is_glossary(path):
    return "gloss" in path.stem.lower()


def _lang(path):
    return path.parent.name


@pytest.mark.parametrize("path", PARAMS)
def test_first_three_cells(path):
    nb = load_notebook(path)
    cells = nb["cells"]
    assert len(cells) >= 3, f"{path.name}: fewer than three cells"
    lang, other = _lang(path), {"en": "zh", "zh": "en"}[_lang(path)]

    title = source(cells[0]).strip().splitlines()
    assert cells[0]["cell_type"] == "markdown" and title, "cell 1 must be a markdown title"
    number = re.match(r"(\d+)_", path.name)
    if number:
        assert re.match(rf"# {int(number.group(1))}\. \S", title[0]), (
            f"cell 1 must start with '# {int(number.group(1))}. Title', not {title[0]!r}"
        )
    else:
        assert re.match(r"# \S", title[0]), f"cell 1 must start with '# Title', not {title[0]!r}"
    link = {"en": "[繁體中文版]", "zh": "[English version]"}[lang] + f"(../{other}/{path.name})"
    assert link in source(cells[0]), f"cell 1 must link the counterpart: {link}"

    colab = cells[1]
    assert colab["cell_type"] == "code" and "colab-install" in tags(colab), (
        "cell 2 must be the code cell tagged 'colab-install'"
    )
    assert "remove-cell" in tags(colab), (
        "cell 2 (the Colab cell) must also carry the tag 'remove-cell': the pages leave it out"
    )
    assert source(colab).strip() == _colab_cell_from_contributing(lang), (
        f"cell 2 must be exactly the {lang} Colab cell of CONTRIBUTING.md"
    )

    setup = source(cells[2])
    assert cells[2]["cell_type"] == "code", "cell 3 must be the set-up code cell"
    for line in (
        "import numpy as np",
        "import celib",
        "from celib.book import setup_notebook",
        f'LANG = "{lang}"',
        "setup_notebook(LANG)",
    ):
        assert line in setup.splitlines(), f"the set-up cell (cell 3) lacks the line {line!r}"


EXERCISE_TAGS = ["exercise-stub", "exercise-check", "exercise-solution", "exercise-solution-check"]
NOT_ATTEMPTED = {"en": "not attempted yet", "zh": "尚未作答"}


@pytest.mark.parametrize("path", PARAMS)
def test_exercises_follow_the_five_cell_layout(path):
    """CONTRIBUTING.md, "Exercises": statement, stub, learner check, collapsed solution under
    its own name, solution check; numbered N.1, N.2, ... in a numbered chapter."""
    import importlib

    nb = load_notebook(path)
    cells = nb["cells"]
    lang = _lang(path)
    number = re.match(r"(\d+)_", path.name)
    stubs = [i for i, c in enumerate(cells) if "exercise-stub" in tags(c)]
    any_tag = [i for i, c in enumerate(cells) if tags(c) & set(EXERCISE_TAGS)]
    if not number:
        assert not any_tag, f"{path.name}: exercise cells outside a numbered chapter"
        return
    N = int(number.group(1))
    assert stubs, f"{path.name}: a chapter ends with exercises (no cell tagged 'exercise-stub')"
    assert len(any_tag) == 4 * len(stubs), f"{path.name}: exercise-tagged cells outside a group"
    module = None
    for k, i in enumerate(stubs, start=1):
        where = f"{path.name}, exercise {N}.{k}"
        statement, stub, check, solution, sol_check = cells[i - 1 : i + 4]
        for cell, tag in zip((stub, check, solution, sol_check), EXERCISE_TAGS):
            assert cell["cell_type"] == "code" and tag in tags(cell), f"{where}: expected {tag}"
        lines = source(statement).splitlines()
        assert statement["cell_type"] == "markdown" and len(lines) > 2, where
        assert lines[0] == f"({lang}-ex-{N}-{k})=", f"{where}: the label line {lines[0]!r}"
        heading = {"en": f"### Exercise {N}.{k}: ", "zh": f"### 練習 {N}.{k}："}[lang]
        assert lines[1].startswith(heading) and len(lines[1]) > len(heading), (
            f"{where}: the heading must start with {heading!r}"
        )
        assert {"en": "**Precision:**", "zh": "**精度**："}[lang] in source(statement), (
            f"{where}: the statement must state the precision asked for"
        )
        m = re.match(r"def (my_\w+)\(", source(stub))
        assert m, f"{where}: the stub must define my_<name>(...)"
        name = m.group(1)
        assert f'raise NotImplementedError("Exercise {N}.{k}: your code here")' in source(stub), (
            where
        )
        call = f"ch{N:02d}.check_{name[3:]}({name})"
        body = [ln for ln in source(check).splitlines() if ln.strip()]
        allowed = {call, f"from celib.exercises import ch{N:02d}"}
        assert body[-1] == call and set(body) <= allowed, (
            f"{where}: the check cell must be {call!r} (after the import, in the first one)"
        )
        assert "exercise-solution" in tags(solution) and "hide-input" in tags(solution), where
        assert solution.get("metadata", {}).get("jupyter", {}).get("source_hidden") is True, (
            f"{where}: the solution cell needs metadata jupyter.source_hidden: true"
        )
        assert re.search(rf"^def {name}_solution\(", source(solution), re.M), (
            f"{where}: the solution must define {name}_solution"
        )
        assert not re.search(rf"^def {name}\(", source(solution), re.M), (
            f"{where}: the solution must not overwrite the learner's {name}"
        )
        assert source(sol_check).strip() == f"ch{N:02d}.check_{name[3:]}({name}_solution)", where
        for cell in (check, sol_check):
            assert "lang-output" in tags(cell), f"{where}: check cells are tagged lang-output"
        stored = "".join(output_text(o) for o in check.get("outputs", []))
        assert NOT_ATTEMPTED[lang] in stored, f"{where}: the stored check should say not attempted"
        stored = "".join(output_text(o) for o in sol_check.get("outputs", []))
        assert stored.startswith("✓"), f"{where}: the stored solution check should pass"
        module = module or importlib.import_module(f"celib.exercises.ch{N:02d}")
        assert name in module.WRONG_ANSWERS, f"{where}: celib.exercises.ch{N:02d}.WRONG_ANSWERS"


@pytest.mark.parametrize("path", PARAMS)
def test_executed_in_order_with_outputs_stored(path):
    nb = load_notebook(path)
    counts = [
        c.get("execution_count")
        for c in nb["cells"]
        if c["cell_type"] == "code" and source(c).strip()
    ]
    never = [i for i, n in enumerate(counts, 1) if n is None]
    assert not never, (
        f"{path.name}: code cells {never} were never executed; run "
        f".venv/bin/python tools/execute_notebooks.py {path.relative_to(ROOT)}"
    )
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts} are not 1, 2, 3, ... : re-run the notebook "
        f"top to bottom in a fresh kernel (tools/execute_notebooks.py)"
    )


@pytest.mark.parametrize("path", PARAMS)
def test_no_stderr_or_errors_stored(path):
    nb = load_notebook(path)
    bad = []
    for i, cell in enumerate(nb["cells"], 1):
        for o in cell.get("outputs", []):
            if o["output_type"] == "stream" and o.get("name") == "stderr":
                bad.append(f"cell {i} wrote to stderr: {output_text(o)[:200]!r}")
            if o["output_type"] == "error" and "raises-exception" not in tags(cell):
                bad.append(f"cell {i} raised {o.get('ename')}: {o.get('evalue')}")
    assert not bad, f"{path.name}:\n" + "\n".join(bad)


def _zh_prose(path):
    nb = load_notebook(path)
    return "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


ZH_PAGES = [p for p in NOTEBOOKS if _lang(p) == "zh" and not _is_glossary(p)]
ZH_PAGES += sorted((ROOT / "chapters" / "zh").glob("*.md"))
ZH_PARAMS = [
    pytest.param(p, id=p.relative_to(ROOT / "chapters").as_posix())
    for p in ZH_PAGES
    if not _is_glossary(p)
]


def _text(path):
    return _zh_prose(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", ZH_PARAMS)
def test_no_simplified_characters_in_zh_prose(path):
    text = _text(path)
    bad = {}
    for n, line in enumerate(text.splitlines(), 1):
        chars = sorted(set(line) & SIMPLIFIED)
        if chars:
            bad[f"line {n}"] = f"{''.join(chars)}: {line.strip()[:60]}"
    assert not bad, f"Simplified characters in {path.name} (markdown):\n" + json.dumps(
        bad, ensure_ascii=False, indent=1
    )


@pytest.mark.parametrize("path", ZH_PARAMS)
def test_taiwan_terms_in_zh_prose(path):
    text = _text(path)
    used = [t for t in MAINLAND_TERMS if t in text]
    assert not used, (
        f"{path.name}: mainland terms {used}; use the Taiwan terms of "
        f"shared/zh-style.md (only the glossary lists both)"
    )


def _is_punct(ch):
    return unicodedata.category(ch).startswith(("P", "S"))


def unclosed_bold(markdown):
    """The ``**`` runs CommonMark will not take as emphasis: a closing ``**`` right after
    punctuation and right before a letter (``**精度：**以``), or an opening one right after a
    letter and right before punctuation. They show as literal asterisks in the book."""
    bad = []
    for para in re.split(r"\n\s*\n", markdown):
        para = re.sub(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$", "x", para, flags=re.S)
        for k, m in enumerate(re.finditer(r"\*\*", para)):
            before = para[m.start() - 1] if m.start() else " "
            after = para[m.end()] if m.end() < len(para) else " "
            if k % 2 == 0:
                wrong = not before.isspace() and not _is_punct(before) and _is_punct(after)
            else:
                wrong = _is_punct(before) and not after.isspace() and not _is_punct(after)
            if wrong:
                bad.append(para[max(0, m.start() - 12) : m.end() + 12].replace("\n", " "))
    return bad


@pytest.mark.parametrize("path", ZH_PARAMS)
def test_bold_renders_in_zh_prose(path):
    bad = unclosed_bold(_text(path))
    assert not bad, (
        f"{path.name}: a `**` CommonMark will not close shows its asterisks; put full-width "
        f"punctuation outside the bold (`**精度**：以`, not `**精度：**以`):\n" + "\n".join(bad)
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("**精度**：以 float64", []),
        ("**精度：**以 float64", ["**精度：**以 float64"]),
        ("。**標籤平滑（label smoothing）**則不", ["l smoothing）**則不"]),
        ("**Precision:** work, `a**b`, $x^{**}$", []),
    ],
)
def test_unclosed_bold_detector(text, expected):
    assert unclosed_bold(text) == expected


def test_nbval_runs_kernels_in_the_notebook_folder(tmp_path):
    """A notebook reading a file beside it passes under nbval run from another folder, as it
    does under tools/execute_notebooks.py (nbval starts the kernel in the notebook's folder)."""
    import nbformat

    folder = tmp_path / "chapter"
    folder.mkdir()
    (folder / "beside.txt").write_text("found")
    cell = nbformat.v4.new_code_cell("print(open('beside.txt').read())", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="found\n")]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]
    nbformat.write(nb, folder / "probe.ipynb")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "--nbval",
            "--nbval-current-env",
            "chapter/probe.ipynb",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


# --- Numbers in the prose come from code (CONTRIBUTING.md, "Numbers in prose are glued") ---
#
# A result-like number typed into a markdown cell is checked by nothing: nbval compares code
# outputs only. A code cell glues the formatted string (celib.book.glue) and the prose shows it
# with {glue:text}`key`, which nbval then checks like any other output. Result-like means a
# decimal with three or more significant digits (0.6652, 88.72, 10.1, 0.0900) or a number in
# e-notation (1e-8, 2.5e+03, 2 \times 10^{-8}). Integers, and decimals of one or two significant
# digits (ε = 0.1, σ = 2.5, t = 0.5), are inputs or constants and may be typed. Not searched:
# display equations ($$ ... $$, identical in both editions), code spans, glue roles, link
# targets, cross-reference labels, and section or version numbers with two dots (6.2.2).

RESULT_DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+)(?![\w.]*\d)")
E_NOTATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*(?:[eE][+-]?\d+\b|\\times\s*10\^)")

# Typed numbers that are inputs or constants, with the reason they are not results.
# Keep this short: a result belongs in a glue() call.
TYPED_NUMBER_ALLOWLIST = {
    "2.13": "the torch version the measurements name (pinned in the Makefile), a constant",
    "2.718": "Euler's number e, a constant",
    "3.14": "pi, a constant",
}

_NOT_PROSE = [
    re.compile(r"\$\$.*?\$\$", re.S),  # display equations
    re.compile(r"```.*?```", re.S),  # fenced blocks other than directives
    re.compile(r"\{glue(?::\w+)?\}`[^`]*`"),  # glued values
    re.compile(r"\{(?:cite|cite:p|cite:t|ref|numref|doc|eq)\}`[^`]*`"),
    re.compile(r"``[^`]*``|`[^`\n]*`"),  # code spans
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"https?://\S+"),
    re.compile(r"^\([\w-]+\)=\s*$", re.M),  # labels
    re.compile(r"\b(?:arXiv:|doi:|DOI )\s*[\w./-]+"),
    re.compile(r"\b\d+(?:\.\d+){2,}\b"),  # section and version numbers: 6.2.2
    re.compile(
        r"(?:Exercise|Exercises|練習|Chapter|Section|section|節)\s*\d+\.\d+"
    ),  # Exercise 10.1
    re.compile(r"^#+\s*\d+\.\d+", re.M),  # numbered headings: ## 12.1 ...
    re.compile(r"\d+\.\d+\s*節"),  # 見 12.3 節 (a section number)
    re.compile(r"\bPython\s+\d+\.\d+\+?"),  # the Python version required: Python 3.11+
]
_DIRECTIVE_FENCE = re.compile(r"^(```+|:::+)\{[\w-]+\}.*$", re.M)


def _significant_digits(decimal):
    return len(decimal.replace(".", "").lstrip("0"))


def typed_result_numbers(markdown):
    """The result-like numbers typed in a markdown text, as (number, context) pairs."""
    text = _DIRECTIVE_FENCE.sub("", markdown)  # keep the body of {warning}, {note} boxes
    text = re.sub(r"^(```+|:::+)\s*$", "", text, flags=re.M)
    for pattern in _NOT_PROSE:
        text = pattern.sub(" ", text)
    found = []
    for m in RESULT_DECIMAL.finditer(text):
        number = m.group(1)
        if _significant_digits(number) >= 3 and number not in TYPED_NUMBER_ALLOWLIST:
            found.append((number, text[max(0, m.start() - 40) : m.end() + 20]))
    for m in E_NOTATION.finditer(text):
        found.append((m.group(0), text[max(0, m.start() - 40) : m.end() + 20]))
    return [(n, " ".join(ctx.split())) for n, ctx in found]


MARKDOWN_PAGES = list(NOTEBOOKS) + sorted(
    p for lang in ("en", "zh") for p in (ROOT / "chapters" / lang).glob("*.md")
)
MARKDOWN_PARAMS = [
    pytest.param(p, id=p.relative_to(ROOT / "chapters").as_posix()) for p in MARKDOWN_PAGES
]


def _markdown_cells(path):
    if path.suffix == ".md":
        return [("page", path.read_text(encoding="utf-8"))]
    nb = load_notebook(path)
    return [
        (f"cell {i}", source(c))
        for i, c in enumerate(nb["cells"], 1)
        if c["cell_type"] == "markdown"
    ]


@pytest.mark.parametrize("path", MARKDOWN_PARAMS)
def test_no_result_numbers_typed_in_prose(path):
    bad = [
        f"{where}: {number!r} in ...{context}..."
        for where, text in _markdown_cells(path)
        for number, context in typed_result_numbers(text)
    ]
    assert not bad, (
        f"{path.relative_to(ROOT)}: result-like numbers typed in markdown; compute them in a "
        f"code cell, glue('chNN-name', f'{{value:.4f}}'), and write {{glue:text}}`chNN-name` "
        f"(or add an input or constant to TYPED_NUMBER_ALLOWLIST with its reason):\n"
        + "\n".join(bad)
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("the softmax is $(0.6652, 0.2447, 0.0900)$", ["0.6652", "0.2447", "0.0900"]),
        ("overflows above about 88.72; about 1e-8 here", ["88.72", "1e-8"]),
        ("about $2 \\times 10^{-8}$", ["2 \\times 10^"]),
        ("logits (2.0, 1.0, 0.1), ε = 0.1, σ = 2.5, section 6.2.2, torch 2.13", []),
        (
            "$$\nx = 0.6652\n$$\n`atol=1e-12` {glue:text}`ch02-p0` [a](https://x.org/v1.2.3/0.125)",
            [],
        ),
        ("```{warning}\nthe value 0.6652 is typed\n```", ["0.6652"]),
    ],
)
def test_typed_number_detector(text, expected):
    assert [n for n, _ in typed_result_numbers(text)] == expected
