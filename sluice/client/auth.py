"""The one place request headers for authentication are built."""

TENANT_HEADER = "X-Sluice-Tenant"


def auth_headers(api_key: str | None, tenant: str | None) -> dict[str, str]:
    """``Authorization: Bearer`` for an API key; the tenant header until API keys replace it on the server."""
    headers: dict[str, str] = {}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if tenant:
        headers[TENANT_HEADER] = tenant
    return headers
