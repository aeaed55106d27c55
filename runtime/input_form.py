"""A predictor's input form: the pydantic model its class names as `Input`, checked against each payload.

    class Predictor:
        class Input(pydantic.BaseModel):
            text: str = pydantic.Field(max_length=10_000)

A class without `Input` takes any payload, as before. With one, the Input is the form of one payload,
what `predict` gets (the predictor still gets it as sent, not the model's parsed copy):
- `POST /predict`: the JSON body; a misfit is 400 naming the field.
- KServe v1 `POST /v1/models/{name}:predict`: each of `instances` (each is one payload to `predict`);
  the first misfit is 400 naming `instances[K]` and the field, and no instance is run.
- OIP v2 `/v2/models/{name}/infer`: not checked. Its body is tensors (name, shape, datatype, data)
  that the route checks against the protocol (oip_schema.py) and hands over as arrays; a model of
  `{"text": str}` says nothing about them, and pydantic over 150k floats would cost milliseconds.
- Batch jobs: `mlkit job run` / `mlkit job submit` check every item of a JSONL input before any shard
  is written, so a job never starts over items its predictor cannot take; where `submit` cannot import
  the class here, each pod's worker checks the items instead, and `on_error` decides about a misfit.
Bytes payloads (files, octet-stream) are not JSON and pass unchecked. The check is the model's own
validation (its strictness and constraints). With `--fronts` the fronts never import the class: each
asks the model process, which holds it ("check" on the link), so a front answers the same 400 (one
more round trip per payload, only for classes with an `Input`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import PredictorFault

ATTRIBUTE = "Input"


def of(cls: type) -> type[BaseModel] | None:
    """The class's `Input`, checked: the predictor loader calls it, so a bad value stops start-up in one line."""
    found = getattr(cls, ATTRIBUTE, None)
    if found is None:
        return None
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise PredictorFault(f"{cls.__name__}.{ATTRIBUTE} is {found!r:.80}; it must be a pydantic model class (class Input(pydantic.BaseModel): ...)")
    return found


def problem(form: type[BaseModel], payload: Any) -> str | None:
    """None when the form takes the payload; else its first refusal as `field.path: message (got VALUE)`, one line."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return None
    try:
        form.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the payload"
        got = repr(first.get("input"))
        got = got if len(got) <= 60 else got[:57] + "..."
        return " ".join(f"{where}: {first['msg']} (got {got})".split())
    return None
