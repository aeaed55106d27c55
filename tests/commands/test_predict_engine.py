"""`mlkit predict` to an engine API: vLLM serves OpenAI's routes, not /predict, so predict posts the
payload to /v1/chat/completions or /v1/completions, with the model name the engine serves and the key
from the API's Secret as `Authorization: Bearer`, through the API server's service proxy.

No vLLM runs here, but `mlkit serve chat` of examples/llm answers the same OpenAI routes with the same
model (SmolLM2-135M-Instruct) and the same key header: the emulator's service proxy forwards to that
real runtime on loopback, as the API server forwards to the engine's Service.
"""

from __future__ import annotations

import base64
import json

import httpx
import kmock
import pytest
import yaml

from tests.conftest import EXAMPLES, LLM_KEY, assert_one_line_error, emulator_kubeconfig, mlkit
from tests.runtime.conftest import HAS_LLM_WEIGHTS, LLM_WEIGHTS

NS = "llm-demo"
KEY = LLM_KEY  # the session's llm server (tests/conftest.py) takes this key
# The engine API is named like the runtime API that stands in for it, so the model name matches.
SPEC = """\
project: llm-demo
cloud: aws
region: us-west-2
cluster: {existing: {name: prod-eks, context: emulator}}
apis:
  - name: chat
    engine: vllm
    hf_model: HuggingFaceTB/SmolLM2-135M-Instruct
    compute: {gpu: 1, cpu: "3", memory: 12Gi}
    api_keys: true
"""
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
needs_weights = pytest.mark.skipif(not HAS_LLM_WEIGHTS, reason=LLM_WEIGHTS)


@pytest.fixture
def proj(tmp_path, k8s):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "mlkit.yaml").write_text(SPEC)
    assert mlkit("render", cwd=root).returncode == 0
    return root, {"KUBECONFIG": str(emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url))}


def test_the_model_name_sent_is_the_one_the_engine_is_rendered_to_serve(proj):
    root, _ = proj
    deployment = yaml.safe_load((root / "infra/k8s/chat/deployment.yaml").read_text())
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--served-model-name") + 1] == "chat"


@pytest.fixture
def runtime(llm_server):
    """`mlkit serve chat` of the llm example, with one API key (the session's, tests/conftest.py): what the emulator's proxy forwards to."""
    return llm_server.url


def forward_to(url: str, seen: list):
    """The service proxy: the request as the API server passes it on (body and the key header) to the Service's pods."""

    def handler(request):
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen.append((request.url.path, headers, json.loads(request.body)))
        passed = {k: v for k, v in headers.items() if k in ("authorization", "content-type")}
        answer = httpx.post(url + request.url.path.split("/proxy", 1)[1], content=request.body, headers=passed, timeout=120)
        return kmock.Response(status=answer.status_code, payload=answer.content)

    return handler


def with_key_secret(k8s) -> None:
    """The Secret `mlkit apply` makes for an API with `api_keys: true`: keys one per line, under `keys`."""
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "chat-api-keys", "namespace": NS},
        "data": {"keys": base64.b64encode(f"{KEY}\nolder-key\n".encode()).decode()},
    }
    httpx.post(f"{k8s.url}/api/v1/namespaces/{NS}/secrets", json=secret).raise_for_status()


@needs_weights
def test_predict_sends_messages_to_chat_and_a_prompt_to_completions_with_the_served_name_and_the_key(proj, k8s, runtime):
    root, env = proj
    with_key_secret(k8s)
    seen: list = []
    base = f"post /api/v1/namespaces/{NS}/services/chat:http/proxy/v1"
    k8s.emulator[f"{base}/chat/completions"] << forward_to(runtime, seen)
    k8s.emulator[f"{base}/completions"] << forward_to(runtime, seen)

    chat = mlkit("predict", "chat", json.dumps({"messages": FRANCE, "max_tokens": 16}), cwd=root, env=env, timeout=300)
    assert chat.returncode == 0, chat.stderr
    answer = json.loads(chat.stdout)
    assert answer["object"] == "chat.completion" and "Paris" in answer["choices"][0]["message"]["content"]
    path, headers, body = seen[-1]
    assert path.endswith("/proxy/v1/chat/completions")
    assert headers["authorization"] == f"Bearer {KEY}"  # the Secret's first key, in the header vLLM takes
    assert body["model"] == "chat" and body["messages"] == FRANCE

    completion = mlkit("predict", "chat", '{"prompt": "The capital of France is", "max_tokens": 4}', cwd=root, env=env, timeout=300)
    assert completion.returncode == 0, completion.stderr
    assert json.loads(completion.stdout)["object"] == "text_completion"
    assert seen[-1][0].endswith("/proxy/v1/completions") and seen[-1][2]["model"] == "chat"

    # Streamed: the server-sent events as the engine sends them, ending in [DONE].
    streamed = mlkit("predict", "chat", json.dumps({"messages": FRANCE, "max_tokens": 8, "stream": True}), cwd=root, env=env, timeout=300)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.startswith("data: ") and streamed.stdout.rstrip().endswith("data: [DONE]")

    # A wrong key is the engine's 401, reported in one line with exit 1.
    refused = mlkit("predict", "chat", '{"prompt": "Hi"}', "--api-key", "wrong", cwd=root, env=env, timeout=300)
    assert_one_line_error(refused, "chat answered 401")
    assert seen[-1][1]["authorization"] == "Bearer wrong"


@pytest.mark.parametrize(("payload", "fragments"), [
    ('{"text": "great"}', ("PAYLOAD: API chat runs vllm, which serves OpenAI's routes", "`messages`", "`prompt`", "not neither")),
    ('{"prompt": "a", "messages": []}', ("give `messages` (/v1/chat/completions) or `prompt` (/v1/completions), not both",)),
    ('["a"]', ("PAYLOAD: API chat runs vllm, which takes a JSON object",)),
    ('{"prompt": "a", "model": "gpt-4"}', ("PAYLOAD: model 'gpt-4' is not what API chat serves; its engine serves 'chat' (leave `model` out)",)),
])
def test_payloads_an_engine_cannot_take_are_one_line_before_anything_is_sent(proj, k8s, payload, fragments):
    root, env = proj
    calls: list = []
    k8s.emulator[f"post /api/v1/namespaces/{NS}/services/chat:http/proxy/v1/completions"] << (lambda request: calls.append(1) or {})
    result = mlkit("predict", "chat", payload, "--api-key", KEY, cwd=root, env=env)
    assert_one_line_error(result, *fragments)
    assert not calls


def test_a_payload_file_is_named_in_the_error(proj, tmp_path):
    root, env = proj
    body = tmp_path / "ask.json"
    body.write_text('{"input": "hello"}')
    result = mlkit("predict", "chat", f"@{body}", "--api-key", KEY, cwd=root, env=env)
    assert_one_line_error(result, f"{body}: API chat runs vllm, which serves OpenAI's routes")


def test_runtime_apis_still_default_to_predict(tmp_path, k8s):
    root = tmp_path / "rt"
    root.mkdir()
    (root / "mlkit.yaml").write_text(SPEC.replace(
        "    engine: vllm\n    hf_model: HuggingFaceTB/SmolLM2-135M-Instruct\n    compute: {gpu: 1, cpu: \"3\", memory: 12Gi}\n    api_keys: true\n",
        "    predictor: predictor.py:Predictor\n",
    ))
    (root / "predictor.py").write_text((EXAMPLES / "sentiment" / "predictor.py").read_text())
    env = {"KUBECONFIG": str(emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url))}
    k8s.emulator[f"post /api/v1/namespaces/{NS}/services/chat:http/proxy/predict"] << {"label": "positive"}
    result = mlkit("predict", "chat", '{"text": "great"}', cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"label": "positive"}
