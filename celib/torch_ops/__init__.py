"""celib's torch path: cross-entropy as an autograd Function, and chunked linear cross-entropy.

Imported only on request (``import celib.torch_ops``): ``import celib`` works without torch.

Everything here follows the NumPy reference (``celib.reference``), whose one idea
carries every option: for each element n (a row of the logits after moving the
class axis last) an *effective target* a_n over the C classes and a *scale* s_n
(upstream gradient over the reduction's denominator), with

    loss_n  = sum_c a_nc * (lse_n - x_nc)
    dL/dx_n = s_n * (p_n * A_n - a_n),        A_n = sum_c a_nc.

The forward saves one log-sum-exp per row; the backward rebuilds
p_n = exp(x_n - lse_n) chunk by chunk straight into the gradient.

Modules, in the order a call goes through them:

- :mod:`~celib.torch_ops.api`: the public :func:`cross_entropy` (checks, then a backend);
- :mod:`~celib.torch_ops.checks`: input checks and the shape bookkeeping (``Spec``);
- :mod:`~celib.torch_ops.rows`: the effective target a_n (sparse for class indices)
  and the row-wise formulas of the loss and the gradient, shared by both torch paths;
- :mod:`~celib.torch_ops.torch_backend`: the autograd Function of the torch backend;
- :mod:`~celib.torch_ops.triton_backend`: every call into ``celib.triton_kernels``
  (imported lazily, only when the Triton backend is chosen), and the backend choice;
- :mod:`~celib.torch_ops.linear`: :func:`linear_cross_entropy`, a chunk of rows at a time;
- :mod:`~celib.torch_ops.functional`: the loss in plain torch ops, used under
  torch.func transforms and forward-mode AD.

Backends: ``"torch"`` (torch ops, any device), ``"triton"`` (the fused kernel),
``"auto"`` (Triton on CUDA when triton is installed, else torch).
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "celib.torch_ops needs PyTorch, which is not installed: pip install 'celib[torch]' "
        "(the NumPy reference, celib.cross_entropy, works without it)"
    ) from error

from .api import cross_entropy
from .checks import check_class_indices as _check_class_indices
from .linear import _linear_pass, linear_cross_entropy
from .rows import IndexRows as _IndexRows
from .triton_backend import BACKENDS
from .triton_backend import linear_uses_triton as _linear_uses_triton

__all__ = ["cross_entropy", "linear_cross_entropy", "BACKENDS"]
# internals under their former names, for chapter 8 (which prints _linear_pass), the tests
# and benchmarks/tune_gpu_kernel.py
_INTERNALS = (_check_class_indices, _linear_pass, _IndexRows, _linear_uses_triton)
