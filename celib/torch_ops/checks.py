"""Input checks of the torch path: celib._checks run on zero-size summaries of the tensors.

:class:`Spec` holds the checked options and the shape bookkeeping of one call
(the class axis moved last, everything else flattened into M rows), shared by
both backends and by linear cross-entropy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import _checks

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _numpy_dtype(dtype):
    """A NumPy dtype of the same kind: floats other than NumPy's (bfloat16, float8) read as
    float32, complex as complex128, integers by name (int64 when NumPy lacks it).

    Looked up, not computed from a tensor: under a torch.func transform a new tensor
    has no storage to convert.
    """
    name = str(dtype).removeprefix("torch.")
    if dtype.is_complex:
        return np.dtype(np.complex128)
    if dtype.is_floating_point:
        return np.dtype(name) if name in ("float16", "float32", "float64") else np.dtype(np.float32)
    if dtype == torch.bool:
        return np.dtype(np.bool_)
    return np.dtype(name) if isinstance(getattr(np, name, None), type) else np.dtype(np.int64)


def _summary(t):
    """A read-only, zero-stride NumPy array with ``t``'s shape and dtype kind.

    The checks in celib._checks look at shapes and dtypes only; this gives them
    both without copying the tensor (it may live on a GPU).
    """
    return np.broadcast_to(np.zeros((), _numpy_dtype(t.dtype)), tuple(t.shape))


def check_tensor(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")


def check_float_tensor(t, name):
    check_tensor(t, name)
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must hold floating-point numbers (float16, bfloat16, float32 or "
            f"float64), got dtype {t.dtype}"
        )


def check_class_indices(target, num_classes, ignore_index):
    """IndexError naming the first index outside [0, C) that is not ignore_index (vectorised).

    Compared in int64: uint8 arithmetic would turn ignore_index -100 into 156.
    """
    target = target.long()
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        flat = int(torch.nonzero(bad.reshape(-1))[0, 0])
        position = tuple(int(i) for i in np.unravel_index(flat, tuple(target.shape)))
        value = int(target.reshape(-1)[flat])
        valid = f"0 to {num_classes - 1}, or " if num_classes else "none but "
        raise IndexError(  # the message of celib._checks.check_class_indices
            f"target {value} at position {position} is out of bounds for {num_classes} "
            f"classes (valid: {valid}ignore_index={ignore_index})"
        )


def compute_dtype(dtype):
    """float32 for float16, bfloat16 and float32; float64 for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


_TRANSFORM_NAMES = {
    "Vmap": "torch.func.vmap",
    "Grad": "torch.func.grad (or jacrev, vjp)",
    "Jvp": "torch.func.jvp (or jacfwd)",
    "Functionalize": "torch.func.functionalize",
}


def active_transform():
    """The innermost torch.func transform active now (as a name), or None."""
    interpreter = torch._C._functorch.peek_interpreter_stack()
    if interpreter is None:
        return None
    key = interpreter.key().name
    return _TRANSFORM_NAMES.get(key, key)


def check_target_not_batched(target, kind):
    """Class indices are checked on the host; a batched (vmapped) target cannot be: say so."""
    if kind == "indices" and torch._C._functorch.is_functorch_wrapped_tensor(target):
        raise NotImplementedError(
            f"celib.torch_ops: class-index targets cannot be transformed by "
            f"{active_transform()} (they are checked on the host); map over the logits only, "
            "or use probability targets"
        )


class Spec:
    """Checked options and the shape bookkeeping of one call, shared by the backends.

    ``loss_dtype`` follows torch's type promotion (the logits' dtype for class
    indices, promoted with a probability target's); ``cdt`` is the dtype computed in.
    """

    def __init__(self, logits, target, weight, ignore_index, reduction, label_smoothing):
        check_float_tensor(logits, "logits")
        check_tensor(target, "target")
        _checks.check_reduction(reduction)
        self.eps = _checks.check_label_smoothing(label_smoothing)
        class_axis, C = _checks.split_class_axis(logits)
        self.kind = _checks.target_kind(_summary(logits), _summary(target))
        if weight is not None:
            check_float_tensor(weight, "weight")
            _checks.check_weight(_summary(weight), C)
            if weight.requires_grad and torch.is_grad_enabled():
                # torch raises too (nll_loss is not differentiable in weight); a silent
                # None gradient would leave a trained weight unchanged
                raise RuntimeError(
                    "weight requires grad, but the loss is not differentiable "
                    "with respect to the class weights (as in torch); pass "
                    "weight.detach()"
                )
            if weight.device != logits.device and logits.device.type != "meta":
                raise ValueError(f"weight is on {weight.device} but logits on {logits.device}")
        if target.device != logits.device and logits.device.type != "meta":
            raise ValueError(f"target is on {target.device} but logits on {logits.device}")
        self.ignore_index = _checks.check_ignore_index(ignore_index)
        check_target_not_batched(target, self.kind)
        if self.kind == "indices":
            check_class_indices(target, C, self.ignore_index)
            self.loss_dtype = logits.dtype
        else:
            _checks.check_probability_options(self.ignore_index)
            self.loss_dtype = torch.promote_types(logits.dtype, target.dtype)
        self.cdt = compute_dtype(self.loss_dtype)
        self.reduction = reduction
        self.class_axis = class_axis
        self.C = C
        self.shape = tuple(logits.shape)
        self.loss_shape = self.shape[:class_axis] + self.shape[class_axis + 1 :]
        self.moved_shape = self.loss_shape + (C,)
        self.M = math.prod(self.loss_shape)

    def rows(self, t):
        """(..., C, ...) -> (M, C): the class axis last, everything else flattened."""
        return t.movedim(self.class_axis, -1).reshape(self.M, self.C)

    def unrows(self, t):
        """Inverse of :meth:`rows` (a view)."""
        return t.reshape(self.moved_shape).movedim(-1, self.class_axis)
