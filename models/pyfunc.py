"""The trained charts as an MLflow ``pyfunc`` model (needs ``pip install '.[mlflow]'``).

The logged model holds the model folder (the three LightGBM boosters and the
manifest with the feature configuration) as an artifact; the featurizer is
this package's code, so loading needs the package installed (``pip install
-e .``) next to the pinned requirements logged with the model.

Input: a pandas DataFrame with a string column ``scene_path``, one row per
scene file (``*_prep.nc``, train or test layout), for example::

    import mlflow, pandas as pd
    model = mlflow.pyfunc.load_model("runs:/<run id>/model")
    out = model.predict(pd.DataFrame({"scene_path": ["data/test/20190902T132420_cis_prep.nc"]}))
    out.loc[0, "SIC"]   # uint8 (H, W) class map

Output: a DataFrame with one row per input row and the columns ``scene``
(the 19-character scene key) and ``SIC``, ``SOD``, ``FLOE``, each a uint8
class map at the scene's full 80 m shape: exactly the maps
:func:`models.predict_scene` and ``seaice predict`` produce (and write to the
submission as ``{scene}_{chart}``).

Params (``model.predict(df, params={...})``): ``stride`` (int, lattice step
in SAR pixels; 0 = the model's) and ``smoothing`` (bool, default True), as
``seaice predict --stride / --no-smoothing``.

The input example logged with the model names a tiny synthetic test scene
that existed while the model was logged: it shows the format only.

A logged or registered model's folder comes back as a plain model folder
with :func:`download_model_dir` (``seaice predict --model models:/NAME/VERSION``).
"""
import tempfile
from importlib import metadata
from pathlib import Path

import mlflow.artifacts
import mlflow.pyfunc
import pandas as pd
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

from scenes.contract import LABEL_CHARTS
from scenes.reader import list_scenes, open_scene, scene_key
from scenes.synth import write_synthetic_dataset

from .persistence import load_model
from .predict import predict_scene

#: Input column holding the scene file paths.
INPUT_COLUMN = "scene_path"
#: Model-folder artifact key.
ARTIFACT = "model_dir"
#: Distributions pinned in the logged model's requirements (if installed).
REQUIREMENTS = ("lightgbm", "numpy", "scipy", "pandas", "xarray", "h5netcdf", "h5py",
                "scikit-image", "scikit-learn", "numba", "joblib", "mlflow-skinny")
#: Shape of the synthetic scene of the input example (small: logging predicts it).
EXAMPLE_SHAPE = (100, 110)


def _scene_paths(model_input) -> list:
    if isinstance(model_input, pd.DataFrame):
        if INPUT_COLUMN not in model_input.columns:
            raise ValueError(f"input DataFrame needs a {INPUT_COLUMN!r} column of scene file "
                             f"paths; got columns {list(model_input.columns)}")
        return [str(p) for p in model_input[INPUT_COLUMN]]
    if isinstance(model_input, (str, Path)):
        return [str(model_input)]
    return [str(p) for p in model_input]


class SeaIceChartModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: scene file paths -> SIC, SOD, FLOE maps (see the module doc)."""

    def load_context(self, context):
        self.bundle = load_model(context.artifacts[ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        params = params or {}
        stride = int(params.get("stride") or 0) or None
        smoothing = bool(params.get("smoothing", True))
        rows = []
        for path in _scene_paths(model_input):
            ds = open_scene(path)
            try:
                maps = predict_scene(ds, self.bundle, stride=stride, smoothing=smoothing)
            finally:
                ds.close()
            rows.append({"scene": scene_key(path), **maps})
        return pd.DataFrame(rows, columns=["scene", "SIC", "SOD", "FLOE"])


def signature():
    """Input, output and params schema of :class:`SeaIceChartModel`."""
    maps = [ColSpec(Array(Array(DataType.integer)), c) for c in LABEL_CHARTS]
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string, INPUT_COLUMN)]),
        outputs=Schema([ColSpec(DataType.string, "scene"), *maps]),
        params=ParamSchema([ParamSpec("stride", DataType.long, 0),
                            ParamSpec("smoothing", DataType.boolean, True)]))


def requirements() -> list:
    """Pinned versions of the installed runtime dependencies."""
    out = []
    for name in REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def log_model(model_dir, *, name: str = "model", registered_model_name=None):
    """Log a model folder as a pyfunc model of the active MLflow run.

    Parameters
    ----------
    model_dir : path
        A model folder written by :func:`pipeline.train_models`.
    name : str
        Name of the logged model (``runs:/<run id>/<name>``).
    registered_model_name : str, optional
        Also register it under this name in the model registry.

    Returns
    -------
    mlflow.models.model.ModelInfo
    """
    load_model(model_dir)  # refuse a broken folder before copying it
    with tempfile.TemporaryDirectory(prefix="seaice-example-") as tmp:
        write_synthetic_dataset(tmp, n_train=0, n_test=1, size=EXAMPLE_SHAPE, seed=0,
                                progress=False)
        example = pd.DataFrame({INPUT_COLUMN: [str(list_scenes(Path(tmp) / "test")[0])]})
        # MLflow 3 names logged models; 2.x put them at an artifact path
        where = {"name" if int(mlflow.__version__.split(".")[0]) >= 3 else "artifact_path": name}
        return mlflow.pyfunc.log_model(
            # logged as code (models from code), so no Python object is pickled
            **where, python_model=str(Path(__file__).with_name("_pyfunc_entry.py")),
            artifacts={ARTIFACT: str(model_dir)},
            signature=signature(), input_example=example, pip_requirements=requirements(),
            registered_model_name=registered_model_name)


def download_model_dir(model_uri: str, dst) -> Path:
    """Download a model logged by :func:`log_model` into ``dst``; return its model folder.

    Parameters
    ----------
    model_uri : str
        ``runs:/<run id>/model``, ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``...
    dst : path
        An existing (empty) folder.

    Returns
    -------
    Path
        The model folder inside ``dst``, ready for :func:`models.persistence.load_model`.
    """
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    flavor = Model.load(str(local)).flavors.get("python_function", {})
    spec = (flavor.get("artifacts") or {}).get(ARTIFACT)
    if not spec or not (local / spec["path"]).is_dir():
        raise ValueError(f"{model_uri}: not a seaice-gbm model (no {ARTIFACT!r} artifact in its "
                         "MLmodel); use a model logged by `seaice train --mlflow`")
    return local / spec["path"]
