"""Who is calling: the tenant behind the Bearer key, counted against its plan's request rate.

Routes take ``tenant: Tenant`` (or ``tenant: str = Depends(current_tenant)``); everything but health, metrics
and the API documents does.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.intake.rate_limit import RateDecision, rate_limit_headers
from shared.errors import SluiceError

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
    runtime = request.app.state.runtime
    if credentials is None:
        raise Unauthenticated("missing API key: send Authorization: Bearer <key>")
    tenant = await runtime.tenants.authenticate(credentials.credentials)
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

    @app.middleware("http")
    async def add_rate_limit_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        decision = getattr(request.state, "rate_limit", None)
        if decision is not None:
            response.headers.update(rate_limit_headers(decision))
        return response
