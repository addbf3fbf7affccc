from .fid import (
    FIDResult,
    InceptionFeatures,
    Statistics,
    WeightsSource,
    WeightsUnavailable,
    feature_statistics,
    fid_between,
    frechet_distance,
    kid,
    load_statistics,
    resolve_weights,
    save_statistics,
)

__all__ = [
    "FIDResult",
    "InceptionFeatures",
    "Statistics",
    "WeightsSource",
    "WeightsUnavailable",
    "feature_statistics",
    "fid_between",
    "frechet_distance",
    "kid",
    "load_statistics",
    "resolve_weights",
    "save_statistics",
]
