"""Settings of the tiny models that tests train (seconds each)."""
#: LightGBM settings small enough for tests.
PARAMS = dict(n_estimators=12, num_leaves=7, min_child_samples=10, subsample=0.8,
              early_stopping_rounds=5)
#: ``train_models`` arguments of the shared ``tiny_model`` fixture (conftest.py);
#: a test that retrains it passes the same.
TRAIN = dict(seed=11, n_pixels=4000, val_fraction=0.34, n_jobs=1, progress=False, stride=4,
             estimator_params=PARAMS)
