import torch

from dreamer import objectives as obj
from dreamer.classes import parse


def _ascend(model, objective, steps=5, lr=0.05, size=(64, 64)):
    gen = torch.Generator().manual_seed(0)
    x = (0.5 + 0.1 * torch.randn(1, 3, *size, generator=gen)).clamp(0, 1)
    with obj.LayerTaps(model, objective.layers) as taps:
        values = []
        for _ in range(steps + 1):
            x = x.detach().requires_grad_(True)
            v = objective(obj.Probe(model, x, taps))
            values.append(float(v.detach()))
            (g,) = torch.autograd.grad(v, x)
            x = (x + lr * g / (g.abs().mean() + 1e-8)).clamp(0, 1)
    return values


def test_class_logit_rises(lite0):
    v = _ascend(lite0, obj.class_logits({980: 1.0}))
    assert v[-1] > v[0] + 1.0


def test_layer_objective_rises_and_hooks_are_removed(lite0):
    layer = lite0.layers[3]
    module = lite0.layer(layer)
    v = _ascend(lite0, obj.layer(layer))
    assert v[-1] > v[0]
    assert len(module._forward_hooks) == 0


def test_arithmetic_combines_values_and_descriptions(lite0):
    x = torch.rand(1, 3, 48, 48)
    a, b = obj.class_logits({1: 1.0}, label="goldfish"), obj.class_logits({2: 1.0}, label="shark")
    probe = obj.Probe(lite0, x)
    logits = probe.logits()[0]
    mix = 0.25 * a + 0.75 * b - obj.tv()
    assert torch.allclose(mix(probe), 0.25 * logits[1] + 0.75 * logits[2] - obj.tv()(probe), atol=1e-5)
    assert "goldfish" in repr(mix) and "shark" in repr(mix) and "tv" in repr(mix)


def test_probe_runs_the_model_once(lite0):
    calls = []
    handle = lite0.register_forward_hook(lambda *a: calls.append(1))
    try:
        probe = obj.Probe(lite0, torch.rand(1, 3, 32, 32))
        (obj.class_logits({1: 1.0}) + obj.class_logits({2: 1.0}))(probe)
        assert len(calls) == 1
    finally:
        handle.remove()


def test_sharpness_pushes_other_classes_down(lite0):
    x = torch.rand(1, 3, 32, 32)
    probe = obj.Probe(lite0, x)
    plain = obj.class_logits({980: 1.0})(probe)
    sharp = obj.class_logits({980: 1.0}, sharpness=1.0)(probe)
    assert torch.allclose(sharp, torch.log_softmax(probe.logits(), -1)[0, 980])
    assert sharp < plain


def test_spatial_split_dreams_each_part_in_its_strip(lite0):
    t = parse("volcano + jellyfish")
    x = torch.rand(1, 3, 32, 64, requires_grad=True)
    probe = obj.Probe(lite0, x)
    value = obj.spatial_split(t)(probe)
    left, right = probe.strip_logits(0, 2)[0], probe.strip_logits(1, 2)[0]
    assert torch.allclose(value, (left[980] + right[107]) / 2)
    assert obj.spatial_split(parse("volcano")).description.startswith("logits")



class _Logits:
    def __init__(self, x):
        self.x = x

    def logits(self):
        return self.x


def test_a_group_is_scored_by_its_strongest_member_so_one_of_them_wins():
    x = torch.zeros(1, 1000, requires_grad=True)
    with torch.no_grad():
        x[0, 200] = 5.0  # one breed ahead of the other 117
    obj.target(parse("dog"))(_Logits(x)).backward()
    grad = x.grad[0]
    assert float(grad[200]) > 0.5 and float(grad[151]) < 0.01  # the leader gets the step, not all 118 alike
    assert abs(float(grad[151:269].sum()) - 1.0) < 1e-4 and float(grad[:151].abs().sum()) == 0
    y = torch.randn(1, 1000)
    mix = obj.target(parse("dog + pizza"))(_Logits(y))  # a group beside a class: each part its own
    assert torch.allclose(mix, (torch.logsumexp(y[0, 151:269], 0) + y[0, 963]) / 2)
    assert torch.allclose(obj.target(parse("pizza + volcano"))(_Logits(y)), (y[0, 963] + y[0, 980]) / 2)
