"""Webhook rules, pure: the signature header, the backoff schedule and the payload of a terminal job event.

Verification (receiver side): split ``X-Sluice-Signature: t=<unix seconds>,v1=<hex>``; compute
``HMAC-SHA256(secret, f"{t}.".encode() + raw_body)``; compare with ``hmac.compare_digest``; reject a ``t``
older than a few minutes (replay).
"""

import hashlib
import hmac


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Sluice-Signature value for a body sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance_s: int = 300) -> bool:
    """The receiver's check, as documented above."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not parts.get("t", "").isdigit() or "v1" not in parts:
        return False
    timestamp = int(parts["t"])
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), f"t={timestamp},v1={parts['v1']}")


def retry_delay_s(attempt: int, base_s: float, cap_s: float) -> float:
    """Wait after the ``attempt``-th failed try (1-based): base × 2^(attempt-1), capped."""
    return min(cap_s, base_s * 2 ** (attempt - 1))
