"""The one typed config: dataclasses, loaded from TOML, overridden by command-line flags.

No other module reads files, globals or environment variables for settings; secrets
(`TWITCH_STREAM_KEY`, `TWITCH_OAUTH_TOKEN`, `DREAMSTREAM_WHIP_TOKEN`) are read here too, and only here.
"""
from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dreamer.classes import RequestError, parse
from dreamer.settings import DreamSettings, LiveSettings

from .queue.requests import QueuePolicy
from .resources import folder

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_CONFIG = folder("configs") / "default.toml"


class ConfigError(ValueError):
    pass


@dataclass
class QueueSettings(QueuePolicy):
    """The queue's rules (QueuePolicy) and where its state is kept."""

    # The folder of the queue's state file (stream/queue/store.py): requests survive a restart.
    # Empty: $STATE_DIRECTORY (systemd's StateDirectory=), else $XDG_STATE_HOME/dreamstream,
    # else ~/.local/state/dreamstream. Only `serve` uses it.
    state_dir: str = ""
    # A queue shared by several `serve` processes, kept in Redis (stream/queue/shared.py):
    # "redis://HOST:PORT/DB" or "rediss://..." (TLS); a password in the URL or $REDIS_PASSWORD.
    # Empty: the queue is this process's own, kept in state_dir.
    url: str = ""
    prefix: str = ""  # the keys' prefix; empty: "dreamstream:" + the chat channel (or "default") + ":"


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    ws_port: int = 8765
    jpeg_quality: int = 85
    # Web pages (origins) that may POST requests and open the websocket besides the page's
    # own (http://host:port); "*" allows any. Clients that send no Origin (curl) always may.
    allowed_origins: list[str] = field(default_factory=list)
    max_ws_per_ip: int = 8
    # Reverse proxies (addresses or networks, e.g. "127.0.0.1", "10.0.0.0/8") whose
    # X-Forwarded-For names the viewer; empty: every peer is the viewer itself.
    trusted_proxies: list[str] = field(default_factory=list)
    mjpeg_max_fps: float = 30.0  # per viewer; frames in between are skipped
    max_viewers: int = 200  # MJPEG viewers at once; past it a clear 503 (use a media server for more)
    mjpeg_budget_fps: float = 1000.0  # frames a second to all viewers together: 500 viewers get 2 each
    access_log: bool = False  # one log line per HTTP request (--access-log)
    # A client that has not sent a whole request (headers, or a POST's body) in this many
    # seconds, or sits idle between requests this long, is disconnected: half-open
    # connections (slowloris) cannot pile up until the process runs out of sockets.
    client_timeout_s: float = 15.0
    web_nice: int = 10  # niceness of the thread serving viewers: fan-out yields to the dream (0 = equal)
    output_nice: int = 0  # niceness of the presenter and RTMP encoder threads (0: as the dream)
    # all: one process does everything (the default); front: the page, websocket, /api and chat,
    # no model; dreamer: the model, the loop, RTMP and clips, its frames published for the
    # fronts. front and dreamer share the queue and the picture through [queue] url (Redis).
    role: str = "all"
    # a dreamer serves no viewer page (no /, /view, MJPEG, requests, websocket, /whep: the front
    # doors do), only /healthz, /metrics, /api/state, /frame.jpg, /preview.jpg, its clips and
    # thumbnails; true: the page too (a dreamer that is its own front door)
    dreamer_page: bool = False
    output_fps: float = 25.0  # shown frames per second (moving on between dreamed frames); the dream never exceeds it
    # what is shown and sent (MJPEG, RTMP, screensaver), [width, height]; empty: the dream's
    # own size, or 1280x720 when streaming to an RTMP ingest (the dream keeps dream.size)
    output_size: tuple[int, ...] = ()

    @property
    def serves_viewers(self) -> bool:
        """The page, MJPEG, requests, the websocket and /whep: every role but a dreamer's, unless asked."""
        return self.role != "dreamer" or self.dreamer_page


@dataclass
class RtmpSettings:
    url: str = ""  # rtmp:// or rtmps:// ingest; empty = no RTMP output (or --twitch)
    fps: float = 30.0  # constant output rate; frames repeat when the dream is slower
    bitrate_k: int = 0  # constant bitrate, kb/s; 0: by output size (3000 at 720p, 4500 at 1080p)
    keyframe_s: float = 2.0
    encoder: str = "auto"  # auto (NVENC with CUDA, else libx264) | libx264 | nvenc
    # libx264's speed preset; a faster one leaves the dream more CPU at some cost in picture
    # quality at the same bitrate (docs/performance.md has what each costs at 720p30)
    x264_preset: str = "veryfast"
    threads: int = 0  # libx264's threads; 0: 1 up to 720p, 2 above (off the dream's cores; stream/outputs/rtmp.py)
    audio_file: str = ""  # looped under the stream; empty = silence
    overlay: bool = True  # draw what plays, who asked, the countdown and how to ask into the stream
    overlay_position: str = "bottom"  # or "top"
    overlay_scale: float = 1.0  # text size; 1.0 reads at a glance on 720p
    # how the overlay says to ask, e.g. "ask at https://dream.example.org/"; empty: the chat
    # command when chat is read, else nothing (the page on 127.0.0.1 is no use to an audience)
    overlay_ask: str = ""
    twitch_ingest: str = "rtmp://live.twitch.tv/app"


@dataclass
class WebrtcSettings:
    # POST /whep: watch over WebRTC (H.264 encoded once for every such viewer; the page
    # falls back to MJPEG by itself). false: no /whep, the page plays MJPEG.
    enabled: bool = True
    max_peers: int = 50  # WebRTC viewers at once; past it a clear 503 (MJPEG still works)
    max_per_ip: int = 4
    connect_timeout_s: float = 15.0  # a viewer (or WHIP publisher) not connected by then is dropped
    bitrate_k: int = 0  # kb/s for everyone; 0: by the output size (webrtc_bitrate_k)
    # STUN/TURN servers for viewers behind NAT ("stun:HOST:3478", "turn:USER:PASS@HOST");
    # none: host candidates only (the same network, or a server with a public address)
    ice_servers: list[str] = field(default_factory=list)


@dataclass
class ChatSettings:
    url: str = ""  # irc://host:port, ircs://host:port or wss://host/path; empty = no chat
    channel: str = ""  # without '#'
    prefix: str = "!dream"  # "!dream volcano" asks; "!dream" alone explains how
    help_command: str = "!help"
    queue_command: str = "!queue"  # what plays and what is next
    skip_command: str = "!skip"  # moderators only (Twitch badges, IRC channel operators)
    clear_command: str = "!clear"  # moderators only: empties the queue
    nick: str = ""  # empty: anonymous (Twitch: justinfan + digits), read only
    reply_every_s: float = 1.5  # at most one reply this often (Twitch allows 20 per 30 s)


@dataclass
class SourceSettings(LiveSettings):
    """A live input to dream on, and how the dream sits on it (the LiveSettings fields)."""

    input: str = ""  # a file, camera[:N], screen[:DISPLAY] or a URL (--source); empty: the dream's own frames
    loop: bool = True  # a file starts over when it ends (serve, screensaver; a render ends with it)
    # input = "whip": the token a publisher must send (Authorization: Bearer ...); empty: anyone
    # who reaches POST /whip may publish. DREAMSTREAM_WHIP_TOKEN in the environment wins over it.
    whip_token: str = ""


@dataclass
class ClipSettings:
    # Each finished dream's last `seconds` as an mp4 at the output size (the page links it
    # from its recent strip); past max_mb the oldest go first. Off while folder is empty:
    # a clip costs disk, and without RTMP an encode (stream/outputs/clips.py gives the figures).
    folder: str = ""
    max_mb: float = 500.0
    seconds: float = 8.0


@dataclass
class LogSettings:
    # Empty: stderr (under systemd that is the journal, which gets each line's priority and
    # keeps its own timestamps). A path: that file, rotated at max_mb, `keep` old ones kept.
    file: str = ""
    max_mb: float = 10.0
    keep: int = 5


@dataclass
class ScreensaverSettings:
    caption_s: float = 4.0  # the class is named on the picture this long when it changes; 0 = never


@dataclass
class Config:
    model: str = "efficientnet_lite0"
    device: str = "auto"  # auto | cpu | cuda | mps
    # torch threads the dream uses on a CPU; 0: every core, but one fewer while streaming to
    # an RTMP ingest or dreaming a live source (the presenter, encoder and reader need it;
    # see dreamer/runtime.py)
    threads: int = 0
    seed: int | None = None  # None: a different dream every run
    start_class: str = "volcano"  # dreamed first, before anyone asks; then the playlist
    playlist: list[str] = field(default_factory=lambda: [
        "volcano", "jellyfish", "pizza", "coral reef", "peafowl", "monarch butterfly", "strawberry",
        "lighthouse", "goldfish", "daisy", "castle", "broccoli"])
    dream: DreamSettings = field(default_factory=DreamSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    rtmp: RtmpSettings = field(default_factory=RtmpSettings)
    webrtc: WebrtcSettings = field(default_factory=WebrtcSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    source: SourceSettings = field(default_factory=SourceSettings)
    log: LogSettings = field(default_factory=LogSettings)
    clips: ClipSettings = field(default_factory=ClipSettings)
    screensaver: ScreensaverSettings = field(default_factory=ScreensaverSettings)


def _coerce(value, hint, where: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return _build(hint, value, where)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0]
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, item, where) for v in value)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, typing.get_args(hint)[0], where) for v in value]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None:
            return None
        return _coerce(value, next(a for a in typing.get_args(hint) if a is not type(None)), where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and (not isinstance(value, hint) or (hint is not bool and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# Settings that were per dreamed frame, which made the look depend on the machine's speed:
# refused with the name and unit of the one that replaced each (no alias: a frame's worth
# cannot be turned into seconds without knowing the machine's rate).
RENAMED = {
    "dream.zoom": "dream.zoom_per_s (a fraction a second: 0.05 is 5% closer each second; 0.0125 a frame "
                  "at 4 frames/s was 0.05)",
    "dream.spin_deg": "dream.spin_deg_per_s (degrees a second)",
    "dream.drift": "dream.drift_per_s (fractions of the size a second)",
    "dream.blur_sigma": "dream.blur_per_s (the sigma a second of blurring adds up to: 0.4 a frame at "
                        "4 frames/s was 0.8)",
    "dream.blend_frames": "dream.blend_s (seconds: 12 frames at 4 frames/s was 3.0)",
}


def _build(cls, data: dict, where: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in sorted(set(data) - known):
        name = f"{where}.{key}" if where else key
        if name in RENAMED:
            raise ConfigError(f"{name} was per dreamed frame, so the stream's look depended on the machine's "
                              f"speed; it is now {RENAMED[name]}")
        raise ConfigError(f"unknown setting {name}{did_you_mean(key, known)} (known: {', '.join(sorted(known))})")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()})


# Ranges (inclusive) and choices of every setting that has them; lists are checked item by item.
RANGES: dict[str, tuple[float, float]] = {
    "seed": (0, 2**63 - 1), "threads": (0, 1024),
    "dream.size": (32, 4096), "dream.steps": (1, 64), "dream.step_size": (1e-4, 1.0),
    "dream.octaves": (0.1, 4.0), "dream.view_pixels": (0, 16_777_216),
    "dream.pyramid_levels": (1, 12), "dream.band_tilt": (0.25, 4.0),
    "dream.colour_steps": (0.0, 10.0), "dream.prior_weight": (0.0, 1000.0), "dream.gradient_blur": (0.0, 10.0),
    "dream.start_blur": (0.0, 20.0), "dream.sharpness": (0.0, 10.0), "dream.jitter_px": (0, 256),
    "dream.scale_range": (0.1, 4.0), "dream.rotate_deg": (0.0, 180.0), "dream.zoom_per_s": (-0.5, 2.0),
    "dream.spin_deg_per_s": (-180.0, 180.0), "dream.drift_per_s": (-1.0, 1.0), "dream.blur_per_s": (0.0, 20.0),
    "dream.blend_s": (0.0, 600.0), "dream.fps": (0.0, 240.0), "dream.min_steps": (1, 64),
    "dream.max_steps": (1, 256), "dream.views_per_step": (1, 16),
    "serve.port": (1, 65535), "serve.ws_port": (1, 65535), "serve.jpeg_quality": (1, 100),
    "serve.max_ws_per_ip": (1, 10_000), "serve.max_viewers": (1, 100_000), "serve.web_nice": (0, 19), "serve.output_nice": (0, 19),
    "serve.mjpeg_max_fps": (0.5, 120.0), "serve.mjpeg_budget_fps": (1.0, 1_000_000.0),
    "serve.client_timeout_s": (0.5, 3600.0), "serve.output_fps": (1.0, 120.0),
    "queue.hold_s": (1.0, 86_400.0), "queue.cooldown_s": (0.0, 3600.0), "queue.burst": (1, 10_000),
    "queue.window_s": (1.0, 86_400.0), "queue.max_queue": (1, 10_000), "queue.max_user_len": (1, 200),
    "queue.attempts_per_s": (0.01, 1000.0), "queue.attempt_burst": (1, 10_000),
    "rtmp.fps": (1.0, 120.0), "rtmp.bitrate_k": (0, 100_000), "rtmp.keyframe_s": (0.5, 10.0),
    "rtmp.overlay_scale": (0.2, 5.0), "webrtc.max_peers": (1, 10_000), "webrtc.max_per_ip": (1, 10_000),
    "webrtc.connect_timeout_s": (0.5, 600.0),
    "webrtc.bitrate_k": (0, 100_000), "rtmp.threads": (0, 64), "serve.output_size": (32, 4096),
    "chat.reply_every_s": (0.0, 3600.0), "screensaver.caption_s": (0.0, 3600.0), "log.max_mb": (0.01, 100_000.0), "log.keep": (0, 1000),
    "clips.max_mb": (0.01, 10_000_000.0), "clips.seconds": (1.0, 120.0),
    "source.mix": (0.0, 1.0), "source.half_life_s": (0.05, 3600.0), "source.flow_scale": (0.1, 1.0),
    "source.max_disagreement_px": (0.1, 100.0), "source.still_px": (0.0, 10.0),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "device": ("auto", "cpu", "cuda", "mps"), "dream.mode": ("class", "layer"),
    "dream.precision": ("auto", "fp32", "bf16"), "dream.capture": ("off", "graphs", "compile"),
    "queue.mode": ("queue", "democracy"), "serve.role": ("all", "front", "dreamer"),
    "rtmp.encoder": ("auto", "libx264", "nvenc"),
    "rtmp.overlay_position": ("bottom", "top"),
    "rtmp.x264_preset": ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium"),
}


def _get(cfg: "Config", path: str):
    value = cfg
    for part in path.split("."):
        value = getattr(value, part)
    return value


def validate(cfg: "Config") -> "Config":
    """Every range and choice above, for values from files and flags alike: one-line errors."""
    for path, (low, high) in RANGES.items():
        value = _get(cfg, path)
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if v is not None and not low <= v <= high:
                raise ConfigError(f"{path} = {value!r}: must be between {low:g} and {high:g}")
    for path, choices in CHOICES.items():
        value = _get(cfg, path)
        if value not in choices:
            raise ConfigError(f"{path} = {value!r}: choose one of {', '.join(choices)}{did_you_mean(value, choices)}")
    d = cfg.dream
    if not d.octaves:
        raise ConfigError("dream.octaves: give at least one view scale, e.g. [1.0, 0.7, 0.5]")
    if d.min_steps > d.max_steps:
        raise ConfigError(f"dream.min_steps = {d.min_steps} is more than dream.max_steps = {d.max_steps}")
    if d.scale_range[0] > d.scale_range[1]:
        raise ConfigError(f"dream.scale_range = {list(d.scale_range)}: the first must not exceed the second")
    if d.colour_steps and (len(d.colour_steps) != 3 or d.colour_steps[0] <= 0):
        raise ConfigError("dream.colour_steps: three step sizes (luminance > 0, two colour axes), or [] for RGB")
    if cfg.serve.output_size and len(cfg.serve.output_size) != 2:
        raise ConfigError(f"serve.output_size = {list(cfg.serve.output_size)}: [width, height], or [] for the dream's")
    for proxy in cfg.serve.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"serve.trusted_proxies: {proxy!r} is not an address or network") from None
    if cfg.queue.url and urlsplit(cfg.queue.url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("queue.url: a Redis URL, redis://HOST:PORT/DB or rediss://... (TLS)")
    if cfg.serve.role != "all" and not cfg.queue.url:
        raise ConfigError(f"--role {cfg.serve.role} shares the queue and the picture through Redis: "
                          "give --queue redis://HOST:PORT/DB ([queue] url)")
    if cfg.serve.role == "front" and (cfg.rtmp.url or cfg.source.input or cfg.clips.folder):
        raise ConfigError("--role front serves viewers only: --rtmp, --source and --clips go to the dreamer")
    if cfg.serve.port == cfg.serve.ws_port:
        raise ConfigError(f"serve.port and serve.ws_port are both {cfg.serve.port}: use two ports")
    if not cfg.playlist:
        raise ConfigError("playlist: name at least one class")
    for where, text in [("start_class", cfg.start_class), *(("playlist", p) for p in cfg.playlist)]:
        try:
            parse(text)
        except RequestError as e:
            hint = f"; did you mean {', '.join(e.suggestions[:3])}" if e.suggestions else ""
            raise ConfigError(f"{where}: {e.message}{hint}") from None
    ask = cfg.rtmp.overlay_ask
    if len(ask) > 80 or not ask.isprintable():
        raise ConfigError(f"rtmp.overlay_ask = {ask!r}: one line of at most 80 characters")
    c = cfg.chat
    for key, word in [("prefix", c.prefix), ("help_command", c.help_command), ("queue_command", c.queue_command),
                      ("skip_command", c.skip_command), ("clear_command", c.clear_command)]:
        if not word.strip() or " " in word:
            raise ConfigError(f"chat.{key} = {word!r}: one word, such as !dream")
    return cfg


def load_config(path: Path | str | None = None) -> Config:
    """Defaults <- TOML file (configs/default.toml when none is given)."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return validate(_build(Config, data, ""))


def twitch_stream_key() -> str | None:
    """Secret: from the environment only; never printed, logged or written anywhere."""
    return os.environ.get("TWITCH_STREAM_KEY") or None


def twitch_oauth_token() -> str | None:
    """Secret: lets the chat reader reply. Accepts 'oauth:xyz' or plain 'xyz'."""
    token = os.environ.get("TWITCH_OAUTH_TOKEN")
    return None if not token else token if token.startswith("oauth:") else f"oauth:{token}"


def whip_token(cfg: "Config") -> str:
    """Secret: what a WHIP publisher must send; the environment's before the config file's."""
    return os.environ.get("DREAMSTREAM_WHIP_TOKEN") or cfg.source.whip_token


def pictures_dir() -> Path:
    """Where a user's pictures go: XDG_PICTURES_DIR (from the environment, else from
    ~/.config/user-dirs.dirs), else ~/Pictures."""
    home = Path.home()
    if os.environ.get("XDG_PICTURES_DIR"):
        return Path(os.path.expandvars(os.environ["XDG_PICTURES_DIR"])).expanduser()
    dirs = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "user-dirs.dirs"
    if dirs.is_file():
        for line in dirs.read_text("utf-8", "replace").splitlines():
            if line.startswith("XDG_PICTURES_DIR="):
                return Path(line.split("=", 1)[1].strip().strip('"').replace("$HOME", str(home)))
    return home / "Pictures"


def queue_prefix(cfg: "Config") -> str:
    """The shared queue's keys start with this: one stream's keys apart from another's."""
    return cfg.queue.prefix or f"dreamstream:{cfg.chat.channel or 'default'}:"


def state_dir(queue: QueueSettings) -> Path:
    """Where `serve` keeps the queue's state: [queue] state_dir (or --state-dir), else the
    folder systemd made for the unit (StateDirectory=), else the XDG state folder."""
    if queue.state_dir:
        return Path(queue.state_dir).expanduser()
    if os.environ.get("STATE_DIRECTORY"):  # systemd: possibly several, colon-separated; the first
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "dreamstream"


def display() -> str | None:
    """The X display to open windows on, from the environment; None without one. OpenCV's Qt
    has only its X11 (xcb) platform: on Wayland it needs XWayland, which sets DISPLAY."""
    return os.environ.get("DISPLAY") or None


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """'320x180' -> (320, 180), within 32..4096 each."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{flag} must look like 320x180, got {text!r}") from None
    if not (32 <= w <= 4096 and 32 <= h <= 4096):
        raise ConfigError(f"{flag} {text}: each side must be between 32 and 4096 pixels")
    return w, h


def output_size(cfg: "Config") -> tuple[int, int]:
    """What is shown and sent: the configured size, else 1280x720 for an RTMP ingest (what
    streaming sites expect), else the dream's own size."""
    if cfg.serve.output_size:
        return tuple(cfg.serve.output_size)
    return (1280, 720) if cfg.rtmp.url else tuple(cfg.dream.size)


def webrtc_bitrate_k(webrtc: WebrtcSettings, size: tuple[int, int]) -> int:
    """The configured bitrate, or 2000 kb/s at 720p scaled by the pixels, 500 at least: the
    dream's fine texture at 25 frames a second, a tenth of what MJPEG sends at the defaults."""
    if webrtc.bitrate_k:
        return webrtc.bitrate_k
    return max(500, round(2000 * size[0] * size[1] / (1280 * 720)))


def bitrate_k(rtmp: RtmpSettings, size: tuple[int, int]) -> int:
    """The configured bitrate, or one that suits the size (Twitch's guidance for 30 fps)."""
    if rtmp.bitrate_k:
        return rtmp.bitrate_k
    pixels = size[0] * size[1]
    return 1000 if pixels <= 640 * 360 else 1500 if pixels <= 854 * 480 else 3000 if pixels <= 1280 * 720 else 4500


def systemd_notify() -> tuple[str | None, int | None]:
    """Where systemd listens for READY/WATCHDOG/STOPPING (NOTIFY_SOCKET), and the watchdog
    interval in microseconds (WATCHDOG_USEC, when WATCHDOG_PID, if set, is this process).
    (None, None) when not run by systemd as Type=notify."""
    address = os.environ.get("NOTIFY_SOCKET") or None
    usec, pid = os.environ.get("WATCHDOG_USEC", ""), os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return address, None
    return address, int(usec)


def journald_stderr() -> bool:
    """Is stderr the systemd journal? (JOURNAL_STREAM names its device:inode, sd_journal_stream_fd(3).)"""
    try:
        device, inode = (int(v) for v in os.environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)
