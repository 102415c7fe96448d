"""The errors the client raises: one base class, and an ApiError per HTTP status the server answers with."""

from __future__ import annotations

from typing import Any


class BroadcasterError(Exception):
    """Base class of every error this package raises."""


class TransportError(BroadcasterError):
    """The server could not be reached, or did not answer within the timeout. Nothing is known about whether
    the request took effect (a publish may or may not have been delivered)."""


class ApiError(BroadcasterError):
    """The server answered with an error status.

    `status` is the HTTP status, `body` the server's error body as parsed JSON (normally
    `{"error": {"code": ..., "message": ...}}`) or, when it was not JSON, its text; `code` and `message` are taken
    from it when present. `retry_after` is the Retry-After header in seconds, when the server sent one."""

    def __init__(self, status: int, body: Any, retry_after: float | None = None):
        self.status = status
        self.body = body
        self.retry_after = retry_after
        error = body.get("error") if isinstance(body, dict) else None
        self.code: str | None = error.get("code") if isinstance(error, dict) else None
        self.message: str | None = error.get("message") if isinstance(error, dict) else None
        detail = f"{self.code}: {self.message}" if self.code else repr(body)[:200]
        super().__init__(f"HTTP {status} {detail}")


class BadRequestError(ApiError):
    """400: InvalidArgument (bad channel, body or parameter) or FailedPrecondition (presence off there)."""


class AuthenticationError(ApiError):
    """401 Unauthenticated: the API key is missing or not one of the server's."""


class PermissionDeniedError(ApiError):
    """403 PermissionDenied."""


class NotFoundError(ApiError):
    """404: no such endpoint (a wrong base URL, or a server too old for this call)."""


class MethodNotAllowedError(ApiError):
    """405: the endpoint exists but not with this method."""


class PayloadTooLargeError(ApiError):
    """413: the body is over the server's --max-message-size."""


class RateLimitedError(ApiError):
    """429 ResourceExhausted."""


class ServerError(ApiError):
    """500 Internal."""


class UnavailableError(ApiError):
    """503: the broker is unreachable or too busy, or the server is shutting down. Retried by the client (see
    Client); raised once the retries are used up."""


_BY_STATUS = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
    429: RateLimitedError,
    500: ServerError,
    503: UnavailableError,
}


def error_for(status: int, body: Any, retry_after: float | None = None) -> ApiError:
    """The ApiError subclass for `status` (ApiError itself for a status without one)."""
    return _BY_STATUS.get(status, ApiError)(status, body, retry_after)
