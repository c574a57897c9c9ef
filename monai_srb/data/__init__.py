"""Data sets and data lists for the monai_srb bundles."""

from __future__ import annotations

from monai_srb.data.chest_xray import (
    CHESTXRAY14_CLASSES,
    chestxray14_datalists,
    medmnist_datalists,
    patient_split,
    random_split,
    read_chestxray14_csv,
    write_synthetic_chestxray14,
)
from monai_srb.data.decathlon import (
    decathlon_class_names,
    load_decathlon_data,
    load_nifti_images,
    make_synthetic_decathlon,
)
from monai_srb.data.skin_lesion import (
    DEFAULT_MASK_PATTERN,
    dataset_image_channels,
    folder_image_channels,
    image_channels,
    load_head_circumferences,
    load_skin_lesion_data,
    load_skin_lesion_images,
    make_synthetic_skin_lesions,
)
from monai_srb.data.split import kfold_split, split_datalist

__all__ = ["kfold_split", "split_datalist"]
__all__ += [
    "CHESTXRAY14_CLASSES",
    "chestxray14_datalists",
    "medmnist_datalists",
    "patient_split",
    "random_split",
    "read_chestxray14_csv",
    "write_synthetic_chestxray14",
]
__all__ += ["decathlon_class_names", "load_decathlon_data", "load_nifti_images", "make_synthetic_decathlon"]
__all__ += [
    "DEFAULT_MASK_PATTERN",
    "dataset_image_channels",
    "folder_image_channels",
    "image_channels",
    "load_head_circumferences",
    "load_skin_lesion_data",
    "load_skin_lesion_images",
    "make_synthetic_skin_lesions",
]
