"""Broadcaster's REST API from Python, with the standard library only: a Client for backends (publish, history,
presence, the server API) and mint_token for client JWTs."""

from .client import Client
from .errors import (ApiError, AuthenticationError, BadRequestError, BroadcasterError, MethodNotAllowedError,
                     NotFoundError, PayloadTooLargeError, PermissionDeniedError, RateLimitedError, ServerError,
                     TransportError, UnavailableError)
from .token import mint_token

__version__ = "0.1.0"

__all__ = ["Client", "mint_token", "BroadcasterError", "TransportError", "ApiError", "BadRequestError",
           "AuthenticationError", "PermissionDeniedError", "NotFoundError", "MethodNotAllowedError",
           "PayloadTooLargeError", "RateLimitedError", "ServerError", "UnavailableError"]
