"""The HTTP service: FastAPI app over one hot-swappable `Engine`, with metrics, limits and JSON errors.

Design choices, and why:
- Handlers are `async` and compute on the event loop: a request is ~1-5 ms of single-threaded torch
  work, cheaper to run there than to hand to a thread pool. Requests ready in the same loop turn share
  one forward pass (`MicroBatcher`), and uvicorn workers (processes, one torch thread each) add cores.
  Slow explanation methods (gradient, occlusion) run in a thread so they do not stall the loop.
- Every client mistake is a 4xx `{"error": "<what is wrong, naming the field>"}`: pydantic validation
  errors, unknown users/items, bodies over `MAX_BODY_BYTES` (refused before parsing). A 500 means a bug.
- Hot reload (`POST /v1/admin/reload`) and rollback (`POST /v1/admin/rollback`, when serving a model store)
  are off unless a token is configured; the token is compared in constant time. The new model loads in a thread while the old one keeps serving, then one reference
  is swapped; a request holds the engine it started with, so in-flight requests finish on the old model.
  With several workers, the reload bumps a generation file and the other workers reload on their next
  request (in the background, serving the old model meanwhile).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from pathlib import Path

import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from seqlens._version import __version__
from seqlens.serve.engine import Engine, RequestError
from seqlens.serve.handlers import Handlers, ServeState
from seqlens.serve.metrics import Metrics
from seqlens.serve.request_log import RequestLog
from seqlens.serve.schemas import MAX_BODY_BYTES, Item, ItemList, RecommendRequest, RecommendResponse

log = logging.getLogger("seqlens.serve")
STATIC = Path(__file__).resolve().parent / "static"
#: endpoints labelled in metrics; other paths count as "other" so scanners cannot blow up label cardinality
ENDPOINTS = ("/", "/healthz", "/readyz", "/metrics", "/v1/recommend", "/v1/model", "/v1/items", "/v1/admin/reload",
             "/v1/admin/rollback")  # fmt: skip


#: requests one worker works on at once; more are answered 503 with Retry-After at once (load shedding, below
#: uvicorn's own connection limit, whose bare 503 tells a client nothing about when to come back)
MAX_IN_FLIGHT = 128
RETRY_AFTER_SECONDS = 1
#: answered whatever the load: probes and scrapes must tell "busy" from "down"
ALWAYS_ANSWERED = frozenset({"/healthz", "/readyz", "/metrics"})


def create_app(
    model_dir: str | Path,
    reload_token: str | None = None,
    generation_file: str | Path | None = None,
    max_in_flight: int = MAX_IN_FLIGHT,
    request_log: str | Path | None = None,
    request_log_history: bool = False,
) -> FastAPI:
    """The app serving the model saved in `model_dir` (loaded now, so a bad directory fails at start);
    past `max_in_flight` requests in progress, others are answered 503 with Retry-After. With `request_log`,
    every recommend request appends a record there (`serve/request_log.py`; history ids only if asked)."""
    model_dir = Path(model_dir)
    state = ServeState(Engine.load(model_dir), model_dir, reload_token or None)  # a directory or a model store
    if request_log is not None:
        state.request_log = RequestLog(request_log, history=request_log_history)
    if generation_file is not None:
        state.generation_file = Path(generation_file)
        state.generation = state.read_generation()
    handlers = Handlers(state, Metrics())
    app = FastAPI(
        title="seqlens",
        version=__version__,
        description="Next-item recommendations from a self-attentive model, with explanations.",
        docs_url=None,  # served below from the swagger-ui-bundle package: the page works offline (no CDN)
        redoc_url=None,
        lifespan=_closing(state),
    )
    app.state.serve, app.state.metrics, app.state.batchers = state, handlers.metrics, handlers.batchers
    app.add_middleware(_Guard, metrics=handlers.metrics, max_in_flight=max_in_flight)
    _errors(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
    _routes(app, handlers)
    return app


def _closing(state: ServeState):
    """The app's lifespan: at shutdown, what the request log still holds is written out."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if state.request_log is not None:
            state.request_log.close()

    return lifespan


def _routes(app: FastAPI, handlers: Handlers) -> None:
    """The endpoints: each a thin route over one `Handlers` method (which documents what it does)."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="seqlens API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness for a load balancer, apart from liveness (`/healthz`): a smoke-tested model is serving.
        A reload swaps models without a gap (the old one serves until the new one passed), so it stays ready."""
        return JSONResponse(handlers.readiness())

    @app.get("/healthz")
    async def healthz() -> dict:
        return handlers.health()

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(handlers.metrics.exposition(), media_type=handlers.metrics.content_type)

    @app.get("/v1/model")
    async def model_info() -> dict:
        return handlers.model_info()

    @app.get("/v1/items", response_model=ItemList)
    async def search_items(
        q: str = Query("", max_length=200, description="part of a title or id, case-insensitive"),
        limit: int = Query(20, ge=1, le=100),
    ) -> ItemList:
        return handlers.search(q, limit)

    @app.get("/v1/items/{item_id}", response_model=Item)
    async def get_item(item_id: str) -> Item:
        return handlers.item(item_id)

    @app.post("/v1/recommend", response_model=RecommendResponse, response_model_exclude_none=True)
    async def recommend(body: RecommendRequest) -> JSONResponse:
        return JSONResponse(await handlers.recommend(body))

    @app.post("/v1/admin/reload")
    async def reload(request: Request) -> dict:
        return await handlers.reload(request.headers.get("authorization", ""))

    @app.post("/v1/admin/rollback")
    async def rollback(request: Request) -> dict:
        return await handlers.rollback(request.headers.get("authorization", ""))


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (`seqlens serve --workers N`): configuration comes from the environment."""
    torch.set_num_threads(1)  # one thread per worker: workers are the parallelism, threads would oversubscribe
    json_logs()
    return create_app(
        os.environ["SEQLENS_MODEL_DIR"],
        os.environ.get("SEQLENS_RELOAD_TOKEN"),
        os.environ.get("SEQLENS_GENERATION_FILE"),
        request_log=os.environ.get("SEQLENS_REQUEST_LOG") or None,
        request_log_history=os.environ.get("SEQLENS_REQUEST_LOG_HISTORY") == "1",
    )


class JsonLines(logging.Formatter):
    """One JSON object per log line (time, level, logger, message, request_id, traceback): what log
    collectors parse, and a traceback no longer spreads over many lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)  # set by the error handler's log call
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def json_logs() -> None:
    """Send the service's own log lines (logger "seqlens.serve") to stderr as JSON lines."""
    logger = logging.getLogger("seqlens.serve")
    if not any(isinstance(h.formatter, JsonLines) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)
        logger.propagate = False


def _error(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _errors(app: FastAPI) -> None:
    """Every error leaves as `{"error": ...}` JSON with a message that names what is wrong."""

    @app.exception_handler(RequestError)
    async def request_error(_: Request, e: RequestError) -> JSONResponse:
        return _error(e.status, e.message, **e.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in content_type and any(_whole_body(err) for err in e.errors()):
            # FastAPI reads a body as JSON only when it is labelled so; say that, not "not an object"
            message = f"send the body as JSON with Content-Type: application/json (got {content_type or 'none'!r})"
            return _error(415, message)
        problems = [_describe(err) for err in e.errors()]
        return _error(422, "; ".join(problems), problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def bug(request: Request, e: Exception) -> JSONResponse:
        log.exception(
            "unhandled error on %s %s", request.method, request.url.path,
            extra={"request_id": getattr(request.state, "request_id", None)},
        )  # fmt: skip
        return _error(500, f"internal error ({type(e).__name__}); this is a bug in seqlens, not in the request")


def _whole_body(err: dict) -> bool:
    """An error about the body as a whole (not one field): missing, or not an object."""
    loc = [p for p in err.get("loc", ()) if p != "body"]
    return not loc and err.get("type") in ("missing", "model_attributes_type", "dict_type")


def _describe(err: dict) -> str:
    """One pydantic error as 'field: message' (e.g. 'k: Input should be less than or equal to 1000')."""
    loc = [str(p) for p in err.get("loc", ()) if p != "body"]
    if err.get("type") == "json_invalid":
        return f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})"
    if err.get("type") == "missing" and not loc:
        return "the body is missing: send a JSON object"
    if err.get("type") == "extra_forbidden":
        return f"{'.'.join(loc)}: unknown field"
    if err.get("type") == "model_attributes_type" or (err.get("type") == "dict_type" and not loc):
        return "the body must be a JSON object"
    return f"{'.'.join(loc) or 'body'}: {err.get('msg')}"


class _BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` mid-body; an HTTPException so FastAPI's body parsing lets it through as 413."""

    def __init__(self) -> None:
        super().__init__(413, _too_large(None))


class _Guard:
    """ASGI middleware: sheds load past `max_in_flight` (503 + Retry-After), refuses bodies over MAX_BODY_BYTES
    (413) and records count and latency per endpoint."""

    def __init__(self, app, metrics: Metrics, max_in_flight: int = MAX_IN_FLIGHT):
        self.app, self.metrics, self.max_in_flight = app, metrics, max_in_flight
        self.in_flight = 0  # one event loop per worker: no lock needed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id  # read by the error handler's log line
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else _template(path)
        method = scope["method"]
        status = {"code": 500, "started": False, "recorded": False}

        def record() -> None:
            if not status["recorded"]:
                status["recorded"] = True
                self.metrics.requests.labels(endpoint, method, str(status["code"])).inc()
                self.metrics.latency.labels(endpoint, method).observe(time.perf_counter() - start)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            # count the request before its last byte leaves: a client that reads /metrics right after the
            # answer must see it (file responses still await cleanup after sending)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                record()
            await send(message)

        length = _content_length(scope)
        shed = self.in_flight >= self.max_in_flight and path not in ALWAYS_ANSWERED
        self.in_flight += 1
        try:
            if shed:
                retry = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
                await _send_json(send_wrapper, 503, f"busy: {self.in_flight - 1} requests in progress; retry", retry)
            elif length is not None and length > MAX_BODY_BYTES:
                await _send_json(send_wrapper, 413, _too_large(length))
            else:
                await self.app(scope, _limited(receive), send_wrapper)
        except _BodyTooLarge:  # only when raised outside a route (the route's handler answers it otherwise)
            if not status["started"]:
                await _send_json(send_wrapper, 413, _too_large(None))
        finally:
            self.in_flight -= 1
            record()  # a request that ended without a complete answer (client gone, crash)


def _request_id(scope) -> str:
    """The client's X-Request-ID when it is a short printable token (to follow a request across services),
    else a new one; echoed in the answer and named in the log lines about the request."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            given = value.decode("latin-1")
            if 0 < len(given) <= 64 and given.isascii() and given.isprintable() and " " not in given:
                return given
    return uuid.uuid4().hex[:16]


def _template(path: str) -> str:
    """The metrics label of a path that is not a fixed endpoint."""
    if path.startswith("/v1/items/"):
        return "/v1/items/{id}"
    if path.startswith("/static/"):
        return "/static"
    return "other"


def _too_large(length: int | None) -> str:
    size = f"{length} bytes" if length is not None else "larger than the limit"
    return f"request body is {size}; the limit is {MAX_BODY_BYTES} bytes (at most 10000 items)"


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _limited(receive):
    """Wrap `receive` so a body without Content-Length (chunked) is cut off past the limit too."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise _BodyTooLarge
        return message

    return wrapped


async def _send_json(send, status: int, message: str, extra_headers: list | None = None) -> None:
    import json

    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra_headers or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
