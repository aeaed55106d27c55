"""mlkit_runtime: the FastAPI predictor server every mlkit API runs. It never imports `mlkit`."""

__version__ = "0.1.0"
