"""benchmarks.allocator: glibc's thresholds are set once per process where there is a glibc."""

from __future__ import annotations

import platform
import sys

import pytest

from benchmarks.allocator import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="needs glibc")
def test_thresholds_set_on_glibc_and_once():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # cached: mallopt runs once per process
    assert keep_freed_memory.cache_info().misses == 1
