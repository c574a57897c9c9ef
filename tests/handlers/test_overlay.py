from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.inferers import SlidingWindowInferer
from PIL import Image

from monai_srb.handlers import SegmentationOverlayHandler
from monai_srb.nets import SRBUNet

SMALL = (4, 4, 8, 8, 16, 4)

# (spatial_dims, image shape, classes, inferer)
CASES = [
    (2, (3, 32, 48), 2, None),
    (2, (1, 32, 32), 3, None),
    (3, (1, 32, 32, 24), 3, SlidingWindowInferer(roi_size=(32, 32, 16), sw_batch_size=2)),
]


@pytest.mark.parametrize("dims,shape,classes,inferer", CASES)
def test_writes_image_truth_prediction_panels(tmp_path, dims, shape, classes, inferer):
    torch.manual_seed(0)
    net = SRBUNet(dims, shape[0], classes, features=SMALL).train()
    label = torch.zeros((1,) + shape[1:])
    label[..., 8:20, 8:20, ...] = classes - 1
    items = [{"image": torch.rand(shape), "label": label, "name": f"case_{i}.png"} for i in range(3)]
    handler = SegmentationOverlayHandler(net, items, tmp_path, inferer=inferer, num_images=2)
    (tmp_path / "overlay_99_stale.png").write_bytes(b"")
    saved = handler()
    assert [p.name for p in saved] == ["overlay_00_case_0.png", "overlay_01_case_1.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in saved]  # stale ones replaced
    pixels = np.asarray(Image.open(saved[0]))
    assert pixels.shape == (shape[1], 3 * shape[2], 3)
    # the ground-truth panel is coloured where the label is, and only there
    truth = pixels[:, shape[2] : 2 * shape[2]].astype(int)
    plain = pixels[:, : shape[2]].astype(int)
    assert np.abs(truth - plain)[8:20, 8:20].sum() > 0 and np.abs(truth - plain)[25:, 25:].sum() == 0
    assert net.training  # the network's mode is restored


def test_bad_num_images(tmp_path):
    with pytest.raises(ValueError, match="num_images"):
        SegmentationOverlayHandler(torch.nn.Conv2d(1, 2, 1), [], tmp_path, num_images=0)
