"""`mlkit serve` of examples/llm (SmolLM2-135M-Instruct on CPU, greedy decoding) with the official
`openai` client: chat and completions, streamed and not, stop, max_tokens, a wrong model, API keys
and a client that goes away mid-stream. One real server for the session (tests/conftest.py `llm_server`):
loading takes a while."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.conftest import LLM_KEY as KEY

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def url(llm_server) -> str:
    return llm_server.url


def client(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)


def test_chat_answers_and_streams_the_same_answer(url):
    reply = client(url).chat.completions.create(model="chat", messages=FRANCE, max_tokens=16)
    answer = reply.choices[0].message.content
    assert "Paris" in answer
    assert reply.choices[0].finish_reason == "stop"  # the model ended its turn
    assert reply.usage.prompt_tokens > 10 and 0 < reply.usage.completion_tokens < 16
    chunks = list(client(url).chat.completions.create(model="chat", messages=FRANCE, max_tokens=16, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_completion_streamed_and_not_with_max_tokens(url):
    reply = client(url).completions.create(model="chat", prompt="The capital of France is", max_tokens=3)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 3
    chunks = list(client(url).completions.create(model="chat", prompt="The capital of France is", max_tokens=3, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == reply.choices[0].text
    assert "Paris" in reply.choices[0].text


def test_stop_sequence(url):
    reply = client(url).chat.completions.create(model="chat", messages=FRANCE, max_tokens=16, stop=["Paris"])
    assert reply.choices[0].finish_reason == "stop"
    assert "Paris" not in reply.choices[0].message.content
    assert reply.choices[0].message.content.rstrip().endswith("is")


def test_wrong_model_is_404(url):
    with pytest.raises(openai.NotFoundError, match="gpt-4o"):
        client(url).chat.completions.create(model="gpt-4o", messages=FRANCE, max_tokens=1)


def test_api_key_is_required(url):
    with pytest.raises(openai.AuthenticationError):
        client(url, "wrong").chat.completions.create(model="chat", messages=FRANCE, max_tokens=1)
    assert [m.id for m in client(url).models.list().data] == ["chat"]


def test_disconnect_mid_stream_stops_generation(llm_server):
    """The engine's own count, not the streamed one: the runtime counts tokens it streamed, which stop
    at a disconnect whether or not the engine goes on. The example's engine logs what it generated for
    a request nobody reads any more; without `job.cancelled = True` in generate() it runs all 200
    steps and logs nothing, and this test fails."""
    url = llm_server.url
    # a max_tokens no other test sends, to find this request's line in the shared server's log
    stream = client(url).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Write a long story about a cat."}], max_tokens=197, stream=True
    )
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()  # the client goes away
    pattern = re.compile(r"llm-engine: stopped a request after (\d+) of 197 tokens")
    deadline = time.monotonic() + 30
    while not (found := pattern.findall(llm_server.log.read_text())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found, f"the engine logged no stop for the request whose client left:\n{llm_server.log.read_text()[-2000:]}"
    # 4 read; the runtime notices the disconnect at its next send, and the engine at its next step
    assert int(found[-1]) < 100, f"{found[-1]} of 197 tokens generated after the client left at the 4th"
    deadline = time.monotonic() + 10
    while "mlkit_requests_in_flight 0.0" not in httpx.get(url + "/metrics").text:
        assert time.monotonic() < deadline, "the request whose client left is still in flight"
        time.sleep(0.2)


def test_predict_streams_the_answer_as_server_sent_events(url):
    headers = {"authorization": f"Bearer {KEY}", "accept": "text/event-stream"}
    with httpx.stream("POST", url + "/predict", json={"prompt": "What is the capital of France?", "max_tokens": 8}, headers=headers, timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        pieces = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    assert len(pieces) > 1 and "Paris" in "".join(pieces)


def predictor_errors(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith("mlkit_predictor_errors_total ")))


def test_one_request_s_sampling_parameters_fail_no_other_in_its_batch(url):
    """Issue 22 item 3: temperature 1e-40 made _pick divide logits to inf, softmax gave nan, and
    torch.multinomial's error went to every request of the batch (4 of 4 got 500, three rounds)."""
    errors = predictor_errors(url)
    odd = [{"temperature": 1e-40}, {"temperature": 1e-40, "top_p": 1e-9}, {"temperature": 2, "top_p": 1, "seed": -(2**63)}, {"seed": 2**63 - 1}]
    for _ in range(3):
        barrier = threading.Barrier(len(odd))

        def ask(extra: dict, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()  # together, so that the engine decodes them in one batch
            return client(url).chat.completions.create(model="chat", messages=FRANCE, max_tokens=8, **extra).choices[0].message.content

        with ThreadPoolExecutor(len(odd)) as pool:
            answers = list(pool.map(ask, odd))
        # a tiny temperature is greedy decoding (prompts of one length: no padding, the same rows)
        assert answers[0] == answers[1] and "Paris" in answers[0], answers
        assert all(isinstance(a, str) and a for a in answers), answers
    assert predictor_errors(url) == errors


def test_prompts_and_max_tokens_the_model_cannot_take_are_400s(url):
    """Issue 22: an empty prompt and a 9 MiB prompt were 500s counted as predictor errors; max_tokens
    was not bounded by the model's context (8192 tokens, prompt included)."""
    errors = predictor_errors(url)
    with pytest.raises(openai.BadRequestError) as caught:
        client(url).completions.create(model="chat", prompt="")
    assert caught.value.body["param"] == "prompt" and "empty" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client(url).completions.create(model="chat", prompt="word " * (9 * 1024 * 1024 // 5), max_tokens=1)
    error = caught.value.body
    assert error["param"] == "prompt" and "tokens; this model reads at most 8192, prompt and answer together" in error["message"], error
    with pytest.raises(openai.BadRequestError) as caught:
        client(url).chat.completions.create(model="chat", messages=FRANCE, max_tokens=10**7)
    assert caught.value.body["param"] == "max_tokens" and "this model reads at most 8192 tokens" in caught.value.body["message"]
    assert predictor_errors(url) == errors
