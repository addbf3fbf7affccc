from .fid import (
    InceptionFeatures,
    WeightsUnavailable,
    frechet_distance,
    kid,
    load_statistics,
    resolve_weights,
    save_statistics,
    statistics,
)

__all__ = [
    "InceptionFeatures",
    "WeightsUnavailable",
    "frechet_distance",
    "kid",
    "load_statistics",
    "resolve_weights",
    "save_statistics",
    "statistics",
]
