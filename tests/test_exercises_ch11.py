"""Chapter 11's checkers accept correct solutions and reject typical mistakes."""

import numpy as np
import pytest

import celib
from celib.exercises import ch11


def softmax_rows(Z):
    return celib.softmax(Z, axis=-1)


# --- exercise 1: the Hessian of one row --------------------------------------

def row_right(z, a):
    p = celib.softmax(z)
    return a.sum() * (np.diag(p) - np.outer(p, p))


def row_sign_error(z, a):
    return -row_right(z, a)


def row_missing_outer_product(z, a):
    return a.sum() * np.diag(celib.softmax(z))


def row_forgets_the_mass(z, a):
    return celib.softmax_jacobian(z)


def row_outer_with_target(z, a):
    """diag(p) - p a^T: the target where the second p belongs (not symmetric)."""
    p = celib.softmax(z)
    return a.sum() * np.diag(p) - np.outer(p, a)


def row_transposed_outer_with_target(z, a):
    p = celib.softmax(z)
    return (a.sum() * np.diag(p) - np.outer(p, a)).T


def row_naive_overflows(z, a):
    with np.errstate(over="ignore", invalid="ignore"):
        p = np.exp(z) / np.exp(z).sum()
    return a.sum() * (np.diag(p) - np.outer(p, p))


# --- exercise 2: the HVP ------------------------------------------------------

def hvp_right(Z, y, V):
    P = softmax_rows(Z)
    return (P * V - P * (P * V).sum(axis=1, keepdims=True)) / len(Z)


def hvp_sign_error(Z, y, V):
    return -hvp_right(Z, y, V)


def hvp_missing_mean(Z, y, V):
    return hvp_right(Z, y, V) * len(Z)


def hvp_missing_outer_product(Z, y, V):
    return softmax_rows(Z) * V / len(Z)


def hvp_column_sums(Z, y, V):
    """p . v summed over the batch (axis 0) instead of over the classes: 'transposed'."""
    P = softmax_rows(Z)
    return (P * V - P * (P * V).sum(axis=0, keepdims=True)) / len(Z)


def hvp_matrix_transposed(Z, y, V):
    """P V^T instead of the row-wise dot products."""
    P = softmax_rows(Z)
    return (P * V - (P @ V.T).diagonal()[None, :] * P) / len(Z) if Z.shape[0] > 1 else \
        hvp_right(Z, y, V) * 2


def hvp_gradient_instead(Z, y, V):
    return celib.cross_entropy_grad(Z, y)


# --- exercise 3: power iteration ---------------------------------------------

def power_right(matvec, v0, steps):
    v = v0 / np.linalg.norm(v0)
    for _ in range(steps):
        w = matvec(v)
        v = w / np.linalg.norm(w)
    return float(v @ matvec(v))


def power_norm_estimate(matvec, v0, steps):
    v = v0 / np.linalg.norm(v0)
    for _ in range(steps):
        w = matvec(v)
        lam = np.linalg.norm(w)
        v = w / lam
    return float(lam)


def power_not_normalised(matvec, v0, steps):
    v = v0
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for _ in range(steps):
            v = matvec(v)
        return float(v @ matvec(v) / (v @ v))


def power_quotient_not_divided(matvec, v0, steps):
    """The Rayleigh quotient of an unnormalised start: v0 . M v0 without dividing by v0 . v0."""
    v = v0
    for _ in range(steps):
        w = matvec(v)
        v = w / np.linalg.norm(w) * np.linalg.norm(v0)
    return float(v @ matvec(v))


def power_one_step(matvec, v0, steps):
    v = v0 / np.linalg.norm(v0)
    return float(v @ matvec(v))


def power_returns_vector(matvec, v0, steps):
    v = v0 / np.linalg.norm(v0)
    for _ in range(steps):
        w = matvec(v)
        v = w / np.linalg.norm(w)
    return v


def not_implemented(*args, **kwargs):
    raise NotImplementedError("Exercise 11.k: your code here")


CHECKS = [
    (ch11.check_row_hessian, row_right,
     [row_sign_error, row_missing_outer_product, row_forgets_the_mass, row_outer_with_target,
      row_transposed_outer_with_target, row_naive_overflows]),
    (ch11.check_hvp, hvp_right,
     [hvp_sign_error, hvp_missing_mean, hvp_missing_outer_product, hvp_column_sums,
      hvp_matrix_transposed, hvp_gradient_instead]),
    (ch11.check_power_iteration, power_right,
     [power_not_normalised, power_quotient_not_divided, power_one_step, power_returns_vector]),
]


@pytest.mark.parametrize("check,right,_", CHECKS)
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_accepts_a_correct_solution(check, right, _, lang, capsys):
    assert check(right, lang=lang) is True
    out = capsys.readouterr().out
    assert out.startswith("✓")
    if lang == "zh":
        assert "全部" in out


def test_accepts_the_norm_estimate_of_power_iteration(capsys):
    assert ch11.check_power_iteration(power_norm_estimate, lang="en") is True


@pytest.mark.parametrize("check,wrong", [(c, w) for c, _, ws in CHECKS for w in ws])
def test_rejects_a_typical_mistake(check, wrong, capsys):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        assert check(wrong, lang="en") is False
    out = capsys.readouterr().out
    assert out.startswith("✗")


@pytest.mark.parametrize("check", [c for c, _, _ in CHECKS])
def test_reports_an_unfinished_stub(check, capsys):
    assert check(not_implemented, lang="zh") is False
    out = capsys.readouterr().out
    assert "0x" not in out                       # no addresses in a printed input


CHECKERS = {"my_row_hessian": ch11.check_row_hessian, "my_hvp": ch11.check_hvp,
            "my_power_iteration": ch11.check_power_iteration}


@pytest.mark.parametrize("name", sorted(ch11.WRONG_ANSWERS))
def test_wrong_answers_are_rejected(name, capsys):
    namespace = {"np": np}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        exec(ch11.WRONG_ANSWERS[name], namespace)  # noqa: S102 (the learner-style wrong answer)
        assert CHECKERS[name](namespace[name], lang="en") is False
    assert capsys.readouterr().out.startswith("✗")


def test_every_checker_has_a_wrong_answer():
    assert set(ch11.WRONG_ANSWERS) == set(CHECKERS)


def test_checkers_accept_the_library_quietly(capsys):
    assert ch11.check_hvp(lambda Z, y, V: celib.cross_entropy_hvp(Z, y, V), quiet=True)
    assert ch11.check_row_hessian(     # row c of H = H e_c (H is symmetric)
        lambda z, a: celib.cross_entropy_hvp(np.tile(z, (len(z), 1)), np.tile(a, (len(z), 1)),
                                             np.eye(len(z)), reduction="none"), quiet=True)
    assert capsys.readouterr().out == ""


# --- the notebook: Run All with a typical wrong answer never shows a pass -------

def _exercise_notebook(lang, replace_stubs):
    """Chapter 11's set-up cell and exercise section, stubs optionally replaced."""
    import nbformat
    from book_helpers import ROOT

    nb = nbformat.read(ROOT / "chapters" / lang / "11_second_order.ipynb", as_version=4)
    start = next(i for i, c in enumerate(nb.cells) if "from celib.exercises import ch11" in c.source)
    cells = [nb.cells[2]] + nb.cells[start:]
    out = []
    for cell in cells:
        cell = nbformat.from_dict(dict(cell))
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if replace_stubs and "exercise-stub" in cell.metadata.get("tags", []):
                name = cell.source.split("def ", 1)[1].split("(", 1)[0]
                cell.source = ch11.WRONG_ANSWERS[name]
        out.append(cell)
    nb.cells = out
    return nb


def _check_outputs(nb, tag):
    texts = []
    for cell in nb.cells:
        if tag in cell.metadata.get("tags", []):
            texts.append("".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream"))
    return texts


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_run_all_with_wrong_answers_never_passes(lang):
    pytest.importorskip("nbclient")
    from book_helpers import ROOT
    from nbclient import NotebookClient

    nb = _exercise_notebook(lang, replace_stubs=True)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "chapters" / lang)}}).execute()
    learner = _check_outputs(nb, "exercise-check")
    solution = _check_outputs(nb, "exercise-solution-check")
    assert len(learner) == len(solution) == len(ch11.WRONG_ANSWERS)
    assert all(t.startswith("✗") and "✓" not in t for t in learner), learner
    assert all(t.startswith("✓") for t in solution), solution


def test_notebook_stubs_are_the_wrong_answers_names():
    for lang in ("en", "zh"):
        nb = _exercise_notebook(lang, replace_stubs=False)
        stubs = [c for c in nb.cells if "exercise-stub" in c.metadata.get("tags", [])]
        names = {c.source.split("def ", 1)[1].split("(", 1)[0] for c in stubs}
        assert names == set(ch11.WRONG_ANSWERS)
        assert all('raise NotImplementedError("Exercise 11.' in c.source for c in stubs)
