"""The command line as a user meets it: real processes, real files."""
import subprocess
import sys

import av
import numpy as np
from PIL import Image

CMD = [sys.executable, "-m", "stream"]
SMALL = ["--size", "64x48", "--seed", "1", "--device", "cpu"]


def run(*args, cwd=None):
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_render_writes_exactly_n_frames_in_every_format(tmp_path):
    for name in ("v.mp4", "v.gif", "v.png", "frames"):
        r = run("render", "--class", "volcano", "--frames", "3", "--output", str(tmp_path / name), *SMALL)
        assert r.returncode == 0, r.stderr
    with av.open(str(tmp_path / "v.mp4")) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 3 and (frames[0].width, frames[0].height) == (64, 48)
    assert Image.open(tmp_path / "v.gif").n_frames == 3
    assert Image.open(tmp_path / "v.png").size == (64, 48)
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 3


def test_render_is_deterministic_and_takes_a_start_image_and_mixes(tmp_path):
    start = tmp_path / "red.png"
    Image.fromarray(np.full((30, 40, 3), (255, 0, 0), np.uint8)).save(start)
    outs = []
    for i in range(2):
        out = tmp_path / f"s{i}.png"
        r = run("render", "--class", "pizza", "--class", "volcano", "--start", str(start), "--frames", "2",
                "--output", str(out), *SMALL)
        assert r.returncode == 0, r.stderr
        outs.append(np.asarray(Image.open(out)))
    assert np.array_equal(outs[0], outs[1])
    assert outs[0][..., 0].mean() > outs[0][..., 2].mean()  # still mostly the red photo


def test_user_errors_are_one_line_without_traceback(tmp_path):
    cases = [
        (["render", "--class", "qqxxzz", "--output", str(tmp_path / "x.png")], "; try: volcano"),
        (["render", "--class", "volcano", "--output", str(tmp_path / "x.avi")], "use .mp4"),
        (["render", "--class", "volcano", "--output", str(tmp_path / "no" / "x.png")], "does not exist"),
        (["render", "--class", "volcano", "--size", "12x12"], "between 32 and 4096"),
        (["render", "--class", "volcano", "--start", str(tmp_path / "missing.jpg")], "cannot read start image"),
        (["render", "--class", "volcano", "--layer", "nope", "--output", str(tmp_path / "x.png")], "no layer"),
        (["render", "--class", "volcano", "--frames", "0"], "at least 1"),
        (["classes", "qqxxzz"], "is not an ImageNet class"),
    ]
    for args, text in cases:
        r = run(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert text in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_existing_outputs_are_kept_unless_forced(tmp_path):
    out = tmp_path / "v.png"
    out.write_bytes(b"precious")
    r = run("render", "--class", "volcano", "--frames", "1", "--output", str(out), *SMALL)
    assert r.returncode == 2 and "exists; use --force" in r.stderr and out.read_bytes() == b"precious"
    r = run("render", "--class", "volcano", "--frames", "1", "--output", str(out), "--force", *SMALL)
    assert r.returncode == 0 and out.read_bytes() != b"precious"
    assert "dreamstream render: 'volcano'" in r.stderr and "dreaming v.png" in r.stderr  # banner, progress
    r = run("render", "--layer", "_blocks.10", "--frames", "1", "--output", str(out), "--force", "-q", *SMALL)
    assert r.returncode == 0 and r.stdout.strip() == str(out) and r.stderr == ""  # -q: the path alone


def test_version_flags_anywhere_and_quiet_pipes():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("dreamstream ")
    assert run("classes", "pizza", "-v").returncode == 0 and run("-q", "classes", "pizza").returncode == 0
    p = subprocess.Popen([*CMD, "classes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()  # `dreamstream classes | head -1`
    assert p.wait(60) == 0 and b"Broken pipe" not in p.stderr.read()


def test_a_busy_port_is_the_first_thing_said():
    import socket

    with socket.socket() as busy, socket.socket() as spare:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        spare.bind(("127.0.0.1", 0))
        port, other = busy.getsockname()[1], spare.getsockname()[1]
        spare.close()
        r = run("serve", "--port", str(port), "--ws-port", str(other), "--device", "cpu")
    assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr and "--port" in r.stderr
    assert "serving" not in r.stdout and "Traceback" not in r.stderr


def test_classes_lists_and_explains():
    r = run("classes")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1000
    names = [line[6:] for line in r.stdout.splitlines()]
    assert len(set(names)) == 1000 and names[837] == "sunglasses (dark glasses, shades)"  # twins told apart
    r = run("classes", "person")
    assert r.returncode == 2 and "ImageNet has no people class" in r.stderr and "try: scuba diver" in r.stderr
    assert "prison" not in r.stderr
    r = run("classes", "963")
    assert r.returncode == 0 and r.stdout.startswith("pizza\n")
    r = run("classes", "pizza + Volcanos")
    assert r.returncode == 0 and "963" in r.stdout and "980" in r.stdout and "0.500" in r.stdout
