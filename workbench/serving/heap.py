"""Large request buffers go back to the OS when freed (glibc's malloc).

glibc serves an allocation above M_MMAP_THRESHOLD (128 KiB at start) with its own mmap
and unmaps it on free, but the threshold is dynamic: once such a block is freed, glibc
raises the threshold to that block's size (up to 32 MiB on 64-bit), so the next request
bodies and tensors of that size come from the heap arenas (one per thread that
allocates), and a burst of them leaves those arenas grown. Measured with
`benchmarks/serving_overload.py` (binary 224 x 224 tensors, 600 kB each, at 2.5x the
peak): resident memory 265 MiB before, 357 MiB at the peak and still 340 MiB after,
28 % above its start. Setting the threshold explicitly turns the adjustment off, so every
buffer over it is mapped and unmapped on its own; buffers below it (most of Python's
objects never reach malloc at all) are unaffected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
DEFAULT_THRESHOLD = 256 * 1024


def return_large_buffers(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes; False where the C library is not
    glibc (musl, macOS) or refuses, and nothing changes."""
    if platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold)))
