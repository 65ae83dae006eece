"""celib.torch_ops.cross_entropy (torch backend) against torch and against the NumPy reference."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="celib.torch_ops needs torch")
F = torch.nn.functional
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from celib import reference  # noqa: E402
from celib.torch_ops import cross_entropy  # noqa: E402

# ---------------------------------------------------------------------------
# a property space: shapes, kinds of target and every option, in float64
# ---------------------------------------------------------------------------


@st.composite
def problems(draw):
    ndim = draw(st.sampled_from([1, 2, 2, 3]))
    C = draw(st.integers(1, 6))
    if ndim == 1:
        shape = (C,)
    elif ndim == 2:
        shape = (draw(st.integers(0, 5)), C)
    else:
        shape = (draw(st.integers(1, 3)), C, draw(st.integers(1, 3)))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1.0, 5.0, 30.0]))
    logits = rng.normal(size=shape) * scale
    loss_shape = shape[:1] + shape[2:] if ndim > 1 else ()
    kind = draw(st.sampled_from(["indices", "indices", "probabilities"]))
    if kind == "indices":
        ignore_index = draw(st.sampled_from([-100, 0, C - 1, -1]))
        target = rng.integers(0, C, size=loss_shape)
        ignored = rng.random(size=loss_shape) < draw(st.sampled_from([0.0, 0.3, 1.0]))
        target = np.where(ignored, ignore_index, target)
    else:
        ignore_index = -100
        target = rng.random(size=shape)
        if draw(st.booleans()):  # a proper distribution, or any non-negative numbers
            target = target / target.sum(axis=0 if ndim == 1 else 1, keepdims=True)
    weight = None
    if draw(st.booleans()):
        weight = rng.random(C) * 2
        if C > 1 and draw(st.booleans()):
            weight[rng.integers(0, C)] = 0.0
    return dict(
        logits=logits,
        target=target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
        label_smoothing=draw(st.sampled_from([0.0, 0.0, 0.1, 0.7, 1.0])),
        grad_output=rng.normal(size=loss_shape),
    )


def _torch_inputs(p, dtype=torch.float64):
    x = torch.tensor(p["logits"], dtype=dtype, requires_grad=True)
    t = torch.tensor(p["target"])
    if t.is_floating_point():
        t = t.to(dtype)
    w = None if p["weight"] is None else torch.tensor(p["weight"], dtype=dtype)
    return x, t, w


def _options(p):
    return dict(
        weight=None,
        ignore_index=p["ignore_index"],
        reduction=p["reduction"],
        label_smoothing=p["label_smoothing"],
    )


def _upstream(p, loss):
    g = np.asarray(p["grad_output"]) if p["reduction"] == "none" else np.asarray(1.7)
    return torch.tensor(g, dtype=loss.dtype).reshape(loss.shape)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_matches_torch_and_reference(p):
    opts = _options(p)
    x, t, w = _torch_inputs(p)
    loss = cross_entropy(x, t, **{**opts, "weight": w}, backend="torch")
    g = _upstream(p, loss)
    (grad,) = torch.autograd.grad(loss, x, g)

    x2, t2, w2 = _torch_inputs(p)
    expected = F.cross_entropy(x2, t2, **{**opts, "weight": w2})
    (expected_grad,) = torch.autograd.grad(expected, x2, g)
    assert loss.shape == expected.shape and loss.dtype == expected.dtype
    # a zero 'mean' denominator gives NaN in torch, the reference and celib alike
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10, equal_nan=True)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-10, equal_nan=True)

    np_opts = {**opts, "weight": p["weight"]}
    ref = reference.cross_entropy(p["logits"], p["target"], **np_opts)
    ref_grad = reference.cross_entropy_grad(
        p["logits"], p["target"], **np_opts, grad_output=g.numpy()
    )
    np.testing.assert_allclose(loss.detach().numpy(), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-9, atol=1e-10)


def _check_against_torch_and_reference(x, t, kw, linear=True, equal_nan=True, torch_t=None):
    """Loss and gradient of the torch backend (and linear_cross_entropy with W = I) against
    F.cross_entropy (given ``torch_t`` for the target, if set) and the reference."""
    from celib.torch_ops import linear_cross_entropy

    xg = x.clone().requires_grad_()
    loss = cross_entropy(xg, t, backend="torch", **kw)
    g = torch.randn(loss.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad(loss, xg, g)
    xt = x.clone().requires_grad_()
    expected = F.cross_entropy(xt, t if torch_t is None else torch_t, **kw)
    (expected_grad,) = torch.autograd.grad(expected, xt, g)
    assert loss.dtype == expected.dtype and loss.shape == expected.shape
    close = dict(rtol=1e-9, atol=1e-10, equal_nan=equal_nan)
    torch.testing.assert_close(loss, expected, **close)
    torch.testing.assert_close(grad, expected_grad, **close)
    np_kw = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    ref = reference.cross_entropy(x.numpy(), t.numpy(), **np_kw)
    ref_grad = reference.cross_entropy_grad(x.numpy(), t.numpy(), grad_output=g.numpy(), **np_kw)
    np.testing.assert_allclose(loss.detach().numpy(), ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-9, atol=1e-10)
    if linear and x.dim() == 2:
        lin = linear_cross_entropy(x, torch.eye(x.shape[1], dtype=x.dtype), t, chunk_size=2, **kw)
        torch.testing.assert_close(lin, expected, **close)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    C=st.sampled_from([1, 3, 6, 101, 157, 256]),
    N=st.integers(0, 6),
    seed=st.integers(0, 2**31 - 1),
    ignore_index=st.sampled_from([-100, 0, 156, 255]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    label_smoothing=st.sampled_from([0.0, 0.2]),
    weighted=st.booleans(),
)
def test_uint8_targets(C, N, seed, ignore_index, reduction, label_smoothing, weighted):
    # uint8 class indices: compared with ignore_index in int64, never wrapped
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, N)
    if ignore_index >= 0:  # (a uint8 target cannot hold -100)
        y = np.where(rng.random(N) < 0.3, ignore_index, y)
    if ((y != ignore_index) & ((y < 0) | (y >= C))).any():
        y = np.where(y == ignore_index, 0, y)  # ignore_index outside [0, C) and not used
    x = torch.tensor(rng.normal(size=(N, C)) * 3)
    kw = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    if weighted:
        kw["weight"] = torch.tensor(rng.random(C) + 0.1)
    t = torch.tensor(y.astype(np.uint8))
    # torch 2.13 takes uint8 targets, except with label smoothing (gather wants int64)
    _check_against_torch_and_reference(x, t, kw, torch_t=t.long() if label_smoothing else t)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    C=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    bad=st.sampled_from(["nan", "inf", "all -inf"]),
    kind=st.sampled_from(["weight", "probs"]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
)
def test_non_finite_rows_with_zero_effective_target(C, seed, bad, kind, reduction):
    # a row without softmax whose target carries no mass: NaN, as torch and the reference
    rng = np.random.default_rng(seed)
    N = 4
    x = rng.normal(size=(N, C))
    rows = rng.random(N) < 0.5
    rows[0] = True
    for n in np.flatnonzero(rows):
        if bad == "all -inf":
            x[n] = -np.inf
        else:
            x[n, rng.integers(0, C)] = np.nan if bad == "nan" else np.inf
    if kind == "weight":
        y = rng.integers(0, C, N)
        w = rng.random(C) + 0.1
        w[y[rows]] = 0.0  # the target classes of the bad rows: weight 0
        t, kw = torch.tensor(y), dict(weight=torch.tensor(w))
    else:
        q = rng.dirichlet(np.ones(C), N)
        q[rows] = 0.0  # no mass at all
        t, kw = torch.tensor(q), {}
    _check_against_torch_and_reference(torch.tensor(x), t, dict(kw, reduction=reduction))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.sampled_from([0.5, -3.0, np.nan, np.inf, -np.inf]), min_size=1, max_size=5),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    label_smoothing=st.sampled_from([0.0, 0.3]),
    weight=st.sampled_from([None, 2.0]),
)
def test_one_class_with_non_finite_logits(values, reduction, label_smoothing, weight):
    # C = 1: the true class's gradient is NaN for a row without softmax (not an empty sum)
    x = torch.tensor(values, dtype=torch.float64)[:, None]
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    if weight is not None:
        kw["weight"] = torch.tensor([weight], dtype=torch.float64)
    _check_against_torch_and_reference(x, torch.zeros(len(values), dtype=torch.long), kw)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offset=st.sampled_from([1e3, -1e4, 1e4, 1e5]),
    seed=st.integers(0, 2**31 - 1),
    label_smoothing=st.sampled_from([0.05, 0.5, 1.0]),
    weighted=st.booleans(),
    C=st.integers(2, 40),
)
def test_offset_logits_with_smoothing_keep_float32_precision(
    offset, seed, label_smoothing, weighted, C
):
    # the smoothing term from the shifted logits: as accurate as torch's in float32
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(16, C)) + offset, dtype=torch.float32)
    y = torch.tensor(rng.integers(0, C, 16))
    kw = dict(reduction="none", label_smoothing=label_smoothing)
    if weighted:
        kw["weight"] = torch.tensor(rng.random(C) + 0.1, dtype=torch.float32)
    truth = F.cross_entropy(
        x.double(), y, **{**kw, "weight": None if not weighted else kw["weight"].double()}
    )
    err_torch = ((F.cross_entropy(x, y, **kw).double() - truth).abs() / truth).max().item()
    err = ((cross_entropy(x, y, backend="torch", **kw).double() - truth).abs() / truth).max()
    assert err.item() <= max(4 * err_torch, 2e-6), (err.item(), err_torch)


# ---------------------------------------------------------------------------
# gradcheck in float64
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        dict(shape=(4, 5), kind="indices", weight=True, eps=0.2, reduction="mean"),
        dict(shape=(4, 5), kind="indices", weight=False, eps=0.0, reduction="none"),
        dict(shape=(2, 3, 4), kind="indices", weight=True, eps=0.1, reduction="sum"),
        dict(shape=(5,), kind="indices", weight=False, eps=0.3, reduction="mean"),
        dict(shape=(3, 4), kind="probabilities", weight=True, eps=0.1, reduction="mean"),
        dict(shape=(2, 4, 3), kind="probabilities", weight=False, eps=0.0, reduction="none"),
    ],
)
def test_gradcheck_float64(case):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(case["shape"], dtype=torch.float64, generator=gen, requires_grad=True)
    C = case["shape"][0 if len(case["shape"]) == 1 else 1]
    loss_shape = case["shape"][:1] + case["shape"][2:] if len(case["shape"]) > 1 else ()
    w = torch.rand(C, dtype=torch.float64, generator=gen) + 0.1 if case["weight"] else None
    if case["kind"] == "indices":
        t = torch.randint(0, C, loss_shape, generator=gen)
        if t.dim():
            t.view(-1)[0] = -100
        inputs = (x,)

        def f(x):
            return cross_entropy(
                x,
                t,
                weight=w,
                reduction=case["reduction"],
                label_smoothing=case["eps"],
                backend="torch",
            )
    else:
        t = torch.rand(case["shape"], dtype=torch.float64, generator=gen, requires_grad=True)
        inputs = (x, t)

        def f(x, t):
            return cross_entropy(
                x,
                t,
                weight=w,
                reduction=case["reduction"],
                label_smoothing=case["eps"],
                backend="torch",
            )

    assert torch.autograd.gradcheck(f, inputs)


# ---------------------------------------------------------------------------
# lower precision, edges, deviations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype,tol", [(torch.float32, 2e-6), (torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)]
)
def test_low_precision_against_float64_reference(dtype, tol):
    rng = np.random.default_rng(1)
    x64 = rng.normal(size=(7, 13)) * 4
    y = rng.integers(0, 13, size=7)
    y[2] = -100
    w = rng.random(13) + 0.5
    x = torch.tensor(x64, dtype=dtype).requires_grad_()
    xr = x.detach().double().numpy()  # the reference sees the rounded inputs
    for reduction in ["mean", "sum", "none"]:
        loss = cross_entropy(
            x,
            torch.tensor(y),
            weight=torch.tensor(w, dtype=dtype),
            reduction=reduction,
            label_smoothing=0.1,
            backend="torch",
        )
        assert loss.dtype == dtype
        g = torch.ones(loss.shape, dtype=dtype)
        (grad,) = torch.autograd.grad(loss, x, g)
        wr = torch.tensor(w, dtype=dtype).double().numpy()
        ref = reference.cross_entropy(xr, y, weight=wr, reduction=reduction, label_smoothing=0.1)
        ref_grad = reference.cross_entropy_grad(
            xr, y, weight=wr, reduction=reduction, label_smoothing=0.1
        )
        np.testing.assert_allclose(loss.detach().double().numpy(), ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(grad.double().numpy(), ref_grad, rtol=tol, atol=tol)


def test_minus_inf_logits_with_zero_target_give_zero_loss():
    """The reference's deliberate deviation: torch gives NaN here (0 * inf)."""
    x = torch.tensor(
        [[0.0, -np.inf, 1.0], [2.0, 0.5, -np.inf]], dtype=torch.float64, requires_grad=True
    )
    y = torch.tensor([0, 1])
    w = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
    for kw in [dict(), dict(weight=w, label_smoothing=0.2)]:
        loss = cross_entropy(x, y[:1].expand(2) * 0, reduction="none", **kw, backend="torch")
        np_kw = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        ref = reference.cross_entropy(
            x.detach().numpy(), np.array([0, 0]), reduction="none", **np_kw
        )
        np.testing.assert_allclose(loss.detach().numpy(), ref)
    # probability targets with a zero where the logit is -inf
    q = torch.tensor([[0.5, 0.0, 0.5], [1.0, 0.0, 0.0]], dtype=torch.float64)
    loss = cross_entropy(x, q, reduction="none", backend="torch")
    assert torch.isfinite(loss).all()
    np.testing.assert_allclose(
        loss.detach().numpy(),
        reference.cross_entropy(x.detach().numpy(), q.numpy(), reduction="none"),
    )
    (grad,) = torch.autograd.grad(loss.sum(), x)
    np.testing.assert_allclose(
        grad.numpy(), reference.cross_entropy_grad(x.detach().numpy(), q.numpy(), reduction="sum")
    )


def _true_class_grad64(x, y):
    """p_y - 1 = -(sum of the other classes' exp(x_c - m)) / S, in float64 without cancellation."""
    e = np.exp(x - x.max())
    return -(e.sum() - e[y]) / e.sum() if e[y] != 1 else -np.delete(e, y).sum() / e.sum()


def test_confident_row_true_class_gradient_is_accurate_in_float32():
    x64 = np.array([[30.0, 0.0, -5.0, 1.0], [0.0, 25.0, 3.0, -1.0]])
    y = np.array([0, 1])
    x = torch.tensor(x64, dtype=torch.float32, requires_grad=True)
    loss = cross_entropy(x, torch.tensor(y), reduction="sum", backend="torch")
    (grad,) = torch.autograd.grad(loss, x)
    for n in range(2):
        g, e = float(grad[n, y[n]]), _true_class_grad64(x64[n], y[n])
        assert e != 0 and g != 0
        assert abs(g - e) <= 1e-5 * abs(e), (g, e)


def test_all_ignored_and_empty():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.full((3,), -100)
    loss = cross_entropy(x, y, backend="torch")
    assert torch.isnan(loss)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.equal(grad, torch.zeros_like(grad))
    assert cross_entropy(x, y, reduction="sum", backend="torch").item() == 0.0
    empty = torch.zeros(0, 4, dtype=torch.float64)
    assert torch.isnan(cross_entropy(empty, torch.zeros(0, dtype=torch.long)))
    assert cross_entropy(empty, torch.zeros(0, dtype=torch.long), reduction="none").shape == (0,)


def test_ignored_row_of_all_minus_inf_has_zero_gradient():
    x = torch.tensor([[-np.inf, -np.inf], [0.0, 1.0]], requires_grad=True)
    loss = cross_entropy(x, torch.tensor([-100, 1]), backend="torch")
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.equal(grad[0], torch.zeros(2))
    assert torch.isfinite(grad).all()


# ---------------------------------------------------------------------------
# the caller's tensors, what is saved, errors, backends
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["indices", "probabilities"])
def test_callers_tensors_unchanged(kind):
    x = torch.randn(4, 6, 2, requires_grad=True)
    t = torch.randint(0, 6, (4, 2)) if kind == "indices" else torch.rand(4, 6, 2)
    w = torch.rand(6)
    copies = [v.detach().clone() for v in (x, t, w)]
    versions = [v._version for v in (x, t, w)]
    loss = cross_entropy(x, t, weight=w, label_smoothing=0.1, reduction="none", backend="torch")
    loss.backward(torch.randn(loss.shape))
    for v, c, ver in zip((x, t, w), copies, versions):
        assert torch.equal(v.detach(), c) and v._version == ver


def test_saves_one_lse_per_row_not_log_probabilities():
    x = torch.randn(64, 100, requires_grad=True)
    y = torch.randint(0, 100, (64,))
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        cross_entropy(x, y, backend="torch")
    big = [t for t in saved if t.numel() >= x.numel()]
    assert all(t.data_ptr() == x.data_ptr() for t in big), "saved an M x C tensor besides logits"
    assert sum(t.numel() for t in saved if t.data_ptr() != x.data_ptr()) <= 64


@pytest.mark.parametrize(
    "logits,target,kwargs",
    [
        (np.zeros((3, 4)), np.array([0, 4, 1]), {}),
        (np.zeros((3, 4)), np.array([0, -3, 1]), {}),
        (np.zeros((2, 4, 3)), np.array([[0, 1, 2], [3, 9, 0]]), {}),
        (np.zeros((3, 4)), np.array([0, 1]), {}),
        (np.zeros((3, 4)), np.array([0, 1, 2]), dict(reduction="avg")),
        (np.zeros((3, 4)), np.array([0, 1, 2]), dict(label_smoothing=1.5)),
        (np.zeros((3, 4)), np.array([0, 1, 2]), dict(weight=np.ones(3))),
        (np.zeros((3, 4)), np.ones((3, 4)), dict(ignore_index=1)),
        (np.zeros((3, 4), dtype=np.int64), np.array([0, 1, 2]), {}),
        (np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]), {}),
        (np.zeros((3, 4)), np.ones((3, 4), dtype=np.int64), {}),
        (np.zeros(()), np.array(0), {}),
    ],
)
def test_same_errors_as_reference(logits, target, kwargs):
    with pytest.raises(Exception) as ref_err:
        reference.cross_entropy(logits, target, **kwargs)
    tkw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    with pytest.raises(ref_err.type) as err:
        cross_entropy(torch.tensor(logits), torch.tensor(target), **tkw, backend="torch")
    if ref_err.type is not TypeError:  # TypeErrors name torch's dtypes, not NumPy's
        assert str(err.value) == str(ref_err.value)


def test_backend_choice():
    x, y = torch.randn(2, 3), torch.tensor([0, 2])
    torch.testing.assert_close(cross_entropy(x, y, backend="auto"), F.cross_entropy(x, y))
    with pytest.raises(ValueError, match="backend"):
        cross_entropy(x, y, backend="cuda")
    with pytest.raises(ValueError, match="inplace_backward"):
        cross_entropy(x, y, backend="torch", inplace_backward=True)


def test_import_celib_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['triton'] = None\n"
        "import celib; print(celib.cross_entropy([[1.0, 2.0]], [1]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_torch_ops_does_not_import_triton():
    code = (
        "import celib.torch_ops, sys, torch\n"
        "celib.torch_ops.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]))\n"
        "assert 'triton' not in sys.modules, 'triton imported eagerly'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_deviation_subnormal_gradient_entries_flushed_to_zero():
    """float32, a confident row (the other class 100 below the true one): torch's gradient
    there is p = exp(-100), a subnormal float32 (about 3.8e-44); celib.torch_ops flushes exp
    results below the smallest normal number (1.2e-38) to 0 for speed (rows.exp_flushed_),
    so its gradient is 0. The NumPy reference keeps the subnormals (deviation 17)."""
    x = torch.tensor([[0.0, -100.0]], requires_grad=True)
    t = torch.tensor([0])
    torch.nn.functional.cross_entropy(x, t).backward()
    torch_grad = x.grad.clone()
    x.grad = None
    cross_entropy(x, t, backend="torch").backward()
    tiny = torch.finfo(torch.float32).tiny
    assert torch.all((torch_grad[0, 1:] > 0) & (torch_grad[0, 1:] < tiny))
    assert torch.all(x.grad == 0)
    ref = reference.cross_entropy_grad(x.detach().numpy(), t.numpy())
    assert ref.dtype == np.float32
    np.testing.assert_allclose(ref[0, 1:], torch_grad[0, 1:].numpy(), rtol=0.1)  # a few ulps
    assert -tiny < ref[0, 0] < 0  # -p of the other class, subnormal too; torch rounds to 0
