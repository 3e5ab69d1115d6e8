"""Request errors, each with the HTTP status and the gRPC status code it maps to.

Both fronts raise these; the HTTP front answers `{"error": message}` with the status,
the gRPC front aborts with the code. Messages name the problem and what to do.
"""

from __future__ import annotations


class ServeError(Exception):
    """A request the server will not (or cannot) answer; `http` and `grpc` are its codes."""

    http = 500
    grpc = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServeError):
    http, grpc = 400, "INVALID_ARGUMENT"


class Forbidden(ServeError):
    http, grpc = 403, "PERMISSION_DENIED"


class NotFound(ServeError):
    http, grpc = 404, "NOT_FOUND"


class TooLarge(ServeError):
    http, grpc = 413, "RESOURCE_EXHAUSTED"


class Unsupported(ServeError):
    http, grpc = 415, "INVALID_ARGUMENT"


class Overloaded(ServeError):
    http, grpc = 429, "RESOURCE_EXHAUSTED"


class ModelFailed(ServeError):
    http, grpc = 500, "INTERNAL"


class BadGateway(ServeError):
    http, grpc = 502, "UNAVAILABLE"


class NotReady(ServeError):
    http, grpc = 503, "UNAVAILABLE"


class Timeout(ServeError):
    http, grpc = 504, "DEADLINE_EXCEEDED"
