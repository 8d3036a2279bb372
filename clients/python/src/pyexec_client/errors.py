"""The errors the client raises.

Every refusal of the service is an ApiError (or one of its subclasses, by
HTTP status) carrying what the service said: the HTTP status, the error's
`code`, `field` and `message`, the request id (X-Request-Id) and the
Retry-After seconds when the service sent them.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type


class PyexecError(Exception):
    """Base of every error this package raises."""


class TransportError(PyexecError):
    """The service could not be reached, or the connection failed or timed
    out before a complete answer arrived."""


class WaitTimeout(PyexecError, TimeoutError):
    """Waiting for a submission ended before it was done."""


class WebhookVerificationError(PyexecError):
    """A callback's signature, timestamp or headers did not verify."""


class ApiError(PyexecError):
    """The service refused a request: `{"error": {"code", "message", "field"}}`."""

    def __init__(self, status: int, code: str, message: str, *, field: Optional[str] = None,
                 request_id: Optional[str] = None, retry_after: Optional[int] = None,
                 headers: Optional[Mapping[str, str]] = None, body: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(f"HTTP {status} {code}" + (f" ({field})" if field else "") + f": {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.request_id = request_id
        self.retry_after = retry_after
        self.headers: Dict[str, str] = dict(headers or {})
        self.body = body


class BadRequestError(ApiError):
    """400: the request is invalid (`field` names the part at fault)."""


class AuthenticationError(ApiError):
    """401: API keys are configured and the request had none or a wrong one."""


class NotFoundError(ApiError):
    """404: no such path, job or submission."""


class ConflictError(ApiError):
    """409: an Idempotency-Key was used before with another body."""


class PayloadTooLargeError(ApiError):
    """413: the body, the code or the batch is over the service's limit."""


class RateLimitError(ApiError):
    """429: the rate limit is used up; `retry_after` says for how long."""


class ServiceUnavailableError(ApiError):
    """503: the queue is full, the circuit breaker is open, the service is
    stopping or not ready; `retry_after` says when to try again."""


ERRORS_BY_STATUS: Mapping[int, Type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_from_response(status: int, headers: Mapping[str, str], body: Optional[Dict[str, Any]],
                        text: str = "") -> ApiError:
    """The ApiError subclass for an error answer (body parsed, or None when
    it was not the JSON error shape)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code = str(err.get("code", "unknown"))
        message = str(err.get("message", ""))
        f = err.get("field")
        field = f if isinstance(f, str) else None
    else:
        code, message, field = "unknown", (text.strip()[:500] or f"HTTP {status}"), None
    lower = {k.lower(): v for k, v in headers.items()}
    retry_after: Optional[int] = None
    ra = lower.get("retry-after")
    if ra is not None and ra.strip().isdigit():
        retry_after = int(ra.strip())
    cls = ERRORS_BY_STATUS.get(status, ApiError)
    return cls(status, code, message, field=field, request_id=lower.get("x-request-id"), retry_after=retry_after,
               headers=headers, body=body)
