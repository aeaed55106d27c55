"""OpenAI-compatible routes for predictors with a `generate` method (see runtime/generate.py):
`POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models`.

Each goes through Runtime.handle like every other route (API keys, admission, metrics, access log);
errors come in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so OpenAI's clients
raise their usual exceptions. `stream: true` answers with server-sent events ending in `data: [DONE]`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from .. import logs
from ..client_gone import until_gone
from ..core import Runtime, runtime_of
from ..errors import HTTPError, NotFound, PredictorRaised
from ..generate import Generation, Generator, ParamError
from ..http_limits import openai_error_type
from ..openai_shapes import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ModelList,
    OpenAIErrorBody,
)
from ..payloads import clip, dumps, payload
from ..streaming import SSE, Stream

router = APIRouter(tags=["openai"])
Sampling_T = TypeVar("Sampling_T", bound=BaseModel)

DEFAULT_CHAT_MAX_TOKENS = 512  # OpenAI's default is "up to the context"; a bound keeps a slot from being held forever
MAX_STOPS = 4
MAX_STOP_CHARS = 256
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OpenAIErrorBody, "description": "A malformed request, or a parameter this model cannot honour (named in error.param)"},
    401: {"model": OpenAIErrorBody, "description": "Missing or wrong API key"},
    404: {"model": OpenAIErrorBody, "description": "No such model here, or the predictor has no generate()"},
    503: {"model": OpenAIErrorBody, "description": "Server full; retry after Retry-After"},
}


def error_body(error: HTTPError, request_id: str, headers: dict[str, str]) -> Response:
    """The runtime's errors in OpenAI's shape."""
    detail = {
        "message": error.message,
        "type": openai_error_type(error.status),
        "param": getattr(error, "param", None),
        "code": getattr(error, "code", None),
    }
    return Response(dumps({"error": detail}), status_code=error.status, media_type="application/json", headers=headers | {"x-request-id": request_id})


def body_of(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def document(app: FastAPI) -> None:
    """Put the request models in the OpenAPI components: the routes parse bodies themselves (after
        the API key check and admission), so FastAPI does not see them as parameters; and the streamed
    chunk, which no route returns as a model."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (CompletionRequest, ChatCompletionRequest, ChatCompletionChunk):
            one = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(one.pop("$defs", {}))
            components[model.__name__] = one
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def generator_of(rt: Runtime) -> Generator:
    if rt.generator is None:
        raise NotFound(f"{rt.settings.predictor} has no generate() method, so it serves no OpenAI routes; see the docs' predictor page")
    return rt.generator


def parse(model: type[Sampling_T], body: Any) -> Sampling_T:
    try:
        request = model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ParamError(f"{where}: {first['msg']}", where) from None
    for name in request.model_extra or {}:
        raise ParamError(f"{clip(name)}: not a parameter of this route", clip(name))
    return request


def check_model(rt: Runtime, name: str) -> None:
    if name != rt.settings.name:
        error = NotFound(f"the model {clip(name)!r} does not exist here; this server serves {rt.settings.name!r} (GET /v1/models)")
        error.code = "model_not_found"  # type: ignore[attr-defined]
        error.param = "model"  # type: ignore[attr-defined]
        raise error


def refuse_unhonoured(request: CompletionRequest | ChatCompletionRequest) -> None:
    """Parameters OpenAI has and this runtime cannot honour: set to anything but their default, a 400."""
    checks: list[tuple[str, bool]] = [
        ("n", request.n != 1),
        ("logprobs", request.logprobs not in (None, False, 0)),
        ("logit_bias", bool(request.logit_bias)),
    ]
    if isinstance(request, CompletionRequest):
        checks += [("echo", request.echo), ("best_of", request.best_of not in (None, 1)), ("suffix", request.suffix is not None)]
    else:
        checks += [
            ("top_logprobs", request.top_logprobs is not None),
            ("tools", bool(request.tools)),
            ("tool_choice", request.tool_choice not in (None, "none")),
            ("response_format", request.response_format is not None and request.response_format.get("type") != "text"),
        ]
    for name, refused in checks:
        if refused:
            raise ParamError(f"{name}: this server cannot honour it; leave it out (or at its default)", name)


def stops_of(request: CompletionRequest | ChatCompletionRequest) -> list[str]:
    stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    if len(stops) > MAX_STOPS:
        raise ParamError(f"stop: at most {MAX_STOPS} sequences, got {len(stops)}", "stop")
    # Rule: every value from a client is bounded before use. StopMatcher holds back text that could
    # start a stop sequence and compares each tail of it to each: on the event loop, a 20,000-character
    # stop cost 0.12 s for one token after text that almost matched it, and that grows as its square.
    for stop in stops:
        if len(stop) > MAX_STOP_CHARS:
            raise ParamError(f"stop: a stop sequence is at most {MAX_STOP_CHARS} characters, got one of {len(stop)}", "stop")
    return stops


def chat_prompt(request: ChatCompletionRequest) -> list[dict[str, str]]:
    """Messages as generate() takes them: role and content (text parts joined)."""
    messages = []
    for i, message in enumerate(request.messages):
        content = message.content
        if isinstance(content, list):
            if not all(isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str) for part in content):
                raise ParamError(f"messages[{i}].content: only text parts are supported", f"messages[{i}].content")
            content = "".join(part["text"] for part in content)
        messages.append({"role": message.role, "content": content or ""})
    return messages


def completion_prompt(request: CompletionRequest) -> str:
    if isinstance(request.prompt, str):
        return request.prompt
    if len(request.prompt) != 1:
        raise ParamError(f"prompt: one prompt per request, got {len(request.prompt)}", "prompt")
    return request.prompt[0]


def usage(prompt_tokens: int | None, completion_tokens: int) -> dict[str, int] | None:
    if prompt_tokens is None:
        return None
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


def event(data: Any) -> bytes:
    return b"data: " + dumps(data) + b"\n\n"


@router.post(
    "/v1/completions",
    summary="Complete a prompt (OpenAI)",
    openapi_extra=body_of(CompletionRequest),
    responses={200: {"model": Completion, "content": {SSE: {"schema": {"$ref": "#/components/schemas/Completion"}}}}, **ERRORS},
)
async def completions(request: Request) -> Response:
    return await respond(request, chat=False)


@router.post(
    "/v1/chat/completions",
    summary="Answer a conversation (OpenAI)",
    openapi_extra=body_of(ChatCompletionRequest),
    responses={200: {"model": ChatCompletion, "content": {SSE: {"schema": {"$ref": "#/components/schemas/ChatCompletionChunk"}}}}, **ERRORS},
)
async def chat_completions(request: Request) -> Response:
    return await respond(request, chat=True)


@router.get("/v1/models", summary="The model this server serves (OpenAI)", responses={200: {"model": ModelList}, **ERRORS})
async def models(request: Request) -> Response:
    rt = runtime_of(request)

    async def call() -> dict[str, Any]:
        generator_of(rt)
        return {"object": "list", "data": [{"id": rt.settings.name, "object": "model", "created": rt.started, "owned_by": "mlkit"}]}

    return await rt.handle(request, "/v1/models", call, errors=error_body)


async def respond(request: Request, chat: bool) -> Response:
    rt = runtime_of(request)
    started = time.perf_counter()
    route = "/v1/chat/completions" if chat else "/v1/completions"

    async def call() -> Any:
        generator = generator_of(rt)
        body = await payload(request, rt.settings.max_body_bytes, json_only=True)
        parsed: CompletionRequest | ChatCompletionRequest = parse(ChatCompletionRequest, body) if chat else parse(CompletionRequest, body)
        check_model(rt, parsed.model)
        refuse_unhonoured(parsed)
        stops = stops_of(parsed)
        if isinstance(parsed, ChatCompletionRequest):
            prompt: Any = chat_prompt(parsed)
            param = "max_completion_tokens" if parsed.max_completion_tokens is not None else "max_tokens"
            asked = parsed.max_completion_tokens if parsed.max_completion_tokens is not None else parsed.max_tokens
            default, prompt_param = DEFAULT_CHAT_MAX_TOKENS, "messages"
        else:
            prompt = completion_prompt(parsed)
            param, asked, default, prompt_param = "max_tokens", parsed.max_tokens, 16, "prompt"  # 16: OpenAI's default for completions
        sampling = generator.sampling(parsed.model_dump())
        prompt_tokens = await generator.count(prompt)
        max_tokens = generator.max_tokens(asked, default, prompt_tokens, param, prompt_param)
        source = generator.start(prompt, max_tokens, sampling)
        generation = Generation(source, max_tokens, stops, rt.metrics, started)
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        if parsed.stream:
            include_usage = parsed.stream_options is not None and parsed.stream_options.include_usage
            return streamed(generation, chat, ident, created, parsed.model, prompt_tokens if include_usage else None, request)

        async def whole() -> str:
            return "".join([piece async for piece in generation.pieces()])

        try:
            text = await until_gone(request, whole())  # a client that leaves stops the generation
        finally:
            await source.aclose()
        if chat:
            message = {"role": "assistant", "content": text}
            choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": generation.finish_reason}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": generation.finish_reason}
        return {
            "id": ident,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": parsed.model,
            "choices": [choice],
            "usage": usage(prompt_tokens, generation.tokens),
        }

    return await rt.handle(request, route, call, errors=error_body)


def streamed(generation: Generation, chat: bool, ident: str, created: int, model: str, prompt_tokens: int | None, request: Request) -> Stream:
    head = {"id": ident, "object": "chat.completion.chunk" if chat else "text_completion", "created": created, "model": model}

    def chunk(text: str | None, finish: str | None, first: bool = False) -> bytes:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else ({} if text is None else {"content": text})
            return event(head | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})
        return event(head | {"choices": [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}]})

    async def chunks() -> AsyncIterator[bytes]:
        try:
            if chat:
                yield chunk(None, None, first=True)
            async for piece in generation.pieces():
                yield chunk(piece, None)
            yield chunk(None, generation.finish_reason)
            if prompt_tokens is not None:
                yield event(head | {"choices": [], "usage": usage(prompt_tokens, generation.tokens)})
        except PredictorRaised as raised:
            stream.status = 500  # the 200 is sent; the log, the metrics and the client's last event say otherwise
            logs.log.error("request %s: generate() raised\n%s", stream.request_id, logs.format_exception(raised.__cause__ or raised))
            message = f"the predictor raised; the log has the details under request id {stream.request_id}"
            yield event({"error": {"message": message, "type": "server_error", "param": None, "code": None}})
        yield b"data: [DONE]\n\n"

    stream = Stream(chunks(), SSE, generation.source.aclose)
    return stream
