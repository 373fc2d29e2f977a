"""One SERVER span per HTTP request (the root of a submitted job's trace), continuing a caller's traceparent."""

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_PROPAGATOR = TraceContextTextMapPropagator()
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_CONTEXT_HEADERS = frozenset({b"traceparent", b"tracestate"})


class HttpTracing:
    """ASGI middleware: names the span ``METHOD /route/{template}`` and records the response status."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        carrier = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers", ())
            if key in _CONTEXT_HEADERS
        }
        parent = _PROPAGATOR.extract(carrier)
        method = scope["method"]
        with self.tracer.start_as_current_span(
            f"{method} {scope['path']}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as span:

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, send_traced)
            finally:
                if (route := scope.get("route")) is not None and getattr(route, "path", None):
                    span.update_name(f"{method} {route.path}")
                    span.set_attribute("http.route", route.path)
