"""OIP v2 inference against a real server: malformed bodies, the binary tensor extension byte for
byte, and the forms a predictor may ask its input tensors in."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import httpx
import numpy as np
import pytest

from tests.conftest import assert_one_line_error
from tests.runtime.conftest import PREDICTORS, start, stop

INFER = "/v2/models/echo/infer"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("oip"), "tensors.py:Tensors", "--max-body-bytes", "400000")
    yield s
    stop(s)


def binary_request(header: dict, *parts: bytes, header_length: int | None = None, **headers: str) -> dict:
    head = json.dumps(header).encode()
    return {
        "content": head + b"".join(parts),
        "headers": {
            "Inference-Header-Content-Length": str(len(head) if header_length is None else header_length),
            "Content-Type": "application/octet-stream",
            **headers,
        },
    }


def split(r: httpx.Response) -> tuple[dict, bytes]:
    n = int(r.headers["inference-header-content-length"])
    return json.loads(r.content[:n]), r.content[n:]


def tensor(name="x", shape=(2,), datatype="FP32", **kw) -> dict:
    return {"name": name, "shape": list(shape), "datatype": datatype, **kw}


def bytes_elements(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


# --- malformed bodies: a 400 that names the field, never a 500 --------------------------------------

@pytest.mark.parametrize(
    "body, message",
    [
        ({"inputs": [tensor(datatype=[], data=[1, 2])]}, "inputs[0].datatype: Input should be 'BOOL'"),
        ({"inputs": [tensor(datatype="FLOAT", data=[1, 2])]}, "(got 'FLOAT')"),
        ({"inputs": [tensor(shape=["2"], data=[1, 2])]}, "inputs[0].shape[0]: Input should be a valid integer (got '2')"),
        ({"inputs": [tensor(shape=[True], data=[1])]}, "inputs[0].shape[0]: Input should be a valid integer (got True)"),
        ({"inputs": [tensor(shape=[-1], data=[1])]}, "inputs[0].shape[0]: Input should be greater than or equal to 0"),
        ({"inputs": [tensor(shape=[1] * 65, data=[1])]}, "inputs[0].shape: List should have at most 64 items"),
        ({"inputs": []}, "inputs: List should have at least 1 item"),
        ({"inputs": [tensor(shape=[0], data=[])] * 1025}, "inputs: List should have at most 1024 items after validation, not 1025"),
        ({"input": [tensor(data=[1, 2])]}, "inputs: Field required"),
        ([1, 2], "body: Input should be a valid dictionary"),
        ({"inputs": [tensor(data="12")]}, "inputs[0].data: must be a list"),
        ({"inputs": [tensor()]}, "inputs[0]: missing data"),
        ({"inputs": [tensor(data=[1, 2], extra=1)]}, "inputs[0].extra: Extra inputs are not permitted"),
        ({"inputs": [tensor(data=[1, 2], parameters={"k": [1]})]}, "inputs[0].parameters.k: must be a string, number or boolean"),
        ({"id": 7, "inputs": [tensor(data=[1, 2])]}, "id: Input should be a valid string (got 7)"),
        ({"inputs": [tensor(shape=[3], data=[1, 2])]}, "inputs[0]: shape [3] holds 3 elements but data has 2"),
        ({"inputs": [tensor(shape=[2, 2], data=[[1, 2], [3]])]}, "inputs[0].data: its nested lists differ in length"),
        ({"inputs": [tensor(data=["a", "b"])]}, "inputs[0].data: FP32 takes numbers, but the data holds strings"),
        ({"inputs": [tensor(data=[1, None])]}, "inputs[0].data: FP32 takes numbers, but the data holds mixed or out-of-range values"),
        ({"inputs": [tensor(datatype="INT32", data=[1.5, 2])]}, "INT32 takes integers, but the data holds non-integer numbers"),
        ({"inputs": [tensor(datatype="UINT8", data=[1, 256])]}, "inputs[0].data: UINT8 holds 0 to 255, but the data has 256"),
        ({"inputs": [tensor(datatype="BOOL", data=[1, 0])]}, "BOOL takes booleans, but the data holds integers"),
        ({"inputs": [tensor(datatype="BYTES", data=["a", 1])]}, "inputs[0].data: BYTES takes strings"),
        ({"inputs": [tensor(data=[1, 2], parameters={"binary_data_size": 8})]}, "has both data and parameters.binary_data_size"),
        ({"inputs": [tensor(parameters={"binary_data_size": 8})]}, "needs the Inference-Header-Content-Length header"),
        ({"inputs": [tensor(data=[1, 2])], "parameters": {"binary_data_output": "yes"}}, "parameters.binary_data_output must be true or false"),
        ({"inputs": [tensor(data=[1, 2])], "outputs": [{"name": "zz"}]}, "outputs 'zz' were asked for, but the model returns 'received', 'x'"),
        ({"inputs": [tensor(data=[1, 2])], "outputs": [{"name": "x", "parameters": {"classification": 2}}]}, "classification is not supported"),
    ],
)
def test_malformed_bodies_are_400_naming_the_field(client, server, body, message):
    r = client.post(INFER, json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]
    assert "\n" not in r.json()["error"]


def test_deep_nesting_anywhere_is_400_not_a_predictor_error(client, server):
    def nested(levels: int) -> list:
        deep: list = [1.0]
        for _ in range(levels):
            deep = [deep]
        return deep

    def places(deep: list) -> list[dict]:
        return [
            {"inputs": [tensor(shape=[1], data=deep)]},
            {"inputs": [tensor(shape=[1], datatype="BYTES", data=deep)]},
            {"inputs": [tensor(shape=[1], data=[1])], "extra": deep},
            {"inputs": [tensor(shape=deep, data=[1])]},
            {"inputs": [tensor(shape=[1], datatype=deep, data=[1])]},
            {"inputs": [tensor(shape=[1], data=[1], parameters={"a": deep})]},
            {"inputs": [tensor(shape=[1], data=[1])], "outputs": deep},
        ]

    # Past the runtime's JSON depth limit, wherever it is: that limit answers before the OIP models look.
    for body in places(nested(900)):
        r = client.post(INFER, content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == 400 and "JSON nested more than 64 levels deep" in r.json()["error"], r.text[:300]
    # Deep but within the limit (data that deep is a valid tensor): the OIP checks name the field, quoting the value bounded.
    messages = [
        "extra: Extra inputs are not permitted (got [[[[...]]]])",
        "inputs[0].shape[0]: Input should be a valid integer (got [[[[...]]]])",
        "inputs[0].datatype: Input should be 'BOOL'",
        "inputs[0].parameters.a: must be a string, number or boolean, not list",
        "outputs[0]: Input should be a valid dictionary",
    ]
    for body, message in zip(places(nested(58))[2:], messages, strict=True):
        r = client.post(INFER, content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == 400 and message in r.json()["error"] and len(r.json()["error"]) < 400, r.text[:300]
    metrics = client.get("/metrics").text
    assert "mlkit_predictor_errors_total 0.0" in metrics
    assert "Traceback" not in server.output()


# --- the binary tensor extension -------------------------------------------------------------------

DATATYPES = [("BOOL", np.bool_), ("UINT8", np.uint8), ("UINT16", np.uint16), ("UINT32", np.uint32), ("UINT64", np.uint64), ("INT8", np.int8),
             ("INT16", np.int16), ("INT32", np.int32), ("INT64", np.int64), ("FP16", np.float16), ("FP32", np.float32), ("FP64", np.float64)]


@pytest.mark.parametrize("datatype, dtype", DATATYPES)
def test_every_datatype_round_trips_binary_and_json(client, datatype, dtype):
    values = (np.arange(6) % 2 == 1) if dtype is np.bool_ else (np.arange(6) * 3 + 1).astype(dtype)
    raw = values.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    header = {
        "inputs": [tensor(shape=[2, 3], datatype=datatype, parameters={"binary_data_size": len(raw)})],
        "outputs": [{"name": "x", "parameters": {"binary_data": True}}, {"name": "received"}],
    }
    r = client.post(INFER, **binary_request(header, raw))
    assert r.status_code == 200, r.text
    head, rest = split(r)
    x, received = head["outputs"]
    assert x == {"name": "x", "shape": [2, 3], "datatype": datatype, "parameters": {"binary_data_size": len(raw)}} and rest == raw
    assert received["data"] == [f"ndarray:{np.dtype(dtype)}:(2, 3):True:True"]
    # The same tensor as JSON, asked back as JSON.
    r = client.post(INFER, json={"inputs": [tensor(shape=[2, 3], datatype=datatype, data=values.tolist())], "outputs": [{"name": "x"}]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["outputs"] == [{"name": "x", "shape": [2, 3], "datatype": datatype, "data": values.tolist()}]


def test_bytes_are_length_prefixed_both_ways(client):
    items = [b"", b"caf\xc3\xa9", b"\x00\xff binary"]
    raw = bytes_elements(*items)
    header = {"inputs": [tensor("s", shape=[3], datatype="BYTES", parameters={"binary_data_size": len(raw)})], "parameters": {"binary_data_output": True}}
    head, rest = split(client.post(INFER, **binary_request(header, raw)))
    received, s = head["outputs"]
    assert s["parameters"]["binary_data_size"] == len(raw)
    assert rest.endswith(raw)  # `received` comes first, then `s` as it was sent
    # Not UTF-8, so it cannot go back as JSON: the client is told to ask for binary.
    r = client.post(INFER, **binary_request({"inputs": header["inputs"]}, raw))
    assert r.status_code == 400 and "ask for it as binary" in r.json()["error"]


def test_json_and_binary_inputs_mix_and_outputs_follow_the_request(client):
    raw = np.array([1.5, -2.0], dtype="<f8").tobytes()
    header = {"id": "mix-1", "inputs": [tensor("a", datatype="INT64", data=[7, 8]), tensor("b", datatype="FP64", parameters={"binary_data_size": 16})],
              "outputs": [{"name": "b"}, {"name": "a", "parameters": {"binary_data": True}}]}
    r = client.post(INFER, **binary_request(header, raw))
    head, rest = split(r)
    assert head["id"] == "mix-1" and [o["name"] for o in head["outputs"]] == ["b", "a"]
    assert head["outputs"][0]["data"] == [1.5, -2.0]
    assert rest == np.array([7, 8], dtype="<i8").tobytes()


@pytest.mark.parametrize(
    "parts, header_length, message",
    [
        ([np.zeros(4, "<f4").tobytes()], None, "inputs[0]: parameters.binary_data_size is 16 bytes, but shape [3] of FP32 takes 12"),
        ([b"\x00" * 4], None, "parameters.binary_data_size is 12 bytes, but only 4 are left in the body"),
        ([np.zeros(3, "<f4").tobytes() + b"xx"], None, "the body has 2 bytes after the header and binary inputs"),
        ([np.zeros(3, "<f4").tobytes()], 300000, "Inference-Header-Content-Length is 300000 bytes, larger than the"),
        ([np.zeros(3, "<f4").tobytes()], "12a", "Inference-Header-Content-Length must be a byte count, got '12a'"),
        ([np.zeros(3, "<f4").tobytes()], 0, "Inference-Header-Content-Length is 0"),
        ([np.zeros(3, "<f4").tobytes()], 10, "malformed JSON"),
    ],
)
def test_binary_framing_errors_are_400(client, parts, header_length, message):
    size = sum(map(len, parts)) if "takes" in message else 12
    header = {"inputs": [tensor(shape=[3], parameters={"binary_data_size": size})]}
    r = client.post(INFER, **binary_request(header, *parts, header_length=header_length))
    assert r.status_code == 400 and message in r.json()["error"], r.text


@pytest.mark.parametrize(
    "raw, message",
    [
        (struct.pack("<I", 9) + b"abcdef", "BYTES element 0 says 9 bytes, but only 6 are left"),
        (bytes_elements(b"a") + b"\x01" * 4, "BYTES element 1 says 16843009 bytes, but only 0 are left"),
        (bytes_elements(b"a"), "too few for 2 BYTES elements of at least 4 bytes each"),
        (bytes_elements(b"a", b"b") + b"z", "its 2 BYTES elements take 10"),
    ],
)
def test_bytes_framing_errors_are_400(client, raw, message):
    header = {"inputs": [tensor("s", shape=[2], datatype="BYTES", parameters={"binary_data_size": len(raw)})]}
    r = client.post(INFER, **binary_request(header, raw))
    assert r.status_code == 400 and message in r.json()["error"], r.text


def test_huge_shapes_allocate_nothing(client):
    header = {"inputs": [tensor("s", shape=[10**15], datatype="BYTES", parameters={"binary_data_size": 8})]}
    r = client.post(INFER, **binary_request(header, bytes_elements(b"abcd")))
    assert r.status_code == 400 and "too few for 1000000000000000 BYTES elements" in r.json()["error"]
    for shape in ([0, 2**62], [0, 2**64 - 1]):
        r = client.post(INFER, json={"inputs": [tensor(shape=shape, data=[])]})
        assert r.status_code == 400 and "is larger than an array can be" in r.json()["error"], r.text
        r = client.post(INFER, **binary_request({"inputs": [tensor(shape=shape, parameters={"binary_data_size": 0})]}))
        assert r.status_code == 400 and "is larger than an array can be" in r.json()["error"], r.text


def test_large_bodies_are_decoded_off_the_event_loop_with_the_same_checks(client):
    many = bytes_elements(*[b"x"] * 60000)  # 300 kB: over the 256 KiB from which decoding moves to a thread
    header = {"inputs": [tensor("s", shape=[60000], datatype="BYTES", parameters={"binary_data_size": len(many)})], "outputs": [{"name": "received"}]}
    r = client.post(INFER, **binary_request(header, many))
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["ndarray:object:(60000,):True:True"]
    header["inputs"][0]["shape"] = [60001]
    r = client.post(INFER, **binary_request(header, many))
    assert r.status_code == 400 and "the BYTES data ends after 60000 of 60001 elements" in r.json()["error"]


def test_a_chunked_binary_body_without_content_length(client):
    raw = np.arange(3, dtype="<f4").tobytes()
    request = binary_request({"inputs": [tensor(shape=[3], parameters={"binary_data_size": 12})], "parameters": {"binary_data_output": True}}, raw)
    body = request["content"]
    r = client.post(INFER, content=iter([body[:7], body[7:-5], body[-5:]]), headers=request["headers"])  # Transfer-Encoding: chunked
    assert r.status_code == 200, r.text
    assert split(r)[1].endswith(raw)


def test_bool_bytes_must_be_0_or_1(client):
    header = {"inputs": [tensor(datatype="BOOL", parameters={"binary_data_size": 2})]}
    r = client.post(INFER, **binary_request(header, b"\x01\x07"))
    assert r.status_code == 400 and "BOOL bytes must be 0 or 1" in r.json()["error"]


def test_binary_body_has_the_json_limit_and_content_types(client):
    big = np.zeros(120000, "<f4").tobytes()  # 480 kB against --max-body-bytes 400000
    header = {"inputs": [tensor(shape=[120000], parameters={"binary_data_size": len(big)})]}
    r = client.post(INFER, **binary_request(header, big))
    assert r.status_code == 413 and "MLKIT_MAX_BODY_BYTES" in r.json()["error"]
    r = client.post(INFER, **binary_request({"inputs": [tensor(parameters={"binary_data_size": 8})]}, b"\x00" * 8, **{"Content-Type": "multipart/form-data"}))
    assert r.status_code == 415
    r = client.post(INFER, content=b"\x1f\x8b...", headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 415 and "Content-Encoding gzip is not supported" in r.json()["error"]


def test_server_metadata_lists_the_extension(client):
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


def test_openapi_documents_the_oip_bodies(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v2/models/{name}/infer"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["inputs"]
    datatype = schema["properties"]["inputs"]["items"]["properties"]["datatype"]
    assert "BYTES" in datatype["enum"] and "FP32" in datatype["enum"]
    assert "Inference-Header-Content-Length" in [p["name"] for p in op["parameters"]]
    assert "InferenceResponse" in spec["components"]["schemas"]


# --- what predictors get, and give back ------------------------------------------------------------

@pytest.mark.parametrize(
    "predictor, expected",
    [
        ("Tensors", ["ndarray:float32:(2, 2):True:True", "ndarray:object:(2,):True:True"]),
        ("TorchTensors", ["Tensor:float32:(2, 2)::", "ndarray:object:(2,):True:True"]),
        ("ListTensors", ["list:float:4::", "list:str:2::"]),
    ],
)
def test_predictors_choose_their_input_form(serve, predictor, expected):
    if predictor == "TorchTensors":
        pytest.importorskip("torch")
    s = serve(f"tensors.py:{predictor}")
    raw = np.arange(4, dtype="<f4").tobytes()
    for body in (
        {"inputs": [tensor(shape=[2, 2], data=[[0, 1], [2, 3]]), tensor("s", shape=[2], datatype="BYTES", data=["a", "b"])]},
        binary_request({"inputs": [tensor(shape=[2, 2], parameters={"binary_data_size": 16}), tensor("s", shape=[2], datatype="BYTES", data=["a", "b"])]}, raw),
    ):
        # 30 s: the first request to TorchTensors converts with torch, whose first use on a loaded CI machine
        # (three pytest workers beside the e2e phase) took past httpx's default 5 s once.
        r = httpx.post(s.url + INFER, timeout=30, **({"json": body} if "inputs" in body else body))
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}
        # ListTensors echoes ints as sent in JSON (0, 1, ...) and float32 values from binary: both as FP64 lists.
        assert out["received"]["data"][1] == expected[1] and out["received"]["data"][0].replace("int", "float") == expected[0]
        assert out["x"]["shape"] in ([2, 2], [4]) and [float(v) for v in out["x"]["data"]] == [0.0, 1.0, 2.0, 3.0]


def test_batching_with_arrays_and_binary_outputs(serve):
    s = serve("tensors.py:BatchTensors", "--max-batch-size", "4", "--max-wait-ms", "50", "--config", '{"delay": 0.3}')
    import concurrent.futures

    def one(i: int):
        raw = np.full(3, i, dtype="<f4").tobytes()
        header = {"inputs": [tensor(shape=[3], parameters={"binary_data_size": 12})], "parameters": {"binary_data_output": True}}
        r = httpx.post(s.url + INFER, **binary_request(header, raw), timeout=10)
        head, rest = split(r)
        doubled = np.frombuffer(rest[: head["outputs"][0]["parameters"]["binary_data_size"]], "<f4")
        return doubled.tolist(), int(np.frombuffer(rest[-8:], "<i8")[0])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert [r[0] for r in results] == [[2.0 * i] * 3 for i in range(8)]
    assert max(r[1] for r in results) > 1


def test_predictor_written_outputs_pass_through_or_go_binary(serve):
    s = serve("tensors.py:Outputs")
    body = {"id": "o", "inputs": [tensor(data=[1, 2])]}
    r = httpx.post(s.url + INFER, json=body)
    given = [{"name": "y", "shape": [2], "datatype": "FP32", "data": [0.5, 1.5]}]
    assert r.json() == {"model_name": "echo", "id": "o", "parameters": {"note": "given"}, "outputs": given}
    head, rest = split(httpx.post(s.url + INFER, json=body | {"parameters": {"binary_data_output": True}}))
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 8} and rest == np.array([0.5, 1.5], "<f4").tobytes()


def test_an_unknown_input_form_stops_start_up_in_one_line(tmp_path):
    # Checked when the predictor loads, so it is one line and exit 1, not a 500 on every OIP request.
    result = subprocess.run(
        [sys.executable, "-m", "mlkit_runtime", "--port", "0", "--predictor", f"{PREDICTORS}/tensors.py:BadFormat", "--model-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert_one_line_error(result, "tensors.py: BadFormat.oip_tensors is 'tensorflow'; it must be one of 'numpy', 'torch', 'list'", code=1)
    assert len(result.stderr.strip().splitlines()) == 1 and "Application startup" not in result.stderr, result.stderr


@pytest.mark.parametrize("kind, message", [
    ("datatype", "output 'y': datatype 'FLOAT' is not an OIP datatype"),
    ("shape", "output 'y': shape [3] holds 3 elements but the data has 2"),
])
def test_outputs_that_contradict_themselves_are_predictor_errors(serve, kind, message):
    s = serve("tensors.py:WrongOutputs")
    r = httpx.post(s.url + INFER, json={"inputs": [tensor(kind, data=[1, 2])]})
    assert r.status_code == 500 and r.json()["error"].startswith(f"predictor error: {message}"), r.text
    # Counted as the predictor's error, logged as one, and not passed off as the server's own bug.
    assert "mlkit_predictor_errors_total 1.0" in httpx.get(s.url + "/metrics").text
    assert "predictor error" in s.output() and "internal error" not in s.output()


WRITTEN_WRONG = '''
class Predictor:
    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        if payload["inputs"][0]["name"] == "nameless":
            return {"outputs": [{"data": [1.0]}]}
        return {"outputs": [{"name": "y", "shape": [3], "datatype": "FP32", "data": [0.5, 1.5]}]}
'''


def test_outputs_written_out_wrong_are_predictor_errors(serve, tmp_path):
    path = tmp_path / "written.py"
    path.write_text(WRITTEN_WRONG)
    s = serve(f"{path}:Predictor")
    r = httpx.post(s.url + INFER, json={"inputs": [tensor("nameless", data=[1, 2])]})
    assert r.status_code == 500 and r.json()["error"].startswith("predictor error: the predictor returned outputs[0] without a name and data"), r.text
    # Written-out JSON goes back as given; asked for as binary, its data must fit its shape.
    r = httpx.post(s.url + INFER, json={"inputs": [tensor(data=[1, 2])], "parameters": {"binary_data_output": True}})
    assert r.status_code == 500 and r.json()["error"].startswith("predictor error: output 'y': its data is not FP32 of shape [3]"), r.text
    assert "mlkit_predictor_errors_total 2.0" in httpx.get(s.url + "/metrics").text
    assert "internal error" not in s.output()
