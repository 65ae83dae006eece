"""torch.func support: the loss in plain differentiable torch ops, for use under a transform.

The autograd Functions of the torch and Triton backends compute their gradients
in closed form, on real storage (chunk loops, in-place buffers, host-side
checks): ``torch.func.grad``, ``jacrev``, ``jvp``, ``vmap`` and forward-mode AD
cannot run through them. Under any of these, :func:`cross_entropy` and
:func:`linear_cross_entropy` compute the same loss with ordinary torch ops
instead (as ``torch.nn.functional.cross_entropy`` does), which every transform
composes with: same values and gradients, with M x C temporaries.
"""

from __future__ import annotations

import math

import torch

from . import rows as R
from .checks import active_transform
from .torch_backend import make_target


def needs_composite(*tensors):
    """True under a torch.func transform, or for a dual tensor of forward-mode AD."""
    if active_transform() is not None:
        return True
    from torch.autograd import forward_ad

    return any(t is not None and forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def composite_cross_entropy(logits, target, weight, spec):
    """loss = sum_c a_nc (log S_n - (x_nc - m_n)), reduced, in differentiable torch ops."""
    x = spec.rows(logits).to(spec.cdt)
    tgt = make_target(target, spec, weight)
    denom = tgt.mean_denominator(spec.M, logits.device)
    if spec.C == 0:
        loss = x.sum(dim=1)
    else:
        keep = tgt.keep[:, None] if isinstance(tgt, R.IndexRows) else None
        if keep is not None:  # an ignored row gets a gradient of exactly 0, as the backends
            x = torch.where(keep, x, 0.0)
        m = x.detach().amax(dim=1, keepdim=True)  # a constant shift
        d = x - torch.where(m == -math.inf, 0.0, m)
        log_S = torch.logsumexp(d, dim=1, keepdim=True)
        a = tgt.dense(0, spec.M)
        loss = torch.where(a != 0, a * (log_S - d), 0.0).sum(dim=1)
        loss = R.no_softmax_is_nan(loss, log_S[:, 0])
        if keep is not None:
            loss = torch.where(keep[:, 0], loss, 0.0)
    return R.reduce(spec, loss, denom).to(spec.loss_dtype)
