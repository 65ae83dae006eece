"""celib.book's peak_extra_bytes: the memory figure of chapter 8 and bench_torch_cpu.py."""

import sys

import numpy as np
import pytest

from celib.book import peak_extra_bytes

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="peak_extra_bytes reads Linux's /proc"
)


def test_peak_of_a_temporary_array_is_seen_after_it_is_freed():
    size = 64 << 20

    def make_and_drop():
        a = np.ones(size, np.uint8)  # touched, so resident
        del a

    peak = peak_extra_bytes(make_and_drop)
    # within a few pages: the RSS before the call may include a little that gets freed
    assert 0.95 * size <= peak < size + (16 << 20)


def test_a_call_that_allocates_nothing_adds_little():
    assert peak_extra_bytes(lambda: None) < (4 << 20)
