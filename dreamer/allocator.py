"""Keep freed memory in the process: a dream step on the CPU allocates the same buffers every step.

glibc hands blocks over its mmap threshold back to the kernel on free, and trims the heap
top, so each step's activations come back as fresh pages: ~15,000 page faults per frame
at 320x180. With both thresholds raised the buffers are reused: 6 faults per frame and
15-20% more frames per second on a 2-core CPU (`scripts/bench.py`), at the same peak
memory. A no-op where the C library has no `mallopt` (macOS, Windows, musl).
"""
from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
TRIM_BYTES = 1 << 30  # trim the heap top only when over 1 GiB is free there
MMAP_BYTES = 1 << 25  # glibc's ceiling for the mmap threshold (32 MiB on 64-bit)

_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds, once per process. True if they took effect."""
    global _done
    if _done:
        return True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES))
    log.debug("malloc thresholds raised: %s", _done)
    return _done
