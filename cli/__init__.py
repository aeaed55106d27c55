"""mlkit: production model serving on Kubernetes from one spec file."""

__version__ = "0.1.0"
