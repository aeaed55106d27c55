"""`mlkit predict`: call an API on the cluster.

A runtime API takes the payload on /predict. An engine API (vLLM) serves OpenAI's routes only, so the
payload goes to /v1/chat/completions when it holds `messages` and /v1/completions when it holds
`prompt`, with `model` set to the name the engine serves (the API's name, its --served-model-name).
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ToolError, UserError, shown
from ..options import DEFAULT_SPEC, ApiName, SpecFile, say

if TYPE_CHECKING:
    import httpx

    from ..cluster.client import Cluster
    from ..spec.schema import Api

# An async API's request ids (runtime/asyncq/records.py): 128 random bits in hex.
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
# Generation takes longer than a prediction: a long answer from a busy engine is not a failure.
ENGINE_TIMEOUT_S = 300.0
DEFAULT_WAIT_S = 600.0


def command(
    api: ApiName,
    payload: Annotated[str, typer.Argument(help="JSON request body, @file.json, or - for standard input.")],
    route: Annotated[
        str | None,
        typer.Option(
            "--route",
            help="Route to call: /predict (the default), /v1/models/NAME:predict or /v2/models/NAME/infer. For an engine API the default is "
            "/v1/chat/completions for a payload with `messages`, /v1/completions for one with `prompt`.",
        ),
    ] = None,
    canary: Annotated[bool, typer.Option("--canary", help="Call the canary version instead of the stable one.")] = False,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="MLKIT_API_KEY", help="API key; by default the first key of the API's Secret, if it has one.")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Async APIs: print the request's id once it is queued, and do not wait for the result.")
    ] = False,
    wait_s: Annotated[
        float, typer.Option("--wait-s", min=1, max=86400, help="Async APIs: longest to wait for the result, in seconds; then print the id and exit 3.")
    ] = DEFAULT_WAIT_S,
    file: SpecFile = DEFAULT_SPEC,
) -> None:
    """Send PAYLOAD to API through the Kubernetes API server (which reaches private APIs too) and print the answer.

    An async API answers with an id at once: mlkit predict then waits for the result (progress on stderr) and prints it.
    """
    from ..cluster.client import NotFound
    from ..cluster.connect import api_named, connect
    from ..cluster.kinds import by_name
    from ..render import wake
    from ..requestbody import read
    from ..spec.loader import load

    body, value, where = read(payload, "PAYLOAD")
    spec = load(file)
    target = api_named(spec, api)
    if target.kind != "async" and (no_wait or wait_s != DEFAULT_WAIT_S):
        # Said rather than ignored: a script that passes --no-wait expects an id on stdout, not an answer.
        raise typer.BadParameter(f"--no-wait and --wait-s go with async APIs; {api} is a {target.kind} API", param_hint="'--no-wait' / '--wait-s'")
    if canary and not target.canary:
        raise UserError(f"API {api} has no canary in mlkit.yaml; drop --canary or add `canary:` to the API")
    timeout = None
    if target.engine is not None:
        route, body = engine_request(target, value, where, route)
        timeout = ENGINE_TIMEOUT_S
    cluster = connect(spec)
    try:
        headers = {"Content-Type": "application/json"}
        if target.api_keys:
            if api_key is None:
                try:
                    secret = cluster.get(by_name("Secret"), spec.k8s_namespace, f"{api}-api-keys")
                    api_key = base64.b64decode(secret["data"]["keys"]).decode().split()[0]
                except (NotFound, KeyError, IndexError):
                    raise UserError(f"API {api} needs a key and its Secret {api}-api-keys has none; pass --api-key") from None
            headers["Authorization"] = f"Bearer {api_key}"
        namespace, service = spec.k8s_namespace, f"{api}-canary" if canary else api
        if wake.scales_to_zero(target) and not canary:
            # The API's Service leads to its front, which names the API to the interceptor (render/wake.py);
            # the interceptor may hold the request for the whole cold start before anything answers.
            timeout = max(timeout or 0.0, wake.client_timeout_s(target))
        response = cluster.proxy(namespace, service, route or "/predict", body, headers, timeout)
        if target.kind == "async" and response.status_code == 202:
            polled = _await_result(cluster, namespace, service, response, headers, no_wait, wait_s)
            if polled is None:  # printed: the id, or the result
                return
            response = polled
    finally:
        cluster.close()
    if response.status_code >= 400:
        message = f"{api} answered {response.status_code}: {_reason(response)}"
        raise UserError(message) if response.status_code < 500 else ToolError(message)
    sys.stdout.write(response.text if response.text.endswith("\n") else response.text + "\n")


def _await_result(
    cluster: Cluster, namespace: str, service: str, accepted: httpx.Response, headers: dict[str, str], no_wait: bool, wait_s: float
) -> httpx.Response | None:
    """Poll an async API's GET /predict/{id} until its request is completed or failed (then that answer), or the bound passes."""
    try:
        request_id = accepted.json()["id"]
    except (ValueError, KeyError, TypeError):
        request_id = None
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise ToolError(f"{service} answered 202 without a request id: {' '.join(accepted.text.split())[:200]}")
    if no_wait:
        sys.stdout.write(request_id + "\n")
        return None
    start = time.monotonic()
    said, pause = "", 0.1
    while True:
        response = cluster.proxy_get(namespace, f"{service}:http", f"/predict/{request_id}", {}, headers=headers)
        if response.status_code != 200:
            return response
        record = response.json()
        status = record.get("status")
        if status == "completed":
            # The prediction, as a realtime API's answer would print it (bytes come back as base64 in the record).
            result = record["result"] if "result" in record else record
            sys.stdout.write(json.dumps(result) + "\n")
            return None
        if status == "failed":
            # The predictor's error may quote the payload, which whoever called the API chose: shown, not obeyed.
            error = shown(" ".join(str(record.get("error")).split()), 500)
            raise ToolError(f"{service}: request {request_id} failed after {shown(str(record.get('attempt')), 20)} attempts: {error}")
        if status != said:
            say(f"{service}: request {request_id} {shown(str(status), 40)} ({time.monotonic() - start:.0f} s)")
            said = status
        if time.monotonic() - start > wait_s:
            raise ToolError(f"{service}: request {request_id} is still {status} after {wait_s:g} s; its result stays readable by id: GET /predict/{request_id}")
        time.sleep(pause)
        pause = min(pause * 2, 2.0)  # quick answers come back quickly; long ones cost a call every 2 s


def engine_request(api: Api, payload: Any, where: str, route: str | None) -> tuple[str, bytes]:
    """The route and body an engine API takes the payload on: OpenAI's, for the model name it serves."""
    served = api.name  # render.engine_view.engine_args passes it as --served-model-name
    if not isinstance(payload, dict):
        raise UserError(f"{where}: API {api.name} runs {api.engine}, which takes a JSON object; e.g. '{{\"prompt\": \"Hello\"}}'")
    if route is None:
        has = [key for key in ("messages", "prompt") if key in payload]
        if len(has) != 1:
            raise UserError(
                f"{where}: API {api.name} runs {api.engine}, which serves OpenAI's routes; give `messages` (/v1/chat/completions) or `prompt` "
                f"(/v1/completions), {'not both' if has else 'not neither'}, or pass --route"
            )
        route = "/v1/chat/completions" if has == ["messages"] else "/v1/completions"
    model = payload.setdefault("model", served)
    if model != served:
        raise UserError(f"{where}: model {model!r} is not what API {api.name} serves; its engine serves {served!r} (leave `model` out)")
    return route, json.dumps(payload).encode()


def _reason(response: httpx.Response) -> str:
    """The answer's reason on one line: the `error` of the runtime's JSON (the cold-start fallback's too), else the
    start of the body; then when to retry, from Retry-After, and the request id the API logged it under."""
    error = request_id = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error") if isinstance(body.get("error"), str) else None
        request_id = body.get("request_id") if isinstance(body.get("request_id"), str) else None
    reason = shown(" ".join((error or response.text).split()), 500)  # an answer can hold terminal escapes
    retry = response.headers.get("retry-after", "")
    if retry.isdigit() and f"retry after {retry} s" not in reason:
        reason += f"; retry after {retry} s"
    if error and request_id:
        reason += f" (request {shown(' '.join(request_id.split()), 128)})"
    return reason
