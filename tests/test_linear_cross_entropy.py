"""celib.torch_ops.linear_cross_entropy against the unfused computation and torch's own."""

import pytest

torch = pytest.importorskip("torch", reason="celib.torch_ops needs torch")
F = torch.nn.functional

from celib.torch_ops import cross_entropy, linear_cross_entropy  # noqa: E402

HAS_TORCH_LCE = hasattr(F, "linear_cross_entropy")


def _problem(N=13, H=8, V=50, dtype=torch.float64, seed=0, bias=True):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, H, generator=gen, dtype=dtype).requires_grad_()
    W = torch.randn(V, H, generator=gen, dtype=dtype).requires_grad_()
    b = torch.randn(V, generator=gen, dtype=dtype).requires_grad_() if bias else None
    y = torch.randint(0, V, (N,), generator=gen)
    if N > 2:
        y[2] = -100
    return x, W, b, y


def _grads(loss, params, g):
    params = [p for p in params if p is not None]
    return torch.autograd.grad(loss, params, g)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "options", [dict(), dict(label_smoothing=0.1, weighted=True), dict(label_smoothing=1.0)]
)
@pytest.mark.parametrize("chunk_size", [1, 4, 100, None])
def test_matches_unfused(reduction, options, chunk_size):
    x, W, b, y = _problem()
    kw = dict(reduction=reduction, label_smoothing=options.get("label_smoothing", 0.0))
    if options.get("weighted"):
        kw["weight"] = torch.rand(
            50, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
        )
    loss = linear_cross_entropy(x, W, y, linear_bias=b, chunk_size=chunk_size, **kw)
    g = torch.randn(loss.shape, dtype=torch.float64)
    grads = _grads(loss, (x, W, b), g)
    expected = F.cross_entropy(F.linear(x, W, b), y, **kw)
    expected_grads = _grads(expected, (x, W, b), g)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    if HAS_TORCH_LCE:
        theirs = F.linear_cross_entropy(x, W, y, linear_bias=b, **kw)
        torch.testing.assert_close(loss, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck_float64(reduction):
    x, W, b, y = _problem(N=5, H=3, V=7)
    w = torch.rand(7, dtype=torch.float64) + 0.1

    def f(x, W, b):
        return linear_cross_entropy(
            x, W, y, linear_bias=b, weight=w, reduction=reduction, label_smoothing=0.2, chunk_size=2
        )

    assert torch.autograd.gradcheck(f, (x, W, b))


def test_probability_targets_unbatched_input_and_no_bias():
    x, W, _, _ = _problem(N=6, bias=False)
    q = torch.rand(6, 50, dtype=torch.float64)
    loss = linear_cross_entropy(x, W, q, chunk_size=4, label_smoothing=0.1)
    expected = F.cross_entropy(F.linear(x, W), q, label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(_grads(loss, (x, W), None), _grads(expected, (x, W), None))
    # a single row: input (H,), target ()
    x1 = x[0].detach().requires_grad_()
    loss = linear_cross_entropy(x1, W, torch.tensor(3), reduction="none")
    expected = F.cross_entropy(F.linear(x1, W), torch.tensor(3), reduction="none")
    assert loss.shape == expected.shape == ()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(_grads(loss, (x1, W), None), _grads(expected, (x1, W), None))


def test_ignore_index_none_means_minus_100():
    x, W, b, y = _problem()
    a = linear_cross_entropy(x, W, y, linear_bias=b, ignore_index=None)
    torch.testing.assert_close(a, F.cross_entropy(F.linear(x, W, b), y))
    if HAS_TORCH_LCE:
        torch.testing.assert_close(a, F.linear_cross_entropy(x, W, y, linear_bias=b))


def test_float32_agrees_with_float64():
    x, W, b, y = _problem(N=40, H=16, V=300, dtype=torch.float32)
    loss = linear_cross_entropy(x, W, y, linear_bias=b, chunk_size=7)
    grads = _grads(loss, (x, W, b), None)
    x64, W64, b64 = (t.detach().double().requires_grad_() for t in (x, W, b))
    expected = F.cross_entropy(F.linear(x64, W64, b64), y)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, _grads(expected, (x64, W64, b64), None)):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)


def test_never_holds_all_logits():
    """Nothing of N x V size is saved for backward, for any reduction."""
    x, W, b, y = _problem(N=64, H=8, V=500)
    for reduction in ["mean", "none"]:
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(
            lambda t, saved=saved: saved.append(t) or t, lambda t: t
        ):
            linear_cross_entropy(x, W, y, linear_bias=b, reduction=reduction, chunk_size=8)
        assert all(t.numel() < 64 * 500 for t in saved), [tuple(t.shape) for t in saved]


def test_retain_graph_and_callers_tensors():
    x, W, b, y = _problem()
    copies = [t.detach().clone() for t in (x, W, b, y)]
    versions = [t._version for t in (x, W, b, y)]
    loss = linear_cross_entropy(x, W, y, linear_bias=b, chunk_size=3)
    first = torch.autograd.grad(loss, (x, W, b), retain_graph=True)
    second = torch.autograd.grad(loss, (x, W, b), torch.tensor(2.0, dtype=torch.float64))
    for a, c in zip(first, second):
        torch.testing.assert_close(2 * a, c)
    for t, c, v in zip((x, W, b, y), copies, versions):
        assert torch.equal(t.detach(), c) and t._version == v
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(loss, (x, W, b))


def test_only_what_needs_a_gradient():
    x, W, b, y = _problem()
    W.requires_grad_(False)
    loss = linear_cross_entropy(x, W, y, linear_bias=b, chunk_size=5)
    gx, gb = torch.autograd.grad(loss, (x, b))
    ex, eb = torch.autograd.grad(F.cross_entropy(F.linear(x, W, b), y), (x, b))
    torch.testing.assert_close(gx, ex)
    torch.testing.assert_close(gb, eb)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(x, W, y), cross_entropy(F.linear(x, W), y))


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        (((13, 8), (50, 9)), {}, ValueError, "last dimension 9"),
        (((13, 8), (50, 2, 8)), {}, ValueError, "K-dimensional"),
        (((2, 13, 8), (50, 8)), {}, ValueError, "shape"),
        (((13, 8), (50, 8)), dict(linear_bias=(49,)), ValueError, r"expected \(50,\)"),
        (((13, 8), (50, 8)), dict(chunk_size=0), ValueError, "chunk_size"),
        (((13, 8), (50, 8)), dict(reduction="avg"), ValueError, "reduction"),
    ],
)
def test_errors(args, kwargs, error, match):
    x = torch.zeros(args[0], dtype=torch.float64)
    W = torch.zeros(args[1], dtype=torch.float64)
    if "linear_bias" in kwargs:
        kwargs = {**kwargs, "linear_bias": torch.zeros(kwargs["linear_bias"], dtype=torch.float64)}
    y = torch.zeros(args[0][:-1], dtype=torch.long)
    with pytest.raises(error, match=match):
        linear_cross_entropy(x, W, y, **kwargs)


def test_bad_index_and_dtype_mismatch():
    x, W, b, y = _problem()
    y[5] = 50
    with pytest.raises(IndexError, match=r"target 50 at position \(5,\)"):
        linear_cross_entropy(x, W, y)
    with pytest.raises(TypeError, match="dtype"):
        linear_cross_entropy(x.float(), W, y.clamp(0, 49))


# ---------------------------------------------------------------------------
# issue 11
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_target_that_requires_grad_gets_its_gradient(reduction):
    # the gradient of a probability target was dropped (or the call raised); torch's
    # unfused computation gives it
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    W = torch.randn(5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    q = torch.softmax(torch.randn(6, 5, dtype=torch.float64, generator=gen), 1).requires_grad_()
    w = torch.rand(5, dtype=torch.float64, generator=gen)
    kw = dict(weight=w, label_smoothing=0.2, reduction=reduction)
    loss = linear_cross_entropy(x, W, q, chunk_size=4, **kw)
    expected = F.cross_entropy(F.linear(x, W), q, **kw)
    torch.testing.assert_close(loss, expected)
    g = torch.randn(loss.shape, dtype=torch.float64, generator=gen)
    for got, want in zip(
        torch.autograd.grad(loss, (x, W, q), g), torch.autograd.grad(expected, (x, W, q), g)
    ):
        torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(
        lambda a, b: linear_cross_entropy(
            x.detach(), W.detach(), a, weight=b.detach(), reduction=reduction, chunk_size=4
        ),
        (q.detach().clone().requires_grad_(), w),
    )


def _bf16_dW_errors(chunk_size, N=4096, H=64, V=1024, seed=0):
    """Max relative error of dW in bfloat16: (chunked celib, unfused torch) vs float64 truth."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, H, generator=gen).bfloat16()
    W = (torch.randn(V, H, generator=gen) / 8).bfloat16()
    y = torch.randint(0, V, (N,), generator=gen)
    truth = []
    for dt in (torch.float64, torch.bfloat16):
        Wd = W.to(dt).clone().requires_grad_()
        F.cross_entropy(F.linear(x.to(dt), Wd), y, reduction="sum").backward()
        truth.append(Wd.grad.double())
    Wc = W.detach().clone().requires_grad_()
    linear_cross_entropy(x, Wc, y, reduction="sum", chunk_size=chunk_size).backward()
    scale = truth[0].abs().max()
    return [((g - truth[0]).abs().max() / scale).item() for g in (Wc.grad.double(), truth[1])]


def test_bfloat16_weight_gradient_accumulates_in_float32():
    # dW was summed across chunks in bfloat16: an error growing with the number of chunks
    chunked, unfused = _bf16_dW_errors(chunk_size=128)
    assert chunked <= 2 * unfused, (chunked, unfused)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_no_parameter_gradients_under_no_grad(reduction):
    # under torch.no_grad the forward still computed dL/dW and dL/dinput (3 matmuls a chunk)
    from torch.utils._python_dispatch import TorchDispatchMode

    class CountMatmuls(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm):
                CountMatmuls.count += 1
            return func(*args, **(kwargs or {}))

    x, W, b, y = _problem(N=12)
    with torch.no_grad(), CountMatmuls():
        linear_cross_entropy(x, W, y, linear_bias=b, chunk_size=4, reduction=reduction)
    assert CountMatmuls.count == 3  # one matmul per chunk: the logits
