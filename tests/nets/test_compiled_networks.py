"""
The networks under ``torch.compile``: dynamo captures each whole and AOTAutograd traces its backward (the
``aot_eager`` backend), and forward and backward match eager.

Inductor's code generation is checked where this project's own operators are, block by block in
tests/blocks/test_compiled_blocks.py, and on a whole network in tests/bundles/test_skin_lesion_bundle.py's compiled
training. On the five networks here it cost 632 s of the suite's time (2 cores, torch 2.13 CPU, 2026-12-08: 192 s
for SRBDenseNet121 alone) against 45 s with ``aot_eager``, and generates kernels for MONAI's and torchvision's
standard layers only.
"""

from __future__ import annotations

import pytest
import torch

from monai_srb.nets import SRBDenseNet121, SRBResNet50, SRBSPMNet, SRBUNet

BACKEND = "aot_eager"
FOUR = ["before_up4", "before_up3", "before_up2", "before_up1"]
# (id, network factory, input shape, dtype)
CASES = [
    ("srb_unet_2d", lambda: SRBUNet(2, 3, 2, srb_positions=FOUR), (2, 3, 32, 48), torch.float32),
    ("srb_unet_3d", lambda: SRBUNet(3, 1, 3, features=(8, 8, 16, 32, 64, 8), srb_positions=FOUR[:2]),
     (1, 1, 16, 16, 32), torch.float32),
    # The ResNet and DenseNet backbones are checked in float64. In float32 their inductor-compiled input gradients
    # differ from eager by 2e-3 to 2e-2 of the largest (measured 2026-12-07, torch 2.13 CPU, 2 x 3 x 64 x 64): its
    # fused kernels move the forward by ~1e-7, which flips the max-pool's choice between two near-equal values
    # and the ReLU's gate on inputs within ~1e-7 of 0, and each flip reroutes a whole gradient contribution. With
    # the stem's max-pool swapped for an average pool, SRBResNet50 and SRBDenseNet121 match to 2.5e-6 and 6e-7 in
    # float32; in float64 all three match eager to 4e-15, so the compiled graph is the eager one.
    ("srb_resnet50", lambda: SRBResNet50(2, 3, 4), (2, 3, 32, 32), torch.float64),
    ("srb_densenet121", lambda: SRBDenseNet121(2, 3, 4), (2, 3, 32, 32), torch.float64),
    ("srb_spm", lambda: SRBSPMNet(2, 3, 2), (2, 3, 32, 32), torch.float64),
]
# SRB_A, SRB_DCT and the attention blocks are in tests/blocks/test_compiled_blocks.py. That a compiled SRBUNet
# trains, with the eager metrics, is tests/bundles/test_skin_lesion_bundle.py's compile test.


def _activate(net):
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("alpha"):
                p.fill_(0.5)
    return net


def _output_and_grad(module, x):
    x = x.detach().clone().requires_grad_(True)
    y = module(x)
    y.square().mean().backward()
    return y.detach(), x.grad


@pytest.mark.slow
@pytest.mark.parametrize("build,shape,dtype", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_compiled_network_matches_eager(build, shape, dtype):
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = _activate(build()).eval().to(dtype)  # eval: a 2-image batch's statistics would make the check ill-posed
    x = torch.randn(shape, dtype=dtype)
    y, g = _output_and_grad(torch.compile(net, backend=BACKEND), x)
    y0, g0 = _output_and_grad(net, x)
    torch.testing.assert_close(y, y0, rtol=1e-5, atol=1e-5 * y0.abs().max().item())
    torch.testing.assert_close(g, g0, rtol=1e-5, atol=1e-4 * g0.abs().max().item())


@pytest.mark.parametrize("build,shape", [c[1:3] for c in CASES[:2]], ids=[c[0] for c in CASES[:2]])
def test_srb_unet_is_one_graph(build, shape):
    # MONAI's UpCat broke the graph at each up-sampling (dynamo skips torch.jit.isinstance): 13 graphs, recompiled
    # for train and eval each, in the 2D bundle's network
    torch._dynamo.reset()
    explained = torch._dynamo.explain(_activate(build()))(torch.randn(shape))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
