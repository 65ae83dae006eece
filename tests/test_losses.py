"""celib.losses: each closed-form gradient against finite differences, each loss
against PyTorch where PyTorch has it, plus edge cases and bad input."""

import numpy as np
import pytest

import celib
from celib import losses as L
from celib.gradient_check import numerical_grad

torch = pytest.importorskip("torch")
F = torch.nn.functional

REDUCTIONS = ["mean", "sum", "none"]


def rng():
    return np.random.default_rng(0)


def fd_check(loss_fn, grad_fn, x, reduction, **kw):
    """Compare grad_fn with finite differences of the (summed, upstream-weighted) loss."""
    r = np.random.default_rng(1)
    if reduction == "none":
        shape = np.shape(loss_fn(x, reduction="none", **kw))
        g_out = r.normal(size=shape)
        analytic = grad_fn(x, reduction="none", grad_output=g_out, **kw)
        numeric = numerical_grad(lambda z: np.sum(g_out * loss_fn(z, reduction="none", **kw)), x)
    else:
        g_out = np.float64(0.7)
        analytic = grad_fn(x, reduction=reduction, grad_output=g_out, **kw)
        numeric = numerical_grad(lambda z: g_out * loss_fn(z, reduction=reduction, **kw), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------
# binary cross-entropy with logits
# ---------------------------------------------------------------------------


def bce_data(shape=(4, 3)):
    r = rng()
    x = r.normal(size=shape) * 3
    y = (r.random(shape) > 0.5).astype(np.float64)
    w = r.random(shape) + 0.1
    pw = r.random(shape[-1]) + 0.5
    return x, y, w, pw


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "use_w,use_pw", [(False, False), (True, False), (False, True), (True, True)]
)
def test_bce_matches_torch(reduction, use_w, use_pw):
    x, y, w, pw = bce_data()
    kw = dict(weight=w if use_w else None, pos_weight=pw if use_pw else None)
    ours = L.binary_cross_entropy_with_logits(x, y, reduction=reduction, **kw)
    xt = torch.tensor(x, requires_grad=True)
    tkw = {k: (None if v is None else torch.tensor(v)) for k, v in kw.items()}
    theirs = F.binary_cross_entropy_with_logits(xt, torch.tensor(y), reduction=reduction, **tkw)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    g_out = torch.ones_like(theirs) * 0.7
    theirs.backward(g_out)
    grad = L.binary_cross_entropy_with_logits_grad(
        x, y, reduction=reduction, grad_output=g_out.numpy(), **kw
    )
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_grad_finite_differences(reduction):
    x, y, w, pw = bce_data()
    y = np.where(y > 0, 0.8, 0.1)  # soft targets too
    fd_check(
        lambda z, **k: L.binary_cross_entropy_with_logits(z, y, **k),
        lambda z, **k: L.binary_cross_entropy_with_logits_grad(z, y, **k),
        x,
        reduction,
        weight=w,
        pos_weight=pw,
    )


def test_bce_is_two_class_softmax_cross_entropy():
    x, y, _, _ = bce_data((6,))
    two = np.stack([x, np.zeros_like(x)], axis=1)
    cls = np.where(y > 0, 0, 1)
    np.testing.assert_allclose(
        L.binary_cross_entropy_with_logits(x, y), celib.cross_entropy(two, cls), rtol=1e-14
    )
    g_two = celib.cross_entropy_grad(two, cls)
    np.testing.assert_allclose(
        L.binary_cross_entropy_with_logits_grad(x, y), g_two[:, 0], rtol=1e-12, atol=1e-16
    )


def test_bce_extreme_logits_are_finite_and_accurate():
    x = np.array([-1000.0, -40.0, 40.0, 1000.0])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    loss = L.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(loss, [1000.0, np.exp(-40.0), np.exp(-40.0), 1000.0], rtol=1e-12)
    grad = L.binary_cross_entropy_with_logits_grad(x, y, reduction="sum")
    # sigma(-40) = 4.2e-18 keeps its relative accuracy (1 - sigma(40) would round to 0)
    np.testing.assert_allclose(grad, [-1.0, np.exp(-40.0), -np.exp(-40.0), 1.0], rtol=1e-12)


def test_bce_float32_and_float16_keep_dtype():
    x, y, _, _ = bce_data()
    for dt in (np.float32, np.float16):
        out = L.binary_cross_entropy_with_logits(x.astype(dt), y.astype(dt))
        g = L.binary_cross_entropy_with_logits_grad(x.astype(dt), y.astype(dt))
        assert out.dtype == dt and g.dtype == dt
        np.testing.assert_allclose(out, L.binary_cross_entropy_with_logits(x, y), rtol=2e-3)


def test_bce_empty_mean_is_nan():
    e = np.zeros((0,))
    assert np.isnan(L.binary_cross_entropy_with_logits(e, e))
    assert L.binary_cross_entropy_with_logits(e, e, reduction="sum") == 0


def test_bce_does_not_modify_inputs():
    x, y, w, pw = bce_data()
    copies = [a.copy() for a in (x, y, w, pw)]
    L.binary_cross_entropy_with_logits_grad(x, y, weight=w, pos_weight=pw)
    for a, c in zip((x, y, w, pw), copies):
        np.testing.assert_array_equal(a, c)


def test_bce_bad_input():
    x, y, _, _ = bce_data()
    with pytest.raises(ValueError, match=r"target of shape \(4, 2\)"):
        L.binary_cross_entropy_with_logits(x, y[:, :2])
    with pytest.raises(TypeError, match="int64"):
        L.binary_cross_entropy_with_logits(x, y.astype(np.int64))
    with pytest.raises(TypeError, match="logits"):
        L.binary_cross_entropy_with_logits(np.ones((2, 2), int), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2,\)"):
        L.binary_cross_entropy_with_logits(x, y, pos_weight=np.ones(2))
    with pytest.raises(ValueError, match=r"weight of shape \(5,\)"):
        L.binary_cross_entropy_with_logits_grad(x, y, weight=np.ones(5))
    with pytest.raises(ValueError, match="'avg'"):
        L.binary_cross_entropy_with_logits(x, y, reduction="avg")
    with pytest.raises(ValueError, match="grad_output of shape"):
        L.binary_cross_entropy_with_logits_grad(x, y, grad_output=np.ones(3))


# ---------------------------------------------------------------------------
# focal loss
# ---------------------------------------------------------------------------


def torch_focal(x, y, gamma, alpha, reduction):
    """Softmax focal loss in torch (torchvision has only the sigmoid form)."""
    log_p = F.log_softmax(x, dim=1)
    log_pt = log_p.gather(1, y.unsqueeze(1)).squeeze(1)
    pt = log_pt.exp()
    loss = -((1 - pt) ** gamma) * log_pt
    if alpha is not None:
        loss = alpha[y] * loss
    return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[reduction]()


def focal_data(N=6, C=5):
    r = rng()
    return r.normal(size=(N, C)) * 2, r.integers(0, C, N), r.random(C) + 0.1


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("use_alpha", [False, True])
def test_focal_matches_torch(reduction, gamma, use_alpha):
    x, y, alpha = focal_data()
    a = alpha if use_alpha else None
    ours = L.focal_loss(x, y, gamma=gamma, alpha=a, reduction=reduction)
    xt = torch.tensor(x, requires_grad=True)
    theirs = torch_focal(
        xt, torch.tensor(y), gamma, None if a is None else torch.tensor(a), reduction
    )
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)
    theirs.backward(torch.ones_like(theirs))
    grad = L.focal_loss_grad(
        x,
        y,
        gamma=gamma,
        alpha=a,
        reduction=reduction,
        grad_output=None if reduction != "none" else np.ones(len(y)),
    )
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.0, 0.3, 2.0])
def test_focal_grad_finite_differences(reduction, gamma):
    x, y, alpha = focal_data()
    fd_check(
        lambda z, **k: L.focal_loss(z, y, **k),
        lambda z, **k: L.focal_loss_grad(z, y, **k),
        x,
        reduction,
        gamma=gamma,
        alpha=alpha,
    )


def test_focal_spatial_and_vector_shapes():
    r = rng()
    x = r.normal(size=(2, 4, 3))
    y = r.integers(0, 4, (2, 3))
    assert L.focal_loss(x, y, reduction="none").shape == (2, 3)
    fd_check(
        lambda z, **k: L.focal_loss(z, y, **k),
        lambda z, **k: L.focal_loss_grad(z, y, **k),
        x,
        "none",
    )
    v = r.normal(size=4)
    fd_check(
        lambda z, **k: L.focal_loss(z, np.int64(2), **k),
        lambda z, **k: L.focal_loss_grad(z, np.int64(2), **k),
        v,
        "mean",
    )


def test_focal_gamma_zero_is_cross_entropy():
    x, y, _ = focal_data()
    np.testing.assert_allclose(L.focal_loss(x, y, gamma=0), celib.cross_entropy(x, y), rtol=1e-14)
    np.testing.assert_allclose(
        L.focal_loss_grad(x, y, gamma=0), celib.cross_entropy_grad(x, y), rtol=1e-12, atol=1e-16
    )


def test_focal_gradient_is_cross_entropy_gradient_times_row_factor():
    x, y, _ = focal_data()
    g_ce = celib.cross_entropy_grad(x, y, reduction="none", grad_output=np.ones(len(y)))
    g_fl = L.focal_loss_grad(x, y, gamma=2.0, reduction="none", grad_output=np.ones(len(y)))
    ratio = g_fl / g_ce
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones_like(ratio), rtol=1e-10)
    assert np.all(ratio > 0)


def test_focal_confident_rows_are_finite_for_small_gamma():
    x = np.array([[60.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1e4, 0.0, 0.0]])
    y = np.array([0, 1, 0])
    for gamma in (0.0, 0.25, 0.5, 2.0):
        loss = L.focal_loss(x, y, gamma=gamma, reduction="none")
        grad = L.focal_loss_grad(x, y, gamma=gamma, reduction="sum")
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
        assert loss[0] >= 0 and loss[2] == pytest.approx(1e4 + np.log(2), rel=1e-12)
    # gamma = 0 at a confident row: the cross-entropy gradient, p_j = exp(-60)
    g = L.focal_loss_grad(x[:1], y[:1], gamma=0.0)
    np.testing.assert_allclose(g, [[-2 * np.exp(-60.0), np.exp(-60.0), np.exp(-60.0)]], rtol=1e-12)


def test_focal_float32_keeps_dtype():
    x, y, _ = focal_data()
    g = L.focal_loss_grad(x.astype(np.float32), y)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, L.focal_loss_grad(x, y), rtol=1e-4, atol=1e-6)


def test_focal_bad_input():
    x, y, _ = focal_data()
    with pytest.raises(ValueError, match="gamma must be finite and >= 0, got -1"):
        L.focal_loss(x, y, gamma=-1)
    with pytest.raises(TypeError, match="gamma"):
        L.focal_loss(x, y, gamma="two")
    with pytest.raises(ValueError, match="alpha must be finite and >= 0, got -0.5"):
        L.focal_loss(x, y, alpha=np.array([1, 1, -0.5, 1, 1]))
    with pytest.raises(ValueError, match=r"alpha of shape \(3,\)"):
        L.focal_loss_grad(x, y, alpha=np.ones(3))
    with pytest.raises(IndexError, match=r"target 5 at position \(2,\)"):
        L.focal_loss(x, np.array([0, 1, 5, 0, 0, 0]))
    with pytest.raises(IndexError, match="target -1"):
        L.focal_loss(x, np.array([0, 1, -1, 0, 0, 0]))
    with pytest.raises(TypeError, match="integers"):
        L.focal_loss(x, y.astype(float))
    with pytest.raises(ValueError, match=r"target of shape \(5,\)"):
        L.focal_loss(x, y[:5])
    with pytest.raises(ValueError, match="reduction"):
        L.focal_loss_grad(x, y, reduction="batchmean")


# ---------------------------------------------------------------------------
# z-loss
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_z_loss_matches_torch_and_finite_differences(reduction):
    x = rng().normal(size=(5, 7)) * 3
    ours = L.z_loss(x, coef=1e-2, reduction=reduction)
    xt = torch.tensor(x, requires_grad=True)
    per_row = 1e-2 * torch.logsumexp(xt, dim=1) ** 2
    theirs = {"mean": per_row.mean, "sum": per_row.sum, "none": lambda: per_row}[reduction]()
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12)
    theirs.backward(torch.ones_like(theirs))
    g = L.z_loss_grad(
        x, coef=1e-2, reduction=reduction, grad_output=np.ones(5) if reduction == "none" else None
    )
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-12, atol=1e-15)
    fd_check(L.z_loss, L.z_loss_grad, x, reduction, coef=1e-2)


def test_z_loss_closed_form_and_zero_at_lse_zero():
    x = rng().normal(size=(3, 4))
    lse = celib.logsumexp(x)
    np.testing.assert_allclose(
        L.z_loss_grad(x, coef=0.5, reduction="sum"), lse[:, None] * celib.softmax(x), rtol=1e-12
    )
    centred = x - lse[:, None]  # rows with lse = 0
    np.testing.assert_allclose(L.z_loss_grad(centred), 0, atol=1e-15)


def test_z_loss_large_logits_do_not_overflow():
    x = np.array([[1e4, 0.0], [-1e4, -1e4]], dtype=np.float32)
    np.testing.assert_allclose(
        L.z_loss(x, coef=1.0, reduction="none"), [1e8, (-1e4 + np.log(2)) ** 2], rtol=1e-6
    )
    assert np.all(np.isfinite(L.z_loss_grad(x, coef=1.0)))


def test_z_loss_bad_input():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="coef must be finite and >= 0, got -0.1"):
        L.z_loss(x, coef=-0.1)
    with pytest.raises(ValueError, match="nan"):
        L.z_loss_grad(x, coef=float("nan"))
    with pytest.raises(TypeError, match="logits"):
        L.z_loss(np.ones((2, 3), dtype=int))
    with pytest.raises(ValueError, match="scalar"):
        L.z_loss(np.float64(1.0))
    with pytest.raises(ValueError, match="grad_output of shape"):
        L.z_loss_grad(x, reduction="none", grad_output=np.ones(3))


# ---------------------------------------------------------------------------
# soft-capping and temperature
# ---------------------------------------------------------------------------


def test_softcap_matches_torch_autograd_and_finite_differences():
    x = rng().normal(size=(4, 6)) * 40
    g_out = rng().normal(size=x.shape)
    xt = torch.tensor(x, requires_grad=True)
    capped = 30.0 * torch.tanh(xt / 30.0)
    capped.backward(torch.tensor(g_out))
    np.testing.assert_allclose(L.softcap(x, 30.0), capped.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(
        L.softcap_grad(x, 30.0, grad_output=g_out), xt.grad.numpy(), rtol=1e-12, atol=1e-15
    )
    numeric = numerical_grad(lambda z: np.sum(g_out * L.softcap(z, 30.0)), x)
    np.testing.assert_allclose(
        L.softcap_grad(x, 30.0, grad_output=g_out), numeric, rtol=1e-6, atol=1e-8
    )


def test_softcap_bounds_and_identity_near_zero():
    x = np.array([-1e6, -30.0, 0.0, 1e-3, 30.0, 1e6])
    y = L.softcap(x, 30.0)
    assert np.all(np.abs(y) <= 30.0)
    assert y[3] == pytest.approx(1e-3, rel=1e-9)
    np.testing.assert_allclose(
        L.softcap_grad(x, 30.0), [0, 1 - np.tanh(1) ** 2, 1, 1, 1 - np.tanh(1) ** 2, 0], atol=1e-12
    )


def test_softcap_chain_rule_with_cross_entropy():
    x = rng().normal(size=(3, 5)) * 20
    y = np.array([0, 4, 2])
    cap = 10.0
    grad = celib.cross_entropy_grad(L.softcap(x, cap), y) * L.softcap_grad(x, cap)
    numeric = numerical_grad(lambda z: celib.cross_entropy(L.softcap(z, cap), y), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_temperature_scales_gradient():
    x = rng().normal(size=(3, 5))
    y = np.array([1, 0, 3])
    T = 4.0
    grad = celib.cross_entropy_grad(L.apply_temperature(x, T), y) * L.apply_temperature_grad(x, T)
    numeric = numerical_grad(lambda z: celib.cross_entropy(L.apply_temperature(z, T), y), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(grad, celib.cross_entropy_grad(x / T, y) / T, rtol=1e-14)


@pytest.mark.parametrize(
    "fn", [L.softcap, L.softcap_grad, L.apply_temperature, L.apply_temperature_grad]
)
def test_elementwise_bad_input(fn):
    x = np.ones(3)
    for bad in (0.0, -2.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive and finite"):
            fn(x, bad)
    with pytest.raises(TypeError, match="positive real number"):
        fn(x, "30")
    with pytest.raises(TypeError, match="logits"):
        fn(np.ones(3, dtype=int), 2.0)


def test_elementwise_grad_output_shape():
    with pytest.raises(ValueError, match=r"grad_output of shape \(2,\)"):
        L.softcap_grad(np.ones(3), 2.0, grad_output=np.ones(2))
    with pytest.raises(ValueError, match=r"grad_output of shape \(2,\)"):
        L.apply_temperature_grad(np.ones(3), 2.0, grad_output=np.ones(2))


def test_dtypes_preserved():
    for dt in (np.float16, np.float32, np.float64):
        x = np.linspace(-3, 3, 6, dtype=dt).reshape(2, 3)
        assert L.softcap(x, 2.0).dtype == dt
        assert L.softcap_grad(x, 2.0).dtype == dt
        assert L.apply_temperature(x, 2.0).dtype == dt
        assert L.z_loss(x).dtype == dt
        assert L.z_loss_grad(x).dtype == dt
        assert L.focal_loss(x, np.array([0, 2])).dtype == dt


# ---------------------------------------------------------------------------
# issue 11
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reduction,expected", [("mean", np.inf), ("sum", np.inf), ("none", np.full(3, np.inf))]
)
def test_z_loss_without_classes(reduction, expected):
    # C = 0 crashed with a reshape error; torch's (logsumexp**2).mean() gives inf
    x = np.zeros((3, 0))
    lse = torch.logsumexp(torch.from_numpy(x), 1)
    torch_loss = {"mean": (lse**2).mean(), "sum": (lse**2).sum(), "none": lse**2}[reduction]
    np.testing.assert_array_equal(L.z_loss(x, coef=1.0, reduction=reduction), torch_loss.numpy())
    np.testing.assert_array_equal(L.z_loss(x, coef=1.0, reduction=reduction), expected)
    assert L.z_loss_grad(x, reduction=reduction).shape == (3, 0)
    assert L.z_loss(np.zeros((0, 4)), reduction="sum") == 0


def test_deviation_bce_at_minus_infinity_with_a_positive_target():
    """torch gives NaN for BCE with logits at x = -inf, y > 0; the loss is +inf."""
    x, y = np.array([-np.inf, -np.inf]), np.array([0.5, 1.0])
    assert torch.isnan(
        F.binary_cross_entropy_with_logits(
            torch.from_numpy(x), torch.from_numpy(y), reduction="none"
        )
    ).all()
    np.testing.assert_array_equal(
        L.binary_cross_entropy_with_logits(x, y, reduction="none"), [np.inf, np.inf]
    )
