"""The key claims of chapters 5 and 6, checked outside the notebooks.

If a NumPy or PyTorch upgrade changes one of them, this file fails with the
claim's name, before a reader finds a chapter that no longer matches its output.
"""

import math

import numpy as np
import pytest

import celib
from celib.gradient_check import compare, numerical_grad, relative_error

torch = pytest.importorskip("torch")
F = torch.nn.functional


# --- chapter 5 ----------------------------------------------------------------


def test_float32_exp_overflows_just_above_log_of_max():
    threshold = np.log(np.finfo(np.float32).max)
    assert threshold == pytest.approx(88.7228, abs=1e-4)
    with np.errstate(over="ignore"):
        assert np.isfinite(np.exp(np.float32(88.72)))
        assert np.isinf(np.exp(np.float32(88.73)))


def test_float16_and_bfloat16_thresholds():
    assert math.log(torch.finfo(torch.float16).max) == pytest.approx(11.0899, abs=1e-4)
    assert math.log(torch.finfo(torch.bfloat16).max) == pytest.approx(88.7189, abs=1e-4)


def test_naive_softmax_overflows_and_underflows_celib_does_not():
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for row in ([98.0, 99.0, 100.0], [-202.0, -201.0, -200.0]):
            x = np.array(row, dtype=np.float32)
            e = np.exp(x)
            assert np.all(np.isnan(e / e.sum()))
            np.testing.assert_allclose(celib.softmax(x), celib.softmax(x - x.max()), rtol=1e-6)


@pytest.mark.parametrize("s", [1e4, 1e8, float(np.finfo(np.float32).max)])
def test_celib_is_stable_at_huge_logits(s):
    x = np.array([[s, 0.0, -s]], dtype=np.float32)
    assert celib.logsumexp(x)[0] == np.float32(s)
    assert celib.cross_entropy(x, np.array([1])) == np.float32(s)
    assert np.all(np.isfinite(celib.cross_entropy_grad(x, np.array([1]))))


def test_log_of_softmax_is_minus_inf_where_log_softmax_is_finite():
    x = np.array([[0.0, -120.0, -60.0]], dtype=np.float32)
    with np.errstate(divide="ignore"):
        assert np.isneginf(np.log(celib.softmax(x))[0, 1])
    assert celib.log_softmax(x)[0, 1] == -120.0


def test_masked_classes_in_torch_and_celib():
    inf = np.inf
    x = np.array([[0.0, 1.0, -inf]])
    # target on the masked class: infinite loss, finite gradient
    xt = torch.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, torch.tensor([2]))
    loss.backward()
    assert math.isinf(loss.item()) and torch.isfinite(xt.grad).all()
    assert np.isinf(celib.cross_entropy(x, np.array([2])))
    assert np.all(np.isfinite(celib.cross_entropy_grad(x, np.array([2]))))
    # every class masked: NaN
    xt = torch.full((1, 3), -math.inf, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(xt, torch.tensor([0]))
    loss.backward()
    assert math.isnan(loss.item()) and torch.isnan(xt.grad).all()
    # 0 * -inf: torch gives NaN for a zero soft target on a masked class; celib does not
    q = np.array([[0.5, 0.5, 0.0]])
    assert math.isnan(F.cross_entropy(torch.tensor(x), torch.tensor(q)).item())
    assert np.isfinite(celib.cross_entropy(x, q))


def test_torch_returns_the_loss_in_the_input_dtype():
    for dtype in (torch.float16, torch.bfloat16):
        x = torch.randn(4, 5, dtype=dtype, requires_grad=True)
        loss = F.cross_entropy(x, torch.tensor([0, 1, 2, 3]))
        loss.backward()
        assert loss.dtype == dtype and x.grad.dtype == dtype


def test_large_float16_batches_overflow_in_torch():
    rng = np.random.default_rng(1)
    for N, expect in [(30_000, "inf"), (70_000, "nan")]:
        x = torch.from_numpy(rng.standard_normal((N, 10))).half()
        y = torch.from_numpy(rng.integers(0, 10, N))
        mean16 = F.cross_entropy(x, y).item()
        assert math.isinf(mean16) if expect == "inf" else math.isnan(mean16), (N, mean16)
        assert math.isinf(F.cross_entropy(x, y, reduction="sum").item())
        assert math.isfinite(F.cross_entropy(x.float(), y).item())
        assert np.isfinite(celib.cross_entropy(x.numpy(), y.numpy()))


def test_sequential_float16_sum_stalls():
    losses = np.full(100_000, 2.7, dtype=np.float16)
    assert np.cumsum(losses)[-1] < 20_000
    assert np.sum(losses, dtype=np.float32) == pytest.approx(270_000, rel=1e-3)


def test_low_precision_errors_are_a_few_unit_roundoffs():
    rng = np.random.default_rng(0)
    x64 = 8.0 * rng.standard_normal((32, 1000))
    y = rng.integers(0, 1000, 32)
    for dtype, u in [(torch.float16, 2.0**-11), (torch.bfloat16, 2.0**-8)]:
        xt = torch.tensor(x64).to(dtype).requires_grad_(True)
        F.cross_entropy(xt, torch.from_numpy(y)).backward()
        ref = celib.cross_entropy_grad(xt.detach().double().numpy(), y)
        assert relative_error(xt.grad.double().numpy(), ref) < 20 * u


@pytest.mark.parametrize("margin", [20.0, 30.0, 60.0])
def test_confident_row_true_class_gradient(margin):
    """torch float32 cancels p_y - 1 to exactly 0; celib's float32 keeps float32 accuracy."""
    C = 10
    x = np.zeros((1, C), dtype=np.float32)
    x[0, 0] = margin
    exact = -(C - 1) / (np.exp(margin) + C - 1)
    xt = torch.tensor(x, requires_grad=True)
    F.cross_entropy(xt, torch.tensor([0])).backward()
    assert xt.grad[0, 0].item() == 0.0  # torch float32 cancels to exactly 0
    ours = float(celib.cross_entropy_grad(x, np.array([0]))[0, 0])
    assert abs(ours - exact) / abs(exact) < 1e-6


def test_confident_row_subtraction_in_float64_still_cancels():
    """(e_y - S) / S in float64 loses digits as the margin grows and is 0 from about 39 on."""
    C = 10
    errors = {}
    for margin in (30.0, 40.0):
        e = np.exp(np.zeros(C) - margin)
        e[0] = 1.0
        exact = -(C - 1) / (np.exp(margin) + C - 1)
        errors[margin] = abs((e[0] - e.sum()) / e.sum() - exact) / abs(exact)
    assert 1e-5 < errors[30.0] < 1e-3 and errors[40.0] == 1.0


# --- chapter 6 ----------------------------------------------------------------


def test_optimal_central_difference_step_for_a_sample_function():
    steps = np.logspace(-14, 0, 57)
    x0 = 1.0
    err = np.array(
        [
            abs(
                numerical_grad(lambda z: np.exp(z[0]) * np.sin(z[0]), [x0], eps=h)[0]
                - np.exp(x0) * (np.sin(x0) + np.cos(x0))
            )
            for h in steps
        ]
    )
    best = steps[np.argmin(err)]
    assert 1e-7 <= best <= 1e-4
    assert err.min() < 1e-9


def test_celib_gradient_passes_finite_differences_with_every_option():
    rng = np.random.default_rng(0)
    x = 2.0 * rng.standard_normal((5, 4))
    y = np.array([0, 3, 1, -100, 2])
    w = np.array([1.0, 2.0, 0.5, 3.0])
    for kw in [dict(), dict(reduction="sum"), dict(weight=w), dict(label_smoothing=0.1, weight=w)]:
        err = relative_error(
            celib.cross_entropy_grad(x, y, **kw),
            numerical_grad(lambda z, kw=kw: celib.cross_entropy(z, y, **kw), x),
        )
        assert err < 1e-7, (kw, err)


def test_torch_gradcheck_passes_on_cross_entropy():
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 1, -100, 2])
    assert torch.autograd.gradcheck(lambda z: F.cross_entropy(z, y, label_smoothing=0.1), (x,))


def test_celib_matches_torch_per_compare():
    rng = np.random.default_rng(1)
    x = 3.0 * rng.standard_normal((64, 100))
    y = rng.integers(0, 100, 64)
    xt = torch.tensor(x, requires_grad=True)
    F.cross_entropy(xt, torch.from_numpy(y), label_smoothing=0.1).backward()
    assert compare(
        celib.cross_entropy_grad(x, y, label_smoothing=0.1), xt.grad, rtol=1e-10, atol=1e-15
    )
