"""
Data sets and data lists for the monai_srb bundles: one module per data set family, the shared splits and image
checks, and the synthetic data sets.

- :mod:`~monai_srb.data.chestxray14`, :mod:`~monai_srb.data.medmnist`: the two chest X-ray classification
  formats; :mod:`~monai_srb.data.classification`: the bundle's entry points over either.
- :mod:`~monai_srb.data.skin_lesion`: 2D segmentation folders (ISIC, HC18, PH2).
- :mod:`~monai_srb.data.decathlon`: Medical Segmentation Decathlon folders.
- :mod:`~monai_srb.data.split`: seeded splits; :mod:`~monai_srb.data.image_checks`: image-file checks.
- :mod:`~monai_srb.data.synthetic`: synthetic data sets in each on-disk format.
"""

from __future__ import annotations

from monai_srb.data.chestxray14 import (
    CHESTXRAY14_CLASSES,
    chestxray14_datalists,
    find_chestxray14_csv,
    read_chestxray14_csv,
)
from monai_srb.data.classification import (
    classification_datalists,
    data_format,
    default_class_names,
    image_folder_datalist,
    infer_task,
    inference_datalist,
    positive_weights,
)
from monai_srb.data.decathlon import decathlon_class_names, load_decathlon_data, load_nifti_images
from monai_srb.data.image_checks import image_channels
from monai_srb.data.medmnist import medmnist_datalists
from monai_srb.data.skin_lesion import (
    DEFAULT_MASK_PATTERN,
    dataset_image_channels,
    folder_image_channels,
    load_head_circumferences,
    load_skin_lesion_data,
    load_skin_lesion_images,
)
from monai_srb.data.split import (
    group_kfold_split,
    group_split_datalist,
    kfold_split,
    patient_split,
    random_split,
    split_datalist,
    subject_ids,
)
from monai_srb.data.synthetic import make_synthetic_decathlon, make_synthetic_skin_lesions, write_synthetic_chestxray14

__all__ = [
    "CHESTXRAY14_CLASSES",
    "DEFAULT_MASK_PATTERN",
    "chestxray14_datalists",
    "classification_datalists",
    "data_format",
    "dataset_image_channels",
    "decathlon_class_names",
    "default_class_names",
    "find_chestxray14_csv",
    "folder_image_channels",
    "group_kfold_split",
    "group_split_datalist",
    "image_channels",
    "image_folder_datalist",
    "infer_task",
    "inference_datalist",
    "kfold_split",
    "load_decathlon_data",
    "load_head_circumferences",
    "load_nifti_images",
    "load_skin_lesion_data",
    "load_skin_lesion_images",
    "make_synthetic_decathlon",
    "make_synthetic_skin_lesions",
    "medmnist_datalists",
    "patient_split",
    "positive_weights",
    "random_split",
    "read_chestxray14_csv",
    "split_datalist",
    "subject_ids",
    "write_synthetic_chestxray14",
]
