from .builders import build_train_dataset, build_val_dataset
from .images import ImageReadError, list_images, load_rgb
from .loader import EpochSampler, collate_skipping_errors
from .paired import PairedDataset
from .unpaired import UnpairedDataset

__all__ = [
    "EpochSampler",
    "ImageReadError",
    "PairedDataset",
    "UnpairedDataset",
    "build_train_dataset",
    "build_val_dataset",
    "collate_skipping_errors",
    "list_images",
    "load_rgb",
]
