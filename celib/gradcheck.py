"""Alias of :mod:`celib.gradient_check`, kept for ``celib.gradcheck.compare`` and older imports.

Unlike ``torch.autograd.gradcheck``, this is a module, not a function: calling
it raises a TypeError that says what to call instead.
"""

import sys
import types

from .gradient_check import Comparison, compare, numerical_grad, relative_error

__all__ = ["numerical_grad", "relative_error", "compare", "Comparison"]


class _AliasModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        raise TypeError(
            "celib.gradcheck is a module (an alias of celib.gradient_check), not a function: "
            "call celib.numerical_grad(f, x, eps) for central differences, "
            "celib.compare(actual, expected) or celib.relative_error(actual, expected) to compare "
            "gradients; for torch functions use torch.autograd.gradcheck"
        )


sys.modules[__name__].__class__ = _AliasModule
