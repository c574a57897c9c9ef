"""
Every block under PyTorch 2's compiler: ``torch.compile`` (inductor, default mode) matches eager in the output and the
input gradient, with no graph break inside the block, and one dynamic-shape SRB_F graph serves several input sizes.
"""

from __future__ import annotations

import pytest
import torch

from monai_srb.blocks import make_block

# (block name, spatial dims, input shape, block kwargs); the first case runs in the fast suite, the rest are slow.
CASES = [
    pytest.param("srb_fft", 2, (2, 16, 40, 56), {}, id="srb_fft-2d", marks=pytest.mark.slow),
    pytest.param("srb_fft", 3, (2, 8, 6, 10, 12), {}, id="srb_fft-3d", marks=pytest.mark.slow),
    pytest.param("srb_fft", 2, (2, 8, 12, 20), {"transform_args": {"impl": "matmul"}}, id="srb_fft_matmul-2d",
                 marks=pytest.mark.slow),
    pytest.param("srb_aom", 2, (2, 8, 12, 20), {"spatial_size": (12, 20)}, id="srb_aom-2d", marks=pytest.mark.slow),
    pytest.param("srb_aom", 3, (2, 4, 6, 8, 10), {"spatial_size": (6, 8, 10)}, id="srb_aom-3d",
                 marks=pytest.mark.slow),
    pytest.param("srb_dct", 2, (2, 8, 12, 20), {}, id="srb_dct-2d", marks=pytest.mark.slow),
    pytest.param("srb_identity", 2, (2, 8, 12, 20), {}, id="srb_identity-2d", marks=pytest.mark.slow),
    pytest.param("nonlocal", 2, (2, 8, 12, 20), {}, id="nonlocal-2d", marks=pytest.mark.slow),
    pytest.param("double_attention", 2, (2, 8, 12, 20), {}, id="double_attention-2d", marks=pytest.mark.slow),
    pytest.param("nonlocal", 3, (2, 8, 4, 6, 8), {}, id="nonlocal-3d", marks=pytest.mark.slow),
]


def _active(name, spatial_dims, channels, kwargs):
    torch.manual_seed(0)
    block = make_block(name, spatial_dims, channels, **kwargs)
    with torch.no_grad():  # away from the identity at initialisation, so the branch counts
        for n, p in block.named_parameters():
            if n.endswith("alpha") or n.endswith("gamma"):
                p.fill_(0.7)
    return block


def _output_and_grad(module, x):
    x = x.detach().clone().requires_grad_(True)
    y = module(x)
    y.square().sum().backward()
    return y.detach(), x.grad


@pytest.mark.parametrize("name,spatial_dims,shape,kwargs", CASES)
def test_compiled_block_matches_eager_without_graph_breaks(name, spatial_dims, shape, kwargs):
    torch._dynamo.reset()
    block = _active(name, spatial_dims, shape[1], kwargs)
    x = torch.randn(shape)
    explained = torch._dynamo.explain(block)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    y, g = _output_and_grad(torch.compile(block), x)
    y0, g0 = _output_and_grad(block, x)
    torch.testing.assert_close(y, y0, rtol=1e-5, atol=1e-5 * y0.abs().max().item())
    torch.testing.assert_close(g, g0, rtol=1e-5, atol=1e-5 * g0.abs().max().item())


@pytest.mark.slow
def test_one_dynamic_srb_f_graph_serves_three_sizes():
    torch._dynamo.reset()
    block = _active("srb_fft", 2, 8, {})
    compiled = torch.compile(block, dynamic=True)
    sizes = [(24, 40), (33, 18), (48, 48)]
    _output_and_grad(compiled, torch.randn(2, 8, *sizes[0]))
    with torch.compiler.set_stance("fail_on_recompile"):
        for size in sizes[1:]:
            x = torch.randn(2, 8, *size)
            y, g = _output_and_grad(compiled, x)
            y0, g0 = _output_and_grad(block, x)
            torch.testing.assert_close(y, y0, rtol=1e-5, atol=1e-5 * y0.abs().max().item())
            torch.testing.assert_close(g, g0, rtol=1e-5, atol=1e-5 * g0.abs().max().item())
