"""The predictor of a job's worker: the runtime's own loading, with the job's config when it has one."""

from __future__ import annotations

from typing import Any

from ..predictor import construct, load_class
from .worker import Model


def load_model(predictor: str, model_dir: str, config: dict[str, Any]) -> Model:
    """Import and construct the class (PredictorLoadError: one line naming the file and line)."""
    cls = load_class(predictor)
    return Model(construct(cls, config, model_dir, predictor.rpartition(":")[0]))
