"""E-mail addresses and phone numbers found in page text and in mailto:/tel: links."""

import re
from urllib.parse import unquote

EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![\w-])")
NOT_EMAIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".css", ".js")

_SEP = r"[ \t.\-]"
# One alternation, so an international number is consumed whole before its national tail could match.
PHONE = re.compile(
    # +<country> then groups: "+1 (555) 123-4567", "+44 20 7946 0958", "+15551234567".
    rf"(?<![\w+])\+\d{{1,3}}(?:{_SEP}?\(\d{{1,4}}\))?(?:{_SEP}?\d{{1,5}}){{1,5}}(?!\w)"
    # North American without "+": "555-123-4567", "(555) 123-4567", "1-555-123-4567", "555.123.4567".
    rf"|(?<![\w+(.\-])(?:1{_SEP})?(?:\(\d{{3}}\) ?|\d{{3}}{_SEP})\d{{3}}{_SEP}\d{{4}}(?![\w\-]|\.\d)"
)
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 7, 15


def normalize_phone(raw: str) -> str | None:
    """Digits with an optional leading "+", or None if it cannot be a phone number."""
    digits = re.sub(r"\D", "", raw)
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
        return None
    return f"+{digits}" if raw.lstrip().startswith("+") else digits


def find_phones(text: str) -> set[str]:
    return {phone for m in PHONE.finditer(text) if (phone := normalize_phone(m.group()))}


def phone_from_tel(href: str) -> str | None:
    """The number in a tel: link ("tel:+1-555-123-4567;ext=2" -> "+15551234567"), else None."""
    if not href[:4].lower() == "tel:":
        return None
    return normalize_phone(unquote(href[4:]).split(";", 1)[0])


def normalize_email(raw: str) -> str | None:
    email = raw.strip().strip(".").lower()
    if not EMAIL.fullmatch(email) or email.endswith(NOT_EMAIL_SUFFIXES):
        return None
    return email


def find_emails(text: str) -> set[str]:
    return {email for m in EMAIL.finditer(text) if (email := normalize_email(m.group()))}


def emails_from_mailto(href: str) -> set[str]:
    """The addresses in a mailto: link, which may list several and carry ?subject=..."""
    if not href[:7].lower() == "mailto:":
        return set()
    addresses = unquote(href[7:].split("?", 1)[0])
    return {email for raw in addresses.split(",") if (email := normalize_email(raw))}
