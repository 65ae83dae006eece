"""celib.distributed on real process groups: gloo on 127.0.0.1, 1, 2 and 3 ranks.

Each world size is started once (tests/distributed_workers.py runs every case inside the
group and returns numbers); the tests below assert on those numbers. A group that does
not finish within its timeout is killed and fails the tests, so a hang fails fast.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import distributed_workers as workers

from celib import distributed

WORLDS = (1, 2, 3)
TIMEOUT = 240.0  # seconds for one group (about 15 s on two busy cores)


@pytest.fixture(scope="module", autouse=True)
def _stop_the_fork_server():
    """spawn_local_group forks its ranks from a fork server; stop it with the module, so
    that no process outlives the tests."""
    yield
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()


@pytest.fixture(scope="module")
def results():
    cache = {}

    def get(world):
        if world not in cache:
            try:
                cache[world] = distributed.spawn_local_group(
                    workers.everything, world, timeout=TIMEOUT
                )
            except RuntimeError as exc:
                cache[world] = exc
        if isinstance(cache[world], Exception):
            pytest.fail(f"the group of {world} rank(s) failed: {cache[world]}")
        return cache[world]

    return get


def _worst(per_rank, key):
    worst = {}
    for out in per_rank:
        for name, err in out[key].items():
            worst[name] = max(worst.get(name, 0.0), err)
    return worst


def _tolerance(name):
    return 1e-5 if name.startswith("float32") else 1e-12


@pytest.mark.parametrize("world", WORLDS)
def test_every_option_matches_cross_entropy_on_the_full_logits(results, world):
    worst = _worst(results(world), "options")
    assert len(worst) >= 100  # 2 dtypes x 2 kinds x 3 reductions x weight x smoothing x ...
    assert any("k2" in n for n in worst), "K-dimensional inputs are covered"
    bad = {n: e for n, e in worst.items() if not e <= _tolerance(n)}
    assert not bad, f"loss or gradient differs from F.cross_entropy: {bad}"


@pytest.mark.parametrize("world", WORLDS)
def test_linear_variant_matches_linear_cross_entropy(results, world):
    worst = _worst(results(world), "linear")
    assert len(worst) >= 100
    bad = {n: e for n, e in worst.items() if not e <= (1e-5 if "float32" in n else 1e-11)}
    assert not bad, f"differs from celib.torch_ops.linear_cross_entropy: {bad}"


def test_matches_dtensor_loss_parallel(results):
    worst = _worst(results(2), "loss_parallel")
    assert len(worst) == 9
    bad = {n: e for n, e in worst.items() if not e <= 1e-12}
    assert not bad, f"differs from torch.distributed.tensor.parallel.loss_parallel: {bad}"


SHARED = [
    "target-out-of-range",
    "negative-target",
    "gap",
    "reduction-differs",
    "smoothing-differs",
    "target-differs",
    "weight-wrong-length",
    "linear-target-out-of-range",
    "chunk-size-differs",
    "input-width-differs",
]


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("case", SHARED + ["overlap"])
def test_a_shared_mistake_raises_the_same_error_on_every_rank(results, world, case):
    if case == "overlap" and world == 1:
        pytest.skip("one rank cannot overlap another")
    if case.endswith("differs") and world == 1:
        pytest.skip("one rank cannot differ from another")
    seen = {out["bad"][case] for out in results(world)}
    assert len(seen) == 1, f"the ranks raised different errors: {seen}"
    kind, message = seen.pop()
    expected = "IndexError" if "range" in case or "negative" in case else "ValueError"
    assert kind == expected, message
    if "range" in case:
        assert "target 8 at position (2,)" in message and "8 classes" in message
    if case in ("gap", "overlap"):
        assert "do not tile" in message
        assert all(f"rank {r}: [" in message for r in range(world))


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize(
    "case,error",
    [
        ("bad-argument-on-one-rank", "ValueError"),
        ("not-a-tensor-on-one-rank", "TypeError"),
        ("target-shape-differs", "ValueError"),
    ],
)
def test_a_mistake_on_one_rank_raises_on_every_rank(results, world, case, error):
    errors = [out["bad"][case] for out in results(world)]
    assert errors[0][0] == error, errors[0]
    for kind, message in errors[1:]:
        assert kind == "RuntimeError" and "rank(s) [0]" in message


@pytest.mark.parametrize("world", WORLDS)
def test_linear_default_chunks_agree_across_uneven_shards(results, world):
    """The default chunk_size once depended on V_local: uneven shards ran different numbers
    of chunks (and so of collectives) and the ranks waited for each other forever."""
    assert all(out["bad"]["default-chunk-uneven-shards"] < 1e-12 for out in results(world))


@pytest.mark.parametrize("world", WORLDS)
def test_the_group_still_works_after_every_mistake(results, world):
    assert all(out["bad"]["still-works"] < 1e-12 for out in results(world))


def test_run_local_demo_reports_agreement():
    out = distributed.run_local_demo(2, N=4, V=5, timeout=TIMEOUT, weight=True, label_smoothing=0.1)
    assert [o["columns"] for o in out] == [(0, 3), (3, 5)]
    assert all(o["loss_error"] < 1e-12 and o["grad_error"] < 1e-12 for o in out)


def test_a_rank_that_raises_or_hangs_fails_fast():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        distributed.spawn_local_group(workers.divide_by_zero, 2, timeout=TIMEOUT)
    with pytest.raises(RuntimeError, match="did not finish within"):
        distributed.spawn_local_group(workers.hang, 2, timeout=3.0)


def test_without_an_initialised_group_it_says_so():
    if dist.is_initialized():
        pytest.skip("a default group exists in this process")
    x = torch.zeros(2, 3)
    with pytest.raises(RuntimeError, match="init_process_group"):
        distributed.vocab_parallel_cross_entropy(x, torch.tensor([0, 1]), vocab_start=0)


def test_communication_bytes_per_row():
    one = distributed.communication_bytes_per_row(1, 32000)
    assert one["celib_bytes"] == 0 and one["allgather_bytes"] == 0
    four = distributed.communication_bytes_per_row(4, 32000)
    assert four["celib_numbers"] == 3 and four["celib_bytes"] == 2 * 0.75 * 3 * 4
    assert four["allgather_bytes"] == 0.75 * 32000 * 4
    assert (
        distributed.communication_bytes_per_row(4, 32000, label_smoothing=True)["celib_numbers"]
        == 4
    )
