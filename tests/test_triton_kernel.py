"""The fused Triton kernel against the torch backend, torch and the NumPy reference.

On a machine without a GPU the kernel runs under Triton's interpreter, which
must be switched on before triton is first imported: this module sets
TRITON_INTERPRET=1 at its top. With CELIB_TEST_DEVICE=cuda (benchmarks/gpu_check.sh)
it runs compiled on the GPU instead, with bfloat16 and the large cases too.
"""

import os
import sys

DEVICE = "cuda" if os.environ.get("CELIB_TEST_DEVICE") == "cuda" else "cpu"
if DEVICE == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="the Triton backend needs torch")
pytest.importorskip("triton", reason="the Triton backend needs triton")

if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("CELIB_TEST_DEVICE=cuda but torch sees no CUDA device", allow_module_level=True)

from celib import (
    reference,  # noqa: E402
    triton_kernels,  # noqa: E402
)
from celib.torch_ops import cross_entropy  # noqa: E402

if DEVICE == "cpu" and type(triton_kernels._cross_entropy_kernel).__name__ != "InterpretedFunction":
    pytest.skip(
        "celib.triton_kernels was imported before TRITON_INTERPRET=1 was set in this "
        "process, so its kernel is compiled for a GPU this machine lacks; run this file "
        "on its own (pytest tests/test_triton_kernel.py)",
        allow_module_level=True,
    )

INTERPRETED = DEVICE == "cpu"
F = torch.nn.functional

DTYPES = [
    torch.float32,
    torch.float16,
    pytest.param(
        torch.bfloat16,
        marks=pytest.mark.skipif(
            INTERPRETED, reason="Triton's interpreter has no bfloat16 arithmetic; runs on a GPU"
        ),
    ),
]
TOL = {torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def _run(x, y, backend, grad_output=None, **kw):
    """Loss and gradient of one call on a fresh leaf copy of x."""
    x = x.detach().clone().requires_grad_()
    loss = cross_entropy(x, y, backend=backend, **kw)
    g = torch.ones_like(loss) if grad_output is None else grad_output.to(loss.dtype)
    (grad,) = torch.autograd.grad(loss, x, g)
    return loss.detach(), grad


def _check_against_torch_backend_and_reference(x, y, grad_output=None, **kw):
    dtype = x.dtype
    loss, grad = _run(x, y, "triton", grad_output, **kw)
    loss_t, grad_t = _run(x, y, "torch", grad_output, **kw)
    assert loss.dtype == dtype and grad.dtype == dtype and grad.shape == x.shape
    tol = TOL[dtype]
    torch.testing.assert_close(loss.float(), loss_t.float(), rtol=tol, atol=tol, equal_nan=True)
    torch.testing.assert_close(grad.float(), grad_t.float(), rtol=tol, atol=tol, equal_nan=True)
    # the reference, in float64 on the rounded inputs
    np_kw = {
        k: (v.double().cpu().numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()
    }
    xr, yr = x.double().cpu().numpy(), y.cpu().numpy()
    go = None if grad_output is None else grad_output.to(dtype).double().cpu().numpy()
    ref = reference.cross_entropy(xr, yr, **np_kw)
    ref_grad = reference.cross_entropy_grad(xr, yr, **np_kw, grad_output=go)
    np.testing.assert_allclose(loss.double().cpu().numpy(), ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad.double().cpu().numpy(), ref_grad, rtol=tol, atol=tol)


def _problem(M, C, dtype, seed=0, scale=3.0, ignored=(1,)):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(M, C, generator=gen) * scale).to(dtype).to(DEVICE)
    y = torch.randint(0, C, (M,), generator=gen)
    for i in ignored:
        if i < M:
            y[i] = -100
    return x, y.to(DEVICE)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("C", [1, 37, 1003])
def test_every_reduction_with_random_upstream_gradient(dtype, reduction, C):
    x, y = _problem(6, C, dtype, seed=C)
    gen = torch.Generator().manual_seed(1)
    g = torch.randn((6,) if reduction == "none" else (), generator=gen).to(DEVICE)
    _check_against_torch_backend_and_reference(x, y, g, reduction=reduction)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.1, 1.0])
def test_weight_and_label_smoothing(dtype, reduction, eps):
    x, y = _problem(5, 51, dtype, seed=3)
    gen = torch.Generator().manual_seed(2)
    w = (torch.rand(51, generator=gen) * 2).to(DEVICE)
    w[7] = 0.0
    y[0] = 7  # a target whose class weight is 0
    g = torch.randn((5,) if reduction == "none" else (), generator=gen).to(DEVICE)
    _check_against_torch_backend_and_reference(
        x, y, g, weight=w, reduction=reduction, label_smoothing=eps
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_vocabulary_not_a_multiple_of_the_block(dtype):
    C = 65536 + 17
    x, y = _problem(3, C, dtype, seed=5, ignored=())
    w = torch.rand(C, generator=torch.Generator().manual_seed(4)).to(DEVICE) + 0.5
    _check_against_torch_backend_and_reference(x, y, weight=w, label_smoothing=0.05)


def test_k_dimensional_logits():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 9, 3, generator=gen).to(DEVICE)
    y = torch.randint(0, 9, (2, 3), generator=gen).to(DEVICE)
    y[0, 1] = -100
    g = torch.randn(2, 3, generator=gen).to(DEVICE)
    _check_against_torch_backend_and_reference(x, y, g, reduction="none", label_smoothing=0.2)
    _check_against_torch_backend_and_reference(x[0, :, 0], y[0, 0])  # shape (C,)


def test_all_rows_ignored():
    x, y = _problem(4, 33, torch.float32)
    y[:] = -100
    loss, grad = _run(x, y, "triton")
    assert torch.isnan(loss)  # 0 / 0, as in torch
    assert torch.equal(grad, torch.zeros_like(grad))
    loss, grad = _run(x, y, "triton", reduction="sum")
    assert loss.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the interpreter's
# numpy evaluates masked lanes too (-inf - -inf); the compiled kernel has no such warning
def test_minus_inf_logits():
    x = torch.tensor(
        [
            [0.0, -np.inf, 2.0, 1.0],
            [-np.inf, -np.inf, -np.inf, -np.inf],  # ignored
            [-np.inf, 3.0, -np.inf, -np.inf],
        ]
    ).to(DEVICE)
    y = torch.tensor([2, -100, 1]).to(DEVICE)
    w = torch.tensor([1.0, 0.0, 1.0, 2.0]).to(DEVICE)
    for kw in [dict(), dict(weight=w, label_smoothing=0.3)]:
        loss, grad = _run(x, y, "triton", reduction="none", **kw)
        np_kw = {k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
        ref = reference.cross_entropy(x.cpu().numpy(), y.cpu().numpy(), reduction="none", **np_kw)
        ref_grad = reference.cross_entropy_grad(
            x.cpu().numpy(), y.cpu().numpy(), reduction="none", **np_kw
        )
        np.testing.assert_allclose(loss.cpu().numpy(), ref, rtol=1e-6)
        np.testing.assert_allclose(grad.cpu().numpy(), ref_grad, rtol=1e-6, atol=1e-7)
        assert torch.equal(grad[1], torch.zeros(4, device=DEVICE))
    # smoothing spreads mass onto a -inf class with non-zero weight: infinite loss, as in torch
    loss, _ = _run(x[:1], y[:1], "triton", reduction="none", label_smoothing=0.1)
    assert loss.item() == np.inf


def _true_class_grad64(x, y):
    """p_y - 1 in float64 without cancellation: -(sum of the other exp(x_c - m)) / S."""
    e = np.exp(x - x.max())
    return -np.delete(e, y).sum() / e.sum()


@pytest.mark.parametrize("C", [5, 4099])
def test_confident_rows_true_class_gradient(C):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, C, generator=gen) - 4.0
    y = torch.tensor([0, C // 2, C - 1])
    x[torch.arange(3), y] = torch.tensor([30.0, 25.0, 40.0])  # p_y within 1e-9 of 1
    loss, grad = _run(x.to(DEVICE), y.to(DEVICE), "triton", reduction="sum")
    for n in range(3):
        exact = _true_class_grad64(x[n].double().numpy(), int(y[n]))
        got = float(grad[n, y[n]])
        assert exact != 0 and abs(got - exact) <= 1e-5 * abs(exact), (n, got, exact)


def test_callers_tensors_unchanged():
    x, y = _problem(4, 70, torch.float32)
    x.requires_grad_()
    w = torch.rand(70).to(DEVICE)
    copies = [t.detach().clone() for t in (x, y, w)]
    versions = [t._version for t in (x, y, w)]
    loss = cross_entropy(x, y, weight=w, reduction="none", label_smoothing=0.1, backend="triton")
    loss.backward(torch.randn(4).to(DEVICE))
    for t, c, v in zip((x, y, w), copies, versions):
        assert torch.equal(t.detach(), c) and t._version == v
    assert x.grad.data_ptr() != x.data_ptr()


def test_inplace_backward_overwrites_logits_and_says_so():
    x, y = _problem(4, 70, torch.float32)
    base = x.clone().requires_grad_()
    logits = base * 1.0  # a non-leaf, like a model's last layer
    version = logits._version
    loss = cross_entropy(logits, y, backend="triton", inplace_backward=True)
    assert logits._version > version  # autograd sees the write
    loss.backward()
    _, expected = _run(x, y, "torch")
    torch.testing.assert_close(base.grad, expected)
    # something else saved the logits for its backward: autograd refuses
    base2 = x.clone().requires_grad_()
    z = base2.exp()  # exp saves its output
    loss = cross_entropy(z, y, backend="triton", inplace_backward=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    with pytest.raises(RuntimeError, match="leaf"):
        cross_entropy(x.clone().requires_grad_(), y, backend="triton", inplace_backward=True)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_retain_graph_runs_backward_again(reduction):
    x, y = _problem(3, 10, torch.float32)
    x.requires_grad_()
    loss = cross_entropy(x, y, backend="triton", reduction=reduction)
    g = torch.full(loss.shape, 0.5, device=DEVICE)
    (first,) = torch.autograd.grad(loss, x, g, retain_graph=True)
    (second,) = torch.autograd.grad(loss, x, g, retain_graph=True)
    (third,) = torch.autograd.grad(loss, x, g)  # hands the buffer over
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, third)
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(loss, x, g)


def test_no_gradient_buffer_without_requires_grad():
    x, y = _problem(3, 10, torch.float32)
    with torch.no_grad():
        loss = cross_entropy(x.requires_grad_(), y, backend="triton", label_smoothing=0.1)
    expected = F.cross_entropy(x.detach(), y, label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)


def test_probability_targets_fall_back_to_torch():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(3, 5, generator=gen).to(DEVICE)
    q = torch.rand(3, 5, generator=gen).to(DEVICE)
    loss, grad = _run(x, q, "triton")
    loss_t, grad_t = _run(x, q, "torch")
    torch.testing.assert_close(loss, loss_t)
    torch.testing.assert_close(grad, grad_t)


# ---------------------------------------------------------------------------
# every launch mode (rows read once, rows in blocks, a persistent grid with L2 hints,
# the vocabulary split across programs), forced on small shapes
# ---------------------------------------------------------------------------

KernelConfig = triton_kernels.KernelConfig
# C = 100 classes under the interpreter, 1000 on a GPU (blocks of at least 128 there)
CM = 100 if INTERPRETED else 1000
_B = 1 if INTERPRETED else 8
CONFIGS = {
    "rows-single": KernelConfig(mode="rows", block=128 * _B, num_warps=4),
    "rows-blocks": KernelConfig(mode="rows", block=16 * _B, num_warps=4),
    "rows-persistent": KernelConfig(
        mode="rows", block=32 * _B, num_warps=4, programs=3, evict=True
    ),
    "split": KernelConfig(mode="split", block=16 * _B, num_warps=4),  # 7 or 8 chunks
}


@pytest.fixture(params=list(CONFIGS))
def config(request, monkeypatch):
    cfg = CONFIGS[request.param]
    monkeypatch.setattr(triton_kernels, "_override", cfg)
    return cfg


@pytest.mark.parametrize("dtype", DTYPES)
def test_launch_modes_weight_smoothing_ignored_none(config, dtype):
    C = CM
    x, y = _problem(7, C, dtype, seed=12, ignored=(1, 5))
    gen = torch.Generator().manual_seed(13)
    w = (torch.rand(C, generator=gen) * 2).to(DEVICE)
    w[y[0]] = 0.0  # a target of weight 0
    g = torch.randn(7, generator=gen).to(DEVICE)
    _check_against_torch_backend_and_reference(
        x, y, g, weight=w, reduction="none", label_smoothing=0.1
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_launch_modes_plain(config, reduction):
    x, y = _problem(5, CM, torch.float32, seed=14)
    _check_against_torch_backend_and_reference(x, y, reduction=reduction)


def test_launch_modes_in_place(config):
    """In place, each mode reads every logit it needs (x_y included) before overwriting it."""
    x, y = _problem(5, CM, torch.float32, seed=15, ignored=(2,))
    y[0], y[3] = CM - 1, 0  # targets in the last and the first chunk
    w = torch.rand(CM, generator=torch.Generator().manual_seed(16)).to(DEVICE) + 0.5
    for kw in (dict(), dict(weight=w, label_smoothing=0.2)):
        loss_d, grad_d = _run(x, y, "torch", **kw)
        base = x.clone().requires_grad_()
        loss = cross_entropy(base * 1.0, y, backend="triton", inplace_backward=True, **kw)
        loss.backward()
        torch.testing.assert_close(loss, loss_d, rtol=2e-6, atol=2e-6)
        torch.testing.assert_close(base.grad, grad_d, rtol=2e-6, atol=2e-6)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_launch_modes_non_finite_rows(config):
    """NaN, +inf, only -inf, -inf at the target, each with a target of weight 0 or not."""
    C = CM
    x, y = _problem(10, C, torch.float32, seed=17, ignored=())
    x = x.cpu()
    x[0, 40] = np.nan
    x[1, 70] = np.inf
    x[2] = -np.inf
    x[3, y[3]] = -np.inf
    x[4, 5] = np.nan
    x[5, 90] = np.inf
    x[6] = -np.inf
    x[7, 3] = np.inf
    y = y.cpu()
    y[7] = -100  # ignored: zeros, whatever its logits
    w = torch.rand(C, generator=torch.Generator().manual_seed(18)) + 0.5
    w[y[4]] = w[y[5]] = w[y[6]] = 0.0  # zero effective target (no smoothing)
    for kw in (dict(weight=w), dict(weight=w, label_smoothing=0.1), dict()):
        loss, grad = _run(x.to(DEVICE), y.to(DEVICE), "triton", reduction="none", **kw)
        np_kw = {
            k: (v.double().numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()
        }
        ref = reference.cross_entropy(x.double().numpy(), y.numpy(), reduction="none", **np_kw)
        ref_grad = reference.cross_entropy_grad(
            x.double().numpy(), y.numpy(), reduction="none", **np_kw
        )
        np.testing.assert_allclose(loss.double().cpu().numpy(), ref, rtol=2e-6, atol=2e-6)
        np.testing.assert_allclose(grad.double().cpu().numpy(), ref_grad, rtol=2e-6, atol=2e-6)
        # the cases are what they claim: no softmax gives NaN, -inf at the target +inf
        assert np.isnan(ref[[0, 1, 2, 4, 5, 6]]).all() and ref[3] == np.inf and ref[7] == 0
        assert torch.equal(grad[7], torch.zeros(C, device=DEVICE))


def _rounding_step(value, dtype):
    """The spacing of ``dtype`` at |value| (subnormal spacing near 0)."""
    t = torch.tensor(abs(value), dtype=torch.float64).to(dtype)
    up = torch.nextafter(t, torch.tensor(float("inf"), dtype=dtype))
    return float(up.double() - t.double())


@pytest.mark.parametrize("dtype", DTYPES)
def test_confident_rows_margins_20_to_80_rounded_once(config, dtype):
    """Chapter 5's confident rows: C = 100 (1000 on a GPU) classes at 0, the target at a margin. The
    true-class gradient -(C - 1) e^-margin / (1 + (C - 1) e^-margin) must come out within
    one rounding step of the dtype (formed in float32, rounded once), not 0 by cancellation."""
    C = CM
    margins = [20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]
    x = torch.zeros(len(margins), C)
    y = torch.tensor([0, C // 6, C // 3, C // 2, 2 * C // 3, 5 * C // 6, C - 1])
    x[torch.arange(len(margins)), y] = torch.tensor(margins)
    _, grad = _run(x.to(dtype).to(DEVICE), y.to(DEVICE), "triton", reduction="sum")
    for n, margin in enumerate(margins):
        tail = (C - 1) * np.exp(-margin)
        exact = -tail / (1.0 + tail)
        got = float(grad[n, y[n]].double())
        # one rounding step of the dtype, plus 1e-5 relative for float32's exp (a GPU's fast
        # exp2 errs by about |x - m| x 2^-24 relative, 5e-6 at a margin of 80)
        allowed = _rounding_step(exact, dtype) + 1e-5 * abs(exact)
        assert abs(got - exact) <= allowed, (margin, got, exact, allowed)
        if dtype == torch.float32 or (dtype == torch.bfloat16):  # exponent range of float32
            assert got != 0.0 and abs(got / exact - 1) < 1e-2, (margin, got, exact)
        other = float(grad[n, (int(y[n]) + 1) % C].double())  # p_c = e^-margin / (...)
        p_other = np.exp(-margin) / (1 + tail)
        assert abs(other - p_other) <= _rounding_step(p_other, dtype) + 1e-5 * p_other


def test_rule_chooses_split_for_few_rows_and_rows_otherwise():
    rule = triton_kernels.rule_config
    assert rule(256, 262144, 2, 132).mode == "split"
    assert rule(256, 262144, 4, 132).mode == "split"
    big = rule(8192, 128256, 2, 132)
    assert big.mode == "rows" and big.block < 128256  # two passes over a row
    small = rule(8192, 32000, 2, 132)
    assert small.mode == "rows" and small.block >= 32000  # read once
    assert rule(8192, 32000, 4, 132).block < 32000  # float32: two passes
    assert rule(64, 1000, 2, 132).mode == "rows"  # few rows, small vocabulary
    # the interpreter's rule (4 multiprocessors): C = 65553 over 3 rows is split
    assert rule(3, 65553, 4, 4, interpret=True).mode == "split"


@pytest.mark.skipif(not INTERPRETED, reason="on a GPU bench_gpu.py runs tune() with real timings")
def test_tune_searches_three_stages_on_scratch_tensors():
    """tune() with a stand-in timer: every stage's configurations run (in place too) and
    the one with the least time wins; then the winner gives the right answer."""
    x, y = _problem(4, 600, torch.float32, seed=20, ignored=(2,))
    fake = iter(range(1000, 0, -1))  # each trial faster than the last

    def timer(fn):
        fn()
        return float(next(fake))

    for inplace in (False, True):
        best, trials = triton_kernels.tune(
            x.clone(), y, inplace=inplace, sms=2, timer=timer, blocks=(128, 256)
        )
        tried = [c for c, ms in trials if not isinstance(ms, str)]
        assert best == tried[-1] and len(set(tried)) == len(tried)
        assert {c.block for c in tried} == {128, 256}
        assert any(c.programs for c in tried) and any(c.evict for c in tried)
        assert any(c.num_stages for c in tried)
    x2, y2 = _problem(2, 40000, torch.float32, seed=21, ignored=())
    best, trials = triton_kernels.tune(x2, y2, sms=4, timer=timer, blocks=(8192,))
    assert best.mode == "split" and len(trials) == 3
    monkey = pytest.MonkeyPatch()
    try:
        monkey.setattr(triton_kernels, "_override", best)
        _check_against_torch_backend_and_reference(x2, y2, reduction="sum")
    finally:
        monkey.undo()


def test_backward_scaling_skips_ones_and_reads_expanded_gradients():
    gen = torch.Generator().manual_seed(19)
    g = torch.randn(4, 70, generator=gen).to(DEVICE)
    before = g.clone()
    triton_kernels.scale_rows_(g, torch.ones((), device=DEVICE))
    assert torch.equal(g, before)
    per_row = torch.tensor([1.0, 0.5, float("nan"), -2.0], device=DEVICE)
    triton_kernels.scale_rows_(g, per_row)
    expected = before * per_row[:, None]
    expected[0] = before[0]
    torch.testing.assert_close(g, expected, equal_nan=True)
    g2 = before.clone()
    triton_kernels.scale_rows_(g2, torch.tensor(3.0, device=DEVICE).expand(4))  # stride 0
    torch.testing.assert_close(g2, before * 3.0)


def test_mean_denominator_kernel():
    y = torch.tensor([0, 3, -100, 3, 1], device=DEVICE)
    w = torch.tensor([0.5, 2.0, 7.0, 0.25], device=DEVICE)
    denom, inv = triton_kernels.mean_denominator(y, w, -100)
    assert float(denom) == 0.5 + 0.25 + 0.25 + 2.0 and float(inv) == pytest.approx(1 / 3, 1e-6)
    denom, inv = triton_kernels.mean_denominator(y, None, -100)
    assert float(denom) == 4.0 and float(inv) == 0.25
    denom, inv = triton_kernels.mean_denominator(torch.full((3,), -100, device=DEVICE), w, -100)
    assert float(denom) == 0.0 and np.isnan(float(inv))


_COMPILE_SCRIPT = r"""
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from celib import triton_kernels as tk

def sig(names, types):
    return dict(zip(names, types))

def compile_(fn, types, constexprs, **opts):
    names = list(fn.arg_names)
    full = {n: ("constexpr" if n in constexprs else types[n]) for n in names}
    triton.compile(ASTSource(fn=fn, signature=full, constexprs=constexprs),
                   target=GPUTarget("cuda", 90, 32), options=opts)

bf, f32 = "*bf16", "*fp32"
rows = dict(X=bf, stride_x="i64", Y="*i64", W=f32, SUM_W=f32, SCALE=f32, LOSS=f32, LSE=f32,
            G=bf, stride_g="i64", M="i32", C="i32", ignore_index="i64", eps="fp32")
flags = dict(HAS_WEIGHT=True, HAS_SMOOTHING=True, HAS_GRAD=True)
for single, evict in ((True, False), (False, True), (False, False)):
    compile_(tk._cross_entropy_kernel, rows,
             dict(BLOCK=8192, SINGLE=single, EVICT=evict, **flags), num_warps=16)
compile_(tk._cross_entropy_kernel, dict(rows, X=f32, G=f32),
         dict(BLOCK=4096, SINGLE=False, EVICT=False, HAS_WEIGHT=False, HAS_SMOOTHING=False,
              HAS_GRAD=True), num_warps=8, num_stages=1)
stats = dict(X=bf, stride_x="i64", Y="*i64", W=f32, PART=f32, XY=f32, M="i32", NCH="i32",
             C="i32", ignore_index="i64")
compile_(tk._split_stats_kernel, stats, dict(BLOCK=8192, HAS_WEIGHT=True, HAS_SMOOTHING=True),
         num_warps=8)
grad = dict(stats, SUM_W=f32, SCALE=f32, LOSS=f32, LSE=f32, G=bf, stride_g="i64", eps="fp32")
compile_(tk._split_grad_kernel, grad, dict(BLOCK=8192, NCH_P2=32, **flags), num_warps=8)
compile_(tk._scale_rows_kernel, dict(G=bf, stride_g="i64", GO=bf, stride_go="i64", C="i32",
                                     CHUNK="i32"), dict(BLOCK=4096), num_warps=8)
compile_(tk._mean_scale_kernel, dict(Y="*i64", W=f32, M="i32", ignore_index="i64", OUT=f32),
         dict(BLOCK_M=4096, HAS_WEIGHT=True), num_warps=4)
print("compiled for sm_90")
"""


@pytest.mark.skipif(not INTERPRETED, reason="on a GPU every test compiles the kernels anyway")
def test_kernels_compile_for_an_h100_without_one():
    """The interpreter runs the kernels as NumPy; this compiles them to sm_90 code (Triton's
    own ptxas, no GPU needed) in a process without TRITON_INTERPRET, so that a typing error
    of the compiled path shows up on a CPU machine too."""
    import subprocess
    from pathlib import Path

    import triton.backends.nvidia as nvidia

    if not (Path(nvidia.__file__).parent / "bin" / "ptxas").exists():
        pytest.skip("this triton has no bundled ptxas")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = (
        str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    )
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    done = subprocess.run(
        [sys.executable, "-c", _COMPILE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0 and "compiled for sm_90" in done.stdout, done.stderr[-3000:]


# ---------------------------------------------------------------------------
# sizes only a GPU holds
# ---------------------------------------------------------------------------

needs_gpu = pytest.mark.skipif(
    INTERPRETED,
    reason="too large for Triton's interpreter on a CPU; runs with CELIB_TEST_DEVICE=cuda",
)


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_vocabulary_262144(dtype):
    x, y = _problem(64, 262144, dtype, seed=9, ignored=(3,))
    g = torch.randn(64, device=DEVICE)
    _check_against_torch_backend_and_reference(x, y, g, reduction="none", label_smoothing=0.1)


@needs_gpu
def test_gpu_more_than_2_31_elements():
    """M x C > 2^31: the rows past 2^31 elements need 64-bit offsets."""
    C = 131072
    M = (2**31) // C + 8  # 16392 rows, 2^31 + 2^20 bfloat16 elements (4 GiB)
    free, _ = torch.cuda.mem_get_info()
    if free < 3 * M * C * 2 + (1 << 30):
        pytest.skip(f"needs about {3 * M * C * 2 / 2**30:.0f} GiB free on the GPU")
    x = torch.randn(M, C, device=DEVICE, dtype=torch.bfloat16)
    y = torch.randint(0, C, (M,), device=DEVICE)
    x.requires_grad_()
    loss = cross_entropy(x, y, reduction="none", backend="triton")
    loss.sum().backward()
    tail = slice(M - 16, M)  # rows beyond the 2^31st element
    xt = x.detach()[tail].double()
    expected = torch.logsumexp(xt, 1) - xt[torch.arange(16), y[tail]]
    torch.testing.assert_close(loss[tail].double(), expected, rtol=1.6e-2, atol=1.6e-2)
    p = torch.softmax(xt, 1)
    p[torch.arange(16), y[tail]] -= 1
    torch.testing.assert_close(x.grad[tail].double(), p, rtol=1.6e-2, atol=1e-3)


# ---------------------------------------------------------------------------
# linear cross-entropy with the kernel on each chunk (its path on CUDA)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_linear_cross_entropy_chunks_through_the_kernel(monkeypatch, reduction):
    from celib import torch_ops
    from celib.torch_ops import triton_backend

    monkeypatch.setattr(
        triton_backend, "linear_uses_triton", lambda x, tgt: isinstance(tgt, torch_ops._IndexRows)
    )
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(11, 16, generator=gen).to(DEVICE).requires_grad_()
    W = (torch.randn(75, 16, generator=gen) / 4).to(DEVICE).requires_grad_()
    b = torch.randn(75, generator=gen).to(DEVICE).requires_grad_()
    y = torch.randint(0, 75, (11,), generator=gen).to(DEVICE)
    y[4] = -100
    w = torch.rand(75, generator=gen).to(DEVICE)
    kw = dict(weight=w, reduction=reduction, label_smoothing=0.1)
    loss = torch_ops.linear_cross_entropy(x, W, y, linear_bias=b, chunk_size=4, **kw)
    g = torch.randn(loss.shape, generator=gen).to(DEVICE)
    grads = torch.autograd.grad(loss, (x, W, b), g)
    expected = F.cross_entropy(F.linear(x, W, b), y, **kw)
    expected_grads = torch.autograd.grad(expected, (x, W, b), g)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
