"""celib.exercises._core: the report every checker prints, and what it returns."""

import numpy as np
import pytest

import celib
from celib.exercises import Case, CheckResult, ch02, ch03, ch05, ch07, run_checker


def test_lang_other_than_en_or_zh_is_a_value_error_naming_both():
    with pytest.raises(ValueError, match="'en', 'zh'.*'fr'"):
        ch02.check_gradient(celib.cross_entropy_grad, lang="fr")


def test_result_is_truthy_only_on_a_pass_and_displays_nothing():
    ok = ch02.check_gradient(lambda a, b: celib.cross_entropy_grad(a, b), quiet=True, lang="en")
    bad = ch02.check_gradient(lambda a, b: celib.softmax(a), quiet=True, lang="en")
    assert isinstance(ok, CheckResult) and ok and ok.passed and ok.status == "pass"
    assert not bad and bad.status == "fail" and bad.case == 1
    assert ok._ipython_display_() is None  # Jupyter shows no Out[] for it
    assert ok == True and bad == False  # noqa: E712 (older notebooks compared with bools)


def test_three_outcomes_in_both_languages(capsys):
    def stub(x, y):
        raise NotImplementedError("Exercise 2.1: your code here")

    for lang, phrase in (("en", "not attempted yet"), ("zh", "尚未作答")):
        result = ch02.check_gradient(stub, lang=lang)
        out = capsys.readouterr().out
        assert result.status == "not_attempted" and not result
        assert phrase in out and "✓" not in out and "✗" not in out


def test_the_learner_is_called_positionally_so_any_parameter_names_work():
    def grads(logits_in, labels, w=None, skip=-100, how="mean"):
        return celib.cross_entropy_grad(
            logits_in, labels, weight=w, ignore_index=skip, reduction=how
        )

    assert ch03.check_batch_grad(grads, quiet=True, lang="en")


def test_a_dict_return_is_reported_as_such_not_as_a_conversion_error(capsys):
    def as_dict(X, y, W, b):
        return {"dW": W, "db": b}

    ch07.check_linear_grads(as_dict, lang="en")
    out = capsys.readouterr().out
    assert "expected a tuple of 2 (dW, db), got dict" in out
    assert "could not convert" not in out


def test_a_none_return_asks_about_the_missing_return(capsys):
    def no_return(x, y):
        celib.cross_entropy_grad(x, y)

    def no_return_tuple(X, y, W, b):
        pass

    for lang, phrase in (
        ("en", "returned None: does it end with a `return`?"),
        ("zh", "回傳 None：是不是少了 `return`？"),
    ):
        ch02.check_gradient(no_return, lang=lang)
        ch07.check_linear_grads(no_return_tuple, lang=lang)
        out = capsys.readouterr().out
        assert out.count(phrase) == 2, out


def test_the_part_that_differs_is_named_and_matrices_are_not_dumped(capsys):
    def db_wrong(X, y, W, b):
        G = celib.cross_entropy_grad(X @ W + b, y)
        return X.T @ G, 2 * G.sum(axis=0)

    ch07.check_linear_grads(db_wrong, lang="en")
    out = capsys.readouterr().out
    assert "db differs" in out and "first differing entries" in out
    assert "X=shape (6, 4) float64" in out  # the input shown by its shape and edges


def test_tiny_values_are_printed_with_every_digit_and_the_tolerance(capsys):
    ch05.check_true_class_grad(lambda x, y: celib.softmax(x)[y] - 1.0, lang="en")
    out = capsys.readouterr().out
    assert (
        "expected -1.6993417021166355e-17, actual 0.0" in out
        or "expected: -1.6993417021166355e-17" in out
    )
    assert "rtol = 1e-06, atol = 0" in out


def test_float32_is_rejected_with_a_message_naming_float64(capsys):
    ch02.check_gradient(lambda x, y: celib.cross_entropy_grad(x, y).astype(np.float32), lang="zh")
    assert "float32" in capsys.readouterr().out


def test_run_checker_keeps_its_old_call_form():
    """Case and run_checker(name, learner_fn, reference_fn, cases, lang=, quiet=) as before."""
    cases = [Case({"a": 1.0, "b": 2.0}, "one"), Case({"a": -3.0, "b": 0.5}, {"en": "two"})]
    result = run_checker(
        {"en": "sum", "zh": "和"},
        lambda a, b: a + b,
        lambda a, b: a + b,
        cases,
        lang="en",
        quiet=True,
    )
    assert result and result.status == "pass"
    assert not run_checker(
        "sum", lambda a, b: a - b, lambda a, b: a + b, cases, lang="zh", quiet=True
    )


def test_torch_results_are_accepted_in_float64_and_bfloat16_is_rejected(capsys):
    torch = pytest.importorskip("torch")
    ok = ch02.check_gradient(
        lambda x, y: torch.tensor(celib.cross_entropy_grad(x, y)), lang="en", quiet=True
    )
    assert ok
    bad = ch02.check_gradient(
        lambda x, y: torch.tensor(celib.cross_entropy_grad(x, y)).to(torch.bfloat16), lang="en"
    )
    assert bad.status == "fail" and "torch.bfloat16" in capsys.readouterr().out
