"""The machinery every chapter's checker shares: run cases, compare, report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MESSAGES = {
    "en": {
        "pass": "✓ {name}: all {n} cases pass.",
        "fail": "✗ {name}: case {i} of {n} ({label}) fails.",
        "input": "  input:    {value}",
        "expected": "  expected: {value}",
        "actual": "  actual:   {value}",
        "raised": "  your function raised {error}",
        "shape": "  expected shape {expected}, got shape {actual}",
    },
    "zh": {
        "pass": "✓ {name}：全部 {n} 個測試案例通過。",
        "fail": "✗ {name}：第 {i} 個測試案例（共 {n} 個，{label}）未通過。",
        "input": "  輸入：　{value}",
        "expected": "  預期值：{value}",
        "actual": "  實際值：{value}",
        "raised": "  你的函式拋出了 {error}",
        "shape": "  預期形狀為 {expected}，實際形狀為 {actual}",
    },
}


@dataclass
class Case:
    """One test case: keyword arguments for the learner's function and a label.

    ``label`` is a dict {'en': ..., 'zh': ...} or a plain string used for both.
    """

    kwargs: dict
    label: object = ""
    rtol: float = 1e-6
    atol: float = 1e-9
    extra: dict = field(default_factory=dict)

    def label_in(self, lang):
        if isinstance(self.label, dict):
            return self.label.get(lang, self.label.get("en", ""))
        return str(self.label)


def _lang(lang):
    if lang is not None:
        return lang
    from .. import book

    return book.CURRENT_LANG


def _fmt(value):
    with np.printoptions(precision=6, suppress=True, threshold=20, edgeitems=3):
        if isinstance(value, dict):
            return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
        if isinstance(value, np.ndarray):
            return np.array2string(value, separator=", ")
        return repr(value)


def run_checker(name, learner_fn, reference_fn, cases, *, lang=None, quiet=False):
    """Run ``learner_fn`` and ``reference_fn`` on each case and compare.

    Parameters
    ----------
    name : dict or str
        The exercise's name, {'en': ..., 'zh': ...} or one string.
    learner_fn, reference_fn : callable
        Called with ``**case.kwargs`` (each gets its own copies of arrays).
    cases : list of Case
    lang : {'en', 'zh'}, optional
        Defaults to the language set by ``setup_notebook``.
    quiet : bool
        Do not print; only return the result.

    Returns
    -------
    bool
        True when every case matches within the case's rtol and atol (NaN
        matching NaN, shapes equal).
    """
    lang = _lang(lang)
    msg = MESSAGES[lang]
    title = name.get(lang, name.get("en")) if isinstance(name, dict) else name
    n = len(cases)
    for i, case in enumerate(cases, start=1):
        expected = np.asarray(reference_fn(**_copy(case.kwargs)), dtype=np.float64)
        lines = None
        try:
            actual = np.asarray(learner_fn(**_copy(case.kwargs)), dtype=np.float64)
        except Exception as exc:  # the learner's bug, reported, not raised
            lines = [msg["raised"].format(error=f"{type(exc).__name__}: {exc}")]
        else:
            if actual.shape != expected.shape:
                lines = [msg["shape"].format(expected=expected.shape, actual=actual.shape)]
            elif not np.allclose(actual, expected, rtol=case.rtol, atol=case.atol, equal_nan=True):
                lines = [msg["expected"].format(value=_fmt(expected)),
                         msg["actual"].format(value=_fmt(actual))]
        if lines is not None:
            if not quiet:
                print(msg["fail"].format(name=title, i=i, n=n, label=case.label_in(lang)))
                print(msg["input"].format(value=_fmt(case.kwargs)))
                print("\n".join(lines))
            return False
    if not quiet:
        print(msg["pass"].format(name=title, n=n))
    return True


def _copy(kwargs):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
