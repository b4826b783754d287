"""Process-wide settings for dreaming: applied only when asked, and they take effect."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def script_output(script: str, *args: str, env: dict | None = None, timeout: float = 60) -> list[str]:
    """What `script` prints, run in a fresh Python process (it must exit 0)."""
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()

# In a fresh process: nothing is applied by building a Dreamer; tune_for_cpu_dreaming applies it.
CHECK = """
import cv2, torch
from dreamer import runtime
from dreamer.loop import Dreamer, DreamSettings
from dreamer.models import load_model
before = cv2.getNumThreads()
Dreamer(load_model(), DreamSettings(size=(64, 48)), seed=0).frame()
print(before, cv2.getNumThreads(), end=" ")
runtime.tune_for_cpu_dreaming("cuda")
print(cv2.getNumThreads(), end=" ")
runtime.tune_for_cpu_dreaming("cpu")
print(cv2.getNumThreads(), runtime.keep_freed_memory())
"""


def test_dreaming_changes_no_process_setting_until_a_command_asks():
    before, after_dreamer, after_cuda, after_cpu, kept = script_output(
        CHECK, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"}, timeout=120)
    assert after_dreamer == before and after_cuda == before  # no side effect of a constructor or of CUDA
    assert after_cpu == "1"
    if sys.platform.startswith("linux"):
        assert kept == "True"  # glibc accepted both malloc thresholds


def test_load_for_dreaming_loads_off_the_calling_thread_and_reraises_errors():
    import threading

    from dreamer.models import ModelUnavailable
    from dreamer.runtime import load_for_dreaming

    seen = []
    import dreamer.models as models
    real = models.load_model
    models.load_model = lambda name, device: seen.append(threading.current_thread().name) or real(name, device)
    try:
        model, device = load_for_dreaming("efficientnet_lite0", "cpu")
    finally:
        models.load_model = real
    assert seen == ["model-loader"] and device.type == "cpu" and model.name == "efficientnet_lite0"
    with pytest.raises(ModelUnavailable):
        load_for_dreaming("no_such_model", "cpu")


# In a fresh process: with freed memory kept, 200 MB of freed 1-MB blocks stay resident until
# give_back_freed_memory hands their pages back.
GIVE_BACK = """
from dreamer import runtime
def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024
assert runtime.keep_freed_memory()
blocks = [bytearray(1 << 20) for _ in range(200)]  # under the mmap threshold: from the heap
full = rss_mb()
del blocks
kept = rss_mb()
print(round(full - kept), runtime.give_back_freed_memory(), round(kept - rss_mb()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_memory_is_kept_until_it_is_given_back():
    dropped_on_free, ran, given_back = script_output(GIVE_BACK)
    assert int(dropped_on_free) < 50 and ran == "True" and int(given_back) > 150, (dropped_on_free, given_back)


# In a fresh process: 8 threads alive at once, each allocating from the heap; glibc's own
# report (malloc_info) counts the arenas they took.
ARENAS = """
import ctypes, sys, tempfile, threading
from dreamer import runtime
shared = sys.argv[1] == "shared" and runtime.share_heap_arenas()
held, started, done = [], threading.Barrier(9), threading.Event()
def allocate():
    started.wait()  # all alive at once: none can take over an arena another has left
    held.append([bytearray(64 << 10) for _ in range(16)])  # under the mmap threshold
    done.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads:
    t.start()
started.wait()
while len(held) < 8:
    pass
libc = ctypes.CDLL(None)
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes, libc.fclose.argtypes = [ctypes.c_int, ctypes.c_void_p], [ctypes.c_void_p]
with tempfile.NamedTemporaryFile("r") as report:
    out = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, out)
    libc.fclose(out)
    print(shared, report.read().count("<heap nr="))
done.set()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_threads_share_two_heap_arenas_once_asked():
    mine = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}  # glibc's default, whoever runs this

    def arenas(mode: str, **env: str) -> tuple[str, int]:
        took, count = script_output(ARENAS, mode, env={**mine, **env})
        return took, int(count)

    assert arenas("shared") == ("True", 2)
    assert arenas("shared", MALLOC_ARENA_MAX="3") == ("False", 3)  # the user's own number stands
    took, count = arenas("plain")
    assert took == "False" and count > 2  # glibc's default: an arena per thread, here


# In a fresh process: a 64 MB numpy array (numpy marks it for huge pages), every page
# touched; the kernel's own accounts of the process's setting and of the array's huge pages.
HUGE = """
import sys
import numpy as np
from dreamer import runtime
took = sys.argv[1] == "off" and runtime.no_huge_pages()
a = np.ones(64 << 20, np.uint8)
first, last = a.ctypes.data, a.ctypes.data + a.nbytes
huge, inside = 0, False
for line in open("/proc/self/smaps"):
    head = line.split()[0]
    if "-" in head and not head.endswith(":"):
        start, end = (int(x, 16) for x in head.split("-"))
        inside = start < last and end > first
    elif inside and head == "AnonHugePages:":
        huge += int(line.split()[1])
enabled = [line.split()[1] for line in open("/proc/self/status") if line.startswith("THP_enabled:")]
print(took, enabled[0] if enabled else "-", huge)
"""


@pytest.mark.skipif(not Path("/sys/kernel/mm/transparent_hugepage").exists(), reason="a kernel with huge pages")
def test_no_huge_pages_once_asked():
    def run(mode: str) -> tuple[str, str, int]:
        took, enabled, huge = script_output(HUGE, mode)
        return took, enabled, int(huge)

    took, enabled, huge = run("off")
    assert took == "True" and enabled in ("0", "-") and huge == 0
    took, enabled, huge_by_default = run("plain")
    assert took == "False" and enabled in ("1", "-")
    if huge_by_default == 0:
        pytest.skip("this machine gave the array no huge pages even when allowed (THP never, or no free ones)")
