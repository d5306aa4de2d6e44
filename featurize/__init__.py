"""Per-pixel features of AI4Arctic scenes for gradient boosting.

Public API (see :mod:`featurize.assemble`): :class:`FeatureConfig`,
:func:`feature_names`, :func:`feature_groups`, :func:`n_features`,
:func:`featurize_blocks`, :func:`featurize_at`, :func:`valid_mask`.
"""
from .assemble import (FeatureConfig, feature_groups, feature_names, featurize_at,
                       featurize_blocks, n_features, valid_mask)

__all__ = ["FeatureConfig", "feature_groups", "feature_names", "featurize_at",
           "featurize_blocks", "n_features", "valid_mask"]
