"""A dream step allocates the same buffers every step: they must be reused, not faulted in again."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Page faults per dreamed frame, in a fresh process (the setting is process-wide, once set it stays).
FAULTS_PER_FRAME = """
import resource, sys
import dreamer.loop
from dreamer.classes import parse
from dreamer.models import load_model
if sys.argv[1] == "default":
    dreamer.loop.tune_for_cpu_dreaming = lambda: None
d = dreamer.loop.Dreamer(load_model(), dreamer.loop.DreamSettings(size=(320, 180), steps=3), seed=0)
d.set_target(parse("volcano"))
for _ in range(2):
    d.frame()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    d.frame()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
"""


def faults_per_frame(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", FAULTS_PER_FRAME, mode], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_dream_buffers_are_reused_instead_of_faulted_in_every_frame():
    default, kept = faults_per_frame("default"), faults_per_frame("kept")
    assert default > 2000  # glibc's defaults: the step's activations come back as fresh pages
    assert kept < default / 10
