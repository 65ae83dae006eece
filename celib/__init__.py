"""celib: cross-entropy and its gradient, from the derivation to fused kernels.

The NumPy reference (``celib.reference``) needs numpy alone and is the ground
truth; the torch path lives in ``celib.torch_ops`` and is imported only when
asked for, so ``import celib`` works without torch.
"""

from . import gradcheck, gradient_check, losses  # noqa: F401  (submodules, as celib.losses)
from .gradient_check import Comparison, compare, numerical_grad, relative_error
from .reference import (
    cross_entropy,
    cross_entropy_and_grad,
    cross_entropy_grad,
    log_softmax,
    logsumexp,
    softmax,
    softmax_jacobian,
)
from .second_order import cross_entropy_hvp

__version__ = "0.1.0"

__all__ = [
    "cross_entropy",
    "cross_entropy_and_grad",
    "cross_entropy_grad",
    "cross_entropy_hvp",
    "log_softmax",
    "logsumexp",
    "Comparison",
    "compare",
    "numerical_grad",
    "relative_error",
    "softmax",
    "softmax_jacobian",
]
