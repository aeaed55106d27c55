"""OpenAI's request and response shapes for completions, chat completions and models, as pydantic
models: requests are validated with them and the OpenAPI document shows them.

Fields follow OpenAI's API reference (openai-python's types: `completion_create_params`,
`chat/completion_create_params`, `completion`, `chat/chat_completion(_chunk)`, `model`). Parameters
the runtime cannot honour are listed, so a request that sets one gets a 400 naming it rather than
an answer that silently ignored it. Types are strict, as OpenAI's are: `"max_tokens": "5"` and
`"stream": "yes"` are 400s, not coerced.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True)

    include_usage: bool = False


class Sampling(BaseModel):
    """What both requests share."""

    model_config = ConfigDict(extra="allow", strict=True)  # unknown fields are rejected by name in the route

    model: str = Field(description="The served model's name (GET /v1/models).")
    max_tokens: int | None = Field(None, ge=0, description="Most tokens to generate.")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1, description="An int64, as OpenAI's.")
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    n: int = Field(1, ge=1, description="Only 1: choices are not generated in parallel.")
    stop: str | list[str] | None = Field(None, description="Up to 4 sequences; generation ends before the first one found.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, description="Accepted and ignored.")
    # Set to anything but their defaults, these are a 400: the runtime cannot honour them.
    logprobs: Any = None
    logit_bias: dict[str, float] | None = None


class CompletionRequest(Sampling):
    prompt: str | list[str] = Field(description="A string, or a list holding one string.")
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class ChatCompletionRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=0, description="The newer name of max_tokens.")
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None


class Answer(BaseModel):
    """What every completion response and chunk carries; `usage` when the predictor counts tokens."""

    id: str
    created: int
    model: str
    usage: Usage | None = None


class Completion(Answer):
    """A completion, or (with `stream`) one `data:` event of one."""

    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: None = None
    finish_reason: Literal["stop", "length"]


class ChatCompletion(Answer):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(Answer):
    """One `data:` event of a streamed chat completion; the last, with include_usage, has no choices."""

    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "mlkit"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    error: ErrorDetail
