"""The one place request headers for authentication are built."""


def auth_headers(api_key: str | None) -> dict[str, str]:
    """``Authorization: Bearer`` for an API key; the key also tells intake which tenant is calling."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
