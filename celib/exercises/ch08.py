"""Checkers for chapter 8, "The linear layer and large vocabularies".

The output layer of a language model: logits Z = h W^T + b with hidden states
h of shape (N, H), a weight W of shape (V, H) (the layout of torch.nn.Linear)
and a bias b of shape (V,). With G = dL/dZ the chapter derives

    dL/dW = G^T h   (V, H),    dL/db = sum_n G_n   (V,),    dL/dh = G W   (N, H).

    from celib.exercises import ch08
    ch08.check_logits_gib(logits_gib)
    ch08.check_linear_ce_grads(linear_ce_grads)
    ch08.check_chunked_logsumexp(chunked_logsumexp)

Each checker prints that all cases pass or the first failing case, in the
notebook's language, and returns True or False.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ._core import Case, _lang, run_checker

__all__ = ["check_logits_gib", "check_linear_ce_grads", "check_chunked_logsumexp"]

_SHAPES = {
    "en": "{what} should have shape {expected}, got shape {actual}",
    "zh": "{what} 的形狀應為 {expected}，實際為 {actual}",
}
_COUNT = {
    "en": "return {k} arrays ({names})",
    "zh": "請傳回 {k} 個陣列（{names}）",
}


def _pack(result, shapes, names, lang=None):
    """Check a tuple of arrays against ``shapes`` and concatenate them, flattened."""
    try:
        parts = list(result)
    except TypeError:
        parts = None
    if parts is None or len(parts) != len(shapes):
        raise TypeError(_COUNT[_lang(lang)].format(k=len(shapes), names=", ".join(names)))
    flat = []
    for part, shape, what in zip(parts, shapes, names):
        arr = np.asarray(part, dtype=np.float64)
        if arr.shape != shape:
            raise ValueError(_SHAPES[_lang(lang)].format(what=what, expected=shape,
                                                         actual=arr.shape))
        flat.append(arr.ravel())
    return np.concatenate(flat)


# ---------------------------------------------------------------------------
# exercise 1: the size of the logits
# ---------------------------------------------------------------------------

def _logits_gib(tokens, vocab, bytes_per_element):
    return tokens * vocab * bytes_per_element / 2**30


def check_logits_gib(fn, *, lang=None, quiet=False):
    """Check ``fn(tokens, vocab, bytes_per_element) -> GiB`` of an N x V logits tensor.

    1 GiB = 2^30 bytes (IEC 80000-13), the unit in which torch and nvidia-smi
    report memory.

    Returns
    -------
    bool
    """
    def case(t, v, nbytes, label):
        return Case({"tokens": t, "vocab": v, "bytes_per_element": nbytes}, label,
                    rtol=1e-12, atol=0.0)

    cases = [
        case(8192, 50257, 4, {"en": "GPT-2, 8192 tokens, float32",
                              "zh": "GPT-2，8192 個 token，float32"}),
        case(131072, 256000, 2, {"en": "Gemma, 131072 tokens, bfloat16",
                                 "zh": "Gemma，131072 個 token，bfloat16"}),
        case(1, 128256, 2, {"en": "a single token", "zh": "只有一個 token"}),
        case(0, 50257, 4, {"en": "no tokens", "zh": "沒有 token"}),
        case(2**15, 2**15, 1, {"en": "exactly 1 GiB (8-bit)", "zh": "剛好 1 GiB（8 位元）"}),
    ]
    return run_checker({"en": "GiB of the logits", "zh": "logits 占用的 GiB"},
                       fn, _logits_gib, cases, lang=lang, quiet=quiet)


# ---------------------------------------------------------------------------
# exercise 2: dh, dW, db of the linear layer followed by cross-entropy
# ---------------------------------------------------------------------------

def _linear_ce_grads(h, W, b, target):
    G = reference.cross_entropy_grad(h @ W.T + b, target)
    return G @ W, G.T @ h, G.sum(axis=0)


def _grad_problem(seed, N, H, V, scale=1.0, ignored=()):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, V, size=N)
    target[list(ignored)] = -100
    return {"h": scale * rng.standard_normal((N, H)), "W": 0.5 * rng.standard_normal((V, H)),
            "b": 0.1 * rng.standard_normal(V), "target": target}


def check_linear_ce_grads(fn, *, lang=None, quiet=False):
    """Check ``fn(h, W, b, target) -> (dh, dW, db)`` for the mean cross-entropy of h W^T + b.

    ``target`` holds class indices; -100 marks an ignored position (no loss, no
    gradient, not counted in the mean), as in torch.nn.functional.cross_entropy.

    Returns
    -------
    bool
    """
    def shapes(h, W, b):
        return (h.shape, W.shape, b.shape)

    def learner(h, W, b, target):
        return _pack(fn(h=h, W=W, b=b, target=target), shapes(h, W, b), ("dh", "dW", "db"), lang)

    def ref(h, W, b, target):
        return _pack(_linear_ce_grads(h, W, b, target), shapes(h, W, b), ("dh", "dW", "db"))

    cases = [
        Case(_grad_problem(0, 4, 3, 5), {"en": "N = 4, H = 3, V = 5", "zh": "N = 4、H = 3、V = 5"}),
        Case(_grad_problem(1, 1, 2, 6), {"en": "a single token", "zh": "只有一個 token"}),
        Case(_grad_problem(2, 6, 4, 7, ignored=(1, 4)),
             {"en": "two ignored targets (-100)", "zh": "有兩個被忽略的目標（-100）"}),
        Case(_grad_problem(3, 5, 6, 3), {"en": "H > V", "zh": "H > V"}),
        Case(_grad_problem(4, 3, 2, 4, scale=500.0),
             {"en": "large logits (hundreds)", "zh": "很大的 logits（數百）"}),
    ]
    return run_checker({"en": "dh, dW and db of linear + cross-entropy",
                        "zh": "線性層加交叉熵的 dh、dW、db"},
                       learner, ref, cases, lang=lang, quiet=quiet)


# ---------------------------------------------------------------------------
# exercise 3: log-sum-exp over chunks of the vocabulary
# ---------------------------------------------------------------------------

def _chunked_logsumexp(Z, chunk_size):
    return reference.logsumexp(Z, axis=-1)


def check_chunked_logsumexp(fn, *, lang=None, quiet=False):
    """Check ``fn(Z, chunk_size) -> lse`` of shape (N,), visiting the V columns in chunks.

    The reference is ``celib.logsumexp(Z, axis=-1)``; the checker cannot see
    whether the columns were visited in chunks, but its cases break the usual
    mistakes of an online log-sum-exp: chunk sizes that do not divide V, logits
    near 1e4 (no max shift: overflow), a whole chunk of -inf (a running maximum
    of -inf gives -inf - (-inf) = NaN), and rows that are all -inf.

    Returns
    -------
    bool
    """
    rng = np.random.default_rng(8)
    Z = rng.standard_normal((3, 10))
    Z_minf = rng.standard_normal((2, 9))
    Z_minf[:, :4] = -np.inf
    Z_all = rng.standard_normal((3, 5))
    Z_all[1] = -np.inf
    cases = [
        Case({"Z": Z, "chunk_size": 4}, {"en": "V = 10 in chunks of 4",
                                          "zh": "V = 10，每塊 4 行"}),
        Case({"Z": Z, "chunk_size": 1}, {"en": "chunks of one column", "zh": "每塊只有一行"}),
        Case({"Z": Z, "chunk_size": 64}, {"en": "one chunk larger than V",
                                           "zh": "一塊就比 V 還大"}),
        Case({"Z": 1e4 + rng.standard_normal((2, 7)), "chunk_size": 3},
             {"en": "logits near 1e4", "zh": "logits 約為 1e4"}),
        Case({"Z": Z_minf, "chunk_size": 4}, {"en": "a first chunk of -inf only",
                                               "zh": "第一塊全是 -inf"}),
        Case({"Z": Z_all, "chunk_size": 2}, {"en": "a row of all -inf (lse = -inf)",
                                              "zh": "有一列全是 -inf（lse = -inf）"}),
    ]
    return run_checker({"en": "log-sum-exp over chunks of the vocabulary",
                        "zh": "分塊計算詞彙表上的 log-sum-exp"},
                       fn, _chunked_logsumexp, cases, lang=lang, quiet=quiet)
