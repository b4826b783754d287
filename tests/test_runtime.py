"""Process-wide settings for dreaming: applied only when asked, and they take effect."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

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
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr
    before, after_dreamer, after_cuda, after_cpu, kept = out.stdout.split()
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
    out = subprocess.run([sys.executable, "-c", GIVE_BACK], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    dropped_on_free, ran, given_back = out.stdout.split()
    assert int(dropped_on_free) < 50 and ran == "True" and int(given_back) > 150, out.stdout
