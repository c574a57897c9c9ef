"""The paper's networks on MONAI's own, and SRB insertion into any MONAI network."""

from __future__ import annotations

from monai_srb.nets.insertion import InsertedBlock, insert_blocks
from monai_srb.nets.srb_classifiers import SRBDenseNet121, SRBResNet50
from monai_srb.nets.srb_parameters import init_srbs, param_groups
from monai_srb.nets.srb_spm import SimpleParallelModule, SRBSPMNet, dilate_resnet_
from monai_srb.nets.srb_unet import PAPER_UNET_FEATURES, SRB_POSITIONS, SRBUNet
from monai_srb.utils.sizes import check_input_size

__all__ = [
    "InsertedBlock",
    "PAPER_UNET_FEATURES",
    "SRBDenseNet121",
    "SRBResNet50",
    "SRBSPMNet",
    "SRBUNet",
    "SRB_POSITIONS",
    "SimpleParallelModule",
    "check_input_size",
    "dilate_resnet_",
    "init_srbs",
    "insert_blocks",
    "param_groups",
]
