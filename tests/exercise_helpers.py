"""Shared by tests/test_exercises_chNN.py: run a chapter's typical wrong answers against its checkers."""

import numpy as np
import pytest

import celib


def define(source, name):
    """Execute ``source`` (a notebook cell) with np and celib in scope; return ``name`` from it."""
    namespace = {"np": np, "celib": celib}
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace[name]


def checker_for(module, learner_name):
    """``my_gradient`` -> ``module.check_gradient``."""
    assert learner_name.startswith("my_"), learner_name
    return getattr(module, "check_" + learner_name[len("my_") :])


def wrong_answer_params(module):
    """pytest params (learner name, description, source) for every typical wrong answer."""
    params = []
    for name, variants in module.MORE_WRONG_ANSWERS.items():
        for description, source in variants.items():
            params.append(pytest.param(name, description, source, id=f"{name}: {description}"))
    for name, source in module.WRONG_ANSWERS.items():
        params.append(pytest.param(name, "WRONG_ANSWERS", source, id=f"{name}: WRONG_ANSWERS"))
    return params


def assert_rejected(module, name, source, lang="en"):
    result = checker_for(module, name)(define(source, name), lang=lang, quiet=True)
    assert result.status == "fail", (name, result.report)
    assert not result
    assert "✗" in result.report and "✓" not in result.report
    return result
