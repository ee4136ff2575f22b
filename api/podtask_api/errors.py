"""The one JSON error shape, `{"error": {"code", "message", "details"}}`, for every failure.

`ApiError` is what route code raises; the handlers installed by
`install_error_handlers` also turn FastAPI's validation errors, unknown routes,
wrong methods and anything unexpected into the same shape, never a traceback.
`error_responses` documents in `/openapi.json` which of them a route may answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from podtask_api.api_models import ErrorResponse

log = logging.getLogger("podtask_api")


class ApiError(Exception):
    """A failure with an HTTP status and a stable machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(error.code, error.message, error.details),
        status_code=error.status,
        headers=dict(error.headers) if error.headers else None,
    )


def malformed_object(code: str, message: str, exc: ValidationError) -> ApiError:
    """The 502 for an object in the cluster the API cannot read, naming each bad field."""
    details = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
    return ApiError(502, code, message, details)


def _field_name(location: Sequence[Any]) -> str:
    # "body" is where every JSON field lives; naming it adds nothing for the caller.
    parts = [str(p) for p in location]
    if len(parts) > 1 and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts)


def validation_error(errors: Sequence[Any]) -> ApiError:
    """A 422 naming each invalid field, or a 400 when the body is not JSON at all."""
    for err in errors:
        if err.get("type") == "json_invalid":
            return ApiError(
                400,
                "invalid_json",
                f"the request body is not valid JSON: {err.get('msg', 'parse error')}",
            )
    details = [
        {
            "field": _field_name(err.get("loc", ())),
            "message": err.get("msg"),
            "type": err.get("type"),
        }
        for err in errors
    ]
    fields = ", ".join(sorted({d["field"] for d in details})) or "the request"
    problems = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return ApiError(422, "invalid_request", f"invalid {fields} — {problems}", details)


_WHEN = {
    400: "The body is not valid JSON (`invalid_json`).",
    401: "No API key (or attempt token), or one that is not valid (`unauthorized`).",
    403: "The credential may not do this (`forbidden`).",
    404: "What the path names does not exist.",
    409: "The action does not fit the state of what it acts on.",
    410: "The cursor is too old to go on from (`cursor_expired`): list from the start again.",
    413: "The body, or a payload in it, is over its size limit.",
    422: "A field of the request is invalid; `details` names each.",
    502: "The cluster answered with something the API cannot use.",
    503: "The cluster cannot be reached or is not ready (`cluster_unavailable`).",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route that may answer these errors, for `/openapi.json`."""
    return {status: {"model": ErrorResponse, "description": _WHEN[status]} for status in statuses}


# Every route that reaches the cluster may find it unavailable or answering nonsense.
CLUSTER_ERRORS = (502, 503)
AUTH_ERRORS = (401, 403)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            message = f"no endpoint at {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(ApiError(exc.status_code, code, message, headers=exc.headers))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The type is logged for the operator of the API; the caller gets no internals.
        log.error(
            "unexpected %s while serving %s %s",
            type(exc).__name__,
            request.method,
            request.url.path,
            exc_info=exc,
        )
        return error_response(
            ApiError(500, "internal_error", "the API failed unexpectedly; see its log")
        )
