"""OIP v2 tensors: JSON data and binary bytes into numpy arrays, checked against datatype and shape;
arrays into the form a predictor asked for; predictor results back into output tensors.

Binary tensors are little-endian and row-major (the binary tensor extension); on a little-endian host
an input array is a view of the request buffer, not a copy. BYTES elements are each a 4-byte
little-endian length and the bytes.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from .errors import BadRequest, PredictorFault

# OIP datatype -> numpy dtype as it travels (little-endian); BYTES elements are Python bytes objects.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"), "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"), "BYTES": np.dtype(object),
}
# Which numpy kinds JSON data may hold for each datatype: no strings for numbers, no floats for integers.
_JSON_KINDS = {"BOOL": "b", "FP16": "iuf", "FP32": "iuf", "FP64": "iuf"}
_KIND_NAMES = {"b": "booleans", "i": "integers", "u": "integers", "f": "non-integer numbers", "U": "strings", "O": "mixed or out-of-range values"}


def from_json(data: list[Any], datatype: str, shape: list[int], where: str) -> tuple[np.ndarray, list[Any] | None]:
    """JSON `data` (flat or nested) as an array of `shape`; also the values as sent, flattened, for "list" predictors."""
    count = math.prod(shape)
    if datatype == "BYTES":
        flat = _flat_strings(data, where)
        _check_count(len(flat), count, shape, where)
        array = np.empty(len(flat), dtype=object)
        array[:] = [s.encode("utf-8") for s in flat]
        return _shaped(array, shape, where), flat
    try:
        sent = np.asarray(data)
    except ValueError as exc:  # ragged, or nested deeper than numpy's 64 dimensions
        reason = "nested deeper than 64 levels" if "maximum number of dimension" in str(exc) else "its nested lists differ in length"
        raise BadRequest(f"{where}.data: {reason}; send a flat list or lists nested evenly by the shape") from None
    _check_count(sent.size, count, shape, where)
    dtype = DTYPES[datatype]
    if sent.size == 0:
        return _shaped(np.empty(0, dtype=dtype.newbyteorder("=")), shape, where), []
    allowed = _JSON_KINDS.get(datatype, "iu")
    if sent.dtype.kind not in allowed:
        expects = {"b": "booleans", "iu": "integers", "iuf": "numbers"}[allowed]
        raise BadRequest(f"{where}.data: {datatype} takes {expects}, but the data holds {_KIND_NAMES.get(sent.dtype.kind, sent.dtype.kind)}")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = sent.min(), sent.max()
        if low < info.min or high > info.max:
            raise BadRequest(f"{where}.data: {datatype} holds {info.min} to {info.max}, but the data has {low if low < info.min else high}")
    return _shaped(sent.astype(dtype.newbyteorder("="), copy=False), shape, where), None


def _flat_strings(data: list[Any], where: str) -> list[str]:
    flat: list[str] = []
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, list):
            if depth > 64:
                raise BadRequest(f"{where}.data: nested deeper than 64 levels")
            stack.extend((v, depth + 1) for v in reversed(value))
        elif isinstance(value, str):
            flat.append(value)
        else:
            raise BadRequest(f"{where}.data: BYTES takes strings (or binary data), but the data holds {type(value).__name__} {value!r:.40}")
    return flat


def _shaped(array: np.ndarray, shape: list[int], where: str) -> np.ndarray:
    try:
        return array.reshape(shape)
    except ValueError:  # dimensions numpy cannot hold, even around a zero
        raise BadRequest(f"{where}: shape {shape} is larger than an array can be") from None


def _check_count(got: int, count: int, shape: list[int], where: str) -> None:
    if got != count:
        raise BadRequest(f"{where}: shape {shape} holds {count} elements but data has {got}")


def from_binary(buffer: np.ndarray, offset: int, size: int, datatype: str, shape: list[int], where: str) -> np.ndarray:
    """`size` bytes of the uint8 `buffer` from `offset` as an array of `shape`: a view where the byte order allows."""
    count = math.prod(shape)
    if datatype == "BYTES":
        if count * 4 > size:  # checked before anything is allocated for the elements
            raise BadRequest(f"{where}: parameters.binary_data_size is {size} bytes, too few for {count} BYTES elements of at least 4 bytes each")
        return _shaped(_bytes_elements(buffer, offset, size, count, where), shape, where)
    dtype = DTYPES[datatype]
    if size != count * dtype.itemsize:
        raise BadRequest(f"{where}: parameters.binary_data_size is {size} bytes, but shape {shape} of {datatype} takes {count * dtype.itemsize}")
    array = buffer[offset : offset + size].view(dtype)
    if datatype == "BOOL" and size and buffer[offset : offset + size].max() > 1:
        raise BadRequest(f"{where}: BOOL bytes must be 0 or 1")
    if not dtype.isnative:  # a big-endian host: the one case that copies
        array = array.astype(dtype.newbyteorder("="))
    return _shaped(array, shape, where)


def _bytes_elements(buffer: np.ndarray, offset: int, size: int, count: int, where: str) -> np.ndarray:
    view = buffer.data[offset : offset + size]  # the uint8 array's own memoryview: no copy (numpy's stubs do not type an array as a Buffer)
    elements = np.empty(count, dtype=object)
    pos = 0
    for i in range(count):
        if pos + 4 > size:
            raise BadRequest(f"{where}: the BYTES data ends after {i} of {count} elements (each is a 4-byte little-endian length, then the bytes)")
        (length,) = struct.unpack_from("<I", view, pos)
        if pos + 4 + length > size:
            raise BadRequest(f"{where}: BYTES element {i} says {length} bytes, but only {size - pos - 4} are left in its binary_data_size")
        elements[i] = bytes(view[pos + 4 : pos + 4 + length])
        pos += 4 + length
    if pos != size:
        raise BadRequest(f"{where}: parameters.binary_data_size is {size} bytes, but its {count} BYTES elements take {pos}")
    return elements


def for_predictor(array: np.ndarray, sent: list[Any] | None, form: str) -> Any:
    """One input's data in the predictor's form: the array; a torch tensor over the same memory; or a flat list."""
    if form == "numpy":
        return array
    if form == "torch":
        if array.dtype == object:
            return array  # torch has no strings: BYTES stay a numpy array of bytes
        import torch  # only predictors that ask for torch tensors pay for the import

        return torch.from_numpy(array)
    if sent is not None:
        return sent  # JSON: the values exactly as sent (as before numpy arrays were the default)
    return array.reshape(-1).tolist()


# --- results -> output tensors -------------------------------------------------------------------

_DATATYPES = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items() if k != "BYTES"}


class Output:
    """One output tensor: an array with its OIP name and datatype, or a value that is no tensor (sent as given)."""

    __slots__ = ("name", "array", "datatype", "shape", "data", "extra")
    # Always set by __init__, whichever way the value came: the datatype and shape it is sent with.
    datatype: str
    shape: list[int]

    def __init__(self, name: str, value: Any, datatype: str | None = None, shape: list[int] | None = None, extra: dict[str, Any] | None = None):
        self.name = name
        self.extra = extra or {}
        self.array: np.ndarray | None = None
        self.data: Any = None
        if isinstance(value, list) and datatype is not None and shape is not None:
            self.data = value  # a complete JSON tensor from the predictor: as it is, unless asked for binary
            self.datatype, self.shape = datatype, shape
            return
        array = as_array(value)
        if array is None or (array.dtype == object and not all(isinstance(v, (bytes, str)) for v in array.flat)):
            # Not a tensor (a dict, ragged lists): sent as JSON the way the runtime always has.
            self.data = value if isinstance(value, list) else [value]
            self.datatype = datatype or "BYTES"
            self.shape = shape or [len(self.data)]
            return
        if array.ndim == 0:
            array = array.reshape(1)
        if datatype is not None and datatype not in DTYPES:
            raise PredictorFault(f"output {name!r}: datatype {datatype!r} is not an OIP datatype ({', '.join(DTYPES)})")
        if shape is not None and math.prod(shape) != array.size:
            raise PredictorFault(f"output {name!r}: shape {shape} holds {math.prod(shape)} elements but the data has {array.size}")
        self.array = array
        self.datatype = datatype or datatype_of(array)
        self.shape = shape or list(array.shape)

    def json(self) -> dict[str, Any]:
        data = self.data
        if data is None:
            assert self.array is not None
            if self.datatype == "BYTES":
                data = [_text(v) for v in self.array.reshape(-1)]
            else:
                data = np.ascontiguousarray(self.array.astype(DTYPES[self.datatype].newbyteorder("="), copy=False)).reshape(-1)
        return {"name": self.name, "shape": self.shape, "datatype": self.datatype, **self.extra, "data": data}

    def binary(self) -> tuple[dict[str, Any], bytes]:
        array = self.array if self.array is not None else _cast(self.data, self.datatype, self.shape, self.name)
        raw = to_bytes(array, self.datatype)
        parameters = {**self.extra.get("parameters", {}), "binary_data_size": len(raw)}
        return {"name": self.name, "shape": self.shape, "datatype": self.datatype, **self.extra, "parameters": parameters}, raw

    @property
    def can_be_binary(self) -> bool:
        return self.array is not None or self.datatype in DTYPES


def as_array(value: Any) -> np.ndarray | None:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, on any device
        array: np.ndarray = value.detach().cpu().numpy()
        return array
    if isinstance(value, (dict, set)):
        return None
    try:
        return np.asarray(value)
    except ValueError:
        return None


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in "OUS":
        return "BYTES"
    found = _DATATYPES.get(array.dtype.newbyteorder("="))
    if found is None:
        raise PredictorFault(f"an output of numpy dtype {array.dtype} has no OIP datatype; return bool, int, uint, float16/32/64 or strings")
    return found


def to_bytes(array: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for v in array.reshape(-1):
            raw = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()


def _cast(data: list[Any], datatype: str, shape: list[int], name: str) -> np.ndarray:
    try:
        return np.asarray(data, dtype=DTYPES[datatype] if datatype != "BYTES" else object).reshape(shape)
    except (ValueError, TypeError) as exc:  # values of another type, or more or fewer of them than the shape holds
        raise PredictorFault(f"output {name!r}: its data is not {datatype} of shape {shape}: {exc}") from None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("a BYTES output is not UTF-8 text, so it cannot be sent as JSON: ask for it as binary (parameters.binary_data)") from None
    return str(value)
