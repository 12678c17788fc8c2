"""The service's answers that are not results: an error answer (`ServiceError`, its code and HTTP status) and
no answer at all (`NoAnswer`: the request was processed, the client times out)."""

from __future__ import annotations

from typing import ClassVar


class NoAnswer(Exception):
    """The request was processed but no answer goes back (a read timeout for the client)."""


class ServiceError(Exception):
    """An error answer: code (the x-amzn-ErrorType) and HTTP status."""

    STATUS: ClassVar[dict[str, int]] = {
        "AccessDeniedException": 403,
        "ConflictException": 409,
        "InternalServerException": 500,
        "ResourceNotFoundException": 404,
        "ServiceQuotaExceededException": 402,
        "ThrottlingException": 429,
        "ValidationException": 400,
    }

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = self.STATUS[code]
        self.message = message
