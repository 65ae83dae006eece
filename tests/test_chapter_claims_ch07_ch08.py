"""The key claims of chapters 7 and 8, checked outside the notebooks.

Chapter 7: softmax regression on scikit-learn's digits trained with the
hand-derived gradient (celib.cross_entropy_grad, dW = X^T G, db = sum of G)
and with torch autograd from the same start gives the same loss curve to
1e-13, and reaches a good test accuracy.

Chapter 8: dh = G W, dW = G^T h, db = sum of G for logits h W^T + b; the loss
and gradients computed chunk by chunk of rows (with the global denominator)
equal the unfused ones; celib's linear_cross_entropy matches the unfused torch
computation.
"""

import numpy as np
import pytest

import celib

torch = pytest.importorskip("torch")
F = torch.nn.functional
sklearn_datasets = pytest.importorskip("sklearn.datasets")
from sklearn.model_selection import train_test_split  # noqa: E402

STEPS, LR = 300, 1.0


@pytest.fixture(scope="module")
def digits():
    d = sklearn_datasets.load_digits()
    return train_test_split(
        d.data / 16.0, d.target, test_size=0.25, random_state=0, stratify=d.target
    )


@pytest.fixture(scope="module")
def two_runs(digits):
    X_train, X_test, y_train, y_test = digits
    D, C = X_train.shape[1], 10
    rng = np.random.default_rng(0)
    W0, b0 = 0.01 * rng.standard_normal((D, C)), np.zeros(C)

    W, b, losses_np = W0.copy(), b0.copy(), []
    for _ in range(STEPS):
        Z = X_train @ W + b
        losses_np.append(float(celib.cross_entropy(Z, y_train)))
        G = celib.cross_entropy_grad(Z, y_train)
        W -= LR * (X_train.T @ G)
        b -= LR * G.sum(axis=0)

    X_t, y_t = torch.from_numpy(X_train), torch.from_numpy(y_train)
    W_t, b_t = torch.tensor(W0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    losses_t = []
    for _ in range(STEPS):
        loss = F.cross_entropy(X_t @ W_t + b_t, y_t)
        losses_t.append(loss.item())
        W_t.grad = b_t.grad = None
        loss.backward()
        with torch.no_grad():
            W_t -= LR * W_t.grad
            b_t -= LR * b_t.grad
    return (W, b, np.array(losses_np)), (
        W_t.detach().numpy(),
        b_t.detach().numpy(),
        np.array(losses_t),
    )


def test_ch07_numpy_and_autograd_runs_agree(two_runs):
    (W, b, losses_np), (W_t, b_t, losses_t) = two_runs
    assert np.max(np.abs(losses_np - losses_t)) < 1e-13
    assert np.max(np.abs(W - W_t)) < 1e-13 and np.max(np.abs(b - b_t)) < 1e-13


def test_ch07_loss_decreases_and_accuracy(two_runs, digits):
    X_train, X_test, y_train, y_test = digits
    (W, b, losses), _ = two_runs
    assert abs(losses[0] - np.log(10)) < 0.05
    assert np.all(np.diff(losses) < 0)
    assert np.mean((X_test @ W + b).argmax(axis=1) == y_test) > 0.94
    assert np.mean((X_train @ W + b).argmax(axis=1) == y_train) > 0.95


def _output_layer_problem(seed, N=10, H=4, V=7):
    rng = np.random.default_rng(seed)
    h, W, b = rng.standard_normal((N, H)), rng.standard_normal((V, H)), rng.standard_normal(V)
    target = rng.integers(0, V, size=N)
    target[[N - 3, N - 2, N - 1] if N >= 6 else [N - 2]] = -100
    return h, W, b, target


def test_ch08_gradients_match_autograd_and_finite_differences():
    h, W, b, target = _output_layer_problem(0, N=4, H=3, V=5)
    G = celib.cross_entropy_grad(h @ W.T + b, target)
    ours = (G @ W, G.T @ h, G.sum(axis=0))
    ts = [torch.tensor(a, requires_grad=True) for a in (h, W, b)]
    F.cross_entropy(F.linear(*ts), torch.from_numpy(target)).backward()
    for mine, t in zip(ours, ts):
        np.testing.assert_allclose(mine, t.grad.numpy(), rtol=1e-12, atol=1e-14)
    num_W = celib.numerical_grad(lambda W_: celib.cross_entropy(h @ W_.T + b, target), W)
    np.testing.assert_allclose(ours[1], num_W, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 10])
def test_ch08_chunks_with_the_global_denominator_equal_the_unfused_result(chunk_size):
    h, W, b, target = _output_layer_problem(1)
    M = np.sum(target != -100)
    loss, dh, dW, db = 0.0, np.empty_like(h), np.zeros_like(W), np.zeros_like(b)
    for lo in range(0, len(h), chunk_size):
        rows = slice(lo, lo + chunk_size)
        Z = h[rows] @ W.T + b
        loss += celib.cross_entropy(Z, target[rows], reduction="sum") / M
        G = celib.cross_entropy_grad(Z, target[rows], reduction="sum") / M
        dh[rows], dW, db = G @ W, dW + G.T @ h[rows], db + G.sum(axis=0)
    G = celib.cross_entropy_grad(h @ W.T + b, target)
    np.testing.assert_allclose(loss, celib.cross_entropy(h @ W.T + b, target), rtol=1e-12)
    for mine, full in zip((dh, dW, db), (G @ W, G.T @ h, G.sum(axis=0))):
        np.testing.assert_allclose(mine, full, rtol=1e-12, atol=1e-15)


def test_ch08_celib_linear_cross_entropy_matches_unfused():
    torch_ops = pytest.importorskip("celib.torch_ops")
    if not hasattr(torch_ops, "linear_cross_entropy"):
        pytest.skip("celib.torch_ops.linear_cross_entropy not available")
    gen = torch.Generator().manual_seed(0)
    N, H, V = 300, 32, 1000
    h = torch.randn(N, H, generator=gen, dtype=torch.float64)
    W = 0.1 * torch.randn(V, H, generator=gen, dtype=torch.float64)
    b = 0.1 * torch.randn(V, generator=gen, dtype=torch.float64)
    target = torch.randint(0, V, (N,), generator=gen)
    target[::10] = -100
    weight = torch.rand(V, generator=gen, dtype=torch.float64) + 0.5
    opts = dict(weight=weight, label_smoothing=0.1)

    def run(fn):
        p = [t.clone().requires_grad_() for t in (h, W, b)]
        loss = fn(*p)
        loss.backward()
        return [loss.detach()] + [t.grad for t in p]

    ref = run(lambda h, W, b: F.cross_entropy(F.linear(h, W, b), target, **opts))
    ours = run(
        lambda h, W, b: torch_ops.linear_cross_entropy(
            h, W, target, linear_bias=b, chunk_size=64, **opts
        )
    )
    for x, y in zip(ours, ref):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-13)
