"""Per-pixel features of AI4Arctic scenes for gradient boosting.

Public API: :class:`FeatureConfig` (:mod:`featurize.config`),
:func:`feature_names`, :func:`feature_groups`, :func:`n_features`,
:func:`featurize_blocks`, :func:`featurize_at` (:mod:`featurize.assemble`).
The feature groups are declared in :mod:`featurize.groups`.
"""
from .assemble import feature_groups, feature_names, featurize_at, featurize_blocks, n_features
from .config import FeatureConfig

__all__ = ["FeatureConfig", "feature_groups", "feature_names", "featurize_at",
           "featurize_blocks", "n_features"]
