"""The OpenAI routes' protocol, with the official `openai` client and raw HTTP against a real server
running a fast token predictor (tests/runtime/predictors/tokens.py): shapes, streaming, stop,
max_tokens, errors in OpenAI's shape, API keys, admission, metrics and disconnects."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import openai
import pytest

from mlkit_runtime.openai_shapes import ChatCompletionChunk, Completion
from tests.runtime.conftest import start, stop
from tests.runtime.test_streaming import events, wait_for

COUNT = [{"role": "user", "content": "count"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module's tests that only send it requests and read the answers (a server of their
    own each cost 1 to 2 CPU-s of start-up, in both of CI's modes); a test that needs other settings, fresh
    metrics or a client that leaves starts its own with `serve`."""
    made = start(tmp_path_factory.mktemp("openai"), "tokens.py:Predictor")
    yield made
    stop(made)


def client(server, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_chat_completion(server):
    reply = client(server).chat.completions.create(model="echo", messages=COUNT, max_tokens=3)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "one two three"
    assert reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (1, 3, 4)


def test_chat_chunks_have_the_documented_shape(server):
    body = {"model": "echo", "messages": COUNT, "max_tokens": 2, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body) as r:
        sent = [line[6:] for line in r.iter_lines() if line.startswith("data: {")]
    chunks = [ChatCompletionChunk.model_validate_json(e) for e in sent]
    assert [c.choices[0].delta.content for c in chunks[:-1]] == ["", "one", " two", None] and chunks[-1].usage is not None


def test_chat_completion_streamed_with_usage(server):
    chunks = list(client(server).chat.completions.create(model="echo", messages=COUNT, max_tokens=4, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert len({c.id for c in chunks}) == 1


def test_completion_and_its_default_of_16_tokens(server):
    reply = client(server).completions.create(model="echo", prompt="count")
    assert reply.object == "text_completion"
    assert reply.choices[0].text.split() == ("one two three four five six seven eight nine ten eleven twelve".split() * 2)[:16]
    assert reply.usage.completion_tokens == 16


def test_completion_streamed_ends_with_done(server):
    with httpx.stream("POST", server.url + "/v1/completions", json={"model": "echo", "prompt": "count", "max_tokens": 2, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [Completion.model_validate_json(line[6:]) for line in lines[:-1]]  # the documented shape
    texts = [chunk.choices[0].text for chunk in chunks]
    assert texts == ["one", " two", ""]


def test_stop_sequence_across_tokens_streamed_and_not(server):
    c = client(server)
    reply = c.completions.create(model="echo", prompt="count", max_tokens=10, stop=["ee f"])
    assert (reply.choices[0].text, reply.choices[0].finish_reason) == ("one two thr", "stop")
    assert reply.usage.completion_tokens == 4  # " four" completed the match
    streamed = c.chat.completions.create(model="echo", messages=COUNT, max_tokens=10, stop="two", stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in streamed if ch.choices) == "one "


def test_max_tokens_zero_generates_nothing(server):
    reply = client(server).completions.create(model="echo", prompt="count", max_tokens=0)
    assert (reply.choices[0].text, reply.choices[0].finish_reason, reply.usage.completion_tokens) == ("", "length", 0)


def test_wrong_model_is_404_in_openai_shape(server):
    with pytest.raises(openai.NotFoundError) as caught:
        client(server).chat.completions.create(model="gpt-4o", messages=COUNT)
    error = caught.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'gpt-4o'" in error["message"] and "'echo'" in error["message"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"top_p": 0.5}, "top_p"),  # generate() does not take it
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"temperature": 9}, "temperature"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_a_parameter_it_cannot_honour_is_a_400_naming_it(server, extra, param):
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "echo", "messages": COUNT, **extra})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"].startswith(param) and error["type"] == "invalid_request_error"


def test_a_parameter_generate_takes_is_passed(server):
    reply = client(server).chat.completions.create(model="echo", messages=COUNT, max_tokens=1, temperature=0.3, seed=7)
    assert reply.choices[0].message.content == "one"


def test_malformed_bodies_are_400s(server):
    assert httpx.post(server.url + "/v1/completions", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "echo", "messages": []})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "messages")
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "messages[0].content")


def test_models_lists_the_served_model(server):
    models = client(server).models.list()
    assert [m.id for m in models.data] == ["echo"]


def test_api_keys_apply(serve, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("sekrit\n")
    server = serve("tokens.py:Predictor", "--api-keys-file", str(keys))
    with pytest.raises(openai.AuthenticationError):
        client(server, "wrong").chat.completions.create(model="echo", messages=COUNT, max_tokens=1)
    with pytest.raises(openai.AuthenticationError):
        client(server, "wrong").models.list()
    assert client(server, "sekrit").chat.completions.create(model="echo", messages=COUNT, max_tokens=1).choices[0].message.content == "one"


def test_full_server_is_503_with_retry_after_and_disconnect_frees_it(serve, tmp_path: Path):
    server = serve("tokens.py:Predictor", "--max-in-flight", "1", "--max-queue", "0", "--config", '{"delay": 0.2}')
    url = urlparse(server.url)
    body = json.dumps({"model": "echo", "messages": COUNT, "max_tokens": 1000, "stream": True}).encode()
    sock = socket.create_connection((url.hostname, url.port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    received = b""
    while b'"content":" two"' not in received:
        received += sock.recv(4096)
    full = httpx.post(server.url + "/v1/chat/completions", json={"model": "echo", "messages": COUNT, "max_tokens": 1})
    assert (full.status_code, full.headers["retry-after"], full.json()["error"]["type"]) == (503, "1", "server_error")
    sock.close()  # the client goes away mid-stream: generation stops, the slot comes back
    assert wait_for(lambda: events(tmp_path)[-1:] == ["closed"]), events(tmp_path)
    generated = metric(server, "mlkit_generated_tokens_total")
    time.sleep(0.5)
    assert metric(server, "mlkit_generated_tokens_total") == generated  # nothing more is generated
    assert generated < 20
    assert client(server).chat.completions.create(model="echo", messages=COUNT, max_tokens=1).choices[0].message.content == "one"


def metric(server, name: str) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_token_metrics_and_access_log(serve):
    server = serve("tokens.py:Predictor", "--config", '{"delay": 0.01}')
    client(server).chat.completions.create(model="echo", messages=COUNT, max_tokens=5, extra_headers={"x-request-id": "gen-1"})
    assert metric(server, "mlkit_generated_tokens_total") == 5
    assert metric(server, "mlkit_time_to_first_token_seconds_count") == 1
    assert metric(server, "mlkit_inter_token_latency_seconds_count") == 4
    assert 0.04 <= metric(server, "mlkit_inter_token_latency_seconds_sum") < 1
    assert 'mlkit_requests_total{route="/v1/chat/completions",status="200"} 1.0' in httpx.get(server.url + "/metrics").text
    assert wait_for(lambda: '"request_id":"gen-1","route":"/v1/chat/completions","status":200' in server.output())


def test_openapi_documents_the_openai_shapes(server):
    doc = httpx.get(server.url + "/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert {"ChatCompletionRequest", "CompletionRequest", "ChatMessage", "ChatCompletion", "Completion", "ModelList", "OpenAIErrorBody"} <= set(schemas)
    body = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChatCompletionRequest"}
    assert "messages" in schemas["ChatCompletionRequest"]["required"]


def test_a_predictor_without_generate_has_no_openai_routes(serve):
    server = serve("echo.py:Echo")
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "echo", "messages": COUNT})
    assert r.status_code == 404 and "has no generate() method" in r.json()["error"]["message"]


def test_a_generate_only_predictor_with_an_async_generator(serve):
    server = serve("tokens.py:GenerateOnly")
    c = client(server)
    reply = c.completions.create(model="echo", prompt="hi", max_tokens=5, top_p=0.5)  # **sampling takes any
    assert (reply.choices[0].text, reply.choices[0].finish_reason, reply.usage) == ("a b c", "stop", None)
    r = httpx.post(server.url + "/predict", json={})
    assert r.status_code == 404 and "only generate()" in r.json()["error"]


def test_generate_without_max_tokens_stops_the_server_in_one_line(tmp_path):
    from tests.runtime.conftest import PREDICTORS

    result = subprocess.run(
        [sys.executable, "-m", "mlkit_runtime", "--predictor", f"{PREDICTORS}/tokens.py:NoMaxTokens", "--model-dir", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "NoMaxTokens.generate must take max_tokens" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"max_tokens": "5"}, "max_tokens"),
        ({"max_tokens": 5.0}, "max_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"temperature": "0.5"}, "temperature"),
        ({"seed": 2**64}, "seed"),
        ({"stream_options": {"include_usage": "true"}}, "stream_options.include_usage"),
    ],
)
def test_types_are_strict_as_openai_s_are(server, extra, param):
    """Issue 22: `"max_tokens": "5"` and `"stream": "yes"` were coerced and accepted."""
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "echo", "messages": COUNT} | extra)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error"), error
    assert error["message"].startswith(param), error


def test_a_415_is_an_invalid_request_error(server):
    r = httpx.post(server.url + "/v1/chat/completions", content=b"hi", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["type"] == "invalid_request_error", r.text
    with pytest.raises(openai.APIStatusError) as caught:
        client(server).chat.completions.create(model="echo", messages=COUNT, extra_headers={"content-type": "application/x-www-form-urlencoded"})
    assert caught.value.status_code == 415 and caught.value.body["type"] == "invalid_request_error"


def test_max_tokens_is_bounded_without_a_context(server):
    """Issue 22 item 6: max_tokens 10^7 was taken as asked, and held a slot for minutes."""
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model="echo", messages=COUNT, max_tokens=10**7)
    assert caught.value.body["param"] == "max_tokens" and "at most 32768" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model="echo", messages=COUNT, max_completion_tokens=32769)
    assert caught.value.body["param"] == "max_completion_tokens"
    assert client(server).completions.create(model="echo", prompt="count", max_tokens=32768, stop=["three"]).choices[0].text == "one two "


def test_max_tokens_and_the_prompt_are_bounded_by_the_model_s_context(serve):
    server = serve("tokens.py:WithContext")
    five = [{"role": "user", "content": "a b c d e"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model="echo", messages=five, max_tokens=16)
    assert caught.value.body["param"] == "max_tokens"
    assert "at most 15 (this model reads at most 20 tokens, and the prompt takes 5)" in caught.value.body["message"]
    assert client(server).chat.completions.create(model="echo", messages=five, max_tokens=15).usage.completion_tokens == 15
    # without max_tokens, chat's default of 512 is cut to what fits
    reply = client(server).chat.completions.create(model="echo", messages=five)
    assert (reply.usage.completion_tokens, reply.choices[0].finish_reason) == (15, "length")
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).completions.create(model="echo", prompt=" ".join(["w"] * 20))
    assert caught.value.body["param"] == "prompt" and "the prompt is 20 tokens; this model reads at most 20" in caught.value.body["message"]
    assert metric(server, "mlkit_predictor_errors_total") == 0


def test_an_empty_prompt_is_a_400_not_a_predictor_error(server):
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).completions.create(model="echo", prompt="")
    assert caught.value.body["param"] == "prompt" and "empty" in caught.value.body["message"]
    assert metric(server, "mlkit_predictor_errors_total") == 0


def test_a_non_streamed_request_stops_generating_when_its_client_leaves(serve, tmp_path: Path):
    """Issue 22 item 6: a non-streamed request went on generating for nobody, its slot held."""
    server = serve("tokens.py:Predictor", "--config", '{"delay": 0.05}')
    url = urlparse(server.url)
    for route, body in (("/v1/chat/completions", {"messages": COUNT}), ("/v1/completions", {"prompt": "count"})):
        payload = json.dumps({"model": "echo", "max_tokens": 30000} | body).encode()
        with socket.create_connection((url.hostname, url.port)) as sock:
            head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (route.encode(), len(payload))
            sock.sendall(head + payload)
            assert wait_for(lambda: metric(server, "mlkit_generated_tokens_total") >= 3)
        assert wait_for(lambda: events(tmp_path)[-1:] == ["closed"]), events(tmp_path)
        generated = metric(server, "mlkit_generated_tokens_total")
        time.sleep(0.5)
        assert metric(server, "mlkit_generated_tokens_total") == generated  # nothing more is generated
        assert metric(server, "mlkit_requests_in_flight") == 0
        assert f'mlkit_requests_total{{route="{route}",status="499"}} 1.0' in httpx.get(server.url + "/metrics").text
    assert metric(server, "mlkit_predictor_errors_total") == 0


def test_stop_sequences_are_bounded_in_length(server):
    """Found past issue 22's list: StopMatcher's hold-back grows as the square of a stop's length."""
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).completions.create(model="echo", prompt="count", max_tokens=3, stop=["one", "a" * 257])
    assert caught.value.body["param"] == "stop" and "at most 256 characters" in caught.value.body["message"]
    assert client(server).completions.create(model="echo", prompt="count", max_tokens=3, stop=["a" * 256]).choices[0].text == "one two three"
