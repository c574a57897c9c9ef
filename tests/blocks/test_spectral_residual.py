from __future__ import annotations

import copy

import pytest
import torch
from monai.bundle import ConfigParser

from monai_srb.blocks import SpectralResidualBlock, make_block
from monai_srb.spectral import FourierTransform, SpectralTransform, register_transform
from monai_srb.spectral.registry import TRANSFORMS

PARAMETRIZED_AOM = ("aom", {"mode": "parametrization"})
SRB_2D = {"spatial_dims": 2, "in_channels": 4}

# (constructor kwargs, input shape)
CASES = [
    ({"spatial_dims": 2, "in_channels": 4, "transform": "fft"}, (2, 4, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 4, "transform": "fft", "spatial_size": (9, 7)}, (2, 4, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 8, "transform": "aom", "spatial_size": (9, 7)}, (2, 8, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 4, "transform": PARAMETRIZED_AOM, "spatial_size": 8}, (2, 4, 8, 8)),
    ({"spatial_dims": 2, "in_channels": 4, "transform": "dct", "spatial_size": (6, 6)}, (2, 4, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 6, "transform": "fft", "reduction": 3, "groups": 1}, (2, 6, 8, 8)),
    ({"spatial_dims": 3, "in_channels": 4, "transform": "fft", "spatial_size": (5, 6, 7)}, (2, 4, 5, 6, 7)),
    ({"spatial_dims": 3, "in_channels": 4, "transform": "aom", "spatial_size": (5, 6, 7)}, (2, 4, 5, 6, 7)),
    ({"spatial_dims": 3, "in_channels": 4, "transform": "dct"}, (2, 4, 5, 6, 7)),
    ({"spatial_dims": 3, "in_channels": 4, "transform": "fft", "norm": "instance"}, (2, 4, 4, 5, 3)),
    ({"spatial_dims": 2, "in_channels": 4, "transform": ("fft", {"impl": "matmul"})}, (2, 4, 9, 7)),
    ({"spatial_dims": 3, "in_channels": 4, "transform": ("fft", {"impl": "matmul"})}, (2, 4, 5, 6, 7)),
    ({"spatial_dims": 2, "in_channels": 4, "transform": FourierTransform(2, impl="matmul")}, (2, 4, 9, 7)),
    ({"spatial_dims": 2, "in_channels": 4, "transform": ("aom", {"init": "dct"}), "spatial_size": 8}, (2, 4, 8, 8)),
]


class ToyLocalTransform(SpectralTransform):
    """A user's own ``f`` (here the plain identity, one spectral channel per channel), registered by a test."""

    def __init__(self, spatial_dims: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def inverse(self, z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        return z


@pytest.fixture
def toy_transform():
    """``"toy_local"`` registered for the test, and removed after it."""
    register_transform("toy_local")(ToyLocalTransform)
    yield "toy_local"
    TRANSFORMS.pop("toy_local")


def _activate(block: SpectralResidualBlock) -> SpectralResidualBlock:
    """Move the block away from its identity initialisation."""
    torch.manual_seed(1)
    with torch.no_grad():
        block.alpha.fill_(1.0)
        for p in block.phi.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return block


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_shape_and_identity_at_init(kwargs, shape):
    torch.manual_seed(0)
    block = SpectralResidualBlock(**kwargs)
    x = torch.randn(shape)
    for mode in (True, False):
        block.train(mode)
        out = block(x)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert torch.equal(out, x)
    assert block.alpha.item() == 0.0 and block.alpha.requires_grad


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_global_receptive_field(kwargs, shape):
    torch.manual_seed(0)
    block = _activate(SpectralResidualBlock(**kwargs)).eval()
    x = torch.randn(shape, requires_grad=True)
    centre = tuple(s // 2 for s in shape[2:])
    block(x)[(0, slice(None)) + centre].sum().backward()
    reached = x.grad[0].abs().sum(0) > 0
    assert reached.all(), f"gradient reached {reached.float().mean():.2%} of the input"
    assert x.grad[1].abs().sum() == 0  # and nothing of another sample


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("control", ["alpha_zero", "identity_transform"])
def test_receptive_field_controls_are_local(spatial_dims, control):
    # The controls of test_global_receptive_field: the same block and probe reach only the probed pixel
    # when the branch is off (alpha = 0) or when f is local (SRB_I, the identity): the global field comes from f.
    torch.manual_seed(0)
    transform = "identity" if control == "identity_transform" else "fft"
    block = SpectralResidualBlock(spatial_dims, 4, transform)
    if control == "identity_transform":
        block = _activate(block)
    block.eval()
    x = torch.randn((2, 4) + (9,) * spatial_dims, requires_grad=True)
    centre = (4,) * spatial_dims
    block(x)[(0, slice(None)) + centre].sum().backward()
    expected = torch.zeros((9,) * spatial_dims, dtype=torch.bool)
    expected[centre] = True
    assert torch.equal(x.grad[0].abs().sum(0) > 0, expected)
    assert x.grad[1].abs().sum() == 0


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_torchscript_matches_eager(kwargs, shape):
    if kwargs.get("transform") == PARAMETRIZED_AOM:
        pytest.skip("PyTorch parametrizations are not scriptable (documented trade-off)")
    torch.manual_seed(0)
    block = _activate(SpectralResidualBlock(**kwargs)).eval()
    x = torch.randn(shape)
    torch.testing.assert_close(torch.jit.script(block)(x), block(x))


@pytest.mark.parametrize("kwargs,shape", [c for c in CASES if c[0]["spatial_dims"] == 2][:5])
def test_bf16_autocast_on_cpu(kwargs, shape):
    torch.manual_seed(0)
    block = _activate(SpectralResidualBlock(**kwargs)).eval()
    x = torch.randn(shape)
    ref = block(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x)
        out_bf16 = block(x.bfloat16())
    assert out.dtype == torch.float32 and out_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref)  # the spectral branch leaves autocast: float32 throughout
    torch.testing.assert_close(out_bf16.float(), ref, atol=1e-1, rtol=5e-2)


@pytest.mark.parametrize("kwargs,shape", CASES[:3] + CASES[6:8])
def test_float64(kwargs, shape):
    torch.manual_seed(0)
    block = _activate(SpectralResidualBlock(**kwargs)).eval()
    x = torch.randn(shape)
    x64 = x.double().requires_grad_()
    out = block.double()(x64)
    assert out.dtype == torch.float64
    out.pow(2).sum().backward()
    assert x64.grad.dtype == torch.float64 and block.alpha.grad.dtype == torch.float64
    torch.testing.assert_close(out.detach().float(), block.float()(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kwargs,shape", CASES[:3] + CASES[6:9])
def test_float64_input_to_a_default_block(kwargs, shape):
    torch.manual_seed(0)
    block = _activate(SpectralResidualBlock(**kwargs))
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    for mode in (True, False):
        block.train(mode)
        out = block(x)
        assert out.dtype == torch.float64
        out.pow(2).sum().backward()
        assert x.grad.dtype == torch.float64 and torch.isfinite(x.grad).all()
        assert block.alpha.grad.dtype == torch.float32 and block.alpha.grad.abs().item() > 0
    # the branch runs in the block's float32: the float64 output matches the float32 one
    torch.testing.assert_close(out.detach().float(), block(x.detach().float()), atol=1e-4, rtol=1e-4)


# (constructor kwargs, input shape): every transform, in a half-precision block
HALF_CASES = [*(CASES[i] for i in (0, 2, 3, 4, 9, 10)), ({**SRB_2D, "transform": "identity"}, (2, 4, 9, 7))]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kwargs,shape", HALF_CASES)
def test_half_precision_block_computes_its_branch_in_float32(kwargs, shape, dtype):
    # block.half() on the CPU used to fail in phi's batch norm: "mixed dtype (CPU): expect parameter to have
    # scalar type of Float"
    block = _activate(SpectralResidualBlock(**kwargs)).to(dtype)
    reference = copy.deepcopy(block).float()  # the same, rounded, parameters in float32
    torch.manual_seed(0)
    x = torch.randn(shape).to(dtype)
    eps = torch.finfo(dtype).eps
    for train in (False, True):
        block.train(train)
        reference.train(train)
        out = block(x.requires_grad_())
        assert out.dtype == dtype and block.alpha.dtype == dtype  # the block keeps its dtype
        # the branch is float32 throughout: the outputs differ by the half-precision residual sum only
        torch.testing.assert_close(out.float(), reference(x.detach().float()), rtol=4 * eps, atol=4 * eps)
        out.float().square().mean().backward()
        assert block.alpha.grad.dtype == dtype and block.alpha.grad.abs().item() > 0
        assert all(p.grad is not None and p.grad.dtype == dtype for p in block.parameters())
        block.zero_grad()
    for name, buffer in block.named_buffers():  # batch norm's statistics, updated in training, written back
        if buffer.is_floating_point():
            assert buffer.dtype == dtype, name
            torch.testing.assert_close(buffer, dict(reference.named_buffers())[name].to(dtype), msg=name)


def test_scripted_half_precision_block_names_the_dtype():
    block = torch.jit.script(SpectralResidualBlock(2, 4).half())
    with pytest.raises(torch.jit.Error, match="a scripted SpectralResidualBlock needs float32 or float64 parameters"):
        block(torch.randn(1, 4, 8, 8).half())


def _non_finite_input(shape, sample: int = 0) -> torch.Tensor:
    torch.manual_seed(2)
    x = torch.randn(shape)
    x[sample].view(-1)[0] = float("nan")
    x[sample].view(-1)[3] = float("inf")
    x[sample].view(-1)[5] = -float("inf")
    return x


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_identity_at_alpha_zero_keeps_nan_and_inf(kwargs, shape):
    torch.manual_seed(0)
    block = SpectralResidualBlock(**kwargs).eval()
    x = _non_finite_input(shape)
    runs = [block]
    if kwargs.get("transform") != PARAMETRIZED_AOM:
        runs.append(torch.jit.script(block))
    for run in runs:
        out = run(x)
        assert torch.equal(out.view(torch.int32), x.view(torch.int32))  # bit for bit, NaN included


@pytest.mark.parametrize("kwargs,shape", CASES)
def test_non_finite_sample_does_not_reach_other_samples_in_eval(kwargs, shape):
    torch.manual_seed(0)
    block = _activate(SpectralResidualBlock(**kwargs)).eval()
    x = _non_finite_input(shape, sample=0)
    out = block(x)
    assert torch.isfinite(out[1:]).all()
    torch.testing.assert_close(out[1:], block(x[1:]))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_non_float_input_is_rejected(dtype):
    block = _activate(SpectralResidualBlock(2, 4, spatial_size=8))
    x = (torch.rand(1, 4, 8, 8) * 4).to(dtype)
    message = f"floating-point input, got dtype {dtype}"
    with pytest.raises(ValueError, match=message):
        block(x)
    # TorchScript formats a dtype as its enum value
    with pytest.raises((ValueError, torch.jit.Error), match="floating-point input, got dtype"):
        torch.jit.script(block)(x)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", [(0, 4, 8, 8), (2, 4, 0, 8)])
def test_empty_input_is_rejected(shape, train):
    block = SpectralResidualBlock(2, 4).train(train)
    message = rf"non-empty input .*got shape \[{', '.join(map(str, shape))}\]"
    with pytest.raises(ValueError, match=message):
        block(torch.randn(shape))
    with pytest.raises((ValueError, torch.jit.Error), match=message):
        torch.jit.script(block)(torch.randn(shape))


@pytest.mark.parametrize("transform", ["fft", "dct"])
def test_other_input_sizes_train_and_infer(transform):
    torch.manual_seed(0)
    block = _activate(SpectralResidualBlock(2, 4, transform, spatial_size=(8, 8)))
    for size in [(8, 8), (13, 10), (5, 6)]:
        block.train()
        out = block(torch.randn(2, 4, *size))
        out.sum().backward()
        block.eval()
        assert block(torch.randn(1, 4, *size)).shape == (1, 4) + size
    assert block.phi.spectral_relu.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(2, 4, 9, 7), (1, 4, 5, 6, 7)])
def test_matmul_fft_impl_matches_fft(shape):
    torch.manual_seed(0)
    block = _activate(SpectralResidualBlock(len(shape) - 2, 4)).eval()
    x = torch.randn(shape)
    ref = block(x)
    block.f.impl = "matmul"
    torch.testing.assert_close(block(x), ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("transform", ["fft", "aom", "dct"])
def test_gradient_reaches_alpha_and_phi(transform):
    torch.manual_seed(0)
    block = SpectralResidualBlock(2, 4, transform, spatial_size=8)
    x = torch.randn(2, 4, 8, 8)
    block(x).pow(2).sum().backward()
    assert block.alpha.grad.abs().item() > 0  # alpha = 0 still lets the branch start learning ...
    assert all(p.grad.abs().sum() == 0 for p in block.phi.parameters())  # ... while phi's output is scaled by 0
    block.zero_grad()
    with torch.no_grad():
        block.alpha.fill_(0.5)
    block(x).pow(2).sum().backward()
    assert block.alpha.grad.abs().item() > 0
    for name, p in block.phi.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_a_registered_transform_builds_an_srb_by_name(toy_transform):
    torch.manual_seed(0)
    block = SpectralResidualBlock(2, 4, toy_transform, spatial_size=8)
    assert isinstance(block.f, ToyLocalTransform)
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(x), x)
    block = _activate(block).eval()
    torch.testing.assert_close(torch.jit.script(block)(x), block(x))
    assert not torch.equal(block(x), x)
    assert isinstance(make_block("srb_toy_local", 2, 4, spatial_size=(8, 8)).f, ToyLocalTransform)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"spatial_dims": 1, "in_channels": 4}, "spatial_dims"),
        ({"spatial_dims": 2, "in_channels": 0}, "in_channels"),
        ({"spatial_dims": 2, "in_channels": 4, "transform": "wavelet"}, r"(?s)'wavelet'.*Available options"),
        ({"spatial_dims": 2, "in_channels": 4, "transform": ("fft", {"impl": "dft"})}, r"(?s)'dft'.*Available options"),
        ({"spatial_dims": 2, "in_channels": 4, "transform": ("aom", {"init": "eye"}), "spatial_size": 8}, "'eye'"),
        ({"spatial_dims": 2, "in_channels": 4, "transform": "aom"}, r"transform='aom' needs spatial_size"),
        ({"spatial_dims": 2, "in_channels": 4, "transform": ("aom", {"init": "dct"})}, "needs spatial_size"),
        ({"spatial_dims": 2, "in_channels": 4, "reduction": 3}, "reduction"),
        ({"spatial_dims": 2, "in_channels": 4, "groups": 3}, "groups"),
        ({"spatial_dims": 2, "in_channels": 8, "reduction": 2, "groups": 8}, "groups"),
        ({"spatial_dims": "2", "in_channels": 4}, r"spatial_dims must be 2 or 3 \(an int\), got '2' \(str\)"),
        ({"spatial_dims": 2.0, "in_channels": 4}, r"spatial_dims .*got 2.0 \(float\)"),
        ({"spatial_dims": 2, "in_channels": 4.0}, r"in_channels .*got 4.0 \(float\)"),
        ({"spatial_dims": 2, "in_channels": 4, "reduction": 2.0}, r"reduction .*got 2.0 \(float\)"),
        ({"spatial_dims": 2, "in_channels": 4, "transform": "aom", "spatial_size": 0}, r"spatial_size .*got 0 \(int\)"),
        ({**SRB_2D, "transform": "aom", "spatial_size": -8}, r"spatial_size .*got -8 \(int\)"),
        ({**SRB_2D, "transform": "aom", "spatial_size": 16.7}, r"spatial_size .*got 16.7 \(float\)"),
        ({**SRB_2D, "transform": "aom", "spatial_size": (16, 16.7)}, r"entry 16.7 \(float\)"),
        ({**SRB_2D, "spatial_dims": 3, "transform": "aom", "spatial_size": (8, 8)}, r"spatial_size .*\(2 entries\)"),
        ({"spatial_dims": 2, "in_channels": 4, "transform": "dct", "spatial_size": 0}, r"spatial_size .*got 0 \(int\)"),
        ({**SRB_2D, "transform": "dct", "spatial_size": 16.7}, r"spatial_size .*got 16.7 \(float\)"),
        ({"spatial_dims": 2, "in_channels": 4, "transform": "fft", "spatial_size": 0}, r"spatial_size .*got 0 \(int\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpectralResidualBlock(**kwargs)


@pytest.mark.parametrize(
    "kwargs,shape,message",
    [
        ({"spatial_dims": 2, "in_channels": 4}, (1, 3, 8, 8), r"expects input \(batch, 4.*\[1, 3, 8, 8\]"),
        ({"spatial_dims": 2, "in_channels": 4}, (1, 4, 8, 8, 8), r"2 spatial dims.*\[1, 4, 8, 8, 8\]"),
        ({**SRB_2D, "transform": "aom", "spatial_size": 8}, (1, 4, 8, 9), r"\[8, 8\].*\[8, 9\]"),
    ],
)
def test_bad_inputs(kwargs, shape, message):
    block = SpectralResidualBlock(**kwargs)
    with pytest.raises(ValueError, match=message):
        block(torch.randn(shape))
    with pytest.raises((ValueError, torch.jit.Error), match=message):
        torch.jit.script(block)(torch.randn(shape))


@pytest.mark.parametrize(
    "target,args",
    [
        ("SpectralResidualBlock", {"spatial_dims": 2, "in_channels": 4, "transform": "aom", "spatial_size": [8, 8]}),
        ("SpectralReLU", {"spatial_size": [8, 8]}),
        ("FourierTransform", {"spatial_dims": 3}),
        ("AdaptiveOrthogonalTransform", {"spatial_size": [4, 4, 4]}),
        ("CosineTransform", {"spatial_size": [4, 4]}),
        ("NonLocalBlock", {"spatial_dims": 2, "in_channels": 4}),
        ("DoubleAttentionBlock", {"spatial_dims": 3, "in_channels": 4}),
    ],
)
def test_short_name_in_bundle_config(target, args):
    parser = ConfigParser({"imports": ["$import monai_srb"], "net": {"_target_": target, **args}})
    net = parser.get_parsed_content("net")
    assert type(net).__name__ == target and type(net).__module__.startswith("monai_srb.")


def test_public_names_do_not_collide_with_monai():
    import inspect

    from monai.bundle.config_item import ComponentLocator

    import monai_srb

    locator = ComponentLocator()
    public = [getattr(monai_srb, n) for n in monai_srb.__all__]
    components = [n for n, v in zip(monai_srb.__all__, public) if inspect.isclass(v) or inspect.isfunction(v)]
    assert "SpectralResidualBlock" in components and "retract_orthogonal_" in components
    for name in components:
        modules = locator.get_component_module_name(name)
        assert isinstance(modules, str) and modules.startswith("monai_srb"), (name, modules)
