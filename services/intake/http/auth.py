"""Who is calling: the tenant behind the Bearer key, counted against its plan's request rate.

Routes take ``tenant: Tenant`` (or ``tenant: str = Depends(current_tenant)``); everything but health, metrics
and the API documents does.
"""

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import MutableHeaders, State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake.tenancy.rate_limit import RateDecision, rate_limit_headers
from sluice.errors import SluiceError

bearer = HTTPBearer(auto_error=False, description="An API key from `sluice tenants create` or `rotate`")


class Unauthenticated(SluiceError):
    """No key, or a key that is malformed, unknown or revoked (answered 401 without saying which)."""


class RateLimited(SluiceError):
    """The tenant is over its plan's requests_per_minute."""

    def __init__(self, tenant: str, decision: RateDecision) -> None:
        super().__init__(f"over the plan's requests_per_minute of {decision.limit}; retry later")
        self.tenant, self.decision = tenant, decision


async def current_tenant(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """Authenticate the request's key and count the request; raises Unauthenticated or RateLimited."""
    return await tenant_of(request, credentials)


async def tenant_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    """``current_tenant`` for the credentials ``bearer`` read from the request."""
    runtime = request.app.state.runtime
    if credentials is None:
        raise Unauthenticated("missing API key: send Authorization: Bearer <key>")
    tenant = await runtime.keys.authenticate(credentials.credentials)
    if tenant is None:
        raise Unauthenticated("invalid or revoked API key")
    plan = await runtime.plans.plan_for(tenant)
    decision = await runtime.rate_limiter.hit(tenant, plan.requests_per_minute)
    request.state.rate_limit = decision
    if decision is not None and not decision.allowed:
        runtime.metrics.count_rate_limited(tenant, "requests_per_minute")
        raise RateLimited(tenant, decision)
    return tenant


Tenant = Annotated[str, Depends(current_tenant)]


def install_rate_limit_headers(app: FastAPI) -> None:
    """RateLimit-* headers on every answer to a counted request, successes included."""
    app.add_middleware(RateLimitHeaders)


class RateLimitHeaders:
    """ASGI middleware (not ``@app.middleware``, whose BaseHTTPMiddleware costs a task group per request): adds
    the headers of the decision ``current_tenant`` left in the request's state when the response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = getattr(State(scope.get("state", {})), "rate_limit", None)
                if decision is not None:
                    headers = MutableHeaders(scope=message)
                    headers.update(rate_limit_headers(decision))
            await send(message)

        await self.app(scope, receive, send_with_headers)
