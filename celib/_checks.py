"""Input checks shared by celib's NumPy reference and its torch path.

Every check raises an error that names the offending value, its position or
both shapes, so that a learner's mistake is never turned into a silent number.
The helpers here work on NumPy arrays; the torch path calls them on small
host-side summaries (shapes, dtypes, a few offending values) only.
"""

from __future__ import annotations

import numpy as np

REDUCTIONS = ("none", "mean", "sum")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_label_smoothing(label_smoothing):
    # a real scalar (bool, int and NumPy scalars included, as torch's float argument);
    # a string or a sequence is a TypeError, not parsed
    if isinstance(label_smoothing, (str, bytes)) or np.ndim(label_smoothing) != 0:
        raise TypeError(f"label_smoothing must be a real number in [0, 1], got {label_smoothing!r}")
    try:
        value = float(label_smoothing)
    except (TypeError, ValueError):
        raise TypeError(
            f"label_smoothing must be a real number in [0, 1], got {label_smoothing!r}"
        ) from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
    return value


def from_torch(x, name):
    """A torch tensor as a NumPy array; anything else unchanged.

    celib's NumPy functions compute values, not torch gradients: a tensor that
    requires grad is refused with a TypeError saying what to pass instead (its
    values, or celib.torch_ops for a differentiable loss). Other tensors are
    copied to the host (``detach().cpu().numpy()``); bfloat16, which NumPy
    lacks, becomes float32 (celib computes float32 for it anyway).
    """
    if type(x).__module__.split(".")[0] != "torch" or not hasattr(x, "detach"):
        return x
    if getattr(x, "requires_grad", False):
        raise TypeError(
            f"{name} is a torch tensor that requires grad; celib's NumPy functions compute "
            f"values only and cannot carry autograd through it. Pass "
            f"{name}.detach().cpu().numpy() for the values, or use celib.torch_ops.cross_entropy "
            f"(pip install celib[torch]) for a differentiable torch loss"
        )
    x = x.detach().cpu()
    if str(x.dtype) == "torch.bfloat16":
        x = x.float()
    return x.numpy()


def check_float_array(x, name):
    """Return ``x`` as an ndarray of a real floating dtype, without copying.

    A torch tensor is converted, or refused if it requires grad (:func:`from_torch`).
    """
    arr = np.asarray(from_torch(x, name))
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(
            f"{name} must hold floating-point numbers (float16, float32 or float64), "
            f"got dtype {arr.dtype}"
        )
    return arr


def compute_dtype(dtype):
    """The dtype celib computes in: float32 for float16 and float32, else float64."""
    return np.result_type(dtype, np.float32)


def loss_dtype(logits_dtype, target_dtype, kind):
    """The loss's dtype: the logits' for class indices; torch's type promotion of the
    logits' and the probabilities' dtypes for probability targets (float32 logits with
    float64 probabilities give a float64 loss, as torch)."""
    return (
        np.dtype(logits_dtype) if kind == "indices" else np.result_type(logits_dtype, target_dtype)
    )


def split_class_axis(logits):
    """Shape bookkeeping of ``torch.nn.functional.cross_entropy``.

    Logits are (C,), (N, C) or (N, C, d1, ..., dk); the class axis is 0 for a
    1-D input and 1 otherwise. Returns the class axis and C.
    """
    if logits.ndim == 0:
        raise ValueError("logits must have at least one dimension (the classes), got a scalar")
    class_axis = 0 if logits.ndim == 1 else 1
    return class_axis, logits.shape[class_axis]


def target_kind(logits, target):
    """'probabilities' when target has logits' shape, else 'indices' (torch's rule)."""
    target = np.asarray(target)
    if target.shape == logits.shape:
        if not np.issubdtype(target.dtype, np.floating):
            raise TypeError(
                "target has the same shape as logits, so it is read as class "
                f"probabilities and must be floating point; got dtype {target.dtype}"
            )
        return "probabilities"
    class_axis, _ = split_class_axis(logits)
    expected = logits.shape[:class_axis] + logits.shape[class_axis + 1 :]
    # (C,) logits with a (1,) target: one element, as torch accepts (the loss has shape ())
    if target.shape != expected and not (logits.ndim == 1 and target.shape == (1,)):
        raise ValueError(
            f"target of shape {target.shape} does not match logits of shape {logits.shape}: "
            f"expected class indices of shape {expected} or probabilities of shape {logits.shape}"
        )
    if target.dtype == np.bool_ or not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"class-index targets must be integers, got dtype {target.dtype}")
    return "indices"


def check_ignore_index(ignore_index):
    """An integer, Python's or NumPy's (not bool): torch's ``int ignore_index``.

    A float, None or a string would be compared with the targets and silently ignore
    nothing (or, for True, class 1); raise TypeError instead.
    """
    is_int = isinstance(ignore_index, (int, np.integer))
    if isinstance(ignore_index, (bool, np.bool_)) or not is_int:
        raise TypeError(
            f"ignore_index must be an integer, got {ignore_index!r} "
            f"of type {type(ignore_index).__name__}"
        )
    if not _INT64_MIN <= int(ignore_index) <= _INT64_MAX:  # torch: "Overflow when unpacking"
        raise ValueError(
            f"ignore_index={int(ignore_index)} does not fit in a 64-bit integer "
            f"(torch's ignore_index is int64: [{_INT64_MIN}, {_INT64_MAX}])"
        )
    return int(ignore_index)


def check_class_indices(target, num_classes, ignore_index):
    """Raise IndexError for the first index outside [0, C) that is not ignore_index."""
    target = np.asarray(from_torch(target, "target"))
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        value = int(target[position])
        valid = f"0 to {num_classes - 1}, or " if num_classes else "none but "
        raise IndexError(
            f"target {value} at position {position} is out of bounds for {num_classes} "
            f"classes (valid: {valid}ignore_index={ignore_index})"
        )


def check_weight(weight, num_classes):
    if weight is None:
        return None
    weight = check_float_array(weight, "weight")
    if weight.shape != (num_classes,):
        raise ValueError(
            f"weight of shape {weight.shape} does not match logits with {num_classes} "
            f"classes: expected shape ({num_classes},)"
        )
    return weight


def check_probability_options(ignore_index):
    if ignore_index >= 0:
        raise ValueError(
            f"ignore_index={ignore_index} is not supported for probability targets "
            "(torch accepts only a negative ignore_index with floating-point targets)"
        )


def check_grad_output(grad_output, reduction, loss_shape):
    """The upstream gradient: a scalar for 'mean'/'sum', the loss's shape for 'none'."""
    if grad_output is None:
        return None
    arr = check_float_array(grad_output, "grad_output")
    expected = loss_shape if reduction == "none" else ()
    if arr.shape != expected:
        raise ValueError(
            f"grad_output of shape {arr.shape} does not match the loss of shape "
            f"{expected} (reduction={reduction!r})"
        )
    return arr
