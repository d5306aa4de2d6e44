"""MLflow "models from code" entry point: MLflow runs this file to rebuild the model.

Logging the model by code rather than by object means nothing is pickled:
the logged model is this file, the model folder (LightGBM text models and a
JSON manifest) and the pinned requirements.
"""
import mlflow

from models.pyfunc import SeaIceChartModel

mlflow.models.set_model(SeaIceChartModel())
