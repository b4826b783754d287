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


def test_a_photo_keeps_its_shape_and_the_command_says_so(tmp_path):
    """astronaut (512x512) was dreamed at 480x270 with a widened face, without a word."""
    from skimage import data

    photo = data.astronaut()
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    config = tmp_path / "small.toml"
    config.write_text("[dream]\nsize = [96, 54]\nsteps = 1\n")  # 5184 pixels: the photo gets 72x72
    common = ["--start", str(tmp_path / "astronaut.png"), "--frames", "1", "--config", str(config),
              "--seed", "1", "--device", "cpu"]
    r = run("render", *common, "--output", str(tmp_path / "own.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "own.png").size == (72, 72)  # the photo's shape, about as many pixels
    assert "start image 512x512 dreamed at 72x72, its own shape" in r.stderr
    r = run("render", *common, "--size", "96x54", "--output", str(tmp_path / "crop.png"))
    assert r.returncode == 0, r.stderr
    assert "start image 512x512 cropped to 96x54 (--fit pad keeps all of it)" in r.stderr
    out = np.asarray(Image.open(tmp_path / "crop.png")).astype(float)
    middle = np.asarray(Image.fromarray(photo[112:400]).resize((96, 54), Image.BILINEAR)).astype(float)
    stretched = np.asarray(Image.fromarray(photo).resize((96, 54), Image.BILINEAR)).astype(float)
    assert np.abs(out - middle).mean() < 0.6 * np.abs(out - stretched).mean()  # the middle, not squashed


def test_render_refuses_what_it_cannot_honour_and_announces_what_it_changes(tmp_path):
    r = run("render", "--class", "volcano", "--frames", "1", "--output", str(tmp_path / "odd.mp4"), "-q",
            "--size", "63x64", "--seed", "1", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "H.264 needs even sides: 63x64 rounded to 62x64" in r.stderr  # said even with -q
    with av.open(str(tmp_path / "odd.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (62, 64)


def test_user_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    cases = [
        (["render", "--class", "volcano", "--fps", "0"], "--fps 0: must be between 1 and 120"),
        (["render", "--class", "volcano", "--layer", "_blocks.10"], "--class and --layer are two kinds of dream"),
        (["render", "--class", "volcano", "--fit", "pad"], "--fit says how a --start photo meets the frame"),
        (["render", "--class", "volcano", "--output", str(tmp_path / "afile" / "x.png")],
         f"cannot write {tmp_path / 'afile' / 'x.png'}: {tmp_path / 'afile'} is a file, not a folder"),
        (["render", "--class", "volcano", "--output", "/proc/a.png"], "cannot write /proc/a.png: /proc refuses it"),
        (["serve", "--host", "999.1.1.1", "--device", "cpu"], "--host 999.1.1.1: not an address or a name"),
        (["render", "--class", "qqxxzz", "--output", str(tmp_path / "x.png")], "; try: volcano"),
        (["render", "--class", "volcano", "--output", str(tmp_path / "x.avi")], "use .mp4"),
        (["render", "--class", "volcano", "--output", str(tmp_path / "no" / "x.png")], "does not exist"),
        (["render", "--class", "volcano", "--size", "12x12"], "between 32 and 4096"),
        (["render", "--class", "volcano", "--start", str(tmp_path / "missing.jpg")], "cannot read start image"),
        (["render", "--layer", "nope", "--output", str(tmp_path / "x.png")], "no layer"),
        (["render", "--class", "volcano", "--frames", "0"], "at least 1"),
        (["classes", "qqxxzz"], "is not an ImageNet class"),
        (["serve", "--log-file", str(tmp_path / "no" / "x.log")], "cannot write the log file"),
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


def test_a_stun_or_turn_server_webrtc_cannot_use_is_one_line_at_start(tmp_path):
    import socket

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    cfg = tmp_path / "bad.toml"
    cfg.write_text('device = "cpu"\n[dream]\nsize = [64, 64]\n[webrtc]\nice_servers = ["turn:turn.example.org:3478"]\n')
    r = run("serve", "--config", str(cfg), "--port", str(free_port()), "--ws-port", str(free_port()),
            "--state-dir", str(tmp_path / "state"))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "webrtc.ice_servers" in r.stderr and "turn:USER:PASSWORD@" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
