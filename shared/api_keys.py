"""API keys: how they are made, read back and hashed. Pure; the tenant store keeps only the hash.

A key reads ``sk_<key_id>_<secret>``. The key id is public (it is what `sluice tenants list` shows and what the
store looks a key up by); the secret is 256 random bits, so a plain SHA-256 of the whole key is enough to
store it safely (no salt or slow hash needed for high-entropy secrets).
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "sk"
KEY_ID_BYTES = 6
SECRET_BYTES = 32
_SHAPE = re.compile(rf"{PREFIX}_(?P<key_id>[0-9a-f]{{{KEY_ID_BYTES * 2}}})_(?P<secret>[A-Za-z0-9_-]{{20,100}})")


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made key: shown to its owner once, then only its id and digest remain."""

    key_id: str
    token: str

    @property
    def digest(self) -> bytes:
        return key_digest(self.token)


def new_api_key() -> IssuedKey:
    key_id = secrets.token_hex(KEY_ID_BYTES)
    return IssuedKey(key_id=key_id, token=f"{PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}")


def key_id_of(token: str) -> str | None:
    """The key id of a well-formed key, or None for anything that cannot be one of ours."""
    match = _SHAPE.fullmatch(token)
    return match["key_id"] if match else None


def key_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def digest_matches(token: str, stored_digest: bytes) -> bool:
    return hmac.compare_digest(key_digest(token), stored_digest)
