"""Run All, as a learner would, in every chapter of both editions that has exercises.

Exercises are found by their cell tags (CONTRIBUTING.md, the five-cell layout), so a new
chapter with exercises is covered without changes here. For each notebook one fresh kernel
runs the set-up cell, then, exercise by exercise, the learner's check cell after three
versions of the learner's cell:

(c) the stub untouched            -> "not attempted yet" (neither ✓ nor ✗);
(a) a typical wrong answer, from ``celib.exercises.chNN.WRONG_ANSWERS`` -> ✗, never ✓;
(b) the solution pasted in, renamed to the learner's name -> ✓;

then the solution cell and its own check cell, as stored (-> ✓). Only the set-up cell and the
exercise cells run (not the chapter's other cells), all notebooks in one kernel whose
namespace is reset (``%reset -f``) before each, which keeps this fast; every exercise's
solution and wrong answer must therefore need nothing but the set-up cell (np, celib, LANG)
and the exercise section's earlier cells.
"""

from __future__ import annotations

import importlib
import re

import nbformat
import pytest
from book_helpers import ROOT
from nbclient import NotebookClient

NOT_ATTEMPTED = {"en": "not attempted yet", "zh": "尚未作答"}
TAGS = ("exercise-stub", "exercise-check", "exercise-solution", "exercise-solution-check")


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def _has_exercises(path):
    nb = nbformat.read(path, as_version=4)
    return any("exercise-stub" in _tags(c) for c in nb.cells)


NOTEBOOKS = sorted(
    p
    for lang in ("en", "zh")
    for p in (ROOT / "chapters" / lang).glob("*.ipynb")
    if _has_exercises(p)
)


def exercises(nb):
    """[(name, stub, check, solution, solution_check)] in order, by the cells' tags."""
    found = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        if "exercise-stub" not in _tags(cell):
            continue
        group = cells[i : i + 4]
        assert [t for c, t in zip(group, TAGS) if t in _tags(c)] == list(TAGS), (
            f"cell {i}: the stub is not followed by check, solution and solution check"
        )
        name = re.match(r"def (\w+)\(", cell.source).group(1)
        found.append((name, *group))
    return found


def setup_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code" and "setup_notebook(" in c.source)


def _module(nb):
    for cell in nb.cells:
        if "exercise-check" in _tags(cell):
            m = re.search(r"from celib\.exercises import (ch\d\d)", cell.source)
            if m:
                return importlib.import_module(f"celib.exercises.{m.group(1)}")
    raise AssertionError("no check cell imports its celib.exercises module")


def _code(source, label):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["run_all"] = label
    return cell


def _cells_for(path):
    """The cells that simulate Run All in ``path``, each labelled in its metadata."""
    nb = nbformat.read(path, as_version=4)
    module = _module(nb)
    groups = exercises(nb)
    assert groups, path
    key = f"{path.parent.name}/{path.name}"
    cells = [
        _code(f"%reset -f\nimport os\nos.chdir({str(path.parent)!r})", f"{key}|reset"),
        _code(setup_cell(nb).source, f"{key}|setup"),
    ]
    for name, stub, check, solution, solution_check in groups:
        assert name in module.WRONG_ANSWERS, f"{module.__name__}.WRONG_ANSWERS lacks {name}"
        pasted = re.sub(rf"\b{name}_solution\b", name, solution.source)
        cells += [
            _code(stub.source, f"{key}|stub"),
            _code(check.source, f"{key}|{name}:untouched"),
            _code(module.WRONG_ANSWERS[name], f"{key}|wrong"),
            _code(check.source, f"{key}|{name}:wrong"),
            _code(pasted, f"{key}|pasted"),
            _code(check.source, f"{key}|{name}:pasted"),
            _code(solution.source, f"{key}|solution"),
            _code(solution_check.source, f"{key}|{name}:solution"),
        ]
    return cells


@pytest.fixture(scope="module")
def run_all():
    """Every notebook's simulated Run All, in one fresh kernel (its namespace reset before each
    notebook: ``%reset -f``), so that numpy, torch and matplotlib are imported once."""
    cells = [c for path in NOTEBOOKS for c in _cells_for(path)]
    run = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(
        run,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(ROOT)}},
    ).execute()
    results = {}
    for cell in run.cells:
        key, label = cell.metadata["run_all"].split("|")
        results.setdefault(key, []).append((label, cell.outputs))
    return results


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS])
def test_run_all(path, run_all):
    lang = path.parent.name
    key = f"{path.parent.name}/{path.name}"
    checked = 0
    for label, outputs in run_all[key]:
        errors = [o for o in outputs if o.output_type == "error"]
        assert not errors, f"{key}, {label}: {errors[0].ename}: {errors[0].evalue}"
        if ":" not in label:
            continue
        name, variant = label.split(":")
        out = "".join(
            o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stdout"
        )
        assert not [o for o in outputs if o.output_type == "execute_result"], (
            f"{key}, {name} ({variant}): the check cell shows an Out[] value"
        )
        where = f"{key}, {name}, {variant}:\n{out}"
        if variant == "untouched":
            assert NOT_ATTEMPTED[lang] in out and "✓" not in out and "✗" not in out, where
        elif variant == "wrong":
            assert "✗" in out and "✓" not in out, where
        else:
            assert out.startswith("✓") and "✗" not in out, where
        checked += 1
    assert checked >= 4 * 2, key  # at least two exercises, four checks each
