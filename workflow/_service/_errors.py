"""Every error leaves the service as JSON ``{"error": code, "message": text}``.

taskloom's exceptions map to statuses by type (unknown things 404, conflicts 409, invalid
input 422); anything unexpected is logged with its traceback under a short id and answered
with a 500 that names the id and nothing else, so no stack trace, SQL or secret reaches a
client.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from agents import TaskloomError
from knowledge import (
    DatabaseOpenError,
    DuplicateFeedbackError,
    FeedbackError,
    IdempotencyError,
    InvalidLabelError,
    ReviewItemNotFoundError,
    RollbackError,
    RunConflictError,
    RunNotFoundError,
    SchemaError,
    UnknownApiKeyError,
    UnknownJobError,
    UnknownModelVersionError,
    UnknownPredictionError,
)
from workflow._errors import TaskValidationError

__all__ = ["CODES", "ApiError", "error_response", "install_error_handlers"]

_log = logging.getLogger("taskloom.service")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    500: "internal",
    503: "unavailable",
}

# Most specific first: the first type an exception is an instance of decides its status.
_STATUS_BY_TYPE: tuple[tuple[type[Exception], int], ...] = (
    (RunNotFoundError, 404),
    (UnknownPredictionError, 404),
    (UnknownModelVersionError, 404),
    (ReviewItemNotFoundError, 404),
    (UnknownJobError, 404),
    (UnknownApiKeyError, 404),
    (DuplicateFeedbackError, 409),
    (RollbackError, 409),
    (RunConflictError, 409),
    (IdempotencyError, 409),
    (InvalidLabelError, 422),
    (FeedbackError, 422),
    (TaskValidationError, 422),
    (SchemaError, 503),
    (DatabaseOpenError, 503),
)


class ApiError(HTTPException):
    """An error the service raises on purpose, with its status and message."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)


def error_response(
    status: int,
    message: str,
    *,
    problems: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The JSON body every error has."""
    body: dict[str, Any] = {"error": CODES.get(status, "error"), "message": message}
    if problems is not None:
        body["problems"] = problems
    return JSONResponse(body, status_code=status, headers=headers)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, message, headers=exc.headers)


def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(error) for error in exc.errors()]
    return error_response(422, f"The request is invalid: {'; '.join(problems)}", problems=problems)


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
    return f"{where}: {error.get('msg', 'invalid')}"


def _taskloom(request: Request, exc: Exception) -> JSONResponse:
    for kind, status in _STATUS_BY_TYPE:
        if isinstance(exc, kind):
            return error_response(status, str(exc))
    return error_response(400, str(exc))


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    incident = os.urandom(4).hex()
    _log.error(
        "incident %s: %s %s failed", incident, request.method, request.url.path, exc_info=exc
    )
    return error_response(500, f"internal error; see the server log (incident {incident})")


def install_error_handlers(app: FastAPI) -> None:
    """Answer HTTP, validation, taskloom and unexpected errors as JSON."""
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(TaskloomError, _taskloom)
    app.add_exception_handler(Exception, _unexpected)
