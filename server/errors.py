"""Domain errors. ``server.main`` maps each to an HTTP status in one exception handler."""

from __future__ import annotations


class DomainError(Exception):
    """Base class; ``status_code`` is the HTTP status the API answers with."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    status_code = 404


class PermissionDenied(DomainError):
    status_code = 403


class NotAuthenticated(DomainError):
    status_code = 401


class Conflict(DomainError):
    status_code = 409


class InvalidInput(DomainError):
    status_code = 422


class InvalidNotebook(InvalidInput):
    """The upload is not a usable notebook (malformed JSON, not nbformat)."""


class UploadTooLarge(DomainError):
    status_code = 413


class UnsupportedUpload(DomainError):
    status_code = 415


class RateLimited(DomainError):
    status_code = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
