"""The Open Inference Protocol v2 request and response bodies as pydantic models, as KServe declares them.

They check every request (strictly: a shape of "2" or a datatype of [] is an error, not a guess) and
give the OpenAPI schema its request and response bodies, so `/docs` documents the protocol and
schemathesis fuzzes against it. Tensor `data` is checked here only for being a list: its elements
are checked against the datatype and shape when they become arrays (tensors.py), which is where a
pydantic model of 150k floats would cost milliseconds.
"""

from __future__ import annotations

import reprlib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema

from .errors import BadRequest

MAX_TENSORS = 1024  # inputs, and outputs asked for, per request: far more than models have, far fewer than a body can list
Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"]


def _scalar(value: Any) -> Any:
    if isinstance(value, (str, int, float)):  # bool is an int
        return value
    raise ValueError(f"must be a string, number or boolean, not {type(value).__name__}")


def _list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value  # the same object: no copy of a large tensor
    raise ValueError(f"must be a list (flat or nested, row-major), not {type(value).__name__}")


Scalar = Annotated[Any, PlainValidator(_scalar), WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]})]
Parameters = Annotated[dict[str, Scalar], Field(description="Free-form parameters: names to strings, numbers or booleans.")]
TensorData = Annotated[
    list[Any],
    PlainValidator(_list),
    WithJsonSchema({
        "type": "array",
        "description": "The tensor's elements in row-major order, flat or nested by the shape: numbers, booleans, or strings for BYTES.",
        "items": {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string"}, {"type": "array", "items": {}}]},
    }),
]
Shape = Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=64, description="Dimensions, outermost first (at most 64).")]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class RequestInput(_Strict):
    name: str
    shape: Shape
    datatype: Datatype
    parameters: Parameters | None = Field(
        None, description="`binary_data_size`: the byte length of this tensor in the binary part of the body (binary tensor extension)."
    )
    data: TensorData | None = Field(None, description="Required unless parameters.binary_data_size is given.")


class RequestOutput(_Strict):
    name: str
    parameters: Parameters | None = Field(None, description="`binary_data`: true for this output as raw bytes after the JSON header.")


class InferenceRequest(_Strict):
    id: str | None = None
    # KServe's client names the model in the body too; the path decides which model runs.
    model_name: str | None = Field(None, description="Ignored: the path names the model.")
    model_version: str | None = Field(None, description="Ignored: one version is served.")
    parameters: Parameters | None = Field(None, description="`binary_data_output`: true for every output as raw bytes after the JSON header.")
    inputs: list[RequestInput] = Field(min_length=1, max_length=MAX_TENSORS)
    outputs: list[RequestOutput] | None = Field(None, max_length=MAX_TENSORS, description="The outputs to return (all when absent).")


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(None, description="Absent when the output is binary (parameters.binary_data_size says how many bytes).")


class InferenceResponse(BaseModel):
    model_name: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class InferenceErrorBody(BaseModel):
    error: str
    request_id: str


def validate_request(body: Any) -> InferenceRequest:
    try:
        return InferenceRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from None


def describe(exc: ValidationError, most: int = 3) -> str:
    """Pydantic's errors as one line: `inputs[0].datatype: Input should be ... (got [])`."""
    parts = []
    for error in exc.errors(include_url=False)[:most]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".") or "body"
        message = error["msg"].removeprefix("Value error, ")
        got = "" if error["type"] == "missing" else f" (got {_short(error['input'])})"
        parts.append(f"{where}: {message}{got}")
    more = exc.error_count() - most
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


# Bounded in depth and length: a value nested a thousand deep must not take repr() past the recursion limit.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 6, 4, 40, 40


def _short(value: Any, limit: int = 60) -> str:
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` inlined, to sit in an OpenAPI operation on its own."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    inlined: dict[str, Any] = resolve(schema)  # a dict in, a dict out
    return inlined
