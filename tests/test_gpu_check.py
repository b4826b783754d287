"""scripts/gpu_check.py --dry-run: the GPU check's own code, on the CPU at tiny sizes, so that
the command a GPU machine runs has run before it gets there."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run_measures_every_part_into_one_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["dry_run"] and result["notes"] == []  # nothing skipped: every part ran
    assert not [name for name, part in result.items() if isinstance(part, dict) and "error" in part]
    for size in ("64x36",):
        row = result["steps"][size]
        assert row["plain_steps_per_s"] > 0 and set(row["loop"]) == {"eager", "graphs", "graphs_batched"}
        assert not any(r["captured"] for r in row["loop"].values())  # no CUDA here: graphs fall back to eager
        assert row["loop"]["graphs_batched"]["views_per_s"] > row["loop"]["graphs_batched"]["steps_per_s"]
        assert result["preset"][size]["dreamed_fps"] > 0 and result["preset"][size]["shown_fps"] > 0
    assert result["capture"]["network_logits_max_diff"] == 0.0
    assert "error" in result["nvenc"]["h264_nvenc 128x72"]  # this machine has no NVIDIA driver
    assert result["nvenc"]["libx264 128x72"]["encode_fps"] > 0
    received = result["serve_rtmp"]["received"]
    assert received["size"] == [128, 72] and received["fps"] > 0
    assert set(result["pictures"]["views"]) == {"frame", "centre_square", "1.5x"}
    assert Path(result["pictures"]["sheet"]).is_file()
    assert "CUDA graphs need a CUDA device" in proc.stderr  # said once, in the log
