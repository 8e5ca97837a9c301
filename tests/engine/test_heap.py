"""Freed heap memory goes back to the system after a model swap (engine/heap.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from engine import ModelSpec
from engine import loop
from engine.heap import release_free_heap

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not release_free_heap(),
                                reason="needs glibc's malloc_trim")

# 100 MB in 1 KB blocks, freed, with one block kept above them so that glibc cannot trim the top of its heap
# by itself: the pages stay resident until they are handed back.
SCRIPT = textwrap.dedent("""
    import ctypes, ctypes.util, sys
    sys.path.insert(0, sys.argv[1])
    from engine.heap import release_free_heap
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    def resident():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096
    blocks = [libc.malloc(1024) for _ in range(100_000)]
    for block in blocks:
        ctypes.memset(block, 1, 1024)
    keep = libc.malloc(1024)
    for block in blocks:
        libc.free(block)
    before = resident()
    release_free_heap()
    print(before - resident())
""")


def test_freed_heap_pages_are_handed_back(tmp_path):
    script = tmp_path / "heap.py"
    script.write_text(SCRIPT)
    released = int(subprocess.run([sys.executable, str(script), str(loop.__file__).rsplit("/engine/", 1)[0]],
                                  capture_output=True, text=True, check=True).stdout)
    assert released > 50_000_000  # most of the 100 MB freed


def test_a_model_swap_hands_the_freed_heap_back(engine, tiny_model_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(loop, "release_free_heap", lambda: calls.append(1) or True)
    engine.load(ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
    assert calls
    calls.clear()
    engine.unload()
    assert calls
