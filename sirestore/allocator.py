"""The C allocator's handling of freed memory, for speed on a CPU (glibc on Linux; elsewhere a no-op).

By default glibc's malloc maps every large block (the feature maps of a network: megabytes each) fresh from
the kernel and unmaps it when freed, so every tensor of every layer pays a page fault per 4 KiB page when it
is first written. On the 2-core test machine that was 13,500 faults and about a quarter of the time of one
512 x 512 network evaluation, and half of it at 1024 px (`python scripts/bench_speed.py` measures it: the
table's conditions name the allocator). `keep_freed_memory()` makes malloc serve large blocks from its heap
and keep what is freed for the next layer instead: once the heap has settled (a few evaluations), next to no
faults (0-34 per 512 px evaluation). The price is that freed memory stays with the process (up to `KEEP` bytes
at the top of the heap) until `release_freed_memory()`, and that the heap fragments: the tiled restoration of a
24 MP photo with `--max-memory 1GB` peaked at 1.30 GiB of resident memory with it against 1.08-1.15 GiB without
(README, big images).

The command line calls `keep_freed_memory()` for every command (`sirestore serve` releases after each job);
the Python API leaves the process's allocator alone unless the application calls it.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_MAX = -4
KEEP = 1 << 30  # freed bytes at the top of the heap that malloc keeps instead of returning them (1 GiB)

_state = {"kept": False}


@functools.cache  # platform.libc_ver reads the Python executable: once per process, not per served job
def _libc() -> ctypes.CDLL | None:
    """glibc, or None on another C library or system."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Serve large blocks from malloc's heap (no fresh mapping per tensor) and keep up to `KEEP` freed bytes for
    reuse. Process-wide and idempotent; True when glibc took both settings, False where it does not apply."""
    if _state["kept"]:
        return True
    libc = _libc()
    if libc is None:
        return False
    # mallopt returns 1 on success; a block too large for the heap still falls back to a mapping
    _state["kept"] = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, KEEP) == 1
    return _state["kept"]


def release_freed_memory() -> bool:
    """Return the freed memory malloc keeps to the system (malloc_trim); True when some was returned."""
    libc = _libc()
    return libc is not None and libc.malloc_trim(0) == 1


def kept() -> bool:
    """Whether `keep_freed_memory()` is in effect in this process."""
    return _state["kept"]
