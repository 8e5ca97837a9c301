"""The request bodies the API accepts, validated by pydantic in strict mode (a string is not a number), and
`parse_body`, which turns raw bytes into one of them or an `ApiError` naming the offending parameter.

What the engine cannot do is refused by name (n > 1, penalties, tools, log-probabilities), never ignored.
"""

from __future__ import annotations

import json
import math
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from console.api.errors import ApiError, invalid

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_MESSAGES = 4096
MAX_STOP_STRINGS = 16


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class TextPart(_Strict):
    type: str
    text: str = ""

    @model_validator(mode="before")
    @classmethod
    def only_text(cls, data):
        # Before the fields: an image part's own fields would otherwise be refused as unknown first.
        kind = data.get("type") if isinstance(data, dict) else None
        if isinstance(kind, str) and kind != "text":
            raise ValueError(f"content parts of type '{kind}' are not supported: this model reads text only")
        return data


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(_Strict):
    include_usage: bool = False


class ResponseFormat(_Strict):
    type: str

    @field_validator("type")
    @classmethod
    def text_only(cls, value: str) -> str:
        if value != "text":
            raise ValueError(f"response_format '{value}' is not supported; only 'text' is")
        return value


class _Generation(_Strict):
    """What both completion endpoints share. `timings`, `top_k`, `repetition_penalty` and `ignore_eos` (keep
    going past end of text: fixed-length replies for load tests) are extensions, as in llama.cpp's and vLLM's
    servers."""

    model: str = Field(min_length=1, max_length=256)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=100_000)
    repetition_penalty: float | None = Field(None, ge=0.5, le=3)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    user: str | None = Field(None, max_length=256)
    timings: bool = False
    ignore_eos: bool = False

    @field_validator("temperature", "top_p", "repetition_penalty", "presence_penalty", "frequency_penalty")
    @classmethod
    def finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("stop")
    @classmethod
    def stop_strings(cls, value: str | list[str] | None) -> str | list[str] | None:
        strings = [value] if isinstance(value, str) else value or []
        if len(strings) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings (got {len(strings)})")
        if any(not text for text in strings):
            raise ValueError("stop strings must not be empty")
        return value

    @field_validator("n")
    @classmethod
    def one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError(f"only n=1 is supported (got {value}); send {value} requests instead")
        return value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def no_penalty(cls, value: float) -> float:
        if value != 0:
            raise ValueError("is not supported (only 0); use repetition_penalty, from 0.5 to 3, instead")
        return value

    @field_validator("logit_bias")
    @classmethod
    def no_bias(cls, value: dict | None) -> dict | None:
        if value:
            raise ValueError("is not supported")
        return value

    def stop_list(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def include_usage_chunk(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatCompletionRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[dict] | None = None
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None

    @field_validator("logprobs")
    @classmethod
    def no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("log-probabilities are not supported")
        return value

    @field_validator("top_logprobs")
    @classmethod
    def no_top_logprobs(cls, value: int | None) -> int | None:
        if value:
            raise ValueError("log-probabilities are not supported")
        return value

    @field_validator("tools")
    @classmethod
    def no_tools(cls, value: list | None) -> list | None:
        if value:
            raise ValueError("tool calls are not supported")
        return value

    @field_validator("tool_choice")
    @classmethod
    def no_tool_choice(cls, value: str | None) -> str | None:
        if value not in (None, "none", "auto"):
            raise ValueError("tool calls are not supported")
        return value

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def chat_messages(self) -> list[dict[str, str]]:
        # The chat templates of open models know "system"; OpenAI's "developer" is the same instruction.
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(_Generation):
    prompt: str | list[str] = Field(min_length=1)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None
    logprobs: int | None = None

    @field_validator("prompt")
    @classmethod
    def one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError(f"only one prompt per request is supported (got {len(value)})")
        return value

    @model_validator(mode="after")
    def unsupported(self) -> "CompletionRequest":
        if self.echo:
            raise ValueError("echo is not supported")
        if self.suffix:
            raise ValueError("suffix (insertion) is not supported")
        if self.best_of not in (None, 1):
            raise ValueError("best_of is not supported")
        if self.logprobs:
            raise ValueError("log-probabilities are not supported")
        return self

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def token_limit(self) -> int | None:
        return self.max_tokens


Body = TypeVar("Body", bound=_Generation)


def parse_body(model: type[Body], raw: bytes) -> Body:
    """Bytes to a validated request, or ApiError(400) naming the first bad parameter."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid(f"The request body is not UTF-8 text (byte {error.start}). Send JSON encoded as UTF-8.",
                      None, "invalid_encoding") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise invalid(f"The request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}.",
                      None, "invalid_json") from None
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.", None, "invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _first_problem(error) from None


def _first_problem(error: ValidationError) -> ApiError:
    problems = error.errors(include_url=False)
    # Within a union ("a string or a list of parts"), our own refusal says more than "not a string".
    problem = next((p for p in problems if p["type"] == "value_error"), problems[0])
    param = _param_name(problem["loc"])
    kind = problem["type"]
    if kind == "extra_forbidden":
        return invalid(f"Unrecognized request argument supplied: {param}.", param, "unknown_parameter")
    if kind == "missing":
        return invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
    message = problem["msg"].removeprefix("Value error, ")
    if kind == "too_long" and param == "messages":
        message = f"At most {MAX_MESSAGES} messages per request"
    return invalid(f"Invalid '{param}': {message}.", param, "invalid_type" if kind.endswith("_type") else "invalid_value")


def _param_name(location: tuple) -> str:
    # Drop pydantic's union branch names ("str", "list[TextPart]") so the name is the client's parameter path.
    name = ""
    for part in location:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part and (part[0].islower() and "[" not in part and part not in ("str", "list", "function-after")):
            name += ("." if name else "") + part
    return name or "body"


def check_body_size(length: int) -> None:
    if length > MAX_BODY_BYTES:
        raise ApiError(413, f"The request body is {length:,} bytes; the limit is {MAX_BODY_BYTES:,} bytes.",
                       code="request_too_large")
