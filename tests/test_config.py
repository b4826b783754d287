from pathlib import Path

import pytest

from stream.config import ConfigError, load_config, parse_size

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize("name", ["default.toml", "screensaver.toml", "gpu.toml"])
def test_presets_load(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.model == "efficientnet_lite0" and len(cfg.dream.size) == 2


def test_defaults_match_the_contract():
    cfg = load_config()
    assert (cfg.serve.host, cfg.serve.port, cfg.serve.ws_port) == ("127.0.0.1", 8080, 8765)
    assert cfg.queue.hold_s == 20.0


@pytest.mark.parametrize("text,message", [
    ("colour = 3", "unknown setting"),
    ("[dream]\nstep = 3", "unknown setting dream.step; did you mean 'steps'"),
    ("[serve]\nport = true", "serve.port: expected int"),
    ("[dream]\nsize = [0, 0]", r"dream.size = \(0, 0\): must be between 32 and 4096"),
    ("[dream]\nsize = [100000, 100000]", "must be between 32 and 4096"),
    ("[serve]\nmjpeg_max_fps = 0", "serve.mjpeg_max_fps = 0.0: must be between"),
    ("[serve]\nport = 70000", "serve.port = 70000"),
    ("[serve]\nport = 8765", "both 8765"),
    ("[queue]\nmode = 'democrazy'", "choose one of queue, democracy; did you mean 'democracy'"),
    ("device = 'gpu'", "device = 'gpu': choose one of auto, cpu, cuda, mps"),
    ("[dream]\noctaves = []", "at least one view scale"),
    ("[dream]\ncolour_steps = [1.0, 0.5]", "three step sizes"),
    ("playlist = ['volcano', 'qqxxzz']", "playlist: 'qqxxzz' is not an ImageNet class"),
    ("start_class = 'pizzza pie pie'", "start_class"),
    ("[chat]\nprefix = 'dream please'", "one word"),
    ("[dream]\nsteps = 'many'", "dream.steps: expected int"),
    ("[dream]\nsize = [320]", "expected 2 values"),
    ("[serve]\nport = 80.5", "serve.port: expected int"),
    ("model = ", "not valid TOML"),
    # per-frame settings made the look depend on the machine: each names its per-second successor
    ("[dream]\nzoom = 0.0125", "dream.zoom was per dreamed frame.*now dream.zoom_per_s"),
    ("[dream]\nblur_sigma = 0.4", "now dream.blur_per_s"),
    ("[dream]\nblend_frames = 12", "now dream.blend_s"),
    ("[dream]\nspin_deg = 1", "now dream.spin_deg_per_s"),
    ("[dream]\ndrift = [0.0, 0.1]", "now dream.drift_per_s"),
    ("[dream]\nmin_steps = 8\nmax_steps = 4", "min_steps = 8 is more than dream.max_steps = 4"),
    ("[rtmp]\nx264_preset = 'veryfst'", "did you mean 'veryfast'"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_parse_size():
    assert parse_size("320x180") == (320, 180)
    for bad in ("320", "axb", "10x10", "99999x100"):
        with pytest.raises(ConfigError):
            parse_size(bad)


def test_the_readme_states_the_request_limits_the_defaults_set():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    q = load_config().queue
    assert q.window_s == 60  # "a minute" below
    assert f"one request every {q.cooldown_s:g} s and at most {q.burst} a minute from one address" in readme
    for setting in (f"cooldown_s = {q.cooldown_s:g}", f"burst = {q.burst}", f"window_s = {q.window_s:g}",
                    f"attempt_burst = {q.attempt_burst}", f"attempts_per_s = {q.attempts_per_s:g}",
                    f"max_queue = {q.max_queue}"):
        assert f"`{setting}`" in readme, setting
