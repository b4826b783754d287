"""The `dreamstream` command (also `python -m stream`): serve, render, screensaver, classes.

Flags override the config file; the config file overrides the defaults. Errors a user can
cause (unknown class, bad size, missing file, offline model) end with one line on stderr
and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import socket
import sys
from pathlib import Path
from typing import NoReturn

from dreamer.classes import RequestError, catalogue, parse
from dreamer.settings import DEFAULT_MODEL, MODEL_NAMES

from .config import (
    Config,
    ConfigError,
    journald_stderr,
    load_config,
    output_size,
    parse_size,
    queue_prefix,
    state_dir,
    systemd_notify,
    twitch_oauth_token,
    twitch_stream_key,
    validate,
    webrtc_bitrate_k,
    whip_token,
)
from .core.sanitize import mask_url
from .inputs.source import SourceError
from .logs import LogFileError, configure
from .queue.store import StateError
from .resources import folder

log = logging.getLogger("dreamstream")

TWITCH_CHAT = "wss://irc-ws.chat.twitch.tv:443"
SCREENSAVER_PRESET = "screensaver.toml"  # the screensaver's defaults, not the stream's


class UsageError(Exception):
    """One line for the user; exit code 2."""


def _common(p: argparse.ArgumentParser, preset: str = "default.toml", size: str = "{w}x{h}") -> Config:
    """The options every dreaming command takes; their help states the defaults of the
    command's own preset, read from it (so it cannot drift). Returns the preset."""
    cfg = load_config(folder("configs") / preset)
    w, h = cfg.dream.size
    _talk(p, argparse.SUPPRESS)
    p.add_argument("--config", type=Path, help=f"TOML config (default: configs/{preset})")
    p.add_argument("--model", choices=sorted(MODEL_NAMES), help=f"network to dream with (default {DEFAULT_MODEL})")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where to run (default auto)")
    p.add_argument("--size", metavar="WxH", help=f"dream frame size (default {size.format(w=w, h=h)})")
    p.add_argument("--seed", type=int, help="make the dream repeatable")
    p.add_argument("--source", metavar="INPUT",
                   help="dream on live input: a video file, camera[:N], screen[:DISPLAY], a URL (rtmp, rtsp, srt, hls) "
                        "or whip (serve: OBS publishes to POST /whip)")
    return cfg


def _talk(p: argparse.ArgumentParser, default) -> None:
    """-v/--quiet, before or after the command: the command's parser must not reset what the
    main one read, hence SUPPRESS as its default."""
    p.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", default=default, help="warnings and errors only")


def _log_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-file", metavar="PATH",
                   help="log to this file, rotated at [log] max_mb (default: stderr, or the journal under systemd)")


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("dreamstream")
    except PackageNotFoundError:  # a checkout that was never installed
        ours = "unknown"
    parser = argparse.ArgumentParser(prog="dreamstream", description="A live, interactive DeepDream stream.")
    parser.add_argument("--version", action="version", version=f"dreamstream {ours}")
    _talk(parser, False)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="dream offline and write .mp4, .gif, .png or a folder of PNGs")
    _common(p, size="{w}x{h}; with --start, the photo's shape in up to as many pixels")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--class", dest="classes", action="append", metavar="TEXT",
                   help='what to dream: "volcano", "pizza + volcano" (repeatable: parts are mixed)')
    p.add_argument("--frames", type=int,
                   help="exactly this many frames are written (default 100; with --source, every frame of the clip)")
    p.add_argument("--output", type=Path, default=Path("dream.mp4"), help="output path (default dream.mp4)")
    p.add_argument("--start", type=Path, metavar="IMAGE",
                   help="dream on this photo instead of noise (without --size the dream takes its shape)")
    p.add_argument("--fit", choices=["crop", "pad", "stretch"],
                   help="how a --start photo meets a --size of another shape (default crop: the middle, unstretched)")
    p.add_argument("--fps", type=int, default=25, help="frame rate of .mp4/.gif output, 1-120 (default 25)")
    p.add_argument("--layer", help="classic DeepDream: amplify this layer instead of a class")
    p.add_argument("--split", action="store_true", help='"A + B" side by side instead of blended')

    p = sub.add_parser("serve", help="the live service: dream loop + HTTP/MJPEG + websocket")
    served = _common(p)
    p.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, help="HTTP port (default 8080)")
    p.add_argument("--ws-port", type=int, help="websocket port (default 8765)")
    p.add_argument("--hold", type=float, help=f"seconds each request plays (default {served.queue.hold_s:g})")
    p.add_argument("--rtmp", metavar="URL", help="push the stream to this RTMP/RTMPS ingest")
    p.add_argument("--twitch", action="store_true",
                   help="push to Twitch with TWITCH_STREAM_KEY and read its chat (needs --channel)")
    p.add_argument("--chat", metavar="URL", help="read requests from irc://, ircs:// or wss:// chat")
    p.add_argument("--channel", metavar="NAME", help="chat channel to read (Twitch: your channel name)")
    p.add_argument("--access-log", action="store_true", help="log every HTTP request (off by default)")
    p.add_argument("--output-size", metavar="WxH",
                   help="size of what is shown and sent (default: the dream's; 1280x720 with --rtmp/--twitch)")
    p.add_argument("--clips", metavar="DIR", help="keep each finished dream's last seconds as an mp4 here")
    p.add_argument("--state-dir", metavar="DIR",
                   help="keep the queue here, so requests survive a restart "
                        "(default $XDG_STATE_HOME/dreamstream, else ~/.local/state/dreamstream)")
    p.add_argument("--role", choices=["all", "front", "dreamer"],
                   help="all (default): one process; front: the page, websocket and chat, no model; "
                        "dreamer: the model, RTMP and clips, its picture for the fronts (both need --queue)")
    p.add_argument("--queue", metavar="URL",
                   help="share the queue with other serve processes through Redis: redis://HOST:PORT/DB "
                        "(rediss:// for TLS; a password in the URL or $REDIS_PASSWORD)")
    p.add_argument("--fresh", action="store_true",
                   help="start with an empty queue; the old state is moved aside, not deleted")
    _log_file(p)

    p = sub.add_parser("screensaver", help="a fullscreen local window that dreams through a playlist")
    saver = _common(p, SCREENSAVER_PRESET, size="{w} wide in the screen's shape; {w}x{h} with --window")
    p.add_argument("--window", action="store_true",
                   help="a normal window: space = next class, s = save a PNG to your pictures folder, q/Esc = quit")
    p.add_argument("--playlist", help='"volcano, jellyfish, pizza" or a file with one class per line')
    p.add_argument("--in-order", action="store_true", help="play the playlist in order (default: shuffled)")
    p.add_argument("--hold", type=float, help=f"seconds per class (default {saver.queue.hold_s:g})")
    p.add_argument("--duration", type=float, help="exit after this many seconds (default: at a key)")
    _log_file(p)

    p = sub.add_parser("classes", help="list the 1000 classes, or show how a request is understood")
    _talk(p, argparse.SUPPRESS)
    p.add_argument("query", nargs="*", help='request text, e.g. "pizza + volcano"')
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """The config file, then every flag over it, in this one place; validated as a whole."""
    cfg = load_config(args.config)
    flag = lambda name: getattr(args, name, None)  # noqa: E731  (each command has its own flags)
    for name in ("model", "device", "seed"):
        if flag(name) is not None:
            setattr(cfg, name, flag(name))
    if flag("size"):
        cfg.dream.size = parse_size(flag("size"))
    if flag("output_size"):
        cfg.serve.output_size = parse_size(flag("output_size"), "--output-size")
    if flag("hold") is not None:
        cfg.queue.hold_s = flag("hold")
    for name in ("host", "port", "ws_port"):
        if flag(name) is not None:
            setattr(cfg.serve, name, flag(name))
    cfg.serve.access_log = cfg.serve.access_log or bool(flag("access_log"))
    if flag("layer"):
        cfg.dream.mode, cfg.dream.layer = "layer", flag("layer")
    cfg.dream.split = cfg.dream.split or bool(flag("split"))
    if flag("source"):
        cfg.source.input = flag("source")
    if flag("log_file"):
        cfg.log.file = flag("log_file")
    if flag("clips"):
        cfg.clips.folder = flag("clips")
    if flag("state_dir"):
        cfg.queue.state_dir = flag("state_dir")
    if flag("queue"):
        cfg.queue.url = flag("queue")
    if flag("role"):
        cfg.serve.role = flag("role")
    if flag("rtmp"):
        cfg.rtmp.url = flag("rtmp")
    if flag("chat"):
        cfg.chat.url = flag("chat")
    if flag("channel"):
        cfg.chat.channel = flag("channel").lstrip("#")
    if flag("twitch"):
        key = twitch_stream_key()
        if not key:
            raise UsageError("--twitch needs TWITCH_STREAM_KEY in the environment (your Twitch stream key)")
        cfg.rtmp.url = f"{cfg.rtmp.twitch_ingest.rstrip('/')}/{key}"  # holds the key: never print it
        cfg.chat.url = cfg.chat.url or TWITCH_CHAT
        if not cfg.chat.channel:
            raise UsageError("--twitch needs --channel NAME (your Twitch channel) to read its chat")
    if cfg.rtmp.url and not cfg.rtmp.url.startswith(("rtmp://", "rtmps://")):
        raise UsageError("--rtmp must be an rtmp:// or rtmps:// URL")
    if cfg.chat.url and not cfg.chat.url.startswith(("irc://", "ircs://", "wss://", "ws://")):
        raise UsageError("--chat must be an irc://, ircs:// or wss:// URL")
    if cfg.chat.url and not cfg.chat.channel:
        raise UsageError("--chat needs --channel NAME")
    return validate(cfg)


def cmd_serve(args: argparse.Namespace) -> int:
    from dreamer.runtime import (
        load_for_dreaming,
        no_huge_pages,
        set_dream_threads,
        share_heap_arenas,
        tune_for_cpu_dreaming,
    )

    from .front.app import make_app
    from .front.chat import ChatActions, ChatReader
    from .front.runner import run
    from .front.service import About, Service
    from .notify import Notifier
    from .outputs.clips import Clips
    from .outputs.overlay import call_to_action
    from .outputs.rtmp import RtmpEncoder
    from .queue.requests import RequestQueue
    from .queue.store import SqliteStore

    share_heap_arenas()  # before any thread: a run of hours keeps less memory resident
    no_huge_pages()  # before any frame: heap pages given back stay given back
    cfg = config_from_args(args)
    configure(log_level(args), cfg.log, journald_stderr())
    s = cfg.serve
    http_socket = listen(s.host, s.port, "--port")
    ws_socket = listen(s.host, s.ws_port, "--ws-port") if s.serves_viewers else None
    if cfg.queue.url:  # one queue for several processes, in Redis; Redis unreachable: one line, exit 2
        from .queue.shared import RedisShared
        store, shared = None, RedisShared(cfg.queue.url, queue_prefix(cfg))
        if args.fresh:
            shared.move_aside()
        queue = RequestQueue(cfg.queue, cfg.playlist, first=cfg.start_class, shared=shared)
        kept = f"shared in {shared.shown} under {shared.prefix}"
    else:  # held until the process ends; a kept queue this code cannot pick up is refused before any write
        store = SqliteStore(state_dir(cfg.queue), fresh=args.fresh, check=RequestQueue.check_saved)
        queue = RequestQueue(cfg.queue, cfg.playlist, first=cfg.start_class, store=store)
        kept = f"kept in {store.path}"
    shown_size = output_size(cfg)
    ask = call_to_action(cfg.chat.prefix if cfg.chat.url else None, cfg.rtmp.overlay_ask)
    if s.role == "front":  # no model: the picture and the dreamer's figures come through Redis
        from .relay.remote import RemotePipeline

        pipeline = RemotePipeline(queue, shared.client, shared.prefix, s.jpeg_quality)
        service = Service(pipeline, About(cfg.model, "remote", cfg.dream.size, ask), shared)
        what = f"front door: no model, the dreamer's picture through {shared.shown}"
    else:
        from .spine.pipeline import Pipeline

        # a source that cannot be read: one line, before the model loads
        reader = open_source(cfg, shown_size, whip=True)
        model, device = load_for_dreaming(cfg.model, cfg.device)
        tune_for_cpu_dreaming(device)
        # streaming out, or a live source to read and show at its rate: a core for that work
        threads = set_dream_threads(cfg.threads, reserve=1 if cfg.rtmp.url or reader is not None else 0)
        pipeline = Pipeline(model, cfg.dream, cfg.seed, queue, output_rate(cfg, reader), cfg.serve.jpeg_quality,
                            shown_size, source=reader, live=cfg.source)
        service = Service(pipeline, About(cfg.model, str(device), cfg.dream.size, ask), store or shared)
        if s.role == "dreamer":  # its shown frames and figures, for the front doors, while it holds the lease
            from .relay.lease import Lease
            from .relay.publish import FramePublisher
            from .spine.health import DREAM_STALL_S

            def dreaming() -> bool:  # the lease is given back by a dream that is stuck
                age = pipeline.health().dreamed_age_s
                return age is not None and age < DREAM_STALL_S
            service.lease = Lease(shared.client, shared.prefix, f"{socket.gethostname()}:{os.getpid()}", dreaming)
            pipeline.engine.gate = pipeline.presenter.gate = service.lease
            service.publisher = FramePublisher(service.lease, pipeline.shown, service.figures)
        if cfg.rtmp.url:
            r = cfg.rtmp
            nvenc = r.encoder == "nvenc" or (r.encoder == "auto" and device.type == "cuda")
            service.encoder = RtmpEncoder(r.url, r, pipeline.shown, service.overlay, nvenc)
            service.encoder.nice = s.output_nice
            if service.lease is not None:
                service.encoder.gate = service.lease
        pipeline.presenter.nice = s.output_nice
        if reader is not None and reader.spec.kind == "whip":
            service.whip = whip_publisher(cfg, reader)
            if service.lease is not None:
                service.whip.gate = service.lease

        if cfg.clips.folder:  # from the encoder's packets when streaming (no second encode), else the JPEGs
            clips = Clips(cfg.clips, cfg.rtmp.fps if cfg.rtmp.url else s.output_fps, s.web_nice, bool(cfg.rtmp.url))
            if clips.open():  # a folder that cannot be written: one line, and the stream without clips
                clips.on_written = service.clip_written
                if service.encoder is not None:
                    service.encoder.on_packet = clips.packet
                else:
                    clips.bus = pipeline.shown
                service.clips = clips
        w, h = cfg.dream.size
        live = "".join([source_line(reader), f", rtmp {mask_url(cfg.rtmp.url)}" if cfg.rtmp.url else ""])
        shown = f", shown at {shown_size[0]}x{shown_size[1]}" if shown_size != (w, h) else ""
        cpu = f" ({threads} thread{'s' * (threads > 1)})" if device.type == "cpu" else ""
        role = ", for the front doors" if s.role == "dreamer" else ""
        what = f"model {cfg.model}, device {device}{cpu}, size {w}x{h}{shown}{live}{role}"
    if cfg.webrtc.enabled and s.serves_viewers:  # WebRTC viewers: one H.264 encode, at this process, for all of them
        from .front.whep import Whep
        from .outputs.webrtc import H264Packets

        service.webrtc = H264Packets(pipeline.shown, s.output_fps, webrtc_bitrate_k(cfg.webrtc, shown_size))
        service.webrtc.nice = s.web_nice  # as the MJPEG viewers: it yields to the dream
        try:
            service.whep = Whep(service.webrtc, cfg.webrtc)
        except ValueError as e:  # a STUN/TURN URL aiortc cannot use
            raise UsageError(str(e)) from None
    if cfg.chat.url and s.role != "dreamer":  # chat is a front door's (a dreamer that read it would act twice)
        actions = ChatActions(lambda text, user: service.request(text, user, f"chat:{user.lower()}"),
                              service.queue_summary, service.skip, service.clear)
        service.chat = ChatReader(cfg.chat, actions, twitch_oauth_token())
        what += f", chat {cfg.chat.url} #{cfg.chat.channel}"
    url = f"http://{'127.0.0.1' if s.host in ('0.0.0.0', '::') else s.host}:{s.port}/"
    log.info("the queue is %s", kept)  # after the source's check: its error is the only line
    viewers = f"websocket :{s.ws_port}" if s.serves_viewers else "no viewer page: the front doors serve it"
    print(f"dreamstream serving {url}  ({viewers}, {what})", flush=True)
    # keepalive_timeout also closes a connection whose request never completes (aiohttp arms
    # it when the connection opens; only a whole request disarms it); lingering_time: after
    # answering a body that never came, wait 1 s (not aiohttp's 10) for the rest of it.
    run(make_app(service, s, ws_socket, Notifier(*systemd_notify())), http_socket,
        keepalive_timeout=s.client_timeout_s, lingering_time=1.0,
        access_log=logging.getLogger("aiohttp.access") if s.access_log else None)
    exit_now(0)


def open_source(cfg: Config, size: tuple[int, int], loop: bool | None = None, whip: bool = False):
    """The live source's reader, its input opened and its first frame read (or None without
    one); a source that cannot be read is a SourceError, before anything else starts.
    `whip`: a WHIP publisher may be the source (serve's; a WhipReader, waiting for one)."""
    from .core.framebus import FrameBus
    from .inputs.source import SourceReader, open_input, parse_source

    if not cfg.source.input:
        return None
    spec = parse_source(cfg.source.input)
    if spec.kind == "whip" and whip:  # nothing to open: a publisher comes to POST /whip
        from .inputs.whip import WhipReader
        return WhipReader(FrameBus(encode=False), size)
    first = open_input(spec)
    return SourceReader(spec, FrameBus(encode=False), size, first, cfg.source.loop if loop is None else loop)


def whip_publisher(cfg: Config, reader):
    """The WHIP endpoint feeding `reader`; a STUN/TURN URL aiortc cannot use is a UsageError."""
    from .front.whep import ice_server
    from .front.whip import Whip

    token = whip_token(cfg)
    if not token:
        log.warning("whip: no token set: anyone who can reach POST /whip may publish the source "
                    "(set DREAMSTREAM_WHIP_TOKEN)")
    try:
        ice = [ice_server(url) for url in cfg.webrtc.ice_servers]
    except ValueError as e:
        raise UsageError(str(e)) from None
    return Whip(reader, token, cfg.webrtc.connect_timeout_s, ice)


def output_rate(cfg: Config, reader) -> float:
    """Shown frames a second: the configured rate, or a live source's own when it is faster
    (a 30 fps camera comes out at 30 fps), up to 60."""
    return cfg.serve.output_fps if reader is None else max(cfg.serve.output_fps, min(60.0, float(reader.fps)))


def source_line(reader) -> str:
    if reader is None:
        return ""
    if reader.spec.kind == "whip":
        return ", source whip (a publisher at POST /whip)"
    w, h = reader.input_size
    return f", source {reader.spec.said} ({w}x{h} at {float(reader.fps):.4g} fps)"


def listen(host: str, port: int, flag: str) -> socket.socket:
    """Bind a port before anything slow happens, so a port in use is the first thing said,
    and an address this machine does not have is called that, not a busy port."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        return sock
    except socket.gaierror:
        raise UsageError(f"--host {host}: not an address or a name this machine knows; "
                         "use 127.0.0.1 (this machine only) or 0.0.0.0 (every network)") from None
    except OSError as e:
        if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise UsageError(f"--host {host}: not an address of this machine ({e.strerror}); "
                             "use 127.0.0.1 (this machine only) or 0.0.0.0 (every network)") from None
        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose another with {flag}") from None


def read_playlist(text: str) -> list[str]:
    """--playlist: a file with one class per line (# comments), or classes joined by commas."""
    path = Path(text)
    if path.is_file():
        try:
            lines = path.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--playlist {text}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
        items = [ln.split("#", 1)[0].strip() for ln in lines]
    elif path.is_dir():
        raise UsageError(f"--playlist {text}: a folder; give a file with one class per line, or classes "
                         "joined by commas")
    else:
        items = [t.strip() for t in text.split(",")]
    items = [t for t in items if t]
    if not items:
        raise UsageError(f"--playlist {text!r} names no classes")
    for item in items:
        try:
            parse(item)  # an unknown class is a one-line error now, not a dead screensaver later
        except RequestError:
            if len(items) == 1 and ("/" in text or re.search(r"\.[A-Za-z0-9]{1,5}$", text)):
                raise UsageError(f"--playlist {text}: no such file (nor a class name); give a file with "
                                 "one class per line, or classes joined by commas") from None
            raise
    return items


def cmd_screensaver(args: argparse.Namespace) -> int:
    import random

    import torch

    from dreamer.runtime import load_for_dreaming, tune_for_cpu_dreaming

    from .config import display, pictures_dir
    from .desktop.screensaver import Screensaver, ScreensaverOptions, window_size
    from .desktop.xdisplay import XDisplay
    from .queue.requests import RequestQueue
    from .spine.pipeline import Pipeline

    if args.config is None:  # the screensaver's own preset, not the stream's
        args.config = folder("configs") / SCREENSAVER_PRESET
    cfg = config_from_args(args)
    configure(log_level(args), cfg.log, journald_stderr())
    if args.duration is not None and not 0 < args.duration < float("inf"):
        raise UsageError(f"--duration {args.duration:g}: give seconds above 0, or leave it out to run until a key")
    playlist = read_playlist(args.playlist) if args.playlist else None
    if display() is None:
        raise UsageError("no display: DISPLAY is not set; run it on an X11 desktop (or XWayland), "
                         "or under Xvfb with DISPLAY set")
    try:
        x = XDisplay.open()
    except OSError:  # no libX11 to ask with: Qt will find out by itself
        x = None
    else:
        if x is None:  # Qt would abort the process (exit 134) with advice to reinstall
            raise UsageError(f"cannot open display {display()}: no X server answers there")
    # Qt inside OpenCV looks for fonts next to itself and says so on every start; it only
    # needs a folder that exists (Hershey text is OpenCV's own).
    os.environ.setdefault("QT_QPA_FONTDIR", "/usr/share/fonts")
    os.environ.setdefault("QT_LOGGING_RULES", "*.debug=false;qt.qpa.*=false;qt.text.*=false")
    screen = x.screen_size() if x is not None else (1280, 720)
    if not args.window and not args.size:  # the dream takes the screen's shape, at the preset's width
        w = cfg.dream.size[0]
        cfg.dream.size = (w, max(32, round(w * screen[1] / screen[0] / 2) * 2))
    size = window_size(cfg.dream.size) if args.window else screen
    reader = open_source(cfg, size)
    playlist = list(playlist or cfg.playlist)
    if not args.in_order:
        random.Random(cfg.seed).shuffle(playlist)
    queue = RequestQueue(cfg.queue, playlist)
    opts = ScreensaverOptions(window=args.window, duration=args.duration, save_dir=pictures_dir(),
                              caption_s=cfg.screensaver.caption_s)
    saver = Screensaver(opts, size, x)  # x stays open: the saver checks its window is painted
    saver.open(queue.current().label, x.pointer() if x is not None else None)  # a picture at once
    torch.set_num_threads(1)  # a saver uses one core for dreaming, not all of them
    loaded = saver.meanwhile(lambda: load_for_dreaming(cfg.model, cfg.device))
    if loaded is None:  # a key while the model loaded
        exit_now(0)
    model, device = loaded
    tune_for_cpu_dreaming(device)
    w, h = cfg.dream.size
    print(f"dreamstream screensaver: model {cfg.model}, device {device}, size {w}x{h} shown at "
          f"{size[0]}x{size[1]}, {'window' if args.window else 'fullscreen'}", file=sys.stderr, flush=True)
    pipeline = Pipeline(model, cfg.dream, cfg.seed, queue, opts.display_fps, output_size=size, source=reader,
                        live=cfg.source)
    exit_now(saver.run(pipeline))  # the window is gone and nothing is left to save


def exit_now(code: int) -> NoReturn:
    """End a stopped command at once from this thread, its logs flushed, whatever the other
    threads are doing: every part was closed within its bound before (a thread still busy is
    a daemon), and Python's own teardown is pure cost. Measured: under the shutdown check's
    load `serve` spent 1.0-1.3 s there after the service had stopped (collecting ~200k objects,
    unloading torch and OpenCV); the screensaver, beside two busy processes, 2.6 s. os._exit
    alone still left the last thread out to free the process's memory (~1 GB with torch), and
    that was the niced dream thread on a tenth of a core: 1.0-1.2 s. exec makes the kernel end
    the other threads first and free the memory in this thread, at its own priority:
    0.12-0.27 s; the shell exits with `code`. Sockets and files are close-on-exec."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a reader that went away
            pass
    try:
        os.execv("/bin/sh", ["sh", "-c", f"exit {int(code)}"])
    except OSError:  # no shell: exit all the same
        os._exit(code)


def cmd_classes(args: argparse.Namespace) -> int:
    if not args.query:
        cat = catalogue()
        for i in range(len(cat.names)):
            print(f"{i:4d}  {cat.display_name(i)}")  # twins qualified: "sunglasses (sunglass)"
        return 0
    target = parse(" ".join(args.query))
    n = target.group_size
    print(target.label + (f" ({n} classes, dreamed together)" if n else ""))
    for c in sorted(target.classes, key=lambda c: -c.weight):
        print(f"  {c.index:4d}  {c.name:40s} weight {c.weight:.3f}")
    return 0


def load_start(path: Path):
    """The photo as (3, H, W) floats in [0, 1]."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError):
        raise UsageError(f"cannot read start image {path} (missing, or not an image)") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0


def check_render_args(args: argparse.Namespace) -> None:
    """What render cannot honour is refused before anything loads."""
    if args.frames is not None and args.frames < 1:
        raise UsageError("--frames must be at least 1")
    if not 1 <= args.fps <= 120:
        raise UsageError(f"--fps {args.fps}: must be between 1 and 120 (frames a second of .mp4 or .gif)")
    if args.layer and args.classes:
        raise UsageError("--class and --layer are two kinds of dream (--layer amplifies a layer's patterns, "
                         "whatever the class): give one of them")
    if args.fit and not args.start:
        raise UsageError("--fit says how a --start photo meets the frame: give --start IMAGE too")


def cmd_render(args: argparse.Namespace) -> int:
    from dreamer.loop import Dreamer
    from dreamer.photo import fit, shape_note, size_for
    from dreamer.render import check_output, even_size, is_video, render
    from dreamer.runtime import load_for_dreaming, tune_for_cpu_dreaming

    check_render_args(args)
    cfg = config_from_args(args)
    target = parse(" + ".join(args.classes or [cfg.start_class]))
    photo = load_start(args.start) if args.start else None
    check_output(args.output, args.force)
    if cfg.source.input:
        return render_source(args, cfg, target)
    frames = 100 if args.frames is None else args.frames
    notes = []
    if photo is not None and not args.size and not args.fit:  # the dream takes the photo's shape
        w, h = cfg.dream.size
        cfg.dream.size = size_for((photo.shape[2], photo.shape[1]), w * h)
    if is_video(args.output) and even_size(cfg.dream.size) != tuple(cfg.dream.size):
        (w, h), (ew, eh) = cfg.dream.size, even_size(cfg.dream.size)
        notes.append(f"note: H.264 needs even sides: {w}x{h} rounded to {ew}x{eh}")
        cfg.dream.size = (ew, eh)
    start = None
    if photo is not None:
        start = fit(photo, cfg.dream.size, args.fit or "crop")
        notes.append(shape_note((photo.shape[2], photo.shape[1]), cfg.dream.size, args.fit or "crop"))
    model, device = load_for_dreaming(cfg.model, cfg.device)
    tune_for_cpu_dreaming(device)
    if args.layer:
        model.layer(args.layer)  # unknown layer: clear error now
    w, h = cfg.dream.size
    if not args.quiet:
        what = f"layer {args.layer}" if args.layer else repr(target.label)
        print(f"dreamstream render: {what} model={cfg.model} device={device} size={w}x{h} "
              f"frames={frames} -> {args.output}", file=sys.stderr)
    for note in notes:  # what was asked and cannot be (or was not said): said even with -q
        print(f"dreamstream render: {note}", file=sys.stderr)
    dreamer = Dreamer(model, cfg.dream, seed=cfg.seed, start=start)
    dreamer.set_target(target)
    render(dreamer, frames, args.output, args.fps, progress=not args.quiet)
    dreamer.close()
    print(args.output)
    return 0


def render_source(args: argparse.Namespace, cfg: Config, target) -> int:
    """render --source: every frame of the clip dreamed (or --frames of them), at its rate, with its sound."""
    from dreamer.runtime import load_for_dreaming, tune_for_cpu_dreaming

    from .inputs.source import open_input, parse_source
    from .render_video import clip_size, render_clip

    spec = parse_source(cfg.source.input)
    if args.start:
        raise UsageError("--start and --source both say what to dream on: give one")
    first = open_input(spec)
    if spec.kind != "file" and args.frames is None:
        raise UsageError(f"--source {spec.said} never ends: say how many frames with --frames N")
    model, device = load_for_dreaming(cfg.model, cfg.device)
    tune_for_cpu_dreaming(device)
    if args.layer:
        model.layer(args.layer)  # unknown layer: clear error now
    if not args.quiet:
        w, h = clip_size(tuple(cfg.dream.size), first.size)
        count = args.frames or first.frame_count or "all"
        print(f"dreamstream render: {target.label!r} on {spec.said} ({first.size[0]}x{first.size[1]} at "
              f"{float(first.fps):.4g} fps) model={cfg.model} device={device} dream={cfg.dream.size[0]}x"
              f"{cfg.dream.size[1]} frames={count} -> {args.output} ({w}x{h})", file=sys.stderr)
    render_clip(model, cfg, spec, target, args.output, args.frames, progress=not args.quiet, first=first)
    print(args.output)
    return 0


def log_level(args: argparse.Namespace) -> int:
    return logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO


COMMANDS = {"serve": cmd_serve, "render": cmd_render, "screensaver": cmd_screensaver, "classes": cmd_classes}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(log_level(args), journal=journald_stderr())  # a command with --log-file moves it there
    if not args.verbose and not getattr(args, "access_log", False):  # a line per connection is an access log
        logging.getLogger("websockets.server").setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # `dreamstream classes | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second complaint at exit
        return 0
    except RequestError as e:
        hint = f"; try: {', '.join(e.suggestions)}" if e.suggestions else ""  # as the page and chat say it
        print(f"dreamstream: error: {e.message}{hint}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if isinstance(e, one_line_errors()):
            print(f"dreamstream: error: {e}", file=sys.stderr)
        elif isinstance(e, OSError):  # a file we may not read or write: say which
            where = f": {e.filename}" if e.filename else ""
            print(f"dreamstream: error: {e.strerror or e}{where}", file=sys.stderr)
        else:
            raise
    return 2


def one_line_errors() -> tuple[type[Exception], ...]:
    """The errors that are one line for the user. The model's and the renderer's only where
    their modules were loaded (nothing else raises them): a front door never loads torch."""
    errors = [UsageError, ConfigError, SourceError, LogFileError, StateError]
    for module, name in (("dreamer.models", "ModelUnavailable"), ("dreamer.render", "OutputError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)
