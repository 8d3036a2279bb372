"""Verifying the callbacks of submissions, as Standard Webhooks specifies."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Dict, Mapping, Optional, Union

from .errors import WebhookVerificationError

DEFAULT_TOLERANCE = 300  # seconds between the timestamp and now, either way


def _header(headers: Mapping[str, str], name: str) -> str:
    v = headers.get(name)
    if v is None:
        for k, val in headers.items():
            if k.lower() == name:
                v = val
                break
    if v is None:
        raise WebhookVerificationError(f"missing header {name}")
    return v


def verify_webhook(secret: str, headers: Mapping[str, str], body: Union[bytes, str], *,
                   tolerance: int = DEFAULT_TOLERANCE, now: Optional[float] = None) -> Dict[str, Any]:
    """Check a callback's signature and return its parsed JSON body.

    secret is the service's WEBHOOK_SECRET (`whsec_<base64>`); headers the
    request's (any mapping; names compared case-insensitively, so Django's
    `request.headers` and Flask's `request.headers` do); body the raw bytes
    received, before any parsing. The signature is `v1,<base64 HMAC-SHA256 of
    "{webhook-id}.{webhook-timestamp}.{body}">`; the header may hold several,
    space-separated, and one matching is enough (compared in constant time).
    A timestamp more than `tolerance` seconds from now is refused, so a
    captured callback cannot be replayed later. Raises WebhookVerificationError.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if not secret.startswith("whsec_"):
        raise WebhookVerificationError("the secret must be whsec_<base64>")
    try:
        key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError) as e:
        raise WebhookVerificationError("the secret's base64 is invalid") from e
    msg_id = _header(headers, "webhook-id")
    ts = _header(headers, "webhook-timestamp")
    sigs = _header(headers, "webhook-signature")
    if not ts.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not a number of seconds")
    current = time.time() if now is None else now
    if abs(current - int(ts)) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + raw, hashlib.sha256).digest()
    want = base64.b64encode(mac)
    ok = False
    for s in sigs.split():
        version, _, value = s.partition(",")
        if version == "v1" and hmac.compare_digest(want, value.encode()):
            ok = True
    if not ok:
        raise WebhookVerificationError("no signature matches")
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise WebhookVerificationError("the body is not JSON") from e
    if not isinstance(doc, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return doc
