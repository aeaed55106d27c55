"""OIP v2 inference messages on the wire: the request (JSON, or a JSON header and binary tensors) into
the payload a predictor gets, and its result into the response (JSON, or binary where asked).

The binary tensor extension (Triton's, which KServe and MLServer share): a request with an
`Inference-Header-Content-Length: N` header carries N bytes of JSON, then the inputs that have
`parameters.binary_data_size` back to back, in input order. Outputs go binary when the request says
`parameters.binary_data_output: true` (all of them) or an output's `parameters.binary_data: true`;
the response then carries the same header and framing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from . import tensors
from .errors import BadRequest, PredictorFault, UnsupportedMediaType
from .oip_schema import InferenceRequest, validate_request
from .payloads import FORM_TYPES, JSON_TYPES, byte_count, clip, dumps, media_type, parse_json, payload, read_body_into

HEADER_LENGTH = "inference-header-content-length"
OFF_LOOP_BYTES = 256 * 1024  # bodies from this size on are decoded in a thread
BINARY_TYPES = ("application/octet-stream", "", *JSON_TYPES)


@dataclass
class Decoded:
    payload: dict[str, Any]  # what the predictor gets: the request with each input's data as the predictor asked
    request: InferenceRequest


async def read_request(request: Request, limit: int, form: str) -> Decoded:
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding != "identity":
        raise UnsupportedMediaType(f"Content-Encoding {encoding[:20]} is not supported; send the body uncompressed")
    header_length = request.headers.get(HEADER_LENGTH)
    if header_length is None:
        body = await payload(request, limit, json_only=True)
        buffer, binary_at = None, 0
    else:
        kind = media_type(request)
        if kind in FORM_TYPES or kind not in BINARY_TYPES:
            raise UnsupportedMediaType(f"content type {kind} is not supported with Inference-Header-Content-Length; send application/octet-stream")
        count = byte_count(header_length)
        if count is None:
            raise BadRequest(f"Inference-Header-Content-Length must be a byte count, got {clip(header_length, 40)!r}")
        binary_at = count
        raw = await read_body_into(request, limit, lambda size: _aligned(size, binary_at))
        buffer = np.frombuffer(raw, dtype=np.uint8) if len(raw) else np.empty(0, np.uint8)
        if binary_at > len(raw):
            raise BadRequest(f"Inference-Header-Content-Length is {binary_at} bytes, larger than the {len(raw)}-byte body")
        if binary_at == 0:
            raise BadRequest("Inference-Header-Content-Length is 0: the body must start with the JSON inference header")
        body = parse_json(bytes(raw[:binary_at]))
    model = validate_request(body)
    _check_parameters(model)
    if (byte_count(request.headers.get("content-length")) or 0) >= OFF_LOOP_BYTES:
        # Large tensors become arrays in a thread, so that the event loop goes on serving meanwhile
        # (BYTES elements are a Python loop; a megabyte of JSON numbers is milliseconds of numpy).
        await asyncio.to_thread(_decode_inputs, body, model, buffer, binary_at, form)
    else:
        _decode_inputs(body, model, buffer, binary_at, form)
    return Decoded(body, model)


def _decode_inputs(body: dict[str, Any], model: InferenceRequest, buffer: np.ndarray | None, offset: int, form: str) -> None:
    """Each input's data, from JSON or from the binary part at `offset`, in the predictor's form, in place in `body`."""
    for i, (tensor, checked) in enumerate(zip(body["inputs"], model.inputs, strict=True)):  # the models were made from these inputs
        where = f"inputs[{i}]"
        size = (checked.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise BadRequest(f"{where}.parameters.binary_data_size must be a byte count, got {size!r}")
            if checked.data is not None:
                raise BadRequest(f"{where}: has both data and parameters.binary_data_size; send one of them")
            if buffer is None:
                raise BadRequest(f"{where}: parameters.binary_data_size needs the Inference-Header-Content-Length header (the JSON part's length)")
            if offset + size > len(buffer):
                raise BadRequest(f"{where}: parameters.binary_data_size is {size} bytes, but only {len(buffer) - offset} are left in the body")
            array = tensors.from_binary(buffer, offset, size, checked.datatype, checked.shape, where)
            sent = None
            offset += size
        elif checked.data is None:
            raise BadRequest(f"{where}: missing data (or parameters.binary_data_size with the binary tensor extension)")
        else:
            array, sent = tensors.from_json(checked.data, checked.datatype, checked.shape, where)
        tensor["data"] = tensors.for_predictor(array, sent, form)
    if buffer is not None and offset != len(buffer):
        raise BadRequest(f"the body has {len(buffer) - offset} bytes after the header and binary inputs that no binary_data_size accounts for")


def _check_parameters(model: InferenceRequest) -> None:
    value = (model.parameters or {}).get("binary_data_output")
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"parameters.binary_data_output must be true or false, got {value!r}")
    for i, out in enumerate(model.outputs or []):
        value = (out.parameters or {}).get("binary_data")
        if value is not None and not isinstance(value, bool):
            raise BadRequest(f"outputs[{i}].parameters.binary_data must be true or false, got {value!r}")
        if (out.parameters or {}).get("classification"):
            raise BadRequest(f"outputs[{i}].parameters.classification is not supported here; return the classes from the predictor")


def _aligned(size: int, header: int) -> memoryview:
    """A buffer for the body whose binary part starts 64-byte aligned, so input arrays are aligned views."""
    raw = np.empty(size + 64, dtype=np.uint8)
    shift = -(raw.ctypes.data + header) % 64
    return raw[shift : shift + size].data  # the slice's memoryview (numpy's stubs do not type an array as a Buffer)


def response(model_name: str, decoded: Decoded, result: Any) -> Response:
    """The predictor's result as an OIP response, binary where the request asked for it."""
    request = decoded.request
    extra: dict[str, Any] = {}
    if isinstance(result, dict) and isinstance(result.get("outputs"), list):
        extra = {k: v for k, v in result.items() if k not in ("outputs", "model_name", "id")}
        outputs = [_given(i, o) for i, o in enumerate(result["outputs"])]
    else:
        if isinstance(result, dict):
            items = list(result.items())
        else:
            items = [("output-0", result)]
        outputs = [tensors.Output(str(name), value) for name, value in items]
    all_binary = bool((request.parameters or {}).get("binary_data_output"))
    binary = {o.name: all_binary for o in outputs}
    if request.outputs:
        by_name = {o.name: o for o in outputs}
        missing = [o.name for o in request.outputs if o.name not in by_name]
        if missing:
            raise BadRequest(f"outputs {', '.join(map(repr, missing))} were asked for, but the model returns {', '.join(map(repr, by_name)) or 'none'}")
        outputs = [by_name[o.name] for o in request.outputs]
        for o in request.outputs:
            binary[o.name] = bool((o.parameters or {}).get("binary_data", all_binary))
    head: dict[str, Any] = {"model_name": model_name, **({"id": request.id} if request.id is not None else {}), **extra}
    chunks: list[bytes] = []
    entries = []
    for out in outputs:
        if binary[out.name] and out.can_be_binary:
            entry, raw = out.binary()
            chunks.append(raw)
        else:
            entry = out.json()
        entries.append(entry)
    head["outputs"] = entries
    header = dumps(head)
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(b"".join([header, *chunks]), media_type="application/octet-stream", headers={HEADER_LENGTH: str(len(header))})


def _given(index: int, output: Any) -> tensors.Output:
    """An output the predictor wrote out itself ({"name", "data", and maybe "shape", "datatype", "parameters"})."""
    if not isinstance(output, dict) or "name" not in output or "data" not in output:
        raise PredictorFault(f"the predictor returned outputs[{index}] without a name and data; each output is {{'name', 'data'[, 'shape', 'datatype']}}")
    extra = {"parameters": output["parameters"]} if isinstance(output.get("parameters"), dict) else {}
    return tensors.Output(str(output["name"]), output["data"], output.get("datatype"), output.get("shape"), extra)
