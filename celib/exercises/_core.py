"""The machinery every chapter's checker shares: run cases, compare, report.

One policy for every exercise of the book:

- the learner's function is called with **positional** arguments, in the
  order of the signature given in the exercise's statement, so the parameter
  names are the learner's to choose;
- the returned value is validated first (a number or an array; a tuple of a
  stated length where several arrays are asked for; the expected shape), with
  a message saying what was expected;
- **precision**: float64 is asked for everywhere. A floating result narrower
  than float64 (float32, float16) is rejected with a message saying so,
  whatever its values; integers are accepted where the expected values are
  integers. Values are compared with ``|actual - expected| <= atol + rtol *
  |expected|`` (NaN matches NaN, infinities must match exactly); every failure
  message states the case's rtol and atol;
- three outcomes: the untouched stub (it raises ``NotImplementedError`` on the
  first case) is "not attempted yet", neither a pass nor a failure; a wrong
  answer is ✗ with the first failing case (its inputs, shapes and the first
  differing entries, printed with enough digits to show the difference); a
  right answer is ✓.

The checkers return a :class:`CheckResult`, truthy only on a pass, which
displays nothing in Jupyter (the report is already printed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LANGS = ("en", "zh")

MESSAGES = {
    "en": {
        "pass": "✓ {name}: all {n} cases pass.",
        "fail": "✗ {name}: case {i} of {n} ({label}) fails.",
        "not_attempted": "… {name}: not attempted yet (the stub still raises NotImplementedError; "
        "write your code in its cell and run it again).",
        "input": "  input:    {value}",
        "expected": "  expected: {value}",
        "actual": "  actual:   {value}",
        "raised": "  your function raised {error}",
        "shape": "  {what}expected shape {expected}, got shape {actual}{hint}",
        "transposed": " (the transpose?)",
        "dtype": "  {what}your function returned {actual} values; this exercise asks for float64",
        "not_array": "  {what}expected a number or an array of numbers, got {actual}",
        "none": "  {what}your function returned None: does it end with a `return`?",
        "not_tuple": "  expected a tuple of {k} ({names}), got {actual}",
        "part": "  {what} differs",
        "first_diff": "  first differing entries ({count} of {size} differ):",
        "entry": "    {index}: expected {expected}, actual {actual}",
        "tolerance": "  tolerance: |actual - expected| <= atol + rtol * |expected| with "
        "rtol = {rtol:g}, atol = {atol:g}; NaN must match NaN, infinities exactly",
        "tolerance_exact": "  tolerance: exact (rtol = 0, atol = 0)",
        "of_what": "{what}: ",
    },
    "zh": {
        "pass": "✓ {name}：全部 {n} 個測試案例通過。",
        "fail": "✗ {name}：第 {i} 個測試案例（共 {n} 個，{label}）未通過。",
        "not_attempted": "… {name}：尚未作答（練習儲存格仍會拋出 NotImplementedError；"
        "請在該儲存格寫好程式碼後再執行一次）。",
        "input": "  輸入：　{value}",
        "expected": "  預期值：{value}",
        "actual": "  實際值：{value}",
        "raised": "  你的函式拋出了 {error}",
        "shape": "  {what}預期形狀為 {expected}，實際形狀為 {actual}{hint}",
        "transposed": "（是不是轉置了？）",
        "dtype": "  {what}你的函式回傳 {actual} 的值；這個練習要求 float64",
        "not_array": "  {what}預期是一個數或由數構成的陣列，實際為 {actual}",
        "none": "  {what}你的函式回傳 None：是不是少了 `return`？",
        "not_tuple": "  預期回傳 {k} 個值的 tuple（{names}），實際為 {actual}",
        "part": "  {what} 不同",
        "first_diff": "  最先出現差異的元素（{size} 個中有 {count} 個不同）：",
        "entry": "    {index}：預期 {expected}，實際 {actual}",
        "tolerance": "  容許誤差：|actual - expected| <= atol + rtol * |expected|，"
        "rtol = {rtol:g}，atol = {atol:g}；NaN 須對應 NaN，無限大須完全相同",
        "tolerance_exact": "  容許誤差：須完全相等（rtol = 0，atol = 0）",
        "of_what": "{what}：",
    },
}


@dataclass
class Case:
    """One test case: the arguments of the learner's function and a label.

    ``kwargs`` maps parameter names to values **in the order of the
    exercise's signature**: the learner's function is called with them as
    positional arguments (``run_checker``'s ``params`` can fill omitted
    defaults); the reference is called with them as keywords.
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


class CheckResult:
    """What a checker returns: truthy only when every case passed.

    ``status`` is ``'pass'``, ``'fail'`` or ``'not_attempted'``; ``passed`` is
    ``status == 'pass'``; ``report`` is the text the checker printed (or would
    have printed, with ``quiet``); ``case`` is the 1-based number of the first
    failing case, or None.

    It displays nothing in Jupyter (``_ipython_display_`` does nothing): the
    report has already been printed, so the check cell shows no ``Out[]``.
    """

    __slots__ = ("status", "report", "case")

    def __init__(self, status, report="", case=None):
        self.status, self.report, self.case = status, report, case

    @property
    def passed(self):
        return self.status == "pass"

    def __bool__(self):
        return self.passed

    def __eq__(self, other):
        if isinstance(other, bool):
            return self.passed is other
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return f"CheckResult(status={self.status!r})"

    def _ipython_display_(self):
        pass


def first_wrong_answers(more_wrong_answers):
    """``WRONG_ANSWERS`` of a chapter: the first typical mistake listed for each exercise.

    ``more_wrong_answers`` maps a learner function's name to {description: source}; the
    Run All test pastes the first source of each into the stub and requires ✗.
    """
    return {name: next(iter(variants.values())) for name, variants in more_wrong_answers.items()}


def exercise_title(number, fn_name):
    """The one title style of every checker: 'Exercise 2.1, my_gradient' / '練習 2.1，my_gradient'."""
    return {"en": f"Exercise {number}, {fn_name}", "zh": f"練習 {number}，{fn_name}"}


def _lang(lang):
    """``lang`` checked, or the notebook's language (``celib.book.setup_notebook``)."""
    if lang is None:
        from .. import book

        lang = book.CURRENT_LANG
    if lang not in MESSAGES:
        raise ValueError(
            f"lang must be one of {', '.join(repr(x) for x in LANGS)} "
            f"('en' English, 'zh' Traditional Chinese), got {lang!r}"
        )
    return lang


def _num(v):
    """One number with every significant digit (repr of a float64: -1.734723475976807e-17)."""
    if isinstance(v, (bool, np.bool_)):
        return repr(bool(v))
    if isinstance(v, (int, np.integer)):
        return repr(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return repr(v)


def _fmt(value):
    """An input or a result, short: small arrays in full, large ones as shape and edges."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)) and any(isinstance(v, np.ndarray) for v in value):
        inner = ", ".join(_fmt(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=8, suppress=False, threshold=12, edgeitems=2, linewidth=100):
            body = np.array2string(value, separator=", ")
        body = " ".join(body.split())
        if value.ndim == 0:
            return body
        if value.size > 12:
            return f"shape {value.shape} {value.dtype} {body}"
        return body
    if isinstance(value, (float, np.floating, int, np.integer)):
        return _num(value)
    return repr(value)


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"ndarray {value.dtype} {value.shape}"
    return f"{type(value).__name__} {_short_repr(value)}"


def _short_repr(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Mismatch(Exception):
    """The learner's result failed a check: ``lines`` say how."""

    def __init__(self, lines):
        super().__init__(lines)
        self.lines = lines


def _as_array(value, msg, what, *, exact):
    """The learner's value as an ndarray, or _Mismatch saying what was expected."""
    prefix = msg["of_what"].format(what=what) if what else ""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        try:
            value = value.detach().cpu().numpy()
        except Exception:  # bfloat16 and the like: no NumPy dtype
            raise _Mismatch([msg["dtype"].format(what=prefix, actual=str(value.dtype))]) from None
    if value is None:
        raise _Mismatch([msg["none"].format(what=prefix)])
    if isinstance(value, (dict, str, bytes, set)):
        raise _Mismatch([msg["not_array"].format(what=prefix, actual=_describe(value))])
    try:
        arr = np.asarray(value)
    except Exception:  # ragged lists and the like
        raise _Mismatch([msg["not_array"].format(what=prefix, actual=_describe(value))]) from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise _Mismatch([msg["not_array"].format(what=prefix, actual=_describe(value))])
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise _Mismatch([msg["not_array"].format(what=prefix, actual=_describe(value))])
    if np.issubdtype(arr.dtype, np.floating) and arr.dtype.itemsize < 8 and not exact:
        raise _Mismatch([msg["dtype"].format(what=prefix, actual=str(arr.dtype))])
    return arr


def _compare(actual, expected, case, msg, what):
    """None when ``actual`` matches ``expected`` (both ndarrays), else the report lines."""
    prefix = msg["of_what"].format(what=what) if what else ""
    if actual.shape != expected.shape:
        hint = (
            msg["transposed"]
            if actual.ndim == 2
            and actual.shape == expected.shape[::-1]
            and actual.shape != expected.shape
            else ""
        )
        return [
            msg["shape"].format(
                what=prefix, expected=expected.shape, actual=actual.shape, hint=hint
            )
        ]
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        both_nan = np.isnan(a) & np.isnan(e)
        same_inf = np.isinf(a) & np.isinf(e) & (a == e)
        close = np.abs(a - e) <= case.atol + case.rtol * np.abs(e)
    ok = both_nan | same_inf | (close & np.isfinite(a) & np.isfinite(e))
    if ok.all():
        return None
    bad = np.argwhere(~ok) if a.ndim else [()]
    lines = []
    if what:
        lines.append(msg["part"].format(what=what))
    if a.size > 1:
        lines.append(msg["first_diff"].format(count=int((~ok).sum()), size=a.size))
        for idx in bad[:3]:
            idx = tuple(int(i) for i in idx)
            label = "[" + ", ".join(str(i) for i in idx) + "]"
            lines.append(
                msg["entry"].format(index=label, expected=_num(e[idx]), actual=_num(a[idx]))
            )
    if a.size <= 12:
        lines.append(msg["expected"].format(value=_fmt(e if e.ndim else float(e))))
        lines.append(msg["actual"].format(value=_fmt(a if a.ndim else float(a))))
    else:
        lines.append(msg["expected"].format(value=f"shape {e.shape}"))
        lines.append(msg["actual"].format(value=f"shape {a.shape}"))
    if case.rtol == 0 and case.atol == 0:
        lines.append(msg["tolerance_exact"])
    else:
        lines.append(msg["tolerance"].format(rtol=case.rtol, atol=case.atol))
    return lines


def _check_one(actual_raw, expected_raw, case, msg, outputs, exact):
    """Validate and compare one case; None on a match, else the report lines."""
    if outputs is None:
        expected = np.asarray(expected_raw)
        actual = _as_array(actual_raw, msg, "", exact=exact)
        return _compare(actual, expected, case, msg, "")
    names = tuple(outputs)
    if actual_raw is None:
        raise _Mismatch([msg["none"].format(what="")])
    if (
        hasattr(actual_raw, "detach")
        or isinstance(actual_raw, (np.ndarray, dict, str))
        or not hasattr(actual_raw, "__len__")
        or len(actual_raw) != len(names)
    ):
        raise _Mismatch(
            [
                msg["not_tuple"].format(
                    k=len(names), names=", ".join(names), actual=_describe(actual_raw)
                )
            ]
        )
    for part, ref, what in zip(actual_raw, expected_raw, names):
        lines = _compare(_as_array(part, msg, what, exact=exact), np.asarray(ref), case, msg, what)
        if lines is not None:
            return lines
    return None


def run_checker(
    name,
    learner_fn,
    reference_fn,
    cases,
    *,
    lang=None,
    quiet=False,
    params=None,
    outputs=None,
    exact=False,
):
    """Run ``learner_fn`` and ``reference_fn`` on each case and compare.

    Parameters
    ----------
    name : dict or str
        The exercise's title, {'en': ..., 'zh': ...} (see :func:`exercise_title`)
        or one string.
    learner_fn : callable
        The learner's function, called with **positional** arguments: the
        values of ``case.kwargs`` in order, or, with ``params``, one per entry
        of ``params`` (each gets its own copies of arrays).
    reference_fn : callable
        Called with ``**case.kwargs``; returns what the learner should return
        (a tuple of the same length where ``outputs`` is given).
    cases : list of Case
    lang : {'en', 'zh'}, optional
        Defaults to the language set by ``setup_notebook``.
    quiet : bool
        Do not print; only return the result.
    params : sequence of str or (str, default), optional
        The exercise's signature, in order: a case that omits a parameter
        passes its default. Default: the order of each case's ``kwargs``.
    outputs : sequence of str, optional
        Names of the parts of a tuple result, e.g. ``("dW", "db")``: the
        learner must return a tuple (or list) of that length, each part is
        compared on its own and a failure names the part.
    exact : bool
        Integer-valued results: any numeric dtype is accepted (no float64
        requirement); give cases rtol = atol = 0.

    Returns
    -------
    CheckResult
        Truthy only when every case matches within its rtol and atol (NaN
        matching NaN, infinities matching exactly, shapes equal, float64
        where a float is returned). ``status`` is 'not_attempted' when the
        function raised NotImplementedError on the first case.

    Raises
    ------
    ValueError
        If ``lang`` is neither 'en' nor 'zh'.
    """
    lang = _lang(lang)
    msg = MESSAGES[lang]
    title = name.get(lang, name.get("en")) if isinstance(name, dict) else name
    n = len(cases)
    report = []

    def emit(text):
        report.append(text)
        if not quiet:
            print(text)

    for i, case in enumerate(cases, start=1):
        expected = reference_fn(**_copy(case.kwargs))
        args = _arguments(case.kwargs, params)
        lines = None
        try:
            actual = learner_fn(*args)
        except NotImplementedError:
            if i == 1:
                emit(msg["not_attempted"].format(name=title))
                return CheckResult("not_attempted", "\n".join(report))
            lines = [msg["raised"].format(error="NotImplementedError")]
        except Exception as exc:  # the learner's bug, reported, not raised
            lines = [msg["raised"].format(error=f"{type(exc).__name__}: {exc}")]
        else:
            try:
                lines = _check_one(actual, expected, case, msg, outputs, exact)
            except _Mismatch as mismatch:
                lines = mismatch.lines
        if lines is not None:
            emit(msg["fail"].format(name=title, i=i, n=n, label=case.label_in(lang)))
            emit(msg["input"].format(value=_fmt(case.kwargs)))
            for line in lines:
                emit(line)
            return CheckResult("fail", "\n".join(report), case=i)
    emit(msg["pass"].format(name=title, n=n))
    return CheckResult("pass", "\n".join(report))


def _arguments(kwargs, params):
    if params is None:
        return [_copy(v) for v in kwargs.values()]
    args = []
    for p in params:
        pname, default = (p, None) if isinstance(p, str) else p
        args.append(_copy(kwargs.get(pname, default)))
    return args
