"""Predictors that declare their input form (runtime/input_form.py)."""

from pydantic import BaseModel, Field


class Review:
    class Input(BaseModel):
        text: str = Field(max_length=20)
        stars: int | None = Field(None, ge=1, le=5)

    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        return {"got": payload if not isinstance(payload, bytes) else len(payload)}


class BadInput:
    Input = {"text": "str"}

    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        return payload
