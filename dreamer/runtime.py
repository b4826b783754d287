"""Process-wide settings for dreaming, applied once, explicitly, by the commands that dream
(serve, render, screensaver, the bench and the eval), never by a constructor.

One OpenMP pool: `load_for_dreaming` loads the model in a short-lived thread, on purpose.
torch's OpenMP (libgomp) keeps a worker pool for every thread that ever ran parallel work,
and once pools hold more threads than the machine has cores, libgomp stops spin-waiting
between the dream loop's many small ops. Loading on the main thread and dreaming on the
dream thread cost a third of the dream rate on a 2-core CPU (4.2 vs 6.2 frames/s,
measured); a loader thread that exits takes its pool with it, leaving the thread that
dreams the only one (6.0 frames/s).

Keep freed memory: a dream step allocates the same buffers every step, but glibc hands
blocks over its mmap threshold back to the kernel on free and trims the heap top, so each
step's activations came back as fresh pages: ~15,000 page faults per frame at 320x180.
With both thresholds raised the buffers are reused: 6 faults per frame and 15-20% more
frames per second on a 2-core CPU, at the same peak memory. A no-op where the C library
has no `mallopt` (macOS, Windows, musl).

Few heap arenas: glibc gives each thread that allocates its own heap arena (up to 8 per
core), and each arena fragments and keeps freed pages on its own. `serve` runs a dozen
threads for hours (dream, presenter, encoder, chat, the web side's workers), so its resident
memory kept creeping. With two arenas, in one-hour soaks (scripts/soak.py): 799 MB after the
warm-up against 846, and 12 MB/h against 44-55, at the same dream rate (4.76 against 4.63
frames/s, different runs).

No huge pages in a run of hours: numpy (under every array of 4 MB or more) and x264 (under
its frame buffers, new ones with every encoder session) mark memory for transparent huge
pages (madvise MADV_HUGEPAGE), and the mark stays on that stretch of the heap after the
buffer is freed. A marked stretch comes back as whole 2 MB pages after malloc_trim has given
its free pages back (at the next touch of any byte in it, or by khugepaged, whose default
max_ptes_none of 511 needs one page present), so `serve`'s resident memory crept up for its
first half hour. In a soak, after 20 minutes: 13 marked stretches, 66 MB, every page resident
(/proc/PID/smaps, VmFlags "hg"); with numpy's marks alone turned off, 12 were back within 7
minutes, after the first ingest restart. The process-wide switch (prctl PR_SET_THP_DISABLE)
covers every library.

One OpenCV thread: OpenCV's own thread pool competes with torch's OpenMP threads for the
same cores, and its work here is small (the gradient's blur and pyramid, the presenter's
zoom, JPEG): single-threaded, the loop made 4% more frames per second.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading
from typing import TYPE_CHECKING

import cv2

if TYPE_CHECKING:  # torch is imported where it is used: these serve processes that never load it
    import torch

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
PR_SET_THP_DISABLE = 41
TRIM_BYTES = 1 << 30  # trim the heap top only when over 1 GiB is free there
MMAP_BYTES = 1 << 25  # glibc's ceiling for the mmap threshold (32 MiB on 64-bit)


ARENAS = 2  # the main thread's and one more, shared by every other thread


def _libc(name: str, *argtypes):
    """The C library's function `name` (returning an int), or None where it has none."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = list(argtypes), ctypes.c_int
    return function


def _mallopt():
    """glibc's mallopt, or None where the C library has none."""
    return _libc("mallopt", ctypes.c_int, ctypes.c_int)


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds. True if they took effect."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    done = bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES))
    log.debug("malloc thresholds raised: %s", done)
    return done


def share_heap_arenas(arenas: int = ARENAS) -> bool:
    """Let every thread started from now on share `arenas` heap arenas (glibc's
    M_ARENA_MAX), for a process that runs many threads for hours. Call it before the threads
    start: a thread keeps the arena it first got. True if it took effect; False, changing
    nothing, where the user chose a number in MALLOC_ARENA_MAX (glibc has applied it)."""
    mallopt = None if os.environ.get("MALLOC_ARENA_MAX") else _mallopt()
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, arenas))


def no_huge_pages() -> bool:
    """Turn transparent huge pages off for this process (and what it starts), for a process
    that trims its heap for hours (see above). Call it before the big buffers: a huge page
    already made stays. True if the kernel took it (Linux 3.15 and later)."""
    prctl = _libc("prctl", ctypes.c_int, *[ctypes.c_ulong] * 4)
    return prctl is not None and prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0


def give_back_freed_memory() -> bool:
    """Hand the pages of freed blocks back to the kernel (glibc's malloc_trim), keeping the
    blocks themselves. With the thresholds raised, the heap keeps every freed page resident,
    which is what makes the dream fast. A long run also makes big, one-off allocations: a
    clip's packets joined, a crowd's send buffers. Their freed pages stay counted in the
    resident memory, and fragmentation seldom reuses them. In soaks (scripts/soak.py) this
    kept serve's resident memory about 250 MB lower (846 against 1093 MB after the warm-up);
    with no huge pages as well (no_huge_pages), it stays level (README, "Long runs"). A
    long-running command calls this now and then, off its busy threads; afterwards the dream
    faults its buffers in once. True if it ran (glibc only)."""
    trim = _libc("malloc_trim", ctypes.c_size_t)
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _tune_cpu() -> None:
    keep_freed_memory()
    cv2.setNumThreads(1)


def tune_for_cpu_dreaming(device: torch.device | str = "cpu") -> None:
    """Keep freed memory and one OpenCV thread, once per process, when dreaming on the CPU."""
    import torch

    if torch.device(device).type == "cpu":
        _tune_cpu()


def cores() -> int:
    """CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_dream_threads(configured: int, reserve: int = 0) -> int:
    """The intra-op threads torch dreams with: `configured`, or every core but `reserve`.
    Why reserve: torch's threads wait for each other at the end of every small op, so one of
    them losing its core to an encoder stalls them all. On 2 cores, streaming 720p30 to RTMP,
    the dream made 3.1 frames/s with 2 threads and 4.7 with 1 (5.6 and 5.1 without RTMP):
    measured with `dreamstream serve`, docs/performance.md. Returns the count set."""
    import torch

    n = configured or max(1, cores() - reserve)
    torch.set_num_threads(n)
    return n


def lower_this_thread(nice: int) -> bool:
    """Run the calling thread (and threads it starts later) at `nice` (0..19). On Linux the
    niceness is per thread: the web side can yield to the dream thread without a second
    process. True if it took effect."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return True
    except (OSError, AttributeError):  # not Linux, or not allowed
        return False


def load_for_dreaming(name: str, device_choice: str = "auto"):
    """(model, device): the device resolved (printed by the caller) and the model loaded on it
    in a thread that then exits (one OpenMP pool, see above). Errors re-raise here."""
    from .models import load_model, resolve_device

    device = resolve_device(device_choice)
    result: list = []

    def load() -> None:
        try:
            result.append(load_model(name, device))
        except BaseException as e:  # re-raised on the calling thread: ModelUnavailable is a one-line error
            result.append(e)

    loader = threading.Thread(target=load, name="model-loader")
    loader.start()
    loader.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0], device
