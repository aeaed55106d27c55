"""Real OIP clients, as installed from the package index and used with their defaults, against a real
runtime server on loopback: Triton's `tritonclient.http` and KServe's `InferenceRESTClient` (v1, v2)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.runtime.conftest import start, stop

httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] comes with the test extra")

# One input per datatype the clients and the runtime share, each echoed back by tensors.py:Tensors.
ARRAYS = {
    "fp32": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
    "fp16": np.array([[0.5, -1.25]], dtype=np.float16),
    "fp64": np.array([1e-300, 3.5], dtype=np.float64),
    "int64": np.array([[-(2**40), 7]], dtype=np.int64),
    "int8": np.array([-128, 127], dtype=np.int8),
    "uint8": np.arange(12, dtype=np.uint8).reshape(1, 3, 4),
    "uint32": np.array([2**32 - 1], dtype=np.uint32),
    "bool": np.array([True, False, True]),
    "bytes": np.array([b"hello", "caf\u00e9".encode(), b"\x00\xff"], dtype=np.object_),
}
DATATYPES = {
    "fp32": "FP32", "fp16": "FP16", "fp64": "FP64", "int64": "INT64", "int8": "INT8", "uint8": "UINT8", "uint32": "UINT32", "bool": "BOOL", "bytes": "BYTES",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("clients"), "tensors.py:Tensors")
    yield s
    stop(s)


@pytest.fixture(scope="module")
def triton(server):
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    yield client
    client.close()


def triton_inputs(names, binary: bool):
    inputs = []
    for name in names:
        array = ARRAYS[name]
        tensor = httpclient.InferInput(name, list(array.shape), DATATYPES[name])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_triton_health_and_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready("echo")
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]
    assert triton.get_model_metadata("echo")["name"] == "echo"
    assert not triton.is_model_ready("other")


def test_triton_default_binary_tensors_every_datatype(triton):
    # The client's defaults: binary inputs, and no outputs named, so every output comes back binary.
    result = triton.infer("echo", triton_inputs(ARRAYS, binary=True), request_id="t-1")
    response = result.get_response()
    assert response["id"] == "t-1"
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    for name, array in ARRAYS.items():
        got = result.as_numpy(name)
        assert got.dtype == array.dtype and got.shape == array.shape, name
        assert np.array_equal(got, array), name
    received = [r.decode() for r in result.as_numpy("received")]
    assert received[0] == "ndarray:float32:(2, 3):True:True" and received[-1] == "ndarray:object:(3,):True:True"


def test_triton_image_sized_tensor_arrives_whole_and_aligned(triton):
    # 588 KiB: the body reaches the server in many chunks, each copied once into the aligned buffer.
    image = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    tensor = httpclient.InferInput("image", list(image.shape), "FP32")
    tensor.set_data_from_numpy(image)
    result = triton.infer("echo", [tensor])
    assert np.array_equal(result.as_numpy("image"), image)
    assert result.as_numpy("received")[0].decode() == "ndarray:float32:(1, 224, 224, 3):True:True"


def test_triton_json_tensors_and_outputs_chosen_per_output(triton):
    names = ["fp32", "int64", "bool", "uint8"]  # FP16 and raw bytes have no JSON form in tritonclient
    outputs = [httpclient.InferRequestedOutput("fp32", binary_data=False), httpclient.InferRequestedOutput("int64", binary_data=True),
               httpclient.InferRequestedOutput("bool", binary_data=False)]
    result = triton.infer("echo", triton_inputs(names, binary=False), outputs=outputs)
    by_name = {o["name"]: o for o in result.get_response()["outputs"]}
    assert list(by_name) == ["fp32", "int64", "bool"]
    assert "data" in by_name["fp32"] and "binary_data_size" in by_name["int64"]["parameters"]
    for name in by_name:
        assert np.array_equal(result.as_numpy(name), ARRAYS[name]) and result.as_numpy(name).dtype == ARRAYS[name].dtype


def test_triton_sees_our_400s(triton):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="outputs 'nope' were asked for, but the model returns 'received', 'fp32'"):
        triton.infer("echo", triton_inputs(["fp32"], binary=True), outputs=[httpclient.InferRequestedOutput("nope")])
    with pytest.raises(InferenceServerException, match="model 'other' is not served here"):
        triton.infer("other", triton_inputs(["fp32"], binary=True))


@pytest.fixture
def kserve_client():
    """KServe's REST client for a protocol; a skip of the KServe tests only (a module-level importorskip
    here skipped the Triton tests above it as well)."""
    kserve = pytest.importorskip("kserve", reason="kserve comes with the test extra")
    return lambda protocol: kserve.InferenceRESTClient(kserve.RESTConfig(protocol=protocol, timeout=30))


# The KServe client decodes binary BYTES outputs as UTF-8 (it keeps every output as JSON data).
SENT = ARRAYS | {"bytes": np.array([b"hello", "caf\u00e9".encode()], dtype=np.object_)}


def test_kserve_v2_client(server, kserve_client):
    from kserve import InferInput, InferRequest
    from kserve.protocol.infer_type import RequestedOutput

    async def run():
        client = kserve_client("v2")
        assert await client.is_server_live(server.url) and await client.is_server_ready(server.url)
        assert await client.is_model_ready(server.url, "echo")
        inputs = []
        for name in ("fp32", "fp16", "int8", "bytes"):
            tensor = InferInput(name, list(SENT[name].shape), DATATYPES[name])
            tensor.set_data_from_numpy(SENT[name], binary_data=True)
            inputs.append(tensor)
        as_json = InferInput("int64", list(ARRAYS["int64"].shape), "INT64")
        as_json.set_data_from_numpy(ARRAYS["int64"], binary_data=False)
        request = InferRequest("echo", [*inputs, as_json], parameters={"binary_data_output": True},
                               request_outputs=[RequestedOutput("fp32"), RequestedOutput("fp16"), RequestedOutput("int8"), RequestedOutput("bytes"),
                                                RequestedOutput("int64", {"binary_data": False})])
        response = await client.infer(server.url, request, model_name="echo")
        await client._client.aclose()
        return {o.name: o.as_numpy() for o in response.outputs}

    got = asyncio.run(run())
    for name in ("fp32", "fp16", "int8", "int64"):
        assert np.array_equal(got[name], SENT[name]) and got[name].dtype == SENT[name].dtype and got[name].shape == SENT[name].shape, name
    # The KServe client turns every output, binary ones too, into JSON data: BYTES come back as str.
    assert [str(v) for v in got["bytes"].reshape(-1)] == ["hello", "caf\u00e9"]


def test_kserve_v1_client(server, kserve_client):
    async def run():
        client = kserve_client("v1")
        ready = await client.is_model_ready(server.url, "echo")
        result = await client.infer(server.url, {"instances": [[1, 2], [3, 4]]}, model_name="echo")
        await client._client.aclose()
        return ready, result

    ready, result = asyncio.run(run())
    # tensors.py:Tensors expects OIP payloads; on v1 each instance arrives as it was sent.
    assert ready and result == {"predictions": [{"error": "not an OIP request", "instance": [1, 2]}, {"error": "not an OIP request", "instance": [3, 4]}]}
