"""The kiosk request signature: HMAC-SHA256 over ``timestamp + "\\n" + body``.

Kept free of I/O so that vendors' test vectors, the server and the tests share one
definition (see README.md for a worked example).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

#: Headers a kiosk sends with every request.
DEVICE_HEADER = "X-Kiosk-Device"
TIMESTAMP_HEADER = "X-Kiosk-Timestamp"
SIGNATURE_HEADER = "X-Kiosk-Signature"
#: How far a request's timestamp may be from the server's clock (either way).
REPLAY_WINDOW_SECONDS = 300
_PREFIX = "sha256="


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The value of the X-Kiosk-Signature header: ``sha256=`` and 64 lower-case hex digits."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"\n" + body, hashlib.sha256)
    return _PREFIX + mac.hexdigest()


def signed_headers(device_id: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """All three headers for a request (what a kiosk's HTTP client adds)."""
    stamp = str(timestamp)
    return {DEVICE_HEADER: device_id, TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(secret, stamp, body),
            "Content-Type": "application/json"}


def matches_any(secrets_: Iterable[str], timestamp: str, body: bytes, signature: str) -> bool:
    """Whether `signature` was made with one of the secrets.

    Every secret is compared (in constant time), so the time taken does not say which key
    matched or how much of the signature was right.
    """
    matched = False
    given = signature.strip().lower().encode()
    for secret in secrets_:
        expected = sign(secret, timestamp, body).encode()
        matched = hmac.compare_digest(expected, given) | matched
    return matched
