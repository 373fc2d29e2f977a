"""Webhook signing as a receiver verifies it, and the retry schedule."""

import hashlib
import hmac

from shared.webhooks import retry_delay_s, signature, verify

BODY = b'{"event": {"type": "job.completed"}}'


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_as_documented():
    header = signature("k", 1_700_000_000, BODY)
    expected = hmac.new(b"k", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_a_receiver_accepts_its_own_secret_and_rejects_another_secret_a_changed_body_or_an_old_timestamp():
    header = signature("k", 1000, BODY)
    assert verify("k", header, BODY, now=1000)
    assert not verify("other", header, BODY, now=1000)
    assert not verify("k", header, BODY + b" ", now=1000)
    assert not verify("k", header, BODY, now=1000 + 301)
    assert not verify("k", "v1=abc", BODY, now=1000)


def test_retries_back_off_exponentially_up_to_the_cap():
    assert [retry_delay_s(n, 2.0, 20.0) for n in range(1, 6)] == [2.0, 4.0, 8.0, 16.0, 20.0]
