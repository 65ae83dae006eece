"""Bad input to celib's NumPy reference, and the caller's arrays left untouched.

Each error names the offending value and where it is (CONTRIBUTING.md); torch's own
checks raise for the same inputs (RuntimeError or IndexError, with other wording).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import celib

X = np.random.default_rng(0).standard_normal((4, 5))
Y = np.array([0, 4, 2, 1])
Q = np.full((4, 5), 0.2)
FUNCTIONS = [celib.cross_entropy, celib.cross_entropy_grad]


@pytest.mark.parametrize("f", FUNCTIONS)
@pytest.mark.parametrize("bad, position", [(5, (1,)), (-1, (2,)), (7, (3,))])
def test_class_index_out_of_range_names_value_and_position(f, bad, position):
    t = Y.copy()
    t[position] = bad
    with pytest.raises(IndexError, match=rf"target {bad} at position \({position[0]},\)"):
        f(X, t)


@pytest.mark.parametrize("f", FUNCTIONS)
def test_class_index_out_of_range_in_a_map(f):
    x = np.zeros((2, 3, 4))
    t = np.zeros((2, 4), np.int64)
    t[1, 2] = 3
    with pytest.raises(IndexError, match=r"target 3 at position \(1, 2\).*3 classes"):
        f(x, t)
    f(x, np.where(t == 3, 3, t), ignore_index=3)  # the same value, ignored: fine


@pytest.mark.parametrize("f", FUNCTIONS)
def test_mismatched_target_shape_names_both_shapes(f):
    with pytest.raises(ValueError, match=re.escape("(3,)") + ".*" + re.escape("(4, 5)")):
        f(X, Y[:3])
    with pytest.raises(ValueError, match=re.escape("(4, 4)") + ".*" + re.escape("(4, 5)")):
        f(X, Q[:, :4])


@pytest.mark.parametrize("f", FUNCTIONS)
def test_mismatched_weight_shape_names_both_shapes(f):
    with pytest.raises(ValueError, match=re.escape("(4,)") + ".*" + re.escape("(5,)")):
        f(X, Y, weight=np.ones(4))


@pytest.mark.parametrize(
    "reduction, g",
    [("mean", np.ones(4)), ("sum", np.ones(1)), ("none", np.ones(3)), ("none", np.array(1.0))],
)
def test_mismatched_grad_output_names_both_shapes(reduction, g):
    expected = "()" if reduction != "none" else "(4,)"
    with pytest.raises(ValueError, match=re.escape(str(g.shape)) + ".*" + re.escape(expected)):
        celib.cross_entropy_grad(X, Y, reduction=reduction, grad_output=g)


@pytest.mark.parametrize("f", FUNCTIONS)
def test_non_integer_class_targets(f):
    with pytest.raises(TypeError, match="float64"):
        f(X, Y.astype(np.float64))
    with pytest.raises(TypeError, match="bool"):
        f(X, Y > 1)
    with pytest.raises(TypeError, match="int64"):  # logits' shape: probabilities
        f(X, np.zeros((4, 5), np.int64))


@pytest.mark.parametrize("f", FUNCTIONS + [celib.softmax, celib.log_softmax, celib.logsumexp])
def test_non_float_logits(f):
    args = (np.array([[1, 2], [3, 4]]),) + ((np.array([0, 1]),) if f in FUNCTIONS else ())
    with pytest.raises(TypeError, match="int64"):
        f(*args)


@pytest.mark.parametrize("f", FUNCTIONS)
def test_unknown_reduction(f):
    with pytest.raises(ValueError, match="'avg'"):
        f(X, Y, reduction="avg")


@pytest.mark.parametrize("f", FUNCTIONS)
@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan"), float("inf")])
def test_label_smoothing_outside_zero_one(f, eps):
    with pytest.raises(ValueError, match="label_smoothing"):
        f(X, Y, label_smoothing=eps)
    with pytest.raises(ValueError, match="label_smoothing"):
        f(X, Q, label_smoothing=eps)


@pytest.mark.parametrize("f", FUNCTIONS)
@pytest.mark.parametrize("ignore_index", [0, 3, 5, 100])
def test_probability_targets_reject_nonnegative_ignore_index(f, ignore_index):
    with pytest.raises(ValueError, match=f"ignore_index={ignore_index}"):
        f(X, Q, ignore_index=ignore_index)
    f(X, Q, ignore_index=-1)  # negative: accepted, as torch


def test_softmax_jacobian_wants_a_vector():
    with pytest.raises(ValueError, match=re.escape("(4, 5)")):
        celib.softmax_jacobian(X)


def test_numerical_grad_bad_step():
    with pytest.raises(ValueError, match="eps"):
        celib.numerical_grad(np.sum, X, eps=0.0)


# ---------------------------------------------------------------------------
# the caller's arrays are never modified
# ---------------------------------------------------------------------------


def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("kind", ["indices", "probabilities"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_inputs_are_not_modified_and_may_be_read_only(dtype, kind, reduction):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 2)).astype(dtype)
    x[0, 1, 0] = -np.inf
    t = (
        np.array([[0, 3], [-100, 2], [1, 1]])
        if kind == "indices"
        else rng.dirichlet(np.ones(4), (3, 2)).transpose(0, 2, 1).astype(dtype)
    )
    w = np.array([1.0, 0.5, 0.0, 2.0], dtype)
    g = rng.standard_normal((3, 2)).astype(dtype) if reduction == "none" else np.array(0.5, dtype)
    ignore_index = -100 if kind == "indices" else -1
    inputs = {"x": x, "t": t, "w": w, "g": g}
    saved = {k: v.copy() for k, v in inputs.items()}
    frozen = {k: _read_only(v) for k, v in inputs.items()}
    for arrays in (inputs, frozen):
        options = dict(
            weight=arrays["w"], ignore_index=ignore_index, reduction=reduction, label_smoothing=0.1
        )
        loss = celib.cross_entropy(arrays["x"], arrays["t"], **options)
        grad = celib.cross_entropy_grad(
            arrays["x"], arrays["t"], grad_output=arrays["g"], **options
        )
        assert not np.shares_memory(grad, arrays["x"])
        grad[...] = 0  # the result is the caller's to write
        for k, v in arrays.items():
            np.testing.assert_array_equal(v, saved[k], err_msg=k)
        del loss


@pytest.mark.parametrize(
    "f", [celib.softmax, celib.log_softmax, celib.logsumexp, celib.softmax_jacobian]
)
def test_softmax_family_does_not_modify_input(f):
    x = _read_only(np.array([3.0, -np.inf, 1.0, 1e30], np.float32))
    saved = x.copy()
    f(x)
    np.testing.assert_array_equal(x, saved)


def test_numerical_grad_does_not_modify_input():
    x = _read_only(X)
    celib.numerical_grad(lambda z: celib.cross_entropy(z, Y), x)
    np.testing.assert_array_equal(x, X)
