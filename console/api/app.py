"""The HTTP routes of the local API on FastAPI: models, chat and plain completions (streamed as server-sent
events or whole), health and Prometheus metrics. Each request resolves its key to a principal and is checked
and submitted through `ApiService`, so the window's rules hold here too. Bodies are parsed by hand
(`schemas.parse_body`) so every refusal is OpenAI's error envelope with the parameter named.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from console.access.permissions import Permission
from console.api.engine_stream import EngineStream
from console.api.errors import ApiError, from_exception, invalid, service_unavailable
from console.api.responses import CompletionShape, sse
from console.api.schemas import ChatCompletionRequest, CompletionRequest, check_body_size, parse_body
from console.api.service import ApiService, Caller
from engine import FinishReason, GenerationRequest, SamplingParams

log = logging.getLogger(__name__)
access_log = logging.getLogger("llm_console.api.access")


def create_app(service: ApiService) -> FastAPI:
    app = FastAPI(title="LLM Console API", docs_url=None, redoc_url=None, openapi_url=None)
    if service.config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(service.config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(AccessLogMiddleware, service=service)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = {404: "Not found: the API is under /v1 (models, chat/completions, completions).",
                   405: "This method is not allowed here."}.get(error.status_code, str(error.detail))
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        return JSONResponse(ApiError(error.status_code, message, code=code).body(), status_code=error.status_code)

    @app.exception_handler(ClientGone)
    async def client_gone(_request: Request, _error: ClientGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it, the log does

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        api = from_exception(error)
        if api.status >= 500 and not isinstance(error, ApiError):
            log.exception("API request failed", exc_info=error)
        return JSONResponse(api.body(), status_code=api.status, headers=api.headers())

    @app.get("/health")
    async def health() -> JSONResponse:
        if service.model_loading:
            return JSONResponse({"error": {"message": "Loading model", "type": "unavailable_error", "param": None,
                                           "code": "loading"}}, status_code=503, headers={"Retry-After": "1"})
        models = service.served_models()
        if not models:
            return JSONResponse({"error": {"message": "No model loaded", "type": "unavailable_error", "param": None,
                                           "code": "model_not_loaded"}}, status_code=503, headers={"Retry-After": "1"})
        return JSONResponse({"status": "ok", "model": models[0].id})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        caller = _caller(service, request)
        service.require(caller, Permission.METRICS_VIEW, "read the metrics")
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(request.headers.get("accept"))
        return Response(encoder(service.metrics_registry()), media_type=content_type)

    @app.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        caller = _caller(service, request)
        service.require(caller, Permission.CHAT_USE, "list the served models")
        return JSONResponse({"object": "list", "data": [model.card() for model in service.served_models()]})

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> JSONResponse:
        caller = _caller(service, request)
        service.require(caller, Permission.CHAT_USE, "see a served model")
        served = service.resolve_model(model_id)
        return JSONResponse({**served.card(), "id": model_id})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        caller = _caller(service, request)
        body = parse_body(ChatCompletionRequest, await _read_body(request))
        return await _complete(service, request, caller, body, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        caller = _caller(service, request)
        body = parse_body(CompletionRequest, await _read_body(request))
        return await _complete(service, request, caller, body, chat=False)

    return app


def _caller(service: ApiService, request: Request) -> Caller:
    caller = service.caller(request.headers.get("authorization"))
    request.state.log = {"user": caller.principal.user, "key": caller.key_id}
    return caller


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        check_body_size(int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        check_body_size(size)  # a chunked body without a length is counted as it comes
        chunks.append(chunk)
    return b"".join(chunks)


def _sampling(service: ApiService, body: ChatCompletionRequest | CompletionRequest) -> SamplingParams:
    """OpenAI's defaults (temperature 1, top-p 1, no repetition penalty), the engine's reply length."""
    limit = body.token_limit()
    context = service.context_length()
    param = "max_completion_tokens" if getattr(body, "max_completion_tokens", None) is not None else "max_tokens"
    if limit is not None and context is not None and limit > context:
        raise invalid(f"'{param}' is {limit:,}, but the model's context window is {context:,} tokens "
                      "(prompt and reply together). Ask for fewer tokens.", param)
    return SamplingParams(
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        top_k=body.top_k or 0,
        repetition_penalty=1.0 if body.repetition_penalty is None else body.repetition_penalty,
        max_new_tokens=limit or service.core.settings.get("engine.max_new_tokens"),
        stop=body.stop_list(),
        seed=body.seed,
        ignore_eos=body.ignore_eos,
    )


async def _complete(service: ApiService, request: Request, caller: Caller,
                    body: ChatCompletionRequest | CompletionRequest, chat: bool) -> Response:
    if service.model_loading:
        raise service_unavailable("Loading model", "loading")
    model = service.resolve_model(body.model)
    params = _sampling(service, body)
    generation = (GenerationRequest(messages=body.chat_messages(), params=params) if chat
                  else GenerationRequest(prompt=body.prompt_text(), params=params))
    stream = EngineStream()
    service.usage.started(caller.key_id)
    try:
        stream.attach(service.submit(caller, generation, stream.on_event))
        await _while_connected(stream.first(), request)
    except BaseException as error:
        _finished(service, request, caller, stream, error=True)
        raise _status_error(error) if isinstance(error, Exception) else error
    if stream.result is not None and stream.result.finish_reason is FinishReason.ERROR:
        _finished(service, request, caller, stream, error=True)
        raise _result_error(stream.result.error or "Generation failed.")
    shape = CompletionShape(chat, body.model or model.id, body.timings)
    if body.stream:
        return EngineStreamResponse(_events(service, request, caller, stream, shape, body.include_usage_chunk()),
                                    cleanup=lambda: _finished(service, request, caller, stream, error=True))
    try:
        result = await _while_connected(stream.finish(), request)
    except BaseException:
        _finished(service, request, caller, stream, error=True)
        raise
    _finished(service, request, caller, stream, error=not result.ok)
    if not result.ok:
        raise _result_error(result.error or "Generation failed.")
    return JSONResponse(shape.full(result))


async def _events(service: ApiService, request: Request, caller: Caller, stream: EngineStream,
                  shape: CompletionShape, include_usage: bool) -> AsyncIterator[bytes]:
    """The SSE body. Starlette cancels this generator when the client disconnects: `finally` then cancels the
    request, which leaves the batch at the engine's next step."""
    first, failed = True, False
    try:
        async for piece in stream.pieces():
            chunk = shape.piece(piece, first)
            if include_usage:
                chunk["usage"] = None
            yield sse(chunk)
            first = False
        result = stream.result
        if result.finish_reason is FinishReason.ERROR:
            failed = True
            yield sse(_result_error(result.error or "Generation failed.").body())
        elif result.finish_reason is not FinishReason.CANCELLED:
            last = shape.last(result, first)
            if include_usage:
                last["usage"] = None
            yield sse(last)
            if include_usage:
                yield sse(shape.usage_chunk(result))
        yield sse("[DONE]")
    finally:
        _finished(service, request, caller, stream, error=failed or stream.result is None)


async def _while_connected(work, request: Request):
    """Await `work`, or raise ClientGone as soon as the client disconnects (the caller cancels the request)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        raise ClientGone()
    finally:
        watcher.cancel()


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


def _status_error(error: Exception) -> Exception:
    return error if isinstance(error, ClientGone) else from_exception(error)


def _result_error(message: str) -> ApiError:
    from console.api.errors import context_length_error

    if message.startswith("The prompt is "):  # the engine's PromptTooLong, reported through the request's result
        return context_length_error(message)
    if "No model is loaded" in message or "unloaded" in message:
        return service_unavailable(message, "model_not_loaded")
    return ApiError(500, message, type="server_error", code="generation_failed")


class EngineStreamResponse(StreamingResponse):
    """Server-sent events whose `cleanup` runs however the response ends, even when the client left before the
    first byte and the body was never iterated (its `finally` would then never run)."""

    def __init__(self, content, cleanup):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.cleanup = cleanup

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.cleanup()


def _finished(service: ApiService, request: Request, caller: Caller, stream: EngineStream, error: bool) -> None:
    """The request left the engine: one fewer in flight, and its tokens noted for the access log and usage.
    Once per request: a stream's body and its response both report the end."""
    stream.cancel()
    if stream.finished:
        return
    stream.finished = True
    service.usage.ended(caller.key_id)
    result = stream.result
    entry = request.state.log
    entry.update(prompt_tokens=result.prompt_tokens if result else 0,
                 completion_tokens=result.completion_tokens if result else 0,
                 finish=result.finish_reason.value if result else "none", failed=error)


class AccessLogMiddleware:
    """One line per request, when its response has been sent: who, what, status, time and tokens; never the
    body. Streaming responses are logged when their last chunk is out."""

    def __init__(self, app, service: ApiService):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}
        scope.setdefault("state", {})
        recorded = []

        def record_usage() -> None:
            entry = scope["state"].get("log", {})
            if entry.get("key") is not None and not recorded:
                recorded.append(True)
                self.service.usage.record(entry["key"], entry.get("prompt_tokens", 0), entry.get("completion_tokens", 0),
                                          error=status["code"] >= 400 or entry.get("failed", False))

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif (message["type"] == "http.response.body" and not message.get("more_body", False)
                  and "completion_tokens" in scope["state"].get("log", {})):
                record_usage()  # before the last byte: a client that has its answer finds it counted
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            record_usage()  # a response whose tokens were not known at its last byte, or that never ended
            entry = scope["state"].get("log", {})
            client = scope.get("client") or ("-", 0)
            extra = "".join(f" {name}={entry[name]}" for name in ("prompt_tokens", "completion_tokens", "finish")
                            if name in entry)
            access_log.info('%s %s "%s %s" %d %.3fs user=%s key=%s%s', client[0], scope.get("scheme", "http"),
                            scope["method"], scope["path"], status["code"], time.perf_counter() - started,
                            entry.get("user", "-"), entry.get("key") or "-", extra)
