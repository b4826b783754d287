"""The GPU's code paths, run on the CPU: every branch that only CUDA takes has a twin here.

- the torch versions of blur, pyramid and colour axes (what a GPU runs) against OpenCV's;
- the network in bf16 autocast (CPU autocast stands in for CUDA's);
- a step on a device that is not the host (PyTorch's "meta" device: no data, and any copy to
  the host or a CPU tensor mixed in fails, as on CUDA it would cost a wait) copies no frame to
  the host and never waits for the device;
- views batched into one network call: the gradient is the sum of the single views' ones;
- capture (CUDA graphs, torch.compile): matches eager where the CPU allows it, and falls back
  to eager with one log line where it fails.
"""
from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from dreamer import capture
from dreamer import regularize as reg
from dreamer.classes import parse
from dreamer.loop import Dreamer, DreamSettings


def _dreamer(model, seed=0, **kw) -> Dreamer:
    d = Dreamer(model, DreamSettings(**{"size": (96, 54), "steps": 3, **kw}), seed=seed)
    d.set_target(parse("volcano"))
    return d


def test_frames_on_the_gpus_torch_path_equal_the_cpus_opencv_path(lite0):
    """Every part of three frames (the motion and blur between frames, each step's blurred,
    banded, colour-axes direction) in both, from the same picture and the same random views.
    The two are re-synced after each part: the dream amplifies float-level differences (3e-7
    in the picture made the next step's gradient differ by 3%), so whole runs part ways."""
    fast, gpu = _dreamer(lite0), _dreamer(lite0)
    objective_fast, objective_gpu = fast.current_objective(), gpu.current_objective()
    differences = []
    for frame in range(3):
        parts = [lambda d, o: d.step(o)] * 3
        if frame:
            parts.insert(0, lambda d, o: d.advance(0.2))
        for part in parts:
            part(fast, objective_fast)
            with reg.torch_ops():
                part(gpu, objective_gpu)
            differences.append(float((fast.image - gpu.image).abs().max()))
            gpu.image = fast.image.clone()
    assert len(differences) == 11 and max(differences) < 1e-5  # fp32 rounding, nothing more
    assert max(differences) > 0  # two implementations ran


def _rank(logits: torch.Tensor, index: int) -> int:
    return int((logits > logits[index]).sum())


def test_a_step_in_bf16_autocast_keeps_the_targets_rank(lite0):
    fp32, bf16 = _dreamer(lite0, size=(128, 128)), _dreamer(lite0, size=(128, 128), precision="bf16")
    assert bf16.bf16 and not fp32.bf16
    g32, _ = fp32.gradient(fp32.current_objective())  # the same seed: the same views
    g16, _ = bf16.gradient(bf16.current_objective())
    # the raw gradients share their pixel-scale noise less (cosine 0.6 here), the step
    # directions made of them their shapes (0.90 on this noise start, 0.8-0.9 the next steps)
    d32, d16 = fp32.direction(g32).flatten(), bf16.direction(g16).flatten()
    assert float(torch.nn.functional.cosine_similarity(d32, d16, dim=0)) > 0.8
    for _ in range(4):
        bf16.frame(0.2)
    with torch.no_grad():
        logits = lite0(bf16.image)[0]
        with torch.autocast("cpu", torch.bfloat16):
            logits_bf16 = lite0(bf16.image)[0].float()
    assert _rank(logits, 980) == _rank(logits_bf16, 980) == 0  # dreamed in bf16: volcano, in either precision


class _HostTraffic(TorchFunctionMode):
    """What a stretch of code moves between the host and the device: device tensors read on
    the host (a copy and a wait), tensors made on the host for the device (a blocking copy:
    it waits for everything queued before it), and non-blocking copies (counted by size)."""

    TO_HOST = {"item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__"}

    def __init__(self):
        super().__init__()
        self.to_host: list[str] = []
        self.blocking: list[str] = []
        self.async_numbers = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        tensors = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        if name in self.TO_HOST and any(t.device.type != "cpu" for t in tensors):
            self.to_host.append(name)
        if name in ("tensor", "as_tensor") and torch.device(kwargs.get("device") or "cpu").type != "cpu":
            self.blocking.append(name)
        return func(*args, **kwargs)


class _Copies(TorchDispatchMode):
    def __init__(self, traffic: _HostTraffic):
        super().__init__()
        self.traffic = traffic

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            src = [a for a in tree_leaves(args) if isinstance(a, torch.Tensor)][-1]
            dst = out if isinstance(out, torch.Tensor) else args[0]
            if src.device != dst.device:
                if dst.device.type == "cpu":
                    self.traffic.to_host.append(str(func))
                elif kwargs.get("non_blocking"):
                    self.traffic.async_numbers += src.numel()
                else:
                    self.traffic.blocking.append(str(func))
        return out


def test_the_step_loop_on_a_device_never_copies_a_frame_to_the_host_nor_waits_for_it(lite0):
    on_device = copy.deepcopy(lite0).to("meta")  # shapes without data: any host copy fails loudly
    d = _dreamer(on_device, size=(128, 72), views_per_step=2)
    objective = d.current_objective()
    d.step(objective)  # the first step puts its constants on the device, once
    traffic = _HostTraffic()
    with traffic, _Copies(traffic):
        for _ in range(4):
            d.step(objective)
        d.advance(0.2)  # the motion between frames too
    assert d.image.device.type == "meta" and d.image.shape == (1, 3, 72, 128)
    assert traffic.to_host == [] and traffic.blocking == []
    assert traffic.async_numbers <= 4 * 2 * 6 + 6  # each view's pose (2x3 numbers) and the frame's motion


def test_batched_views_give_the_sum_of_the_single_views_gradients(lite0):
    batched = _dreamer(lite0, views_per_step=5)  # all five octaves in one step
    single = _dreamer(lite0)
    batches = []
    hook = lite0.register_forward_pre_hook(lambda _m, args: batches.append(args[0].shape[0]))
    try:
        g_batched, v_batched = batched.gradient(batched.current_objective())
    finally:
        hook.remove()
    # at 96x54 the 1.0, 1.5 and 2.0 views have one shape: one batch of 3, then 0.7 and 0.5 alone
    assert batches == [3, 1, 1]
    singles = [single.gradient(single.current_objective()) for _ in range(5)]
    assert torch.allclose(g_batched, sum(g for g, _ in singles), rtol=1e-3, atol=1e-6)
    assert torch.allclose(v_batched, sum(v for _, v in singles), rtol=1e-4)
    before = batched.image.clone()
    batched.frame(0.2, steps=2)  # and a whole frame of batched steps
    assert batched.steps == 2 and not torch.equal(before, batched.image)


def test_capture_graphs_without_cuda_says_so_once_and_dreams_eager(lite0, caplog):
    capture._once.cache_clear()
    eager = [_dreamer(lite0, seed=4).frame(0.2)]
    with caplog.at_level(logging.WARNING, logger="dreamer.capture"):
        graphs = [_dreamer(lite0, seed=4, capture="graphs").frame(0.2) for _ in range(2)]
    assert all((g == eager[0]).all() for g in graphs)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "CUDA graphs need a CUDA device" in lines[0] and "eager" in lines[0]


def test_a_capture_that_fails_logs_one_line_and_runs_eager(caplog):
    calls = []

    def double(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape)
        return x * 2

    captured = capture.Captured(double, "graphs", "doubling", grad=False)  # no CUDA here: capture fails
    x = torch.ones(2, 3)
    with caplog.at_level(logging.WARNING, logger="dreamer.capture"):
        assert torch.equal(captured(x), x * 2) and torch.equal(captured(x), x * 2)
    assert captured.eager and captured.shapes == {}
    assert len(caplog.records) == 1 and "capture graphs of the doubling failed" in caplog.records[0].getMessage()


def test_the_compiled_network_and_step_direction_match_eager(lite0):
    """torch.compile on the CPU, with the aot_eager backend (the same tracing and autograd
    capture as inductor, without its C++ build, which takes a minute here)."""
    d = _dreamer(lite0)
    network = capture.Captured(d._network_in_precision, "compile", "network", grad=True, compile_backend="aot_eager")
    direction = capture.Captured(d.direction, "compile", "direction", grad=False, compile_backend="aot_eager")
    views = torch.rand(2, 3, 36, 64, generator=torch.Generator().manual_seed(0))  # a batch of two views
    results = []
    for fn in (d._network_in_precision, network):
        v = views.clone().requires_grad_(True)
        logits = fn(v)
        (g,) = torch.autograd.grad(logits[:, 980].sum(), v)
        results.append((logits.detach(), g))
    (l_eager, g_eager), (l_compiled, g_compiled) = results
    assert torch.allclose(l_eager, l_compiled, atol=1e-4) and torch.allclose(g_eager, g_compiled, atol=1e-5)
    assert len(network.shapes) == 1 and not network.eager
    with reg.torch_ops():  # the direction as a GPU computes it, for two frame sizes: one specialisation each
        for shape in [(1, 3, 54, 96), (1, 3, 36, 64)]:
            grad = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
            assert torch.allclose(direction(grad), d.direction(grad), atol=1e-5)
    assert len(direction.shapes) == 2 and not direction.eager


@pytest.mark.parametrize("setting,value", [("precision", "fp16"), ("capture", "cudagraphs")])
def test_gpu_settings_are_checked(setting, value):
    from stream.config import ConfigError, Config, validate

    cfg = Config()
    setattr(cfg.dream, setting, value)
    with pytest.raises(ConfigError, match=f"dream.{setting}"):
        validate(cfg)
