"""The one place a run's config is finished before training: each setting checked once, the
datasets built from the config's folders (unless given), the domains' pixel formats read off the
train split (a new run) or checked against it (a resumed one), batch sizes checked against
uncropped images, and the generator fitted to the crop size."""
from __future__ import annotations

import dataclasses

from torch.utils.data import Dataset

from ..config import RunConfig, check_settings
from ..data.builders import build_datasets, check_batch_sizes
from ..data.domain import DomainData, resolve_formats, with_default_formats
from ..methods import METHODS
from ..models import fit_to_size


def prepare_run(cfg: RunConfig, train_set: Dataset | None = None,
                val_set: Dataset | None = None) -> tuple[RunConfig, Dataset, Dataset | None]:
    """(the finished config, the train split, the validation split or None). Without `train_set`
    the splits are the config's folders in the method's layout. Datasets that read files
    (`DomainData`) give the formats and get them, the val split too; other datasets are taken
    as 8-bit RGB."""
    check_settings(cfg)
    kind = METHODS[cfg.method].dataset_kind
    if train_set is None:
        train_set, val_set = build_datasets(cfg, kind)
        if METHODS[cfg.method].second_source:  # the unpaired layout's second A per sample
            train_set.second_source = True
    if isinstance(train_set, DomainData):
        cfg = resolve_formats(cfg, train_set)
        check_batch_sizes(cfg, kind, train_set)
        if isinstance(val_set, DomainData):
            val_set.formats = train_set.formats
    else:
        cfg = with_default_formats(cfg)
    return dataclasses.replace(cfg, model=fit_to_size(cfg.model, cfg.data.crop_size)), train_set, val_set
