"""Errors of the local API in OpenAI's envelope, `{"error": {"message", "type", "param", "code"}}`, and the one
place that turns the console's and the engine's typed errors into an HTTP status with such a body."""

from __future__ import annotations

import re

from console.access.guard import PermissionDenied
from console.api.keys import InvalidApiKey
from console.errors import ConsoleError
from engine import EngineBusy, EngineError, InvalidRequest, NoModelLoaded, PromptTooLong

RETRY_AFTER_S = 1  # what a client waits before retrying a 503: the engine's queue moves every few steps


class ApiError(Exception):
    """One refused request: its HTTP status and the fields of OpenAI's error object."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.retry_after = retry_after

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


def invalid(message: str, param: str | None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def service_unavailable(message: str, code: str) -> ApiError:
    return ApiError(503, message, type="server_error", code=code, retry_after=RETRY_AFTER_S)


_PROMPT_TOO_LONG = re.compile(r"The prompt is ([\d,]+) tokens, but .* context window of ([\d,]+) tokens")


def context_length_error(message: str) -> ApiError:
    """400 context_length_exceeded, with the prompt's length and the window's when the engine named them."""
    match = _PROMPT_TOO_LONG.search(message)
    if match:
        prompt, window = (int(group.replace(",", "")) for group in match.groups())
        message = (f"This model's maximum context length is {window} tokens, but the prompt is {prompt} tokens. "
                   "Shorten the messages.")
    return ApiError(400, message, param="messages", code="context_length_exceeded")


def from_exception(error: Exception) -> ApiError:
    """The API error for a typed error of the services below; anything else is a 500 that names no internals."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, InvalidApiKey):
        return ApiError(401, str(error), type="authentication_error", code="invalid_api_key")
    if isinstance(error, PermissionDenied):
        return ApiError(403, str(error), type="permission_error", code="permission_denied")
    if isinstance(error, NoModelLoaded):
        return service_unavailable(str(error), "model_not_loaded")
    if isinstance(error, EngineBusy):
        return service_unavailable(str(error), "engine_busy")
    if isinstance(error, PromptTooLong):
        return context_length_error(str(error))
    if isinstance(error, InvalidRequest):
        return ApiError(400, str(error), code="invalid_value")
    if isinstance(error, (EngineError, ConsoleError)):
        return ApiError(500, str(error), type="server_error")
    return ApiError(500, "The server failed while answering; its log has the details.", type="server_error")
