"""The mlkit.yaml spec: models, accelerator table, cross-field rules and the loader."""

from .loader import load, loads
from .schema import Spec

__all__ = ["Spec", "load", "loads"]
