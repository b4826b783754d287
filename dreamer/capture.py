"""Launch overhead on a GPU: the dream step's fixed-shape parts captured, once per shape.

A step is a few hundred small kernels: the network's forward and backward (~100 and ~250 at
EfficientNet-Lite0's depth) and the gradient's blur, pyramid and colour axes (~70). At the
arithmetic a step needs (1.9 GFLOP for a 320x180 view), an H100-class card is idle most of
the time between launches from Python; captured, each part is one replay.

    network = Captured(lambda v: model(v), "graphs", "network", grad=True)
    logits = network(views)  # captured for views.shape on the first call, replayed after

`how`:
- "graphs": CUDA graphs. A function with a gradient (the network) goes through
  `torch.cuda.make_graphed_callables` (its forward and its backward one graph each); one
  without (the step direction) is captured as one graph. One capture per input shape: the
  views of one octave have one shape, and a frame's gradient has the frame's.
- "compile": `torch.compile`, mode "reduce-overhead" on CUDA (inductor's kernels, in CUDA
  graphs), its default elsewhere; one specialisation per shape.
- "off": eager.

Capture that fails (CUDA graphs without CUDA, no compiler for inductor, an op that cannot be
captured) logs one line and that part runs eager from then on: the stream never stops for it.
What a captured call returns lives in the capture's memory and is overwritten by its next
call: use it before calling again (the step does).
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

CAPTURES = ("off", "graphs", "compile")


@functools.cache
def _once(text: str) -> None:
    log.warning(text)


def available(how: str, device: torch.device) -> str:
    """`how` where it can run on `device`, else "off", said once a process (a render or an
    eval makes many dreamers)."""
    if how == "graphs" and device.type != "cuda":
        _once(f"capture graphs: CUDA graphs need a CUDA device, this is {device.type}; dreaming eager")
        return "off"
    return how


class Captured:
    """`fn` (one tensor in, one tensor out), captured per input shape as `how` says."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], how: str, name: str, grad: bool,
                 compile_backend: str | None = None):
        """`grad`: the input requires grad and the caller differentiates through the output.
        `compile_backend`: torch.compile's backend for "compile" (default inductor)."""
        if how not in CAPTURES:
            raise ValueError(f"capture {how!r}: choose one of {', '.join(CAPTURES)}")
        self.fn, self.how, self.name, self.grad = fn, how, name, grad
        self.compile_backend = compile_backend
        self.eager = how == "off"  # True once capture is off or has failed
        self.shapes: dict[tuple, Callable] = {}
        self._compiled: Callable | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.eager:
            return self.fn(x)
        key = (tuple(x.shape), x.dtype, x.device, x.requires_grad)
        run = self.shapes.get(key)
        if run is not None:
            return run(x)
        try:
            run = self._capture(x)
            out = run(x)  # compile traces on this first call: its failures show here
        except Exception as e:  # any failure to capture: one line, then eager for good
            self.give_up(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            return self.fn(x)
        self.shapes[key] = run
        return out

    def give_up(self, why: str) -> None:
        log.warning("capture %s of the %s failed (%s); running it eager", self.how, self.name, why)
        self.eager = True
        self.shapes.clear()

    def _capture(self, x: torch.Tensor) -> Callable:
        if self.how == "compile":
            if self._compiled is None:
                mode = "reduce-overhead" if x.device.type == "cuda" else None
                self._compiled = torch.compile(self.fn, mode=mode, dynamic=False,
                                               backend=self.compile_backend or "inductor")
            return self._compiled
        if self.grad:  # forward and backward, each one graph, inside one autograd node
            sample = x.detach().clone().requires_grad_(True)
            return torch.cuda.make_graphed_callables(self.fn, (sample,))
        return _graph_no_grad(self.fn, x)


def _graph_no_grad(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable:
    """`fn` as one CUDA graph: a static input copied in, replayed, the static output returned."""
    static_in = x.detach().clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):  # warm-up off the main stream, as capture wants
        for _ in range(3):
            fn(static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out = fn(static_in)

    def replay(t: torch.Tensor) -> torch.Tensor:
        static_in.copy_(t)
        graph.replay()
        return static_out

    return replay
