import torch

from dreamer import regularize as reg


def test_random_view_is_seeded_sized_and_identity_without_randomness():
    x = torch.rand(1, 3, 20, 40)
    still = reg.random_view(0, (1.0, 1.0), 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(still(x), x, atol=1e-5)
    assert still(x, 0.5).shape[-2:] == (10, 20)
    a = reg.random_view(4, (0.9, 1.1), 5.0, torch.Generator().manual_seed(3))
    b = reg.random_view(4, (0.9, 1.1), 5.0, torch.Generator().manual_seed(3))
    assert torch.equal(a(x), b(x)) and not torch.allclose(a(x), x)


def test_shift_moves_content_by_whole_pixels():
    x = torch.arange(64.0).view(1, 1, 8, 8)
    out = reg.affine(x, 1.0, 0.0, (1 / 8, 0.0))  # one pixel
    assert torch.allclose(out[..., :, :7], x[..., :, 1:], atol=1e-4)


def test_identity_affine_is_identity():
    x = torch.rand(1, 3, 8, 12)
    assert torch.allclose(reg.affine(x, 1.0, 0.0), x, atol=1e-5)


def test_zoom_magnifies_the_centre():
    x = torch.zeros(1, 1, 9, 9)
    x[..., 4, 4] = 1.0
    out = reg.affine(x, 2.0)
    assert out[..., 4, 4] > 0 and out[..., 3:6, 3:6].sum() > x[..., 3:6, 3:6].sum()


def test_blur_keeps_constants_and_spreads_a_point():
    c = torch.full((1, 3, 6, 6), 0.3)
    assert torch.allclose(reg.gaussian_blur(c, 1.0), c)
    p = torch.zeros(1, 1, 9, 9)
    p[..., 4, 4] = 1.0
    b = reg.gaussian_blur(p, 1.0)
    assert abs(float(b.sum()) - 1.0) < 1e-5 and b[..., 4, 4] < 1.0 and b[..., 4, 5] > 0
    assert torch.equal(reg.gaussian_blur(p, 0), p)


def test_gaussian_kernel_sums_to_one_and_is_symmetric():
    k = reg.gaussian_kernel(1.5)
    assert abs(float(k.sum()) - 1) < 1e-6 and torch.allclose(k, k.flip(0))


def test_laplacian_normalize_equalises_bands():
    # A strong fine checkerboard plus a weak ramp: after normalisation the ramp is no longer negligible.
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    fine = 100 * ((xx + yy) % 2 * 2 - 1)
    coarse = xx / 32
    g = (fine + coarse).view(1, 1, 32, 32)
    out = reg.laplacian_normalize(g, levels=4)
    assert abs(float(out.abs().mean()) - 1) < 1e-4
    smooth = torch.nn.functional.avg_pool2d(out, 8)  # the checkerboard averages out
    assert float(smooth[..., -1].mean() - smooth[..., 0].mean()) > 0.1


def test_total_variation():
    assert float(reg.total_variation(torch.ones(1, 1, 4, 4))) == 0
    x = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    assert float(reg.total_variation(x)) == 1.0


def test_blur_fast_path_matches_the_autograd_path():
    x = torch.rand(2, 3, 17, 23)
    fast = reg.gaussian_blur(x, 1.3)  # no grad: OpenCV on the CPU
    with torch.enable_grad():
        slow = reg.gaussian_blur(x.clone().requires_grad_(True), 1.3)  # depthwise convs
    assert torch.allclose(fast, slow, atol=1e-5)


def test_laplacian_fast_path_matches_the_torch_path():
    for shape in [(1, 3, 45, 81), (2, 3, 17, 23), (1, 1, 32, 32)]:
        for tilt, per_channel in [(1.0, False), (2.0, True)]:
            g = torch.randn(*shape)
            fast = reg.laplacian_normalize(g, 6, tilt=tilt, per_channel=per_channel)  # no grad: OpenCV
            torch_path = reg.laplacian_normalize(g.clone().requires_grad_(True), 6, tilt=tilt, per_channel=per_channel)
            assert torch.allclose(fast, torch_path, atol=1e-4)


def test_tilt_moves_the_step_toward_coarse_bands():
    g = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))

    def coarse_share(tilt: float) -> float:
        out = reg.laplacian_normalize(g, 5, tilt=tilt)
        smooth = torch.nn.functional.avg_pool2d(out, 8)
        return float(smooth.pow(2).mean() / out.pow(2).mean())

    assert coarse_share(2.0) > 2 * coarse_share(1.0)


def test_per_channel_normalisation_gives_each_channel_its_own_step():
    g = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    g[:, 0] *= 1000
    shared = reg.laplacian_normalize(g, 4)
    own = reg.laplacian_normalize(g, 4, per_channel=True)
    assert float(shared[:, 1].abs().mean()) < 0.01 * float(shared[:, 0].abs().mean())  # drowned
    assert abs(float(own[:, 1].abs().mean() / own[:, 0].abs().mean()) - 1) < 0.2


def test_colour_axes_round_trip():
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    x = torch.rand(2, 3, 5, 7)
    axes = reg.colour_axes(x, q)
    assert torch.allclose(axes[:, 0], (x * q[:, 0].view(1, 3, 1, 1)).sum(1), atol=1e-6)
    assert torch.allclose(reg.from_colour_axes(axes, q), x, atol=1e-5)
    one = x[:1].contiguous(memory_format=torch.channels_last)  # the OpenCV path
    assert torch.allclose(reg.colour_axes(one, q), axes[:1], atol=1e-5)
    assert torch.allclose(reg.from_colour_axes(reg.colour_axes(one, q), q), one, atol=1e-5)


def test_magnified_views_show_a_part_larger():
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 32, 64).contiguous()
    view = reg.random_view(0, (1.0, 1.0), 0.0, torch.Generator().manual_seed(0))
    out = view(ramp, 2.0)
    assert out.shape == ramp.shape
    slope = float((out[..., 20:44].diff(dim=-1)).mean())
    assert abs(slope / float(ramp.diff(dim=-1).mean()) - 0.5) < 0.02  # half the picture over the whole view
    assert float(out.min()) >= -1e-6 and float(out.max()) <= 1 + 1e-6  # a part, never past the edges


def test_shrunk_views_are_antialiased():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    checker = ((xx + yy) % 2).expand(1, 3, -1, -1).contiguous()
    view = reg.random_view(0, (1.0, 1.0), 0.0, torch.Generator().manual_seed(0))
    small = view(checker, 0.5)
    assert small.shape[-2:] == (32, 32)
    assert float((small - 0.5).abs().max()) < 0.01  # pixel grain averaged away, not aliased into stripes


def test_a_pixel_budget_fits_the_whole_picture_into_it():
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 32, 64).contiguous()
    view = reg.random_view(0, (1.0, 1.0), 0.0, torch.Generator().manual_seed(0), max_pixels=16 * 32)
    whole = view(ramp, 1.0)  # 32x64 is 2048 pixels: the whole picture at half size
    assert whole.shape[-2:] == (16, 32) and float(whole.min()) < 0.05 and float(whole.max()) > 0.95
    part = view(ramp, 2.0)  # magnified 2x from there: a quarter of it, at the picture's own scale
    assert part.shape[-2:] == (16, 32)
    slope = float(part[..., 4:28].diff(dim=-1).mean())
    assert abs(slope / float(ramp.diff(dim=-1).mean()) - 1.0) < 0.02
    free = reg.random_view(0, (1.0, 1.0), 0.0, torch.Generator().manual_seed(0))  # no budget: as before
    assert free(ramp, 1.0).shape[-2:] == (32, 64) and free(ramp, 2.0).shape[-2:] == (32, 64)
