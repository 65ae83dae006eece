"""The claims chapter 4 makes, checked without the notebook.

If a new PyTorch (or NumPy) changes any of them, this file fails before the
chapter's prose silently goes wrong.
"""

import numpy as np
import pytest

import celib

torch = pytest.importorskip("torch")
F = torch.nn.functional

EPS, C = 0.1, 5
W = np.array([1.0, 2.0, 0.5, 3.0, 1.5])


def torch_loss_and_grad(x, target, **options):
    xt = torch.tensor(x, requires_grad=True)
    options = {
        k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()
    }
    loss = F.cross_entropy(xt, torch.as_tensor(target), **options)
    loss.sum().backward()
    return loss.detach().numpy(), xt.grad.numpy()


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(3, C))


def test_soft_target_gradient_is_p_sum_q_minus_q_and_sums_to_zero():
    x1 = np.array([[1.0, -0.5, 2.0, 0.3]])
    q = np.array([[0.5, 0.3, 0.4, 0.0]])  # sums to 1.2
    p = celib.softmax(x1, axis=1)
    _, g = torch_loss_and_grad(x1, q, reduction="sum")
    np.testing.assert_allclose(g, p * q.sum() - q, rtol=1e-12, atol=1e-14)
    assert abs(g.sum()) < 1e-12  # still sums to zero
    assert (p - q).sum() == pytest.approx(1 - q.sum())  # the shortcut does not
    assert not np.allclose(g, p - q)
    # an unnormalised q acts as q / sum(q) with the row weighted by sum(q)
    _, g_norm = torch_loss_and_grad(x1, q / q.sum(), reduction="sum")
    np.testing.assert_allclose(g, q.sum() * g_norm, rtol=1e-12)


def test_label_smoothing_is_the_soft_target_with_eps_over_c_on_every_class(x):
    y = np.array([2, 0, 3])
    q_smooth = (1 - EPS) * np.eye(C)[y] + EPS / C
    L_i, G_i = torch_loss_and_grad(x, y, label_smoothing=EPS)
    L_p, G_p = torch_loss_and_grad(x, q_smooth)
    assert L_i == pytest.approx(L_p, rel=1e-12)
    np.testing.assert_allclose(G_i, G_p, rtol=1e-12, atol=1e-15)
    q_other = (1 - EPS) * np.eye(C)[y] + EPS / (C - 1) * (1 - np.eye(C)[y])
    assert torch_loss_and_grad(x, q_other)[0] != pytest.approx(L_i, rel=1e-6)


def test_class_index_smoothing_with_weights_divides_by_sum_of_true_weights(x):
    y = np.array([2, -100, 3])
    kept = y != -100
    ys = np.where(kept, y, 0)
    a = ((1 - EPS) * np.eye(C)[ys] * W[ys][:, None] + EPS / C * W) * kept[:, None]
    lse = celib.logsumexp(x, axis=1)
    D = W[y[kept]].sum()
    L_t, G_t = torch_loss_and_grad(x, y, weight=W, label_smoothing=EPS)
    assert L_t == pytest.approx((a * (lse[:, None] - x)).sum() / D, rel=1e-12)
    p = celib.softmax(x, axis=1)
    np.testing.assert_allclose(G_t, (p * a.sum(1, keepdims=True) - a) / D, rtol=1e-12, atol=1e-15)
    assert not np.isclose(L_t, (a * (lse[:, None] - x)).sum() / a.sum())  # not the total mass
    assert np.all(G_t[1] == 0)  # ignored row


def test_probability_targets_with_weights_divide_by_n(x):
    y = np.array([2, 0, 3])
    onehot = np.eye(C)[y]
    L_sum_i, G_sum_i = torch_loss_and_grad(x, y, weight=W, label_smoothing=EPS, reduction="sum")
    L_sum_p, G_sum_p = torch_loss_and_grad(
        x, onehot, weight=W, label_smoothing=EPS, reduction="sum"
    )
    assert L_sum_i == pytest.approx(L_sum_p, rel=1e-12)
    np.testing.assert_allclose(G_sum_i, G_sum_p, rtol=1e-12, atol=1e-15)
    L_mean_i, _ = torch_loss_and_grad(x, y, weight=W, label_smoothing=EPS)
    L_mean_p, _ = torch_loss_and_grad(x, onehot, weight=W, label_smoothing=EPS)
    assert L_mean_p == pytest.approx(L_sum_p / len(y), rel=1e-12)
    assert L_mean_i == pytest.approx(L_sum_i / W[y].sum(), rel=1e-12)


def test_a_zero_probability_row_is_not_ignored_under_smoothing(x):
    q = np.eye(C)[[2, 0, 3]]
    q[1] = 0
    L0, G0 = torch_loss_and_grad(x, q, reduction="none")
    L1, G1 = torch_loss_and_grad(x, q, reduction="none", label_smoothing=EPS)
    assert L0[1] == 0 and np.all(G0[1] == 0)
    assert L1[1] > 0 and np.any(G1[1] != 0)


def _descend(y, steps=3000, lr=1.0, **options):
    z = np.zeros((1, C))
    for _ in range(steps):
        z = z - lr * celib.cross_entropy_grad(z, y, reduction="sum", **options)
    return z


def test_smoothing_optimum_is_one_minus_eps_plus_eps_over_c():
    y = np.array([2])
    q_smooth = (1 - EPS) * np.eye(C)[y] + EPS / C
    # the gradient vanishes at log q' (analytically), and descent gets there
    assert np.abs(celib.cross_entropy_grad(np.log(q_smooth), y, label_smoothing=EPS)).max() < 1e-15
    z = _descend(y, label_smoothing=EPS)
    np.testing.assert_allclose(celib.softmax(z, axis=1), q_smooth, atol=1e-8)
    gap = z[0, 2] - np.delete(z[0], 2)
    np.testing.assert_allclose(gap, np.log((1 - EPS + EPS / C) / (EPS / C)), atol=1e-6)


def test_weighted_smoothing_optimum_is_a_over_its_mass():
    y = np.array([2])
    a = (1 - EPS) * W[2] * np.eye(C)[2] + EPS / C * W
    z = _descend(y, label_smoothing=EPS, weight=W)
    np.testing.assert_allclose(celib.softmax(z, axis=1)[0], a / a.sum(), atol=1e-8)
    assert not np.allclose(a / a.sum(), (1 - EPS) * np.eye(C)[2] + EPS / C, atol=1e-3)


def test_plain_target_has_no_finite_optimum():
    y = np.array([2])
    gaps = [(_descend(y, steps=s)[0, 2] - _descend(y, steps=s)[0, 0]) for s in (100, 1000)]
    assert gaps[1] > gaps[0] + 1.5  # the logit gap keeps growing, like log(steps)


def test_distillation_gradient_and_its_t_squared_limit():
    rng = np.random.default_rng(1)
    z, v = rng.normal(size=(4, C)) * 2, rng.normal(size=(4, C)) * 2
    T = 4.0
    zt = torch.tensor(z, requires_grad=True)
    q = torch.softmax(torch.tensor(v) / T, dim=1)
    (T**2 * F.cross_entropy(zt / T, q)).backward()
    ours = T * (celib.softmax(z / T, axis=1) - celib.softmax(v / T, axis=1)) / len(z)
    np.testing.assert_allclose(zt.grad.numpy(), ours, rtol=1e-12, atol=1e-15)
    zt.grad = None
    (T**2 * F.kl_div(F.log_softmax(zt / T, dim=1), q, reduction="batchmean")).backward()
    np.testing.assert_allclose(zt.grad.numpy(), ours, rtol=1e-10, atol=1e-14)

    center = lambda u: u - u.mean(axis=1, keepdims=True)
    limit = (center(z) - center(v)) / C / len(z)
    errors = []
    for T in (8.0, 16.0, 64.0):
        g = T * (celib.softmax(z / T, axis=1) - celib.softmax(v / T, axis=1)) / len(z)
        errors.append(np.abs(g - limit).max())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01
